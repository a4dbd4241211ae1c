//! A tiny DNS client: one A or AAAA question over UDP (TCP when truncated).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::config::IpFamily;

/// The record type that holds addresses of `family`.
pub fn record_type(family: IpFamily) -> RecordType {
    match family {
        IpFamily::Ipv4 => RecordType::A,
        IpFamily::Ipv6 => RecordType::AAAA,
    }
}

/// The query message for `name` IN of the type holding `family`'s
/// addresses, recursion desired (hickory's codec, the one netd's DNS
/// server uses).
pub fn encode_query(id: u16, name: &str, family: IpFamily) -> Result<Vec<u8>> {
    let qname = Name::from_ascii(name)
        .ok()
        .filter(|n| !n.is_root() && !name.contains(".."))
        .with_context(|| format!("invalid DNS name {name:?}"))?;
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, record_type(family)));
    m.to_vec().context("encode DNS query")
}

/// What a response says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Addrs(Vec<IpAddr>),
    /// The TC bit: ask again over TCP.
    Truncated,
}

/// Parse the response to query `id` for `family`'s addresses. NXDOMAIN is
/// an empty answer, as is NODATA (the name has only the other family's).
/// Records of the other family are ignored: a server may add them, and the
/// member list must hold one family only.
pub fn decode_response(id: u16, msg: &[u8], family: IpFamily) -> Result<Answer> {
    let m = Message::from_vec(msg).context("malformed DNS response")?;
    if m.metadata.id != id {
        bail!("DNS response for another query");
    }
    if m.metadata.message_type != MessageType::Response {
        bail!("not a DNS response");
    }
    if m.metadata.truncation {
        return Ok(Answer::Truncated);
    }
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Answer::Addrs(Vec::new())),
        rc => bail!("DNS error {rc}"),
    }
    let mut out: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match (&r.data, family) {
            (RData::A(a), IpFamily::Ipv4) => Some(IpAddr::V4(a.0)),
            (RData::AAAA(a), IpFamily::Ipv6) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(Answer::Addrs(out))
}

/// A query id nobody off the host can guess: std's RandomState draws its
/// keys from the OS once per thread and changes them for every new state,
/// so an empty SipHash under fresh keys is a random number.
fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u16
}

/// The A (ipv4) or AAAA (ipv6) records of `name` from `server`. The
/// question's family and the server's address family are independent.
pub async fn lookup(
    server: SocketAddr,
    name: &str,
    family: IpFamily,
    timeout: Duration,
) -> Result<Vec<IpAddr>> {
    let id = query_id();
    let q = encode_query(id, name, family)?;
    let udp = async {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(server).await?;
        sock.send(&q).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await?;
            // Ignore strays for other ids; a wrong one is not fatal.
            if let Ok(a) = decode_response(id, &buf[..n], family) {
                return Ok::<_, anyhow::Error>(a);
            }
        }
    };
    let ans = tokio::time::timeout(timeout, udp)
        .await
        .context("DNS query timed out")??;
    match ans {
        Answer::Addrs(a) => Ok(a),
        Answer::Truncated => {
            let tcp = async {
                let mut s = TcpStream::connect(server).await?;
                let mut framed = (q.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&q);
                s.write_all(&framed).await?;
                let len = s.read_u16().await? as usize;
                let mut buf = vec![0u8; len];
                s.read_exact(&mut buf).await?;
                decode_response(id, &buf, family)
            };
            match tokio::time::timeout(timeout, tcp)
                .await
                .context("DNS query over TCP timed out")??
            {
                Answer::Addrs(a) => Ok(a),
                Answer::Truncated => bail!("truncated DNS answer over TCP"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wire_format() {
        let q = encode_query(0x1234, "web", IpFamily::Ipv4).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1
            ]
        );
        // AAAA is type 28.
        let q = encode_query(0x1234, "web", IpFamily::Ipv6).unwrap();
        assert_eq!(q[q.len() - 4..], [0, 28, 0, 1]);
        assert!(encode_query(1, "a..b", IpFamily::Ipv4).is_err());
    }

    /// A response to `encode_query(id, "web", family)` with `records`
    /// (type, rdata) as compressed answers.
    fn response(id: u16, family: IpFamily, records: &[(u8, &[u8])]) -> Vec<u8> {
        let mut r = encode_query(id, "web", family).unwrap();
        r[2] = 0x85; // QR, AA, RD
        r[3] = 0x80; // RA
        r[7] = records.len() as u8; // ANCOUNT
        for (ty, data) in records {
            r.extend_from_slice(&[0xC0, 12, 0, *ty, 0, 1, 0, 0, 0, 0, 0, data.len() as u8]);
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn parses_compressed_answers() {
        let mut r = response(
            7,
            IpFamily::Ipv4,
            &[(1, &[10, 0, 0, 3]), (1, &[10, 0, 0, 2])],
        );
        assert_eq!(
            decode_response(7, &r, IpFamily::Ipv4).unwrap(),
            Answer::Addrs(vec![
                "10.0.0.2".parse().unwrap(),
                "10.0.0.3".parse().unwrap()
            ])
        );
        assert!(decode_response(8, &r, IpFamily::Ipv4).is_err());
        r[3] = 0x83; // NXDOMAIN
        assert_eq!(
            decode_response(7, &r, IpFamily::Ipv4).unwrap(),
            Answer::Addrs(vec![])
        );
        r[2] |= 0x02; // TC
        assert_eq!(
            decode_response(7, &r, IpFamily::Ipv4).unwrap(),
            Answer::Truncated
        );
    }

    #[test]
    fn parses_aaaa_answers_and_ignores_the_other_family() {
        let a: std::net::Ipv6Addr = "fd00::3".parse().unwrap();
        let b: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        let r = response(
            9,
            IpFamily::Ipv6,
            &[(28, &a.octets()), (1, &[10, 0, 0, 9]), (28, &b.octets())],
        );
        assert_eq!(
            decode_response(9, &r, IpFamily::Ipv6).unwrap(),
            Answer::Addrs(vec![b.into(), a.into()])
        );
        assert_eq!(
            decode_response(9, &r, IpFamily::Ipv4).unwrap(),
            Answer::Addrs(vec!["10.0.0.9".parse().unwrap()])
        );
        // NODATA: NOERROR without answers.
        let r = response(9, IpFamily::Ipv6, &[]);
        assert_eq!(
            decode_response(9, &r, IpFamily::Ipv6).unwrap(),
            Answer::Addrs(vec![])
        );
    }
}
