//! Docker Engine API shapes for the network routes, so the stock `docker`
//! CLI can drive netd. Only translation lives here: every route calls the
//! same operation as netd's own API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod filters;

pub use filters::*;

use crate::model::{Driver, EndpointRequest, Mac, Network, NetworkCreate};
use crate::ops::{Event, NetworkDetail};

/// The API version netd speaks; the docker CLI negotiates down to it.
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

fn driver_name(n: &Network) -> &'static str {
    match n.driver {
        Driver::Bridge(_) => "bridge",
        Driver::Host => "host",
        Driver::Null => "null",
    }
}

/// A network as `GET /networks/{id}` returns it.
pub fn network_resource(d: &NetworkDetail, with_containers: bool) -> Value {
    let n = &d.network;
    let config: Vec<Value> = n
        .bridge()
        .map(|b| {
            let mut c = json!({ "Subnet": b.subnet.to_string(), "Gateway": b.gateway.to_string() });
            if let Some(r) = b.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            vec![c]
        })
        .unwrap_or_default();
    let containers: BTreeMap<String, Value> = if with_containers {
        d.endpoints
            .iter()
            .map(|e| {
                let prefix = n.bridge().map(|b| b.subnet.prefix_len()).unwrap_or(32);
                (
                    e.endpoint.sandbox.to_string(),
                    json!({
                        "Name": e.sandbox_name,
                        "EndpointID": e.endpoint.id,
                        "MacAddress": e.endpoint.mac.to_string(),
                        "IPv4Address": format!("{}/{}", e.endpoint.ip, prefix),
                        "IPv6Address": "",
                    }),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut options = n.options.clone();
    if let Some(b) = n.bridge() {
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| b.bridge.to_string());
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": driver_name(n),
        "EnableIPv4": n.bridge().is_some(),
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": n.bridge().is_some_and(|b| b.internal),
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Option<Vec<IpamConfig>>,
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
}

impl CreateRequest {
    pub fn into_netd(self) -> Result<NetworkCreate, String> {
        if self.enable_ipv4 == Some(false) {
            return Err("IPv6-only networks (EnableIPv4: false) are not supported yet".into());
        }
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
        let (mut v4, mut v6) = (None, None);
        for c in ipam.config.unwrap_or_default() {
            let is_v6 = [&c.subnet, &c.gateway, &c.ip_range]
                .iter()
                .any(|v| v.as_deref().is_some_and(|v| v.contains(':')));
            let slot = if is_v6 { &mut v6 } else { &mut v4 };
            if slot.is_some() {
                let family = if is_v6 { "IPv6" } else { "IPv4" };
                return Err(format!(
                    "two {family} IPAM configs: give at most one per family"
                ));
            }
            *slot = Some(c);
        }
        let c: IpamConfig = v4.unwrap_or_default();
        let c6: IpamConfig = v6.unwrap_or_default();
        Ok(NetworkCreate {
            name: self.name,
            driver: self.driver.unwrap_or_default(),
            subnet: c.subnet,
            gateway: c.gateway,
            ip_range: c.ip_range,
            ipv6: self.enable_ipv6.unwrap_or(false),
            subnet6: c6.subnet,
            gateway6: c6.gateway,
            ip_range6: c6.ip_range,
            internal: self.internal,
            options: self.options.unwrap_or_default(),
            labels: self.labels.unwrap_or_default(),
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
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
            ifname: None,
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
        "timeNano": e.time * 1_000_000_000,
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
}
