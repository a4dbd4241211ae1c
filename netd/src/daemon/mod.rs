//! `netd daemon`: the HTTP/JSON API on a Unix socket, the start-up
//! reconcile, and clean shutdown.
//!
//! Two families of routes share one `axum::Router` ([`serve`]): Docker
//! Engine API network routes (so `DOCKER_HOST=unix://…` works,
//! [`routes_docker`]) and netd's own under `/netd/` ([`routes_netd`]). Both
//! call the same [`Netd`] operations.

mod cluster;
pub mod cni_report;
mod dns_add;
pub mod dns_host;
mod dns_sync;
pub mod docker;
mod firewalld;
mod host;
mod locks;
pub mod metrics;
pub mod proxy;
mod routes_docker;
mod routes_netd;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::lock;
use crate::model::{NetworkCreate, SandboxCreate};
use crate::ops::{Netd, Paths};
pub use locks::NAMESPACE_LOCK_DIR;
use routes_netd::ConnectBody;
pub use serve::MAX_BODY;
use serve::parse_body;

pub struct Daemon {
    netd: Arc<Netd>,
    dns: Arc<dns_host::DnsHost>,
    ops: Arc<metrics::OpMetrics>,
    /// Serves the ports published on `[::1]`.
    proxy: Arc<proxy::Proxy>,
}

/// The `api_bodies` fuzz target's entry: the first byte picks a route, the
/// rest is its body (or its `filters` parameter), parsed and validated
/// exactly as the route does before it calls an operation. Must never panic.
#[doc(hidden)]
pub fn fuzz_body(bytes: &[u8]) {
    let Some((route, rest)) = bytes.split_first() else {
        return;
    };
    let body = rest;
    if body.len() > MAX_BODY {
        return;
    }
    let now = std::time::SystemTime::now();
    match route % 9 {
        0 => {
            if let Ok(r) = parse_body::<docker::CreateRequest>(body)
                && let Ok(c) = r.into_netd()
            {
                let _ = c.validate();
            }
        }
        1 => {
            if let Ok(r) = parse_body::<docker::ConnectRequest>(body)
                && let Ok(e) = r.endpoint()
            {
                let _ = e.validate();
            }
        }
        2 => {
            let _ = parse_body::<docker::DisconnectRequest>(body);
        }
        3 => {
            let raw = String::from_utf8_lossy(rest);
            let _ = docker::Filters::parse(Some(&raw)).and_then(|f| f.prune(now));
            let _ = docker::Filters::parse(Some(&raw)).and_then(|f| f.networks());
        }
        4 => {
            if let Ok(r) = parse_body::<NetworkCreate>(body) {
                let _ = r.validate();
            }
        }
        5 => {
            if let Ok(r) = parse_body::<SandboxCreate>(body) {
                let _ = r.endpoint.validate();
                let _ = crate::model::Resolver::parse(&r.dns, &r.dns_search, &r.dns_options);
            }
        }
        6 => {
            if let Ok(r) = parse_body::<ConnectBody>(body) {
                let _ = r.endpoint.validate();
            }
        }
        7 => {
            let _ = parse_body::<netd_api::Disconnect>(body);
        }
        _ => {
            if let Ok(r) = parse_body::<netd_api::Prune>(body) {
                let raw = r.filters.map(|v| v.to_string());
                let _ = docker::Filters::parse(raw.as_deref()).and_then(|f| f.prune(now));
            }
        }
    }
}

/// Run the daemon until SIGTERM or SIGINT. Containers' networks stay as they
/// are when it stops: the kernel keeps them, the next start reconciles.
/// `metrics`: also serve `GET /metrics` over TCP there.
pub async fn run(
    paths: &Paths,
    dns: netd_dns::Config,
    metrics: Option<std::net::SocketAddr>,
    cluster: Option<crate::cluster::ClusterConfig>,
    forward_accept: Option<String>,
    firewalld: crate::ops::firewalld::FirewalldMode,
) -> Result<()> {
    host::raise_nofile_limit();
    // Every check that can refuse to start comes before the reconcile, which
    // removes links it does not know: never let a second daemon do that.
    let ns_lock = locks::lock_namespace()?;
    let _lock = locks::lock_state(&paths.state_dir)?;
    // Only root lists or writes the run dir; others may pass through it to
    // the socket, which its own mode (0660) guards.
    lock::private_dir(&paths.run_dir, RUN_DIR_MODE)?;
    // Before the API socket: a daemon that cannot listen leaves no socket behind.
    let metrics_listener = match metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}: cannot listen there"))?,
        ),
        None => None,
    };
    let listener = locks::bind_socket(&paths.socket)?;
    let ops: Arc<metrics::OpMetrics> = Default::default();
    let _cni_reports = cni_report::listen(&paths.socket, Arc::clone(&ops));
    // For whoever started the daemon from afar (the CNI plugin) and must stop it.
    let pid_file = paths.run_dir.join("netd.pid");
    lock::write_private(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    let mut netd = Netd::open(&paths.state_dir)
        .await
        .context("open state")?
        .with_forward_accept(forward_accept)
        .context("--forward-accept")?;
    if let Some(cfg) = cluster {
        netd = netd.with_cluster(cluster::join(cfg).await?);
    }
    // From here on what changes is kept for `GET /events?since=`.
    netd.keep_events();
    let report = netd.reconcile().await.context("reconcile")?;
    info!(
        bridges = report.bridges,
        endpoints = report.endpoints,
        orphans = ?report.orphans_removed,
        recreated = ?report.namespaces_recreated,
        "reconciled kernel with store"
    );
    for f in &report.failures {
        warn!("reconcile: {f}");
    }
    cluster::start(&netd).await?;
    let netd = Arc::new(netd);
    netd.watch_firewall().context("watch nftables")?;
    if let crate::ops::firewalld::FirewalldMode::Zone(zone) = firewalld {
        firewalld::start(Arc::clone(&netd), zone);
    }
    let dns = Arc::new(dns_host::DnsHost::new(dns));
    dns.sync(&netd).await;
    dns.follow(Arc::clone(&netd));
    cluster::follow(Arc::clone(&netd), Arc::clone(&dns));
    watch_links(Arc::clone(&netd), Arc::clone(&dns)).context("watch links")?;
    // Before the API answers: whoever waits for the daemon (a restart, the
    // CNI plugin that started it) finds the [::1] ports served.
    let proxy = Arc::new(proxy::Proxy::default());
    proxy.sync(&netd).await;
    proxy.follow(Arc::clone(&netd));
    let daemon = Arc::new(Daemon {
        netd,
        dns,
        ops,
        proxy,
    });
    if let Some(l) = metrics_listener {
        info!(addr = %l.local_addr()?, "serving /metrics");
        tokio::spawn(serve::serve_metrics(l, Arc::clone(&daemon)));
    }
    info!(socket = %paths.socket.display(), "netd daemon listening");
    let socket: PathBuf = paths.socket.clone();
    // Stop accepting on SIGTERM/SIGINT, let requests in flight finish, but
    // never wait on long-lived streams (events) for more than a moment.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let graceful = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let server = serve::serve(listener, daemon, graceful);
    // The listener is bound and the reconcile done: requests queued from now
    // on are answered as soon as the server is polled, just below.
    host::notify(sd_notify::NotifyState::Ready);
    tokio::select! {
        r = server => r.context("serve")?,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => info!("requests still open after {SHUTDOWN_GRACE:?}; stopping anyway"),
    }
    host::notify(sd_notify::NotifyState::Stopping);
    let _ = std::fs::remove_file(&socket);
    ns_lock.remove();
    info!("netd daemon stopped");
    Ok(())
}

/// How long the link watcher waits for more of a burst (a bridge deleted
/// with its ports, `ip netns del` of several sandboxes) before repairing.
const LINK_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Put back links that someone else deletes in the host namespace (see
/// `repair`). netd's own deletions never reach here (`link_watch`), and a
/// repair only recreates what the store has, so the two cannot loop.
fn watch_links(netd: Arc<Netd>, dns: Arc<dns_host::DnsHost>) -> Result<()> {
    use crate::kernel::link_watch::{self, LinkEvent};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LinkEvent>();
    link_watch::watch(move |e| {
        let _ = tx.send(e);
    })?;
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(LINK_SETTLE).await;
            let mut deleted = std::collections::HashSet::new();
            let mut overrun = false;
            let mut take = |e: LinkEvent| match e {
                LinkEvent::Deleted(names) => deleted.extend(names),
                LinkEvent::Overrun => overrun = true,
            };
            take(first);
            while let Ok(e) = rx.try_recv() {
                take(e);
            }
            if overrun {
                // Anything may be gone: the full pass.
                match netd.reconcile().await {
                    Ok(r) => {
                        info!(endpoints = r.endpoints, failures = ?r.failures, "link notifications were lost; reconciled");
                        dns.follow_namespaces(&netd).await;
                    }
                    Err(e) => warn!("reconcile after lost link notifications: {e}"),
                }
                continue;
            }
            match netd.repair_links(&deleted).await {
                Ok(r) if r.is_empty() => {}
                Ok(r) => {
                    info!(bridges = ?r.bridges, veths = ?r.veths, failures = ?r.failures, "repaired links deleted by someone else")
                }
                Err(e) => warn!("repairing deleted links: {e}"),
            }
        }
    });
    Ok(())
}

/// The run dir's mode: search only for group and others.
const RUN_DIR_MODE: u32 = 0o711;

/// How long SIGTERM waits for open requests (event streams never end).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon still stops on kill -9; never exit early.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
