//! The record table of one sandbox: names to addresses with round-robin
//! rotation, and the reverse (PTR) map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::{Record4, View, ViewStats};

/// What the table says about a query.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Records(Vec<Record>),
    /// The name is ours but has no record of that type (NOERROR, no answers).
    NoData,
    NotLocal,
}

struct Entry {
    addrs: Vec<IpAddr>,
    /// Where the next answer starts, one position per question type (A,
    /// AAAA, ANY): a resolver asks A and AAAA together, and one shared
    /// position would advance twice per lookup, so with an even number of
    /// members every A answer would start with the same one.
    next: [AtomicUsize; 3],
}

/// The rotation position of an [`Entry`] that `qtype` uses.
fn slot(qtype: RecordType) -> usize {
    match qtype {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        _ => 2,
    }
}

/// Records can be added in place ([`Table::insert`]): a new member of a
/// network shows up in every sandbox sharing the table without rebuilding
/// it, which would cost as much as the network is large.
pub struct Table {
    records: RwLock<Records>,
    forward: bool,
    upstreams: Vec<std::net::SocketAddr>,
    ttl: u32,
    stats: Arc<ViewStats>,
}

#[derive(Default)]
struct Records {
    names: HashMap<String, Entry>,
    reverse: HashMap<String, String>,
}

impl Records {
    fn add(&mut self, r: &Record4, sorted: bool) {
        let k = r.name.trim_end_matches('.').to_ascii_lowercase();
        let e = self.names.entry(k.clone()).or_insert_with(|| Entry {
            addrs: vec![],
            next: Default::default(),
        });
        for a in &r.addrs {
            if !e.addrs.contains(a) {
                e.addrs.push(*a);
                if sorted {
                    e.addrs.sort();
                }
            }
            // Prefer the most specific name (NAME.NETWORK) for PTR.
            let rev = self
                .reverse
                .entry(reverse_name(a))
                .or_insert_with(|| k.clone());
            if k.matches('.').count() > rev.matches('.').count()
                || (k.len() > rev.len() && k.contains('.'))
            {
                *rev = k.clone();
            }
        }
    }
}

impl Records {
    /// Take `r`'s addresses from its name (a name left with none goes).
    fn remove(&mut self, r: &Record4) {
        let k = r.name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(e) = self.names.get_mut(&k) {
            e.addrs.retain(|a| !r.addrs.contains(a));
            if e.addrs.is_empty() {
                self.names.remove(&k);
            }
        }
    }

    /// Drop the PTR of `ip` when the name it points to no longer has it.
    /// A member's records all go together, and an address is one member's
    /// on a host, so that is every name that had it.
    fn forget_reverse(&mut self, ip: &IpAddr) {
        let rev = reverse_name(ip);
        let held = self
            .reverse
            .get(&rev)
            .and_then(|name| self.names.get(name))
            .is_some_and(|e| e.addrs.contains(ip));
        if !held {
            self.reverse.remove(&rev);
        }
    }
}

/// `Web.Net.` -> `web.net`: names compare case-insensitively, absolute or not.
fn key(name: &Name) -> String {
    let mut s = name.to_ascii().to_ascii_lowercase();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

fn reverse_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

impl Table {
    pub fn new(view: &View, ttl: u32) -> Table {
        Table::counted(view, ttl, Arc::default())
    }

    /// A table whose queries count in `stats`: a table rebuilt for a
    /// changed view keeps counting where the old one left off.
    pub fn counted(view: &View, ttl: u32, stats: Arc<ViewStats>) -> Table {
        let mut records = Records::default();
        for r in &view.records {
            records.add(r, false);
        }
        Table {
            records: RwLock::new(records),
            forward: view.forward,
            upstreams: view.upstreams.clone(),
            ttl,
            stats,
        }
    }

    pub fn stats(&self) -> &Arc<ViewStats> {
        &self.stats
    }

    /// Add records in place; queries see them at once. Addresses new to a
    /// name join it in sorted order, as a view built afresh lists them.
    pub fn insert(&self, records: &[Record4]) {
        let mut w = self.records.write().unwrap_or_else(|p| p.into_inner());
        for r in records {
            w.add(r, true);
        }
    }

    /// Take records out in place (a member that left), costing what they
    /// are, not what the table holds: each address leaves its name, a name
    /// left without addresses goes, and so does the PTR of an address no
    /// name has any more.
    pub fn remove(&self, records: &[Record4]) {
        let mut w = self.records.write().unwrap_or_else(|p| p.into_inner());
        for r in records {
            w.remove(r);
        }
        for r in records {
            for ip in &r.addrs {
                w.forget_reverse(ip);
            }
        }
    }

    pub fn forward(&self) -> bool {
        self.forward
    }

    /// The view's own upstreams (empty: the server's).
    pub fn upstreams(&self) -> &[std::net::SocketAddr] {
        &self.upstreams
    }

    /// Whether the table has anything for `qname` (without rotating).
    pub fn answer_peek(&self, qname: &Name, qtype: RecordType) -> bool {
        let k = key(qname);
        let r = self.records.read().unwrap_or_else(|p| p.into_inner());
        if qtype == RecordType::PTR {
            r.reverse.contains_key(&k)
        } else {
            r.names.contains_key(&k)
        }
    }

    /// Answer `qname`/`qtype` from the table. Successive answers for a name
    /// start with successive members: true round-robin.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let k = key(qname);
        let r = self.records.read().unwrap_or_else(|p| p.into_inner());
        if qtype == RecordType::PTR {
            return match r.reverse.get(&k) {
                Some(target) => match Name::from_ascii(format!("{target}.")) {
                    Ok(t) => Answer::Records(vec![Record::from_rdata(
                        qname.clone(),
                        self.ttl,
                        RData::PTR(PTR(t)),
                    )]),
                    Err(_) => Answer::NoData,
                },
                None => Answer::NotLocal,
            };
        }
        let Some(e) = r.names.get(&k) else {
            return Answer::NotLocal;
        };
        let want: Vec<IpAddr> = e
            .addrs
            .iter()
            .filter(|a| match qtype {
                RecordType::A => a.is_ipv4(),
                RecordType::AAAA => a.is_ipv6(),
                RecordType::ANY => true,
                _ => false,
            })
            .copied()
            .collect();
        if want.is_empty() {
            return Answer::NoData;
        }
        let start = e.next[slot(qtype)].fetch_add(1, Ordering::Relaxed) % want.len();
        let records = (0..want.len())
            .map(|i| {
                let rdata = match want[(start + i) % want.len()] {
                    IpAddr::V4(v4) => RData::A(A(v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                };
                Record::from_rdata(qname.clone(), self.ttl, rdata)
            })
            .collect();
        Answer::Records(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record4;
    use proptest::prelude::*;

    fn view(records: &[(&str, &[&str])]) -> View {
        View {
            records: records
                .iter()
                .map(|(n, a)| Record4 {
                    name: n.to_string(),
                    addrs: a.iter().map(|x| x.parse().unwrap()).collect(),
                })
                .collect(),
            forward: true,
            ..Default::default()
        }
    }

    /// Removing a member's records leaves what a table built without them
    /// has: its addresses gone from shared names, its own names and PTR
    /// gone, the rest untouched.
    #[test]
    fn removing_records_matches_a_table_built_without_them() {
        let rec = |n: &str, a: &[&str]| Record4 {
            name: n.to_string(),
            addrs: a.iter().map(|x| x.parse().unwrap()).collect(),
        };
        let t = Table::new(
            &view(&[
                ("web.front", &["10.0.0.2"]),
                ("web", &["10.0.0.2"]),
                ("db", &["10.0.0.3"]),
                ("svc", &["10.0.0.2", "10.0.0.3"]),
            ]),
            5,
        );
        t.remove(&[
            rec("web.front", &["10.0.0.2"]),
            rec("Web", &["10.0.0.2"]),
            rec("svc", &["10.0.0.2"]),
        ]);
        let q = |n: &str, ty| t.answer(&Name::from_ascii(n).unwrap(), ty);
        assert_eq!(q("web", RecordType::A), Answer::NotLocal);
        assert_eq!(q("web.front", RecordType::A), Answer::NotLocal);
        assert_eq!(firsts(&t, "svc", 2), ["10.0.0.3", "10.0.0.3"]);
        assert_eq!(firsts(&t, "db", 1), ["10.0.0.3"]);
        assert_eq!(
            q("2.0.0.10.in-addr.arpa", RecordType::PTR),
            Answer::NotLocal
        );
        assert!(matches!(
            q("3.0.0.10.in-addr.arpa", RecordType::PTR),
            Answer::Records(_)
        ));
        // What is not there is no error.
        t.remove(&[rec("gone", &["10.0.0.9"])]);
    }

    fn firsts(t: &Table, name: &str, n: usize) -> Vec<String> {
        firsts_of(t, name, RecordType::A, n)
    }

    fn firsts_of(t: &Table, name: &str, qtype: RecordType, n: usize) -> Vec<String> {
        (0..n)
            .map(
                |_| match t.answer(&Name::from_ascii(name).unwrap(), qtype) {
                    Answer::Records(r) => r[0].data.to_string(),
                    other => panic!("{other:?}"),
                },
            )
            .collect()
    }

    #[test]
    fn rotation_is_round_robin_and_complete() {
        let t = Table::new(&view(&[("web", &["10.0.0.2", "10.0.0.3", "10.0.0.4"])]), 5);
        assert_eq!(
            firsts(&t, "web", 4),
            vec!["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.2"]
        );
        match t.answer(&Name::from_ascii("web").unwrap(), RecordType::A) {
            Answer::Records(r) => assert_eq!(r.len(), 3, "every answer carries all members"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inserted_records_answer_at_once_in_sorted_rotation() {
        let t = Table::new(
            &view(&[("web", &["10.0.0.3"]), ("a.net", &["10.0.0.3"])]),
            5,
        );
        let a = |n: &str| t.answer(&Name::from_ascii(n).unwrap(), RecordType::A);
        assert_eq!(a("b"), Answer::NotLocal);
        t.insert(&[
            Record4 {
                name: "B".into(),
                addrs: vec!["10.0.0.2".parse().unwrap()],
            },
            Record4 {
                name: "b.net".into(),
                addrs: vec!["10.0.0.2".parse().unwrap()],
            },
            Record4 {
                name: "web".into(),
                addrs: vec!["10.0.0.2".parse().unwrap()],
            },
        ]);
        assert!(matches!(a("b."), Answer::Records(r) if r[0].data.to_string() == "10.0.0.2"));
        // The new member joins the alias in address order.
        assert_eq!(
            firsts(&t, "web", 3),
            vec!["10.0.0.2", "10.0.0.3", "10.0.0.2"]
        );
        let ptr = t.answer(
            &Name::from_ascii("2.0.0.10.in-addr.arpa.").unwrap(),
            RecordType::PTR,
        );
        assert!(matches!(ptr, Answer::Records(r) if r[0].data.to_string() == "b.net."));
    }

    #[test]
    fn case_dots_nodata_ptr() {
        let t = Table::new(
            &view(&[("web1", &["10.0.0.2"]), ("web1.front", &["10.0.0.2"])]),
            5,
        );
        assert!(matches!(
            t.answer(&Name::from_ascii("WEB1.").unwrap(), RecordType::A),
            Answer::Records(_)
        ));
        assert_eq!(
            t.answer(&Name::from_ascii("web1").unwrap(), RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            t.answer(&Name::from_ascii("nope").unwrap(), RecordType::A),
            Answer::NotLocal
        );
        match t.answer(
            &Name::from_ascii("2.0.0.10.in-addr.arpa.").unwrap(),
            RecordType::PTR,
        ) {
            Answer::Records(r) => assert_eq!(r[0].data.to_string(), "web1.front."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aaaa_rotates_like_a_and_each_type_on_its_own() {
        let t = Table::new(
            &view(&[(
                "web",
                &["10.0.0.2", "fd00::2", "10.0.0.3", "fd00::3", "fd00::4"],
            )]),
            5,
        );
        assert_eq!(
            firsts_of(&t, "web", RecordType::AAAA, 4),
            vec!["fd00::2", "fd00::3", "fd00::4", "fd00::2"]
        );
        match t.answer(&Name::from_ascii("web").unwrap(), RecordType::AAAA) {
            Answer::Records(r) => {
                assert_eq!(r.len(), 3, "every answer carries all IPv6 members");
                assert!(r.iter().all(|r| r.record_type() == RecordType::AAAA));
            }
            other => panic!("{other:?}"),
        }
        // A resolver asks A and AAAA for each lookup: each type still walks
        // its members in turn (one shared position would give the two IPv4
        // members' first one every time).
        let (mut a, mut aaaa) = (vec![], vec![]);
        for _ in 0..4 {
            a.extend(firsts_of(&t, "web", RecordType::A, 1));
            aaaa.extend(firsts_of(&t, "web", RecordType::AAAA, 1));
        }
        assert_eq!(a, ["10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(aaaa, ["fd00::4", "fd00::2", "fd00::3", "fd00::4"]);
    }

    #[test]
    fn nodata_for_the_other_family_nxdomain_only_for_unknown_names() {
        let t = Table::new(&view(&[("v4", &["10.0.0.2"]), ("v6", &["fd00::2"])]), 5);
        let ask = |n: &str, ty| t.answer(&Name::from_ascii(n).unwrap(), ty);
        assert_eq!(ask("v6", RecordType::A), Answer::NoData);
        assert_eq!(ask("v4", RecordType::AAAA), Answer::NoData);
        assert!(matches!(ask("V6.", RecordType::AAAA), Answer::Records(r) if r.len() == 1));
        assert_eq!(ask("v5", RecordType::AAAA), Answer::NotLocal);
    }

    #[test]
    fn ipv6_ptr_by_nibbles_in_any_case() {
        let t = Table::new(
            &view(&[
                ("web1", &["10.0.0.2", "fd00:0:0:1::a2"]),
                ("web1.front", &["10.0.0.2", "fd00:0:0:1::a2"]),
            ]),
            5,
        );
        // `dig -x fd00:0:0:1::a2` asks this name.
        let name = "2.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        for n in [name.to_string(), name.to_ascii_uppercase()] {
            let qname = Name::from_ascii(&n).unwrap();
            match t.answer(&qname, RecordType::PTR) {
                Answer::Records(r) => {
                    assert_eq!(r.len(), 1);
                    assert_eq!(r[0].data.to_string(), "web1.front.");
                    assert_eq!(r[0].name, qname, "the answer names the question");
                }
                other => panic!("{n}: {other:?}"),
            }
            assert!(t.answer_peek(&qname, RecordType::PTR));
        }
        // Another address of the prefix is not ours.
        let other = name.replacen("2.a.", "3.a.", 1);
        assert_eq!(
            t.answer(&Name::from_ascii(&other).unwrap(), RecordType::PTR),
            Answer::NotLocal
        );
    }

    proptest! {
        /// With n members, any n successive answers start with n different members.
        #[test]
        fn successive_answers_cover_all_members(n in 1usize..20, skip in 0usize..50) {
            let addrs: Vec<String> = (0..n).map(|i| format!("10.1.0.{}", i + 2)).collect();
            let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
            let t = Table::new(&view(&[("svc", &refs)]), 5);
            firsts(&t, "svc", skip);
            let mut seen = firsts(&t, "svc", n);
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), n);
        }
    }
}
