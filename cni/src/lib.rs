//! The CNI protocol for netd: configuration, results and errors as SPEC
//! 1.1.0 writes them. Pure types and conversions; `main.rs` does the I/O
//! and calls netd's operations.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// CNI error codes (SPEC "Error" section).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_LATER: u32 = 11;
    pub const NOT_READY: u32 = 50;
    pub const GENERIC: u32 = 999;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, d: impl Into<String>) -> CniError {
        self.details = d.into();
        self
    }

    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({ "cniVersion": version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

/// One port mapping as runtimes pass it in `runtimeConfig.portMappings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

impl PortMap {
    /// As netd's publish spec.
    pub fn spec(&self) -> String {
        let proto = self
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase();
        match self.host_ip.as_deref().filter(|h| !h.is_empty()) {
            Some(ip) => format!("{ip}:{}:{}/{proto}", self.host_port, self.container_port),
            None => format!("{}:{}/{proto}", self.host_port, self.container_port),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMap>,
    /// `{"NETWORK": ["a", "b"]}`.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

/// The plugin's configuration (one entry of a conflist, with `name` and
/// `cniVersion` filled in by the runtime).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns: bool,
    /// Isolate containers of this network from each other (ICC off).
    #[serde(default)]
    pub isolate: bool,
    #[serde(default = "yes")]
    pub ip_masq: bool,
    #[serde(default)]
    pub state_dir: Option<String>,
    #[serde(default)]
    pub socket: Option<String>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
}

fn yes() -> bool {
    true
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(code::DECODE, "cannot decode the network configuration")
                .details(e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(v).map_err(|e| {
            CniError::new(code::INVALID_CONFIG, "invalid network configuration")
                .details(e.to_string())
        })?;
        if !SUPPORTED.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("unsupported cniVersion {}", conf.cni_version),
            )
            .details(format!("supported: {}", SUPPORTED.join(", "))));
        }
        Ok(conf)
    }

    /// netd network options for these keys.
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut o = BTreeMap::new();
        if let Some(b) = &self.bridge {
            o.insert("com.docker.network.bridge.name".to_string(), b.clone());
        }
        if let Some(m) = self.mtu {
            o.insert("com.docker.network.driver.mtu".to_string(), m.to_string());
        }
        if !self.ip_masq {
            o.insert(
                "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                "false".to_string(),
            );
        }
        if self.isolate {
            o.insert(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            );
        }
        o
    }
}

/// What an ADD produced, in netd's terms, before it is written in a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub host_ifname: String,
    pub ifname: String,
    pub mac: String,
    pub netns: String,
    pub address: String,
    pub gateway: String,
    pub default_route: bool,
    pub dns: bool,
}

/// The ADD result in the version the configuration asks for.
pub fn result(version: &str, a: &Attachment) -> Value {
    let legacy = version.starts_with("0.");
    let mut ip = json!({ "address": a.address, "gateway": a.gateway, "interface": 1 });
    if legacy {
        ip["version"] = json!("4");
    }
    let mut r = json!({
        "cniVersion": version,
        "interfaces": [
            { "name": a.host_ifname },
            { "name": a.ifname, "mac": a.mac, "sandbox": a.netns },
        ],
        "ips": [ip],
        "routes": if a.default_route { json!([{ "dst": "0.0.0.0/0", "gw": a.gateway }]) } else { json!([]) },
    });
    r["dns"] = if a.dns {
        json!({ "nameservers": ["127.0.0.11"] })
    } else {
        json!({})
    };
    r
}

/// Container ids are free-form; sandbox names are `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`.
pub fn sandbox_name(container_id: &str) -> String {
    let mut s: String = container_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.replace_range(0..s.chars().next().map_or(0, char::len_utf8), "c");
    }
    s
}

/// The `K8S_POD_NAME` (or another key) of CNI_ARGS: `K=V;K=V`.
pub fn cni_arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_have_the_right_codes() {
        assert_eq!(NetConf::parse(b"{nope").unwrap_err().code, code::DECODE);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","type":"netd-cni"}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"9.9.9","name":"n","type":"netd-cni"}"#)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"netd-cni","subnet":"10.0.0.0/24","ipMasq":false,
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp"}],"aliases":{"n":["web"]}}}"#,
        )
        .unwrap();
        assert!(!c.ip_masq);
        assert_eq!(c.runtime_config.port_mappings[0].spec(), "8080:80/udp");
        assert_eq!(
            c.options()["com.docker.network.bridge.enable_ip_masquerade"],
            "false"
        );
    }

    #[test]
    fn results_by_version() {
        let a = Attachment {
            host_ifname: "nd-1".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:00:00:02".into(),
            netns: "/run/netns/x".into(),
            address: "10.0.0.2/24".into(),
            gateway: "10.0.0.1".into(),
            default_route: true,
            dns: true,
        };
        let old = result("0.3.1", &a);
        assert_eq!(old["ips"][0]["version"], "4");
        let new = result("1.1.0", &a);
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(new["dns"]["nameservers"][0], "127.0.0.11");
        assert_eq!(new["routes"][0]["dst"], "0.0.0.0/0");
    }

    #[test]
    fn names_and_args() {
        assert_eq!(sandbox_name("abc123"), "abc123");
        assert_eq!(sandbox_name("-x/y"), "cx_y");
        assert_eq!(
            cni_arg("IgnoreUnknown=1;K8S_POD_NAME=web-0", "K8S_POD_NAME"),
            Some("web-0")
        );
    }
}
