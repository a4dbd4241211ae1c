//! Sandboxes and their endpoints on networks.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{
    HOST_VETH_PREFIX, IFB_PREFIX, Id, IfName, Invalid, Name, PortMapping, RETIRED_PREFIX, Resolver,
    invalid,
};

/// How a sandbox gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum SandboxNet {
    /// Its own namespace at `path`; `owned` when netd created it (and so removes it).
    Namespace { path: String, owned: bool },
    /// The host's namespace: nothing is created.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: Id,
    pub name: Name,
    pub net: SandboxNet,
    /// Created on `--network none`: the sandbox may never join a network.
    #[serde(default)]
    pub isolated: bool,
    /// Its own resolver settings (`--dns`, `--dns-search`, `--dns-option`).
    #[serde(default, skip_serializing_if = "Resolver::is_empty")]
    pub dns: Resolver,
    pub created: String,
}

impl Sandbox {
    pub fn netns_path(&self) -> Option<&str> {
        match &self.net {
            SandboxNet::Namespace { path, .. } => Some(path),
            SandboxNet::Host => None,
        }
    }
}

/// A sandbox on a network: its interface, address and names there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: Id,
    pub network: Id,
    pub sandbox: Id,
    pub ifname: IfName,
    /// The IPv4 address; `None` on an IPv6-only network. At least one of
    /// `ip` and `ip6` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address, on a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    pub mac: Mac,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Its network gives the sandbox's default route when no other network
    /// that routes out has a higher priority (Docker's GwPriority).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gw_priority: i64,
    /// Addresses on its interface besides `ip` and `ip6` (Docker's
    /// LinkLocalIPs): 169.254.0.0/16 or fe80::/10. Absent in records
    /// written before there were any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// Settings of its interface inside the sandbox (Docker's endpoint
    /// option `com.docker.network.endpoint.sysctls`). Absent in records
    /// written before there were any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<super::IfSysctl>,
    /// The CNI plugin gave it an egress limit, so it has an ifb
    /// ([`Endpoint::ifb`]) that the kernel does not delete with the veth:
    /// whoever removes the endpoint deletes it. Absent (false) in records
    /// written before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress_ifb: bool,
}

pub(super) fn is_zero(p: &i64) -> bool {
    *p == 0
}

impl Endpoint {
    /// Its addresses, IPv4 first.
    pub fn addrs(&self) -> Vec<std::net::IpAddr> {
        self.ip
            .map(Into::into)
            .into_iter()
            .chain(self.ip6.map(Into::into))
            .collect()
    }

    /// The address it is known by: IPv4 when it has one.
    pub fn primary_addr(&self) -> String {
        self.addrs()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The host side of the veth pair: derived from the endpoint id, so a
    /// leftover link can always be traced to its endpoint (or found orphaned).
    pub fn host_veth(&self) -> IfName {
        IfName(format!("{HOST_VETH_PREFIX}{}", &self.id.as_str()[..12]))
    }

    /// The ifb device that shapes what this endpoint sends, when the CNI
    /// plugin made one: named after the host veth, for the same reason.
    pub fn ifb(&self) -> IfName {
        IfName(format!("{IFB_PREFIX}{}", &self.id.as_str()[..12]))
    }

    /// The sandbox-side name of a retired endpoint, unique in its namespace.
    pub fn retired_ifname(&self) -> IfName {
        IfName(format!("{RETIRED_PREFIX}{}", &self.id.as_str()[..12]))
    }
}

/// A MAC address. Locally administered, derived from the address like Docker's
/// `02:42:` prefix so that a re-created endpoint keeps its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn for_ip(ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// From the IPv4 address when there is one (Docker's rule), else from
    /// the low 32 bits of the IPv6 address: unique within a subnet of /96
    /// or longer, and the store refuses a duplicate on one network anyway.
    pub fn for_addr(ip: std::net::IpAddr) -> Mac {
        match ip {
            std::net::IpAddr::V4(v4) => Mac::for_ip(v4),
            std::net::IpAddr::V6(v6) => {
                let o = v6.octets();
                Mac([0x02, 0x42, o[12], o[13], o[14], o[15]])
            }
        }
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid(format!(
                "invalid MAC address {s:?}: expected six hex pairs like 02:42:0a:00:00:02"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if m[0] & 1 == 1 {
            return invalid(format!(
                "invalid MAC address {s}: a multicast address cannot be an interface's"
            ));
        }
        if m == [0; 6] {
            return invalid(format!(
                "invalid MAC address {s}: the all-zero address cannot be an interface's"
            ));
        }
        Ok(Mac(m))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointRequest;

    #[test]
    fn mac() {
        assert_eq!(
            Mac::for_ip(Ipv4Addr::new(10, 0, 0, 2)).to_string(),
            "02:42:0a:00:00:02"
        );
        assert!("02:42:0a:00:00:02".parse::<Mac>().is_ok());
        assert!("01:00:00:00:00:00".parse::<Mac>().is_err());
        assert!("ff:ff:ff:ff:ff:ff".parse::<Mac>().is_err());
        let zero = "00:00:00:00:00:00".parse::<Mac>().unwrap_err().0;
        assert!(zero.contains("00:00:00:00:00:00") && zero.contains("all-zero"));
        assert!(serde_json::from_str::<EndpointRequest>(r#"{"mac":"00:00:00:00:00:00"}"#).is_err());
        assert!("zz".parse::<Mac>().is_err());
    }
}
