//! The record table of one sandbox: names to addresses with round-robin
//! rotation, and the reverse (PTR) map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_server::proto::rr::rdata::{A, AAAA, PTR};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use crate::View;

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
    next: AtomicUsize,
}

pub struct Table {
    names: HashMap<String, Entry>,
    reverse: HashMap<String, String>,
    forward: bool,
    ttl: u32,
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
        let mut names: HashMap<String, Entry> = HashMap::new();
        let mut reverse: HashMap<String, String> = HashMap::new();
        for r in &view.records {
            let k = r.name.trim_end_matches('.').to_ascii_lowercase();
            let e = names.entry(k.clone()).or_insert_with(|| Entry {
                addrs: vec![],
                next: AtomicUsize::new(0),
            });
            for a in &r.addrs {
                if !e.addrs.contains(a) {
                    e.addrs.push(*a);
                }
                // Prefer the most specific name (NAME.NETWORK) for PTR.
                let rev = reverse.entry(reverse_name(a)).or_insert_with(|| k.clone());
                if k.matches('.').count() > rev.matches('.').count()
                    || (k.len() > rev.len() && k.contains('.'))
                {
                    *rev = k.clone();
                }
            }
        }
        Table {
            names,
            reverse,
            forward: view.forward,
            ttl,
        }
    }

    pub fn forward(&self) -> bool {
        self.forward
    }

    /// Whether the table has anything for `qname` (without rotating).
    pub fn answer_peek(&self, qname: &Name, qtype: RecordType) -> bool {
        let k = key(qname);
        if qtype == RecordType::PTR {
            self.reverse.contains_key(&k)
        } else {
            self.names.contains_key(&k)
        }
    }

    /// Answer `qname`/`qtype` from the table. Successive answers for a name
    /// start with successive members: true round-robin.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let k = key(qname);
        if qtype == RecordType::PTR {
            return match self.reverse.get(&k) {
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
        let Some(e) = self.names.get(&k) else {
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
        let start = e.next.fetch_add(1, Ordering::Relaxed) % want.len();
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
        }
    }

    fn firsts(t: &Table, name: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(
                |_| match t.answer(&Name::from_ascii(name).unwrap(), RecordType::A) {
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
