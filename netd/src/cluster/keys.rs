//! The etcd key layout under `/netd/`, in one place: what the store writes
//! and what the view parses back from watch events.
//!
//! `hosts/HOST`, `networks/NAME`, `vnis/VNI`, `ipam/NETWORK_ID/ADDR`,
//! `endpoints/NETWORK_ID/HOST/ENDPOINT_ID`. Host names and ids never hold a
//! `/` (ids are hex; host names are validated by the daemon), so splitting
//! on it is unambiguous.

use std::net::IpAddr;

use crate::model::Id;

pub const ROOT: &str = "/netd/";

pub fn host(host: &str) -> String {
    format!("{ROOT}hosts/{host}")
}

pub fn network(name: &str) -> String {
    format!("{ROOT}networks/{name}")
}

pub fn vnis() -> String {
    format!("{ROOT}vnis/")
}

pub fn vni(vni: u32) -> String {
    format!("{ROOT}vnis/{vni}")
}

/// Every address taken on a network (a prefix).
pub fn ipam_prefix(net: &Id) -> String {
    format!("{ROOT}ipam/{}/", net.as_str())
}

pub fn ipam(net: &Id, addr: IpAddr) -> String {
    format!("{}{addr}", ipam_prefix(net))
}

/// Every endpoint of a network, all hosts (a prefix).
pub fn endpoints_prefix(net: &Id) -> String {
    format!("{ROOT}endpoints/{}/", net.as_str())
}

pub fn endpoint(net: &Id, host: &str, ep: &Id) -> String {
    format!("{}{host}/{}", endpoints_prefix(net), ep.as_str())
}

/// A key read back from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    Host(&'a str),
    Network(&'a str),
    Vni(u32),
    Ipam {
        net: &'a str,
        addr: IpAddr,
    },
    Endpoint {
        net: &'a str,
        host: &'a str,
        ep: &'a str,
    },
}

/// `None` for keys netd does not write (left alone, never an error: a newer
/// netd may add some).
pub fn parse(key: &str) -> Option<Key<'_>> {
    let rest = key.strip_prefix(ROOT)?;
    let (kind, rest) = rest.split_once('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match (kind, parts.as_slice()) {
        ("hosts", [h]) => Some(Key::Host(h)),
        ("networks", [n]) => Some(Key::Network(n)),
        ("vnis", [v]) => v.parse().ok().map(Key::Vni),
        ("ipam", [net, addr]) => addr.parse().ok().map(|addr| Key::Ipam { net, addr }),
        ("endpoints", [net, host, ep]) => Some(Key::Endpoint { net, host, ep }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = Id::from_stored("ab12".into());
        let ep = Id::from_stored("cd34".into());
        assert_eq!(parse(&host("h1")), Some(Key::Host("h1")));
        assert_eq!(parse(&network("web")), Some(Key::Network("web")));
        assert_eq!(parse(&vni(4096)), Some(Key::Vni(4096)));
        let a: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(
            parse(&ipam(&id, a)),
            Some(Key::Ipam {
                net: "ab12",
                addr: a
            })
        );
        assert_eq!(
            parse(&endpoint(&id, "h1", &ep)),
            Some(Key::Endpoint {
                net: "ab12",
                host: "h1",
                ep: "cd34"
            })
        );
        assert!(endpoint(&id, "h1", &ep).starts_with(&endpoints_prefix(&id)));
    }

    #[test]
    fn foreign_keys_are_ignored() {
        for k in [
            "/other/hosts/a",
            "/netd/hosts/",
            "/netd/hosts/a/b",
            "/netd/vnis/x",
            "/netd/ipam/n/not-an-ip",
            "/netd/endpoints/n/h",
            "/netd/future/x",
        ] {
            assert_eq!(parse(k), None, "{k}");
        }
    }
}
