//! Which names each sandbox may resolve: a pure function of the store.
//!
//! A sandbox sees the names of the networks it is on (never others): every
//! member's sandbox name, aliases, 12-character short id and `NAME.NETWORK`.
//! The predefined `bridge` network has no name resolution, as in Docker.

use std::collections::BTreeMap;
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

/// The names every member of `network` contributes to the network's view.
fn network_names(
    network: &Network,
    members: &[(&Sandbox, &Endpoint)],
) -> BTreeMap<String, Vec<IpAddr>> {
    let mut names: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let net = network.name.as_str().to_ascii_lowercase();
    for (s, ep) in members {
        let ip = IpAddr::V4(ep.ip);
        let sname = s.name.as_str().to_ascii_lowercase();
        let mut add = |n: String| {
            let v = names.entry(n).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        };
        add(format!("{sname}.{net}"));
        add(sname);
        add(s.id.short().to_string());
        for a in &ep.aliases {
            add(a.to_ascii_lowercase());
        }
    }
    for v in names.values_mut() {
        v.sort();
    }
    names
}

/// Per sandbox (by id): what it may resolve. Sandboxes on no network with
/// names (host, none, only `bridge`) are absent.
pub fn views(
    networks: &[Network],
    sandboxes: &[Sandbox],
    endpoints: &[Endpoint],
) -> BTreeMap<Id, SandboxNames> {
    let sandbox = |id: &Id| sandboxes.iter().find(|s| &s.id == id);
    let mut per_network: BTreeMap<&Id, BTreeMap<String, Vec<IpAddr>>> = BTreeMap::new();
    for n in networks.iter().filter(|n| resolves_names(n)) {
        let members: Vec<(&Sandbox, &Endpoint)> = endpoints
            .iter()
            .filter(|e| e.network == n.id)
            .filter_map(|e| sandbox(&e.sandbox).map(|s| (s, e)))
            .collect();
        per_network.insert(&n.id, network_names(n, &members));
    }
    let mut out: BTreeMap<Id, SandboxNames> = BTreeMap::new();
    for ep in endpoints {
        let Some(names) = per_network.get(&ep.network) else {
            continue;
        };
        let Some(n) = networks.iter().find(|n| n.id == ep.network) else {
            continue;
        };
        let view = out.entry(ep.sandbox.clone()).or_default();
        for (name, addrs) in names {
            let v = view.names.entry(name.clone()).or_default();
            for a in addrs {
                if !v.contains(a) {
                    v.push(*a);
                }
            }
        }
        if n.bridge().is_some_and(|b| !b.internal) {
            view.forward = true;
        }
    }
    out
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
        let (a, b, c) = (sbx("Web1"), sbx("web2"), sbx("db"));
        let eps = vec![
            ep(&front, &a, "10.3.0.2", &["web"]),
            ep(&front, &b, "10.3.0.3", &["WEB"]),
            ep(&back, &b, "10.4.0.2", &[]),
            ep(&back, &c, "10.4.0.3", &[]),
        ];
        let v = views(
            &[front.clone(), back.clone()],
            &[a.clone(), b.clone(), c.clone()],
            &eps,
        );
        let va = &v[&a.id];
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
        let vc = &v[&c.id];
        assert!(vc.names.contains_key("web2.back"));
        assert!(!vc.names.contains_key("web1"));
        assert!(
            !vc.forward,
            "only on an internal network: nothing is forwarded"
        );
        let vb = &v[&b.id];
        assert_eq!(vb.names["web2"].len(), 2, "one name per network address");
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
