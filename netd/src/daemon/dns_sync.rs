//! The work behind [`super::dns_host::DnsHost`]: reading the store,
//! deriving every view and serving sandboxes. All of it is blocking (SQLite,
//! a `setns` per new sandbox) and a full recompute is CPU-bound and grows
//! with the sandboxes, so it runs on tokio's blocking pool, never on the
//! async workers that also run the DNS servers and the API.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use netd_dns::{Dns, Record4, Sockets, Table, View, ViewStats};
use tracing::warn;

use super::dns_add::{Member, members};
use crate::kernel::link::Netlink;
use crate::kernel::netns;
use crate::model::{Endpoint, Id, Network, Sandbox, SandboxNet};
use crate::ops::Netd;
use crate::plan::dns::{SandboxNames, Views, views};
use crate::store;

/// The `view` label of sandboxes on no network with names (the default
/// `bridge` only, say), and of queries from a sandbox not given a table yet.
pub(super) const NO_NAMES: &str = "-";

/// Which view a sandbox has: the networks with names it is on, whether it
/// forwards (for sandboxes only on networks without names), and where (see
/// [`upstreams_of`]).
pub(super) type ViewKey = (Vec<Id>, bool, Vec<SocketAddr>);

/// Rows of other hosts (see `DnsHost::set_remote`).
pub(super) type Remote = Arc<Vec<(Arc<Sandbox>, Arc<Endpoint>)>>;

/// What the last sync handed out, so the next one rebuilds only tables
/// whose view changed and touches only sandboxes whose table changed.
#[derive(Default)]
pub(super) struct Served {
    pub(super) tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    pub(super) sandboxes: HashMap<String, Arc<Table>>,
    /// The namespace each sandbox's sockets were opened in: one replaced
    /// since (deleted by hand and made again by reconcile) needs new ones.
    pub(super) namespaces: HashMap<String, netns::NsId>,
    rows: store::Rereader,
    /// Each served sandbox as it was served, by id, for
    /// [`Core::refresh_sandbox`]; and the ids by sandbox name.
    pub(super) members: HashMap<String, Member>,
    pub(super) ids: HashMap<String, String>,
    /// Per view label, the counters every table of that view counts in.
    stats: HashMap<String, Arc<ViewStats>>,
}

pub(super) struct Core {
    pub(super) dns: Dns,
    /// Held for a whole sync, only ever on the blocking pool.
    pub(super) state: Mutex<Served>,
    /// The views' counters as the last sync left them, for `/metrics`
    /// (which must not wait for a sync in progress).
    stats: Mutex<Vec<(String, Arc<ViewStats>)>>,
    remote: Mutex<Remote>,
}

/// A poisoned lock only means a sync panicked half-way; the next one
/// recomputes everything it touches, so the data is still usable.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per sandbox to serve: the sandbox, its namespace path and its view.
type Planned<'a> = Vec<(&'a Sandbox, &'a str, ViewKey)>;

/// Which sandboxes get which view, and the names of every view. Sandboxes
/// in `remote` are never served, and neither is one `present` rejects (its
/// namespace is gone). Pure, for tests.
fn plan<'a>(
    nets: &[Network],
    sandboxes: &'a [Arc<Sandbox>],
    eps: &[Arc<Endpoint>],
    remote: &HashSet<&Id>,
    present: impl Fn(&Sandbox, &str) -> bool,
) -> (Views, Planned<'a>) {
    let all = views(nets, sandboxes, eps);
    let routes_out: HashMap<&Id, bool> = nets
        .iter()
        .map(|n| (&n.id, n.bridge().is_some_and(|b| !b.internal)))
        .collect();
    let by_id: HashMap<&Id, &Network> = nets.iter().map(|n| (&n.id, n)).collect();
    let mut mine: HashMap<&Id, Vec<&Endpoint>> = HashMap::new();
    for e in eps {
        mine.entry(&e.sandbox).or_default().push(e);
    }
    let mut out = Vec::new();
    for s in sandboxes {
        let SandboxNet::Namespace { path, .. } = &s.net else {
            continue;
        };
        if remote.contains(&s.id) {
            continue;
        }
        let Some(mine) = mine.get(&s.id) else {
            continue;
        };
        if !present(s, path) {
            continue;
        }
        // A sandbox on networks without names (the default bridge) still
        // gets a resolver that forwards, like Docker's copy of the host's.
        let via = upstreams_of(
            s,
            mine.iter().filter_map(|e| by_id.get(&e.network).copied()),
        );
        let key: ViewKey = match all.of_sandbox.get(&s.id) {
            Some(k) => (k.clone(), true, via),
            None => (
                vec![],
                mine.iter()
                    .any(|e| routes_out.get(&e.network).copied().unwrap_or(false)),
                via,
            ),
        };
        out.push((&**s, path.as_str(), key));
    }
    (all, out)
}

/// Where a sandbox's 127.0.0.11 forwards: its own servers (`--dns`), else
/// those of the networks it is on (each once, in the order given), else
/// the daemon's (empty), port 53.
pub(super) fn upstreams_of<'a>(
    s: &Sandbox,
    nets: impl Iterator<Item = &'a Network>,
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let own = &s.dns.servers;
    let servers = if own.is_empty() {
        nets.flat_map(|n| n.dns_servers.iter()).collect::<Vec<_>>()
    } else {
        own.iter().collect()
    };
    for ip in servers {
        let a = SocketAddr::new(*ip, 53);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Add the rows of other hosts to the store's; returns their sandboxes' ids
/// (a remote sandbox has a row per network it is on).
fn add_remote<'a>(
    sandboxes: &mut Vec<Arc<Sandbox>>,
    eps: &mut Vec<Arc<Endpoint>>,
    remote: &'a Remote,
) -> HashSet<&'a Id> {
    let mut ids = HashSet::new();
    for (s, e) in remote.iter() {
        if ids.insert(&s.id) {
            sandboxes.push(Arc::clone(s));
        }
        eps.push(Arc::clone(e));
    }
    ids
}

impl Core {
    pub(super) fn new(cfg: netd_dns::Config) -> Core {
        let dns = Dns::new(cfg);
        let no_names = vec![(NO_NAMES.to_string(), dns.unviewed_stats())];
        Core {
            state: Mutex::new(Served {
                stats: no_names.iter().cloned().collect(),
                ..Default::default()
            }),
            stats: Mutex::new(no_names),
            dns,
            remote: Mutex::default(),
        }
    }

    pub(super) fn view_stats(&self) -> Vec<(String, Arc<ViewStats>)> {
        lock(&self.stats).clone()
    }

    pub(super) fn set_remote(&self, rows: Remote) {
        *lock(&self.remote) = rows;
    }

    /// Serve exactly the sandboxes that should have DNS, with current views.
    pub(super) fn sync(&self, netd: &Netd) {
        let t0 = std::time::Instant::now();
        let mut guard = lock(&self.state);
        let served = &mut *guard;
        let rows = &mut served.rows;
        let state = netd
            .store()
            .read(|c| Ok((store::networks(c)?, rows.sandboxes(c)?, rows.endpoints(c)?)));
        let (nets, mut sandboxes, mut eps) = match state {
            Ok(s) => s,
            Err(e) => return warn!("DNS sync: {e}"),
        };
        let remote = Arc::clone(&lock(&self.remote));
        let remote_ids = add_remote(&mut sandboxes, &mut eps, &remote);
        tracing::debug!(
            sandboxes = sandboxes.len(),
            remote = remote.len(),
            "DNS sync"
        );
        // Only a sandbox not served yet needs its namespace looked at: a
        // served one whose namespace went keeps its (idle) server until
        // its record goes, and the look-up is most of a sync's system time.
        let (all, planned) = plan(&nets, &sandboxes, &eps, &remote_ids, |s, path| {
            served.sandboxes.contains_key(&s.id.to_string()) || netns::is_netns(Path::new(path))
        });
        let names_of: HashMap<&Id, &str> = nets.iter().map(|n| (&n.id, n.name.as_str())).collect();
        let host_side: HashMap<&Id, Vec<IpAddr>> = nets
            .iter()
            .filter_map(|n| {
                let b = n.bridge()?;
                (!b.internal).then(|| (&n.id, b.gateways()))
            })
            .collect();
        let mut tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)> = HashMap::new();
        let mut wanted = HashMap::new();
        let mut stats: HashMap<String, Arc<ViewStats>> = HashMap::new();
        stats.insert(NO_NAMES.into(), self.dns.unviewed_stats());
        for (s, path, key) in planned {
            let id = s.id.to_string();
            let table = match tables.get(&key) {
                Some((_, t)) => Arc::clone(t),
                None => {
                    // Taken, not cloned: later sandboxes with this key find
                    // it in `tables`.
                    // Cloned: sandboxes on these networks with other
                    // upstreams have a key (and a table) of their own.
                    let mut names = match all.views.get(&key.0) {
                        Some(n) if !key.0.is_empty() => n.clone(),
                        _ => SandboxNames {
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
                            .table_counted(&view_of(&names, &key.2), Arc::clone(counted)),
                    };
                    tables.insert(key, (names, Arc::clone(&t)));
                    t
                }
            };
            let unchanged = served
                .sandboxes
                .get(&id)
                .is_some_and(|t| Arc::ptr_eq(t, &table));
            // Sockets are made on this (blocking-pool) thread, in the
            // sandbox's namespace for a moment.
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
        served.members = members(&sandboxes, &eps, &nets, |id| wanted.contains_key(id));
        served.ids = served
            .members
            .iter()
            .map(|(id, m)| (m.name.clone(), id.clone()))
            .collect();
        served.tables = tables;
        served.sandboxes = wanted;
        let mut published: Vec<_> = stats
            .iter()
            .map(|(l, s)| (l.clone(), Arc::clone(s)))
            .collect();
        published.sort_by(|a, b| a.0.cmp(&b.0));
        *lock(&self.stats) = published;
        served.stats = stats;
        tracing::debug!(target: "netd::timing", took = ?t0.elapsed(), served = served.sandboxes.len(), "DNS sync");
    }

    /// Stop serving the sandboxes whose namespace is no longer the one
    /// their sockets were opened in; returns how many.
    pub(super) fn drop_stale(&self, netd: &Netd) -> usize {
        let mut guard = lock(&self.state);
        let served = &mut *guard;
        let rows = &mut served.rows;
        let sandboxes = match netd.store().read(|c| rows.sandboxes(c)) {
            Ok(s) => s,
            Err(e) => {
                warn!("DNS namespaces: {e}");
                return 0;
            }
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
            if let Some(m) = served.members.remove(id) {
                served.ids.remove(&m.name);
            }
        }
        stale.len()
    }
}

/// Open a sandbox's DNS sockets inside its namespace, noting which
/// namespace that was (the path may name another one later). Its `lo` is
/// brought up first, as an endpoint's attach or CNI's `loopback` plugin
/// would: a sync may reach a sandbox whose creation is still under way (the
/// CNI plugin names it while it makes the veth pair), and 127.0.0.11 must
/// be local before it is bound (see [`Sockets::bind`]). Called on the
/// blocking pool, inside the runtime.
pub(super) fn open_sockets(
    path: &Path,
    opened: &mut Option<netns::NsId>,
) -> anyhow::Result<Sockets> {
    tokio::runtime::Handle::current()
        .block_on(async { Netlink::in_netns(path)?.ensure_lo_up().await })?;
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
pub(super) const HOST_NAMES: [&str; 2] = ["host.docker.internal", "host.containers.internal"];

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

pub(super) fn view_of(names: &SandboxNames, upstreams: &[SocketAddr]) -> View {
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
        upstreams: upstreams.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures;

    #[test]
    fn a_remote_row_is_named_in_a_served_sandboxs_view() {
        let net = fixtures::network("over", "10.9.0.0/24");
        let web = fixtures::sandbox("web");
        let mut db = fixtures::sandbox("db");
        db.net = SandboxNet::Host;
        // A remote row that looks local (a namespace path) is still not
        // served here: it is another host's.
        let cache = fixtures::sandbox("cache");
        let mut sandboxes = vec![Arc::new(web.clone())];
        let mut eps = vec![Arc::new(fixtures::endpoint(
            &net,
            &web,
            "10.9.0.2",
            &[],
            &[],
        ))];
        let remote: Remote = Arc::new(
            [(&db, "10.9.0.3", "store"), (&cache, "10.9.0.4", "kv")]
                .into_iter()
                .map(|(s, ip, alias)| {
                    let e = fixtures::endpoint(&net, s, ip, &[alias], &[]);
                    (Arc::new(s.clone()), Arc::new(e))
                })
                .collect(),
        );
        let ids = add_remote(&mut sandboxes, &mut eps, &remote);
        let (all, planned) = plan(
            std::slice::from_ref(&net),
            &sandboxes,
            &eps,
            &ids,
            |_, _| true,
        );
        let served: Vec<&str> = planned.iter().map(|(s, _, _)| s.name.as_str()).collect();
        assert_eq!(served, ["web"]);
        let names = &all.views[&planned[0].2.0].names;
        let ip = |a: &str| vec![a.parse::<IpAddr>().expect("ip")];
        assert_eq!(names["db"], ip("10.9.0.3"));
        assert_eq!(names["store"], ip("10.9.0.3"));
        assert_eq!(names["cache.over"], ip("10.9.0.4"));
        assert_eq!(names["web"], ip("10.9.0.2"));
    }

    #[test]
    fn a_sandboxs_servers_win_over_its_networks_and_theirs_over_the_daemons() {
        let ip = |a: &str| a.parse::<IpAddr>().expect("ip");
        let mut a = fixtures::network("a", "10.9.0.0/24");
        let mut b = fixtures::network("b", "10.9.1.0/24");
        let plain = fixtures::network("c", "10.9.2.0/24");
        a.dns_servers = vec![ip("10.0.0.1"), ip("10.0.0.2")];
        b.dns_servers = vec![ip("10.0.0.2"), ip("fd00::53")];
        let mut s = fixtures::sandbox("s");
        let at = |v: &[&str]| -> Vec<SocketAddr> {
            v.iter().map(|x| SocketAddr::new(ip(x), 53)).collect()
        };
        assert_eq!(
            upstreams_of(&s, [&a, &plain, &b].into_iter()),
            at(&["10.0.0.1", "10.0.0.2", "fd00::53"])
        );
        assert!(upstreams_of(&s, [&plain].into_iter()).is_empty());
        s.dns.servers = vec![ip("192.0.2.53")];
        assert_eq!(upstreams_of(&s, [&a].into_iter()), at(&["192.0.2.53"]));
    }
}
