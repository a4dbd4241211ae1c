//! The configuration on stdin: reading it, decoding it in libcni's order,
//! and the runtime's capabilities and GC list in it.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use crate::conventions::{Aliases, Conventions};
use crate::env::{cni_arg, valid_cni_name, valid_plugin_name};
use crate::error::{CniError, code};
use crate::ranges::apply_ip_ranges;
use crate::version::{IMPLICIT_VERSION, SUPPORTED};

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
    /// As netd's publish spec (`[HOSTIP:]HOSTPORT:PORT/PROTO`).
    pub fn spec(&self) -> String {
        let proto = self
            .protocol
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("tcp")
            .to_ascii_lowercase();
        match self.host_ip.as_deref().filter(|h| !h.is_empty()) {
            Some(ip) if ip.contains(':') => {
                format!("[{ip}]:{}:{}/{proto}", self.host_port, self.container_port)
            }
            Some(ip) => format!("{ip}:{}:{}/{proto}", self.host_port, self.container_port),
            None => format!("{}:{}/{proto}", self.host_port, self.container_port),
        }
    }
}

/// The capabilities a runtime passes (SPEC "Deriving runtimeConfig").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMap>,
    /// `["a", "b"]` (CONVENTIONS) or `{"NETWORK": ["a", "b"]}` (podman).
    #[serde(default)]
    pub aliases: Aliases,
    /// `["10.88.0.7/16"]` or `["10.88.0.7"]`.
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

fn dns_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

fn implicit_version() -> String {
    IMPLICIT_VERSION.to_string()
}

/// The plugin's configuration (one entry of a conflist, with `name` and
/// `cniVersion` filled in by the runtime).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Without one, 0.1.0 (libcni's reading).
    #[serde(default = "implicit_version")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
    /// `false` makes (or requires) an IPv6-only network (with `ipv6`, as
    /// Docker's `--ipv4=false`); unsaid or `true`, IPv4 is on.
    #[serde(default)]
    pub ipv4: Option<bool>,
    /// Dual-stack: `true` makes (or requires) a network with an IPv6 side,
    /// `false` an IPv4-only one; unsaid, `subnet6` (or a delegated IPAM
    /// plugin's IPv6 lease) turns it on and an existing network may be
    /// either. Without `subnet6` the IPv6 subnet is a ULA /64 from netd's
    /// pool.
    #[serde(default)]
    pub ipv6: Option<bool>,
    /// The IPv6 side, as `subnet`, `gateway` and `ipRange` are the IPv4
    /// one: one CIDR (or address) each.
    #[serde(default)]
    pub subnet6: Option<String>,
    #[serde(default)]
    pub gateway6: Option<String>,
    #[serde(default)]
    pub ip_range6: Option<String>,
    /// NAT66 of what leaves the host (default: as `ipMasq`); false is
    /// routed IPv6: the subnet is reachable as is, the operator routes it.
    #[serde(default)]
    pub ip_masq6: Option<bool>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// No route out, no masquerade. `None`: not said (false when creating).
    #[serde(default)]
    pub internal: Option<bool>,
    /// `"dns": true` turns on netd's DNS. The CNI spec reserves `dns` in a
    /// network configuration for a DNS object (nameservers, search, ...),
    /// and libcni (podman, containerd) refuses a boolean there, so
    /// `dnsEnabled` says the same for them; a spec object here leaves
    /// netd's DNS off and goes into the result (`conventions.rs`).
    #[serde(default, deserialize_with = "dns_flag")]
    dns: bool,
    #[serde(default)]
    dns_enabled: Option<bool>,
    /// Isolate containers of this network from each other (ICC off).
    #[serde(default)]
    pub isolate: Option<bool>,
    /// Masquerade traffic leaving the host (true when creating).
    #[serde(default)]
    pub ip_masq: Option<bool>,
    /// Accept rules for the bridge in the host firewall's forward chains
    /// (`auto` or `FAMILY/TABLE/CHAIN,...`): netd's `netd.forward_accept`.
    #[serde(default)]
    pub forward_accept: Option<String>,
    #[serde(default)]
    pub state_dir: Option<String>,
    #[serde(default)]
    pub socket: Option<String>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// A delegated IPAM plugin (`{"type": "host-local", ...}`): it picks the
    /// address, netd reserves exactly that one.
    #[serde(default)]
    pub ipam: Option<Value>,
    /// SPEC's and CONVENTIONS' keys beside netd's own (`conventions.rs`).
    #[serde(skip)]
    pub conventions: Conventions,
}

/// The configuration as a JSON object, or error 6.
pub fn decode(stdin: &[u8]) -> Result<Value, CniError> {
    let bad = || CniError::new(code::DECODE, "error unmarshalling network config");
    let v: Value = serde_json::from_slice(stdin).map_err(|e| bad().details(e.to_string()))?;
    if !v.is_object() {
        return Err(bad().details("the configuration is not a JSON object"));
    }
    Ok(v)
}

impl NetConf {
    /// Whether netd's DNS serves this network's containers: `dnsEnabled`,
    /// else a boolean `dns`.
    pub fn dns(&self) -> bool {
        self.dns_enabled.unwrap_or(self.dns)
    }

    /// Decode stdin in libcni's order: JSON (6), the network name (7),
    /// `cniVersion` (1), then the plugin's own keys (7, or 2 for a key
    /// this plugin does not support).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        NetConf::parse_as(stdin, true)
    }

    /// For DEL: a runtime cleans up with the configuration its ADD was
    /// refused for, so the keys netd refuses (code 2) and the conventions'
    /// settings (which DEL does not use) do not stop it.
    pub fn parse_for_del(stdin: &[u8]) -> Result<NetConf, CniError> {
        NetConf::parse_as(stdin, false)
    }

    fn parse_as(stdin: &[u8], strict: bool) -> Result<NetConf, CniError> {
        let v = decode(stdin)?;
        let Some(obj) = v.as_object() else {
            unreachable!("decode returns objects");
        };
        match obj.get("name").and_then(Value::as_str) {
            None | Some("") => {
                return Err(CniError::new(code::INVALID_CONFIG, "missing network name"));
            }
            Some(n) if !valid_cni_name(n) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "invalid characters found in network name",
                )
                .details(n));
            }
            Some(_) => {}
        }
        let version = match obj.get("cniVersion") {
            None => IMPLICIT_VERSION,
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(
                    CniError::new(code::DECODE, "error unmarshalling network config")
                        .details("cniVersion is not a string"),
                );
            }
        };
        if !SUPPORTED.contains(&version) {
            return Err(
                CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").details(
                    format!(
                        "config is {version:?}, plugin supports [{}]",
                        SUPPORTED.join(" ")
                    ),
                ),
            );
        }
        if let Some(ipam) = obj.get("ipam").filter(|v| !v.is_null())
            && !ipam["type"].as_str().is_some_and(valid_plugin_name)
        {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("ipam needs the type of a plugin to delegate to: {ipam}"),
            ));
        }
        if strict {
            crate::keys::audit(obj)?;
        }
        check_single_values(obj)?;
        let mut conf = NetConf::deserialize(&v).map_err(|e| {
            CniError::new(code::INVALID_CONFIG, "invalid network configuration")
                .details(e.to_string())
        })?;
        if strict {
            conf.conventions = Conventions::parse(obj, conf.dns())?;
            apply_ip_ranges(&mut conf, obj)?;
        }
        conf.check_families()?;
        Ok(conf)
    }

    /// Whether the configuration asks for a dual-stack network.
    pub fn wants_ipv6(&self) -> bool {
        self.ipv6.unwrap_or(
            self.subnet6.is_some() || self.gateway6.is_some() || self.ip_range6.is_some(),
        )
    }

    /// Each address key holds its own family: an IPv6 CIDR in `subnet`
    /// (or an IPv4 one in `subnet6`) is refused naming the key to use, and
    /// `ipv6: false` beside an IPv6 key naming that key.
    fn check_families(&self) -> Result<(), CniError> {
        let bad = |m: String| Err(CniError::new(code::INVALID_CONFIG, m));
        for (key, other, v, want_v6) in [
            ("subnet", "subnet6", &self.subnet, false),
            ("gateway", "gateway6", &self.gateway, false),
            ("ipRange", "ipRange6", &self.ip_range, false),
            ("subnet6", "subnet", &self.subnet6, true),
            ("gateway6", "gateway", &self.gateway6, true),
            ("ipRange6", "ipRange", &self.ip_range6, true),
        ] {
            let Some(v) = v else { continue };
            let v6 = v.contains(':');
            if v6 != want_v6 {
                let (is, takes) = if v6 {
                    ("IPv6", "IPv4")
                } else {
                    ("IPv4", "IPv6")
                };
                return bad(format!(
                    "{key} {v:?} is {is}: {key} takes {takes}, give it as {other}"
                ));
            }
            if want_v6 && self.ipv6 == Some(false) {
                return bad(format!("{key} {v:?} asks for IPv6, but ipv6 is false"));
            }
        }
        match (self.ip_masq6, self.ip_masq, self.ipv6) {
            (Some(_), _, Some(false)) => {
                return bad("ipMasq6 is set, but ipv6 is false".into());
            }
            // netd's NAT66 is part of masquerading: off whenever it is.
            (Some(true), Some(false), _) => {
                return bad("ipMasq6 true needs ipMasq: NAT66 is off when masquerading is".into());
            }
            _ => {}
        }
        Ok(())
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
        if self.ip_masq == Some(false) {
            o.insert(
                "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                "false".to_string(),
            );
        }
        if self.isolate == Some(true) {
            o.insert(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            );
        }
        if let Some(f) = &self.forward_accept {
            o.insert(netd::model::OPT_FORWARD_ACCEPT.to_string(), f.clone());
        }
        o
    }

    /// The DNS names of the container on this network: the runtime's
    /// aliases for it, and the pod name of CNI_ARGS.
    pub fn names(&self, args: &str) -> Vec<String> {
        let mut names = self.runtime_config.aliases.on(&self.name);
        if let Some(pod) = cni_arg(args, "K8S_POD_NAME").filter(|p| !p.is_empty()) {
            names.push(pod.to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

/// The address keys take one value each: a network has one subnet per
/// family (`subnet` and `subnet6`). A list (as host-local's `ranges` would
/// give several) is refused naming its values, not as a type error.
fn check_single_values(obj: &serde_json::Map<String, Value>) -> Result<(), CniError> {
    for key in [
        "subnet", "gateway", "ipRange", "subnet6", "gateway6", "ipRange6",
    ] {
        if let Some(Value::Array(values)) = obj.get(key) {
            let family = if key.ends_with('6') { "IPv6" } else { "IPv4" };
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "{key} takes one {family} value, got {}: a network has one subnet per family (subnet, subnet6)",
                    Value::Array(values.clone())
                ),
            ));
        }
    }
    Ok(())
}

/// The attachments a GC request lists as still valid:
/// `(containerID, ifname)` pairs of `cni.dev/valid-attachments`. The list
/// is required (CNI 1.1): GC removes everything it does not name, so a
/// missing or null list, or an entry without both keys, is refused (code 7)
/// rather than read as "nothing is valid".
pub fn valid_attachments(raw: &Value) -> Result<Vec<(String, String)>, CniError> {
    let bad = |why: String| {
        CniError::new(
            code::INVALID_CONFIG,
            "invalid network config: cni.dev/valid-attachments must be a list of {containerID, ifname}",
        )
        .details(why)
    };
    match raw.get("cni.dev/valid-attachments") {
        None => Err(bad("it is missing".into())),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(n, x)| {
                let field = |k: &str| {
                    x.get(k)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("entry {n} has no {k}: {x}")))
                };
                Ok((field("containerID")?, field("ifname")?))
            })
            .collect(),
        Some(other) => Err(bad(format!("it is {other}"))),
    }
}

/// The most a plugin reads from stdin. A configuration is a few KiB even
/// with a chained prevResult; more is refused (code 7) before it is parsed.
pub const MAX_STDIN: u64 = 1 << 20;

/// Read the configuration from `r`, at most [`MAX_STDIN`] bytes.
pub fn read_config(r: impl Read) -> Result<Vec<u8>, CniError> {
    let mut buf = Vec::new();
    r.take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CniError::new(code::IO, "error reading from stdin").details(e.to_string()))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("network config on stdin is larger than {MAX_STDIN} bytes"),
        ));
    }
    Ok(buf)
}

/// A 1.1.0 configuration of network `n` with `extra` (`,"key":value...`)
/// after its required keys: the other modules' tests build theirs so.
#[cfg(test)]
pub(crate) fn parse_with(extra: &str) -> Result<NetConf, CniError> {
    NetConf::parse(
        format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"netd-cni"{extra}}}"#).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn in_gc_list_is_required_and_whole() {
        let va = |v: Value| valid_attachments(&json!({ "cni.dev/valid-attachments": v }));
        assert_eq!(
            va(json!([{ "containerID": "a", "ifname": "eth0" }])).unwrap(),
            vec![("a".to_string(), "eth0".to_string())]
        );
        assert!(va(json!([])).unwrap().is_empty());
        assert_eq!(
            valid_attachments(&json!({})).unwrap_err().code,
            code::INVALID_CONFIG
        );
        for bad in [
            json!(null),
            json!("a"),
            json!([{ "containerID": "a" }]),
            json!([{ "ifname": "eth0" }]),
            json!([{ "containerID": "a", "ifname": "" }]),
            json!([7]),
        ] {
            assert_eq!(
                va(bad.clone()).unwrap_err().code,
                code::INVALID_CONFIG,
                "{bad}"
            );
        }
    }

    #[test]
    fn in_stdin_is_bounded() {
        let ok = vec![b' '; MAX_STDIN as usize];
        assert_eq!(read_config(&ok[..]).unwrap().len(), ok.len());
        let big = vec![b' '; MAX_STDIN as usize + 1];
        assert_eq!(
            read_config(&big[..]).unwrap_err().code,
            code::INVALID_CONFIG
        );
        // An endless stream is cut at the limit, never read to the end.
        let e = read_config(std::io::repeat(b'x')).unwrap_err();
        assert!(e.msg.contains("larger than"), "{e}");
    }

    #[test]
    fn config_errors_have_the_right_codes() {
        let code_of = |s: &str| NetConf::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code_of("{nope"), code::DECODE);
        assert_eq!(code_of("[1]"), code::DECODE);
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","type":"netd-cni"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","name":"a b","type":"netd-cni"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            code_of(r#"{"cniVersion":"9.9.9","name":"n","type":"netd-cni"}"#),
            code::INCOMPATIBLE_VERSION
        );
        // No cniVersion is 0.1.0, as libcni decodes it: spoken.
        assert_eq!(
            NetConf::parse(br#"{"name":"n","type":"netd-cni"}"#)
                .unwrap()
                .cni_version,
            "0.1.0"
        );
        let e =
            NetConf::parse(br#"{"cniVersion":"0.5.0","name":"n","type":"netd-cni"}"#).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert!(e.details.contains("0.1.0 0.2.0 0.3.0"), "{e}");
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","name":"n","type":"netd-cni","mtu":"big"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            code_of(
                r#"{"cniVersion":"1.0.0","name":"n","type":"netd-cni","ipam":{"type":"../x"}}"#
            ),
            code::INVALID_CONFIG
        );
        assert!(
            NetConf::parse(
                br#"{"cniVersion":"1.0.0","name":"n","type":"netd-cni","ipam":{"type":"host-local"}}"#
            )
            .is_ok()
        );
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"netd-cni","subnet":"10.0.0.0/24","ipMasq":false,
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp"}],"aliases":{"n":["web","web"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.ip_masq, Some(false));
        assert_eq!(c.runtime_config.port_mappings[0].spec(), "8080:80/udp");
        assert_eq!(
            c.options()["com.docker.network.bridge.enable_ip_masquerade"],
            "false"
        );
        assert_eq!(c.names("K8S_POD_NAME=pod-0"), vec!["web", "pod-0"]);
    }

    /// libcni parses `dns` as the spec's DNS object: `dnsEnabled` is the
    /// key engines can use; a boolean `dns` still works when exec'd directly.
    #[test]
    fn dns_switch_keys() {
        let dns = |extra: &str| {
            NetConf::parse(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"netd-cni"{extra}}}"#)
                    .as_bytes(),
            )
            .unwrap()
            .dns()
        };
        assert!(!dns(""));
        assert!(dns(r#","dns":true"#));
        assert!(dns(r#","dnsEnabled":true"#));
        assert!(!dns(r#","dns":{"nameservers":["10.0.0.1"]}"#));
        // Beside netd's DNS the object's search and options still apply
        // (its nameservers are refused: see conventions.rs).
        assert!(dns(
            r#","dns":{"search":["example.org"]},"dnsEnabled":true"#
        ));
        assert!(!dns(r#","dns":true,"dnsEnabled":false"#));
    }

    #[test]
    fn address_keys_hold_one_value_of_their_family() {
        let parse = |extra: &str| {
            NetConf::parse(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"netd-cni"{extra}}}"#)
                    .as_bytes(),
            )
        };
        let err = |extra: &str| {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{extra}: {e}");
            e.msg
        };
        let c = parse(r#","subnet":"10.1.0.0/24","subnet6":"fd00:1::/64","gateway6":"fd00:1::1","ipRange6":"fd00:1::/80""#).unwrap();
        assert!(c.wants_ipv6());
        assert_eq!(c.ip_range6.as_deref(), Some("fd00:1::/80"));
        assert!(parse(r#","ipv6":true"#).unwrap().wants_ipv6());
        assert!(!parse(r#","subnet":"10.1.0.0/24""#).unwrap().wants_ipv6());
        let m = err(r#","subnet":"fd00:1::/64""#);
        assert!(
            m.contains("\"fd00:1::/64\"") && m.contains("subnet6"),
            "{m}"
        );
        let m = err(r#","subnet6":"10.1.0.0/24""#);
        assert!(
            m.contains("10.1.0.0/24") && m.contains("give it as subnet"),
            "{m}"
        );
        let m = err(r#","gateway":"fd00::1""#);
        assert!(m.contains("fd00::1") && m.contains("gateway6"), "{m}");
        let m = err(r#","subnet6":["fd00:1::/64","fd00:2::/64"]"#);
        assert!(
            m.contains("fd00:1::/64") && m.contains("fd00:2::/64"),
            "{m}"
        );
        let m = err(r#","subnet6":"fd00:1::/64","ipv6":false"#);
        assert!(
            m.contains("fd00:1::/64") && m.contains("ipv6 is false"),
            "{m}"
        );
    }

    #[test]
    fn gc_attachments() {
        let raw =
            json!({ "cni.dev/valid-attachments": [{ "containerID": "a", "ifname": "eth0" }] });
        assert_eq!(
            valid_attachments(&raw).unwrap(),
            vec![("a".to_string(), "eth0".to_string())]
        );
        // The list is required: GC without it must not read "nothing is valid".
        assert!(valid_attachments(&json!({})).is_err());
        assert!(valid_attachments(&json!({ "cni.dev/valid-attachments": 3 })).is_err());
    }

    #[test]
    fn port_specs() {
        let p = |ip: &str| PortMap {
            host_port: 8080,
            container_port: 80,
            protocol: None,
            host_ip: Some(ip.into()),
        };
        assert_eq!(p("").spec(), "8080:80/tcp");
        assert_eq!(p("10.0.0.1").spec(), "10.0.0.1:8080:80/tcp");
        assert_eq!(p("::1").spec(), "[::1]:8080:80/tcp");
    }
}
