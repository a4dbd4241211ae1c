//! Kernel adapters: make the kernel match a plan, and read it back.
//! Idempotent throughout, so the reconciler can apply any plan again.

pub mod firewall;
pub mod hostport;
pub mod link;
pub mod link_watch;
pub mod netns;
pub mod nft;
pub mod notify;

use std::path::Path;

use anyhow::{Context, Result};

use crate::plan::{BridgePlan, EndpointPlan};
pub use link::Netlink;

/// Make a bridge exist as planned; turn on forwarding in the host namespace
/// when the network routes out. Its index, and whether it was created.
pub async fn apply_bridge(host: &Netlink, plan: &BridgePlan) -> Result<(u32, bool)> {
    let (index, created) = host
        .ensure_bridge(&plan.name, plan.address, plan.mtu)
        .await
        .with_context(|| format!("bridge {}", plan.name))?;
    // Published ports answer on 127.0.0.1 too: DNAT'ed loopback traffic may
    // then leave through the bridge.
    let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", plan.name);
    if std::fs::read_to_string(&localnet)
        .map(|v| v.trim() != "1")
        .unwrap_or(true)
    {
        std::fs::write(&localnet, "1")
            .with_context(|| format!("enable route_localnet on {}", plan.name))?;
    }
    if plan.forward {
        // The host namespace is the one this process runs in.
        let f = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(f)
            .map(|v| v.trim() != "1")
            .unwrap_or(true)
        {
            std::fs::write(f, "1").context("enable net.ipv4.ip_forward")?;
        }
    }
    Ok((index, created))
}

pub async fn remove_bridge(host: &Netlink, plan: &BridgePlan) -> Result<()> {
    host.delete_link(&plan.name).await
}

/// Make an endpoint exist as planned: bridge, veth pair, the sandbox side
/// renamed, addressed and routed. An endpoint that is already complete is
/// left alone, or only put back on its bridge; a partial one is rebuilt.
/// True when the bridge had to be created: the network's other veths then
/// have no bridge either.
pub async fn apply_endpoint(host: &Netlink, plan: &EndpointPlan) -> Result<bool> {
    let (bridge, created) = apply_bridge(host, &plan.bridge).await?;
    let sandbox = Netlink::in_netns(&plan.netns)?;
    let hv = host.link(&plan.host_veth).await?;
    if let Some(hv) = &hv
        && sandbox_side_is_complete(&sandbox, plan).await?
    {
        // A bridge deleted and made again has none of its old ports: give
        // the veth back its bridge rather than rebuild the pair.
        if hv.controller != Some(bridge) || !hv.up {
            host.enslave(hv.index, bridge)
                .await
                .with_context(|| format!("put {} back on {}", plan.host_veth, plan.bridge.name))?;
        }
        return Ok(created);
    }
    // A half-made pair from an interrupted attach is removed first.
    if hv.is_some() {
        host.delete_link(&plan.host_veth).await?;
    }
    let spec = link::VethSpec {
        host: &plan.host_veth,
        ifname: &plan.ifname,
        mac: plan.mac,
        mtu: plan.bridge.mtu,
    };
    // A stale interface of that name in the sandbox (its host end is gone,
    // so it is not ours any more) would block the rename.
    sandbox.delete_link(&plan.ifname).await?;
    host.create_veth_into(&spec, bridge, &plan.netns)
        .await
        .with_context(|| format!("endpoint {}", plan.host_veth))?;
    sandbox
        .configure_peer(&spec, plan.address, plan.gateway)
        .await
        .with_context(|| format!("configure {} in {}", plan.ifname, plan.netns.display()))?;
    Ok(created)
}

/// Put an existing host veth back on its bridge (a bridge made again has
/// none of its old ports), and nothing more: a pair that is missing or half
/// made may be an attach in flight in another process, which must not be
/// rebuilt under it. True when the veth was put back.
pub async fn reattach_port(host: &Netlink, plan: &EndpointPlan) -> Result<bool> {
    let (Some(bridge), Some(hv)) = (
        host.link(&plan.bridge.name).await?,
        host.link(&plan.host_veth).await?,
    ) else {
        return Ok(false);
    };
    if hv.controller == Some(bridge.index) && hv.up {
        return Ok(false);
    }
    host.enslave(hv.index, bridge.index)
        .await
        .with_context(|| format!("put {} back on {}", plan.host_veth, plan.bridge.name))?;
    Ok(true)
}

/// Whether the sandbox's end of an existing pair is as planned.
async fn sandbox_side_is_complete(sandbox: &Netlink, plan: &EndpointPlan) -> Result<bool> {
    let Some(peer) = sandbox.link(&plan.ifname).await? else {
        return Ok(false);
    };
    if !peer.up || !sandbox.addresses(peer.index).await?.contains(&plan.address) {
        return Ok(false);
    }
    // A sandbox that should leave through this network but has no default
    // route at all lost it (another network's route is as good).
    Ok(plan.gateway.is_none() || sandbox.has_default_route().await?)
}

/// Remove an endpoint's veth pair. Deleting the host end takes the peer with
/// it; a sandbox namespace that is already gone took both.
pub async fn remove_endpoint(host: &Netlink, plan: &EndpointPlan) -> Result<()> {
    host.delete_link(&plan.host_veth).await
}

/// Take an endpoint out of service now and leave deleting its veth pair to
/// whoever deletes `plan.host_veth` later: the sandbox side goes down and
/// is renamed, so its interface name, routes and address are free for a new
/// attachment at once. A sandbox namespace that is gone took the pair along.
pub async fn retire_endpoint(plan: &EndpointPlan) -> Result<()> {
    if !netns::is_netns(&plan.netns) {
        return Ok(());
    }
    Netlink::in_netns(&plan.netns)?
        .retire_link(&plan.ifname, &plan.mac, &plan.retired_ifname)
        .await
        .map(|_| ())
}

/// Bring `lo` up in a sandbox namespace (what a `none` sandbox gets).
pub async fn apply_loopback(netns: &Path) -> Result<()> {
    Netlink::in_netns(netns)?.ensure_lo_up().await
}
