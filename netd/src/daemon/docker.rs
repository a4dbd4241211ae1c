//! Docker Engine API shapes for the network routes, so the stock `docker`
//! CLI can drive netd. Only translation lives here: every route calls the
//! same operation as netd's own API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl CreateRequest {
    pub fn into_netd(self) -> Result<NetworkCreate, String> {
        if self.enable_ipv6 == Some(true) {
            return Err("IPv6 networks are not supported yet".into());
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
        let mut configs = ipam.config.unwrap_or_default();
        if configs.len() > 1 {
            return Err("only one IPAM config (one IPv4 subnet) per network is supported".into());
        }
        let c = configs.pop().unwrap_or_default();
        Ok(NetworkCreate {
            name: self.name,
            driver: self.driver.unwrap_or_default(),
            subnet: c.subnet,
            gateway: c.gateway,
            ip_range: c.ip_range,
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
        let mac = ec
            .mac_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Mac>().map_err(|e| e.to_string()))
            .transpose()?;
        Ok(EndpointRequest {
            ip,
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

/// Docker's `filters` query parameter: `{"key": {"value": true}}`, or the
/// older `{"key": ["value"]}`.
#[derive(Debug, Default, Clone)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> Result<Filters, String> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| format!("invalid filters: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("invalid filters: expected a JSON object")?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                Value::Object(m) => m
                    .iter()
                    .filter(|(_, b)| b.as_bool() == Some(true))
                    .map(|(s, _)| s.clone())
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => return Err(format!("invalid filter {k:?}")),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    /// Refuse keys the route does not know, naming them.
    pub fn check(&self, known: &[&str]) -> Result<(), String> {
        for k in self.0.keys() {
            if !known.contains(&k.as_str()) {
                return Err(format!("invalid filter '{k}'"));
            }
        }
        Ok(())
    }

    /// Every value of `key` must match (AND across keys, OR within a key).
    fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) if vals.is_empty() => true,
            Some(vals) => vals.iter().any(|v| f(v)),
        }
    }

    fn labels_match(&self, n: &Network) -> bool {
        self.any("label", |l| match l.split_once('=') {
            Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
            None => n.labels.contains_key(l),
        })
    }

    pub fn network_matches(&self, d: &NetworkDetail) -> bool {
        let n = &d.network;
        self.any("name", |s| n.name.as_str().contains(s))
            && self.any("id", |s| n.id.as_str().starts_with(s))
            && self.any("driver", |s| s == driver_name(n))
            && self.any("scope", |s| s == "local")
            && self.any("type", |s| match s {
                "custom" => !n.is_predefined(),
                "builtin" => n.is_predefined(),
                _ => false,
            })
            && self.any("dangling", |s| match s {
                "true" | "1" => d.endpoints.is_empty() && !n.is_predefined(),
                "false" | "0" => !d.endpoints.is_empty() || n.is_predefined(),
                _ => false,
            })
            && self.labels_match(n)
    }

    /// `prune` filters: `label`, `label!`, `until` (a Unix time or RFC 3339).
    pub fn prune_matches(&self, n: &Network, now: u64) -> bool {
        let not_label = match self.0.get("label!") {
            None => true,
            Some(vals) => !vals.iter().any(|l| match l.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(l),
            }),
        };
        let until_ok = self.any("until", |u| match parse_until(u, now) {
            Some(limit) => rfc3339_secs(&n.created).is_some_and(|c| c < limit),
            None => false,
        });
        self.labels_match(n) && not_label && until_ok
    }
}

/// `until` takes a Unix timestamp, an RFC 3339 time, or a Go duration like
/// `24h`/`30m`/`10s` meaning that long ago.
fn parse_until(s: &str, now: u64) -> Option<u64> {
    if let Ok(t) = s.parse::<u64>() {
        return Some(t);
    }
    if let Some(t) = rfc3339_secs(s) {
        return Some(t);
    }
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    now.checked_sub(secs)
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (the form netd writes).
fn rfc3339_secs(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days-from-civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
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
    fn filters_both_shapes() {
        let f = Filters::parse(Some(r#"{"name":{"web":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(f.0["name"], vec!["web"]);
        assert_eq!(f.0["label"], vec!["a=b"]);
        assert!(f.check(&["name", "label"]).is_ok());
        assert!(f.check(&["name"]).unwrap_err().contains("label"));
        assert!(Filters::parse(Some("[1]")).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_secs("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(
            rfc3339_secs(&crate::model::now_rfc3339()).map(|t| t > 1_700_000_000),
            Some(true)
        );
        assert_eq!(parse_until("1h", 10_000), Some(6_400));
        assert_eq!(parse_until("123", 0), Some(123));
        assert_eq!(parse_until("x", 0), None);
    }

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
