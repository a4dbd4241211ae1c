//! The CNI protocol for netd: environment, configuration, results and
//! errors as SPEC 1.1.0 (and the reference `skel` package) writes them. Pure
//! types and conversions, unit-tested without root; `main.rs` does the I/O
//! and calls netd's operations.

use std::collections::BTreeMap;
use std::io::Read;

use netd::model::{EndpointRequest, NetworkCreate};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The versions this plugin speaks, oldest first.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version a configuration without `cniVersion` is taken to ask for
/// (as libcni's decoder does): one this plugin does not speak.
pub const IMPLICIT_VERSION: &str = "0.1.0";

/// The nameserver netd's DNS answers on inside every sandbox.
pub const NAMESERVER: &str = "127.0.0.11";

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
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const GENERIC: u32 = 999;
}

/// An error result: `{"cniVersion","code","msg","details"}` on stdout.
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

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

// ---- environment --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// The `CNI_*` parameters of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub args: String,
    pub path: String,
}

/// A plugin binary name: no path, nothing a shell or a directory walk
/// would read differently.
pub fn valid_plugin_name(s: &str) -> bool {
    valid_cni_name(s) && !s.contains("..")
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: container ids and network names (SPEC
/// "Parameters", libcni's `cniValidNameChars`).
pub fn valid_cni_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_ifname(s: &str) -> Result<(), &'static str> {
    if s.len() > 15 {
        return Err("interface name is too long");
    }
    if s == "." || s == ".." {
        return Err("interface name is . or ..");
    }
    if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err("interface name contains / or : or whitespace characters");
    }
    Ok(())
}

impl Env {
    /// Read and check the parameters. Which are required follows the spec:
    /// `CNI_CONTAINERID` and `CNI_IFNAME` for ADD, DEL and CHECK,
    /// `CNI_NETNS` for ADD and CHECK, `CNI_PATH` for GC. Every missing
    /// variable is named in one error (code 4), as libcni's skel does.
    pub fn from(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let Some(raw) = get("CNI_COMMAND") else {
            return Err(CniError::new(
                code::INVALID_ENV,
                "required env variables [CNI_COMMAND] missing",
            ));
        };
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(code::INVALID_ENV, format!("unknown CNI_COMMAND: {raw}"))
        })?;
        use Command::*;
        let required: &[&str] = match command {
            Add | Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Gc => &["CNI_PATH"],
            Status | Version => &[],
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        let env = Env {
            command,
            container: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path: get("CNI_PATH").unwrap_or_default(),
        };
        if matches!(command, Add | Del | Check) {
            if !valid_cni_name(&env.container) {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    "invalid characters in CNI_CONTAINERID",
                )
                .details(env.container));
            }
            if let Err(m) = valid_ifname(&env.ifname) {
                return Err(CniError::new(code::INVALID_ENV, format!("CNI_IFNAME: {m}"))
                    .details(env.ifname));
            }
        }
        Ok(env)
    }
}

/// One `K=V` of CNI_ARGS (`K=V;K=V`).
pub fn cni_arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

// ---- versions -----------------------------------------------------------------

fn version_key(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let k = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(k)
}

/// Whether `v` is at least `min` (both `MAJOR.MINOR.PATCH`).
pub fn at_least(v: &str, min: &str) -> bool {
    matches!((version_key(v), version_key(min)), (Some(a), Some(b)) if a >= b)
}

/// The configuration's version allows the command: CHECK from 0.4.0, GC
/// and STATUS from 1.1.0 (code 1 otherwise, as libcni's skel answers).
pub fn command_allowed(command: Command, version: &str) -> Result<(), CniError> {
    let min = match command {
        Command::Check => "0.4.0",
        Command::Gc | Command::Status => "1.1.0",
        _ => return Ok(()),
    };
    if at_least(version, min) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {}", command.as_str()),
        )
        .details(format!(
            "{} needs cniVersion {min} or later, the configuration is {version}",
            command.as_str()
        )))
    }
}

// ---- configuration ----------------------------------------------------------------

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
    /// `{"NETWORK": ["a", "b"]}`.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// `["10.88.0.7/16"]` or `["10.88.0.7"]`.
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

fn dns_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

/// The plugin's configuration (one entry of a conflist, with `name` and
/// `cniVersion` filled in by the runtime).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
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
    /// `dnsEnabled` says the same for them; a spec object here is accepted
    /// and leaves netd's DNS off.
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
        serde_json::from_value(v).map_err(|e| {
            CniError::new(code::INVALID_CONFIG, "invalid network configuration")
                .details(e.to_string())
        })
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
        o
    }

    /// The DNS names of the container on this network: the runtime's
    /// aliases for it, and the pod name of CNI_ARGS.
    pub fn names(&self, args: &str) -> Vec<String> {
        let mut names = self
            .runtime_config
            .aliases
            .get(&self.name)
            .cloned()
            .unwrap_or_default();
        if let Some(pod) = cni_arg(args, "K8S_POD_NAME").filter(|p| !p.is_empty()) {
            names.push(pod.to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
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

/// The netd network a configuration asks for; `lease` is a delegated IPAM
/// plugin's address and gateway, used when the configuration has none.
pub fn network_request(
    conf: &NetConf,
    lease: Option<(ipnet::Ipv4Net, Option<std::net::Ipv4Addr>)>,
) -> NetworkCreate {
    NetworkCreate {
        name: conf.name.clone(),
        driver: "bridge".into(),
        subnet: conf
            .subnet
            .clone()
            .or_else(|| lease.map(|(a, _)| a.trunc().to_string())),
        gateway: conf
            .gateway
            .clone()
            .or_else(|| lease.and_then(|(_, g)| g).map(|g| g.to_string())),
        ip_range: conf.ip_range.clone(),
        internal: conf.internal.unwrap_or(false),
        options: conf.options(),
        labels: [("org.netd.cni".to_string(), "true".to_string())].into(),
    }
}

/// The endpoint an ADD asks for: the runtime's capabilities (ips, ports,
/// mac, aliases) and `CNI_IFNAME`, validated as netd validates any request.
pub fn endpoint_request(conf: &NetConf, e: &Env) -> Result<EndpointRequest, CniError> {
    let rc = &conf.runtime_config;
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    if rc.ips.len() > 1 {
        return Err(bad(format!(
            "runtimeConfig.ips: one IPv4 address per attachment, got {:?}",
            rc.ips
        )));
    }
    let ip = rc
        .ips
        .first()
        .map(|s| {
            s.split('/')
                .next()
                .unwrap_or(s)
                .parse()
                .map_err(|_| bad(format!("runtimeConfig.ips: invalid IPv4 address {s:?}")))
        })
        .transpose()?;
    let ports = rc
        .port_mappings
        .iter()
        .map(|p| {
            p.spec().parse().map_err(|err: netd::model::Invalid| {
                bad(format!("runtimeConfig.portMappings: {}", err.0))
            })
        })
        .collect::<Result<_, _>>()?;
    let mac = rc
        .mac
        .as_deref()
        .map(|m| {
            m.parse()
                .map_err(|err: netd::model::Invalid| bad(format!("runtimeConfig.mac: {}", err.0)))
        })
        .transpose()?;
    let ifname = e
        .ifname
        .parse()
        .map_err(|err: netd::model::Invalid| CniError::new(code::INVALID_ENV, err.0))?;
    let req = EndpointRequest {
        ip,
        aliases: conf.names(&e.args),
        ports,
        mac,
        ifname: Some(ifname),
    };
    req.validate().map_err(|err| bad(err.0))?;
    Ok(req)
}

/// The fuzz target's entry (`cni_config`): `bytes` are the environment as
/// `KEY=VALUE` lines, a NUL, then stdin. Runs the real parsers in the
/// plugin's order and every conversion into netd's requests. Must never
/// panic, whatever the input.
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) {
    let (env, stdin) = match bytes.iter().position(|b| *b == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&[][..], bytes),
    };
    let env = String::from_utf8_lossy(env);
    let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let Ok(stdin) = read_config(stdin) else {
        return;
    };
    let _ = decode(&stdin);
    let env = Env::from(|k| vars.get(k).map(|v| v.to_string()));
    let Ok(conf) = NetConf::parse(&stdin) else {
        return;
    };
    if let Ok(raw) = decode(&stdin) {
        let _ = valid_attachments(&raw);
    }
    let _ = conf.dns();
    let _ = network_request(&conf, None).validate();
    let lease = ("10.9.8.7/24".parse().ok(), "10.9.8.1".parse().ok());
    if let (Some(a), g) = lease {
        let _ = network_request(&conf, Some((a, g))).validate();
    }
    if let Ok(env) = env {
        let _ = command_allowed(env.command, &conf.cni_version);
        let _ = endpoint_request(&conf, &env);
        if let Some(prev) = &conf.prev_result {
            let _ = expected(prev, &env.ifname, env.netns.as_deref().unwrap_or(""));
        }
    }
}

// ---- results --------------------------------------------------------------------

/// What an ADD produced, in netd's terms, before it is written in a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub host_ifname: String,
    pub host_mac: String,
    pub ifname: String,
    pub mac: String,
    pub mtu: Option<u32>,
    pub netns: String,
    /// CIDR: `10.88.0.2/16`.
    pub address: String,
    pub gateway: String,
    /// The default route via `gateway` is this attachment's.
    pub default_route: bool,
    pub dns: bool,
}

/// The ADD result in the version the configuration asks for, appended to
/// `prev` (a previous plugin's result in a chain) when there is one.
pub fn result(version: &str, a: &Attachment, prev: Option<&Value>) -> Value {
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
    ips.push(json!({ "address": a.address, "gateway": a.gateway, "interface": index }));
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
    if a.default_route {
        routes.push(json!({ "dst": "0.0.0.0/0", "gw": a.gateway }));
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

/// What a CHECK expects of an attachment, read from `prevResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub mac: Option<String>,
    /// CIDRs on the container interface.
    pub addresses: Vec<String>,
    /// `(dst, gw)` routes through a gateway of those addresses (routes of
    /// other plugins in a chain are theirs to check).
    pub routes: Vec<(String, Option<String>)>,
}

/// Find the container interface `ifname` in `netns` in a previous result,
/// with its addresses and the routes through its gateways.
pub fn expected(prev: &Value, ifname: &str, netns: &str) -> Result<Expected, CniError> {
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    let ifs = prev["interfaces"]
        .as_array()
        .ok_or_else(|| bad("prevResult has no interfaces".into()))?;
    let index = ifs
        .iter()
        .position(|i| {
            i["name"].as_str() == Some(ifname)
                && i["sandbox"]
                    .as_str()
                    .is_some_and(|s| s.is_empty() || s == netns)
        })
        .ok_or_else(|| bad(format!("prevResult has no interface {ifname} in {netns}")))?;
    let mut addresses = Vec::new();
    let mut gateways = Vec::new();
    for ip in prev["ips"].as_array().into_iter().flatten() {
        if ip["interface"].as_u64() == Some(index as u64)
            && let Some(a) = ip["address"].as_str()
        {
            addresses.push(a.to_string());
            if let Some(g) = ip["gateway"].as_str() {
                gateways.push(g.to_string());
            }
        }
    }
    if addresses.is_empty() {
        return Err(bad(format!("prevResult has no address on {ifname}")));
    }
    let routes = prev["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?.to_string();
            let gw = r["gw"].as_str().map(str::to_string);
            gw.as_ref()
                .is_some_and(|g| gateways.contains(g))
                .then_some((dst, gw))
        })
        .collect();
    Ok(Expected {
        mac: ifs[index]["mac"].as_str().map(str::to_string),
        addresses,
        routes,
    })
}

// ---- names ----------------------------------------------------------------------

/// The netd sandbox name for a container id. Ids are already
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything else is replaced by `_`, and ids
/// longer than a sandbox name (64) keep 47 characters and a hash of the rest.
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
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.insert(0, 'c');
    }
    if s.len() > 64 {
        // FNV-1a: stable across releases, unlike std's hasher.
        let h = container_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        s.truncate(47);
        s.push_str(&format!("-{h:016x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from(|k| vars.get(k).cloned())
    }

    #[test]
    fn environment_as_skel_checks_it() {
        let e = env(&[]).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_COMMAND"));
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS] missing"
        );
        // DEL needs no namespace; GC needs CNI_PATH; VERSION and STATUS nothing.
        assert!(
            env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0")
            ])
            .is_ok()
        );
        assert_eq!(
            env(&[("CNI_COMMAND", "GC")]).unwrap_err().msg,
            "required env variables [CNI_PATH] missing"
        );
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert!(env(&[("CNI_COMMAND", "STATUS")]).is_ok());
        let bad_id = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-x/y"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(bad_id.code, code::INVALID_ENV);
        let bad_if = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "a-very-long-interface"),
        ])
        .unwrap_err();
        assert_eq!(bad_if.code, code::INVALID_ENV);
        assert_eq!(
            env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code,
            code::INVALID_ENV
        );
    }

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
        assert_eq!(
            code_of(r#"{"name":"n","type":"netd-cni"}"#),
            code::INCOMPATIBLE_VERSION
        );
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
        assert!(dns(
            r#","dns":{"nameservers":["10.0.0.1"]},"dnsEnabled":true"#
        ));
        assert!(!dns(r#","dns":true,"dnsEnabled":false"#));
    }

    #[test]
    fn versions_gate_commands() {
        assert!(at_least("1.1.0", "1.0.0") && at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0") && !at_least("x", "0.4.0"));
        assert_eq!(
            command_allowed(Command::Check, "0.3.1").unwrap_err().code,
            code::INCOMPATIBLE_VERSION
        );
        assert!(command_allowed(Command::Check, "0.4.0").is_ok());
        assert!(command_allowed(Command::Gc, "1.0.0").is_err());
        assert!(command_allowed(Command::Status, "1.1.0").is_ok());
        assert!(command_allowed(Command::Add, "0.3.0").is_ok());
    }

    fn attachment() -> Attachment {
        Attachment {
            host_ifname: "nd-1".into(),
            host_mac: "aa:bb:cc:dd:ee:ff".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:00:00:02".into(),
            mtu: Some(1500),
            netns: "/run/netns/x".into(),
            address: "10.0.0.2/24".into(),
            gateway: "10.0.0.1".into(),
            default_route: true,
            dns: true,
        }
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

    #[test]
    fn chained_results_append_to_prev() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{ "name": "lo0" }],
            "ips": [{ "address": "192.168.9.2/24", "interface": 0 }],
            "routes": [{ "dst": "192.168.0.0/16" }],
            "dns": { "nameservers": ["1.1.1.1"] }
        });
        let mut a = attachment();
        a.dns = false;
        let r = result("1.0.0", &a, Some(&prev));
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(r["ips"][1]["interface"], 2);
        assert_eq!(r["routes"].as_array().unwrap().len(), 2);
        assert_eq!(r["dns"]["nameservers"][0], "1.1.1.1");
        let e = expected(&r, "eth0", "/run/netns/x").unwrap();
        assert_eq!(e.addresses, vec!["10.0.0.2/24"]);
        assert_eq!(
            e.routes,
            vec![("0.0.0.0/0".to_string(), Some("10.0.0.1".to_string()))]
        );
        assert_eq!(e.mac.as_deref(), Some("02:42:0a:00:00:02"));
        assert!(expected(&r, "eth1", "/run/netns/x").is_err());
        assert!(expected(&r, "eth0", "/run/netns/other").is_err());
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
    fn names_and_args() {
        assert_eq!(sandbox_name("abc123"), "abc123");
        assert_eq!(sandbox_name("-x/y"), "c-x_y");
        let long = "a".repeat(80);
        let n = sandbox_name(&long);
        assert_eq!(n.len(), 64);
        assert_ne!(n, sandbox_name(&format!("{long}b")));
        assert_eq!(n, sandbox_name(&long));
        assert_eq!(
            cni_arg("IgnoreUnknown=1;K8S_POD_NAME=web-0", "K8S_POD_NAME"),
            Some("web-0")
        );
        assert!(valid_cni_name("a.b-c_d") && !valid_cni_name(".a") && !valid_cni_name(""));
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
