//! Published ports: Docker's `-p` specs, parsed, printed and checked.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Invalid, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// An inclusive port range; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

fn parse_range(spec: &str, s: &str) -> Result<PortRange, Invalid> {
    let port = |p: &str| -> Result<u16, Invalid> {
        match p.parse::<u16>() {
            Ok(v) if v > 0 => Ok(v),
            _ => invalid(format!(
                "invalid port {p:?} in publish spec {spec:?}: expected 1-65535"
            )),
        }
    };
    let r = match s.split_once('-') {
        Some((a, b)) => PortRange {
            start: port(a)?,
            end: port(b)?,
        },
        None => {
            let p = port(s)?;
            PortRange { start: p, end: p }
        }
    };
    if r.start > r.end {
        return invalid(format!(
            "invalid port range {s:?} in publish spec {spec:?}: start is above end"
        ));
    }
    Ok(r)
}

/// A published port: Docker's `-p [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`.
/// In JSON it is read either as that string or as the object it is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PortMappingRepr")]
pub struct PortMapping {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    /// None: a free port chosen when the mapping is applied.
    pub host_port: Option<PortRange>,
    pub container_port: PortRange,
    pub proto: Proto,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortMappingRepr {
    Spec(String),
    Fields {
        host_ip: Option<IpAddr>,
        host_port: Option<PortRange>,
        container_port: PortRange,
        proto: Proto,
    },
}

impl TryFrom<PortMappingRepr> for PortMapping {
    type Error = Invalid;
    fn try_from(r: PortMappingRepr) -> Result<Self, Invalid> {
        match r {
            PortMappingRepr::Spec(s) => s.parse(),
            // Re-validate through the string form, so both spellings obey the same rules.
            PortMappingRepr::Fields {
                host_ip,
                host_port,
                container_port,
                proto,
            } => PortMapping {
                host_ip,
                host_port,
                container_port,
                proto,
            }
            .to_string()
            .parse(),
        }
    }
}

impl FromStr for PortMapping {
    type Err = Invalid;
    fn from_str(spec: &str) -> Result<Self, Invalid> {
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((r, "sctp")) => (r, Proto::Sctp),
            Some((_, p)) => {
                return invalid(format!(
                    "invalid protocol {p:?} in publish spec {spec:?}: use tcp, udp or sctp"
                ));
            }
            None => (spec, Proto::Tcp),
        };
        // An IPv6 host address comes in brackets: [::1]:8080:80
        let (host_ip, rest) = if let Some(stripped) = rest.strip_prefix('[') {
            let (ip, after) = stripped
                .split_once("]:")
                .ok_or_else(|| Invalid(format!("invalid publish spec {spec:?}: unclosed '['")))?;
            let ip: IpAddr = ip.parse().map_err(|_| {
                Invalid(format!(
                    "invalid host address {ip:?} in publish spec {spec:?}"
                ))
            })?;
            (Some(ip), after)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, rest),
                3 => {
                    let ip = parts[0];
                    let ip: IpAddr = ip.parse().map_err(|_| {
                        Invalid(format!(
                            "invalid host address {ip:?} in publish spec {spec:?}"
                        ))
                    })?;
                    (Some(ip), &rest[parts[0].len() + 1..])
                }
                _ => return invalid(format!("invalid publish spec {spec:?}: too many ':'")),
            }
        };
        let (host_port, container) = match rest.split_once(':') {
            Some(("", c)) => (None, c),
            Some((h, c)) => (Some(parse_range(spec, h)?), c),
            None => (None, rest),
        };
        let container_port = parse_range(spec, container)?;
        if let Some(IpAddr::V6(ip)) = host_ip {
            // A link-local address needs a zone to be bound or routed to,
            // and a mapped IPv4 address is an IPv4 one in disguise: the
            // datapath could match neither.
            if ip.is_unicast_link_local() {
                return invalid(format!(
                    "invalid publish spec {spec:?}: {ip} is link-local; publish on a global or ULA address, or on [::]"
                ));
            }
            if let Some(v4) = ip.to_ipv4_mapped() {
                return invalid(format!(
                    "invalid publish spec {spec:?}: {ip} is an IPv4-mapped address; write it as {v4}"
                ));
            }
            // The kernel cannot NAT to [::1] (docs/datapath.md#ipv6): the
            // daemon's userland proxy serves it, and it speaks TCP and UDP.
            if ip.is_loopback() && proto == Proto::Sctp {
                return invalid(format!(
                    "invalid publish spec {spec:?}: sctp cannot be published on [::1] (its proxy forwards tcp and udp); publish on 127.0.0.1 or on [::]"
                ));
            }
            if ip.is_multicast() {
                return invalid(format!(
                    "invalid publish spec {spec:?}: {ip} is a multicast address"
                ));
            }
        }
        if let Some(h) = host_port
            && h.len() != container_port.len()
        {
            return invalid(format!(
                "invalid publish spec {spec:?}: host range {h} and container range {container_port} differ in length"
            ));
        }
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
        })
    }
}

impl PortMapping {
    /// Published on `[::1]`, which the daemon's userland proxy serves
    /// instead of a DNAT element (see `daemon::proxy`).
    pub fn on_loopback6(&self) -> bool {
        matches!(self.host_ip, Some(IpAddr::V6(ip)) if ip.is_loopback())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.host_ip, self.host_port) {
            (_, Some(h)) => write!(f, "{h}:")?,
            (Some(_), None) => write!(f, ":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_port, self.proto)
    }
}

/// The `port_spec` fuzz target's entry: any bytes as a `-p` spec and as
/// its JSON spellings. Must never panic; whatever parses must print back to
/// a spec that parses to the same mapping.
#[doc(hidden)]
pub fn fuzz_port_spec(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if let Ok(p) = s.parse::<PortMapping>() {
        let again: PortMapping = p
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{s:?} printed as {p} does not parse: {e}"));
        assert_eq!(again, p, "{s:?} does not round-trip through {p}");
        let json = serde_json::to_string(&p).expect("a mapping serializes");
        let back: PortMapping = serde_json::from_str(&json).expect("its JSON parses");
        assert_eq!(back, p);
    }
    let _ = serde_json::from_slice::<PortMapping>(bytes);
    let _ = serde_json::from_slice::<Vec<PortMapping>>(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p.host_port,
            Some(PortRange {
                start: 8080,
                end: 8080
            })
        );
        assert_eq!(p.container_port, PortRange { start: 80, end: 80 });
        assert_eq!(p.proto, Proto::Tcp);
        assert_eq!(p.host_ip, None);

        let p: PortMapping = "127.0.0.1:9000-9002:8000-8002/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.host_port.unwrap().len(), 3);
        assert_eq!(p.proto, Proto::Udp);

        let p: PortMapping = "80".parse().unwrap();
        assert_eq!(p.host_port, None);
        let p: PortMapping = "10.0.0.1::53/sctp".parse().unwrap();
        assert_eq!(p.host_port, None);
        assert_eq!(p.proto, Proto::Sctp);
        let p: PortMapping = "[2001:db8::1]::53/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p.host_port, None);
        let p: PortMapping = "[::1]:8080:80".parse().unwrap();
        assert!(p.on_loopback6());
        assert!(
            !"[::]:8080:80"
                .parse::<PortMapping>()
                .unwrap()
                .on_loopback6()
        );
        assert!(
            !"127.0.0.1:8080:80"
                .parse::<PortMapping>()
                .unwrap()
                .on_loopback6()
        );
        let e = "[::1]:80:80/sctp".parse::<PortMapping>().unwrap_err().0;
        assert!(e.contains("sctp") && e.contains("[::1]"), "{e}");
        for bad in [
            "[fe80::1]:80:80",
            "[::ffff:10.0.0.1]:80:80",
            "[ff02::1]:80:80",
        ] {
            let e = bad.parse::<PortMapping>().unwrap_err().0;
            assert!(e.contains(&bad[1..bad.find(']').unwrap()]), "{e}");
        }

        for bad in [
            "",
            "0",
            "70000",
            "80/icmp",
            "9000-9001:80",
            "x:80",
            "1:2:3:4",
            "90-80",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish_json_accepts_both_spellings() {
        let a: PortMapping = serde_json::from_str(r#""8080:80/udp""#).unwrap();
        let b: PortMapping = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<PortMapping>(r#""8080:80/icmp""#).is_err());
        let bad = r#"{"host_ip":null,"host_port":{"start":9,"end":10},"container_port":{"start":1,"end":1},"proto":"tcp"}"#;
        assert!(
            serde_json::from_str::<PortMapping>(bad).is_err(),
            "ranges of different length"
        );
    }

    #[test]
    fn publish_round_trip() {
        for s in [
            "8080:80/tcp",
            "127.0.0.1:9000-9002:8000-8002/udp",
            "80/tcp",
            "10.0.0.1::53/sctp",
            "[fd00::1]:8080:80/tcp",
            "[2001:db8::1]::53/udp",
            "[::]:9000-9001:90-91/tcp",
            "[::1]:8080:80/tcp",
            "[::1]::53/udp",
        ] {
            let p: PortMapping = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
    }
}
