//! The planner: pure functions from the model to the kernel objects that must
//! exist. The kernel adapters apply these; reconciliation compares them with
//! what the kernel reports.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub mod dns;
pub mod firewall;
pub mod forward;
pub mod overlay;

use crate::model::{
    BRIDGE_PREFIX, BridgeConfig, Endpoint, HOST_VETH_PREFIX, Mac, Network, Sandbox, SandboxNet,
    is_ifb_name,
};

/// A network's bridge: its name, the gateway address on it, MTU, and whether
/// the host must forward for it (every network that is not internal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    pub name: String,
    /// The IPv4 gateway address; None on an IPv6-only network.
    pub address: Option<Ipv4Net>,
    /// The IPv6 gateway address, on a dual-stack or IPv6-only network.
    pub address6: Option<Ipv6Net>,
    pub mtu: Option<u32>,
    pub forward: bool,
    /// The bridge's own MAC, when it must be a given one: an overlay
    /// network's anycast gateway has the same MAC on every host.
    pub mac: Option<Mac>,
    /// An overlay network's VXLAN device, a port of the bridge.
    pub vxlan: Option<overlay::VxlanPlan>,
}

pub fn bridge(net: &Network) -> Option<BridgePlan> {
    let b = net.bridge()?;
    Some(BridgePlan {
        name: b.bridge.to_string(),
        // `inhibit_ipv4`: the gateway address belongs to something else on
        // the bridge (a router, an uplink the user enslaves); containers
        // still get it as their default route.
        address: match &b.ipv4 {
            Some(_) if crate::model::inhibit_ipv4(&net.options) => None,
            Some(v4) => Some(Ipv4Net::new(v4.gateway, v4.subnet.prefix_len()).ok()?),
            None => None,
        },
        address6: match &b.ipv6 {
            Some(v6) => Some(Ipv6Net::new(v6.gateway, v6.subnet.prefix_len()).ok()?),
            None => None,
        },
        mtu: b.mtu,
        forward: !b.internal,
        mac: net.overlay().map(|_| overlay::gateway_mac(b)),
        vxlan: overlay::vxlan(net),
    })
}

/// The host sysctls a bridge needs, as (key under /proc/sys, value):
/// route_localnet on it, since published ports answer on 127.0.0.1 too and
/// DNAT'ed loopback traffic may then leave through the bridge; forwarding
/// when the network routes out. Forwarding is never turned off again: it is
/// the host's, and other networks and tools rely on it.
///
/// A dual-stack bridge needs IPv6 on (a host with `default.disable_ipv6`
/// would leave it off), takes no router advertisements from its ports (a
/// container must not configure the host), and IPv6 forwarding when it
/// routes out. `all.forwarding` makes the host's own interfaces ignore
/// router advertisements unless their `accept_ra` is 2: docs/datapath.md
/// says so, as Docker's docs do.
pub fn bridge_sysctls(b: &BridgePlan) -> Vec<(String, &'static str)> {
    let mut out = vec![(format!("net/ipv4/conf/{}/route_localnet", b.name), "1")];
    if b.forward {
        out.push(("net/ipv4/ip_forward".to_string(), "1"));
    }
    if b.address6.is_some() {
        out.push((format!("net/ipv6/conf/{}/disable_ipv6", b.name), "0"));
        out.push((format!("net/ipv6/conf/{}/accept_ra", b.name), "0"));
        if b.forward {
            out.push(("net/ipv6/conf/all/forwarding".to_string(), "1"));
        }
    }
    out
}

/// One endpoint's veth pair and the sandbox side's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    pub bridge: BridgePlan,
    pub host_veth: String,
    pub ifname: String,
    /// What the sandbox side is renamed to when it is retired, its deletion
    /// left for later (`kernel::retire_endpoint`).
    pub retired_ifname: String,
    pub mac: [u8; 6],
    /// The IPv4 address; None on an IPv6-only network.
    pub address: Option<Ipv4Net>,
    /// The default route goes via this gateway unless the network is internal
    /// (no route out) or the sandbox already has a default route.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address and default route, on a dual-stack network.
    pub address6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    /// Link-local addresses besides those (Docker's LinkLocalIPs): IPv4
    /// as /16 and IPv6 as /64, the link-local prefixes, as Docker adds them.
    pub link_local: Vec<IpNet>,
    /// Settings of the interface inside the sandbox, as (path under
    /// /proc/sys, value), written before it comes up.
    pub sysctls: Vec<(String, String)>,
    pub netns: PathBuf,
    /// The ifb of the endpoint's egress limit, deleted with its veth (the
    /// kernel does not): only the CNI plugin makes one.
    pub ifb: Option<String>,
}

pub fn endpoint(net: &Network, sandbox: &Sandbox, ep: &Endpoint) -> Option<EndpointPlan> {
    let b = net.bridge()?;
    let netns = PathBuf::from(sandbox.netns_path()?);
    Some(EndpointPlan {
        bridge: bridge(net)?,
        host_veth: ep.host_veth().to_string(),
        ifname: ep.ifname.to_string(),
        retired_ifname: ep.retired_ifname().to_string(),
        mac: ep.mac.0,
        address: match (&b.ipv4, ep.ip) {
            (Some(v4), Some(ip)) => Some(Ipv4Net::new(ip, v4.subnet.prefix_len()).ok()?),
            _ => None,
        },
        gateway: b
            .ipv4
            .as_ref()
            .filter(|_| !b.internal && ep.ip.is_some())
            .map(|v4| v4.gateway),
        address6: match (&b.ipv6, ep.ip6) {
            (Some(v6), Some(ip6)) => Some(Ipv6Net::new(ip6, v6.subnet.prefix_len()).ok()?),
            _ => None,
        },
        gateway6: b
            .ipv6
            .as_ref()
            .filter(|_| !b.internal && ep.ip6.is_some())
            .map(|v6| v6.gateway),
        link_local: ep
            .link_local_ips
            .iter()
            .filter_map(|ip| link_local_net(*ip))
            .collect(),
        sysctls: ep
            .sysctls
            .iter()
            .map(|s| (s.path(ep.ifname.as_str()), s.value().to_string()))
            .collect(),
        netns,
        ifb: ep.egress_ifb.then(|| ep.ifb().to_string()),
    })
}

/// A link-local address with its link's prefix: 169.254.0.0/16, fe80::/64.
pub fn link_local_net(ip: IpAddr) -> Option<IpNet> {
    IpNet::new(ip, if ip.is_ipv4() { 16 } else { 64 }).ok()
}

/// A sandbox's namespace and what netd puts there besides endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    pub netns: PathBuf,
    /// netd makes the namespace, bound under this name, and deletes it
    /// with the sandbox; None for a namespace adopted from an engine.
    pub create: Option<String>,
    /// Point the sandbox's resolver at 127.0.0.11: a namespace netd made
    /// that has an endpoint (an engine writes its own containers' file).
    pub resolv_conf: bool,
    /// Bring `lo` up: a sandbox without endpoints (an endpoint brings it
    /// up with its own interface).
    pub loopback: bool,
}

/// The plan of a sandbox with or without endpoints; None in host mode.
pub fn sandbox(sb: &Sandbox, has_endpoints: bool) -> Option<SandboxPlan> {
    let SandboxNet::Namespace { path, owned } = &sb.net else {
        return None;
    };
    Some(SandboxPlan {
        netns: PathBuf::from(path),
        create: owned.then(|| sb.name.to_string()),
        resolv_conf: *owned && has_endpoints,
        loopback: !has_endpoints,
    })
}

/// The default routes a sandbox should have, one per family: via the
/// gateway of the network that routes out in that family (an internal
/// network has none) with the highest gateway priority (Docker's
/// GwPriority), the first listed winning a tie. `networks` pairs each of
/// the sandbox's networks with its endpoint's priority.
pub fn default_routes(sb: &Sandbox, networks: &[(Network, i64)]) -> Vec<(PathBuf, IpAddr)> {
    let Some(netns) = sb.netns_path().map(PathBuf::from) else {
        return vec![];
    };
    let best = |gateway: fn(&BridgeConfig) -> Option<IpAddr>| {
        let mut best: Option<(i64, IpAddr)> = None;
        for (n, prio) in networks {
            let Some(gw) = n.bridge().filter(|b| !b.internal).and_then(gateway) else {
                continue;
            };
            if best.is_none_or(|(p, _)| *prio > p) {
                best = Some((*prio, gw));
            }
        }
        best.map(|(_, gw)| gw)
    };
    let v4 = best(|b| b.ipv4.as_ref().map(|v4| IpAddr::V4(v4.gateway)));
    let v6 = best(|b| b.ipv6.as_ref().map(|v6| IpAddr::V6(v6.gateway)));
    v4.into_iter()
        .chain(v6)
        .map(|gw| (netns.clone(), gw))
        .collect()
}

/// Every gateway of these networks, both families: the default routes
/// netd may move between a sandbox's networks (any other is not netd's).
pub fn gateways(networks: &[Network]) -> Vec<IpAddr> {
    networks
        .iter()
        .filter_map(|n| n.bridge())
        .flat_map(|b| {
            b.ipv4
                .as_ref()
                .map(|v4| IpAddr::V4(v4.gateway))
                .into_iter()
                .chain(b.ipv6.as_ref().map(|v6| IpAddr::V6(v6.gateway)))
        })
        .collect()
}

/// Links in the host namespace that carry netd's naming but belong to no
/// network or endpoint in the store: left by a crash or a deleted record.
/// An endpoint's ifb (see [`Endpoint::ifb`]) goes with its endpoint: the
/// kernel deletes the veth's qdiscs with the veth, never the ifb.
pub fn orphan_links<'a>(
    networks: &[Network],
    endpoints: &[Endpoint],
    present: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let bridges: BTreeSet<String> = networks
        .iter()
        .filter_map(|n| n.bridge())
        .map(|b| b.bridge.to_string())
        .collect();
    let veths: BTreeSet<String> = endpoints
        .iter()
        .map(|e| e.host_veth().to_string())
        .collect();
    let ifbs: BTreeSet<String> = endpoints.iter().map(|e| e.ifb().to_string()).collect();
    let vxlans: BTreeSet<String> = networks
        .iter()
        .filter_map(overlay::vxlan)
        .map(|v| v.name)
        .collect();
    present
        .into_iter()
        .filter(|name| {
            (name.starts_with(HOST_VETH_PREFIX) && !veths.contains(*name))
                || (name.starts_with(BRIDGE_PREFIX) && !bridges.contains(*name))
                || (name.starts_with(overlay::VXLAN_PREFIX) && !vxlans.contains(*name))
                || (is_ifb_name(name) && !ifbs.contains(*name))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn net(internal: bool) -> Network {
        fixtures::with_bridge(fixtures::network("n", "10.3.0.0/16"), |b| {
            b.mtu = Some(1400);
            b.internal = internal;
        })
    }

    fn sandbox() -> Sandbox {
        fixtures::sandbox("s")
    }

    fn ep(n: &Network, s: &Sandbox) -> Endpoint {
        let mut e = fixtures::endpoint(n, s, "10.3.0.7", &[], &[]);
        e.ifname = "eth1".parse().unwrap();
        e
    }

    #[test]
    fn inhibit_ipv4_leaves_the_bridge_without_the_gateway_but_not_the_containers() {
        let mut n = net(false);
        n.options
            .insert(crate::model::OPT_INHIBIT_V4.into(), "true".into());
        let s = sandbox();
        let p = endpoint(&n, &s, &ep(&n, &s)).unwrap();
        assert_eq!(p.bridge.address, None);
        assert_eq!(p.address.unwrap().to_string(), "10.3.0.7/16");
        assert_eq!(p.gateway, Some("10.3.0.1".parse().unwrap()));
        n.options
            .insert(crate::model::OPT_INHIBIT_V4.into(), "0".into());
        assert!(bridge(&n).unwrap().address.is_some());
    }

    #[test]
    fn endpoint_plan_follows_the_model() {
        let n = net(false);
        let s = sandbox();
        let e = ep(&n, &s);
        let p = endpoint(&n, &s, &e).unwrap();
        assert_eq!(p.bridge.address.unwrap().to_string(), "10.3.0.1/16");
        assert_eq!(p.bridge.mtu, Some(1400));
        assert!(p.bridge.forward);
        assert_eq!(p.address.unwrap().to_string(), "10.3.0.7/16");
        assert_eq!(p.gateway, Some("10.3.0.1".parse().unwrap()));
        assert_eq!(p.ifname, "eth1");
        assert!(p.host_veth.starts_with("nd-") && p.host_veth.len() <= 15);
        assert_eq!(p.netns, PathBuf::from("/run/netns/s"));
    }

    #[test]
    fn dual_stack_endpoints_get_both_addresses_and_routes() {
        let n = fixtures::with_ipv6(net(false), "fd00:3::/64");
        let s = sandbox();
        let mut e = ep(&n, &s);
        e.ip6 = Some("fd00:3::7".parse().unwrap());
        let p = endpoint(&n, &s, &e).unwrap();
        assert_eq!(p.bridge.address6.unwrap().to_string(), "fd00:3::1/64");
        assert_eq!(p.address6.unwrap().to_string(), "fd00:3::7/64");
        assert_eq!(p.gateway6.unwrap().to_string(), "fd00:3::1");
        let sys = bridge_sysctls(&p.bridge);
        assert!(sys.contains(&("net/ipv6/conf/all/forwarding".into(), "1")));
        assert!(sys.contains(&(format!("net/ipv6/conf/{}/accept_ra", p.bridge.name), "0")));
        // IPv4-only: no IPv6 sysctl at all.
        let v4 = endpoint(&net(false), &s, &ep(&net(false), &s)).unwrap();
        assert!(
            bridge_sysctls(&v4.bridge)
                .iter()
                .all(|(k, _)| !k.contains("ipv6"))
        );
        assert_eq!((v4.address6, v4.gateway6), (None, None));
        // Internal: the address, no route.
        let i = fixtures::with_ipv6(net(true), "fd00:3::/64");
        let p = endpoint(&i, &s, &e).unwrap();
        assert!(p.address6.is_some() && p.gateway6.is_none());
    }

    #[test]
    fn internal_networks_get_no_route_out() {
        let n = net(true);
        let s = sandbox();
        let p = endpoint(&n, &s, &ep(&n, &s)).unwrap();
        assert_eq!(p.gateway, None);
        assert!(!p.bridge.forward);
    }

    #[test]
    fn host_mode_sandboxes_have_no_endpoint_plan() {
        let n = net(false);
        let mut s = sandbox();
        s.net = SandboxNet::Host;
        assert!(endpoint(&n, &s, &ep(&n, &s)).is_none());
    }

    #[test]
    fn a_sandbox_plan_makes_and_configures_only_netds_own_namespaces() {
        let s = sandbox();
        let p = super::sandbox(&s, true).unwrap();
        assert_eq!(p.create.as_deref(), Some("s"));
        assert!(p.resolv_conf && !p.loopback);
        let mut adopted = sandbox();
        adopted.net = SandboxNet::Namespace {
            path: "/proc/7/ns/net".into(),
            owned: false,
        };
        let p = super::sandbox(&adopted, false).unwrap();
        assert_eq!(p.create, None);
        assert!(!p.resolv_conf && p.loopback);
        adopted.net = SandboxNet::Host;
        assert!(super::sandbox(&adopted, true).is_none());
    }

    #[test]
    fn the_default_route_comes_from_the_first_network_that_routes_out() {
        let s = sandbox();
        let internal = (net(true), 0);
        let out = (fixtures::network("o", "10.9.0.0/24"), 0);
        assert!(default_routes(&s, std::slice::from_ref(&internal)).is_empty());
        let (ns, gw) = default_routes(&s, &[internal.clone(), out.clone()])[0].clone();
        assert_eq!(
            (ns, gw.to_string()),
            (PathBuf::from("/run/netns/s"), "10.9.0.1".into())
        );
        // IPv6 from the first dual-stack network that routes out.
        let dual = fixtures::with_ipv6(fixtures::network("d", "10.8.0.0/24"), "fd00:8::/64");
        let gws = |nets: &[(Network, i64)]| -> Vec<String> {
            default_routes(&s, nets)
                .into_iter()
                .map(|(_, gw)| gw.to_string())
                .collect()
        };
        assert_eq!(
            gws(&[internal.clone(), out.clone(), (dual.clone(), 0)]),
            ["10.9.0.1", "fd00:8::1"]
        );
        // The highest priority wins, per family; negative ones lose to 0;
        // an internal network never gives a route however high.
        assert_eq!(
            gws(&[out.clone(), (dual.clone(), 5)]),
            ["10.8.0.1", "fd00:8::1"]
        );
        assert_eq!(
            gws(&[(out.0.clone(), -1), (dual.clone(), 0)]),
            ["10.8.0.1", "fd00:8::1"]
        );
        assert_eq!(gws(&[(internal.0.clone(), 100), out.clone()]), ["10.9.0.1"]);
        assert_eq!(
            gateways(&[internal.0, out.0, dual])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.3.0.1", "10.9.0.1", "10.8.0.1", "fd00:8::1"]
        );
    }

    #[test]
    fn orphans_are_only_ours() {
        let n = fixtures::with_bridge(net(false), |b| b.bridge = "netd-abc".parse().unwrap());
        let s = sandbox();
        let e = ep(&n, &s);
        let hv = e.host_veth().to_string();
        let ifb = e.ifb().to_string();
        let present = vec![
            "lo",
            "eth0",
            "netd-abc",
            "netd-dead",
            hv.as_str(),
            ifb.as_str(),
            "nd-000000000000",
            "ndi000000000000",
            "ndis0",
            "docker0",
        ];
        let mut o = orphan_links(&[n], &[e], present);
        o.sort();
        assert_eq!(o, vec!["nd-000000000000", "ndi000000000000", "netd-dead"]);
    }
}
