//! Hosting the DNS server for every sandbox: keeps `netd-dns` in step with
//! the store. A sandbox this daemon creates or removes is refreshed in
//! place (`Core::refresh_sandbox`: its names join or leave the views that
//! see its networks, it is served or stopped), reading nothing but its own
//! rows, so a create costs the same however many sandboxes there are
//! (issue 15). Any other change (a network, a connect or disconnect of a
//! sandbox that stays, a nudge from another process through
//! `POST /netd/dns/sync`) recomputes the views and swaps them in.
//!
//! A recompute reads and derives every sandbox, so it grows with them. It
//! runs on tokio's blocking pool (`dns_sync`), so the DNS servers and the API
//! keep their workers, and recomputes are coalesced: one asked for while
//! another runs is folded into a single next run, so a burst of N changes
//! costs a few recomputes, not N queued behind each other.
//!
//! The CNI plugin's ADD, which waits for its names to answer, names the new
//! sandbox instead (`POST /netd/dns/sync?sandbox=NAME`): it is refreshed in
//! place likewise; a full recompute follows shortly after, off the caller's
//! path, and settles anything the shortcut did not cover (the plugin's
//! other changes tell the daemon nothing else).

use std::sync::{Arc, Mutex};

use netd_dns::ViewStats;
use tracing::info;

use super::dns_sync::Core;
use crate::model::{Endpoint, Sandbox};
use crate::ops::Event;
use crate::ops::Netd;

pub struct DnsHost {
    core: Arc<Core>,
    runs: Arc<Runs>,
    /// Asks `follow`'s task for a full recompute soon.
    resync: tokio::sync::Notify,
}

/// How long a full recompute waits after a shortcut, so that a burst of
/// ADDs is settled once.
const RESYNC_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// The coalescing of full recomputes. Requests are numbered; a recompute
/// covers every request made before it started, and `done` says up to
/// which one the last finished recompute covered.
struct Runs {
    gens: Mutex<Gens>,
    done: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Gens {
    requested: u64,
    /// A runner is on the blocking pool; it loops while requests arrive.
    running: bool,
}

impl Runs {
    fn gens(&self) -> std::sync::MutexGuard<'_, Gens> {
        self.gens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a runner that panicked: the next request must be able to start a
/// runner, and its waiters are let go (they get the views as they are).
struct Runner {
    runs: Arc<Runs>,
    finished: bool,
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut g = self.runs.gens();
        g.running = false;
        self.runs.done.send_replace(g.requested);
    }
}

impl DnsHost {
    pub fn new(cfg: netd_dns::Config) -> DnsHost {
        DnsHost {
            core: Arc::new(Core::new(cfg)),
            runs: Arc::new(Runs {
                gens: Mutex::default(),
                done: tokio::sync::watch::channel(0).0,
            }),
            resync: tokio::sync::Notify::new(),
        }
    }

    /// Per view label (sorted), its DNS counters.
    pub fn view_stats(&self) -> Vec<(String, Arc<ViewStats>)> {
        self.core.view_stats()
    }

    /// How many sandboxes are served.
    pub fn served(&self) -> usize {
        self.core.dns.served().len()
    }

    /// Rows of other hosts of a cluster (their sandboxes are never served
    /// here): every recompute adds them to the store's rows, so their names
    /// resolve in the views that see their networks. Replaces the previous
    /// set, and asks `follow`'s task for a recompute.
    pub fn set_remote(&self, rows: Vec<(Sandbox, Endpoint)>) {
        let rows = rows
            .into_iter()
            .map(|(s, e)| (Arc::new(s), Arc::new(e)))
            .collect();
        self.core.set_remote(Arc::new(rows));
        self.resync.notify_one();
    }

    /// Serve exactly the sandboxes that should have DNS, with current views:
    /// returns once a recompute that started after this call has finished.
    pub async fn sync(&self, netd: &Arc<Netd>) {
        let want = {
            let mut g = self.runs.gens();
            g.requested += 1;
            if !g.running {
                g.running = true;
                let (core, netd, runs) = (
                    Arc::clone(&self.core),
                    Arc::clone(netd),
                    Arc::clone(&self.runs),
                );
                tokio::task::spawn_blocking(move || {
                    run(
                        &core,
                        &netd,
                        Runner {
                            runs,
                            finished: false,
                        },
                    )
                });
            }
            g.requested
        };
        let mut done = self.runs.done.subscribe();
        // An error means the sender is gone, with `self`: nothing to wait for.
        let _ = done.wait_for(|d| *d >= want).await;
    }

    /// Stop serving sandboxes whose namespace is no longer the one their
    /// sockets were opened in (deleted, or deleted and made again), which
    /// closes the old sockets and so lets the old namespace go; then serve
    /// again those whose namespace is there now. A stat per sandbox served:
    /// for after a reconcile, not for every change.
    pub async fn follow_namespaces(&self, netd: &Arc<Netd>) {
        let (core, n) = (Arc::clone(&self.core), Arc::clone(netd));
        let stale = tokio::task::spawn_blocking(move || core.drop_stale(&n))
            .await
            .unwrap_or(0);
        if stale > 0 {
            info!(
                sandboxes = stale,
                "DNS: namespaces replaced; serving them anew"
            );
            self.sync(netd).await;
        }
    }

    /// A sandbox another process has just attached: serve it and add its
    /// names now, recompute everything soon. Falls back to a full sync when
    /// the shortcut does not apply (a sandbox served already with other
    /// endpoints, or the first on its set of networks).
    pub async fn sync_sandbox(&self, netd: &Arc<Netd>, name: &str) {
        let (core, n, name) = (Arc::clone(&self.core), Arc::clone(netd), name.to_string());
        let done = tokio::task::spawn_blocking(move || core.refresh_sandbox(&n, &name))
            .await
            .unwrap_or(false);
        if done {
            self.resync.notify_one();
        } else {
            self.sync(netd).await;
        }
    }

    /// Follow this daemon's own changes, and recompute after shortcuts.
    /// A sandbox created or removed (its create or destroy event, and its
    /// connect or disconnect events) is added to or taken out of the views
    /// in place, as the CNI hand-off is: a recompute reads and derives
    /// every sandbox, and with one per burst of creates they ran back to
    /// back, a core busy with work that grew with the host (issue 15).
    /// Anything else (a network, a connect or disconnect of a sandbox that
    /// stays, a missed event) recomputes.
    pub fn follow(self: &Arc<Self>, netd: Arc<Netd>) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let me = Arc::clone(self);
        let mut rx = netd.subscribe();
        tokio::spawn(async move {
            loop {
                let mut changes = Changes::default();
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(ev) => changes.note(&ev),
                        Err(RecvError::Lagged(_)) => changes.full = true,
                        Err(RecvError::Closed) => return,
                    },
                    _ = me.resync.notified() => {
                        tokio::time::sleep(RESYNC_AFTER).await;
                        changes.full = true;
                    }
                }
                loop {
                    match rx.try_recv() {
                        Ok(ev) => changes.note(&ev),
                        Err(TryRecvError::Lagged(_)) => changes.full = true,
                        Err(_) => break,
                    }
                }
                if !changes.full && me.refresh_sandboxes(&netd, changes.sandboxes).await {
                    continue;
                }
                me.sync(&netd).await;
            }
        });
    }

    /// Refresh each sandbox in place; false as soon as one cannot be (the
    /// rest are then left to the recompute the caller makes).
    async fn refresh_sandboxes(&self, netd: &Arc<Netd>, names: Vec<String>) -> bool {
        if names.is_empty() {
            return true;
        }
        let (core, n) = (Arc::clone(&self.core), Arc::clone(netd));
        let t0 = std::time::Instant::now();
        let count = names.len();
        let done = tokio::task::spawn_blocking(move || {
            names.iter().all(|name| core.refresh_sandbox(&n, name))
        })
        .await
        .unwrap_or(false);
        tracing::debug!(target: "netd::timing", sandboxes = count, done, took = ?t0.elapsed(), "DNS refresh");
        done
    }
}

/// What a batch of events asks of DNS: sandboxes (by name) to refresh in
/// place, or a full recompute.
#[derive(Default, Debug, PartialEq)]
struct Changes {
    sandboxes: Vec<String>,
    full: bool,
}

impl Changes {
    fn note(&mut self, ev: &Event) {
        let sandbox = match (ev.kind, ev.action) {
            ("sandbox", "create" | "destroy") => Some(&ev.name),
            // Another host's endpoint comes with its rows (`set_remote`).
            ("network", "connect" | "disconnect") if !ev.attributes.contains_key("remote") => {
                ev.attributes.get("sandbox")
            }
            _ => None,
        };
        match sandbox {
            Some(name) if !self.sandboxes.contains(name) => self.sandboxes.push(name.clone()),
            Some(_) => {}
            None => self.full = true,
        }
    }
}

/// The runner: recompute until no request is left that an earlier
/// recompute did not cover. Requests made during a recompute cost one more,
/// however many they are.
fn run(core: &Core, netd: &Netd, mut runner: Runner) {
    loop {
        let covers = runner.runs.gens().requested;
        core.sync(netd);
        // Under the lock: a request made after this check sees `running`
        // cleared and starts a runner of its own.
        let mut g = runner.runs.gens();
        runner.runs.done.send_replace(covers);
        if g.requested == covers {
            g.running = false;
            runner.finished = true;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &'static str, action: &'static str, name: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            action,
            id: "0".into(),
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: 0,
            time_nano: 0,
        }
    }

    fn changes(evs: &[Event]) -> Changes {
        let mut c = Changes::default();
        for e in evs {
            c.note(e);
        }
        c
    }

    /// A create or a removal and its connect or disconnect events refresh
    /// one sandbox in place; anything that could change names other than
    /// one sandbox's recomputes.
    #[test]
    fn sandboxes_made_or_removed_are_refreshed_in_place() {
        let create = |s: &str| ev("sandbox", "create", s, &[("network", "n")]);
        let connect = |s: &str| {
            ev(
                "network",
                "connect",
                "n",
                &[("sandbox", s), ("ip", "10.0.0.2")],
            )
        };
        let disconnect = |s: &str| ev("network", "disconnect", "n", &[("sandbox", s)]);
        let destroy = |s: &str| ev("sandbox", "destroy", s, &[]);
        let c = changes(&[
            create("a"),
            connect("a"),
            disconnect("b"),
            destroy("b"),
            create("c"),
        ]);
        assert_eq!(
            c,
            Changes {
                sandboxes: vec!["a".into(), "b".into(), "c".into()],
                full: false
            }
        );
        for other in [
            ev("network", "create", "m", &[]),
            ev("network", "destroy", "n", &[]),
            ev(
                "network",
                "connect",
                "n",
                &[("sandbox", "far"), ("remote", "true")],
            ),
            ev(
                "network",
                "disconnect",
                "n",
                &[("sandbox", "far"), ("remote", "true")],
            ),
        ] {
            assert!(changes(&[create("a"), other.clone()]).full, "{other:?}");
        }
    }
}
