//! Requests to create a network, as the CLI and the API receive them, and
//! their validation (the IPv6 side and aux addresses in `network_v6`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::network_v6::{ValidIpv6, check_aux, parse_aux};
pub use super::options::*;
use super::options::{bool_option, check_late_options, nat_mode};
use super::subnets::parse_net;
use super::{IfName, Invalid, Name, cut, invalid};

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

/// Limits on what a request may store: labels are kept with the network
/// and returned by every list, so they stay small.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 256;
pub const MAX_LABEL_VALUE: usize = 4096;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields() {
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

        let huge = "x".repeat(100_000);
        let n = huge.parse::<Name>().unwrap_err().0;
        assert!(
            n.len() < 300,
            "a long name is echoed whole: {} bytes",
            n.len()
        );
    }
}
