//! The model: networks, sandboxes, endpoints and port mappings.
//!
//! Pure types with validation. Nothing here touches the kernel or the disk;
//! every request is checked here first so that bad input is refused before
//! anything changes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A validation failure: the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// Names of networks and sandboxes: what Docker accepts for container names,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 characters. Sandbox names become
/// file names under `/run/netns`, so slashes and dots-only names must never pass.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if s.is_empty() || s.len() > 64 || !ok_first || !ok_rest {
            let s = cut(&s);
            return invalid(format!(
                "invalid name {s:?}: use 1-64 characters [a-zA-Z0-9_.-], starting with a letter or digit"
            ));
        }
        Ok(Name(s))
    }
}

impl FromStr for Name {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Name::try_from(s.to_string())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linux interface name: 1-15 bytes, no '/', no whitespace, not "." or "..".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        if s.is_empty()
            || s.len() > 15
            || s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return invalid(format!(
                "invalid interface name {s:?}: 1-15 characters, no '/', ':' or spaces"
            ));
        }
        Ok(IfName(s))
    }
}

impl FromStr for IfName {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        IfName::try_from(s.to_string())
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 64-hex-digit identifier, like Docker's; the first 12 are the short id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// A fresh random id.
    pub fn random() -> Id {
        let mut buf = [0u8; 32];
        // getrandom(2) never fails for 32 bytes once the pool is initialised;
        // fall back to time+pid entropy rather than panic if it somehow does.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n != buf.len() as isize {
            let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u128;
            let seed = t ^ (std::process::id() as u128) << 64;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ i as u8;
            }
        }
        Id(buf.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn from_stored(s: String) -> Id {
        Id(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a network is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge with a subnet; sandboxes get a veth into it.
    Bridge(BridgeConfig),
    /// Sandboxes share the host's network namespace.
    Host,
    /// Sandboxes get only `lo`.
    Null,
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Bridge(_) => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeConfig {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic allocations come from here; static `--ip` may be anywhere in the subnet.
    pub ip_range: Option<Ipv4Net>,
    pub bridge: IfName,
    pub mtu: Option<u32>,
    pub internal: bool,
    /// Masquerade traffic leaving the host from this subnet.
    #[serde(default = "yes")]
    pub masquerade: bool,
    /// Inter-container communication on this bridge.
    #[serde(default = "yes")]
    pub icc: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: Id,
    pub name: Name,
    pub driver: Driver,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl Network {
    pub fn bridge(&self) -> Option<&BridgeConfig> {
        match &self.driver {
            Driver::Bridge(b) => Some(b),
            _ => None,
        }
    }

    /// The three networks every installation has, like Docker's.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
}

/// Option keys accepted on `network create`.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const KNOWN_OPTIONS: &[&str] = &[OPT_BRIDGE_NAME, OPT_MTU, OPT_MASQUERADE, OPT_ICC];

fn bool_option(options: &BTreeMap<String, String>, key: &str) -> Result<bool, Invalid> {
    match options.get(key).map(String::as_str) {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => invalid(format!("invalid {key} {v:?}: expected true or false")),
    }
}

/// A request to create a network, as the CLI and the API receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// "bridge" when empty.
    #[serde(default)]
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A create request after validation: everything except the subnet, which
/// may still have to be chosen from the free pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNetworkCreate {
    pub name: Name,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub bridge: Option<IfName>,
    pub mtu: Option<u32>,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

fn parse_net(what: &str, s: &str) -> Result<Ipv4Net, Invalid> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Invalid(format!(
            "invalid {what} {s:?}: expected an IPv4 CIDR such as 10.1.2.0/24"
        ))
    })?;
    if net.network() != net.addr() {
        return invalid(format!(
            "invalid {what} {s:?}: host bits are set (did you mean {}?)",
            net.trunc()
        ));
    }
    if net.prefix_len() > 30 {
        return invalid(format!(
            "invalid {what} {s:?}: a prefix longer than /30 leaves no room for sandboxes"
        ));
    }
    if let Some((range, why)) = special_range(&net) {
        return invalid(format!(
            "invalid {what} {s:?}: it overlaps {range}, {why}, which cannot be a container network"
        ));
    }
    Ok(net)
}

/// IPv4 ranges that can never be a bridge subnet: the kernel either refuses
/// them (multicast gives EINVAL) or treats them specially (loopback is
/// martian on a bridge, 0/8 and 240/4 are not routable, link-local is the
/// host's own). Returned with a word on why, for the message.
const SPECIAL_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (RFC 1122)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved (RFC 1112) and broadcast"),
];

fn special_range(net: &Ipv4Net) -> Option<(Ipv4Net, &'static str)> {
    SPECIAL_RANGES.iter().find_map(|(a, len, why)| {
        let r = Ipv4Net::new(Ipv4Addr::from(*a), *len).ok()?;
        (r.contains(&net.network()) || net.contains(&r.network())).then_some((r, *why))
    })
}

/// Limits on what a request may store: labels are kept with the network
/// and returned by every list, so they stay small.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 256;
pub const MAX_LABEL_VALUE: usize = 4096;
pub const MAX_ALIASES: usize = 64;
pub const MAX_PORTS: usize = 256;

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if labels.len() > MAX_LABELS {
        return invalid(format!(
            "too many labels ({}): at most {MAX_LABELS}",
            labels.len()
        ));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > MAX_LABEL_KEY {
            return invalid(format!(
                "invalid label key {:?}: 1-{MAX_LABEL_KEY} bytes",
                cut(k)
            ));
        }
        if v.len() > MAX_LABEL_VALUE {
            return invalid(format!(
                "label {k:?} is {} bytes long: at most {MAX_LABEL_VALUE}",
                v.len()
            ));
        }
    }
    Ok(())
}

/// A long value named in an error, shortened so the message stays readable.
fn cut(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl NetworkCreate {
    pub fn validate(&self) -> Result<ValidNetworkCreate, Invalid> {
        let name: Name = self.name.parse()?;
        check_labels(&self.labels)?;
        match self.driver.as_str() {
            "" | "bridge" => {}
            other => {
                return invalid(format!(
                    "unsupported driver {other:?}: only \"bridge\" networks can be created"
                ));
            }
        }
        for k in self.options.keys() {
            if !KNOWN_OPTIONS.contains(&k.as_str()) {
                return invalid(format!(
                    "unknown option {k:?} (known: {})",
                    KNOWN_OPTIONS.join(", ")
                ));
            }
        }
        let subnet = self
            .subnet
            .as_deref()
            .map(|s| parse_net("subnet", s))
            .transpose()?;
        let gateway = self
            .gateway
            .as_deref()
            .map(|g| {
                g.parse::<Ipv4Addr>().map_err(|_| {
                    Invalid(format!("invalid gateway {g:?}: expected an IPv4 address"))
                })
            })
            .transpose()?;
        let ip_range = self
            .ip_range
            .as_deref()
            .map(|s| parse_net("ip-range", s))
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
            return invalid("--gateway and --ip-range need --subnet");
        }
        if let (Some(net), Some(gw)) = (subnet, gateway)
            && (!net.contains(&gw) || gw == net.network() || gw == net.broadcast())
        {
            return invalid(format!(
                "gateway {gw} is not a usable address of subnet {net}"
            ));
        }
        if let (Some(net), Some(r)) = (subnet, ip_range)
            && !net.contains(&r)
        {
            return invalid(format!("ip-range {r} is not inside subnet {net}"));
        }
        let bridge = self
            .options
            .get(OPT_BRIDGE_NAME)
            .map(|b| b.parse::<IfName>())
            .transpose()?;
        let mtu = self
            .options
            .get(OPT_MTU)
            .map(|m| match m.parse::<u32>() {
                Ok(v) if (68..=65535).contains(&v) => Ok(v),
                _ => invalid(format!(
                    "invalid {OPT_MTU} {m:?}: expected a number from 68 to 65535"
                )),
            })
            .transpose()?;
        Ok(ValidNetworkCreate {
            name,
            subnet,
            gateway,
            ip_range,
            bridge,
            mtu,
            internal: self.internal,
            masquerade: bool_option(&self.options, OPT_MASQUERADE)? && !self.internal,
            icc: bool_option(&self.options, OPT_ICC)?,
            options: self.options.clone(),
            labels: self.labels.clone(),
        })
    }
}

/// How a sandbox gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum SandboxNet {
    /// Its own namespace at `path`; `owned` when netd created it (and so removes it).
    Namespace { path: String, owned: bool },
    /// The host's namespace: nothing is created.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: Id,
    pub name: Name,
    pub net: SandboxNet,
    /// Created on `--network none`: the sandbox may never join a network.
    #[serde(default)]
    pub isolated: bool,
    pub created: String,
}

impl Sandbox {
    pub fn netns_path(&self) -> Option<&str> {
        match &self.net {
            SandboxNet::Namespace { path, .. } => Some(path),
            SandboxNet::Host => None,
        }
    }
}

/// A sandbox on a network: its interface, address and names there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: Id,
    pub network: Id,
    pub sandbox: Id,
    pub ifname: IfName,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

impl Endpoint {
    /// The host side of the veth pair: derived from the endpoint id, so a
    /// leftover link can always be traced to its endpoint (or found orphaned).
    pub fn host_veth(&self) -> IfName {
        IfName(format!("{HOST_VETH_PREFIX}{}", &self.id.as_str()[..12]))
    }

    /// The sandbox-side name of a retired endpoint, unique in its namespace.
    pub fn retired_ifname(&self) -> IfName {
        IfName(format!("{RETIRED_PREFIX}{}", &self.id.as_str()[..12]))
    }
}

/// Host-side veths are named `nd-` + 12 hex digits of the endpoint id.
pub const HOST_VETH_PREFIX: &str = "nd-";
/// A retired sandbox-side interface, waiting for its pair to be deleted, is
/// `ndr` + the same 12 hex digits.
pub const RETIRED_PREFIX: &str = "ndr";
/// Bridges netd names itself are `netd-` + 10 hex digits of the network id
/// (`netd0` for the default network).
pub const BRIDGE_PREFIX: &str = "netd-";

/// A MAC address. Locally administered, derived from the address like Docker's
/// `02:42:` prefix so that a re-created endpoint keeps its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn for_ip(ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid(format!(
                "invalid MAC address {s:?}: expected six hex pairs like 02:42:0a:00:00:02"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if m[0] & 1 == 1 {
            return invalid(format!(
                "invalid MAC address {s}: a multicast address cannot be an interface's"
            ));
        }
        if m == [0; 6] {
            return invalid(format!(
                "invalid MAC address {s}: the all-zero address cannot be an interface's"
            ));
        }
        Ok(Mac(m))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// An inclusive port range; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

fn parse_range(spec: &str, s: &str) -> Result<PortRange, Invalid> {
    let port = |p: &str| -> Result<u16, Invalid> {
        match p.parse::<u16>() {
            Ok(v) if v > 0 => Ok(v),
            _ => invalid(format!(
                "invalid port {p:?} in publish spec {spec:?}: expected 1-65535"
            )),
        }
    };
    let r = match s.split_once('-') {
        Some((a, b)) => PortRange {
            start: port(a)?,
            end: port(b)?,
        },
        None => {
            let p = port(s)?;
            PortRange { start: p, end: p }
        }
    };
    if r.start > r.end {
        return invalid(format!(
            "invalid port range {s:?} in publish spec {spec:?}: start is above end"
        ));
    }
    Ok(r)
}

/// A published port: Docker's `-p [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`.
/// In JSON it is read either as that string or as the object it is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PortMappingRepr")]
pub struct PortMapping {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    /// None: a free port chosen when the mapping is applied.
    pub host_port: Option<PortRange>,
    pub container_port: PortRange,
    pub proto: Proto,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortMappingRepr {
    Spec(String),
    Fields {
        host_ip: Option<IpAddr>,
        host_port: Option<PortRange>,
        container_port: PortRange,
        proto: Proto,
    },
}

impl TryFrom<PortMappingRepr> for PortMapping {
    type Error = Invalid;
    fn try_from(r: PortMappingRepr) -> Result<Self, Invalid> {
        match r {
            PortMappingRepr::Spec(s) => s.parse(),
            // Re-validate through the string form, so both spellings obey the same rules.
            PortMappingRepr::Fields {
                host_ip,
                host_port,
                container_port,
                proto,
            } => PortMapping {
                host_ip,
                host_port,
                container_port,
                proto,
            }
            .to_string()
            .parse(),
        }
    }
}

impl FromStr for PortMapping {
    type Err = Invalid;
    fn from_str(spec: &str) -> Result<Self, Invalid> {
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((r, "sctp")) => (r, Proto::Sctp),
            Some((_, p)) => {
                return invalid(format!(
                    "invalid protocol {p:?} in publish spec {spec:?}: use tcp, udp or sctp"
                ));
            }
            None => (spec, Proto::Tcp),
        };
        // An IPv6 host address comes in brackets: [::1]:8080:80
        let (host_ip, rest) = if let Some(stripped) = rest.strip_prefix('[') {
            let (ip, after) = stripped
                .split_once("]:")
                .ok_or_else(|| Invalid(format!("invalid publish spec {spec:?}: unclosed '['")))?;
            let ip: IpAddr = ip.parse().map_err(|_| {
                Invalid(format!(
                    "invalid host address {ip:?} in publish spec {spec:?}"
                ))
            })?;
            (Some(ip), after)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, rest),
                3 => {
                    let ip = parts[0];
                    let ip: IpAddr = ip.parse().map_err(|_| {
                        Invalid(format!(
                            "invalid host address {ip:?} in publish spec {spec:?}"
                        ))
                    })?;
                    (Some(ip), &rest[parts[0].len() + 1..])
                }
                _ => return invalid(format!("invalid publish spec {spec:?}: too many ':'")),
            }
        };
        let (host_port, container) = match rest.split_once(':') {
            Some(("", c)) => (None, c),
            Some((h, c)) => (Some(parse_range(spec, h)?), c),
            None => (None, rest),
        };
        let container_port = parse_range(spec, container)?;
        if let Some(IpAddr::V6(ip)) = host_ip {
            return invalid(format!(
                "invalid publish spec {spec:?}: IPv6 host address {ip} is not supported yet"
            ));
        }
        if let Some(h) = host_port
            && h.len() != container_port.len()
        {
            return invalid(format!(
                "invalid publish spec {spec:?}: host range {h} and container range {container_port} differ in length"
            ));
        }
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.host_ip, self.host_port) {
            (_, Some(h)) => write!(f, "{h}:")?,
            (Some(_), None) => write!(f, ":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_port, self.proto)
    }
}

/// The `port_spec` fuzz target's entry: any bytes as a `-p` spec and as
/// its JSON spellings. Must never panic; whatever parses must print back to
/// a spec that parses to the same mapping.
#[doc(hidden)]
pub fn fuzz_port_spec(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if let Ok(p) = s.parse::<PortMapping>() {
        let again: PortMapping = p
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{s:?} printed as {p} does not parse: {e}"));
        assert_eq!(again, p, "{s:?} does not round-trip through {p}");
        let json = serde_json::to_string(&p).expect("a mapping serializes");
        let back: PortMapping = serde_json::from_str(&json).expect("its JSON parses");
        assert_eq!(back, p);
    }
    let _ = serde_json::from_slice::<PortMapping>(bytes);
    let _ = serde_json::from_slice::<Vec<PortMapping>>(bytes);
}

/// A request to put a sandbox on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub mac: Option<Mac>,
    /// The interface name in the sandbox (a CNI runtime's CNI_IFNAME);
    /// the lowest free `ethN` when absent.
    #[serde(default)]
    pub ifname: Option<IfName>,
}

impl EndpointRequest {
    /// Aliases are DNS labels: checked here so a bad one never reaches the store.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.aliases.len() > MAX_ALIASES {
            return invalid(format!(
                "too many aliases ({}): at most {MAX_ALIASES}",
                self.aliases.len()
            ));
        }
        if self.ports.len() > MAX_PORTS {
            return invalid(format!(
                "too many published ports ({}): at most {MAX_PORTS} (a range counts once)",
                self.ports.len()
            ));
        }
        for a in &self.aliases {
            let ok = !a.is_empty()
                && a.len() <= 253
                && a.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if !ok {
                let a = cut(a);
                return invalid(format!(
                    "invalid alias {a:?}: expected a DNS name (letters, digits, '-', '_', '.')"
                ));
            }
        }
        Ok(())
    }
}

/// A request to create a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreate {
    pub name: String,
    /// A network name, "host" or "none"; the default network when absent.
    pub network: Option<String>,
    /// Adopt this existing namespace instead of creating one.
    pub netns: Option<String>,
    #[serde(default)]
    pub endpoint: EndpointRequest,
}

/// RFC 3339 timestamp of now, UTC, second precision (`2026-01-02T15:04:05Z`).
pub fn now_rfc3339() -> String {
    rfc3339_seconds(time::OffsetDateTime::now_utc())
}

fn rfc3339_seconds(t: time::OffsetDateTime) -> String {
    // Whole seconds: the well-known format then writes no fraction, and UTC as `Z`.
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Model values for other modules' tests.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// A bridge network named `name` on `subnet`, gateway .1.
    pub fn network(name: &str, subnet: &str) -> Network {
        let subnet: Ipv4Net = subnet.parse().expect("fixture subnet");
        Network {
            id: Id::random(),
            name: name.parse().expect("fixture name"),
            driver: Driver::Bridge(BridgeConfig {
                subnet,
                gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
                ip_range: None,
                bridge: format!("br-{}", &name[..name.len().min(10)])
                    .parse()
                    .expect("fixture bridge"),
                mtu: None,
                internal: false,
                masquerade: true,
                icc: true,
            }),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            created: now_rfc3339(),
        }
    }

    /// Change a fixture network's bridge settings.
    pub fn with_bridge(mut n: Network, f: impl FnOnce(&mut BridgeConfig)) -> Network {
        if let Driver::Bridge(b) = &mut n.driver {
            f(b);
        }
        n
    }

    /// A sandbox with its own namespace at /run/netns/NAME.
    pub fn sandbox(name: &str) -> Sandbox {
        Sandbox {
            id: Id::random(),
            name: name.parse().expect("fixture name"),
            net: SandboxNet::Namespace {
                path: format!("/run/netns/{name}"),
                owned: true,
            },
            isolated: false,
            created: now_rfc3339(),
        }
    }

    /// `sandbox` on `network` at `ip` as eth0, with aliases and publish specs.
    pub fn endpoint(
        network: &Network,
        sandbox: &Sandbox,
        ip: &str,
        aliases: &[&str],
        ports: &[&str],
    ) -> Endpoint {
        let ip: Ipv4Addr = ip.parse().expect("fixture ip");
        Endpoint {
            id: Id::random(),
            network: network.id.clone(),
            sandbox: sandbox.id.clone(),
            ifname: "eth0".parse().expect("fixture ifname"),
            ip,
            mac: Mac::for_ip(ip),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ports: ports
                .iter()
                .map(|p| p.parse().expect("fixture publish spec"))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("web-1".parse::<Name>().is_ok());
        assert!("a.b_c".parse::<Name>().is_ok());
        for bad in ["", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish_specs() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p.host_port,
            Some(PortRange {
                start: 8080,
                end: 8080
            })
        );
        assert_eq!(p.container_port, PortRange { start: 80, end: 80 });
        assert_eq!(p.proto, Proto::Tcp);
        assert_eq!(p.host_ip, None);

        let p: PortMapping = "127.0.0.1:9000-9002:8000-8002/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.host_port.unwrap().len(), 3);
        assert_eq!(p.proto, Proto::Udp);

        let p: PortMapping = "80".parse().unwrap();
        assert_eq!(p.host_port, None);
        let p: PortMapping = "10.0.0.1::53/sctp".parse().unwrap();
        assert_eq!(p.host_port, None);
        assert_eq!(p.proto, Proto::Sctp);
        assert!(
            "[::1]:8080:80"
                .parse::<PortMapping>()
                .unwrap_err()
                .0
                .contains("IPv6")
        );

        for bad in [
            "",
            "0",
            "70000",
            "80/icmp",
            "9000-9001:80",
            "x:80",
            "1:2:3:4",
            "90-80",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish_json_accepts_both_spellings() {
        let a: PortMapping = serde_json::from_str(r#""8080:80/udp""#).unwrap();
        let b: PortMapping = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<PortMapping>(r#""8080:80/icmp""#).is_err());
        let bad = r#"{"host_ip":null,"host_port":{"start":9,"end":10},"container_port":{"start":1,"end":1},"proto":"tcp"}"#;
        assert!(
            serde_json::from_str::<PortMapping>(bad).is_err(),
            "ranges of different length"
        );
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<SandboxCreate>(r#"{"name":"x","netwrok":"n"}"#).is_err());
        assert!(
            serde_json::from_str::<NetworkCreate>(r#"{"name":"x","subnett":"10.0.0.0/24"}"#)
                .is_err()
        );
    }

    #[test]
    fn publish_round_trip() {
        for s in [
            "8080:80/tcp",
            "127.0.0.1:9000-9002:8000-8002/udp",
            "80/tcp",
            "10.0.0.1::53/sctp",
        ] {
            let p: PortMapping = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn create_validation() {
        let mut c = NetworkCreate {
            name: "n1".into(),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        c.subnet = Some("10.1.2.3/24".into());
        assert!(c.validate().unwrap_err().0.contains("host bits"));
        c.subnet = Some("10.1.2.0/24".into());
        c.gateway = Some("10.1.3.1".into());
        assert!(c.validate().unwrap_err().0.contains("gateway"));
        c.gateway = None;
        c.ip_range = Some("10.1.0.0/16".into());
        assert!(c.validate().unwrap_err().0.contains("ip-range"));
        c.ip_range = None;
        c.options.insert("foo".into(), "bar".into());
        assert!(c.validate().unwrap_err().0.contains("\"foo\""));
        c.options.clear();
        c.options.insert(OPT_MTU.into(), "1400".into());
        assert_eq!(c.validate().unwrap().mtu, Some(1400));
        c.options.insert(OPT_ICC.into(), "false".into());
        assert!(!c.validate().unwrap().icc);
        c.options.insert(OPT_MASQUERADE.into(), "maybe".into());
        assert!(c.validate().unwrap_err().0.contains("maybe"));
        c.options.remove(OPT_MASQUERADE);
        c.driver = "overlay".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn in_special_subnets_are_refused_naming_the_value() {
        for (subnet, word) in [
            ("127.0.0.0/8", "loopback"),
            ("127.5.0.0/16", "loopback"),
            ("0.0.0.0/8", "this network"),
            ("169.254.0.0/16", "link-local"),
            ("169.254.3.0/24", "link-local"),
            ("224.0.0.0/4", "multicast"),
            ("239.1.2.0/24", "multicast"),
            ("240.0.0.0/4", "reserved"),
            ("255.255.255.0/24", "reserved"),
            // Wider than a special range and containing it.
            ("128.0.0.0/1", "link-local"),
            ("192.0.0.0/2", "multicast"),
            ("0.0.0.0/1", "this network"),
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(subnet.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().0;
            assert!(
                e.contains(subnet) && e.contains(word),
                "{subnet}: {e:?} lacks the value or {word:?}"
            );
        }
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.1.0/24",
            "1.0.0.0/8",
            "223.255.255.0/24",
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(ok.into()),
                ..Default::default()
            };
            assert!(c.validate().is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn in_stored_fields_are_bounded() {
        let mut c = NetworkCreate {
            name: "n".into(),
            ..Default::default()
        };
        c.labels
            .insert("big".into(), "x".repeat(MAX_LABEL_VALUE + 1));
        assert!(c.validate().unwrap_err().0.contains("\"big\""));
        c.labels.clear();
        c.labels.insert("k".repeat(MAX_LABEL_KEY + 1), "v".into());
        let e = c.validate().unwrap_err().0;
        assert!(e.contains("label key") && e.len() < 200, "{e}");
        c.labels = (0..=MAX_LABELS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(c.validate().unwrap_err().0.contains("too many labels"));
        c.labels = (0..MAX_LABELS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(c.validate().is_ok());

        let mut e = EndpointRequest {
            aliases: (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect(),
            ..Default::default()
        };
        assert!(e.validate().unwrap_err().0.contains("too many aliases"));
        e.aliases.truncate(MAX_ALIASES);
        assert!(e.validate().is_ok());
        e.ports = vec!["80".parse().unwrap(); MAX_PORTS + 1];
        assert!(
            e.validate()
                .unwrap_err()
                .0
                .contains("too many published ports")
        );
        let huge = "x".repeat(100_000);
        let n = huge.parse::<Name>().unwrap_err().0;
        assert!(
            n.len() < 300,
            "a long name is echoed whole: {} bytes",
            n.len()
        );
    }

    #[test]
    fn mac() {
        assert_eq!(
            Mac::for_ip(Ipv4Addr::new(10, 0, 0, 2)).to_string(),
            "02:42:0a:00:00:02"
        );
        assert!("02:42:0a:00:00:02".parse::<Mac>().is_ok());
        assert!("01:00:00:00:00:00".parse::<Mac>().is_err());
        assert!("ff:ff:ff:ff:ff:ff".parse::<Mac>().is_err());
        let zero = "00:00:00:00:00:00".parse::<Mac>().unwrap_err().0;
        assert!(zero.contains("00:00:00:00:00:00") && zero.contains("all-zero"));
        assert!(serde_json::from_str::<EndpointRequest>(r#"{"mac":"00:00:00:00:00:00"}"#).is_err());
        assert!("zz".parse::<Mac>().is_err());
    }

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        let at = |secs: i64, nanos: i128| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(secs) * 1_000_000_000 + nanos,
            )
            .unwrap()
        };
        assert_eq!(rfc3339_seconds(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(at(20_000 * 86_400 + 3_723, 999_999_999)),
            "2024-10-04T01:02:03Z"
        );
    }
}
