//! Model values for other modules' tests.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;

/// A bridge network named `name` on `subnet`, gateway .1.
pub fn network(name: &str, subnet: &str) -> Network {
    let subnet: Ipv4Net = subnet.parse().expect("fixture subnet");
    Network {
        id: Id::random(),
        name: name.parse().expect("fixture name"),
        driver: Driver::Bridge(BridgeConfig {
            ipv4: Some(Ipv4Config {
                subnet,
                gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
                ip_range: None,
                masquerade: true,
                aux_addresses: BTreeMap::new(),
            }),
            ipv6: None,
            bridge: format!("br-{}", &name[..name.len().min(10)])
                .parse()
                .expect("fixture bridge"),
            mtu: None,
            internal: false,
            icc: true,
        }),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        dns_servers: Vec::new(),
        created: now_rfc3339(),
        config_from: None,
    }
}

/// Change a fixture network's bridge settings.
pub fn with_bridge(mut n: Network, f: impl FnOnce(&mut BridgeConfig)) -> Network {
    if let Driver::Bridge(b) = &mut n.driver {
        f(b);
    }
    n
}

/// A sandbox with its own namespace at /run/netns/NAME.
pub fn sandbox(name: &str) -> Sandbox {
    Sandbox {
        id: Id::random(),
        name: name.parse().expect("fixture name"),
        net: SandboxNet::Namespace {
            path: format!("/run/netns/{name}"),
            owned: true,
        },
        isolated: false,
        dns: Default::default(),
        created: now_rfc3339(),
    }
}

/// `sandbox` on `network` at `ip` as eth0, with aliases and publish specs.
pub fn endpoint(
    network: &Network,
    sandbox: &Sandbox,
    ip: &str,
    aliases: &[&str],
    ports: &[&str],
) -> Endpoint {
    let ip: Ipv4Addr = ip.parse().expect("fixture ip");
    Endpoint {
        id: Id::random(),
        network: network.id.clone(),
        sandbox: sandbox.id.clone(),
        ifname: "eth0".parse().expect("fixture ifname"),
        ip: Some(ip),
        ip6: None,
        mac: Mac::for_ip(ip),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ports: ports
            .iter()
            .map(|p| p.parse().expect("fixture publish spec"))
            .collect(),
        gw_priority: 0,
        link_local_ips: Vec::new(),
        sysctls: Vec::new(),
        egress_ifb: false,
    }
}

/// Make a fixture network dual-stack on `subnet6`, gateway ::1.
pub fn with_ipv6(n: Network, subnet6: &str) -> Network {
    let subnet: ipnet::Ipv6Net = subnet6.parse().expect("fixture subnet6");
    with_bridge(n, |b| {
        b.ipv6 = Some(Ipv6Config {
            subnet,
            gateway: crate::ipam6::default_gateway6(subnet),
            ip_range: None,
            masquerade: true,
            aux_addresses: BTreeMap::new(),
        })
    })
}
