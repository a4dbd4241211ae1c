//! A running service: its config (swappable on reload), its pool, its
//! metrics, and the tasks that keep the pool current.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, ServiceConfig};
use crate::metrics::ServiceMetrics;
use crate::pool::{Change, Member, Pool};

pub struct ServiceState {
    pub name: String,
    cfg: ArcSwap<ServiceConfig>,
    pub pool: Pool,
    pub metrics: ServiceMetrics,
    /// Bumped when the config changes: discovery and health restart.
    generation: watch::Sender<u64>,
}

impl ServiceState {
    pub fn new(cfg: ServiceConfig) -> Arc<ServiceState> {
        Arc::new(ServiceState {
            name: cfg.name.clone(),
            cfg: ArcSwap::from_pointee(cfg),
            pool: Pool::new(),
            metrics: ServiceMetrics::default(),
            generation: watch::channel(0).0,
        })
    }

    pub fn cfg(&self) -> Arc<ServiceConfig> {
        self.cfg.load_full()
    }

    /// Swap in a new config for the same listener.
    pub fn update(&self, cfg: ServiceConfig) {
        self.cfg.store(Arc::new(cfg));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Apply a discovered member list and log what changed.
    pub fn apply_members(&self, list: &[(String, std::net::SocketAddr)]) {
        let first = !self.pool.discovered();
        let Change {
            added,
            removed,
            gone,
        } = self.pool.set_members(list);
        self.metrics
            .discovery_updates
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (name, addr) in &added {
            info!(service = %self.name, member = %name, %addr, "member joined");
        }
        for (name, addr) in &removed {
            info!(service = %self.name, member = %name, %addr, "member left");
        }
        for m in gone {
            m.retire();
            if m.inflight_count() > 0 {
                tokio::spawn(abort_if_dead(self.name.clone(), m));
            }
        }
        if first && list.is_empty() {
            warn!(service = %self.name, "no members found yet");
        }
    }
}

/// A member left while requests to it were in flight. If it is still up
/// (only its alias went), let them finish; if it is gone (its sandbox was
/// removed), fail them now so they are re-sent elsewhere, instead of
/// waiting for the dead-peer timeout.
async fn abort_if_dead(service: String, m: Arc<Member>) {
    let probe = crate::health::probe(
        m.addr,
        &crate::config::HealthCheck::Tcp,
        std::time::Duration::from_millis(500),
    )
    .await;
    if let Err(e) = probe {
        let n = m.abort_inflight();
        if n > 0 {
            info!(service = %service, member = %m.name, addr = %m.addr, "member gone ({e:#}): {n} requests in flight to it cut, to be re-sent");
        }
    }
}

/// Aborts a task when dropped.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs discovery and health checks for every service (one pingora
/// background service, its own runtime).
pub struct Control {
    pub services: Vec<Arc<ServiceState>>,
}

#[async_trait]
impl BackgroundService for Control {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let tasks: Vec<TaskGuard> = self
            .services
            .iter()
            .map(|s| TaskGuard(tokio::spawn(manage(Arc::clone(s)))))
            .collect();
        let _ = shutdown.changed().await;
        drop(tasks);
    }
}

/// Keep one service's discovery and health checks running, restarting them
/// when its config changes.
async fn manage(svc: Arc<ServiceState>) {
    let mut gen_rx = svc.generation.subscribe();
    loop {
        gen_rx.borrow_and_update();
        let cfg = svc.cfg();
        let _disc = TaskGuard(tokio::spawn(crate::discovery::run(
            Arc::clone(&svc),
            Arc::clone(&cfg),
        )));
        let _health = TaskGuard(tokio::spawn(crate::health::run(Arc::clone(&svc), cfg)));
        if gen_rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a reload did, for the log.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Changes that need a restart (new listeners, removed services,
    /// process-wide settings).
    pub needs_restart: Vec<String>,
}

/// Apply a new config to the running services. Anything tied to a listener
/// (address, mode, h2c) or to the process (threads, metrics listener) needs a
/// restart; everything else applies without dropping connections.
pub fn reload(old: &Config, new: &Config, running: &[Arc<ServiceState>]) -> ReloadReport {
    let mut r = ReloadReport::default();
    for n in &new.services {
        match running.iter().find(|s| s.name == n.name) {
            Some(s) => {
                let cur = s.cfg();
                if cur.listen != n.listen || cur.mode != n.mode || cur.h2c != n.h2c {
                    r.needs_restart
                        .push(format!("service {:?}: listen/mode/h2c changed", n.name));
                    continue;
                }
                if *cur == *n {
                    r.unchanged.push(n.name.clone());
                } else {
                    s.update(n.clone());
                    r.updated.push(n.name.clone());
                }
            }
            None => r.needs_restart.push(format!("service {:?} is new", n.name)),
        }
    }
    for s in running {
        if !new.services.iter().any(|n| n.name == s.name) {
            r.needs_restart
                .push(format!("service {:?} was removed (still serving)", s.name));
        }
    }
    if old.threads != new.threads {
        r.needs_restart.push("threads changed".into());
    }
    if old.metrics != new.metrics {
        r.needs_restart.push("metrics listener changed".into());
    }
    if old.drain_timeout != new.drain_timeout {
        r.needs_restart.push("drain_timeout changed".into());
    }
    r
}
