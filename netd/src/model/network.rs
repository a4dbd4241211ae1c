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
    /// A bridge network on every host of the cluster, the hosts' bridges
    /// joined by VXLAN (see `crate::cluster`).
    Overlay(OverlayConfig),
    /// Docker's config-only network (`--config-only`): settings held for
    /// the networks created `--config-from` it, and nothing else: no
    /// bridge, no firewall rules, no addresses taken, nothing joins it.
    #[serde(rename = "config-only")]
    ConfigOnly(ConfigOnly),
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Bridge(_) => "bridge",
            Driver::Host => "host",
            // Docker lists a config-only network with the `null` driver.
            Driver::Null | Driver::ConfigOnly(_) => "null",
            Driver::Overlay(_) => "overlay",
        }
    }
}

/// What a config-only network holds: the IPAM settings of a create
/// request, validated but not allocated (its subnets are taken by the
/// network made from it, never by itself), so a subnet left out is picked
/// from the pool when that network is made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigOnly {
    /// False: the networks made from it are IPv6-only.
    #[serde(default = "yes")]
    pub ipv4: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<Ipv6Net>,
    /// Both families' auxiliary addresses, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, std::net::IpAddr>,
}

impl ConfigOnly {
    /// The settings of a validated create request.
    pub fn of(v: &super::ValidNetworkCreate) -> ConfigOnly {
        let v6 = v.ipv6.as_ref();
        let mut aux: BTreeMap<String, std::net::IpAddr> = v
            .aux_addresses
            .iter()
            .map(|(k, a)| (k.clone(), (*a).into()))
            .collect();
        for (k, a) in v6.into_iter().flat_map(|s| &s.aux_addresses) {
            aux.insert(k.clone(), (*a).into());
        }
        ConfigOnly {
            ipv4: v.ipv4,
            subnet: v.subnet,
            gateway: v.gateway,
            ip_range: v.ip_range,
            ipv6: v6.is_some(),
            subnet6: v6.and_then(|s| s.subnet),
            gateway6: v6.and_then(|s| s.gateway),
            ip_range6: v6.and_then(|s| s.ip_range),
            aux_addresses: aux,
        }
    }

    /// A create request for `name` with these settings, `options` and
    /// `labels` (the config-only network's), and `base`'s operator fields
    /// (driver, internal, dns): what `--config-from` makes.
    pub fn request(
        &self,
        base: &super::NetworkCreate,
        options: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> super::NetworkCreate {
        super::NetworkCreate {
            name: base.name.clone(),
            driver: base.driver.clone(),
            subnet: self.subnet.map(|v| v.to_string()),
            gateway: self.gateway.map(|v| v.to_string()),
            ip_range: self.ip_range.map(|v| v.to_string()),
            internal: base.internal,
            ipv4: (!self.ipv4).then_some(false),
            ipv6: self.ipv6,
            subnet6: self.subnet6.map(|v| v.to_string()),
            gateway6: self.gateway6.map(|v| v.to_string()),
            ip_range6: self.ip_range6.map(|v| v.to_string()),
            options: options.clone(),
            labels: labels.clone(),
            aux_addresses: self
                .aux_addresses
                .iter()
                .map(|(k, a)| (k.clone(), a.to_string()))
                .collect(),
            dns: base.dns.clone(),
            config_only: false,
            config_from: None,
        }
    }
}

/// An overlay network: its bridge settings (the same on every host: the
/// gateway is one anycast address and MAC), and its VXLAN network id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayConfig {
    pub vni: Vni,
    #[serde(flatten)]
    pub bridge: BridgeConfig,
}

/// A VXLAN network identifier: 24 bits, 0 never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = (1 << 24) - 1;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vni {
    type Error = super::Invalid;
    fn try_from(v: u32) -> Result<Vni, super::Invalid> {
        if v == 0 || v > Vni::MAX {
            return Err(super::Invalid(format!(
                "VXLAN network id {v} is outside 1..={}",
                Vni::MAX
            )));
        }
        Ok(Vni(v))
    }
}

impl From<Vni> for u32 {
    fn from(v: Vni) -> u32 {
        v.0
    }
}

impl std::fmt::Display for Vni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BridgeRecord", into = "BridgeRecord")]
pub struct BridgeConfig {
    /// The network's IPv4 side; `None` on an IPv6-only network
    /// (Docker's `--ipv4=false`). At least one of the two sides is set.
    pub ipv4: Option<Ipv4Config>,
    /// The network's IPv6 side, when it is dual-stack or IPv6-only.
    pub ipv6: Option<Ipv6Config>,
    pub bridge: IfName,
    pub mtu: Option<u32>,
    pub internal: bool,
    /// Inter-container communication on this bridge.
    pub icc: bool,
}

/// The IPv4 side of a bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Config {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic allocations come from here; static `--ip` may be anywhere in the subnet.
    pub ip_range: Option<Ipv4Net>,
    /// Masquerade traffic leaving the host from this subnet.
    pub masquerade: bool,
    /// Docker's auxiliary addresses: named addresses of the subnet that
    /// IPAM never hands out (a host or router already on the segment).
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// How a bridge network is recorded: the IPv4 fields flat, as every record
/// before IPv6-only networks has them, so old records read unchanged; an
/// IPv6-only network simply has none of them.
#[derive(Serialize, Deserialize)]
struct BridgeRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<Ipv4Addr>,
    #[serde(default)]
    ip_range: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<Ipv6Config>,
    bridge: IfName,
    mtu: Option<u32>,
    internal: bool,
    #[serde(default = "yes")]
    masquerade: bool,
    #[serde(default = "yes")]
    icc: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    aux_addresses: BTreeMap<String, Ipv4Addr>,
}

impl TryFrom<BridgeRecord> for BridgeConfig {
    type Error = String;
    fn try_from(r: BridgeRecord) -> Result<Self, String> {
        let ipv4 = match (r.subnet, r.gateway) {
            (Some(subnet), Some(gateway)) => Some(Ipv4Config {
                subnet,
                gateway,
                ip_range: r.ip_range,
                masquerade: r.masquerade,
                aux_addresses: r.aux_addresses,
            }),
            (None, None) if r.ip_range.is_none() && r.aux_addresses.is_empty() => None,
            _ => {
                return Err(format!(
                    "bridge {}: an IPv4 subnet and gateway go together",
                    r.bridge
                ));
            }
        };
        if ipv4.is_none() && r.ipv6.is_none() {
            return Err(format!(
                "bridge {}: neither an IPv4 nor an IPv6 subnet",
                r.bridge
            ));
        }
        Ok(BridgeConfig {
            ipv4,
            ipv6: r.ipv6,
            bridge: r.bridge,
            mtu: r.mtu,
            internal: r.internal,
            icc: r.icc,
        })
    }
}

impl From<BridgeConfig> for BridgeRecord {
    fn from(c: BridgeConfig) -> Self {
        let v4 = c.ipv4.as_ref();
        BridgeRecord {
            subnet: v4.map(|v| v.subnet),
            gateway: v4.map(|v| v.gateway),
            ip_range: v4.and_then(|v| v.ip_range),
            ipv6: c.ipv6,
            bridge: c.bridge,
            mtu: c.mtu,
            internal: c.internal,
            masquerade: v4.is_none_or(|v| v.masquerade),
            icc: c.icc,
            aux_addresses: v4.map(|v| v.aux_addresses.clone()).unwrap_or_default(),
        }
    }
}

impl BridgeConfig {
    /// Its subnets, IPv4 first.
    pub fn subnets(&self) -> Vec<ipnet::IpNet> {
        let v4 = self.ipv4.as_ref().map(|v| v.subnet.into());
        let v6 = self.ipv6.as_ref().map(|v| v.subnet.into());
        v4.into_iter().chain(v6).collect()
    }

    /// Its gateway addresses, IPv4 first.
    pub fn gateways(&self) -> Vec<std::net::IpAddr> {
        let v4 = self.ipv4.as_ref().map(|v| v.gateway.into());
        let v6 = self.ipv6.as_ref().map(|v| v.gateway.into());
        v4.into_iter().chain(v6).collect()
    }
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
    /// Where 127.0.0.11 forwards for its sandboxes (podman's
    /// `network create --dns`); empty: the daemon's upstreams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<std::net::IpAddr>,
    /// RFC 3339, UTC.
    pub created: String,
    /// Docker's `ConfigFrom`: the config-only network this one's settings
    /// came from, which cannot be removed while this one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<Name>,
}

impl Network {
    pub fn bridge(&self) -> Option<&BridgeConfig> {
        match &self.driver {
            Driver::Bridge(b) => Some(b),
            Driver::Overlay(o) => Some(&o.bridge),
            _ => None,
        }
    }

    /// The settings of a config-only network.
    pub fn config_only(&self) -> Option<&ConfigOnly> {
        match &self.driver {
            Driver::ConfigOnly(c) => Some(c),
            _ => None,
        }
    }

    /// Docker's refusal (403) to put a sandbox on a config-only network.
    pub fn refuse_config_only(&self) -> Option<String> {
        self.config_only().map(|_| {
            format!(
                "cannot create endpoint on configuration-only network {}: create a network with --config-from {} and use that",
                self.name, self.name
            )
        })
    }

    pub fn overlay(&self) -> Option<&OverlayConfig> {
        match &self.driver {
            Driver::Overlay(o) => Some(o),
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

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"{"driver":"bridge","subnet":"10.1.0.0/24","gateway":"10.1.0.1","ip_range":null,"bridge":"br-x","mtu":null,"internal":false,"masquerade":false,"icc":true}"#;

    #[test]
    fn records_from_before_ipv6_only_networks_read_and_write_unchanged() {
        let d: Driver = serde_json::from_str(V4).unwrap();
        let Driver::Bridge(b) = &d else {
            panic!("{d:?}")
        };
        let v4 = b.ipv4.as_ref().unwrap();
        assert_eq!(
            (v4.subnet.to_string(), v4.masquerade),
            ("10.1.0.0/24".into(), false)
        );
        assert_eq!(serde_json::to_string(&d).unwrap(), V4);
    }

    #[test]
    fn an_ipv6_only_record_has_no_ipv4_fields_and_a_broken_one_is_refused() {
        let v6 = r#"{"driver":"bridge","ipv6":{"subnet":"fd00:1::/64","gateway":"fd00:1::1"},"bridge":"br-x","mtu":null,"internal":false}"#;
        let d: Driver = serde_json::from_str(v6).unwrap();
        let Driver::Bridge(b) = &d else {
            panic!("{d:?}")
        };
        assert!(b.ipv4.is_none() && b.ipv6.is_some());
        let again = serde_json::to_string(&d).unwrap();
        assert!(
            !again.contains("subnet\":\"1") && !again.contains("gateway\":\"1"),
            "{again}"
        );
        assert_eq!(serde_json::from_str::<Driver>(&again).unwrap(), d);
        let half = V4.replace(r#""gateway":"10.1.0.1","#, "");
        let e = serde_json::from_str::<Driver>(&half)
            .unwrap_err()
            .to_string();
        assert!(e.contains("go together"), "{e}");
        let neither = r#"{"driver":"bridge","bridge":"br-x","mtu":null,"internal":false}"#;
        let e = serde_json::from_str::<Driver>(neither)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither"), "{e}");
    }
}
