//! Hosting the DNS server for every sandbox: keeps `netd-dns` in step with
//! the store. Every change (an event of this daemon, or a nudge from another
//! process through `POST /netd/dns/sync`) recomputes the views and swaps
//! them in; sandboxes that left are stopped, new ones served.
//!
//! A recompute reads and derives every sandbox, so it grows with them. The
//! CNI plugin's ADD, which waits for its names to answer, names the new
//! sandbox instead (`POST /netd/dns/sync?sandbox=NAME`): its records are
//! added to the views that see its networks and it is served, reading
//! nothing but its own rows; a full recompute follows shortly after, off
//! the caller's path, and settles anything the shortcut did not cover.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use netd_dns::{Dns, Record4, Sockets, Table, View, ViewStats};
use tracing::{info, warn};

use crate::kernel::netns;
use crate::model::{Id, SandboxNet};
use crate::ops::Netd;
use crate::plan::dns::{SandboxNames, endpoint_names, resolves_names, views};
use crate::store;

pub struct DnsHost {
    dns: Dns,
    state: tokio::sync::Mutex<Served>,
    /// Asks `follow`'s task for a full recompute soon.
    resync: tokio::sync::Notify,
    /// The views' counters as the last sync left them, for `/metrics`
    /// (which must not wait for a sync in progress).
    stats: std::sync::Mutex<Vec<(String, Arc<ViewStats>)>>,
}

/// The `view` label of sandboxes on no network with names (the default
/// `bridge` only, say), and of queries from a sandbox not given a table yet.
const NO_NAMES: &str = "-";

/// How long a full recompute waits after a shortcut, so that a burst of
/// ADDs is settled once.
const RESYNC_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Which view a sandbox has: the networks with names it is on, and
/// whether it forwards (for sandboxes only on networks without names).
type ViewKey = (Vec<Id>, bool);

/// What the last sync handed out, so the next one rebuilds only tables
/// whose view changed and touches only sandboxes whose table changed.
#[derive(Default)]
struct Served {
    tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    sandboxes: HashMap<String, Arc<Table>>,
    /// The namespace each sandbox's sockets were opened in: one replaced
    /// since (deleted by hand and made again by reconcile) needs new ones.
    namespaces: HashMap<String, netns::NsId>,
    rows: store::Rereader,
    /// Per view label, the counters every table of that view counts in.
    stats: HashMap<String, Arc<ViewStats>>,
}

impl DnsHost {
    pub fn new(cfg: netd_dns::Config) -> DnsHost {
        let dns = Dns::new(cfg);
        let no_names = vec![(NO_NAMES.to_string(), dns.unviewed_stats())];
        DnsHost {
            state: tokio::sync::Mutex::new(Served {
                stats: no_names.iter().cloned().collect(),
                ..Default::default()
            }),
            stats: std::sync::Mutex::new(no_names),
            dns,
            resync: tokio::sync::Notify::new(),
        }
    }

    /// Per view label (sorted), its DNS counters.
    pub fn view_stats(&self) -> Vec<(String, Arc<ViewStats>)> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many sandboxes are served.
    pub fn served(&self) -> usize {
        self.dns.served().len()
    }

    /// Serve exactly the sandboxes that should have DNS, with current views.
    pub async fn sync(&self, netd: &Netd) {
        let mut served = self.state.lock().await;
        let rows = &mut served.rows;
        let state = netd
            .store()
            .read(|c| Ok((store::networks(c)?, rows.sandboxes(c)?, rows.endpoints(c)?)));
        let (nets, sandboxes, eps) = match state {
            Ok(s) => s,
            Err(e) => return warn!("DNS sync: {e}"),
        };
        let mut all = views(&nets, &sandboxes, &eps);
        let routes_out: HashMap<&Id, bool> = nets
            .iter()
            .map(|n| (&n.id, n.bridge().is_some_and(|b| !b.internal)))
            .collect();
        let mut mine: HashMap<&Id, Vec<&crate::model::Endpoint>> = HashMap::new();
        for e in &eps {
            mine.entry(&e.sandbox).or_default().push(e);
        }
        let mut tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)> = HashMap::new();
        let mut wanted = HashMap::new();
        let names_of: HashMap<&Id, &str> = nets.iter().map(|n| (&n.id, n.name.as_str())).collect();
        let host_side: HashMap<&Id, Vec<IpAddr>> = nets
            .iter()
            .filter_map(|n| {
                let b = n.bridge()?;
                (!b.internal).then(|| (&n.id, b.gateways()))
            })
            .collect();
        let mut stats: HashMap<String, Arc<ViewStats>> = HashMap::new();
        stats.insert(NO_NAMES.into(), self.dns.unviewed_stats());
        for s in &sandboxes {
            let SandboxNet::Namespace { path, .. } = &s.net else {
                continue;
            };
            let Some(mine) = mine.get(&s.id) else {
                continue;
            };
            // Only a sandbox not served yet needs its namespace looked at: a
            // served one whose namespace went keeps its (idle) server until
            // its record goes, and the look-up is most of a sync's system time.
            let id = s.id.to_string();
            if !served.sandboxes.contains_key(&id) && !netns::is_netns(Path::new(path)) {
                continue;
            }
            // A sandbox on networks without names (the default bridge) still
            // gets a resolver that forwards, like Docker's copy of the host's.
            let key: ViewKey = match all.of_sandbox.get(&s.id) {
                Some(k) => (k.clone(), true),
                None => (
                    vec![],
                    mine.iter()
                        .any(|e| routes_out.get(&e.network).copied().unwrap_or(false)),
                ),
            };
            let table = match tables.get(&key) {
                Some((_, t)) => Arc::clone(t),
                None => {
                    // Taken, not cloned: later sandboxes with this key find
                    // it in `tables`.
                    let mut names = match all.of_sandbox.get(&s.id) {
                        Some(k) => all.views.remove(k).unwrap_or_default(),
                        None => SandboxNames {
                            names: Default::default(),
                            forward: key.1,
                        },
                    };
                    add_host_names(&mut names, &key.0, &host_side);
                    let label = view_label(&key.0, &names_of);
                    let counted = stats
                        .entry(label.clone())
                        .or_insert_with(|| served.stats.get(&label).cloned().unwrap_or_default());
                    // An unchanged view keeps its table (and its rotation);
                    // only a changed one is turned into records.
                    let t = match served.tables.get(&key) {
                        Some((old, t)) if *old == names => Arc::clone(t),
                        _ => self
                            .dns
                            .table_counted(&view_of(&names), Arc::clone(counted)),
                    };
                    tables.insert(key, (names, Arc::clone(&t)));
                    t
                }
            };
            let unchanged = served
                .sandboxes
                .get(&id)
                .is_some_and(|t| Arc::ptr_eq(t, &table));
            // Sockets are made on this thread, in the sandbox's namespace
            // for a moment (no helper thread to start and wait for).
            if !unchanged {
                let mut opened = None;
                if let Err(e) = self.dns.serve_with(&id, Arc::clone(&table), || {
                    open_sockets(Path::new(path), &mut opened)
                }) {
                    warn!(sandbox = %s.name, "DNS: {e:#}");
                    continue;
                }
                if let Some(ns) = opened {
                    served.namespaces.insert(id.clone(), ns);
                }
            }
            wanted.insert(id, table);
        }
        for id in self.dns.served() {
            if !wanted.contains_key(&id) {
                self.dns.stop(&id);
            }
        }
        served.namespaces.retain(|id, _| wanted.contains_key(id));
        served.tables = tables;
        served.sandboxes = wanted;
        let mut published: Vec<_> = stats
            .iter()
            .map(|(l, s)| (l.clone(), Arc::clone(s)))
            .collect();
        published.sort_by(|a, b| a.0.cmp(&b.0));
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = published;
        served.stats = stats;
    }

    /// Stop serving sandboxes whose namespace is no longer the one their
    /// sockets were opened in (deleted, or deleted and made again), which
    /// closes the old sockets and so lets the old namespace go; then serve
    /// again those whose namespace is there now. A stat per sandbox served:
    /// for after a reconcile, not for every change.
    pub async fn follow_namespaces(&self, netd: &Netd) {
        let stale: Vec<String> = {
            let mut served = self.state.lock().await;
            let rows = &mut served.rows;
            let sandboxes = match netd.store().read(|c| rows.sandboxes(c)) {
                Ok(s) => s,
                Err(e) => return warn!("DNS namespaces: {e}"),
            };
            let mut stale = Vec::new();
            for s in &sandboxes {
                let id = s.id.to_string();
                let (Some(was), Some(path)) = (served.namespaces.get(&id), s.netns_path()) else {
                    continue;
                };
                if netns::file_id(Path::new(path)) != Some(*was) {
                    self.dns.stop(&id);
                    stale.push(id);
                }
            }
            for id in &stale {
                served.sandboxes.remove(id);
                served.namespaces.remove(id);
            }
            stale
        };
        if !stale.is_empty() {
            info!(
                sandboxes = stale.len(),
                "DNS: namespaces replaced; serving them anew"
            );
            self.sync(netd).await;
        }
    }

    /// A sandbox another process has just attached: serve it and add its
    /// names now, recompute everything soon. Falls back to a full sync when
    /// the shortcut does not apply (a sandbox served already, or the first
    /// on its set of networks).
    pub async fn sync_sandbox(&self, netd: &Netd, name: &str) {
        if self.add_sandbox(netd, name).await {
            self.resync.notify_one();
        } else {
            self.sync(netd).await;
        }
    }

    async fn add_sandbox(&self, netd: &Netd, name: &str) -> bool {
        let mut served = self.state.lock().await;
        let rows = netd.store().read(|c| {
            let s = store::sandbox(c, store::Ref::Name(name))?;
            let mut on = Vec::new();
            for e in store::endpoints_of_sandbox(c, &s.id)? {
                on.push((store::network_by_id(c, &e.network)?, e));
            }
            Ok((s, on))
        });
        let Ok((sb, on)) = rows else {
            return false;
        };
        let id = sb.id.to_string();
        let SandboxNet::Namespace { path, .. } = &sb.net else {
            return false;
        };
        if served.sandboxes.contains_key(&id) {
            return false;
        }
        let named: Vec<_> = on.iter().filter(|(n, _)| resolves_names(n)).collect();
        let mut ids: Vec<Id> = named.iter().map(|(n, _)| n.id.clone()).collect();
        ids.sort();
        ids.dedup();
        let own: ViewKey = (ids, true);
        if own.0.is_empty() || !served.tables.contains_key(&own) {
            return false;
        }
        // Every view that sees one of its networks gains its names, as
        // `views` would derive them, in place: the sandboxes sharing a
        // table see them at once.
        for (key, (names, table)) in served.tables.iter_mut() {
            let mut added = Vec::new();
            for (n, ep) in named.iter().filter(|(n, _)| key.0.contains(&n.id)) {
                let ips = ep.addrs();
                for name in endpoint_names(n.name.as_str(), &sb, ep) {
                    let v = names.names.entry(name.clone()).or_default();
                    for ip in &ips {
                        if !v.contains(ip) {
                            v.push(*ip);
                            if key.0.len() == 1 {
                                v.sort();
                            }
                        }
                    }
                    added.push(Record4 {
                        name,
                        addrs: ips.clone(),
                    });
                }
            }
            if !added.is_empty() {
                table.insert(&added);
            }
        }
        let table = Arc::clone(&served.tables[&own].1);
        let mut opened = None;
        let bound = self.dns.serve_with(&id, Arc::clone(&table), || {
            open_sockets(Path::new(path), &mut opened)
        });
        if let Err(e) = bound {
            warn!(sandbox = %sb.name, "DNS: {e:#}");
            return false;
        }
        if let Some(ns) = opened {
            served.namespaces.insert(id.clone(), ns);
        }
        served.sandboxes.insert(id, table);
        true
    }

    /// Follow this daemon's own changes, and recompute after shortcuts.
    pub fn follow(self: &Arc<Self>, netd: Arc<Netd>) {
        let me = Arc::clone(self);
        let mut rx = netd.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = me.resync.notified() => tokio::time::sleep(RESYNC_AFTER).await,
                }
                while rx.try_recv().is_ok() {}
                me.sync(&netd).await;
            }
        });
    }
}

/// Open a sandbox's DNS sockets inside its namespace, noting which
/// namespace that was (the path may name another one later).
fn open_sockets(path: &Path, opened: &mut Option<netns::NsId>) -> anyhow::Result<Sockets> {
    netns::in_netns(path, || {
        *opened = netns::thread_ns_id();
        Ok(Sockets::bind()?)
    })
}

/// A view's `view` label: the names of the networks whose names it
/// resolves, sorted, comma-separated. Sandboxes on the same networks share
/// one view (one table), so the labels are as many as the distinct sets of
/// networks sandboxes are on (about as many as networks, in practice), never
/// one per sandbox; a per-network label could not say which of a sandbox's
/// networks a query was for.
fn view_label(networks: &[Id], names_of: &HashMap<&Id, &str>) -> String {
    let mut names: Vec<&str> = networks
        .iter()
        .map(|id| names_of.get(id).copied().unwrap_or("?"))
        .collect();
    if names.is_empty() {
        return NO_NAMES.into();
    }
    names.sort_unstable();
    names.join(",")
}

/// The names Docker and podman give the host, as seen from a container.
const HOST_NAMES: [&str; 2] = ["host.docker.internal", "host.containers.internal"];

/// Answer [`HOST_NAMES`] with the host side of the sandbox's networks: their
/// gateways, which are the host's addresses on those bridges (both families
/// on a dual-stack network). Internal networks are left out, as podman
/// does: nothing on them is meant to reach the host. A member that took
/// one of these names as an alias keeps it.
fn add_host_names(
    names: &mut SandboxNames,
    networks: &[Id],
    host_side: &HashMap<&Id, Vec<IpAddr>>,
) {
    let mut gateways: Vec<IpAddr> = networks
        .iter()
        .filter_map(|id| host_side.get(id))
        .flatten()
        .copied()
        .collect();
    if gateways.is_empty() {
        return;
    }
    gateways.sort();
    gateways.dedup();
    for name in HOST_NAMES {
        names
            .names
            .entry(name.to_string())
            .or_insert_with(|| gateways.clone());
    }
}

fn view_of(names: &SandboxNames) -> View {
    View {
        records: names
            .names
            .iter()
            .map(|(n, a)| Record4 {
                name: n.clone(),
                addrs: a.clone(),
            })
            .collect(),
        forward: names.forward,
    }
}
