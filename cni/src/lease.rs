//! What a delegated IPAM plugin leased, read from its result: one address
//! per family, each with the gateway it named.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::Value;

use crate::error::{CniError, code};

/// The container's addresses (with their prefixes) and gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub address: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// A lease of both families (host-local with a range set per family).
    pub address6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
}

/// The lease in an IPAM result: its one IPv4 address (required: netd's
/// networks have an IPv4 side) and at most one IPv6 address. More than one
/// of a family is a configuration netd cannot follow (an endpoint has one
/// address per family): error 7 naming them.
pub fn lease(result: &Value) -> Result<Lease, CniError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    // 0.3.0 and later list `ips` of `{"address", "gateway"}`; a plugin
    // answering a 0.1.0/0.2.0 configuration gives `ip4`/`ip6` of
    // `{"ip", "gateway"}` instead.
    let current = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ip| (&ip["address"], ip));
    let legacy = ["ip4", "ip6"]
        .into_iter()
        .map(|k| &result[k])
        .filter(|ip| ip.is_object())
        .map(|ip| (&ip["ip"], ip));
    for (address, ip) in current.chain(legacy) {
        let Some(address) = address.as_str().and_then(|a| a.parse::<IpNet>().ok()) else {
            continue;
        };
        let gateway = ip["gateway"].as_str();
        match address {
            IpNet::V4(a) => v4.push((a, gateway.and_then(|g| g.parse().ok()))),
            IpNet::V6(a) => v6.push((a, gateway.and_then(|g| g.parse().ok()))),
        }
    }
    let several = |family: &str, addrs: Vec<String>| {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "the ipam plugin returned {} {family} addresses ({}): netd gives an interface one address per family, give the plugin one range set per family",
                addrs.len(),
                addrs.join(", ")
            ),
        )
    };
    if v4.len() > 1 {
        return Err(several(
            "IPv4",
            v4.iter().map(|a| a.0.to_string()).collect(),
        ));
    }
    if v6.len() > 1 {
        return Err(several(
            "IPv6",
            v6.iter().map(|a| a.0.to_string()).collect(),
        ));
    }
    if v4.is_empty() && v6.is_empty() {
        return Err(
            CniError::new(code::GENERIC, "the ipam plugin returned no address")
                .details(result.to_string()),
        );
    }
    Ok(Lease {
        address: v4.first().map(|a| a.0),
        gateway: v4.first().and_then(|a| a.1),
        address6: v6.first().map(|a| a.0),
        gateway6: v6.first().and_then(|a| a.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_address_per_family() {
        let r = json!({"cniVersion":"1.0.0","ips":[
            {"address":"fd00::5/64","gateway":"fd00::1"},
            {"address":"10.9.0.5/24","gateway":"10.9.0.1"}]});
        assert_eq!(
            lease(&r).unwrap(),
            Lease {
                address: "10.9.0.5/24".parse().ok(),
                gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
                address6: Some("fd00::5/64".parse().unwrap()),
                gateway6: Some("fd00::1".parse().unwrap()),
            }
        );
        let v4 = json!({"ips":[{"address":"10.9.0.5/24"}]});
        assert_eq!(lease(&v4).unwrap().address6, None);
        assert_eq!(lease(&v4).unwrap().gateway, None);
        assert_eq!(lease(&json!({"ips": []})).unwrap_err().code, code::GENERIC);
        // An IPv6-only lease: an IPv6-only network.
        let only6 = json!({"ips":[{"address":"fd00::5/64"}]});
        let l = lease(&only6).unwrap();
        assert_eq!((l.address, l.address6), (None, "fd00::5/64".parse().ok()));
        let two6 = json!({"ips":[{"address":"10.9.0.5/24"},
            {"address":"fd00::5/64"},{"address":"fd01::5/64"}]});
        let e = lease(&two6).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("fd00::5/64, fd01::5/64"), "{e}");
    }

    #[test]
    fn a_0_2_0_result_leases_its_ip4_and_ip6() {
        let r = json!({"cniVersion":"0.2.0",
            "ip4":{"ip":"10.9.0.5/24","gateway":"10.9.0.1","routes":[{"dst":"0.0.0.0/0"}]},
            "ip6":{"ip":"fd00::5/64","gateway":"fd00::1"},"dns":{}});
        assert_eq!(
            lease(&r).unwrap(),
            Lease {
                address: "10.9.0.5/24".parse().ok(),
                gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
                address6: Some("fd00::5/64".parse().unwrap()),
                gateway6: Some("fd00::1".parse().unwrap()),
            }
        );
        let e = lease(&json!({"cniVersion":"0.2.0","dns":{}})).unwrap_err();
        assert_eq!(e.code, code::GENERIC);
    }
}
