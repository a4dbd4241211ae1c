//! Wire types shared by the daemon and its clients.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Every refused request's body (Docker's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// The part of an endpoint a load balancer needs, from
/// `GET /netd/networks/{network}/members/{alias}` (the daemon answers with
/// whole endpoints; the rest is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub sandbox_name: String,
    /// The endpoint's IPv4 address; absent on an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// The endpoint's IPv6 address, on a dual-stack or IPv6-only network.
    /// Absent from older daemons and IPv4-only networks alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
}

/// `POST /netd/dns/sync[?sandbox=NAME]`: serve one new sandbox's names, or
/// (without `sandbox`) re-read them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSync {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// `DELETE /netd/sandboxes/{id}[?force=1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveSandbox {
    #[serde(default, deserialize_with = "flag")]
    pub force: bool,
}

/// Docker's spellings of a true query flag; anything else is false.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    Ok(matches!(s.as_str(), "1" | "true" | "True" | "yes"))
}

/// The query of Docker's `GET /networks` and `POST /networks/prune`:
/// `filters` is JSON, parsed by the route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiltersQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<String>,
}

/// `POST /netd/networks/{id}/disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub sandbox: String,
    #[serde(default)]
    pub force: bool,
}

/// `POST /netd/networks/prune`: Docker's filters as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    #[serde(default)]
    pub filters: Option<Value>,
}

/// The answer to `POST /netd/networks/prune`: the names removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags() {
        let q: RemoveSandbox = serde_urlencoded::from_str("force=1").unwrap();
        assert!(q.force);
        let q: RemoveSandbox = serde_urlencoded::from_str("force=no").unwrap();
        assert!(!q.force);
        let q: RemoveSandbox = serde_urlencoded::from_str("").unwrap();
        assert!(!q.force);
        let q: FiltersQuery =
            serde_urlencoded::from_str("filters=%7B%22name%22%3A%7B%22a%22%3Atrue%7D%7D&x=1")
                .unwrap();
        assert_eq!(q.filters.as_deref(), Some(r#"{"name":{"a":true}}"#));
        assert_eq!(
            serde_urlencoded::to_string(DnsSync {
                sandbox: Some("a b".into())
            })
            .unwrap(),
            "sandbox=a+b"
        );
    }

    #[test]
    fn member_ip6_is_optional_both_ways() {
        let m: Member =
            serde_json::from_str(r#"{"sandbox_name":"a","ip":"10.0.0.2","aliases":[]}"#).unwrap();
        assert_eq!(m.ip6, None);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"sandbox_name":"a","ip":"10.0.0.2"}"#
        );
        let m: Member =
            serde_json::from_str(r#"{"sandbox_name":"a","ip":"10.0.0.2","ip6":"fd00::2"}"#)
                .unwrap();
        assert_eq!(m.ip6, Some("fd00::2".parse().unwrap()));
        assert_eq!(
            serde_json::from_str::<Member>(&serde_json::to_string(&m).unwrap()).unwrap(),
            m
        );
    }
}
