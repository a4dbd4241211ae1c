//! netd's service-alias load balancer.
//!
//! `netd-lb` proxies HTTP/1.1 (its own keep-alive proxy, [`h1`]; with h2c,
//! pingora's) or plain TCP (on tokio) to the members of a service alias on a netd network. Members come from the netd
//! API (listed, then followed through its event stream) or from DNS A/AAAA
//! records of the alias. Selection is round-robin, least-connections or
//! consistent hashing; active health checks and failed connects take members
//! out, health checks put them back.
//!
//! Process model: one pingora [`Server`] hosts a service per listener, a
//! background service running discovery and health checks, and the metrics
//! listener. Signals: SIGTERM (and SIGQUIT) drain, SIGINT stops at once,
//! SIGHUP reloads the config file.

pub mod config;
pub mod discovery;
pub mod dns;
pub mod h1;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod service;
pub mod tcp;

/// Entry points of the fuzz targets in `fuzz/`: the HTTP/1 parsers on
/// arbitrary bytes, invariants asserted.
#[doc(hidden)]
pub use h1::fuzz::{
    chunked as fuzz_chunked, request_head as fuzz_request_head, response_head as fuzz_response_head,
};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::TcpSocketOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use tracing::{error, info, warn};

use config::{Config, Mode};
use service::ServiceState;

static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
static RELOADS: AtomicU64 = AtomicU64::new(0);

/// One request (HTTP) or connection (TCP) in flight; SIGTERM waits for
/// these to finish.
pub struct Inflight(());

pub fn inflight() -> Inflight {
    INFLIGHT.fetch_add(1, Relaxed);
    Inflight(())
}

impl Drop for Inflight {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(1, Relaxed);
    }
}

/// Successful config reloads so far.
pub fn reloads() -> u64 {
    RELOADS.load(Relaxed)
}

/// Run the load balancer until a signal stops it. Never returns on
/// success: pingora owns the process from here on.
///
/// Must not be called inside a tokio runtime: pingora builds its own.
pub fn run(cfg: Config, config_file: Option<PathBuf>) -> Result<()> {
    // pingora panics on a listener it cannot bind; say so clearly first.
    // Every trial socket is held until all are bound, so listeners that
    // clash with each other (`[::]:80` takes 0.0.0.0:80 too) are caught.
    let mut trial = Vec::new();
    for s in &cfg.services {
        trial.push(
            bind_like_pingora(s.listen)
                .with_context(|| format!("service {}: cannot listen on {}", s.name, s.listen))?,
        );
    }
    if let Some(m) = cfg.metrics {
        trial.push(
            bind_like_pingora(m).with_context(|| format!("cannot listen on {m} for metrics"))?,
        );
    }
    drop(trial);
    // SIGHUP's default action is to exit: ignore it until the handler is in.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }

    let drain = cfg.drain_timeout;
    let conf = ServerConf {
        threads: cfg.threads,
        // pingora sleeps this long after SIGTERM before stopping its
        // runtimes; we exit earlier once nothing is in flight.
        grace_period_seconds: Some(drain.as_secs() + u64::from(drain.subsec_nanos() > 0)),
        graceful_shutdown_timeout_seconds: Some(1),
        // One worker has nothing to steal from: a current-thread runtime
        // then saves the multi-thread scheduler's bookkeeping on every wake.
        // With more, pingora spreads connections over per-thread runtimes
        // at random, so their sockets would be driven by another thread's
        // reactor: keep work stealing there.
        work_stealing: cfg.threads != 1,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let services: Vec<Arc<ServiceState>> = cfg
        .services
        .iter()
        .map(|c| ServiceState::new(c.clone()))
        .collect();
    for svc in &services {
        let c = svc.cfg();
        let listen = c.listen.to_string();
        match c.mode {
            Mode::Http if !c.h2c => {
                let mut s = Service::new(
                    format!("http {}", c.name),
                    h1::Http1Lb::new(Arc::clone(svc)),
                );
                s.add_tcp_with_settings(&listen, tcp_options(c.listen));
                server.add_service(s);
            }
            // h2c needs pingora's HTTP/2 server, so its proxy.
            Mode::Http => {
                let mut p = pingora_proxy::http_proxy_service_with_name(
                    &server.configuration,
                    proxy::HttpLb::new(Arc::clone(svc)),
                    &format!("http {}", c.name),
                );
                if c.h2c
                    && let Some(app) = p.app_logic_mut()
                {
                    let mut o = HttpServerOptions::default();
                    o.h2c = true;
                    app.server_options = Some(o);
                }
                p.add_tcp_with_settings(&listen, tcp_options(c.listen));
                server.add_service(p);
            }
            Mode::Tcp => {
                let mut s =
                    Service::new(format!("tcp {}", c.name), tcp::TcpLb::new(Arc::clone(svc)));
                s.add_tcp_with_settings(&listen, tcp_options(c.listen));
                server.add_service(s);
            }
        }
        info!(service = %c.name, mode = %c.mode, listen = %c.listen, alias = %c.alias, port = c.port, algorithm = %c.algorithm, "service configured");
    }
    if let Some(m) = cfg.metrics {
        let mut s = Service::new(
            "metrics".to_string(),
            metrics::MetricsApp {
                services: services.clone(),
            },
        );
        s.threads = Some(1);
        s.add_tcp_with_settings(&m.to_string(), tcp_options(m));
        server.add_service(s);
        info!(listen = %m, "metrics on /metrics");
    }
    server.add_service(background_service(
        "discovery and health",
        service::Control {
            services: services.clone(),
        },
    ));
    let signals = Signals {
        config_file,
        current: Mutex::new(cfg),
        services,
        drain,
    };
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    std::process::exit(0)
}

/// Whether `addr` is `[::]:PORT`: it takes IPv4 clients too (below).
fn dual_stack(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified())
}

/// Listener socket options. `[::]:PORT` is dual-stack (IPV6_V6ONLY off,
/// IPv4 clients arrive as `::ffff:a.b.c.d` and are shown as IPv4): one
/// service, one pool, one set of health checks for both families, and the
/// same on every host whatever its `net.ipv6.bindv6only` (the kernel's
/// default for an unset option, 1 on some systems). A service that wants
/// IPv6 only listens on a specific IPv6 address. Other addresses keep
/// pingora's defaults.
fn tcp_options(addr: SocketAddr) -> TcpSocketOptions {
    let mut o = TcpSocketOptions::default();
    if dual_stack(addr) {
        o.ipv6_only = Some(false);
    }
    o
}

/// A listening socket made as pingora makes it (SO_REUSEADDR, the options
/// of [`tcp_options`]), to find out whether pingora's bind would fail.
fn bind_like_pingora(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if dual_stack(addr) {
        s.set_only_v6(false)?;
    }
    s.bind(&addr.into())?;
    s.listen(1)?;
    Ok(s)
}

/// The signals pingora waits on, plus SIGHUP for reloads.
struct Signals {
    config_file: Option<PathBuf>,
    current: Mutex<Config>,
    services: Vec<Arc<ServiceState>>,
    drain: Duration,
}

impl Signals {
    fn reload(&self) {
        let Some(path) = &self.config_file else {
            warn!("SIGHUP: nothing to reload (no --config file)");
            return;
        };
        let new = match config::load_file(path) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: keeping the running config: {e:#}");
                return;
            }
        };
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let r = service::reload(&cur, &new, &self.services);
        for n in &r.updated {
            info!(service = %n, "SIGHUP: service updated");
        }
        for n in &r.needs_restart {
            warn!("SIGHUP: not applied, needs a restart: {n}");
        }
        info!(
            updated = r.updated.len(),
            unchanged = r.unchanged.len(),
            "config reloaded from {}",
            path.display()
        );
        *cur = new;
        RELOADS.fetch_add(1, Relaxed);
    }

    /// After SIGTERM: exit as soon as nothing is in flight, or at the
    /// drain deadline (pingora's own deadline is the whole second after).
    fn start_drain_watch(&self) {
        let drain = self.drain;
        std::thread::spawn(move || {
            let start = Instant::now();
            // Let pingora stop its listeners and keep-alive loops first.
            std::thread::sleep(Duration::from_millis(50));
            loop {
                let n = INFLIGHT.load(Relaxed);
                if n == 0 {
                    info!("drained in {:?}, exiting", start.elapsed());
                    std::process::exit(0);
                }
                if start.elapsed() >= drain {
                    warn!("{n} requests/connections still open after {drain:?}, exiting");
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
            signal(SignalKind::hangup()),
        ) else {
            error!("cannot install signal handlers");
            std::future::pending::<()>().await;
            unreachable!()
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                // No binary upgrades here: SIGQUIT drains like SIGTERM.
                _ = quit.recv() => break,
                _ = int.recv() => {
                    info!("SIGINT: stopping now");
                    return ShutdownSignal::FastShutdown;
                }
                _ = hup.recv() => self.reload(),
            }
        }
        info!(
            "draining: {} in flight, at most {:?}",
            INFLIGHT.load(Relaxed),
            self.drain
        );
        self.start_drain_watch();
        ShutdownSignal::GracefulTerminate
    }
}
