//! The firewall plan: what netd's one nftables table (`inet netd`) must hold.
//!
//! Rules exist per network (a handful each); containers and ports only add
//! elements to two maps, so attaching the 5,000th port costs what the first
//! did. The kernel adapter (`kernel::nft`) turns this into one atomic batch.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::{Endpoint, Network, Proto};

/// The per-network rules: masquerade, isolation, internal, ICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Masquerade what leaves through another interface.
    pub masquerade: bool,
    /// No traffic in or out of the bridge except to the host itself.
    pub internal: bool,
    /// Containers on this bridge may talk to each other.
    pub icc: bool,
}

/// One published port: (host address or any, protocol, host port) to
/// (container address, container port). A range is one element per port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortElement {
    pub host_ip: Option<Ipv4Addr>,
    pub proto: Proto,
    pub host_port: u16,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// The whole table's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallPlan {
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortElement>,
}

pub fn network_rules(n: &Network) -> Option<NetworkRules> {
    let b = n.bridge()?;
    Some(NetworkRules {
        bridge: b.bridge.to_string(),
        subnet: b.subnet,
        masquerade: b.masquerade && !b.internal,
        internal: b.internal,
        icc: b.icc,
    })
}

/// The map elements an endpoint's published ports need. Ports on internal
/// networks are not published: nothing may reach in.
pub fn port_elements(n: &Network, ep: &Endpoint) -> Vec<PortElement> {
    if n.bridge().is_none_or(|b| b.internal) {
        return vec![];
    }
    let mut out = Vec::new();
    for m in &ep.ports {
        let Some(h) = m.host_port else { continue };
        let host_ip = match m.host_ip {
            Some(std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => Some(ip),
            Some(std::net::IpAddr::V4(_)) | None => None,
            // Refused at parse time; never publish on all addresses by accident.
            Some(std::net::IpAddr::V6(_)) => continue,
        };
        for i in 0..h.len() {
            out.push(PortElement {
                host_ip,
                proto: m.proto,
                host_port: h.start + i as u16,
                addr: ep.ip,
                port: m.container_port.start + i as u16,
            });
        }
    }
    out
}

pub fn plan(networks: &[Network], endpoints: &[Endpoint]) -> FirewallPlan {
    let mut p = FirewallPlan {
        networks: networks.iter().filter_map(network_rules).collect(),
        ports: vec![],
    };
    for ep in endpoints {
        if let Some(n) = networks.iter().find(|n| n.id == ep.network) {
            p.ports.extend(port_elements(n, ep));
        }
    }
    p.ports.sort();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn net(internal: bool, masquerade: bool) -> Network {
        fixtures::with_bridge(fixtures::network("n", "10.3.0.0/24"), |b| {
            b.internal = internal;
            b.masquerade = masquerade;
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
                host_ip: Some(Ipv4Addr::LOCALHOST),
                proto: Proto::Udp,
                host_port: 9002,
                addr: "10.3.0.5".parse().unwrap(),
                port: 82
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
}
