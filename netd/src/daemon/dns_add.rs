//! Adding a sandbox to the DNS views in place, and taking one out (see
//! `Core::refresh_sandbox`): what the daemon does for each sandbox it
//! creates or removes and for the CNI plugin's hand-off, instead of a
//! recompute that reads and derives every sandbox (issue 15). Each function
//! costs what the sandbox's names are, not what the views hold; the tests
//! check the result against a recompute.

use std::collections::HashMap;
use std::sync::Arc;

use netd_dns::{Record4, Table};

use std::path::Path;

use tracing::warn;

use super::dns_sync::{Core, HOST_NAMES, Served, ViewKey, lock, open_sockets, upstreams_of};
use crate::model::SandboxNet;
use crate::model::{Endpoint, Id, Network, Sandbox};
use crate::ops::Netd;
use crate::plan::dns::{SandboxNames, endpoint_names, resolves_names};
use crate::store;

/// One endpoint of a sandbox on a network with names: the network's id
/// and name, and the endpoint.
pub(super) type Named<'a> = (&'a Id, &'a str, &'a Endpoint);

/// A served sandbox as it was served: enough to take its names out of the
/// views once its rows are gone from the store.
pub(super) struct Member {
    pub(super) name: String,
    pub(super) sandbox: Arc<Sandbox>,
    /// Its endpoints on networks with names: (network id, network name, endpoint).
    pub(super) named: Vec<(Id, String, Arc<Endpoint>)>,
    /// The ids of all its endpoints, sorted: one served as it is now needs
    /// nothing, one whose endpoints changed a recompute.
    pub(super) endpoints: Vec<String>,
}

impl Member {
    pub(super) fn named(&self) -> Vec<Named<'_>> {
        self.named
            .iter()
            .map(|(id, n, e)| (id, n.as_str(), &**e))
            .collect()
    }
}

/// The members `keep` says yes to (by sandbox id), from a whole read.
pub(super) fn members(
    sandboxes: &[Arc<Sandbox>],
    eps: &[Arc<Endpoint>],
    nets: &[Network],
    keep: impl Fn(&str) -> bool,
) -> HashMap<String, Member> {
    let named: HashMap<&Id, &str> = nets
        .iter()
        .filter(|n| resolves_names(n))
        .map(|n| (&n.id, n.name.as_str()))
        .collect();
    let mut out: HashMap<String, Member> = sandboxes
        .iter()
        .filter(|s| keep(s.id.as_str()))
        .map(|s| {
            let m = Member {
                name: s.name.to_string(),
                sandbox: Arc::clone(s),
                named: Vec::new(),
                endpoints: Vec::new(),
            };
            (s.id.to_string(), m)
        })
        .collect();
    for e in eps {
        let Some(m) = out.get_mut(e.sandbox.as_str()) else {
            continue;
        };
        m.endpoints.push(e.id.to_string());
        if let Some(net) = named.get(&e.network) {
            m.named
                .push((e.network.clone(), net.to_string(), Arc::clone(e)));
        }
    }
    for m in out.values_mut() {
        m.endpoints.sort();
    }
    out
}

pub(super) fn sorted_ids<'a>(eps: impl Iterator<Item = &'a Endpoint>) -> Vec<String> {
    let mut v: Vec<String> = eps.map(|e| e.id.to_string()).collect();
    v.sort();
    v
}

/// Whether one of the sandbox's names is one of [`HOST_NAMES`]: a member's
/// alias replaces the host's answer there, which adding or removing in
/// place cannot follow.
pub(super) fn takes_host_name(sb: &Sandbox, named: &[Named]) -> bool {
    named.iter().any(|(_, net, ep)| {
        endpoint_names(net, sb, ep)
            .iter()
            .any(|x| HOST_NAMES.contains(&x.as_str()))
    })
}

/// Add a new sandbox's names to every view that sees one of its networks,
/// as `plan::dns::views` would derive them, in place: the sandboxes
/// sharing a table see them at once.
pub(super) fn add_names(
    tables: &mut HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    sb: &Sandbox,
    named: &[Named],
) {
    for (key, (names, table)) in tables.iter_mut() {
        let mut added = Vec::new();
        for (_, net, ep) in named.iter().filter(|(id, _, _)| key.0.contains(id)) {
            let ips = ep.addrs();
            for name in endpoint_names(net, sb, ep) {
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
}

/// Take a sandbox's names out of every view that sees one of its networks,
/// in place: its addresses leave the names it shares (an alias), and names
/// left without addresses go. An address is one endpoint's on a host
/// (subnets do not overlap), so no other member loses anything.
pub(super) fn remove_names(
    tables: &mut HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    sb: &Sandbox,
    named: &[Named],
) {
    for (key, (names, table)) in tables.iter_mut() {
        let mut removed = Vec::new();
        for (_, net, ep) in named.iter().filter(|(id, _, _)| key.0.contains(id)) {
            let ips = ep.addrs();
            for name in endpoint_names(net, sb, ep) {
                if let Some(v) = names.names.get_mut(&name) {
                    v.retain(|a| !ips.contains(a));
                    if v.is_empty() {
                        names.names.remove(&name);
                    }
                }
                removed.push(Record4 {
                    name,
                    addrs: ips.clone(),
                });
            }
        }
        if !removed.is_empty() {
            table.remove(&removed);
        }
    }
}

impl Core {
    /// Bring sandbox `name`'s DNS up to date in place, reading nothing
    /// but its own rows: a new one is served and its names join the views
    /// that see its networks; one that is gone leaves them and is stopped;
    /// one served as it is needs nothing. False when that cannot be done in
    /// place, and the caller must recompute: a sandbox whose endpoints
    /// changed, the first on its set of networks, one gone that was never
    /// served here (its names may be in views all the same), one taking a
    /// name of the host's, or the store unreadable.
    pub(super) fn refresh_sandbox(&self, netd: &Netd, name: &str) -> bool {
        let mut guard = lock(&self.state);
        let served = &mut *guard;
        let rows = netd.store().read(|c| {
            let s = match store::sandbox(c, store::Ref::Name(name)) {
                Ok(s) => s,
                Err(crate::error::Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut on = Vec::new();
            for e in store::endpoints_of_sandbox(c, &s.id)? {
                on.push((store::network_by_id(c, &e.network)?, e));
            }
            Ok(Some((s, on)))
        });
        let Ok(rows) = rows else {
            return false;
        };
        let was = served.ids.get(name).cloned();
        let Some((sb, on)) = rows else {
            // Gone: one served here leaves the views; of another, what is
            // in the views is not known here.
            return was.is_some_and(|id| self.take_out(served, &id));
        };
        let id = sb.id.to_string();
        // The name taken by a new sandbox since: the old one goes first.
        if let Some(old) = was.filter(|w| *w != id)
            && !self.take_out(served, &old)
        {
            return false;
        }
        let eps = sorted_ids(on.iter().map(|(_, e)| e));
        if served.sandboxes.contains_key(&id) {
            // Served with these very endpoints (its create's events, one
            // per network, or a hand-off after them): nothing to do.
            return served.members.get(&id).is_some_and(|m| m.endpoints == eps);
        }
        let SandboxNet::Namespace { path, .. } = &sb.net else {
            return false;
        };
        let named: Vec<Named> = on
            .iter()
            .filter(|(n, _)| resolves_names(n))
            .map(|(n, e)| (&n.id, n.name.as_str(), e))
            .collect();
        let mut ids: Vec<Id> = named.iter().map(|(n, _, _)| (*n).clone()).collect();
        ids.sort();
        ids.dedup();
        let via = upstreams_of(&sb, on.iter().map(|(n, _)| n));
        let own: ViewKey = (ids, true, via);
        if own.0.is_empty() || !served.tables.contains_key(&own) || takes_host_name(&sb, &named) {
            return false;
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
        // Only once served: a sandbox whose namespace is gone already is
        // left to the recompute, names and all.
        add_names(&mut served.tables, &sb, &named);
        if let Some(ns) = opened {
            served.namespaces.insert(id.clone(), ns);
        }
        let member = Member {
            name: sb.name.to_string(),
            named: named
                .iter()
                .map(|(n, net, e)| ((*n).clone(), net.to_string(), Arc::new((*e).clone())))
                .collect(),
            sandbox: Arc::new(sb),
            endpoints: eps,
        };
        served.ids.insert(member.name.clone(), id.clone());
        served.members.insert(id.clone(), member);
        served.sandboxes.insert(id, table);
        true
    }

    /// Take served sandbox `id` out of the views and stop serving it.
    /// False (nothing changed) when it takes a name of the host's.
    fn take_out(&self, served: &mut Served, id: &str) -> bool {
        let Some(m) = served.members.get(id) else {
            return false;
        };
        let named = m.named();
        if takes_host_name(&m.sandbox, &named) {
            return false;
        }
        remove_names(&mut served.tables, &m.sandbox, &named);
        self.dns.stop(id);
        served.sandboxes.remove(id);
        served.namespaces.remove(id);
        if let Some(m) = served.members.remove(id) {
            served.ids.remove(&m.name);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures;
    use crate::plan::dns::views;

    /// The tables of a daemon that has served `sandboxes`, keyed as the
    /// sync keys them (no upstreams of their own).
    fn served(
        nets: &[Network],
        sandboxes: &[Sandbox],
        eps: &[Endpoint],
    ) -> HashMap<ViewKey, (SandboxNames, Arc<Table>)> {
        views(nets, sandboxes, eps)
            .views
            .into_iter()
            .map(|(ids, names)| {
                let view = super::super::dns_sync::view_of(&names, &[]);
                let table = Arc::new(Table::new(&view, 600));
                ((ids, true, vec![]), (names, table))
            })
            .collect()
    }

    /// Adding sandboxes one by one in place leaves every view with the
    /// names a recompute of all of them derives: new names, a shared alias
    /// gaining an address, views of two networks included.
    #[test]
    fn adding_in_place_matches_a_recompute() {
        let a = fixtures::network("a", "10.9.0.0/24");
        let b = fixtures::network("b", "10.9.1.0/24");
        let nets = vec![a.clone(), b.clone()];
        let (web, db, both) = (
            fixtures::sandbox("web"),
            fixtures::sandbox("db"),
            fixtures::sandbox("both"),
        );
        let mut sandboxes = vec![web.clone(), db.clone(), both.clone()];
        let mut eps = vec![
            fixtures::endpoint(&a, &web, "10.9.0.20", &["svc"], &[]),
            fixtures::endpoint(&b, &db, "10.9.1.5", &["store"], &[]),
            fixtures::endpoint(&a, &both, "10.9.0.30", &[], &[]),
            fixtures::endpoint(&b, &both, "10.9.1.30", &["svc"], &[]),
        ];
        let mut tables = served(&nets, &sandboxes, &eps);
        // A new member of a, below web's address and sharing its alias;
        // then one on both networks.
        let (api, duo) = (fixtures::sandbox("api"), fixtures::sandbox("duo"));
        let api_a = fixtures::endpoint(&a, &api, "10.9.0.10", &["svc", "API"], &[]);
        let duo_a = fixtures::endpoint(&a, &duo, "10.9.0.40", &[], &[]);
        let duo_b = fixtures::endpoint(&b, &duo, "10.9.1.40", &["store"], &[]);
        add_names(&mut tables, &api, &[on(&a, &api_a)]);
        add_names(&mut tables, &duo, &[on(&a, &duo_a), on(&b, &duo_b)]);
        sandboxes.extend([api, duo]);
        eps.extend([api_a, duo_a, duo_b]);
        let want = views(&nets, &sandboxes, &eps).views;
        assert_eq!(want.len(), 3, "views of a, of b, of both");
        same(&tables, &want);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert_eq!(
            want[&vec![a.id.clone()]].names["svc"],
            [ip("10.9.0.10"), ip("10.9.0.20")],
            "the recompute this is checked against"
        );
    }

    fn on<'a>(n: &'a Network, e: &'a Endpoint) -> Named<'a> {
        (&n.id, n.name.as_str(), e)
    }

    /// The tables hold what `want` (a recompute) says, and answer it. Addresses of a
    /// view of one network keep a recompute's (sorted) order; in a view of
    /// several, the recompute lists them network by network, so there only
    /// the sets are compared.
    fn same(
        tables: &HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
        want: &std::collections::BTreeMap<Vec<crate::model::Id>, SandboxNames>,
    ) {
        for (ids, names) in want {
            let (got, table) = &tables[&(ids.clone(), true, vec![])];
            if ids.len() == 1 {
                assert_eq!(got.names, names.names, "view of {ids:?}");
            } else {
                let sets = |n: &SandboxNames| -> Vec<(String, Vec<std::net::IpAddr>)> {
                    n.names
                        .iter()
                        .map(|(k, v)| {
                            let mut v = v.clone();
                            v.sort();
                            (k.clone(), v)
                        })
                        .collect()
                };
                assert_eq!(sets(got), sets(names), "view of {ids:?}");
            }
            // The table answers what its names say.
            for (name, addrs) in &names.names {
                let q = hickory_proto::rr::Name::from_ascii(name).expect("name");
                let netd_dns::Answer::Records(rs) =
                    table.answer(&q, hickory_proto::rr::RecordType::A)
                else {
                    panic!("{name} not answered in view of {ids:?}");
                };
                assert_eq!(rs.len(), addrs.len(), "{name} in view of {ids:?}");
            }
        }
    }

    /// Taking sandboxes out in place leaves what a recompute of the rest
    /// derives: a shared alias loses only their address, their own names
    /// go, in views of one network and of two; and a table answers no
    /// name of theirs.
    #[test]
    fn removing_in_place_matches_a_recompute() {
        let a = fixtures::network("a", "10.9.0.0/24");
        let b = fixtures::network("b", "10.9.1.0/24");
        let nets = vec![a.clone(), b.clone()];
        let (web, api, both) = (
            fixtures::sandbox("web"),
            fixtures::sandbox("api"),
            fixtures::sandbox("both"),
        );
        let sandboxes = vec![web.clone(), api.clone(), both.clone()];
        let web_a = fixtures::endpoint(&a, &web, "10.9.0.20", &["svc"], &[]);
        let api_a = fixtures::endpoint(&a, &api, "10.9.0.10", &["svc"], &[]);
        let both_a = fixtures::endpoint(&a, &both, "10.9.0.30", &["svc"], &[]);
        let both_b = fixtures::endpoint(&b, &both, "10.9.1.30", &["svc", "only"], &[]);
        let eps = vec![web_a.clone(), api_a.clone(), both_a.clone(), both_b.clone()];
        let mut tables = served(&nets, &sandboxes, &eps);
        remove_names(&mut tables, &web, &[on(&a, &web_a)]);
        remove_names(&mut tables, &both, &[on(&a, &both_a), on(&b, &both_b)]);
        let want = views(
            &nets,
            std::slice::from_ref(&api),
            std::slice::from_ref(&api_a),
        )
        .views;
        // The views of b and of both have no members left: nothing of
        // theirs remains in them.
        same(&tables, &want);
        for (key, (names, table)) in &tables {
            for gone in ["web", "both", "only", "web.a", "both.b"] {
                assert!(!names.names.contains_key(gone), "{gone} in {key:?}");
                let q = hickory_proto::rr::Name::from_ascii(gone).expect("name");
                assert_eq!(
                    table.answer(&q, hickory_proto::rr::RecordType::A),
                    netd_dns::Answer::NotLocal,
                    "{gone} in {key:?}"
                );
            }
        }
        let a_only = &tables[&(vec![a.id.clone()], true, vec![])].0;
        assert_eq!(a_only.names["svc"], [api_a.addrs()[0]]);
    }

    #[test]
    fn an_alias_of_a_host_name_is_not_added_in_place() {
        let a = fixtures::network("a", "10.9.0.0/24");
        let s = fixtures::sandbox("gw");
        let plain = fixtures::endpoint(&a, &s, "10.9.0.2", &["web"], &[]);
        let host = fixtures::endpoint(&a, &s, "10.9.0.2", &["Host.Docker.Internal"], &[]);
        assert!(!takes_host_name(&s, &[on(&a, &plain)]));
        assert!(takes_host_name(&s, &[on(&a, &host)]));
    }
}
