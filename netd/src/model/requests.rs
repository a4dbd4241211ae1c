//! Requests as the CLI and the API receive them, and their validation.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{IfName, Invalid, Mac, Name, PortMapping, cut, invalid};

/// Option keys accepted on `network create`.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const KNOWN_OPTIONS: &[&str] = &[OPT_BRIDGE_NAME, OPT_MTU, OPT_MASQUERADE, OPT_ICC];

fn bool_option(options: &BTreeMap<String, String>, key: &str) -> Result<bool, Invalid> {
    match options.get(key).map(String::as_str) {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => invalid(format!("invalid {key} {v:?}: expected true or false")),
    }
}

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
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A create request after validation: everything except the subnet, which
/// may still have to be chosen from the free pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNetworkCreate {
    pub name: Name,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub bridge: Option<IfName>,
    pub mtu: Option<u32>,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

fn parse_net(what: &str, s: &str) -> Result<Ipv4Net, Invalid> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Invalid(format!(
            "invalid {what} {s:?}: expected an IPv4 CIDR such as 10.1.2.0/24"
        ))
    })?;
    if net.network() != net.addr() {
        return invalid(format!(
            "invalid {what} {s:?}: host bits are set (did you mean {}?)",
            net.trunc()
        ));
    }
    if net.prefix_len() > 30 {
        return invalid(format!(
            "invalid {what} {s:?}: a prefix longer than /30 leaves no room for sandboxes"
        ));
    }
    if let Some((range, why)) = special_range(&net) {
        return invalid(format!(
            "invalid {what} {s:?}: it overlaps {range}, {why}, which cannot be a container network"
        ));
    }
    Ok(net)
}

/// IPv4 ranges that can never be a bridge subnet: the kernel either refuses
/// them (multicast gives EINVAL) or treats them specially (loopback is
/// martian on a bridge, 0/8 and 240/4 are not routable, link-local is the
/// host's own). Returned with a word on why, for the message.
const SPECIAL_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (RFC 1122)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved (RFC 1112) and broadcast"),
];

fn special_range(net: &Ipv4Net) -> Option<(Ipv4Net, &'static str)> {
    SPECIAL_RANGES.iter().find_map(|(a, len, why)| {
        let r = Ipv4Net::new(Ipv4Addr::from(*a), *len).ok()?;
        (r.contains(&net.network()) || net.contains(&r.network())).then_some((r, *why))
    })
}

/// Limits on what a request may store: labels are kept with the network
/// and returned by every list, so they stay small.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 256;
pub const MAX_LABEL_VALUE: usize = 4096;
pub const MAX_ALIASES: usize = 64;
pub const MAX_PORTS: usize = 256;

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
    pub fn validate(&self) -> Result<ValidNetworkCreate, Invalid> {
        let name: Name = self.name.parse()?;
        check_labels(&self.labels)?;
        match self.driver.as_str() {
            "" | "bridge" => {}
            other => {
                return invalid(format!(
                    "unsupported driver {other:?}: only \"bridge\" networks can be created"
                ));
            }
        }
        for k in self.options.keys() {
            if !KNOWN_OPTIONS.contains(&k.as_str()) {
                return invalid(format!(
                    "unknown option {k:?} (known: {})",
                    KNOWN_OPTIONS.join(", ")
                ));
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
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
            return invalid("--gateway and --ip-range need --subnet");
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
        Ok(ValidNetworkCreate {
            name,
            subnet,
            gateway,
            ip_range,
            bridge,
            mtu,
            internal: self.internal,
            masquerade: bool_option(&self.options, OPT_MASQUERADE)? && !self.internal,
            icc: bool_option(&self.options, OPT_ICC)?,
            options: self.options.clone(),
            labels: self.labels.clone(),
        })
    }
}

/// A request to put a sandbox on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub mac: Option<Mac>,
    /// The interface name in the sandbox (a CNI runtime's CNI_IFNAME);
    /// the lowest free `ethN` when absent.
    #[serde(default)]
    pub ifname: Option<IfName>,
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
        c.driver = "overlay".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn in_special_subnets_are_refused_naming_the_value() {
        for (subnet, word) in [
            ("127.0.0.0/8", "loopback"),
            ("127.5.0.0/16", "loopback"),
            ("0.0.0.0/8", "this network"),
            ("169.254.0.0/16", "link-local"),
            ("169.254.3.0/24", "link-local"),
            ("224.0.0.0/4", "multicast"),
            ("239.1.2.0/24", "multicast"),
            ("240.0.0.0/4", "reserved"),
            ("255.255.255.0/24", "reserved"),
            // Wider than a special range and containing it.
            ("128.0.0.0/1", "link-local"),
            ("192.0.0.0/2", "multicast"),
            ("0.0.0.0/1", "this network"),
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(subnet.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().0;
            assert!(
                e.contains(subnet) && e.contains(word),
                "{subnet}: {e:?} lacks the value or {word:?}"
            );
        }
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.1.0/24",
            "1.0.0.0/8",
            "223.255.255.0/24",
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(ok.into()),
                ..Default::default()
            };
            assert!(c.validate().is_ok(), "{ok} refused");
        }
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
        let huge = "x".repeat(100_000);
        let n = huge.parse::<Name>().unwrap_err().0;
        assert!(
            n.len() < 300,
            "a long name is echoed whole: {} bytes",
            n.len()
        );
    }
}
