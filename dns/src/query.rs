//! One request packet in, one decision out: the query path both transports
//! share. Pure (no sockets, no awaiting), so the fuzz target and the
//! property tests drive exactly what the server runs.

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use crate::stats::Outcome;
use crate::table::{Answer, Table};

/// Which transport a request came over: it bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with one request.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes back; the query ended so.
    Reply(Vec<u8>, Outcome),
    /// Not a local name and the view forwards: ask upstream, then answer
    /// with [`respond`].
    Forward {
        req: Box<Message>,
        qname: Name,
        qtype: RecordType,
    },
    /// Say nothing: not a parseable query (answering garbage, or a
    /// response, could make us part of a reflection loop).
    Drop,
}

/// The answer to one question, before it is put in a message.
#[derive(Debug)]
pub struct Reply {
    pub code: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

impl Reply {
    pub fn error(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            answers: vec![],
            authorities: vec![],
        }
    }
}

/// Decide what to do with `bytes` for a sandbox whose table is `table`
/// (`None`: the sandbox has no view yet, nothing is local and nothing is
/// forwarded).
pub fn step(bytes: &[u8], table: Option<&Table>, transport: Transport) -> Step {
    let Ok(req) = Message::from_vec(bytes) else {
        return Step::Drop;
    };
    if req.metadata.message_type != MessageType::Query {
        return Step::Drop;
    }
    // RFC 6891 6.1.3: a version above ours gets BADVERS, with our OPT
    // (version 0) so the client can retry at the version we speak.
    if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return reply(&req, Reply::error(ResponseCode::BADVERS), transport);
    }
    if req.metadata.op_code != OpCode::Query {
        return reply(&req, Reply::error(ResponseCode::NotImp), transport);
    }
    let [q] = req.queries.as_slice() else {
        return reply(&req, Reply::error(ResponseCode::FormErr), transport);
    };
    // Only IN: every name here is an Internet-class address. Class ANY too
    // is refused (docs/dns.md), not answered as if it were IN.
    if q.query_class() != DNSClass::IN {
        return reply(&req, Reply::error(ResponseCode::Refused), transport);
    }
    let (qname, qtype) = (q.name().clone(), q.query_type());
    let local = table
        .map(|t| t.answer(&qname, qtype))
        .unwrap_or(Answer::NotLocal);
    let mut r = Reply {
        code: ResponseCode::NoError,
        authoritative: true,
        answers: vec![],
        authorities: vec![],
    };
    match local {
        Answer::Records(a) => r.answers = a,
        Answer::NoData => {}
        Answer::NotLocal if table.is_some_and(Table::forward) => {
            return Step::Forward {
                req: Box::new(req),
                qname,
                qtype,
            };
        }
        Answer::NotLocal => r = Reply::error(ResponseCode::NXDomain),
    }
    if qtype == RecordType::ANY && r.answers.is_empty() {
        r.code = ResponseCode::NotImp;
    }
    reply(&req, r, transport)
}

fn reply(req: &Message, r: Reply, transport: Transport) -> Step {
    let outcome = Outcome::of(r.code, !r.answers.is_empty());
    match respond(req, r, transport) {
        Some(b) => Step::Reply(b, outcome),
        None => Step::Drop,
    }
}

/// The response message to `req`. Over UDP, truncated (TC set, no records)
/// if it does not fit the client's advertised size.
pub fn respond(req: &Message, r: Reply, transport: Transport) -> Option<Vec<u8>> {
    let mut meta = Metadata::response_from_request(&req.metadata);
    meta.recursion_available = true;
    meta.authoritative = r.authoritative;
    meta.response_code = r.code;
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata = meta;
    m.queries = req.queries.clone();
    m.answers = r.answers;
    m.authorities = r.authorities;
    let advertised = match &req.edns {
        Some(e) => {
            let size = e.max_payload().max(512);
            let mut echo = Edns::new();
            echo.set_max_payload(size);
            m.set_edns(echo);
            usize::from(size)
        }
        None => 512,
    };
    let limit = match transport {
        Transport::Udp => advertised,
        Transport::Tcp => usize::from(u16::MAX),
    };
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.metadata.truncation = true;
    m.answers.clear();
    m.authorities.clear();
    m.to_vec().ok()
}

/// The fuzz target's entry: any bytes, over either transport, against a
/// small table. Must never panic; a reply must be a well-formed response to
/// the same id.
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Table> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let rec = |name: &str, addrs: &[&str]| crate::Record4 {
            name: name.into(),
            addrs: addrs.iter().filter_map(|a| a.parse().ok()).collect(),
        };
        Table::new(
            &crate::View {
                records: vec![
                    rec("web", &["10.0.0.2", "10.0.0.3", "fd00::2"]),
                    rec("web.front", &["10.0.0.2"]),
                    rec("db", &["10.0.0.9"]),
                ],
                forward: true,
                ..Default::default()
            },
            5,
        )
    });
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Step::Reply(out, _) = step(bytes, Some(table), transport) {
            let m = Message::from_vec(&out).expect("our reply parses");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            if transport == Transport::Udp {
                assert!(out.len() <= 65_535);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use proptest::prelude::*;

    fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn table(forward: bool) -> Table {
        let addrs: Vec<std::net::IpAddr> = (2..60)
            .map(|i| format!("10.0.0.{i}").parse().unwrap())
            .collect();
        Table::new(
            &crate::View {
                records: vec![
                    crate::Record4 {
                        name: "web".into(),
                        addrs: vec!["10.0.0.2".parse().unwrap()],
                    },
                    crate::Record4 {
                        name: "many".into(),
                        addrs,
                    },
                ],
                forward,
                upstreams: vec![],
            },
            5,
        )
    }

    fn parse(s: Step) -> Message {
        match s {
            Step::Reply(b, _) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_say_how_the_query_ended() {
        let outcome = |t: &Table, name: &str, ty: RecordType| match step(
            &query(name, ty, None),
            Some(t),
            Transport::Udp,
        ) {
            Step::Reply(_, o) => o,
            s => panic!("{name}: {s:?}"),
        };
        let (t, internal) = (table(true), table(false));
        assert_eq!(outcome(&t, "web.", RecordType::A), Outcome::Answer);
        assert_eq!(
            outcome(&internal, "example.org.", RecordType::A),
            Outcome::NxDomain
        );
        let mut empty = Message::query();
        empty.metadata.id = 7;
        assert!(matches!(
            step(&empty.to_vec().unwrap(), Some(&t), Transport::Udp),
            Step::Reply(_, Outcome::Error)
        ));
    }

    #[test]
    fn local_nxdomain_forward_and_errors() {
        let t = table(true);
        let m = parse(step(
            &query("web.", RecordType::A, None),
            Some(&t),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.answers.len(), 1);
        assert!(m.metadata.authoritative);
        assert!(matches!(
            step(
                &query("example.org.", RecordType::A, None),
                Some(&t),
                Transport::Udp
            ),
            Step::Forward { .. }
        ));
        let internal = table(false);
        let m = parse(step(
            &query("example.org.", RecordType::A, None),
            Some(&internal),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // A response is never answered; garbage is dropped.
        let mut resp = Message::from_vec(&query("web.", RecordType::A, None)).unwrap();
        resp.metadata.message_type = MessageType::Response;
        assert!(matches!(
            step(&resp.to_vec().unwrap(), Some(&t), Transport::Udp),
            Step::Drop
        ));
        assert!(matches!(
            step(b"\x01", Some(&t), Transport::Udp),
            Step::Drop
        ));
        // No question: FORMERR.
        let mut empty = Message::query();
        empty.metadata.id = 7;
        let m = parse(step(&empty.to_vec().unwrap(), Some(&t), Transport::Udp));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, 7);
    }

    #[test]
    fn a_and_aaaa_of_a_single_family_name_is_nodata_not_nxdomain() {
        let t = Table::new(
            &crate::View {
                records: vec![
                    crate::Record4 {
                        name: "v6only".into(),
                        addrs: vec!["fd00::2".parse().unwrap(), "fd00::3".parse().unwrap()],
                    },
                    crate::Record4 {
                        name: "v4only".into(),
                        addrs: vec!["10.0.0.2".parse().unwrap()],
                    },
                ],
                forward: true,
                ..Default::default()
            },
            5,
        );
        // Other types of a name of ours too (docs/dns.md: no SRV without
        // a port to put in it).
        let others = [
            RecordType::SRV,
            RecordType::TXT,
            RecordType::MX,
            RecordType::CNAME,
        ]
        .into_iter()
        .map(|qtype| ("v4only.", qtype));
        for (name, qtype) in [("v6only.", RecordType::A), ("v4only.", RecordType::AAAA)]
            .into_iter()
            .chain(others)
        {
            for transport in [Transport::Udp, Transport::Tcp] {
                // NODATA: ours, so answered here (never forwarded), NOERROR,
                // authoritative, no records, the same authority section.
                let m = parse(step(&query(name, qtype, None), Some(&t), transport));
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::NoError,
                    "{name} {qtype}"
                );
                assert!(m.metadata.authoritative, "{name} {qtype}");
                assert!(m.answers.is_empty(), "{name} {qtype}");
                assert!(m.authorities.is_empty(), "{name} {qtype}");
            }
        }
        let m = parse(step(
            &query("V6ONLY.", RecordType::AAAA, None),
            Some(&t),
            Transport::Udp,
        ));
        assert_eq!(m.answers.len(), 2);
        assert!(
            m.answers
                .iter()
                .all(|r| r.record_type() == RecordType::AAAA)
        );
    }

    #[test]
    fn in_class_other_than_in_is_refused() {
        let t = table(true);
        for class in [DNSClass::ANY, DNSClass::CH, DNSClass::HS] {
            let mut m = Message::from_vec(&query("web.", RecordType::A, None)).unwrap();
            m.queries[0].set_query_class(class);
            let r = parse(step(&m.to_vec().unwrap(), Some(&t), Transport::Udp));
            assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{class:?}");
            assert!(r.answers.is_empty(), "{class:?}");
        }
    }

    #[test]
    fn in_edns_version_above_zero_gets_badvers_with_version_0() {
        let t = table(true);
        for transport in [Transport::Udp, Transport::Tcp] {
            let mut m = Message::from_vec(&query("web.", RecordType::A, Some(1232))).unwrap();
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_version(1);
            m.set_edns(e);
            let r = parse(step(&m.to_vec().unwrap(), Some(&t), transport));
            // 16 decodes as BADSIG in hickory (the same number): compare numbers.
            assert_eq!(u16::from(r.metadata.response_code), 16);
            assert!(r.answers.is_empty());
            let opt = r.edns.as_ref().expect("an OPT in the BADVERS reply");
            assert_eq!(opt.version(), 0);
            assert_eq!(opt.rcode_high(), 1, "BADVERS is 16: high bits 1");
        }
        // Version 0 is answered as usual.
        let r = parse(step(
            &query("web.", RecordType::A, Some(1232)),
            Some(&t),
            Transport::Udp,
        ));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
    }

    #[test]
    fn udp_truncates_to_the_advertised_size_tcp_does_not() {
        let t = table(true);
        let q = query("many.", RecordType::A, None);
        let udp = parse(step(&q, Some(&t), Transport::Udp));
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        let tcp = parse(step(&q, Some(&t), Transport::Tcp));
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 58);
        let big = parse(step(
            &query("many.", RecordType::A, Some(4096)),
            Some(&t),
            Transport::Udp,
        ));
        assert_eq!(big.answers.len(), 58);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random bytes never panic the query path.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_one(&bytes);
        }

        /// Valid queries with bytes flipped, cut or appended never panic it.
        #[test]
        fn mutated_queries_never_panic(
            name in "[a-z]{1,10}(\\.[a-z]{1,10}){0,3}\\.",
            edns in proptest::option::of(0u16..5000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut b = query(&name, RecordType::A, edns);
            for (i, v) in flips {
                let n = b.len();
                b[i % n] ^= v;
            }
            b.truncate(cut % (b.len() + 1));
            b.extend(tail);
            fuzz_one(&b);
        }
    }
}
