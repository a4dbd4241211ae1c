//! The `netd` command line: Docker's habits (tables by default, `--format
//! json`, names or id prefixes everywhere). Every command except `daemon` and
//! `sandbox exec` is one request to the daemon's API.

mod network;
mod template;

pub use network::NetworkCmd;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::model::{EndpointOpts, EndpointRequest, Mac, PortMapping, SandboxCreate};
use crate::ops::{DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Paths, SandboxDetail};
use netd_api::blocking::Client;
use netd_api::{RemoveSandbox, seg};

#[derive(Parser, Debug)]
#[command(
    name = "netd",
    version,
    about = "Container networking: bridges, veths, IPAM, a Docker-compatible network API"
)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(
        long,
        global = true,
        env = "NETD_SOCKET",
        default_value = "/run/netd/netd.sock"
    )]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: the API socket, reconcile at start.
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage sandboxes (the network side of containers).
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// Follow events (network and sandbox changes) as JSON lines.
    Events(EventsArgs),
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// First replay the kept events from this time: a Unix time, an RFC
    /// 3339 time, or a duration before now (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// End at this time (same forms); a time past ends after the replay.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where the state database lives.
    #[arg(long, env = "NETD_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Runtime directory, created at start (the socket path is --socket).
    #[arg(long, env = "NETD_RUN_DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
    /// Upstream resolver for names that are not sandboxes', IP[:PORT],
    /// repeatable (default: the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_parser = upstream)]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// TTL of the answers for sandbox names, in seconds.
    #[arg(long, default_value_t = 5)]
    pub dns_ttl: u32,
    /// Also serve `GET /metrics` (Prometheus text) over TCP on ADDR:PORT,
    /// e.g. 127.0.0.1:9101 or [::1]:9101. The API socket serves it anyway.
    #[arg(long, value_name = "ADDR:PORT", value_parser = metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// netd.forward_accept of the predefined bridge network and of every
    /// bridge network created without the option: auto, or
    /// FAMILY/TABLE/CHAIN,... (accept rules for the bridges in the host
    /// firewall's forward chains). A network opts out with
    /// `-o netd.forward_accept=none`.
    #[arg(long, env = "NETD_FORWARD_ACCEPT", value_name = "auto|FAMILY/TABLE/CHAIN,...", value_parser = forward_accept)]
    pub forward_accept: Option<String>,
    /// Put every netd bridge in a firewalld zone over D-Bus while
    /// firewalld runs, again after each of its reloads and restarts:
    /// off, auto (zone trusted) or a zone's name.
    #[arg(long, env = "NETD_FIREWALLD", value_name = "off|auto|ZONE", default_value = "off", value_parser = crate::ops::firewalld::parse_mode)]
    pub firewalld: crate::ops::firewalld::FirewalldMode,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Joining a cluster (overlay networks): Docker's flag names.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// etcd of the cluster, etcd://HOST:PORT[,HOST:PORT...] (https when
    /// the TLS files are given). Without it netd is single-host.
    #[arg(
        long,
        value_name = "etcd://HOST:PORT,...",
        requires = "cluster_advertise"
    )]
    pub cluster_store: Option<String>,
    /// This host's IPv4 address on the network between the hosts: its
    /// VXLAN endpoint.
    #[arg(long, value_name = "IP", requires = "cluster_store")]
    pub cluster_advertise: Option<std::net::Ipv4Addr>,
    /// This host's name in the cluster (default: the advertised address).
    #[arg(long, value_name = "NAME", requires = "cluster_store")]
    pub cluster_host: Option<String>,
    /// How long a host that stops renewing its lease stays in the others'
    /// view (at least 2s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cluster_ttl)]
    pub cluster_ttl: std::time::Duration,
    /// CA certificate that signed etcd's server certificate.
    #[arg(long, value_name = "FILE", requires = "cluster_store")]
    pub cluster_store_cacert: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, value_name = "FILE", requires_all = ["cluster_store", "cluster_store_key"])]
    pub cluster_store_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", requires_all = ["cluster_store", "cluster_store_cert"])]
    pub cluster_store_key: Option<PathBuf>,
}

impl ClusterArgs {
    /// The cluster to join, if the flags name one.
    pub fn config(&self) -> Result<Option<crate::cluster::ClusterConfig>> {
        let (Some(store), Some(advertise)) = (&self.cluster_store, self.cluster_advertise) else {
            return Ok(None);
        };
        let tls_given = self.cluster_store_cacert.is_some() || self.cluster_store_cert.is_some();
        let endpoints = crate::cluster::store_endpoints(store, tls_given)
            .map_err(|e| anyhow::anyhow!("--cluster-store: {e}"))?;
        if advertise.is_unspecified() || advertise.is_loopback() || advertise.is_multicast() {
            anyhow::bail!(
                "--cluster-advertise {advertise}: the other hosts must reach this address"
            );
        }
        let tls = tls_given.then(|| crate::cluster::TlsFiles {
            ca: self.cluster_store_cacert.clone(),
            cert: self.cluster_store_cert.clone(),
            key: self.cluster_store_key.clone(),
        });
        Ok(Some(crate::cluster::ClusterConfig {
            endpoints,
            advertise,
            host: self
                .cluster_host
                .clone()
                .unwrap_or_else(|| advertise.to_string()),
            ttl: self.cluster_ttl,
            tls,
        }))
    }
}

fn cluster_ttl(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < std::time::Duration::from_secs(2) {
        return Err(format!(
            "{s:?}: at least 2s (the lease is renewed at a third of it)"
        ));
    }
    Ok(d)
}

/// `IP:PORT` or `[IPV6]:PORT`, with a port: a scraper must know where to look.
fn metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
        format!("{s:?} is not ADDR:PORT (e.g. 127.0.0.1:9101 or [::1]:9101; no host names)")
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?}: port 0 would listen on a random port; give one"
        ));
    }
    Ok(addr)
}

/// `IP`, `[IPV6]` or `IP:PORT` / `[IPV6]:PORT`; port 53 when none is given.
fn upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse()
        .or_else(|_| {
            bare.parse::<std::net::IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("expected IP, [IPV6], IP:PORT or [IPV6]:PORT, got {s:?}"))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Only print ids.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum SandboxCmd {
    /// Create a sandbox: a network namespace on a network.
    Create {
        /// A network name, `host` or `none`.
        #[arg(long, default_value = "bridge")]
        network: String,
        #[command(flatten)]
        endpoint: Box<EndpointArgs>,
        /// Adopt this existing namespace instead of creating /run/netns/NAME.
        #[arg(long)]
        netns: Option<String>,
        #[command(flatten)]
        dns: Box<ResolverArgs>,
        name: String,
    },
    /// List sandboxes.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show sandboxes in detail (JSON).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove sandboxes: endpoints, and the namespace if netd created it.
    #[command(alias = "remove")]
    Rm {
        #[arg(long, short)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run a command inside a sandbox's network namespace.
    Exec {
        name: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

/// A sandbox's resolver, as `docker run` takes it.
#[derive(Args, Debug)]
pub struct ResolverArgs {
    /// An upstream DNS server for this sandbox: 127.0.0.11 forwards its
    /// names that are not local there (instead of to its networks' or the
    /// daemon's). Repeatable.
    #[arg(long = "dns", value_name = "IP")]
    pub servers: Vec<String>,
    /// A search domain of its resolv.conf (instead of the host's).
    /// Repeatable; needs a namespace netd makes.
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub search: Vec<String>,
    /// A resolv.conf option (ndots:N, timeout:N, attempts:N, rotate,
    /// edns0, ...). Repeatable; needs a namespace netd makes.
    #[arg(long = "dns-option", value_name = "OPT")]
    pub options: Vec<String>,
}

/// What a sandbox gets on a network, for `sandbox create` and `network connect`.
#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// A static IPv4 address in the network's subnet.
    #[arg(long)]
    ip: Option<String>,
    /// A static IPv6 address in the network's IPv6 subnet.
    #[arg(long)]
    ip6: Option<String>,
    /// Another DNS name for the sandbox on this network.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp].
    #[arg(long = "publish", short = 'p')]
    publish: Vec<String>,
    /// The interface's MAC address (default 02:42 followed by the IPv4 address).
    #[arg(long)]
    mac: Option<String>,
    /// Of the sandbox's networks that route out, the one with the highest
    /// priority gives its default route (Docker's --gw-priority; ties go to
    /// the first interface).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    gw_priority: i64,
    /// Also give the interface this link-local address (169.254.0.0/16 or
    /// fe80::/10; repeatable, at most 16), as Docker's --link-local-ip.
    #[arg(long = "link-local-ip")]
    link_local_ips: Vec<String>,
    /// An endpoint option, as Docker's --driver-opt (repeatable):
    /// com.docker.network.endpoint.ifname=NAME or
    /// com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.KEY=V[,...].
    #[arg(long = "driver-opt", value_parser = key_value)]
    driver_opts: Vec<(String, String)>,
}

fn label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        None if !s.is_empty() => Ok((s.to_string(), String::new())),
        _ => Err(format!("expected KEY[=VALUE], got {s:?}")),
    }
}

fn forward_accept(s: &str) -> Result<String, String> {
    crate::plan::forward::parse(s).map_err(|e| e.0)?;
    Ok(s.to_string())
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn endpoint_request(a: EndpointArgs) -> Result<EndpointRequest> {
    let EndpointArgs {
        ip,
        ip6,
        aliases,
        publish,
        mac,
        gw_priority,
        link_local_ips,
        driver_opts,
    } = a;
    let opts = EndpointOpts::parse(driver_opts.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .context("invalid --driver-opt")?;
    let link_local_ips = link_local_ips
        .iter()
        .map(|s| {
            s.parse().with_context(|| {
                format!("invalid --link-local-ip {s:?}: expected an IPv4 or IPv6 address")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ip = ip
        .map(|s| {
            s.parse()
                .with_context(|| format!("invalid --ip {s:?}: expected an IPv4 address"))
        })
        .transpose()?;
    let ip6 = ip6
        .map(|s| {
            s.parse()
                .with_context(|| format!("invalid --ip6 {s:?}: expected an IPv6 address"))
        })
        .transpose()?;
    let ports = publish
        .iter()
        .map(|p| p.parse::<PortMapping>().map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let mac = mac.map(|m| m.parse::<Mac>()).transpose()?;
    Ok(EndpointRequest {
        ip,
        ip6,
        aliases,
        ports,
        mac,
        ifname: opts.ifname,
        gw_priority,
        link_local_ips,
        sysctls: opts.sysctls,
        egress_ifb: false,
    })
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    let socket = cli.socket.clone();
    run_command(cli).map_err(|e| match e.downcast::<netd_api::Error>() {
        Ok(netd_api::Error::Connect { source, .. }) => anyhow::Error::new(source).context(format!(
            "cannot reach the netd daemon at {} (is `netd daemon` running? set NETD_SOCKET or --socket if it listens elsewhere)",
            socket.display()
        )),
        Ok(e) => e.into(),
        Err(e) => e,
    })
}

fn run_command(cli: Cli) -> Result<()> {
    match cli.cmd {
        Command::Daemon(a) => {
            let paths = Paths {
                state_dir: a.state_dir,
                run_dir: a.run_dir,
                socket: cli.socket,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start runtime")?;
            let dns = netd_dns::Config {
                upstreams: a.dns_upstream,
                ttl: a.dns_ttl,
                ..Default::default()
            };
            let cluster = a.cluster.config()?;
            rt.block_on(crate::daemon::run(
                &paths,
                dns,
                a.metrics,
                cluster,
                a.forward_accept,
                a.firewalld,
            ))
        }
        Command::Network(n) => network::network(&Client::new(&cli.socket)?, n),
        Command::Sandbox(s) => sandbox(&Client::new(&cli.socket)?, s),
        Command::Events(a) => {
            #[derive(serde::Serialize)]
            struct Q<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                since: Option<&'a str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                until: Option<&'a str>,
            }
            let q = serde_urlencoded::to_string(Q {
                since: a.since.as_deref(),
                until: a.until.as_deref(),
            })?;
            let path = match q.is_empty() {
                true => "/netd/events".to_string(),
                false => format!("/netd/events?{q}"),
            };
            Client::new(&cli.socket)?.stream_lines(&path, |l| -> Result<()> {
                println!("{l}");
                std::io::stdout().flush()?;
                Ok(())
            })?;
            // With `--until` the end is the one asked for.
            if a.until.is_none() {
                bail!("the daemon closed the event stream")
            }
            Ok(())
        }
    }
}

/// `inspect NAME...`: a JSON array of what was found; the misses fail the
/// command after printing the rest, as Docker does.
fn inspect<T: serde::de::DeserializeOwned + serde::Serialize>(
    c: &Client,
    kind: &str,
    names: &[String],
) -> Result<()> {
    let mut out: Vec<T> = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match c.get::<T>(&format!("/netd/{kind}/{}", seg(n))) {
            Ok(d) => out.push(d),
            Err(e) => missing.push(e.to_string()),
        }
    }
    print_json(&out)?;
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    Ok(())
}

/// `rm NAME...`: each name printed as it goes, failures reported together.
fn remove(c: &Client, kind: &str, names: &[String], query: &str) -> Result<()> {
    let mut failed = Vec::new();
    for n in names {
        match c.delete::<Value>(&format!("/netd/{kind}/{}{query}", seg(n))) {
            Ok(_) => println!("{n}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn confirm(warning: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn sandbox(c: &Client, cmd: SandboxCmd) -> Result<()> {
    match cmd {
        SandboxCmd::Create {
            network,
            endpoint,
            netns,
            dns,
            name,
        } => {
            let req = SandboxCreate {
                name,
                network: Some(network),
                netns,
                endpoint: endpoint_request(*endpoint)?,
                dns: dns.servers,
                dns_search: dns.search,
                dns_options: dns.options,
            };
            let d: SandboxDetail = c.post("/netd/sandboxes", &req)?;
            println!("{}", d.sandbox.id);
        }
        SandboxCmd::Ls(ListArgs { format, quiet }) => {
            let list: Vec<SandboxDetail> = c.get("/netd/sandboxes")?;
            if quiet {
                list.iter()
                    .for_each(|d| println!("{}", d.sandbox.id.short()));
            } else if format == Format::Json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| {
                        let s = &d.sandbox;
                        let nets: Vec<String> = if d.endpoints.is_empty() {
                            vec![match (&s.net, s.isolated) {
                                (crate::model::SandboxNet::Host, _) => "host".into(),
                                (_, true) => "none".into(),
                                _ => String::new(),
                            }]
                        } else {
                            d.endpoints
                                .iter()
                                .map(|e| e.network_name.to_string())
                                .collect()
                        };
                        // Every address, each endpoint's IPv4 then IPv6.
                        let ips: Vec<String> = d
                            .endpoints
                            .iter()
                            .flat_map(|e| e.endpoint.addrs())
                            .map(|a| a.to_string())
                            .collect();
                        vec![
                            s.id.short().to_string(),
                            s.name.to_string(),
                            nets.join(","),
                            ips.join(","),
                            d.netns.clone(),
                        ]
                    })
                    .collect();
                print_table(&["SANDBOX ID", "NAME", "NETWORKS", "IPS", "NETNS"], &rows);
            }
        }
        SandboxCmd::Inspect { names } => inspect::<SandboxDetail>(c, "sandboxes", &names)?,
        SandboxCmd::Rm { force, names } => {
            let query = if force {
                format!("?{}", serde_urlencoded::to_string(RemoveSandbox { force })?)
            } else {
                String::new()
            };
            remove(c, "sandboxes", &names, &query)?
        }
        SandboxCmd::Exec { name, cmd } => {
            let d: SandboxDetail = c.get(&format!("/netd/sandboxes/{}", seg(&name)))?;
            exec_in(&d.netns, d.sandbox.name.as_str(), &cmd)?;
        }
    }
    Ok(())
}

/// Join the namespace and replace this process with `cmd`. The CLI is
/// single-threaded here, so setns affects the whole process.
fn exec_in(netns: &str, name: &str, cmd: &[String]) -> Result<()> {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::open(netns).with_context(|| format!("open {netns}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("enter {netns}"))?;
    // Like `ip netns exec`: a private mount namespace where the sandbox's
    // resolv.conf stands in for the host's.
    let resolv = crate::kernel::netns::etc_dir(name).join("resolv.conf");
    if resolv.exists() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .context("unshare the mount namespace")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("make / a slave mount")?;
        mount(
            Some(&resolv),
            "/etc/resolv.conf",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("bind the sandbox's resolv.conf")?;
    }
    let err = std::process::Command::new(&cmd[0]).args(&cmd[1..]).exec();
    Err(err).with_context(|| format!("exec {}", cmd[0]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_takes_an_address_and_a_port() {
        use super::metrics_addr;
        assert_eq!(
            metrics_addr("127.0.0.1:9101").unwrap().to_string(),
            "127.0.0.1:9101"
        );
        assert_eq!(
            metrics_addr("[::1]:9101").unwrap().to_string(),
            "[::1]:9101"
        );
        for bad in [
            "127.0.0.1",
            "localhost:9101",
            "127.0.0.1:0",
            ":9101",
            "1.2.3.4:99999",
        ] {
            assert!(metrics_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstreams_take_both_families_with_or_without_a_port() {
        for (given, want) in [
            ("1.1.1.1", "1.1.1.1:53"),
            ("1.1.1.1:5353", "1.1.1.1:5353"),
            ("::1", "[::1]:53"),
            ("[::1]", "[::1]:53"),
            ("[fd00::53]:5353", "[fd00::53]:5353"),
        ] {
            assert_eq!(super::upstream(given).unwrap().to_string(), want);
        }
        let e = super::upstream("[::1").unwrap_err();
        assert!(e.contains("[::1"), "{e}");
    }
}
