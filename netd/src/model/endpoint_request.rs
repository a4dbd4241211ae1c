//! Requests to put a sandbox on a network (an endpoint) and to create a
//! sandbox, as the CLI, the API and the CNI plugin receive them, and their
//! validation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{IfName, IfSysctl, Invalid, Mac, PortMapping, cut, invalid};

/// Limits on what an endpoint may store (its record is read by every
/// DNS sync and list).
pub const MAX_ALIASES: usize = 64;
pub const MAX_PORTS: usize = 256;
/// Link-local addresses one endpoint may ask for (Docker's LinkLocalIPs).
pub const MAX_LINK_LOCAL: usize = 16;

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
fn is_link_local(ip: &IpAddr) -> bool {
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
        // Not an API field, though the struct has it.
        assert!(serde_json::from_str::<EndpointRequest>(r#"{"egress_ifb":true}"#).is_err());
    }

    #[test]
    fn in_stored_fields_are_bounded() {
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
    }
}
