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
        self.resolve_cached(name, qtype).await.map(|(m, _)| m)
    }

    /// [`Upstreams::resolve`], saying whether the answer came from the cache.
    pub async fn resolve_cached(
        &self,
        name: &Name,
        qtype: RecordType,
    ) -> Result<(Message, bool), String> {
        let key = (name.to_ascii().to_ascii_lowercase(), qtype);
        if let Some((expires, m)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && *expires > Instant::now()
        {
            return Ok((m.clone(), true));
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
        Ok((m, false))
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
                        // A truncated answer is partial: the same server
                        // gives the whole of it over TCP (RFC 7766 5).
                        if m.metadata.truncation {
                            return ask_tcp(s, &bytes, id).await;
                        }
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

/// Ask `server` over TCP: the query with its two-byte length prefix, one
/// reply read the same way (RFC 1035 4.2.2). The caller's timeout bounds it.
async fn ask_tcp(server: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let len = u16::try_from(query.len()).map_err(|_| "query too long".to_string())?;
    let mut conn = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("TCP to {server}: {e}"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    conn.write_all(&framed).await.map_err(|e| e.to_string())?;
    let n = conn.read_u16().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(n)];
    conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err(format!("TCP answer from {server} for another query"));
    }
    Ok(m)
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
    use hickory_proto::rr::rdata::{A, AAAA, SOA};

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

    /// A nameserver on `[::1]` (any port: a unit test cannot bind 53)
    /// answering every question with one AAAA record, TTL 30, until
    /// dropped; counts the questions.
    struct V6Nameserver {
        addr: SocketAddr,
        asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl V6Nameserver {
        fn start() -> V6Nameserver {
            use std::sync::atomic::Ordering::Relaxed;
            let sock = std::net::UdpSocket::bind("[::1]:0").expect("bind [::1]");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let addr = sock.local_addr().unwrap();
            let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (a, s) = (asked.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !s.load(Relaxed) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(req) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    a.fetch_add(1, Relaxed);
                    let mut m = msg(ResponseCode::NoError, vec![], vec![]);
                    m.metadata.id = req.metadata.id;
                    m.metadata.message_type = hickory_proto::op::MessageType::Response;
                    m.queries = req.queries.clone();
                    m.answers = vec![Record::from_rdata(
                        req.queries[0].name().clone(),
                        30,
                        RData::AAAA(AAAA("2001:db8::7".parse().unwrap())),
                    )];
                    let _ = sock.send_to(&m.to_vec().unwrap(), peer);
                }
            });
            V6Nameserver {
                addr,
                asked,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for V6Nameserver {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[tokio::test]
    async fn forwards_to_an_ipv6_nameserver() {
        use std::sync::atomic::Ordering::Relaxed;
        // `nameserver ::1` names [::1]:53 ...
        let conf = parse_resolv_conf("nameserver ::1\n");
        assert_eq!(conf, vec!["[::1]:53".parse().unwrap()]);
        // ... asked as any other upstream: here on the responder's port.
        let ns = V6Nameserver::start();
        let server = SocketAddr::new(conf[0].ip(), ns.addr.port());
        // A silent IPv4 upstream beside it costs nothing: first answer wins.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let up = Upstreams::new(
            vec![silent.local_addr().unwrap(), server],
            Duration::from_secs(2),
        );
        let name = Name::from_ascii("v6.example.").unwrap();
        let started = Instant::now();
        let m = up.resolve(&name, RecordType::AAAA).await.expect("answer");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data.to_string(), "2001:db8::7");
        // Cached for its TTL: the next question does not reach upstream.
        up.resolve(&name, RecordType::AAAA).await.expect("cached");
        assert_eq!(ns.asked.load(Relaxed), 1);
    }

    /// A truncated UDP answer is asked again over TCP, on the same server,
    /// and the whole answer is returned (and cached like any other).
    #[tokio::test]
    async fn truncated_answer_is_asked_again_over_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(server).await.unwrap();
        let reply = |q: &Message, full: bool| {
            let mut m = msg(ResponseCode::NoError, vec![], vec![]);
            m.metadata.id = q.metadata.id;
            m.metadata.message_type = hickory_proto::op::MessageType::Response;
            m.queries = q.queries.clone();
            if full {
                m.answers = (1..=40)
                    .map(|i| {
                        Record::from_rdata(
                            q.queries[0].name().clone(),
                            30,
                            RData::A(A::new(192, 0, 2, i)),
                        )
                    })
                    .collect();
            } else {
                m.metadata.truncation = true;
            }
            m.to_vec().unwrap()
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let _ = udp.send_to(&reply(&q, false), peer).await;
            }
        });
        tokio::spawn(async move {
            let (mut c, _) = tcp.accept().await.unwrap();
            let n = c.read_u16().await.unwrap();
            let mut q = vec![0u8; usize::from(n)];
            c.read_exact(&mut q).await.unwrap();
            let r = reply(&Message::from_vec(&q).unwrap(), true);
            c.write_u16(u16::try_from(r.len()).unwrap()).await.unwrap();
            c.write_all(&r).await.unwrap();
        });
        let up = Upstreams::new(vec![server], Duration::from_secs(2));
        let name = Name::from_ascii("big.example.").unwrap();
        let m = up.resolve(&name, RecordType::A).await.expect("answer");
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 40);
        // The TCP server took one connection: the second answer is cached.
        let (m, cached) = up.resolve_cached(&name, RecordType::A).await.unwrap();
        assert!(cached);
        assert_eq!(m.answers.len(), 40);
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
