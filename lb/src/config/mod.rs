//! Configuration: one service from command-line flags, or several from a
//! TOML file (`--config`). Both end up as a [`Config`]: the types are
//! here, what a file or the flags say in `spec`, the checks and defaults
//! that turn specs into a `Config` in `build`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod build;
mod spec;
#[cfg(test)]
mod tests;

pub use build::{Globals, build, load_file, parse_file_text};
pub use spec::{
    FileSpec, ServiceSpec, parse_dns_server, parse_duration, parse_listen, system_resolver,
};

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
    /// Which of a member's addresses receives traffic.
    pub ip_family: IpFamily,
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

/// The address family of the members: which address of an endpoint (API
/// discovery) or which record type (DNS discovery) names a member. The
/// listener's family is that of its own address, independent of this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    #[default]
    Ipv4,
    Ipv6,
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
keyword_enum!(IpFamily, "IP family", { "ipv4" => IpFamily::Ipv4, "ipv6" => IpFamily::Ipv6 });

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        })
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
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
