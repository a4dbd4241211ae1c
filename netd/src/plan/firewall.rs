//! The firewall plan: what netd's one nftables table (`inet netd`) must hold.
//!
//! Rules exist per network (a handful each); containers and ports only add
//! elements to maps (one pair of maps per address family), so attaching the
//! 5,000th port costs what the first did. The kernel adapter (`kernel::nft`)
//! turns this into one atomic batch.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::model::{Endpoint, Network, OPT_GATEWAY_MODE_V4, OPT_GATEWAY_MODE_V6, Proto};

/// The per-network rules: masquerade, isolation, internal, ICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    /// The IPv4 subnet; None on an IPv6-only network.
    pub subnet: Option<Ipv4Net>,
    /// The IPv6 subnet of a dual-stack or IPv6-only network.
    pub subnet6: Option<Ipv6Net>,
    /// Masquerade what leaves through another interface.
    pub masquerade: bool,
    /// NAT66: masquerade IPv6 that leaves through another interface.
    pub masquerade6: bool,
    /// Routed IPv4 (`gateway_mode_ipv4=routed`): containers keep their own
    /// addresses, and their published container ports (and ICMP) are
    /// reachable at those addresses from outside the host.
    pub routed4: bool,
    /// Routed IPv6 (`gateway_mode_ipv6=routed`), the same for IPv6.
    pub routed6: bool,
    /// No traffic in or out of the bridge except to the host itself.
    pub internal: bool,
    /// Containers on this bridge may talk to each other.
    pub icc: bool,
    /// `trusted_host_interfaces`: packets arriving on these host interfaces
    /// reach the containers' published ports at the containers' own
    /// addresses (Docker's direct routing), in NAT mode too.
    pub trusted: Vec<String>,
}

/// Routed IPv4 on a network with IPv4 that is not internal. Read from the
/// option rather than from the missing masquerade:
/// `enable_ip_masquerade=false` turns masquerade off too, but opens
/// nothing, as in Docker.
fn routed4(n: &Network) -> bool {
    n.bridge().is_some_and(|b| b.ipv4.is_some() && !b.internal)
        && n.options.get(OPT_GATEWAY_MODE_V4).map(String::as_str) == Some("routed")
}

/// Routed IPv6 on a dual-stack network that is not internal (see
/// [`routed4`]).
fn routed6(n: &Network) -> bool {
    n.bridge().is_some_and(|b| b.ipv6.is_some() && !b.internal)
        && n.options.get(OPT_GATEWAY_MODE_V6).map(String::as_str) == Some("routed")
}

/// One published port: (host address or any, protocol, host port) to
/// (container address, container port). A range is one element per port,
/// and a port published on every address of a dual-stack network one
/// element per family. `host_ip`, when given, is of `addr`'s family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortElement {
    /// None: every local address of `addr`'s family.
    pub host_ip: Option<IpAddr>,
    pub proto: Proto,
    pub host_port: u16,
    pub addr: IpAddr,
    pub port: u16,
    /// On a network routed in `addr`'s family: the container port is also
    /// reachable directly at `addr` from outside (Docker's routed gateway
    /// mode).
    pub direct: bool,
    /// The network has trusted host interfaces: the container port is
    /// reachable directly at `addr` from those.
    pub trusted: bool,
}

/// The whole table's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallPlan {
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortElement>,
    /// Accept rules for netd's bridges in other tables' forward chains.
    pub forward: Vec<super::forward::ForwardAccept>,
}

pub fn network_rules(n: &Network) -> Option<NetworkRules> {
    let b = n.bridge()?;
    Some(NetworkRules {
        bridge: b.bridge.to_string(),
        subnet: b.ipv4.as_ref().map(|v4| v4.subnet),
        subnet6: b.ipv6.as_ref().map(|v6| v6.subnet),
        masquerade: b.ipv4.as_ref().is_some_and(|v4| v4.masquerade) && !b.internal,
        masquerade6: b.ipv6.as_ref().is_some_and(|v6| v6.masquerade) && !b.internal,
        routed4: routed4(n),
        routed6: routed6(n),
        internal: b.internal,
        icc: b.icc,
        trusted: crate::model::trusted_interfaces(&n.options),
    })
}

/// Why `ep`'s ports cannot be published on `n`: a host address of a family
/// the network does not have (there is no container address to send it
/// to). Checked before anything is recorded.
pub fn unpublishable(n: &Network, ports: &[crate::model::PortMapping]) -> Option<String> {
    let b = n.bridge()?;
    ports.iter().find_map(|m| match m.host_ip {
        Some(IpAddr::V6(ip)) if b.ipv6.is_none() => Some(format!(
            "cannot publish {m} on [{ip}]: network {} has no IPv6 subnet (create it with --ipv6)",
            n.name
        )),
        Some(IpAddr::V4(ip)) if b.ipv4.is_none() => Some(format!(
            "cannot publish {m} on {ip}: network {} is IPv6-only (publish on an IPv6 address or on all addresses)",
            n.name
        )),
        _ => None,
    })
}

/// The map elements an endpoint's published ports need. Ports on internal
/// networks are not published: nothing may reach in. Without a host
/// address a port is published on both families of a dual-stack network;
/// `0.0.0.0` and `[::]` mean every address of their own family only, as
/// in Docker.
pub fn port_elements(n: &Network, ep: &Endpoint) -> Vec<PortElement> {
    let Some(b) = n.bridge().filter(|b| !b.internal) else {
        return vec![];
    };
    let ip6 = ep.ip6.filter(|_| b.ipv6.is_some());
    let (direct4, direct6) = (routed4(n), routed6(n));
    let trusted = !crate::model::trusted_interfaces(&n.options).is_empty();
    let mut out = Vec::new();
    for m in &ep.ports {
        let Some(h) = m.host_port else { continue };
        let v4 = ep.ip.filter(|_| b.ipv4.is_some()).map(IpAddr::V4);
        let v6 = ip6.map(IpAddr::V6);
        // An address of a family the network lacks is refused before it is
        // recorded (`unpublishable`).
        let targets: Vec<(Option<IpAddr>, IpAddr)> = match m.host_ip {
            None => v4.into_iter().chain(v6).map(|a| (None, a)).collect(),
            Some(ip) if ip.is_unspecified() && ip.is_ipv4() => {
                v4.map(|a| (None, a)).into_iter().collect()
            }
            Some(ip) if ip.is_ipv4() => v4.map(|a| (Some(ip), a)).into_iter().collect(),
            Some(ip) if ip.is_unspecified() => v6.map(|a| (None, a)).into_iter().collect(),
            Some(ip) => v6.map(|a| (Some(ip), a)).into_iter().collect(),
        };
        for (host_ip, addr) in targets {
            for i in 0..h.len() {
                out.push(PortElement {
                    host_ip,
                    proto: m.proto,
                    host_port: h.start + i as u16,
                    addr,
                    port: m.container_port.start + i as u16,
                    direct: if addr.is_ipv6() { direct6 } else { direct4 },
                    trusted,
                });
            }
        }
    }
    out
}

/// A port on `[::1]`: the kernel cannot DNAT it (the reply is turned back
/// into `::1` on the bridge, and dropped: IPv6 has no `route_localnet`), so
/// the daemon's userland proxy serves it and it gets no map element.
pub fn proxied(e: &PortElement) -> bool {
    e.host_ip == Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
}

/// The elements of an endpoint that go into the nftables maps: all but
/// the [`proxied`] ones.
pub fn nat_elements(n: &Network, ep: &Endpoint) -> Vec<PortElement> {
    let mut els = port_elements(n, ep);
    els.retain(|e| !proxied(e));
    els
}

pub fn plan(networks: &[Network], endpoints: &[Endpoint]) -> FirewallPlan {
    let mut p = FirewallPlan {
        networks: networks.iter().filter_map(network_rules).collect(),
        ports: vec![],
        forward: super::forward::plan(networks),
    };
    for ep in endpoints {
        if let Some(n) = networks.iter().find(|n| n.id == ep.network) {
            p.ports.extend(nat_elements(n, ep));
        }
    }
    p.ports.sort();
    p
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::*;

    fn net(internal: bool, masquerade: bool) -> Network {
        fixtures::with_bridge(fixtures::network("n", "10.3.0.0/24"), |b| {
            b.internal = internal;
            b.ipv4.as_mut().unwrap().masquerade = masquerade;
            b.icc = false;
        })
    }

    fn ep(n: &Network, ports: &[&str]) -> Endpoint {
        fixtures::endpoint(n, &fixtures::sandbox("s"), "10.3.0.5", &[], ports)
    }

    #[test]
    fn ranges_become_one_element_per_port() {
        let n = net(false, true);
        let e = ep(
            &n,
            &[
                "127.0.0.1:9000-9002:80-82/udp",
                "8080:80",
                "0.0.0.0:53:53/sctp",
            ],
        );
        let els = port_elements(&n, &e);
        assert_eq!(els.len(), 5);
        assert_eq!(
            els[2],
            PortElement {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                proto: Proto::Udp,
                host_port: 9002,
                addr: "10.3.0.5".parse().unwrap(),
                port: 82,
                direct: false,
                trusted: false,
            }
        );
        assert_eq!(els[3].host_ip, None);
        assert_eq!(els[4].host_ip, None, "0.0.0.0 means every address");
    }

    #[test]
    fn unresolved_ports_and_internal_networks_publish_nothing() {
        let n = net(false, true);
        assert!(port_elements(&n, &ep(&n, &["80"])).is_empty());
        let n = net(true, true);
        assert!(port_elements(&n, &ep(&n, &["8080:80"])).is_empty());
    }

    #[test]
    fn rules_follow_options() {
        let n = net(true, true);
        let r = network_rules(&n).unwrap();
        assert!(r.internal && !r.masquerade && !r.icc);
        let n = net(false, false);
        assert!(!network_rules(&n).unwrap().masquerade);
        let mut host = n.clone();
        host.driver = Driver::Host;
        assert!(network_rules(&host).is_none());
        let p = plan(&[n.clone(), host], &[ep(&n, &["1:1", "2:2"])]);
        assert_eq!(p.networks.len(), 1);
        assert_eq!(p.ports.len(), 2);
    }

    fn dual(routed: bool) -> (Network, Endpoint) {
        let mut n =
            fixtures::with_bridge(fixtures::with_ipv6(net(false, true), "fd00:3::/64"), |b| {
                if let Some(v6) = &mut b.ipv6 {
                    v6.masquerade = !routed;
                }
            });
        if routed {
            n.options
                .insert(OPT_GATEWAY_MODE_V6.into(), "routed".into());
        }
        let mut e = ep(
            &n,
            &[
                "8080:80",
                "0.0.0.0:81:81",
                "[::]:82:82",
                "[2001:db8::2]:83:83",
                "127.0.0.1:84:84",
                "[2001:db8::1]:85-86:85-86/udp",
            ],
        );
        e.ip6 = Some("fd00:3::5".parse().unwrap());
        (n, e)
    }

    #[test]
    fn dual_stack_ports_publish_on_each_family_they_name() {
        let (n, e) = dual(false);
        let els = port_elements(&n, &e);
        let v4: IpAddr = "10.3.0.5".parse().unwrap();
        let v6: IpAddr = "fd00:3::5".parse().unwrap();
        let got: Vec<(Option<String>, u16, IpAddr)> = els
            .iter()
            .map(|e| (e.host_ip.map(|i| i.to_string()), e.host_port, e.addr))
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                (None, 8080, v4),
                (None, 8080, v6),
                (None, 81, v4),
                (None, 82, v6),
                (s("2001:db8::2"), 83, v6),
                (s("127.0.0.1"), 84, v4),
                (s("2001:db8::1"), 85, v6),
                (s("2001:db8::1"), 86, v6),
            ]
        );
        assert!(els.iter().all(|e| !e.direct), "NAT66: nothing direct");
        assert_eq!(unpublishable(&n, &e.ports), None);
        let r = network_rules(&n).unwrap();
        assert!(r.masquerade6 && !r.routed6);
        assert_eq!(r.subnet6.unwrap().to_string(), "fd00:3::/64");
    }

    #[test]
    fn routed_mode_marks_ipv6_ports_direct_and_has_no_nat66() {
        let (n, e) = dual(true);
        let els = port_elements(&n, &e);
        assert!(els.iter().all(|e| e.direct == e.addr.is_ipv6()));
        let r = network_rules(&n).unwrap();
        assert!(r.masquerade && !r.masquerade6 && r.routed6);
        // Internal: neither NAT66 nor routing.
        let i = fixtures::with_bridge(n, |b| b.internal = true);
        let r = network_rules(&i).unwrap();
        assert!(!r.masquerade6 && !r.routed6);
        // NAT66 turned off by enable_ip_masquerade=false opens nothing.
        let (mut n, e) = dual(true);
        n.options.clear();
        assert!(!network_rules(&n).unwrap().routed6);
        assert!(port_elements(&n, &e).iter().all(|e| !e.direct));
    }

    #[test]
    fn routed_ipv4_marks_ipv4_ports_direct_only() {
        let (mut n, e) = dual(false);
        n.options
            .insert(OPT_GATEWAY_MODE_V4.into(), "routed".into());
        let els = port_elements(&n, &e);
        assert!(els.iter().any(|e| e.addr.is_ipv4()));
        assert!(els.iter().all(|e| e.direct == e.addr.is_ipv4()), "{els:?}");
        let r = network_rules(&n).unwrap();
        assert!(r.routed4 && !r.routed6);
        // Internal: nothing is reached from outside.
        let i = fixtures::with_bridge(n.clone(), |b| b.internal = true);
        assert!(!network_rules(&i).unwrap().routed4);
        // Both families routed.
        n.options
            .insert(OPT_GATEWAY_MODE_V6.into(), "routed".into());
        assert!(port_elements(&n, &e).iter().all(|e| e.direct));
        // Masquerade off without routed mode opens nothing.
        let (mut n, e) = dual(false);
        n = fixtures::with_bridge(n, |b| {
            if let Some(v4) = &mut b.ipv4 {
                v4.masquerade = false;
            }
        });
        assert!(!network_rules(&n).unwrap().routed4);
        assert!(port_elements(&n, &e).iter().all(|e| !e.direct));
    }

    #[test]
    fn loopback6_ports_are_proxied_not_dnated() {
        let (n, mut e) = dual(false);
        e.ports = ["[::1]:8080:80", "[::1]:53:53/udp", "127.0.0.1:8080:80"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let all = port_elements(&n, &e);
        let proxied: Vec<_> = all.iter().filter(|e| proxied(e)).collect();
        assert_eq!(proxied.len(), 2);
        assert!(
            proxied
                .iter()
                .all(|p| p.addr == "fd00:3::5".parse::<IpAddr>().unwrap())
        );
        let nat = nat_elements(&n, &e);
        assert_eq!(nat.len(), 1);
        assert_eq!(nat[0].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(plan(&[n], &[e]).ports, nat);
        // No IPv6 subnet, no container address to forward to: refused.
        let v4 = net(false, true);
        let why = unpublishable(&v4, &["[::1]:8080:80".parse().unwrap()]).unwrap();
        assert!(why.contains("[::1]") && why.contains("no IPv6"), "{why}");
    }

    #[test]
    fn ipv6_host_addresses_need_an_ipv6_network() {
        let n = net(false, true);
        let e = ep(&n, &["8080:80", "[2001:db8::1]:8081:80"]);
        let why = unpublishable(&n, &e.ports).unwrap();
        assert!(
            why.contains("[2001:db8::1]") && why.contains("no IPv6"),
            "{why}"
        );
        // Every address on an IPv4-only network is every IPv4 address.
        let e = ep(&n, &["8080:80"]);
        assert_eq!(port_elements(&n, &e).len(), 1);
        assert_eq!(network_rules(&n).unwrap().subnet6, None);
    }
}
