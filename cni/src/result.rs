//! The ADD result, written in the version the configuration asks for.

use serde_json::{Map, Value, json};

use crate::version::{at_least, legacy_result};

/// The nameserver netd's DNS answers on inside every sandbox.
pub const NAMESERVER: &str = "127.0.0.11";

/// What an ADD produced, in netd's terms, before it is written in a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub host_ifname: String,
    pub host_mac: String,
    pub ifname: String,
    pub mac: String,
    pub mtu: Option<u32>,
    pub netns: String,
    /// CIDR: `10.88.0.2/16`; None on an IPv6-only network.
    pub address: Option<String>,
    pub gateway: Option<String>,
    /// The default route via `gateway` is this attachment's.
    pub default_route: bool,
    /// On a dual-stack network: the IPv6 CIDR, its gateway, and whether
    /// the IPv6 default route (`::/0`) via that gateway is this attachment's.
    pub address6: Option<String>,
    pub gateway6: Option<String>,
    pub default_route6: bool,
    pub dns: bool,
}

/// The ADD result in the version the configuration asks for, appended to
/// `prev` (a previous plugin's result in a chain) when there is one.
pub fn result(version: &str, a: &Attachment, prev: Option<&Value>) -> Value {
    if legacy_result(version) {
        return result_020(version, a);
    }
    let legacy = !at_least(version, "1.0.0");
    let mut out = Map::new();
    out.insert("cniVersion".into(), json!(version));
    let mut interfaces: Vec<Value> = prev
        .and_then(|p| p["interfaces"].as_array().cloned())
        .unwrap_or_default();
    let mut ips: Vec<Value> = prev
        .and_then(|p| p["ips"].as_array().cloned())
        .unwrap_or_default();
    let mut routes: Vec<Value> = prev
        .and_then(|p| p["routes"].as_array().cloned())
        .unwrap_or_default();
    let with_mtu = |mut v: Value| {
        // `mtu` in interfaces is new in 1.1.0.
        if let Some(m) = a.mtu.filter(|_| at_least(version, "1.1.0")) {
            v["mtu"] = json!(m);
        }
        v
    };
    interfaces.push(with_mtu(
        json!({ "name": a.host_ifname, "mac": a.host_mac }),
    ));
    interfaces.push(with_mtu(
        json!({ "name": a.ifname, "mac": a.mac, "sandbox": a.netns }),
    ));
    let index = interfaces.len() - 1;
    if let (Some(address), Some(gateway)) = (&a.address, &a.gateway) {
        ips.push(json!({ "address": address, "gateway": gateway, "interface": index }));
    }
    if let Some(address6) = &a.address6 {
        let mut ip = json!({ "address": address6, "interface": index });
        if let Some(g) = &a.gateway6 {
            ip["gateway"] = json!(g);
        }
        ips.push(ip);
    }
    for ip in &mut ips {
        if let Some(o) = ip.as_object_mut() {
            if legacy {
                let v6 = o
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(':'));
                o.entry("version")
                    .or_insert_with(|| json!(if v6 { "6" } else { "4" }));
            } else {
                o.remove("version");
            }
        }
    }
    if let (true, Some(g)) = (a.default_route, &a.gateway) {
        routes.push(json!({ "dst": "0.0.0.0/0", "gw": g }));
    }
    if let (true, Some(g)) = (a.default_route6, &a.gateway6) {
        routes.push(json!({ "dst": "::/0", "gw": g }));
    }
    out.insert("interfaces".into(), json!(interfaces));
    out.insert("ips".into(), json!(ips));
    out.insert("routes".into(), json!(routes));
    let dns = match (a.dns, prev.map(|p| &p["dns"])) {
        (true, _) => json!({ "nameservers": [NAMESERVER] }),
        (false, Some(d)) if d.is_object() => d.clone(),
        _ => json!({}),
    };
    out.insert("dns".into(), dns);
    Value::Object(out)
}

/// The result of 0.1.0 and 0.2.0 (libcni's `types020.Result`): one
/// `ip4` and one `ip6` object, each `{"ip", "gateway", "routes"}` with
/// the routes of its family, and `dns`. Those versions have no interfaces
/// and no chaining (a `prevResult` is refused before the ADD).
fn result_020(version: &str, a: &Attachment) -> Value {
    let family = |address: &Option<String>, gateway: &Option<String>, default: bool, dst| {
        let address = address.as_ref()?;
        let mut ip = json!({ "ip": address });
        if let Some(g) = gateway {
            ip["gateway"] = json!(g);
            if default {
                ip["routes"] = json!([{ "dst": dst, "gw": g }]);
            }
        }
        Some(ip)
    };
    let mut out = Map::new();
    out.insert("cniVersion".into(), json!(version));
    if let Some(ip4) = family(&a.address, &a.gateway, a.default_route, "0.0.0.0/0") {
        out.insert("ip4".into(), ip4);
    }
    if let Some(ip6) = family(&a.address6, &a.gateway6, a.default_route6, "::/0") {
        out.insert("ip6".into(), ip6);
    }
    let dns = if a.dns {
        json!({ "nameservers": [NAMESERVER] })
    } else {
        json!({})
    };
    out.insert("dns".into(), dns);
    Value::Object(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn attachment() -> Attachment {
        Attachment {
            host_ifname: "nd-1".into(),
            host_mac: "aa:bb:cc:dd:ee:ff".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:00:00:02".into(),
            mtu: Some(1500),
            netns: "/run/netns/x".into(),
            address: Some("10.0.0.2/24".into()),
            gateway: Some("10.0.0.1".into()),
            default_route: true,
            address6: None,
            gateway6: None,
            default_route6: false,
            dns: true,
        }
    }

    pub(crate) fn dual_stack() -> Attachment {
        Attachment {
            address6: Some("fd00:1::2/64".into()),
            gateway6: Some("fd00:1::1".into()),
            default_route6: true,
            ..attachment()
        }
    }

    #[test]
    fn dual_stack_results_list_both_families() {
        for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let r = result(v, &dual_stack(), None);
            assert_eq!(r["ips"].as_array().unwrap().len(), 2, "{r}");
            assert_eq!(r["ips"][1]["address"], "fd00:1::2/64");
            assert_eq!(r["ips"][1]["gateway"], "fd00:1::1");
            assert_eq!(r["ips"][0]["interface"], 1);
            assert_eq!(r["ips"][1]["interface"], 1);
            assert_eq!(
                r["routes"],
                json!([{ "dst": "0.0.0.0/0", "gw": "10.0.0.1" }, { "dst": "::/0", "gw": "fd00:1::1" }])
            );
            let legacy = !crate::version::at_least(v, "1.0.0");
            assert_eq!(r["ips"][1].get("version").is_some(), legacy, "{v}: {r}");
            if legacy {
                assert_eq!(r["ips"][0]["version"], "4");
                assert_eq!(r["ips"][1]["version"], "6");
            }
        }
        // A second network's attachment: the default routes are the first's.
        let r = result(
            "1.1.0",
            &Attachment {
                default_route: false,
                default_route6: false,
                ..dual_stack()
            },
            None,
        );
        assert_eq!(r["routes"], json!([]));
        assert_eq!(r["ips"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn results_of_0_1_0_and_0_2_0_are_ip4_ip6_dns() {
        for v in ["0.1.0", "0.2.0"] {
            let r = result(v, &dual_stack(), None);
            assert_eq!(
                r,
                json!({
                    "cniVersion": v,
                    "ip4": {
                        "ip": "10.0.0.2/24",
                        "gateway": "10.0.0.1",
                        "routes": [{ "dst": "0.0.0.0/0", "gw": "10.0.0.1" }]
                    },
                    "ip6": {
                        "ip": "fd00:1::2/64",
                        "gateway": "fd00:1::1",
                        "routes": [{ "dst": "::/0", "gw": "fd00:1::1" }]
                    },
                    "dns": { "nameservers": ["127.0.0.11"] }
                })
            );
        }
        // IPv4 only, no default route (a second network), no DNS.
        let r = result(
            "0.2.0",
            &Attachment {
                default_route: false,
                dns: false,
                ..attachment()
            },
            None,
        );
        assert_eq!(
            r,
            json!({
                "cniVersion": "0.2.0",
                "ip4": { "ip": "10.0.0.2/24", "gateway": "10.0.0.1" },
                "dns": {}
            })
        );
        // IPv6 only: no ip4.
        let r = result(
            "0.1.0",
            &Attachment {
                address: None,
                gateway: None,
                default_route: false,
                ..dual_stack()
            },
            None,
        );
        assert!(r.get("ip4").is_none(), "{r}");
        assert_eq!(r["ip6"]["ip"], "fd00:1::2/64");
    }

    #[test]
    fn results_by_version() {
        let a = attachment();
        let old = result("0.3.1", &a, None);
        assert_eq!(old["ips"][0]["version"], "4");
        assert!(old["interfaces"][0].get("mtu").is_none());
        let v1 = result("1.0.0", &a, None);
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1["interfaces"][1].get("mtu").is_none());
        let new = result("1.1.0", &a, None);
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][0]["mac"], "aa:bb:cc:dd:ee:ff");
        assert_eq!(new["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(new["interfaces"][1]["mtu"], 1500);
        assert_eq!(new["ips"][0]["interface"], 1);
        assert_eq!(new["dns"]["nameservers"][0], "127.0.0.11");
        assert_eq!(new["routes"][0]["dst"], "0.0.0.0/0");
        let quiet = result(
            "1.1.0",
            &Attachment {
                dns: false,
                default_route: false,
                ..a
            },
            None,
        );
        assert_eq!(quiet["dns"], json!({}));
        assert_eq!(quiet["routes"], json!([]));
    }
}
