//! `netd-lb`: load-balance a netd service alias over HTTP or TCP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netd_lb::config::{
    self, Algorithm, Discover, Globals, HashKey, HealthCheck, IpFamily, Mode, ServiceSpec,
    parse_duration,
};

/// Load-balance the members of a netd service alias.
///
/// One service from flags, or several from a TOML file with --config
/// (SIGHUP reloads it). Members are the endpoints on NETWORK whose aliases
/// include ALIAS (or the sandbox named ALIAS), found through the netd API and
/// followed as they join and leave; or, with --discover dns, the A (with
/// --ip-family ipv6, AAAA) records of ALIAS.
#[derive(Parser, Debug)]
#[command(name = "netd-lb", version)]
struct Args {
    /// A TOML file with one or more [[service]] tables (see docs/lb.md).
    #[arg(long, short = 'c', conflicts_with_all = [
        "listen", "network", "alias", "port", "mode", "algorithm", "hash_key", "health_check",
        "health_interval", "health_timeout", "rise", "fall", "socket", "discover", "ip_family",
        "dns_server",
        "dns_interval", "metrics", "connect_timeout", "request_timeout", "idle_timeout",
        "retries", "dead_peer_timeout", "h2c", "drain_timeout", "threads", "name",
    ])]
    config: Option<PathBuf>,

    /// Address to listen on (ADDR:PORT, [IPV6]:PORT, or :PORT for all IPv4
    /// addresses; [::]:PORT takes IPv4 and IPv6).
    #[arg(long, short = 'l', required_unless_present = "config")]
    listen: Option<String>,
    /// The netd network the members are on (API discovery).
    #[arg(long, short = 'n')]
    network: Option<String>,
    /// The service alias (or sandbox name) to balance over.
    #[arg(long, short = 'a', required_unless_present = "config")]
    alias: Option<String>,
    /// The members' port.
    #[arg(long, short = 'p', required_unless_present = "config")]
    port: Option<u16>,
    /// Proxy HTTP/1.1 requests, or plain TCP streams.
    #[arg(long, value_parser = parse::<Mode>)]
    mode: Option<Mode>,
    /// round-robin, least-conn or consistent-hash.
    #[arg(long, value_parser = parse::<Algorithm>)]
    algorithm: Option<Algorithm>,
    /// What consistent-hash hashes: client-ip, path or header:NAME.
    #[arg(long, value_parser = parse::<HashKey>)]
    hash_key: Option<HashKey>,
    /// Active health check: tcp, http:/PATH or none (default tcp).
    #[arg(long, value_parser = parse::<HealthCheck>)]
    health_check: Option<HealthCheck>,
    /// Time between health checks (default 1s).
    #[arg(long, value_parser = parse_duration)]
    health_interval: Option<Duration>,
    /// Time a health check may take (default 1s).
    #[arg(long, value_parser = parse_duration)]
    health_timeout: Option<Duration>,
    /// Successful checks in a row that put a member back (default 2).
    #[arg(long)]
    rise: Option<u32>,
    /// Failed checks in a row that take a member out (default 2).
    #[arg(long)]
    fall: Option<u32>,
    /// netd's API socket [env: NETD_SOCKET] (default /run/netd/netd.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Where members come from: the netd API, or DNS A/AAAA records of the alias.
    #[arg(long, value_parser = parse::<Discover>)]
    discover: Option<Discover>,
    /// Address family of the members: ipv4 (the endpoints' IPv4 address, A
    /// records) or ipv6 (their IPv6 address, AAAA records). Default ipv4.
    #[arg(long, value_parser = parse::<IpFamily>)]
    ip_family: Option<IpFamily>,
    /// Resolver for --discover dns, IP[:PORT] (default: /etc/resolv.conf's first).
    #[arg(long)]
    dns_server: Option<String>,
    /// Time between DNS lookups (default 1s).
    #[arg(long, value_parser = parse_duration)]
    dns_interval: Option<Duration>,
    /// Serve Prometheus metrics on ADDR:PORT at /metrics.
    #[arg(long)]
    metrics: Option<String>,
    /// Time a connect to a member may take before another is tried (default 1s).
    #[arg(long, value_parser = parse_duration)]
    connect_timeout: Option<Duration>,
    /// HTTP: longest wait for a member's response, per read (default 30s).
    #[arg(long, value_parser = parse_duration)]
    request_timeout: Option<Duration>,
    /// Idle keep-alive connections and TCP streams close after this (default 60s).
    #[arg(long, value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Other members tried after a failed connect (default 2).
    #[arg(long)]
    retries: Option<u32>,
    /// A member connection with data or keep-alive probes unacknowledged
    /// this long is dead (default 5s).
    #[arg(long, value_parser = parse_duration)]
    dead_peer_timeout: Option<Duration>,
    /// HTTP: also accept cleartext HTTP/2 (prior knowledge).
    #[arg(long)]
    h2c: bool,
    /// Longest SIGTERM waits for requests in flight (default 5s).
    #[arg(long, value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// Worker threads per service (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Service name in logs and metrics (default: the alias).
    #[arg(long)]
    name: Option<String>,
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn,pingora_proxy=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = match &args.config {
        Some(path) => config::load_file(path),
        None => {
            let spec = ServiceSpec {
                name: args.name.clone(),
                listen: args.listen.clone(),
                network: args.network.clone(),
                socket: None,
                alias: args.alias.clone(),
                port: args.port,
                mode: args.mode,
                algorithm: args.algorithm,
                hash_key: args.hash_key.clone(),
                discover: args.discover,
                ip_family: args.ip_family,
                dns_server: args.dns_server.clone(),
                dns_interval: args.dns_interval,
                health_check: args.health_check.clone(),
                health_interval: args.health_interval,
                health_timeout: args.health_timeout,
                rise: args.rise,
                fall: args.fall,
                connect_timeout: args.connect_timeout,
                request_timeout: args.request_timeout,
                idle_timeout: args.idle_timeout,
                retries: args.retries,
                dead_peer_timeout: args.dead_peer_timeout,
                h2c: args.h2c.then_some(true),
            };
            config::build(
                Globals {
                    socket: args.socket.clone(),
                    metrics: args.metrics.clone(),
                    drain_timeout: args.drain_timeout,
                    threads: args.threads,
                },
                &[spec],
            )
        }
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netd-lb: {e:#}");
            return ExitCode::from(2);
        }
    };
    raise_nofile_limit();
    if let Err(e) = netd_lb::run(cfg, args.config) {
        eprintln!("netd-lb: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Raise the soft RLIMIT_NOFILE to the hard limit: every proxied request
/// holds a client and a member socket, so the usual soft default of 1,024
/// caps netd-lb near 500 concurrent requests. The runtime is epoll (the
/// soft limit exists for `select(2)` users). Logged, never fatal.
fn raise_nofile_limit() {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(l) => l,
        Err(e) => return tracing::warn!("reading RLIMIT_NOFILE: {e}"),
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) => tracing::info!(
            soft = now,
            was = soft,
            hard,
            "open files limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(soft, hard, "raising RLIMIT_NOFILE to the hard limit: {e}"),
    }
}
