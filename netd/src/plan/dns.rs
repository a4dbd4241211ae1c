//! Which names each sandbox may resolve: a pure function of the store.
//!
//! A sandbox sees the names of the networks it is on (never others): every
//! member's sandbox name, aliases, 12-character short id and `NAME.NETWORK`.
//! The predefined `bridge` network has no name resolution, as in Docker.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::model::{Endpoint, Id, Network, Sandbox};

/// The names one sandbox resolves, lowercase, each with its addresses in a
/// stable order (the DNS server rotates them per query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxNames {
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Forward other names upstream: false when every network it is on is
    /// internal (no way out, so no leaks through DNS either).
    pub forward: bool,
}

pub fn resolves_names(n: &Network) -> bool {
    n.bridge().is_some() && n.name.as_str() != "bridge"
}

/// The names one endpoint answers to on its network (lowercase): the
/// sandbox name, `NAME.NETWORK`, the short id and every alias. The load
/// balancer's member lookup uses the same rule.
pub fn endpoint_names(network: &str, s: &Sandbox, ep: &Endpoint) -> Vec<String> {
    let sname = s.name.as_str().to_ascii_lowercase();
    let mut out = vec![
        format!("{sname}.{}", network.to_ascii_lowercase()),
        sname,
        s.id.short().to_string(),
    ];
    out.extend(ep.aliases.iter().map(|a| a.to_ascii_lowercase()));
    out
}

/// The names every member of `network` contributes to the network's view.
fn network_names(
    network: &Network,
    members: &[(&Sandbox, &Endpoint)],
) -> BTreeMap<String, Vec<IpAddr>> {
    let mut names: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let net = network.name.as_str().to_ascii_lowercase();
    for (s, ep) in members {
        let ips = ep.addrs();
        for n in endpoint_names(&net, s, ep) {
            let v = names.entry(n).or_default();
            for ip in &ips {
                if !v.contains(ip) {
                    v.push(*ip);
                }
            }
        }
    }
    for v in names.values_mut() {
        v.sort();
    }
    names
}

/// What every sandbox may resolve. The names depend only on the set of
/// networks a sandbox is on, so sandboxes on the same networks share one
/// view: the work (and the DNS tables built from it) grows with the number
/// of distinct network sets, not with sandboxes x names.
#[derive(Debug, Default)]
pub struct Views {
    /// The distinct views, keyed by the (sorted) ids of the networks with
    /// names a sandbox is on.
    pub views: BTreeMap<Vec<Id>, SandboxNames>,
    /// Each sandbox with names: the key of its view. Sandboxes on no
    /// network with names (host, none, only `bridge`) are absent.
    pub of_sandbox: BTreeMap<Id, Vec<Id>>,
}

impl Views {
    pub fn get(&self, sandbox: &Id) -> Option<&SandboxNames> {
        self.of_sandbox.get(sandbox).and_then(|k| self.views.get(k))
    }

    pub fn is_empty(&self) -> bool {
        self.of_sandbox.is_empty()
    }
}

pub fn views(
    networks: &[Network],
    sandboxes: &[impl Borrow<Sandbox>],
    endpoints: &[impl Borrow<Endpoint>],
) -> Views {
    let by_id: HashMap<&Id, &Sandbox> = sandboxes
        .iter()
        .map(|s| (&s.borrow().id, s.borrow()))
        .collect();
    let named: HashMap<&Id, &Network> = networks
        .iter()
        .filter(|n| resolves_names(n))
        .map(|n| (&n.id, n))
        .collect();
    let mut members: HashMap<&Id, Vec<(&Sandbox, &Endpoint)>> = HashMap::new();
    let mut of_sandbox: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
    for e in endpoints
        .iter()
        .map(Borrow::borrow)
        .filter(|e| named.contains_key(&e.network))
    {
        let Some(s) = by_id.get(&e.sandbox) else {
            continue;
        };
        members.entry(&e.network).or_default().push((s, e));
        of_sandbox
            .entry(e.sandbox.clone())
            .or_default()
            .push(e.network.clone());
    }
    let per_network: HashMap<&Id, BTreeMap<String, Vec<IpAddr>>> = named
        .iter()
        .map(|(id, n)| {
            let m = members.get(id).map(Vec::as_slice).unwrap_or_default();
            (*id, network_names(n, m))
        })
        .collect();
    let mut views: BTreeMap<Vec<Id>, SandboxNames> = BTreeMap::new();
    for key in of_sandbox.values_mut() {
        key.sort();
        key.dedup();
        if views.contains_key(key) {
            continue;
        }
        let mut view = SandboxNames::default();
        for id in key.iter() {
            for (name, addrs) in &per_network[id] {
                let v = view.names.entry(name.clone()).or_default();
                for a in addrs {
                    if !v.contains(a) {
                        v.push(*a);
                    }
                }
            }
            if named[id].bridge().is_some_and(|b| !b.internal) {
                view.forward = true;
            }
        }
        views.insert(key.clone(), view);
    }
    Views { views, of_sandbox }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn net(name: &str, internal: bool) -> Network {
        fixtures::with_bridge(fixtures::network(name, "10.3.0.0/24"), |b| {
            b.internal = internal
        })
    }

    fn sbx(name: &str) -> Sandbox {
        fixtures::sandbox(name)
    }

    fn ep(n: &Network, s: &Sandbox, ip: &str, aliases: &[&str]) -> Endpoint {
        fixtures::endpoint(n, s, ip, aliases, &[])
    }

    #[test]
    fn names_aliases_and_scoping() {
        let front = net("front", false);
        let back = net("Back", true);
        let (a, b, c, d) = (sbx("Web1"), sbx("web2"), sbx("db"), sbx("d"));
        let eps = vec![
            ep(&front, &d, "10.3.0.9", &[]),
            ep(&front, &a, "10.3.0.2", &["web"]),
            ep(&front, &b, "10.3.0.3", &["WEB"]),
            ep(&back, &b, "10.4.0.2", &[]),
            ep(&back, &c, "10.4.0.3", &[]),
        ];
        let v = views(
            &[front.clone(), back.clone()],
            &[a.clone(), b.clone(), c.clone(), d.clone()],
            &eps,
        );
        let va = v.get(&a.id).unwrap();
        assert_eq!(
            va.names["web"].len(),
            2,
            "an alias shared by two members carries both"
        );
        assert_eq!(
            va.names["web1"],
            vec!["10.3.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(va.names.contains_key("web1.front"));
        assert!(va.names.contains_key(a.id.short()));
        assert!(
            !va.names.contains_key("db"),
            "a sandbox never sees names of networks it is not on"
        );
        assert!(va.forward);
        let vc = v.get(&c.id).unwrap();
        assert!(vc.names.contains_key("web2.back"));
        assert!(!vc.names.contains_key("web1"));
        assert!(
            !vc.forward,
            "only on an internal network: nothing is forwarded"
        );
        let vb = v.get(&b.id).unwrap();
        assert_eq!(vb.names["web2"].len(), 2, "one name per network address");
        // a and d (front) share one view; b (front and back) and c (back)
        // have their own.
        assert_eq!(v.views.len(), 3);
        assert_eq!(v.of_sandbox[&a.id], vec![front.id.clone()]);
        assert_eq!(v.of_sandbox[&d.id], v.of_sandbox[&a.id]);
        assert!(v.get(&d.id).unwrap().names.contains_key("web1"));
    }

    #[test]
    fn default_bridge_has_no_names() {
        let bridge = net("bridge", false);
        let a = sbx("a");
        let e = ep(&bridge, &a, "10.3.0.2", &[]);
        let v = views(
            std::slice::from_ref(&bridge),
            std::slice::from_ref(&a),
            &[e],
        );
        assert!(v.is_empty());
    }
}
