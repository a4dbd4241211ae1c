//! The `ipRanges` capability (CONVENTIONS: host-local's range sets) onto
//! netd's network keys: netd's ranges are per network and CIDRs.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::conf::NetConf;
use crate::error::{CniError, code};

fn bad(m: String) -> CniError {
    CniError::new(code::INVALID_CONFIG, m)
}

fn unsupported(m: String) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, m)
}

/// One range of the `ipRanges` capability (host-local's range).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Range {
    subnet: IpNet,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

/// The CIDR `start..=end` is, if it is exactly one.
fn cidr(start: IpAddr, end: IpAddr) -> Option<IpNet> {
    let mut nets: Vec<IpNet> = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => Ipv4Subnets::new(s, e, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(s), IpAddr::V6(e)) => Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect(),
        _ => return None,
    };
    (nets.len() == 1).then(|| nets.remove(0))
}

/// Put the `ipRanges` capability onto netd's network keys: a range set per
/// family, of one range (netd has one subnet and one range per family), its
/// `subnet`, `gateway` and `rangeStart`..`rangeEnd` (which must be a CIDR:
/// netd's ranges are) as `subnet`/`gateway`/`ipRange` (or the IPv6 ones).
/// Keys the configuration gives must agree; an existing network is then
/// checked against them as against the configuration's own keys. With a
/// delegated IPAM plugin the ranges are that plugin's (it reads the same
/// capability), and nothing is done here.
pub fn apply_ip_ranges(conf: &mut NetConf, obj: &Map<String, Value>) -> Result<(), CniError> {
    let Some(raw) = obj
        .get("runtimeConfig")
        .and_then(|r| r.get("ipRanges"))
        .filter(|v| !v.is_null())
    else {
        return Ok(());
    };
    if conf.ipam.as_ref().is_some_and(|i| !i.is_null()) {
        return Ok(());
    }
    let sets: Vec<Vec<Range>> = serde_json::from_value(raw.clone())
        .map_err(|e| bad(format!("runtimeConfig.ipRanges: {e}")))?;
    let mut seen = [false, false];
    for set in sets {
        let [r] = set.as_slice() else {
            return Err(unsupported(format!(
                "unsupported field runtimeConfig.ipRanges: a range set of {} ranges: netd's network has one range per family",
                set.len()
            )));
        };
        let v6 = matches!(r.subnet, IpNet::V6(_));
        if std::mem::replace(&mut seen[usize::from(v6)], true) {
            return Err(unsupported(format!(
                "unsupported field runtimeConfig.ipRanges: two range sets of one family ({}): netd's network has one subnet per family",
                r.subnet
            )));
        }
        let range = match (r.range_start, r.range_end) {
            (None, None) => None,
            (s, e) => {
                let (s, e) = (
                    s.unwrap_or_else(|| r.subnet.network()),
                    e.unwrap_or_else(|| r.subnet.broadcast()),
                );
                Some(cidr(s, e).ok_or_else(|| {
                    unsupported(format!(
                        "unsupported field runtimeConfig.ipRanges: {s}-{e} is not a CIDR: netd's ranges are CIDRs (e.g. 10.1.0.64-10.1.0.127 is 10.1.0.64/26)"
                    ))
                })?)
            }
        };
        let (subnet, gateway, ip_range, names) = if v6 {
            (
                &mut conf.subnet6,
                &mut conf.gateway6,
                &mut conf.ip_range6,
                ["subnet6", "gateway6", "ipRange6"],
            )
        } else {
            (
                &mut conf.subnet,
                &mut conf.gateway,
                &mut conf.ip_range,
                ["subnet", "gateway", "ipRange"],
            )
        };
        for ((slot, want), key) in [
            (subnet, Some(r.subnet.trunc().to_string())),
            (gateway, r.gateway.map(|g| g.to_string())),
            (ip_range, range.map(|n| n.to_string())),
        ]
        .into_iter()
        .zip(names)
        {
            let Some(want) = want else { continue };
            match slot {
                Some(have) if !same_value(have, &want) => {
                    return Err(bad(format!(
                        "runtimeConfig.ipRanges gives {key} {want}, the configuration {have}"
                    )));
                }
                _ => *slot = Some(want),
            }
        }
    }
    Ok(())
}

/// Addresses and CIDRs compared parsed (`fd00:0::/64` is `fd00::/64`).
fn same_value(a: &str, b: &str) -> bool {
    match (a.parse::<IpNet>(), b.parse::<IpNet>()) {
        (Ok(x), Ok(y)) => x.trunc() == y.trunc(),
        _ => match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::conf::parse_with as parse;

    #[test]
    fn ip_ranges_become_the_network_keys() {
        let c = parse(
            r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.64","rangeEnd":"10.1.0.127"}],[{"subnet":"fd00:1::/64","gateway":"fd00:1::9"}]]}"#,
        )
        .unwrap();
        assert_eq!(c.subnet.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(c.ip_range.as_deref(), Some("10.1.0.64/26"));
        assert_eq!(c.subnet6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(c.gateway6.as_deref(), Some("fd00:1::9"));
        assert!(c.wants_ipv6());
        // The configuration's own key agrees, or the request is refused.
        assert!(
            parse(r#","subnet":"10.1.0.0/24","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24"}]]}"#)
                .is_ok()
        );
        for (bad, want) in [
            (
                r#","subnet":"10.2.0.0/24","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24"}]]}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.2"}]]}"#,
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/25"},{"subnet":"10.1.0.128/25"}]]}"#,
                code::UNSUPPORTED_FIELD,
            ),
            (
                r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/24"}]]}"#,
                code::UNSUPPORTED_FIELD,
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err().code, want, "{bad}");
        }
        // A delegated IPAM plugin reads the capability itself.
        let c = parse(
            r#","ipam":{"type":"host-local"},"runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24"}]]}"#,
        )
        .unwrap();
        assert_eq!(c.subnet, None);
    }
}
