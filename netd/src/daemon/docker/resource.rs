//! Networks and events in the shapes Docker's API returns them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{ConfigOnly, Network};
use crate::ops::{Event, NetworkDetail};

pub(super) fn driver_name(n: &Network) -> &'static str {
    n.driver.name()
}

/// Docker's scope: "global" for a network of the cluster (as Docker's
/// overlay networks on a cluster store were), "local" for the others.
pub(super) fn scope(n: &Network) -> &'static str {
    if n.overlay().is_some() {
        "global"
    } else {
        "local"
    }
}

/// One `IPAM.Config` entry: Docker omits `IPRange` and
/// `AuxiliaryAddresses` when none was given, and a config-only network's
/// `Gateway` too (it holds only what was given).
fn ipam_config<A: ToString>(
    subnet: Option<String>,
    gateway: Option<String>,
    ip_range: Option<String>,
    aux: &BTreeMap<String, A>,
) -> Value {
    let mut c = json!({});
    if let Some(s) = subnet {
        c["Subnet"] = json!(s);
    }
    if let Some(g) = gateway {
        c["Gateway"] = json!(g);
    }
    if let Some(r) = ip_range {
        c["IPRange"] = json!(r);
    }
    if !aux.is_empty() {
        let aux: BTreeMap<&str, String> = aux
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        c["AuxiliaryAddresses"] = json!(aux);
    }
    c
}

/// A config-only network's `IPAM.Config`: one entry per family that has
/// any setting, its auxiliary addresses split by family.
fn config_only_ipam(c: &ConfigOnly) -> Vec<Value> {
    let (aux4, aux6): (BTreeMap<String, _>, BTreeMap<String, _>) = c
        .aux_addresses
        .iter()
        .map(|(k, a)| (k.clone(), *a))
        .partition(|(_, a)| a.is_ipv4());
    let mut out = Vec::new();
    if c.subnet.is_some() || c.gateway.is_some() || c.ip_range.is_some() {
        out.push(ipam_config(
            c.subnet.map(|v| v.to_string()),
            c.gateway.map(|v| v.to_string()),
            c.ip_range.map(|v| v.to_string()),
            &aux4,
        ));
    }
    if c.subnet6.is_some() || c.gateway6.is_some() || c.ip_range6.is_some() {
        out.push(ipam_config(
            c.subnet6.map(|v| v.to_string()),
            c.gateway6.map(|v| v.to_string()),
            c.ip_range6.map(|v| v.to_string()),
            &aux6,
        ));
    }
    out
}

/// A network as `GET /networks/{id}` returns it.
pub fn network_resource(d: &NetworkDetail, with_containers: bool) -> Value {
    let n = &d.network;
    let b = n.bridge();
    let v4 = b.and_then(|b| b.ipv4.as_ref());
    let v6 = b.and_then(|b| b.ipv6.as_ref());
    // IPv4 first, as Docker lists them.
    let config: Vec<Value> = match n.config_only() {
        Some(c) => config_only_ipam(c),
        None => v4
            .map(|c| {
                ipam_config(
                    Some(c.subnet.to_string()),
                    Some(c.gateway.to_string()),
                    c.ip_range.map(|r| r.to_string()),
                    &c.aux_addresses,
                )
            })
            .into_iter()
            .chain(v6.map(|c| {
                ipam_config(
                    Some(c.subnet.to_string()),
                    Some(c.gateway.to_string()),
                    c.ip_range.map(|r| r.to_string()),
                    &c.aux_addresses,
                )
            }))
            .collect(),
    };
    let (enable4, enable6) = match n.config_only() {
        Some(c) => (c.ipv4, c.ipv6),
        None => (v4.is_some(), v6.is_some()),
    };
    let containers: BTreeMap<String, Value> = if with_containers {
        let prefix = v4.map(|c| c.subnet.prefix_len()).unwrap_or(32);
        let prefix6 = v6.map(|c| c.subnet.prefix_len()).unwrap_or(128);
        d.endpoints
            .iter()
            .map(|e| {
                // Docker writes "" rather than leaving the field out.
                let ip4 = e
                    .endpoint
                    .ip
                    .map(|a| format!("{a}/{prefix}"))
                    .unwrap_or_default();
                let ip6 = e
                    .endpoint
                    .ip6
                    .map(|a| format!("{a}/{prefix6}"))
                    .unwrap_or_default();
                (
                    e.endpoint.sandbox.to_string(),
                    json!({
                        "Name": e.sandbox_name,
                        "EndpointID": e.endpoint.id,
                        "MacAddress": e.endpoint.mac.to_string(),
                        "IPv4Address": ip4,
                        "IPv6Address": ip6,
                    }),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut options = n.options.clone();
    if let Some(b) = b.filter(|_| n.overlay().is_none()) {
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| b.bridge.to_string());
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": scope(n),
        "Driver": driver_name(n),
        "EnableIPv4": enable4,
        "EnableIPv6": enable6,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": b.is_some_and(|b| b.internal),
        "Attachable": n.overlay().is_some(),
        "Ingress": false,
        "ConfigFrom": { "Network": n.config_from.as_ref().map_or("", |f| f.as_str()) },
        "ConfigOnly": n.config_only().is_some(),
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// An event in the shape of Docker's `GET /events` stream.
pub fn event(e: &Event) -> Value {
    let mut attrs = e.attributes.clone();
    attrs.insert("name".into(), e.name.clone());
    json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": attrs },
        "scope": "local",
        "time": e.time,
        "timeNano": e.time_nano,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_resource_lists_both_configs_and_addresses() {
        use crate::model::{Endpoint, fixtures};
        use crate::ops::EndpointDetail;
        let n = fixtures::with_ipv6(fixtures::network("ds", "10.9.0.0/24"), "fd00:9::/64");
        let s = fixtures::sandbox("a");
        let mut e = fixtures::endpoint(&n, &s, "10.9.0.2", &[], &[]);
        e.ip6 = Some("fd00:9::2".parse().unwrap());
        let v4only = fixtures::endpoint(&n, &fixtures::sandbox("b"), "10.9.0.3", &[], &[]);
        let detail = |e: Endpoint, name: &str| EndpointDetail {
            network_name: n.name.clone(),
            sandbox_name: name.parse().unwrap(),
            host_veth: e.host_veth(),
            endpoint: e,
        };
        let d = NetworkDetail {
            endpoints: vec![detail(e.clone(), "a"), detail(v4only.clone(), "b")],
            network: n,
        };
        let r = network_resource(&d, true);
        assert_eq!(r["EnableIPv4"], true);
        assert_eq!(r["EnableIPv6"], true);
        let config = r["IPAM"]["Config"].as_array().unwrap();
        assert_eq!(config.len(), 2);
        assert_eq!(config[0]["Subnet"], "10.9.0.0/24");
        assert_eq!(config[1]["Subnet"], "fd00:9::/64");
        assert_eq!(config[1]["Gateway"], "fd00:9::1");
        assert!(config[1].get("IPRange").is_none());
        let c = &r["Containers"][e.sandbox.as_str()];
        assert_eq!(c["IPv6Address"], "fd00:9::2/64");
        assert_eq!(c["IPv4Address"], "10.9.0.2/24");
        assert_eq!(r["Containers"][v4only.sandbox.as_str()]["IPv6Address"], "");
    }

    #[test]
    fn ipv4_only_resource_says_so() {
        let n = crate::model::fixtures::network("v4", "10.9.1.0/24");
        let r = network_resource(
            &NetworkDetail {
                network: n,
                endpoints: vec![],
            },
            true,
        );
        assert_eq!(r["EnableIPv6"], false);
        assert_eq!(r["IPAM"]["Config"].as_array().unwrap().len(), 1);
        assert!(r["IPAM"]["Config"][0].get("AuxiliaryAddresses").is_none());
    }
}
