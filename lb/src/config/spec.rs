//! What a config file or the flags say: specs whose `None` takes a default,
//! and the parsers of their values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{Algorithm, Discover, HashKey, HealthCheck, IpFamily, Mode};

/// Longer is surely a typo (about 31 years).
const MAX_SECS: f64 = 1e9;

/// `250ms`, `2s`, `1.5s`, `1m`, `1h` (humantime's units, so also `1h 30m`,
/// `2min`), or a bare number of seconds, which humantime does not read.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let range = || format!("duration {s:?} out of range");
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=MAX_SECS).contains(&secs) => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => return Err(range()),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 500ms, 2s, 1m)"))?,
    };
    if d.as_secs_f64() > MAX_SECS {
        return Err(range());
    }
    Ok(d)
}

/// A duration in a config file: a string with a unit, or seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Dur(Duration::from_secs(n))),
            Raw::Float(f) => parse_duration(&f.to_string())
                .map(Dur)
                .map_err(serde::de::Error::custom),
            Raw::Str(s) => parse_duration(&s)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Per-service settings as written in a file or given as flags; `None`
/// takes the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub network: Option<String>,
    /// Overrides the process-wide socket for this service.
    pub socket: Option<PathBuf>,
    pub alias: Option<String>,
    pub port: Option<u16>,
    pub mode: Option<Mode>,
    pub algorithm: Option<Algorithm>,
    pub hash_key: Option<HashKey>,
    pub discover: Option<Discover>,
    pub ip_family: Option<IpFamily>,
    pub dns_server: Option<String>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub dns_interval: Option<Duration>,
    pub health_check: Option<HealthCheck>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub health_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub health_timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub idle_timeout: Option<Duration>,
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub dead_peer_timeout: Option<Duration>,
    pub h2c: Option<bool>,
}

fn opt_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Some(Dur::deserialize(d)?.0))
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub socket: Option<PathBuf>,
    pub metrics: Option<String>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub drain_timeout: Option<Duration>,
    pub threads: Option<usize>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSpec>,
}

/// Parse `ADDR:PORT` (`[IPV6]:PORT` for IPv6); a bare `:PORT` or `PORT`
/// listens on every IPv4 address, as it always has (`[::]:PORT` for both
/// families).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    port.parse::<u16>()
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
        .map_err(|_| format!("invalid address {s:?} (expected ADDR:PORT or [IPV6]:PORT)"))
}

/// `IP:PORT` (`[IPV6]:PORT`) or a bare `IP` (port 53), IPv6 with or without
/// brackets.
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid DNS server {s:?} (expected IP, IP:PORT or [IPV6]:PORT)"))
}

/// The first usable `nameserver` of /etc/resolv.conf, port 53 (lines that
/// do not parse and scoped IPv6 addresses are skipped).
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read("/etc/resolv.conf").ok()?;
    let (cfg, _errors) = resolv_conf::Config::parse_with_errors(&text);
    cfg.nameservers.iter().find_map(|ns| match ns {
        resolv_conf::ScopedIp::V4(ip) => Some(SocketAddr::new((*ip).into(), 53)),
        resolv_conf::ScopedIp::V6(ip, None) => Some(SocketAddr::new((*ip).into(), 53)),
        resolv_conf::ScopedIp::V6(_, Some(_)) => None,
    })
}
