//! From specs to a [`Config`]: required settings checked, defaults filled in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::spec::{FileSpec, ServiceSpec, parse_dns_server, parse_listen, system_resolver};
use super::{Config, DEFAULT_SOCKET, Discover, HashKey, HealthConfig, Mode, ServiceConfig};

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
            ip_family: self.ip_family.unwrap_or_default(),
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
