//! The real kernel behind the seams: rtnetlink for links, addresses and
//! routes, nftnl for the firewall, bind mounts for namespaces, /proc/sys
//! for sysctls. Idempotent throughout, so any plan can be applied again.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ipnet::IpNet;

use super::firewall::Firewall;
use super::hostport::{self, HostPortError};
use super::link::{self, Netlink};
use super::netns::{self, NsId};
use super::traits::*;
use crate::model::Resolver;
use crate::plan::firewall::{FirewallPlan, PortElement};
use crate::plan::overlay::{OverlayPeer, VxlanPlan};
use crate::plan::{BridgePlan, EndpointPlan};

/// The host namespace (the one this process runs in) and its firewall.
pub struct Host {
    netlink: Netlink,
    firewall: Firewall,
    home_ns: Option<NsId>,
}

impl Host {
    /// Connect to the kernel of the calling thread's namespace. Must be
    /// called inside a tokio runtime.
    pub fn open() -> KResult<Host> {
        Ok(Host {
            netlink: Netlink::current()?,
            firewall: Firewall::start()?,
            home_ns: netns::thread_ns_id(),
        })
    }

    /// The route netlink connection in the host namespace.
    pub fn netlink(&self) -> &Netlink {
        &self.netlink
    }

    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }
}

impl LinkOps for Host {
    async fn host_link_kind(&self, name: &str) -> KResult<Option<String>> {
        Ok(self
            .netlink
            .link(name)
            .await?
            .map(|l| l.kind.unwrap_or_else(|| "device".into())))
    }

    async fn host_link_names(&self) -> KResult<Vec<String>> {
        Ok(self
            .netlink
            .links()
            .await?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }

    async fn route_destinations(&self) -> KResult<Vec<IpNet>> {
        Ok(self.netlink.route_destinations().await?)
    }

    async fn delete_host_link(&self, name: &str) -> KResult<()> {
        Ok(self.netlink.delete_link(name).await?)
    }

    async fn apply_bridge(&self, plan: &BridgePlan) -> KResult<BridgeState> {
        let (index, created) = self
            .netlink
            .ensure_bridge(
                &plan.name,
                plan.address,
                plan.address6,
                plan.mtu,
                plan.mac.map(|m| m.0),
            )
            .await
            .with_context(|| format!("bridge {}", plan.name))?;
        Ok(BridgeState { index, created })
    }

    async fn apply_endpoint(&self, plan: &EndpointPlan, bridge: BridgeState) -> KResult<()> {
        let host = &self.netlink;
        let sandbox = Netlink::in_netns(&plan.netns)?;
        let hv = host.link(&plan.host_veth).await?;
        if let Some(hv) = &hv
            && sandbox_side_is_complete(&sandbox, plan).await?
        {
            // A bridge deleted and made again has none of its old ports: give
            // the veth back its bridge rather than rebuild the pair.
            if hv.controller != Some(bridge.index) || !hv.up {
                host.enslave(hv.index, bridge.index)
                    .await
                    .with_context(|| {
                        format!("put {} back on {}", plan.host_veth, plan.bridge.name)
                    })?;
            }
            // The user's settings again (reconcile): one changed by hand
            // since is put back; writing an unchanged value changes nothing.
            write_sysctls(plan)?;
            return Ok(());
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
        // A stale interface of that name in the sandbox (its host end is
        // gone, so it is not ours any more) would block the rename.
        sandbox.delete_link(&plan.ifname).await?;
        host.create_veth_into(&spec, bridge.index, &plan.netns)
            .await
            .with_context(|| format!("endpoint {}", plan.host_veth))?;
        let v6 = plan.address6.is_some() || plan.link_local.iter().any(|a| a.addr().is_ipv6());
        // Before it comes up. With IPv6: a router advertisement from another
        // container on the bridge must not give it routes or addresses.
        // Without (an IPv4-only network), IPv6 goes off, as Docker does
        // since CVE-2024-32473: else the interface takes a link-local address
        // and, coming up, sends duplicate address detection, MLD reports and
        // router solicitations to multicast groups, which the bridge floods
        // to every port: work for the kernel per container that grows with
        // the containers on the bridge (issue 15).
        netns::in_netns(&plan.netns, || {
            let conf = format!("/proc/sys/net/ipv6/conf/{}", plan.ifname);
            if v6 {
                std::fs::write(format!("{conf}/accept_ra"), "0")?;
                std::fs::write(format!("{conf}/disable_ipv6"), "0")?;
            } else {
                disable_ipv6_here(&conf)?;
            }
            Ok(())
        })
        .with_context(|| format!("IPv6 settings of {}", plan.ifname))?;
        // The user's own settings (Docker's endpoint sysctls), after
        // netd's so they win, and before the interface comes up.
        write_sysctls(plan)?;
        let addrs: Vec<IpNet> = plan
            .address
            .map(IpNet::from)
            .into_iter()
            .chain(plan.address6.map(IpNet::from))
            .collect();
        let gateways: Vec<IpAddr> = plan
            .gateway
            .map(IpAddr::from)
            .into_iter()
            .chain(plan.gateway6.map(IpAddr::from))
            .collect();
        sandbox
            .configure_peer(&spec, &addrs, &plan.link_local, &gateways)
            .await
            .with_context(|| format!("configure {} in {}", plan.ifname, plan.netns.display()))?;
        Ok(())
    }

    async fn reattach_port(&self, plan: &EndpointPlan) -> KResult<bool> {
        let host = &self.netlink;
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

    async fn retire_endpoint(&self, plan: &EndpointPlan) -> KResult<()> {
        // A sandbox namespace that is gone took the pair along.
        if !netns::is_netns(&plan.netns) {
            return Ok(());
        }
        Netlink::in_netns(&plan.netns)?
            .retire_link(&plan.ifname, &plan.mac, &plan.retired_ifname)
            .await?;
        Ok(())
    }

    async fn loopback_up(&self, netns: &Path) -> KResult<()> {
        Ok(Netlink::in_netns(netns)?.ensure_lo_up().await?)
    }

    async fn ensure_default_route(
        &self,
        netns: &Path,
        gateway: IpAddr,
        ours: &[IpAddr],
    ) -> KResult<bool> {
        let nl = Netlink::in_netns(netns)?;
        match nl.default_gateway_of(gateway.is_ipv6()).await? {
            Some(now) if now == gateway || !ours.contains(&now) => Ok(false),
            Some(_) => {
                nl.replace_default_route(gateway).await?;
                Ok(true)
            }
            None => {
                nl.add_default_route(gateway).await?;
                Ok(true)
            }
        }
    }
}

/// Write an endpoint's own sysctls (Docker's endpoint option) in its
/// sandbox; nothing to do, and no `setns`, without any.
fn write_sysctls(plan: &EndpointPlan) -> KResult<()> {
    if plan.sysctls.is_empty() {
        return Ok(());
    }
    netns::in_netns(&plan.netns, || {
        for (k, v) in &plan.sysctls {
            std::fs::write(format!("/proc/sys/{k}"), v)
                .map_err(|e| std::io::Error::new(e.kind(), format!("/proc/sys/{k} = {v}: {e}")))?;
        }
        Ok(())
    })
    .with_context(|| format!("sysctls of {}", plan.ifname))?;
    Ok(())
}

/// Whether the sandbox's end of an existing pair is as planned.
async fn sandbox_side_is_complete(sandbox: &Netlink, plan: &EndpointPlan) -> anyhow::Result<bool> {
    let Some(peer) = sandbox.link(&plan.ifname).await? else {
        return Ok(false);
    };
    let addrs = sandbox.addresses(peer.index).await?;
    if !peer.up
        || plan.address.is_some_and(|a| !addrs.contains(&a.into()))
        || plan.address6.is_some_and(|a| !addrs.contains(&a.into()))
        || plan.link_local.iter().any(|a| !addrs.contains(a))
    {
        return Ok(false);
    }
    // A sandbox that should leave through this network but has no default
    // route at all lost it (another network's route is as good).
    Ok(
        (plan.gateway.is_none() || sandbox.has_default_route().await?)
            && (plan.gateway6.is_none() || sandbox.default_gateway6().await?.is_some()),
    )
}

impl NamespaceOps for Host {
    fn ns_id(&self, path: &Path) -> Option<NsId> {
        netns::ns_id(path)
    }

    fn file_id(&self, path: &Path) -> Option<NsId> {
        netns::file_id(path)
    }

    fn is_netns(&self, path: &Path) -> bool {
        netns::is_netns(path)
    }

    fn home_ns(&self) -> Option<NsId> {
        self.home_ns
    }

    fn named_path(&self, name: &str) -> PathBuf {
        netns::named_path(name)
    }

    fn named_exists(&self, name: &str) -> bool {
        netns::named_path(name).exists()
    }

    fn create_named(&self, name: &str) -> KResult<PathBuf> {
        Ok(netns::create_named(name)?)
    }

    fn delete_named(&self, path: &Path) -> KResult<()> {
        Ok(netns::delete_named(path)?)
    }

    fn write_resolv_conf(&self, name: &str, dns: &Resolver) -> KResult<()> {
        Ok(netns::write_resolv_conf(name, dns)?)
    }

    fn remove_etc(&self, name: &str) {
        netns::remove_etc(name)
    }
}

impl FirewallOps for Host {
    async fn apply_firewall(&self, plan: FirewallPlan) -> KResult<()> {
        Ok(self.firewall.apply(plan).await?)
    }

    async fn add_ports(&self, elems: Vec<PortElement>) -> KResult<()> {
        Ok(self.firewall.add(elems).await?)
    }

    async fn del_ports(&self, elems: Vec<PortElement>) -> KResult<()> {
        Ok(self.firewall.del(elems).await?)
    }

    fn check_host_ports(&self, elems: &[PortElement]) -> Result<(), HostPortError> {
        hostport::check(elems)
    }
}

impl SysctlOps for Host {
    fn ensure_sysctl(&self, key: &str, value: &str) -> KResult<()> {
        // The host namespace is the one this process runs in.
        let path = format!("/proc/sys/{key}");
        if std::fs::read_to_string(&path)
            .map(|v| v.trim() != value)
            .unwrap_or(true)
        {
            std::fs::write(&path, value).with_context(|| format!("set {key} to {value}"))?;
        }
        Ok(())
    }
}

impl OverlayOps for Host {
    async fn apply_vxlan(&self, plan: &VxlanPlan, bridge: BridgeState) -> KResult<()> {
        Ok(self
            .netlink
            .ensure_vxlan(plan, bridge.index)
            .await
            .with_context(|| format!("overlay port of {}", plan.bridge))?)
    }

    async fn sync_peers(&self, vxlan: &str, peers: &[OverlayPeer]) -> KResult<()> {
        Ok(self.netlink.sync_vxlan_peers(vxlan, peers).await?)
    }
}

/// `disable_ipv6=1` under `conf` (a `/proc/sys/net/ipv6/conf/IFNAME`) of
/// the calling thread's namespace; a kernel without IPv6 has no such file,
/// and nothing to turn off.
fn disable_ipv6_here(conf: &str) -> anyhow::Result<()> {
    match std::fs::write(format!("{conf}/disable_ipv6"), "1") {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        r => Ok(r?),
    }
}
