//! Forwarding to upstream resolvers: every upstream is asked at once and the
//! first answer wins, each bounded by a timeout, so a dead upstream costs
//! nothing while another one answers, and local names never wait on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

pub struct Upstreams {
    fixed: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<HashMap<(String, RecordType), (Instant, Message)>>,
}

/// Forwarded answers kept at most this many; a full cache is emptied
/// (cheap, and a burst of new names refills it).
const CACHE_MAX: usize = 4096;
/// How long an answer may be cached: the smallest TTL of its records; for
/// a negative answer (NXDOMAIN, NODATA) the SOA's TTL capped by its MINIMUM
/// field (RFC 2308 section 5); never for failures or a negative answer
/// without an SOA (RFC 2308 says not to guess).
fn cache_ttl(m: &Message) -> u32 {
    match m.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => return 0,
    }
    if m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty() {
        return m.answers.iter().map(|r| r.ttl).min().unwrap_or(0);
    }
    m.authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(0)
}

/// The `nameserver` lines of a resolv.conf, port 53. Lines that do not
/// parse are skipped, the others kept; a scoped IPv6 address
/// (`fe80::1%eth0`) is skipped too, as before resolv-conf read the file.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let (cfg, _errors) = resolv_conf::Config::parse_with_errors(text.as_bytes());
    cfg.nameservers
        .iter()
        .filter_map(|ns| match ns {
            resolv_conf::ScopedIp::V4(ip) => Some(IpAddr::V4(*ip)),
            resolv_conf::ScopedIp::V6(ip, None) => Some(IpAddr::V6(*ip)),
            resolv_conf::ScopedIp::V6(_, Some(_)) => None,
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl Upstreams {
    pub fn new(fixed: Vec<SocketAddr>, timeout: Duration) -> Upstreams {
        Upstreams {
            fixed,
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The configured upstreams, or the host's, read anew each time so an
    /// edited /etc/resolv.conf applies at once.
    fn servers(&self) -> Vec<SocketAddr> {
        if !self.fixed.is_empty() {
            return self.fixed.clone();
        }
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| parse_resolv_conf(&t))
            .unwrap_or_default()
    }

    /// An answer from the cache while its TTL lasts, else from upstream.
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> Result<Message, String> {
        let key = (name.to_ascii().to_ascii_lowercase(), qtype);
        if let Some((expires, m)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && *expires > Instant::now()
        {
            return Ok(m.clone());
        }
        let m = self.ask(name, qtype).await?;
        let ttl = cache_ttl(&m);
        if ttl > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                key,
                (
                    Instant::now() + Duration::from_secs(u64::from(ttl)),
                    m.clone(),
                ),
            );
        }
        Ok(m)
    }

    async fn ask(&self, name: &Name, qtype: RecordType) -> Result<Message, String> {
        let servers = self.servers();
        if servers.is_empty() {
            return Err("no upstream resolver".into());
        }
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(name.clone(), qtype));
        let bytes = q.to_vec().map_err(|e| e.to_string())?;
        let id = q.metadata.id;
        let asks = servers.into_iter().map(|s| {
            let bytes = bytes.clone();
            Box::pin(async move {
                let bind: SocketAddr = if s.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                    .parse()
                    .expect("literal");
                let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
                sock.send_to(&bytes, s).await.map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
                    if from != s {
                        continue;
                    }
                    if let Ok(m) = Message::from_vec(&buf[..n])
                        && m.metadata.id == id
                    {
                        return Ok::<Message, String>(m);
                    }
                }
            })
        });
        let first = futures_select_ok(asks.collect());
        tokio::time::timeout(self.timeout, first)
            .await
            .map_err(|_| "upstream timeout".to_string())?
    }
}

/// The first Ok of several futures, or the last error.
async fn futures_select_ok<F>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> Result<Message, String>
where
    F: std::future::Future<Output = Result<Message, String>>,
{
    let mut last = Err("no upstream answered".to_string());
    while !futs.is_empty() {
        let (res, i) = std::future::poll_fn(|cx| {
            for (i, f) in futs.iter_mut().enumerate() {
                if let std::task::Poll::Ready(r) = f.as_mut().poll(cx) {
                    return std::task::Poll::Ready((r, i));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        drop(futs.remove(i));
        match res {
            Ok(m) => return Ok(m),
            Err(e) => last = Err(e),
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, SOA};

    fn msg(code: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut m = Message::query();
        m.metadata.response_code = code;
        m.answers = answers;
        m.authorities = authorities;
        m
    }

    #[test]
    fn cache_ttl_follows_rfc_2308() {
        let name = Name::from_ascii("x.example.").unwrap();
        let a = |ttl| Record::from_rdata(name.clone(), ttl, RData::A(A::new(1, 2, 3, 4)));
        let soa = |ttl, minimum| {
            Record::from_rdata(
                Name::from_ascii("example.").unwrap(),
                ttl,
                RData::SOA(SOA::new(name.clone(), name.clone(), 1, 60, 60, 60, minimum)),
            )
        };
        assert_eq!(
            cache_ttl(&msg(ResponseCode::NoError, vec![a(30), a(10)], vec![])),
            10
        );
        assert_eq!(
            cache_ttl(&msg(ResponseCode::NXDomain, vec![], vec![soa(300, 60)])),
            60
        );
        assert_eq!(
            cache_ttl(&msg(ResponseCode::NoError, vec![], vec![soa(20, 60)])),
            20
        );
        assert_eq!(cache_ttl(&msg(ResponseCode::NXDomain, vec![], vec![])), 0);
        assert_eq!(
            cache_ttl(&msg(ResponseCode::ServFail, vec![a(30)], vec![])),
            0
        );
    }

    #[test]
    fn resolv_conf() {
        let v = parse_resolv_conf(
            "# x\nsearch lan\nnameserver 10.0.0.1\nnameserver ::1\nnameserver bad\nnameserver fe80::1%eth0\n",
        );
        assert_eq!(
            v,
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
