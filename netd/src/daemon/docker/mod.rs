//! Docker Engine API shapes for the network routes, so the stock `docker`
//! CLI can drive netd. Only translation lives here: every route calls the
//! same operation as netd's own API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod filters;

pub use filters::*;

use crate::model::{ConfigOnly, EndpointOpts, EndpointRequest, Mac, Network, NetworkCreate};
use crate::ops::{Event, NetworkDetail};

/// The API version netd speaks; the docker CLI negotiates down to it.
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

fn driver_name(n: &Network) -> &'static str {
    n.driver.name()
}

/// Docker's scope: "global" for a network of the cluster (as Docker's
/// overlay networks on a cluster store were), "local" for the others.
fn scope(n: &Network) -> &'static str {
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

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: Option<String>,
    #[serde(rename = "IPRange")]
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

impl IpamConfig {
    fn values(&self) -> impl Iterator<Item = &str> {
        [&self.subnet, &self.gateway, &self.ip_range]
            .into_iter()
            .filter_map(|v| v.as_deref())
    }

    /// The entry as a message names it: its subnet, else what it has.
    fn describe(&self) -> String {
        match &self.subnet {
            Some(s) => format!("{s:?}"),
            None => match self.values().next() {
                Some(v) => format!("{v:?}"),
                None => "{}".into(),
            },
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Option<Vec<IpamConfig>>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    #[serde(default)]
    pub network: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default, rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default, rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(default, rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub config_only: bool,
    #[serde(default)]
    pub config_from: Option<ConfigReference>,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub scope: Option<String>,
}

impl CreateRequest {
    /// Fields netd takes only at their defaults: anything else is refused
    /// naming the field, rather than a network that is not what was asked.
    fn refuse_unsupported(&self) -> Result<(), String> {
        // Every overlay network of netd's takes standalone sandboxes: what
        // Docker's `--attachable` asks for.
        let overlay = self.driver.as_deref() == Some("overlay");
        if (self.attachable && !overlay) || self.ingress {
            let what = if self.ingress {
                "Ingress"
            } else {
                "Attachable"
            };
            return Err(format!(
                "{what} is a swarm setting: netd takes it only as Attachable on an overlay network"
            ));
        }
        if let Some(s) = self.scope.as_deref().filter(|s| !s.is_empty()) {
            let overlay = self.driver.as_deref() == Some("overlay");
            match (s, overlay) {
                ("local", false) | ("global", true) => {}
                _ => {
                    return Err(format!(
                        "Scope {s:?} is not supported here: \"local\" for bridge networks, \"global\" for overlay networks"
                    ));
                }
            }
        }
        if let Some((k, _)) = self
            .ipam
            .as_ref()
            .and_then(|i| i.options.as_ref())
            .and_then(|o| o.iter().next())
        {
            return Err(format!(
                "IPAM.Options {k:?} is not supported: the default IPAM driver takes no options"
            ));
        }
        Ok(())
    }

    pub fn into_netd(self) -> Result<NetworkCreate, String> {
        self.refuse_unsupported()?;
        let ipam = self.ipam.unwrap_or_default();
        if let Some(d) = ipam.driver.as_deref()
            && !d.is_empty()
            && d != "default"
        {
            return Err(format!(
                "IPAM driver {d:?} is not supported: only \"default\""
            ));
        }
        // One config per family, told apart by what it holds (Docker's
        // own rule): an IPv6 subnet, or an IPv6 gateway without a subnet.
        let (mut v4, mut v6): (Option<IpamConfig>, Option<IpamConfig>) = (None, None);
        for c in ipam.config.unwrap_or_default() {
            let is_v6 = c.values().any(|v| v.contains(':'));
            let slot = if is_v6 { &mut v6 } else { &mut v4 };
            if let Some(first) = slot {
                let family = if is_v6 { "IPv6" } else { "IPv4" };
                return Err(format!(
                    "two {family} IPAM configs ({} and {}): give at most one per family",
                    first.describe(),
                    c.describe()
                ));
            }
            *slot = Some(c);
        }
        let enable_ipv6 = self.enable_ipv6.unwrap_or(false);
        // Said in Docker's terms here: the model's message names netd's flag.
        if !enable_ipv6 && let Some(c) = &v6 {
            return Err(format!(
                "IPAM config {} is IPv6, but EnableIPv6 is not set (docker network create --ipv6)",
                c.describe()
            ));
        }
        let c: IpamConfig = v4.unwrap_or_default();
        let c6: IpamConfig = v6.unwrap_or_default();
        // Docker keeps them per entry; netd per family, so an address of the
        // other family than its entry's would land in the wrong subnet.
        let mut aux_addresses = BTreeMap::new();
        for (entry, is_v6) in [(&c, false), (&c6, true)] {
            for (name, ip) in entry.auxiliary_addresses.iter().flatten() {
                if ip.contains(':') != is_v6 {
                    return Err(format!(
                        "AuxiliaryAddresses {name}={ip} is not of the family of IPAM config {}",
                        entry.describe()
                    ));
                }
                if aux_addresses.insert(name.clone(), ip.clone()).is_some() {
                    return Err(format!(
                        "AuxiliaryAddresses name {name:?} is given twice (once per family)"
                    ));
                }
            }
        }
        Ok(NetworkCreate {
            name: self.name,
            driver: self.driver.unwrap_or_default(),
            subnet: c.subnet,
            gateway: c.gateway,
            ip_range: c.ip_range,
            ipv4: self.enable_ipv4,
            ipv6: enable_ipv6,
            subnet6: c6.subnet,
            gateway6: c6.gateway,
            ip_range6: c6.ip_range,
            internal: self.internal,
            options: self.options.unwrap_or_default(),
            labels: self.labels.unwrap_or_default(),
            aux_addresses,
            dns: Vec::new(),
            config_only: self.config_only,
            // Docker's CLI sends `{"Network": ""}` when none is given.
            config_from: self
                .config_from
                .map(|c| c.network)
                .filter(|n| !n.is_empty()),
        })
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: Option<String>,
    #[serde(default, rename = "LinkLocalIPs")]
    pub link_local_ips: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub gw_priority: Option<i64>,
    #[serde(default)]
    pub links: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectRequest {
    pub container: String,
    #[serde(default)]
    pub endpoint_config: Option<EndpointSettings>,
}

impl ConnectRequest {
    pub fn endpoint(&self) -> Result<EndpointRequest, String> {
        let Some(ec) = &self.endpoint_config else {
            return Ok(EndpointRequest::default());
        };
        // Refused, not dropped: each would change what the container gets.
        let opts = EndpointOpts::parse(
            ec.driver_opts
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| format!("EndpointConfig.DriverOpts: {}", e.0))?;
        if let Some(l) = ec.links.as_ref().filter(|l| !l.is_empty()) {
            return Err(format!(
                "EndpointConfig.Links {l:?} (legacy links) are not supported: use aliases"
            ));
        }
        let ip = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("invalid IPv4 address {s:?}")))
            .transpose()?;
        let ip6 = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv6_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("invalid IPv6 address {s:?}")))
            .transpose()?;
        // Checked as link-local (and counted) by the endpoint's validation.
        let link_local_ips = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.link_local_ips.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("invalid link-local address {s:?} in LinkLocalIPs"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mac = ec
            .mac_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Mac>().map_err(|e| e.to_string()))
            .transpose()?;
        Ok(EndpointRequest {
            ip,
            ip6,
            aliases: ec.aliases.clone().unwrap_or_default(),
            ports: vec![],
            mac,
            ifname: opts.ifname,
            gw_priority: ec.gw_priority.unwrap_or(0),
            link_local_ips,
            sysctls: opts.sysctls,
            egress_ifb: false,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectRequest {
    pub container: String,
    #[serde(default)]
    pub force: bool,
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    pub warning: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_translation() {
        let r: CreateRequest = serde_json::from_str(
            r#"{"Name":"n","Driver":"bridge","IPAM":{"Driver":"default","Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.1","IPRange":"10.9.0.128/25"}]},"Internal":true,"Options":{},"Labels":{"a":"b"}}"#,
        )
        .unwrap();
        let c = r.into_netd().unwrap();
        assert_eq!(c.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(c.ip_range.as_deref(), Some("10.9.0.128/25"));
        assert!(c.internal);
        assert_eq!(c.labels["a"], "b");
    }

    fn create(body: &str) -> Result<NetworkCreate, String> {
        serde_json::from_str::<CreateRequest>(body)
            .unwrap()
            .into_netd()
    }

    #[test]
    fn dual_stack_create_takes_one_config_per_family_in_any_order() {
        let c = create(
            r#"{"Name":"n","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:9::/64","Gateway":"fd00:9::fe","IPRange":"fd00:9::/80"},{"Subnet":"10.9.0.0/24"}]},"Options":{"com.docker.network.bridge.gateway_mode_ipv6":"routed"}}"#,
        )
        .unwrap();
        assert!(c.ipv6);
        assert_eq!(c.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(c.subnet6.as_deref(), Some("fd00:9::/64"));
        assert_eq!(c.gateway6.as_deref(), Some("fd00:9::fe"));
        assert_eq!(c.ip_range6.as_deref(), Some("fd00:9::/80"));
        assert_eq!(
            c.options["com.docker.network.bridge.gateway_mode_ipv6"],
            "routed"
        );
        // EnableIPv6 alone: the IPv6 subnet comes from the pool.
        let c = create(r#"{"Name":"n","EnableIPv6":true}"#).unwrap();
        assert!(c.ipv6 && c.subnet6.is_none());
    }

    #[test]
    fn bad_dual_stack_creates_name_the_values() {
        let e = create(
            r#"{"Name":"n","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:1::/64"},{"Subnet":"fd00:2::/64"}]}}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("two IPv6") && e.contains("fd00:1::/64") && e.contains("fd00:2::/64"),
            "{e}"
        );
        let e = create(r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"fd00:1::/64"}]}}"#).unwrap_err();
        assert!(e.contains("fd00:1::/64") && e.contains("EnableIPv6"), "{e}");
        // IPv6-only needs IPv6, and takes no IPv4 config.
        let v = create(r#"{"Name":"n","EnableIPv4":false}"#).unwrap();
        let e = v.validate().unwrap_err().0;
        assert!(e.contains("EnableIPv4") && e.contains("--ipv6"), "{e}");
        let v = create(
            r#"{"Name":"n","EnableIPv6":true,"EnableIPv4":false,"IPAM":{"Config":[{"Subnet":"10.1.0.0/24"}]}}"#,
        )
        .unwrap();
        let e = v.validate().unwrap_err().0;
        assert!(e.contains("10.1.0.0/24") && e.contains("IPv6-only"), "{e}");
    }

    #[test]
    fn an_ipv6_only_create_is_taken() {
        let v = create(
            r#"{"Name":"n","EnableIPv6":true,"EnableIPv4":false,"IPAM":{"Config":[{"Subnet":"fd00:1::/64"}]}}"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        assert!(!v.ipv4 && v.subnet.is_none());
        assert_eq!(v.ipv6.unwrap().subnet.unwrap().to_string(), "fd00:1::/64");
    }

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
    fn aux_addresses_go_in_and_come_back_per_family() {
        let c = create(
            r#"{"Name":"n","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"10.9.0.0/24","AuxiliaryAddresses":{"r":"10.9.0.5"}},{"Subnet":"fd00:9::/64","AuxiliaryAddresses":{"r6":"fd00:9::5"}}]}}"#,
        )
        .unwrap();
        assert_eq!(c.aux_addresses["r"], "10.9.0.5");
        assert_eq!(c.aux_addresses["r6"], "fd00:9::5");
        let e = create(
            r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.9.0.0/24","AuxiliaryAddresses":{"r":"fd00:9::5"}}]}}"#,
        )
        .unwrap_err();
        assert!(e.contains("AuxiliaryAddresses r=fd00:9::5"), "{e}");
        let n = crate::model::fixtures::with_bridge(
            crate::model::fixtures::with_ipv6(
                crate::model::fixtures::network("a", "10.9.0.0/24"),
                "fd00:9::/64",
            ),
            |b| {
                if let Some(v4) = &mut b.ipv4 {
                    v4.aux_addresses
                        .insert("r".into(), "10.9.0.5".parse().unwrap());
                }
                if let Some(v6) = &mut b.ipv6 {
                    v6.aux_addresses
                        .insert("r6".into(), "fd00:9::5".parse().unwrap());
                }
            },
        );
        let r = network_resource(
            &NetworkDetail {
                network: n,
                endpoints: vec![],
            },
            false,
        );
        assert_eq!(
            r["IPAM"]["Config"][0]["AuxiliaryAddresses"]["r"],
            "10.9.0.5"
        );
        assert_eq!(
            r["IPAM"]["Config"][1]["AuxiliaryAddresses"]["r6"],
            "fd00:9::5"
        );
    }

    #[test]
    fn fields_netd_does_not_apply_are_refused_naming_them() {
        for (body, want) in [
            (r#"{"Name":"n","Attachable":true}"#, "Attachable"),
            (r#"{"Name":"n","Scope":"swarm"}"#, "Scope \"swarm\""),
            (
                r#"{"Name":"n","IPAM":{"Options":{"foo":"1"}}}"#,
                "IPAM.Options \"foo\"",
            ),
        ] {
            let e = create(body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        // What the docker CLI sends by default is taken.
        create(r#"{"Name":"n","ConfigOnly":false,"ConfigFrom":{"Network":""},"Attachable":false,"Ingress":false,"Scope":"local","IPAM":{"Driver":"default","Options":{},"Config":[]},"CheckDuplicate":true}"#).unwrap();
        let connect = |body: &str| {
            serde_json::from_str::<ConnectRequest>(body)
                .unwrap()
                .endpoint()
        };
        for (body, want) in [
            (
                r#"{"Container":"a","EndpointConfig":{"DriverOpts":{"x":"1"}}}"#,
                "EndpointConfig.DriverOpts: endpoint option \"x\" is not supported",
            ),
            (
                r#"{"Container":"a","EndpointConfig":{"DriverOpts":{"com.docker.network.endpoint.sysctls":"net.ipv4.conf.eth0.x=1"}}}"#,
                "represent net.X.Y.ethN.Z=V as net.X.Y.IFNAME.Z=V",
            ),
            (
                r#"{"Container":"a","EndpointConfig":{"IPAMConfig":{"LinkLocalIPs":["169.254.1"]}}}"#,
                "invalid link-local address \"169.254.1\" in LinkLocalIPs",
            ),
            (
                r#"{"Container":"a","EndpointConfig":{"Links":["b:c"]}}"#,
                "Links",
            ),
        ] {
            let e = connect(body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        connect(r#"{"Container":"a","EndpointConfig":{"DriverOpts":{},"GwPriority":0,"Links":[],"IPAMConfig":{"LinkLocalIPs":[]}}}"#).unwrap();
        // What `docker network connect --driver-opt ... --driver-opt ...` sends.
        let taken = connect(r#"{"Container":"a","EndpointConfig":{"DriverOpts":{"com.docker.network.endpoint.ifname":"web0","com.docker.network.endpoint.sysctls":"net.ipv4.conf.IFNAME.log_martians=1,net.ipv6.conf.IFNAME.accept_ra=2"}}}"#).unwrap();
        assert_eq!(taken.ifname.unwrap().as_str(), "web0");
        assert_eq!(
            taken
                .sysctls
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "net.ipv4.conf.IFNAME.log_martians=1",
                "net.ipv6.conf.IFNAME.accept_ra=2"
            ]
        );
        let taken = connect(r#"{"Container":"a","EndpointConfig":{"GwPriority":-3}}"#).unwrap();
        assert_eq!(taken.gw_priority, -3);
        // Taken as given: the endpoint's validation checks they are
        // link-local (see EndpointRequest::validate).
        let taken = connect(
            r#"{"Container":"a","EndpointConfig":{"IPAMConfig":{"LinkLocalIPs":["169.254.1.1","fe80::1"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            taken.link_local_ips,
            [
                "169.254.1.1".parse::<std::net::IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn config_only_and_config_from_go_in_and_come_back_as_docker_shows_them() {
        // What `docker network create --config-only --subnet ... --ipv6
        // --subnet fd00:7::/64 -o ...` sends.
        let c = create(
            r#"{"Name":"cfg","Driver":"bridge","ConfigOnly":true,"ConfigFrom":{"Network":""},"EnableIPv6":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"10.7.0.0/24","Gateway":"10.7.0.1"},{"Subnet":"fd00:7::/64"}]},"Options":{"com.docker.network.driver.mtu":"1400"}}"#,
        )
        .unwrap();
        assert!(c.config_only && c.config_from.is_none() && c.ipv6);
        let v = c.validate().unwrap();
        let mut n = crate::model::fixtures::network("cfg", "10.7.0.0/24");
        n.driver = crate::model::Driver::ConfigOnly(ConfigOnly::of(&v));
        n.options = v.options.clone();
        let r = network_resource(
            &NetworkDetail {
                network: n,
                endpoints: vec![],
            },
            true,
        );
        assert_eq!(r["Driver"], "null");
        assert_eq!(r["Scope"], "local");
        assert_eq!(r["ConfigOnly"], true);
        assert_eq!(r["EnableIPv6"], true);
        assert_eq!(r["IPAM"]["Config"][0]["Gateway"], "10.7.0.1");
        // Only what was given: no gateway was, for IPv6.
        assert_eq!(r["IPAM"]["Config"][1]["Subnet"], "fd00:7::/64");
        assert!(r["IPAM"]["Config"][1].get("Gateway").is_none());
        assert_eq!(r["Options"]["com.docker.network.driver.mtu"], "1400");
        assert!(r["Options"].get("com.docker.network.bridge.name").is_none());
        // `docker network create --config-from cfg real`.
        let c = create(
            r#"{"Name":"real","Driver":"bridge","ConfigOnly":false,"ConfigFrom":{"Network":"cfg"},"IPAM":{"Driver":"default","Options":{},"Config":[]},"Options":{}}"#,
        )
        .unwrap();
        assert_eq!(c.config_from.as_deref(), Some("cfg"));
        assert_eq!(c.config_refusal(), None);
        let mut real = crate::model::fixtures::network("real", "10.7.0.0/24");
        real.config_from = Some("cfg".parse().unwrap());
        let r = network_resource(
            &NetworkDetail {
                network: real,
                endpoints: vec![],
            },
            false,
        );
        assert_eq!(r["ConfigFrom"]["Network"], "cfg");
        assert_eq!(r["ConfigOnly"], false);
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
