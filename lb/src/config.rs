//! Configuration: one service from command-line flags, or several from a
//! TOML file (`--config`). Both end up as a [`Config`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer};

/// The netd API socket when neither `--socket`, `NETD_SOCKET` nor the config
/// file names one.
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

/// What the process runs: services plus process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// netd's API socket (API discovery).
    pub socket: PathBuf,
    /// Prometheus listener.
    pub metrics: Option<SocketAddr>,
    /// How long SIGTERM waits for requests and connections in flight.
    pub drain_timeout: Duration,
    /// Worker threads per proxy service.
    pub threads: usize,
    pub services: Vec<ServiceConfig>,
}

/// One listener proxying to the members of one alias.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Unique within the process; the `service` label of the metrics.
    pub name: String,
    pub listen: SocketAddr,
    /// The netd network whose endpoints are the candidates (API discovery).
    pub network: Option<String>,
    /// netd's API socket (API discovery; process-wide in the file).
    pub socket: PathBuf,
    /// The alias (or sandbox name) whose members receive traffic.
    pub alias: String,
    /// The members' port.
    pub port: u16,
    pub mode: Mode,
    pub algorithm: Algorithm,
    pub hash_key: HashKey,
    pub discover: Discover,
    /// The resolver for DNS discovery.
    pub dns_server: Option<SocketAddr>,
    pub dns_interval: Duration,
    pub health: HealthConfig,
    pub connect_timeout: Duration,
    /// HTTP: the longest wait for one read from a member (the response
    /// header included). TCP: unused.
    pub request_timeout: Duration,
    /// Idle keep-alive connections (client and member side) and idle TCP
    /// streams are closed after this.
    pub idle_timeout: Duration,
    /// Other members tried after a failed connect.
    pub retries: u32,
    /// A member connection whose sent data (or keep-alive probes) stays
    /// unacknowledged this long is dead (TCP keep-alive + TCP_USER_TIMEOUT):
    /// catches members whose network vanished mid-request.
    pub dead_peer_timeout: Duration,
    /// HTTP: also accept HTTP/2 over cleartext (prior knowledge).
    pub h2c: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub check: HealthCheck,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that put a member back.
    pub rise: u32,
    /// Consecutive failures that take a member out.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check: HealthCheck::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    LeastConn,
    ConsistentHash,
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    #[default]
    ClientIp,
    /// A request header (HTTP only); the client address when it is absent.
    Header(String),
    /// The request path (HTTP only).
    Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discover {
    #[default]
    Api,
    Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HealthCheck {
    /// Passive ejection only: a member that fails a connect is out for a
    /// few seconds.
    None,
    #[default]
    Tcp,
    /// `GET PATH`; any 2xx or 3xx is healthy.
    Http(String),
}

macro_rules! keyword_enum {
    ($t:ty, $what:literal, { $($s:literal => $v:expr),+ $(,)? }) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($v),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?} (expected one of: {})"),
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

keyword_enum!(Mode, "mode", { "http" => Mode::Http, "tcp" => Mode::Tcp });
keyword_enum!(Algorithm, "algorithm", {
    "round-robin" => Algorithm::RoundRobin,
    "least-conn" => Algorithm::LeastConn,
    "consistent-hash" => Algorithm::ConsistentHash,
});
keyword_enum!(Discover, "discovery", { "api" => Discover::Api, "dns" => Discover::Dns });

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::LeastConn => "least-conn",
            Algorithm::ConsistentHash => "consistent-hash",
        })
    }
}

impl FromStr for HealthCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(HealthCheck::None),
            "tcp" => Ok(HealthCheck::Tcp),
            "http" => Ok(HealthCheck::Http("/".into())),
            _ => match s.strip_prefix("http:") {
                Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                    Ok(HealthCheck::Http(p.to_string()))
                }
                _ => Err(format!(
                    "unknown health check {s:?} (expected none, tcp, http or http:/PATH)"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for HealthCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl FromStr for HashKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client-ip" => Ok(HashKey::ClientIp),
            "path" => Ok(HashKey::Path),
            _ => match s.strip_prefix("header:") {
                Some(h) if http::HeaderName::from_str(h).is_ok() => Ok(HashKey::Header(h.into())),
                _ => Err(format!(
                    "unknown hash key {s:?} (expected client-ip, path or header:NAME)"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

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

/// Parse `ADDR:PORT`; a bare `:PORT` or `PORT` listens on every address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    port.parse::<u16>()
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
        .map_err(|_| format!("invalid address {s:?} (expected ADDR:PORT)"))
}

/// `IP:PORT` or a bare `IP` (port 53).
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid DNS server {s:?} (expected IP or IP:PORT)"))
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

impl ServiceSpec {
    /// Fill in defaults and check; `index` names an unnamed service.
    pub fn resolve(&self, index: usize, socket: &Path) -> Result<ServiceConfig> {
        let listen = self
            .listen
            .as_deref()
            .context("listen is required (ADDR:PORT)")?;
        let listen = parse_listen(listen).map_err(anyhow::Error::msg)?;
        let alias = self
            .alias
            .clone()
            .context("alias is required (the service alias to balance over)")?;
        if alias.is_empty() {
            bail!("alias must not be empty");
        }
        let port = self.port.context("port is required (the members' port)")?;
        if port == 0 {
            bail!("port must not be 0");
        }
        let discover = self.discover.unwrap_or_default();
        if discover == Discover::Api && self.network.as_deref().unwrap_or("").is_empty() {
            bail!("network is required with API discovery");
        }
        let dns_server = match &self.dns_server {
            Some(s) => Some(parse_dns_server(s).map_err(anyhow::Error::msg)?),
            None if discover == Discover::Dns => Some(
                system_resolver()
                    .context("no dns_server given and no nameserver in /etc/resolv.conf")?,
            ),
            None => None,
        };
        let d = HealthConfig::default();
        let health = HealthConfig {
            check: self.health_check.clone().unwrap_or(d.check),
            interval: self.health_interval.unwrap_or(d.interval),
            timeout: self.health_timeout.unwrap_or(d.timeout),
            rise: self.rise.unwrap_or(d.rise),
            fall: self.fall.unwrap_or(d.fall),
        };
        if health.rise == 0 || health.fall == 0 {
            bail!("rise and fall must be at least 1");
        }
        if health.interval < Duration::from_millis(10) {
            bail!("health_interval must be at least 10ms");
        }
        let mode = self.mode.unwrap_or_default();
        let hash_key = self.hash_key.clone().unwrap_or_default();
        if mode == Mode::Tcp && hash_key != HashKey::ClientIp {
            bail!("TCP services can only hash on client-ip");
        }
        if mode == Mode::Tcp && self.h2c == Some(true) {
            bail!("h2c is for HTTP services");
        }
        if self
            .dead_peer_timeout
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            bail!("dead_peer_timeout must be at least 1s");
        }
        let dns_interval = self.dns_interval.unwrap_or(Duration::from_secs(1));
        if dns_interval < Duration::from_millis(10) {
            bail!("dns_interval must be at least 10ms");
        }
        Ok(ServiceConfig {
            name: self.name.clone().unwrap_or_else(|| {
                if index == 0 {
                    alias.clone()
                } else {
                    format!("{alias}-{index}")
                }
            }),
            listen,
            network: self.network.clone().filter(|n| !n.is_empty()),
            socket: self.socket.clone().unwrap_or_else(|| socket.to_path_buf()),
            alias,
            port,
            mode,
            algorithm: self.algorithm.unwrap_or_default(),
            hash_key,
            discover,
            dns_server,
            dns_interval,
            health,
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(1)),
            request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(30)),
            idle_timeout: self.idle_timeout.unwrap_or(Duration::from_secs(60)),
            retries: self.retries.unwrap_or(2),
            dead_peer_timeout: self.dead_peer_timeout.unwrap_or(Duration::from_secs(5)),
            h2c: self.h2c.unwrap_or(false),
        })
    }
}

pub struct Globals {
    pub socket: Option<PathBuf>,
    pub metrics: Option<String>,
    pub drain_timeout: Option<Duration>,
    pub threads: Option<usize>,
}

/// The process config from globals and service specs.
pub fn build(g: Globals, specs: &[ServiceSpec]) -> Result<Config> {
    if specs.is_empty() {
        bail!("no service configured");
    }
    let socket = g
        .socket
        .or_else(|| std::env::var_os("NETD_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut services = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let svc = s.resolve(i, &socket).with_context(|| match &s.name {
            Some(n) => format!("service {n:?}"),
            None => format!("service #{}", i + 1),
        })?;
        if services.iter().any(|o: &ServiceConfig| o.name == svc.name) {
            bail!("two services are named {:?}", svc.name);
        }
        if services
            .iter()
            .any(|o: &ServiceConfig| o.listen == svc.listen)
        {
            bail!("two services listen on {}", svc.listen);
        }
        services.push(svc);
    }
    let metrics = g
        .metrics
        .as_deref()
        .map(parse_listen)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(m) = metrics
        && services.iter().any(|s| s.listen == m)
    {
        bail!("the metrics listener {m} is also a service's listener");
    }
    let threads = g.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        bail!("threads must be at least 1");
    }
    Ok(Config {
        socket,
        metrics,
        drain_timeout: g.drain_timeout.unwrap_or(Duration::from_secs(5)),
        threads,
        services,
    })
}

/// Parse a TOML config text.
pub fn parse_file_text(text: &str) -> Result<Config> {
    let f: FileSpec = toml::from_str(text).context("parse config")?;
    build(
        Globals {
            socket: f.socket,
            metrics: f.metrics,
            drain_timeout: f.drain_timeout,
            threads: f.threads,
        },
        &f.services,
    )
}

/// Read and parse a TOML config file.
pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_file_text(&text).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("2000000000s").is_err());
        assert_eq!(parse_duration("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn keywords() {
        assert_eq!("tcp".parse::<HealthCheck>(), Ok(HealthCheck::Tcp));
        assert_eq!(
            "http:/healthz".parse::<HealthCheck>(),
            Ok(HealthCheck::Http("/healthz".into()))
        );
        assert!("http:healthz".parse::<HealthCheck>().is_err());
        assert_eq!(
            "header:x-user".parse::<HashKey>(),
            Ok(HashKey::Header("x-user".into()))
        );
        assert!("least-connections".parse::<Algorithm>().is_err());
        assert_eq!(parse_listen(":8080").unwrap().port(), 8080);
        assert_eq!(parse_dns_server("10.0.0.1").unwrap().port(), 53);
    }

    #[test]
    fn full_file() {
        let c = parse_file_text(
            r#"
socket = "/tmp/x.sock"
metrics = "127.0.0.1:9100"
drain_timeout = "2s"
threads = 1

[[service]]
name = "web"
listen = "127.0.0.1:8080"
network = "app"
alias = "web"
port = 80
algorithm = "least-conn"
health_check = "http:/healthz"
health_interval = "500ms"
rise = 1
fall = 3
connect_timeout = 2

[[service]]
listen = "127.0.0.1:5432"
mode = "tcp"
alias = "db"
port = 5432
discover = "dns"
dns_server = "127.0.0.11"
"#,
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.drain_timeout, Duration::from_secs(2));
        assert_eq!(c.services.len(), 2);
        let web = &c.services[0];
        assert_eq!(web.algorithm, Algorithm::LeastConn);
        assert_eq!(web.health.check, HealthCheck::Http("/healthz".into()));
        assert_eq!(web.health.interval, Duration::from_millis(500));
        assert_eq!(web.connect_timeout, Duration::from_secs(2));
        let db = &c.services[1];
        assert_eq!(db.name, "db-1");
        assert_eq!(db.mode, Mode::Tcp);
        assert_eq!(db.dns_server, Some("127.0.0.11:53".parse().unwrap()));
    }

    #[test]
    fn errors_are_clear() {
        let e = parse_file_text("[[service]]\nlisten = \":80\"\nalias = \"a\"\nport = 1\n")
            .unwrap_err();
        assert!(format!("{e:#}").contains("network is required"), "{e:#}");
        let e = parse_file_text("[[service]]\nlisten = \":80\"\nbogus = 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
        let e = parse_file_text(
            "[[service]]\nlisten=\":80\"\nnetwork=\"n\"\nalias=\"a\"\nport=1\nalgorithm=\"fastest\"\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("unknown algorithm"), "{e:#}");
    }
}
