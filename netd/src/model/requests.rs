//! Requests as the CLI and the API receive them, and their validation.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub use super::options::*;
use super::options::{bool_option, check_late_options, nat_mode};
use super::subnets::{parse_net, parse_net6};
use super::{IfName, IfSysctl, Invalid, Mac, Name, PortMapping, cut, invalid};

/// A request to create a network, as the CLI and the API receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// "bridge" when empty.
    #[serde(default)]
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    #[serde(default)]
    pub internal: bool,
    /// Docker's `EnableIPv4` / `--ipv4`: None is yes. `Some(false)` with
    /// `ipv6` makes an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// Dual-stack: an IPv6 subnet beside the IPv4 one (`subnet6`, or a
    /// ULA /64 from netd's pool when absent).
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Docker's `--aux-address NAME=IP` (either family): addresses of the
    /// subnet that are never handed out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
    /// podman's `--dns IP`: upstream servers of the network's sandboxes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Docker's `--config-only`: record the IPAM settings and options for
    /// networks made `--config-from` this one, and make nothing else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config_only: bool,
    /// Docker's `--config-from NAME`: take the IPAM settings, options and
    /// labels of the config-only network NAME (by name only, as Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<String>,
}

/// The IPv6 side of a validated create: the subnet may still have to be
/// picked from the ULA pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidIpv6 {
    pub subnet: Option<Ipv6Net>,
    pub gateway: Option<Ipv6Addr>,
    pub ip_range: Option<Ipv6Net>,
    /// NAT66; false in routed mode.
    pub masquerade: bool,
    pub aux_addresses: BTreeMap<String, Ipv6Addr>,
}

/// A create request after validation: everything except the subnet, which
/// may still have to be chosen from the free pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNetworkCreate {
    pub name: Name,
    /// An overlay network (across the hosts of a cluster), not a bridge.
    pub overlay: bool,
    /// False on an IPv6-only network (then `ipv6` is set and the IPv4
    /// fields are empty).
    pub ipv4: bool,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub ipv6: Option<ValidIpv6>,
    pub bridge: Option<IfName>,
    pub mtu: Option<u32>,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub dns_servers: Vec<std::net::IpAddr>,
}

fn is_v6(s: &str) -> bool {
    s.contains(':')
}

/// At most this many auxiliary addresses: they are kept with the network.
pub const MAX_AUX_ADDRESSES: usize = 64;

/// Auxiliary addresses by family, each checked against its subnet and
/// gateway once those are known.
type AuxByFamily = (BTreeMap<String, Ipv4Addr>, BTreeMap<String, Ipv6Addr>);

fn parse_aux(aux: &BTreeMap<String, String>) -> Result<AuxByFamily, Invalid> {
    if aux.len() > MAX_AUX_ADDRESSES {
        return invalid(format!(
            "too many auxiliary addresses ({}): at most {MAX_AUX_ADDRESSES}",
            aux.len()
        ));
    }
    let (mut v4, mut v6) = (BTreeMap::new(), BTreeMap::new());
    for (name, ip) in aux {
        if name.is_empty() || name.len() > MAX_LABEL_KEY {
            return invalid(format!(
                "invalid auxiliary address name {:?}: 1-{MAX_LABEL_KEY} bytes",
                cut(name)
            ));
        }
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => {
                v4.insert(name.clone(), a);
            }
            Ok(std::net::IpAddr::V6(a)) => {
                v6.insert(name.clone(), a);
            }
            Err(_) => {
                return invalid(format!(
                    "invalid auxiliary address {}={:?}: expected an IP address",
                    cut(name),
                    cut(ip)
                ));
            }
        }
    }
    Ok((v4, v6))
}

/// Refuse an auxiliary address the subnet cannot reserve: outside it, or
/// the gateway (which the bridge itself holds).
fn check_aux<A: std::fmt::Display + PartialEq + Copy>(
    aux: &BTreeMap<String, A>,
    contains: impl Fn(&A) -> bool,
    subnet: &dyn std::fmt::Display,
    gateway: A,
) -> Result<(), Invalid> {
    for (name, ip) in aux {
        if !contains(ip) {
            return invalid(format!(
                "auxiliary address {name}={ip} is outside subnet {subnet}"
            ));
        }
        if *ip == gateway {
            return invalid(format!(
                "auxiliary address {name}={ip} is the gateway of subnet {subnet}"
            ));
        }
    }
    Ok(())
}

impl NetworkCreate {
    fn validate_ipv6(&self) -> Result<Option<ValidIpv6>, Invalid> {
        let (_, aux6) = parse_aux(&self.aux_addresses)?;
        // An IPv6 value in an IPv4 field: name the flag that was missing
        // rather than fail to parse it as IPv4.
        for (what, v) in [
            ("subnet", &self.subnet),
            ("gateway", &self.gateway),
            ("ip-range", &self.ip_range),
        ] {
            if let Some(v) = v.as_deref().filter(|v| is_v6(v)) {
                return invalid(format!(
                    "{what} {v} is IPv6: give it as the IPv6 {what} of a network created with --ipv6"
                ));
            }
        }
        if !self.ipv6 {
            if let Some(v) = self
                .subnet6
                .as_ref()
                .or(self.gateway6.as_ref())
                .or(self.ip_range6.as_ref())
            {
                return invalid(format!("{v} is IPv6, but the network is not: pass --ipv6"));
            }
            if self.options.contains_key(OPT_GATEWAY_MODE_V6) {
                return invalid(format!("{OPT_GATEWAY_MODE_V6} needs --ipv6"));
            }
            if let Some((name, ip)) = aux6.iter().next() {
                return invalid(format!(
                    "auxiliary address {name}={ip} is IPv6, but the network is not: pass --ipv6"
                ));
            }
            return Ok(None);
        }
        let subnet = self
            .subnet6
            .as_deref()
            .map(|s| parse_net6("IPv6 subnet", s))
            .transpose()?;
        let gateway = self
            .gateway6
            .as_deref()
            .map(|g| {
                g.parse::<Ipv6Addr>().map_err(|_| {
                    Invalid(format!(
                        "invalid IPv6 gateway {g:?}: expected an IPv6 address"
                    ))
                })
            })
            .transpose()?;
        let ip_range = self
            .ip_range6
            .as_deref()
            .map(|s| parse_net6("IPv6 ip-range", s))
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some() || !aux6.is_empty()) {
            return invalid("an IPv6 gateway, ip-range or auxiliary address needs an IPv6 subnet");
        }
        if let (Some(net), Some(gw)) = (subnet, gateway)
            && (!net.contains(&gw) || gw == net.network())
        {
            return invalid(format!(
                "IPv6 gateway {gw} is not a usable address of subnet {net}"
            ));
        }
        if let (Some(net), Some(r)) = (subnet, ip_range)
            && !net.contains(&r)
        {
            return invalid(format!("IPv6 ip-range {r} is not inside subnet {net}"));
        }
        if let Some(net) = subnet {
            let gw = gateway.unwrap_or_else(|| crate::ipam6::default_gateway6(net));
            check_aux(&aux6, |a| net.contains(a), &net, gw)?;
        }
        let nat = nat_mode(&self.options, OPT_GATEWAY_MODE_V6)?;
        Ok(Some(ValidIpv6 {
            subnet,
            gateway,
            ip_range,
            masquerade: nat && bool_option(&self.options, OPT_MASQUERADE)? && !self.internal,
            aux_addresses: aux6,
        }))
    }
}

/// Limits on what a request may store: labels are kept with the network
/// and returned by every list, so they stay small.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 256;
pub const MAX_LABEL_VALUE: usize = 4096;
pub const MAX_ALIASES: usize = 64;
pub const MAX_PORTS: usize = 256;
/// Link-local addresses one endpoint may ask for (Docker's LinkLocalIPs).
pub const MAX_LINK_LOCAL: usize = 16;

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if labels.len() > MAX_LABELS {
        return invalid(format!(
            "too many labels ({}): at most {MAX_LABELS}",
            labels.len()
        ));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > MAX_LABEL_KEY {
            return invalid(format!(
                "invalid label key {:?}: 1-{MAX_LABEL_KEY} bytes",
                cut(k)
            ));
        }
        if v.len() > MAX_LABEL_VALUE {
            return invalid(format!(
                "label {k:?} is {} bytes long: at most {MAX_LABEL_VALUE}",
                v.len()
            ));
        }
    }
    Ok(())
}

impl NetworkCreate {
    /// What a config-only or config-from request may not carry, in
    /// Docker's words (it answers 403): a config-only network holds only a
    /// network's own settings, not operator ones; a network made from one
    /// takes all of its settings from it.
    pub fn config_refusal(&self) -> Option<String> {
        if self.config_only {
            if self.config_from.is_some() {
                return Some(
                    "a configuration network cannot depend on another configuration network".into(),
                );
            }
            if self.internal {
                return Some("configuration network can only contain network specific fields: --internal is an operator field and is not supported".into());
            }
            if !self.dns.is_empty() {
                return Some(format!(
                    "configuration network can only contain network specific fields: --dns {} is given on the network made from it",
                    self.dns.join(",")
                ));
            }
        }
        if let Some(from) = &self.config_from {
            let mut own: Vec<&str> = Vec::new();
            for (what, given) in [
                ("--subnet", self.subnet.is_some() || self.subnet6.is_some()),
                (
                    "--gateway",
                    self.gateway.is_some() || self.gateway6.is_some(),
                ),
                (
                    "--ip-range",
                    self.ip_range.is_some() || self.ip_range6.is_some(),
                ),
                ("--aux-address", !self.aux_addresses.is_empty()),
                ("--ipv6", self.ipv6),
                ("--ipv4=false", self.ipv4 == Some(false)),
                ("--label", !self.labels.is_empty()),
            ] {
                if given {
                    own.push(what);
                }
            }
            if !own.is_empty() {
                return Some(format!(
                    "user specified configurations are not supported if the network depends on a configuration network: {} given with --config-from {from}",
                    own.join(", ")
                ));
            }
            if let Some(k) = self.options.keys().next() {
                return Some(format!(
                    "network driver options are not supported if the network depends on a configuration network: option {k:?} given with --config-from {from}"
                ));
            }
        }
        None
    }

    pub fn validate(&self) -> Result<ValidNetworkCreate, Invalid> {
        let name: Name = self.name.parse()?;
        check_labels(&self.labels)?;
        let overlay = match self.driver.as_str() {
            "" | "bridge" => false,
            "overlay" => true,
            other => {
                return invalid(format!(
                    "unsupported driver {other:?}: \"bridge\" and \"overlay\" networks can be created"
                ));
            }
        };
        if overlay && self.options.contains_key(OPT_BRIDGE_NAME) {
            return invalid(format!(
                "{OPT_BRIDGE_NAME} is a bridge network's option: an overlay network names its bridge itself"
            ));
        }
        for k in self.options.keys() {
            if !KNOWN_OPTIONS.contains(&k.as_str()) {
                return invalid(format!(
                    "unknown option {k:?} (known: {})",
                    KNOWN_OPTIONS.join(", ")
                ));
            }
        }
        check_late_options(&self.options)?;
        // Every host of an overlay network has its gateway address on its
        // bridge (the containers' first hop stays on their own host), so
        // there is nothing else to hold it.
        if overlay && super::inhibit_ipv4(&self.options) {
            return invalid(format!(
                "{} is a bridge network's option: an overlay network's gateway address is on every host's bridge",
                super::OPT_INHIBIT_V4
            ));
        }
        let ipv6 = self.validate_ipv6()?;
        let ipv4 = self.ipv4.unwrap_or(true);
        if !ipv4 {
            if ipv6.is_none() {
                return invalid(
                    "a network needs IPv4 or IPv6: --ipv4=false (EnableIPv4: false) needs --ipv6",
                );
            }
            for (what, v) in [
                ("subnet", &self.subnet),
                ("gateway", &self.gateway),
                ("ip-range", &self.ip_range),
            ] {
                if let Some(v) = v {
                    return invalid(format!(
                        "IPv4 {what} {v} given for an IPv6-only network (--ipv4=false)"
                    ));
                }
            }
        }
        let subnet = self
            .subnet
            .as_deref()
            .map(|s| parse_net("subnet", s))
            .transpose()?;
        let gateway = self
            .gateway
            .as_deref()
            .map(|g| {
                g.parse::<Ipv4Addr>().map_err(|_| {
                    Invalid(format!("invalid gateway {g:?}: expected an IPv4 address"))
                })
            })
            .transpose()?;
        let ip_range = self
            .ip_range
            .as_deref()
            .map(|s| parse_net("ip-range", s))
            .transpose()?;
        let (aux, _) = parse_aux(&self.aux_addresses)?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some() || !aux.is_empty()) {
            return invalid("--gateway, --ip-range and --aux-address need --subnet");
        }
        if let (Some(net), Some(gw)) = (subnet, gateway)
            && (!net.contains(&gw) || gw == net.network() || gw == net.broadcast())
        {
            return invalid(format!(
                "gateway {gw} is not a usable address of subnet {net}"
            ));
        }
        if let (Some(net), Some(r)) = (subnet, ip_range)
            && !net.contains(&r)
        {
            return invalid(format!("ip-range {r} is not inside subnet {net}"));
        }
        if let Some(net) = subnet {
            let gw = gateway.unwrap_or_else(|| crate::ipam::default_gateway(net));
            check_aux(&aux, |a| net.contains(a), &net, gw)?;
        }
        let bridge = self
            .options
            .get(OPT_BRIDGE_NAME)
            .map(|b| b.parse::<IfName>())
            .transpose()?;
        let mtu = self
            .options
            .get(OPT_MTU)
            .map(|m| match m.parse::<u32>() {
                Ok(v) if (68..=65535).contains(&v) => Ok(v),
                _ => invalid(format!(
                    "invalid {OPT_MTU} {m:?}: expected a number from 68 to 65535"
                )),
            })
            .transpose()?;
        let dns_servers = super::parse_servers("--dns", &self.dns)?;
        if self.internal && !dns_servers.is_empty() {
            return invalid(format!(
                "--dns {}: the sandboxes of an internal network forward no names",
                self.dns.join(",")
            ));
        }
        Ok(ValidNetworkCreate {
            name,
            overlay,
            ipv4,
            subnet,
            gateway,
            ip_range,
            ipv6,
            bridge,
            mtu,
            internal: self.internal,
            masquerade: nat_mode(&self.options, OPT_GATEWAY_MODE_V4)?
                && bool_option(&self.options, OPT_MASQUERADE)?
                && !self.internal,
            icc: bool_option(&self.options, OPT_ICC)?,
            aux_addresses: aux,
            options: self.options.clone(),
            labels: self.labels.clone(),
            dns_servers,
        })
    }
}

/// A request to put a sandbox on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub ip: Option<Ipv4Addr>,
    /// A static IPv6 address, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub mac: Option<Mac>,
    /// The interface name in the sandbox (a CNI runtime's CNI_IFNAME);
    /// the lowest free `ethN` when absent.
    #[serde(default)]
    pub ifname: Option<IfName>,
    /// Docker's GwPriority: of a sandbox's networks that route out, the
    /// one with the highest priority gives the default route.
    #[serde(default, skip_serializing_if = "super::sandbox::is_zero")]
    pub gw_priority: i64,
    /// Docker's LinkLocalIPs: addresses added to the sandbox's interface on
    /// this network besides its own, IPv4 in 169.254.0.0/16 or IPv6 in
    /// fe80::/10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<IpAddr>,
    /// Docker's endpoint option `com.docker.network.endpoint.sysctls`:
    /// settings of this interface inside the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<IfSysctl>,
    /// The CNI plugin will give the endpoint an egress limit, and so an
    /// ifb (see [`super::Endpoint::egress_ifb`]). Not an API field: only the
    /// plugin makes ifbs.
    #[serde(skip)]
    pub egress_ifb: bool,
}

/// Whether `ip` is a link-local address: 169.254.0.0/16 or fe80::/10.
pub fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

impl EndpointRequest {
    /// Aliases are DNS labels: checked here so a bad one never reaches the store.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.aliases.len() > MAX_ALIASES {
            return invalid(format!(
                "too many aliases ({}): at most {MAX_ALIASES}",
                self.aliases.len()
            ));
        }
        if self.ports.len() > MAX_PORTS {
            return invalid(format!(
                "too many published ports ({}): at most {MAX_PORTS} (a range counts once)",
                self.ports.len()
            ));
        }
        for a in &self.aliases {
            let ok = !a.is_empty()
                && a.len() <= 253
                && a.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if !ok {
                let a = cut(a);
                return invalid(format!(
                    "invalid alias {a:?}: expected a DNS name (letters, digits, '-', '_', '.')"
                ));
            }
        }
        if self.link_local_ips.len() > MAX_LINK_LOCAL {
            return invalid(format!(
                "too many link-local addresses ({}): at most {MAX_LINK_LOCAL}",
                self.link_local_ips.len()
            ));
        }
        for (i, ip) in self.link_local_ips.iter().enumerate() {
            if !is_link_local(ip) {
                return invalid(format!(
                    "link-local address {ip} is not link-local: expected one in 169.254.0.0/16 or fe80::/10"
                ));
            }
            if self.link_local_ips[..i].contains(ip) {
                return invalid(format!("link-local address {ip} is given twice"));
            }
        }
        super::check_if_sysctls(&self.sysctls)?;
        Ok(())
    }
}

/// A request to create a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreate {
    pub name: String,
    /// A network name, "host" or "none"; the default network when absent.
    pub network: Option<String>,
    /// Adopt this existing namespace instead of creating one.
    pub netns: Option<String>,
    #[serde(default)]
    pub endpoint: EndpointRequest,
    /// `docker run --dns IP`: where 127.0.0.11 forwards for this sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `--dns-search DOMAIN`: its resolv.conf's search list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `--dns-option OPT`: its resolv.conf's options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<SandboxCreate>(r#"{"name":"x","netwrok":"n"}"#).is_err());
        assert!(
            serde_json::from_str::<NetworkCreate>(r#"{"name":"x","subnett":"10.0.0.0/24"}"#)
                .is_err()
        );
    }

    #[test]
    fn create_validation() {
        let mut c = NetworkCreate {
            name: "n1".into(),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        c.subnet = Some("10.1.2.3/24".into());
        assert!(c.validate().unwrap_err().0.contains("host bits"));
        c.subnet = Some("10.1.2.0/24".into());
        c.gateway = Some("10.1.3.1".into());
        assert!(c.validate().unwrap_err().0.contains("gateway"));
        c.gateway = None;
        c.ip_range = Some("10.1.0.0/16".into());
        assert!(c.validate().unwrap_err().0.contains("ip-range"));
        c.ip_range = None;
        c.options.insert("foo".into(), "bar".into());
        assert!(c.validate().unwrap_err().0.contains("\"foo\""));
        c.options.clear();
        c.options.insert(OPT_MTU.into(), "1400".into());
        assert_eq!(c.validate().unwrap().mtu, Some(1400));
        c.options.insert(OPT_ICC.into(), "false".into());
        assert!(!c.validate().unwrap().icc);
        c.options.insert(OPT_MASQUERADE.into(), "maybe".into());
        assert!(c.validate().unwrap_err().0.contains("maybe"));
        c.options.remove(OPT_MASQUERADE);
        c.driver = "macvlan".into();
        assert!(c.validate().unwrap_err().0.contains("macvlan"));
        c.driver = "overlay".into();
        assert!(c.validate().unwrap().overlay);
        c.options.insert(OPT_BRIDGE_NAME.into(), "br0".into());
        assert!(c.validate().unwrap_err().0.contains("overlay"));
        c.options.clear();
        c.options
            .insert(super::super::OPT_INHIBIT_V4.into(), "true".into());
        let e = c.validate().unwrap_err().0;
        assert!(e.contains("inhibit_ipv4") && e.contains("overlay"), "{e}");
        c.options
            .insert(super::super::OPT_INHIBIT_V4.into(), "false".into());
        assert!(c.validate().unwrap().overlay);
    }

    #[test]
    fn ipv6_sides_are_validated_naming_the_value() {
        let base = NetworkCreate {
            name: "n".into(),
            ipv6: true,
            subnet6: Some("fd00:1::/64".into()),
            ..Default::default()
        };
        let v = base.validate().unwrap().ipv6.unwrap();
        assert_eq!(v.subnet.unwrap().to_string(), "fd00:1::/64");
        assert!(v.masquerade);
        let err = |f: &dyn Fn(&mut NetworkCreate)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        let e = err(&|c| c.ipv6 = false);
        assert!(e.contains("fd00:1::/64") && e.contains("--ipv6"), "{e}");
        let e = err(&|c| c.subnet = Some("fd00:2::/64".into()));
        assert!(e.contains("fd00:2::/64") && e.contains("IPv6"), "{e}");
        let e = err(&|c| c.subnet6 = Some("fd00:1::/121".into()));
        assert!(e.contains("/121") && e.contains("/120"), "{e}");
        let e = err(&|c| c.subnet6 = Some("ff02::/64".into()));
        assert!(e.contains("multicast"), "{e}");
        let e = err(&|c| c.subnet6 = Some("::ffff:10.0.0.0/120".into()));
        assert!(e.contains("IPv4-mapped"), "{e}");
        let e = err(&|c| c.subnet6 = Some("10.0.0.0/24".into()));
        assert!(e.contains("IPv6 CIDR"), "{e}");
        let e = err(&|c| c.gateway6 = Some("fd00:1::".into()));
        assert!(e.contains("fd00:1::") && e.contains("usable"), "{e}");
        let e = err(&|c| c.ip_range6 = Some("fd00:2::/80".into()));
        assert!(e.contains("not inside"), "{e}");
        let e = err(&|c| {
            c.subnet6 = None;
            c.gateway6 = Some("fd00:1::1".into());
        });
        assert!(e.contains("needs an IPv6 subnet"), "{e}");
        let mut routed = base.clone();
        routed
            .options
            .insert(OPT_GATEWAY_MODE_V6.into(), "routed".into());
        assert!(!routed.validate().unwrap().ipv6.unwrap().masquerade);
        let mut internal = base.clone();
        internal.internal = true;
        assert!(!internal.validate().unwrap().ipv6.unwrap().masquerade);
        let mut v4only = NetworkCreate {
            name: "n".into(),
            ..Default::default()
        };
        v4only
            .options
            .insert(OPT_GATEWAY_MODE_V6.into(), "nat".into());
        assert!(v4only.validate().unwrap_err().0.contains("needs --ipv6"));
    }

    #[test]
    fn in_stored_fields_are_bounded() {
        let mut c = NetworkCreate {
            name: "n".into(),
            ..Default::default()
        };
        c.labels
            .insert("big".into(), "x".repeat(MAX_LABEL_VALUE + 1));
        assert!(c.validate().unwrap_err().0.contains("\"big\""));
        c.labels.clear();
        c.labels.insert("k".repeat(MAX_LABEL_KEY + 1), "v".into());
        let e = c.validate().unwrap_err().0;
        assert!(e.contains("label key") && e.len() < 200, "{e}");
        c.labels = (0..=MAX_LABELS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(c.validate().unwrap_err().0.contains("too many labels"));
        c.labels = (0..MAX_LABELS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(c.validate().is_ok());

        let mut e = EndpointRequest {
            aliases: (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect(),
            ..Default::default()
        };
        assert!(e.validate().unwrap_err().0.contains("too many aliases"));
        e.aliases.truncate(MAX_ALIASES);
        assert!(e.validate().is_ok());
        e.ports = vec!["80".parse().unwrap(); MAX_PORTS + 1];
        assert!(
            e.validate()
                .unwrap_err()
                .0
                .contains("too many published ports")
        );
        e.ports.clear();
        let ll = |ips: &[&str]| EndpointRequest {
            link_local_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            ..Default::default()
        };
        assert!(
            ll(&["169.254.10.5", "fe80::5", "febf::1"])
                .validate()
                .is_ok()
        );
        for (ips, want) in [
            (
                &["10.0.0.5"][..],
                "link-local address 10.0.0.5 is not link-local",
            ),
            (&["169.255.0.1"], "169.255.0.1 is not"),
            (&["fec0::1"], "fec0::1 is not"),
            (&["::1"], "::1 is not"),
            (
                &["169.254.1.1", "169.254.1.1"],
                "169.254.1.1 is given twice",
            ),
        ] {
            let err = ll(ips).validate().unwrap_err().0;
            assert!(err.contains(want), "{ips:?}: {err}");
        }
        let many: Vec<String> = (0..=MAX_LINK_LOCAL)
            .map(|i| format!("169.254.0.{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            ll(&many)
                .validate()
                .unwrap_err()
                .0
                .contains("too many link-local")
        );
        assert!(ll(&many[..MAX_LINK_LOCAL]).validate().is_ok());
        // Absent in JSON is none; none is not written.
        let r: EndpointRequest = serde_json::from_str("{}").unwrap();
        assert!(r.link_local_ips.is_empty());
        assert!(!serde_json::to_string(&r).unwrap().contains("link_local"));

        let huge = "x".repeat(100_000);
        let n = huge.parse::<Name>().unwrap_err().0;
        assert!(
            n.len() < 300,
            "a long name is echoed whole: {} bytes",
            n.len()
        );
    }
}
