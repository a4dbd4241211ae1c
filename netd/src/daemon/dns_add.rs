//! Adding a new sandbox to the DNS views in place (see
//! `Core::add_sandbox`): what the daemon does for each sandbox it creates
//! and for the CNI plugin's hand-off, instead of a recompute that reads and
//! derives every sandbox (issue 15). Each function costs what the new
//! sandbox's names are, not what the views hold; the tests check the
//! result against a recompute.

use std::collections::HashMap;
use std::sync::Arc;

use netd_dns::{Record4, Table};

use super::dns_sync::{HOST_NAMES, ViewKey};
use crate::model::{Endpoint, Network, Sandbox};
use crate::plan::dns::{SandboxNames, endpoint_names};

/// Per sandbox `keep` says yes to, the ids of its endpoints, sorted.
pub(super) fn endpoint_ids(
    eps: &[Arc<Endpoint>],
    keep: impl Fn(&str) -> bool,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for e in eps {
        let sid = e.sandbox.to_string();
        if keep(&sid) {
            out.entry(sid).or_default().push(e.id.to_string());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub(super) fn sorted_ids<'a>(eps: impl Iterator<Item = &'a Endpoint>) -> Vec<String> {
    let mut v: Vec<String> = eps.map(|e| e.id.to_string()).collect();
    v.sort();
    v
}

/// Whether one of the sandbox's names is one of [`HOST_NAMES`]: a member's
/// alias replaces the host's answer there, which adding in place cannot.
pub(super) fn takes_host_name(sb: &Sandbox, named: &[(&Network, &Endpoint)]) -> bool {
    named.iter().any(|(n, ep)| {
        endpoint_names(n.name.as_str(), sb, ep)
            .iter()
            .any(|x| HOST_NAMES.contains(&x.as_str()))
    })
}

/// Add a new sandbox's names (`named`: its endpoints on networks with
/// names) to every view that sees one of its networks, as `plan::dns::views` would
/// derive them, in place: the sandboxes sharing a table see them at once.
/// Costs what the sandbox's names are, not what the views hold.
pub(super) fn add_names(
    tables: &mut HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    sb: &Sandbox,
    named: &[(&Network, &Endpoint)],
) {
    for (key, (names, table)) in tables.iter_mut() {
        let mut added = Vec::new();
        for (n, ep) in named.iter().filter(|(n, _)| key.0.contains(&n.id)) {
            let ips = ep.addrs();
            for name in endpoint_names(n.name.as_str(), sb, ep) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Id, fixtures};
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
                let view = netd_dns::View {
                    records: names
                        .names
                        .iter()
                        .map(|(n, a)| Record4 {
                            name: n.clone(),
                            addrs: a.clone(),
                        })
                        .collect(),
                    forward: names.forward,
                    upstreams: vec![],
                };
                let table = Arc::new(Table::new(&view, 600));
                ((ids, true, vec![]), (names, table))
            })
            .collect()
    }

    /// Adding sandboxes one by one in place leaves every view with the
    /// names a recompute of all of them derives: new names, a shared alias
    /// gaining an address, views of two networks included. Addresses of a
    /// view of one network keep a recompute's (sorted) order; in a view of
    /// several, the recompute lists them network by network, so there only
    /// the sets are compared.
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
        add_names(&mut tables, &api, &[(&a, &api_a)]);
        add_names(&mut tables, &duo, &[(&a, &duo_a), (&b, &duo_b)]);
        sandboxes.extend([api, duo]);
        eps.extend([api_a, duo_a, duo_b]);
        let want = views(&nets, &sandboxes, &eps).views;
        assert_eq!(want.len(), 3, "views of a, of b, of both");
        for (ids, names) in &want {
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
        let a_only: Vec<Id> = vec![a.id.clone()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert_eq!(
            want[&a_only].names["svc"],
            [ip("10.9.0.10"), ip("10.9.0.20")],
            "the recompute this is checked against"
        );
    }

    #[test]
    fn an_alias_of_a_host_name_is_not_added_in_place() {
        let a = fixtures::network("a", "10.9.0.0/24");
        let s = fixtures::sandbox("gw");
        let plain = fixtures::endpoint(&a, &s, "10.9.0.2", &["web"], &[]);
        let host = fixtures::endpoint(&a, &s, "10.9.0.2", &["Host.Docker.Internal"], &[]);
        assert!(!takes_host_name(&s, &[(&a, &plain)]));
        assert!(takes_host_name(&s, &[(&a, &host)]));
    }
}
