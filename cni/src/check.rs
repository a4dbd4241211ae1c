//! What a CHECK expects, read from `prevResult`.

use netd::ops::check::ExpectedAttachment;
use serde_json::Value;

use crate::error::{CniError, code};

/// What a CHECK expects of an attachment, read from `prevResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub mac: Option<String>,
    /// CIDRs on the container interface.
    pub addresses: Vec<String>,
    /// `(dst, gw)` routes through a gateway of those addresses (routes of
    /// other plugins in a chain are theirs to check).
    pub routes: Vec<(String, Option<String>)>,
}

/// Find the container interface `ifname` in `netns` in a previous result,
/// with its addresses and the routes through its gateways.
pub fn expected(prev: &Value, ifname: &str, netns: &str) -> Result<Expected, CniError> {
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    let ifs = prev["interfaces"]
        .as_array()
        .ok_or_else(|| bad("prevResult has no interfaces".into()))?;
    let index = ifs
        .iter()
        .position(|i| {
            i["name"].as_str() == Some(ifname)
                && i["sandbox"]
                    .as_str()
                    .is_some_and(|s| s.is_empty() || s == netns)
        })
        .ok_or_else(|| bad(format!("prevResult has no interface {ifname} in {netns}")))?;
    let mut addresses = Vec::new();
    let mut gateways = Vec::new();
    for ip in prev["ips"].as_array().into_iter().flatten() {
        if ip["interface"].as_u64() == Some(index as u64)
            && let Some(a) = ip["address"].as_str()
        {
            addresses.push(a.to_string());
            if let Some(g) = ip["gateway"].as_str() {
                gateways.push(g.to_string());
            }
        }
    }
    if addresses.is_empty() {
        return Err(bad(format!("prevResult has no address on {ifname}")));
    }
    let routes = prev["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?.to_string();
            let gw = r["gw"].as_str().map(str::to_string);
            gw.as_ref()
                .is_some_and(|g| gateways.contains(g))
                .then_some((dst, gw))
        })
        .collect();
    Ok(Expected {
        mac: ifs[index]["mac"].as_str().map(str::to_string),
        addresses,
        routes,
    })
}

impl From<Expected> for ExpectedAttachment {
    fn from(e: Expected) -> ExpectedAttachment {
        ExpectedAttachment {
            mac: e.mac,
            addresses: e.addresses,
            routes: e.routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::result;
    use crate::result::tests::{attachment, dual_stack};
    use serde_json::json;

    #[test]
    fn chained_results_append_to_prev() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{ "name": "lo0" }],
            "ips": [{ "address": "192.168.9.2/24", "interface": 0 }],
            "routes": [{ "dst": "192.168.0.0/16" }],
            "dns": { "nameservers": ["1.1.1.1"] }
        });
        let mut a = attachment();
        a.dns = false;
        let r = result("1.0.0", &a, Some(&prev));
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(r["ips"][1]["interface"], 2);
        assert_eq!(r["routes"].as_array().unwrap().len(), 2);
        assert_eq!(r["dns"]["nameservers"][0], "1.1.1.1");
        let e = expected(&r, "eth0", "/run/netns/x").unwrap();
        assert_eq!(e.addresses, vec!["10.0.0.2/24"]);
        assert_eq!(
            e.routes,
            vec![("0.0.0.0/0".to_string(), Some("10.0.0.1".to_string()))]
        );
        assert_eq!(e.mac.as_deref(), Some("02:42:0a:00:00:02"));
        assert!(expected(&r, "eth1", "/run/netns/x").is_err());
        let r = result("1.0.0", &dual_stack(), Some(&prev));
        let e = expected(&r, "eth0", "/run/netns/x").unwrap();
        assert_eq!(e.addresses, vec!["10.0.0.2/24", "fd00:1::2/64"]);
        assert_eq!(
            e.routes,
            vec![
                ("0.0.0.0/0".to_string(), Some("10.0.0.1".to_string())),
                ("::/0".to_string(), Some("fd00:1::1".to_string()))
            ]
        );
        assert!(expected(&r, "eth0", "/run/netns/other").is_err());
    }
}
