//! A network as stored: its driver and the bridge settings.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::{Id, IfName, Name};

/// What a network is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge with a subnet; sandboxes get a veth into it.
    Bridge(BridgeConfig),
    /// Sandboxes share the host's network namespace.
    Host,
    /// Sandboxes get only `lo`.
    Null,
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Bridge(_) => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeConfig {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic allocations come from here; static `--ip` may be anywhere in the subnet.
    pub ip_range: Option<Ipv4Net>,
    /// The network's IPv6 side, when it is dual-stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
    pub bridge: IfName,
    pub mtu: Option<u32>,
    pub internal: bool,
    /// Masquerade traffic leaving the host from this subnet.
    #[serde(default = "yes")]
    pub masquerade: bool,
    /// Inter-container communication on this bridge.
    #[serde(default = "yes")]
    pub icc: bool,
    /// Docker's auxiliary addresses: named addresses of the subnet that
    /// IPAM never hands out (a host or router already on the segment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// The IPv6 side of a dual-stack bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Config {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    /// Dynamic allocations come from here; static `--ip6` may be anywhere in the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv6Net>,
    /// NAT66 (masquerade) what leaves the host, as Docker and netavark do
    /// by default; false is routed mode: the subnet is reachable as is and
    /// the operator routes it to this host.
    #[serde(default = "yes")]
    pub masquerade: bool,
    /// Named IPv6 addresses IPAM never hands out, as on the IPv4 side.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, Ipv6Addr>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: Id,
    pub name: Name,
    pub driver: Driver,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl Network {
    pub fn bridge(&self) -> Option<&BridgeConfig> {
        match &self.driver {
            Driver::Bridge(b) => Some(b),
            _ => None,
        }
    }

    /// Docker's `host_binding_ipv4`: the host address of published ports
    /// given without one (validated at create). `0.0.0.0` is the default,
    /// every address, so it is no binding at all.
    pub fn default_host_ip(&self) -> Option<Ipv4Addr> {
        self.options
            .get(super::OPT_HOST_BINDING_V4)
            .and_then(|v| v.parse::<Ipv4Addr>().ok())
            .filter(|a| !a.is_unspecified())
    }

    /// Docker's `container_iface_prefix`: sandbox interfaces on this
    /// network are named PREFIX0, PREFIX1, ... (validated at create).
    pub fn iface_prefix(&self) -> &str {
        self.options
            .get(super::OPT_IFACE_PREFIX)
            .map_or("eth", String::as_str)
    }

    /// The three networks every installation has, like Docker's.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
}
