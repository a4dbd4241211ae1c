//! What CONVENTIONS and SPEC pass beside netd's own keys: the `dns`
//! configuration object and capability, static addresses from `args` and
//! `CNI_ARGS`, the `ipRanges` capability, and the list form of `aliases`.
//! Kept apart from `conf.rs` (netd's own keys) so each reads on its own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::bandwidth::Bandwidth;
use crate::conf::NetConf;
use crate::env::cni_arg;
use crate::error::{CniError, code};

/// The `aliases` capability: CONVENTIONS' list (`["a", "b"]`, the names of
/// this attachment), or podman's map of network name to names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Aliases {
    List(Vec<String>),
    Map(BTreeMap<String, Vec<String>>),
}

impl Default for Aliases {
    fn default() -> Aliases {
        Aliases::List(Vec::new())
    }
}

impl Aliases {
    /// The names on network `net` (a map's other entries are other
    /// networks' and not this attachment's).
    pub fn on(&self, net: &str) -> Vec<String> {
        match self {
            Aliases::List(l) => l.clone(),
            Aliases::Map(m) => m.get(net).cloned().unwrap_or_default(),
        }
    }
}

/// DNS settings for the result (SPEC's `dns` object): what the runtime
/// writes into the container's resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// The keys read here, decoded and checked when the configuration is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conventions {
    /// The configuration's `dns` object, then the `dns` capability over it.
    pub dns: Dns,
    /// `args.cni.ips`.
    pub args_ips: Vec<String>,
    /// The `bandwidth` capability.
    pub bandwidth: Option<Bandwidth>,
    /// Beside netd's DNS: the nameservers asked for, which 127.0.0.11
    /// forwards the container's other names to (the result names
    /// 127.0.0.11 only, as Docker's resolv.conf does with `--dns`).
    pub upstreams: Vec<IpAddr>,
}

fn bad(m: String) -> CniError {
    CniError::new(code::INVALID_CONFIG, m)
}

fn unsupported(m: String) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, m)
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{what}: {x} is not a string")))
            })
            .collect(),
        Some(other) => Err(bad(format!("{what}: {other} is not a list of strings"))),
    }
}

fn nameservers(v: Vec<String>, what: &str) -> Result<Vec<String>, CniError> {
    for s in &v {
        s.parse::<IpAddr>()
            .map_err(|_| bad(format!("{what}: {s:?} is not an IP address")))?;
    }
    Ok(v)
}

impl Conventions {
    /// Decode from the configuration object; `netd_dns` is whether netd's
    /// own DNS (127.0.0.11) is the container's nameserver.
    pub fn parse(obj: &Map<String, Value>, netd_dns: bool) -> Result<Conventions, CniError> {
        let mut dns = Dns::default();
        match obj.get("dns") {
            None | Some(Value::Null) | Some(Value::Bool(_)) => {}
            Some(Value::Object(d)) => {
                for k in d.keys() {
                    if !["nameservers", "domain", "search", "options"].contains(&k.as_str()) {
                        return Err(unsupported(format!(
                            "unsupported field dns.{k}: the DNS object has nameservers, domain, search and options"
                        )));
                    }
                }
                dns.nameservers = nameservers(
                    strings(d.get("nameservers"), "dns.nameservers")?,
                    "dns.nameservers",
                )?;
                dns.domain = match d.get("domain") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(o) => return Err(bad(format!("dns.domain: {o} is not a string"))),
                };
                dns.search = strings(d.get("search"), "dns.search")?;
                dns.options = strings(d.get("options"), "dns.options")?;
            }
            Some(o) => {
                return Err(bad(format!(
                    "dns: {o} is neither true/false (netd's DNS) nor a DNS object"
                )));
            }
        }
        let rc = obj.get("runtimeConfig").and_then(Value::as_object);
        match rc.and_then(|r| r.get("dns")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(d)) => {
                for k in d.keys() {
                    if !["servers", "searches", "options"].contains(&k.as_str()) {
                        return Err(unsupported(format!(
                            "unsupported field runtimeConfig.dns.{k}: the dns capability has servers, searches and options"
                        )));
                    }
                }
                // The runtime's settings are the container's: they replace
                // the configuration's, field by field.
                let servers = nameservers(
                    strings(d.get("servers"), "runtimeConfig.dns.servers")?,
                    "runtimeConfig.dns.servers",
                )?;
                if !servers.is_empty() {
                    dns.nameservers = servers;
                }
                let search = strings(d.get("searches"), "runtimeConfig.dns.searches")?;
                if !search.is_empty() {
                    dns.search = search;
                }
                let options = strings(d.get("options"), "runtimeConfig.dns.options")?;
                if !options.is_empty() {
                    dns.options = options;
                }
            }
            Some(o) => return Err(bad(format!("runtimeConfig.dns: {o} is not an object"))),
        }
        let mut upstreams = Vec::new();
        if netd_dns {
            for s in std::mem::take(&mut dns.nameservers) {
                let ip: IpAddr = s
                    .parse()
                    .map_err(|_| bad(format!("dns nameserver {s:?} is not an IP address")))?;
                if !upstreams.contains(&ip) {
                    upstreams.push(ip);
                }
            }
        }
        let args_ips = match obj.get("args").and_then(|a| a.get("cni")) {
            Some(cni) => strings(cni.get("ips"), "args.cni.ips")?,
            None => Vec::new(),
        };
        let bandwidth = match rc.and_then(|r| r.get("bandwidth")) {
            None | Some(Value::Null) => None,
            Some(v) => Bandwidth::parse(v)?,
        };
        Ok(Conventions {
            dns,
            upstreams,
            args_ips,
            bandwidth,
        })
    }

    /// The result's `dns`: `current` (netd's nameserver, or a previous
    /// plugin's settings) with these settings over it.
    pub fn result_dns(&self, current: &Value) -> Value {
        let mut out = current.as_object().cloned().unwrap_or_default();
        let d = &self.dns;
        if !d.nameservers.is_empty() {
            out.insert("nameservers".into(), json!(d.nameservers));
        }
        if let Some(dom) = &d.domain {
            out.insert("domain".into(), json!(dom));
        }
        if !d.search.is_empty() {
            out.insert("search".into(), json!(d.search));
        }
        if !d.options.is_empty() {
            out.insert("options".into(), json!(d.options));
        }
        Value::Object(out)
    }
}

/// The static addresses asked for, each with where it came from:
/// `runtimeConfig.ips`, `args.cni.ips`, and `CNI_ARGS` `IP=` (one address
/// or a comma-separated list, with or without a prefix).
pub fn static_ips(conf: &NetConf, args: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = conf
        .runtime_config
        .ips
        .iter()
        .map(|s| ("runtimeConfig.ips", s.clone()))
        .collect();
    out.extend(
        conf.conventions
            .args_ips
            .iter()
            .map(|s| ("args.cni.ips", s.clone())),
    );
    if let Some(ip) = cni_arg(args, "IP") {
        out.extend(
            ip.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| ("CNI_ARGS IP", s.to_string())),
        );
    }
    out
}

/// `CNI_ARGS` keys netd-cni reads (`K8S_POD_NAME` is a DNS name, `IP` a
/// static address) or knows as the pod's identity, which asks for nothing.
const CNI_ARGS_KNOWN: &[&str] = &[
    "IgnoreUnknown",
    "IP",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// As the reference plugins read `CNI_ARGS`: `KEY=VALUE` pairs, and a key
/// the plugin does not know is an error unless `IgnoreUnknown` is set.
pub fn check_cni_args(args: &str) -> Result<(), CniError> {
    let pairs = args
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=').ok_or_else(|| {
                CniError::new(
                    code::INVALID_ENV,
                    format!("CNI_ARGS: invalid pair {p:?} (KEY=VALUE;...)"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ignore = pairs.iter().any(|(k, v)| {
        *k == "IgnoreUnknown" && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
    });
    match pairs.iter().find(|(k, _)| !CNI_ARGS_KNOWN.contains(k)) {
        Some((k, v)) if !ignore => Err(unsupported(format!(
            "unsupported field CNI_ARGS {k}={v}: netd-cni reads {} (set IgnoreUnknown=1 to pass others)",
            CNI_ARGS_KNOWN.join(", ")
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::conf::parse_with as parse;

    #[test]
    fn aliases_as_a_list_or_a_map() {
        let c = parse(r#","runtimeConfig":{"aliases":["a","b"]}"#).unwrap();
        assert_eq!(c.names(""), vec!["a", "b"]);
        let c = parse(r#","runtimeConfig":{"aliases":{"n":["a"],"m":["z"]}}"#).unwrap();
        assert_eq!(c.names(""), vec!["a"]);
        assert_eq!(
            parse(r#","runtimeConfig":{"aliases":"a"}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn cni_args_unknown_keys_need_ignore_unknown() {
        assert!(check_cni_args("").is_ok());
        assert!(check_cni_args("K8S_POD_NAME=a;K8S_POD_NAMESPACE=b;IP=10.0.0.5").is_ok());
        assert!(check_cni_args("IgnoreUnknown=1;FOO=bar").is_ok());
        assert!(check_cni_args("IgnoreUnknown=true;FOO=bar").is_ok());
        let e = check_cni_args("FOO=bar").unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("FOO=bar"), "{e}");
        assert_eq!(check_cni_args("FOO").unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn dns_object_then_capability() {
        let c = parse(
            r#","dns":{"nameservers":["10.0.0.53"],"search":["a"]},"runtimeConfig":{"dns":{"options":["ndots:3"]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.conventions.result_dns(&json!({})),
            json!({ "nameservers": ["10.0.0.53"], "search": ["a"], "options": ["ndots:3"] })
        );
        for (bad, want) in [
            (r#","dns":{"nameservers":["x"]}"#, code::INVALID_CONFIG),
            (r#","dns":{"sortlist":[]}"#, code::UNSUPPORTED_FIELD),
            (r#","dns":"yes""#, code::INVALID_CONFIG),
            (
                r#","runtimeConfig":{"dns":{"domain":"x"}}"#,
                code::UNSUPPORTED_FIELD,
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err().code, want, "{bad}");
        }
        // Beside netd's DNS the nameservers are where 127.0.0.11 forwards;
        // the result names 127.0.0.11 alone (added by ADD).
        let c = parse(
            r#","dnsEnabled":true,"dns":{"nameservers":["10.0.0.53"],"search":["a"]},"runtimeConfig":{"dns":{"servers":["10.0.0.54","10.0.0.54"]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.conventions.upstreams,
            ["10.0.0.54".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            c.conventions
                .result_dns(&json!({ "nameservers": ["127.0.0.11"] })),
            json!({ "nameservers": ["127.0.0.11"], "search": ["a"] })
        );
        // DEL is not stopped by what ADD refuses.
        assert!(
            NetConf::parse_for_del(
                br#"{"cniVersion":"1.1.0","name":"n","type":"netd-cni","vlan":5}"#
            )
            .is_ok()
        );
    }
}
