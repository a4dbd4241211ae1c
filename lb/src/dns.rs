//! A tiny DNS client: one A question over UDP (TCP when truncated).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// The query message for `name` A IN, recursion desired.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // AN, NS, AR
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        bail!("invalid DNS name {name:?}");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            bail!("invalid DNS name {name:?}");
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// Skip a (possibly compressed) name at `pos`; the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize> {
    loop {
        let len = *msg.get(pos).context("truncated name")? as usize;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xC0 == 0xC0 => return Ok(pos + 2),
            l if l & 0xC0 == 0 => pos += 1 + l,
            _ => bail!("bad label type"),
        }
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Result<u16> {
    let b = msg.get(pos..pos + 2).context("truncated message")?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
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
    if msg.len() < 12 {
        bail!("short DNS response");
    }
    if u16_at(msg, 0)? != id {
        bail!("DNS response for another query");
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        bail!("not a DNS response");
    }
    if flags & 0x0200 != 0 {
        return Ok(Answer::Truncated);
    }
    match flags & 0x000F {
        0 => {}
        3 => return Ok(Answer::Addrs(Vec::new())), // NXDOMAIN
        rc => bail!("DNS error rcode {rc}"),
    }
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let ty = u16_at(msg, pos)?;
        let class = u16_at(msg, pos + 2)?;
        let rdlen = u16_at(msg, pos + 8)? as usize;
        let rdata = msg
            .get(pos + 10..pos + 10 + rdlen)
            .context("truncated record")?;
        if ty == TYPE_A && class == CLASS_IN && rdlen == 4 {
            out.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlen;
    }
    out.sort();
    out.dedup();
    Ok(Answer::Addrs(out))
}

fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
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
