//! A tiny DNS client: one A question over UDP (TCP when truncated).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// The query message for `name` A IN, recursion desired (hickory's codec,
/// the one netd's DNS server uses).
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>> {
    let qname = Name::from_ascii(name)
        .ok()
        .filter(|n| !n.is_root() && !name.contains(".."))
        .with_context(|| format!("invalid DNS name {name:?}"))?;
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, RecordType::A));
    m.to_vec().context("encode DNS query")
}

/// What a response says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Addrs(Vec<Ipv4Addr>),
    /// The TC bit: ask again over TCP.
    Truncated,
}

/// Parse the response to query `id`. NXDOMAIN is an empty answer.
pub fn decode_response(id: u16, msg: &[u8]) -> Result<Answer> {
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
    let mut out: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
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

/// The A records of `name` from `server`.
pub async fn lookup_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>> {
    let id = query_id();
    let q = encode_query(id, name)?;
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
            if let Ok(a) = decode_response(id, &buf[..n]) {
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
                decode_response(id, &buf)
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
        let q = encode_query(0x1234, "web").unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1
            ]
        );
        assert!(encode_query(1, "a..b").is_err());
    }

    #[test]
    fn parses_compressed_answers() {
        let mut r = encode_query(7, "web").unwrap();
        r[2] = 0x85; // QR, AA, RD
        r[3] = 0x80; // RA
        r[7] = 2; // ANCOUNT
        for ip in [[10, 0, 0, 3], [10, 0, 0, 2]] {
            r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
            r.extend_from_slice(&ip);
        }
        assert_eq!(
            decode_response(7, &r).unwrap(),
            Answer::Addrs(vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)])
        );
        assert!(decode_response(8, &r).is_err());
        r[3] = 0x83; // NXDOMAIN
        assert_eq!(decode_response(7, &r).unwrap(), Answer::Addrs(vec![]));
        r[2] |= 0x02; // TC
        assert_eq!(decode_response(7, &r).unwrap(), Answer::Truncated);
    }
}
