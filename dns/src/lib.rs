//! netd's embedded DNS server: 127.0.0.11:53 inside each sandbox's network
//! namespace.
//!
//! For every sandbox the server opens a UDP and a TCP socket inside that
//! sandbox's namespace (a short thread that joined it creates them; tokio in
//! the caller's namespace serves them), so it knows who asks from the socket a
//! query arrives on. A query is answered from that sandbox's [`View`] (the
//! names of the networks it is on), with addresses rotated round-robin; PTR
//! for every address in the view; anything else is forwarded to the upstream
//! resolvers when the view allows it.
//!
//! Views are swapped atomically ([`Dns::set_view`]): the next query sees the
//! new one, with no reload gap and no socket re-opened.

mod table;
mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, ResponseCode,
};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::debug;

pub use table::{Answer, Table};
pub use upstream::Upstreams;

/// The address every sandbox's resolver points at.
pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("open DNS sockets in {netns}: {source}")]
    Sockets {
        netns: String,
        source: std::io::Error,
    },
}

/// One name and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record4 {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// What one sandbox may resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub records: Vec<Record4>,
    /// Forward names that are not local; false for sandboxes only on
    /// internal networks (they answer NXDOMAIN instead).
    pub forward: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Empty: the nameservers of /etc/resolv.conf as the daemon sees it.
    pub upstreams: Vec<SocketAddr>,
    pub ttl: u32,
    pub upstream_timeout: Duration,
    /// Idle timeout of TCP connections.
    pub tcp_idle: Duration,
    /// Forwarded queries one sandbox may have in flight; beyond, SERVFAIL,
    /// so one noisy sandbox cannot hold every upstream slot.
    pub max_inflight_per_sandbox: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upstreams: vec![],
            ttl: 5,
            upstream_timeout: Duration::from_secs(2),
            tcp_idle: Duration::from_secs(5),
            max_inflight_per_sandbox: 64,
        }
    }
}

struct Inner {
    cfg: Config,
    views: RwLock<HashMap<String, Arc<Table>>>,
    servers: Mutex<HashMap<String, Serving>>,
    upstreams: Upstreams,
}

/// The DNS server for every sandbox; cheap to clone.
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

impl Dns {
    pub fn new(cfg: Config) -> Dns {
        let upstreams = Upstreams::new(cfg.upstreams.clone(), cfg.upstream_timeout);
        Dns {
            inner: Arc::new(Inner {
                cfg,
                views: RwLock::new(HashMap::new()),
                servers: Mutex::new(HashMap::new()),
                upstreams,
            }),
        }
    }

    /// Start serving a sandbox: sockets bound to 127.0.0.11:53 inside the
    /// namespace at `netns`. Serving an id again only replaces its view.
    /// Must be called inside a tokio runtime.
    pub async fn serve(&self, sandbox: &str, netns: &Path, view: View) -> Result<(), DnsError> {
        self.set_view(sandbox, view);
        if self
            .inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(sandbox)
        {
            return Ok(());
        }
        let err = |source| DnsError::Sockets {
            netns: netns.display().to_string(),
            source,
        };
        let (udp, tcp) = open_sockets(netns).map_err(err)?;
        let handler = Arc::new(Handler {
            sandbox: sandbox.to_string(),
            inner: Arc::clone(&self.inner),
            inflight: std::sync::atomic::AtomicUsize::new(0),
        });
        let udp = Arc::new(tokio::net::UdpSocket::from_std(udp).map_err(err)?);
        let udp_task = tokio::spawn(serve_udp(udp, Arc::clone(&handler)));
        let mut server = Server::new(SharedHandler(handler));
        server.register_listener(
            tokio::net::TcpListener::from_std(tcp).map_err(err)?,
            self.inner.cfg.tcp_idle,
            64,
        );
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                sandbox.to_string(),
                Serving {
                    _tcp: server,
                    udp: udp_task,
                },
            );
        debug!(sandbox, netns = %netns.display(), "serving DNS");
        Ok(())
    }

    /// Replace a sandbox's view; the next query sees it.
    pub fn set_view(&self, sandbox: &str, view: View) {
        let table = Arc::new(Table::new(&view, self.inner.cfg.ttl));
        self.inner
            .views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sandbox.to_string(), table);
    }

    /// Stop serving a sandbox: its sockets close (dropping the server aborts its tasks).
    pub fn stop(&self, sandbox: &str) {
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox);
        self.inner
            .views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox);
    }

    /// The sandboxes being served.
    pub fn served(&self) -> Vec<String> {
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// Bind the sockets on a thread that joined the sandbox's namespace; they
/// stay in that namespace after the thread ends.
fn open_sockets(netns: &Path) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let ns = std::fs::File::open(netns)?;
    std::thread::spawn(move || -> std::io::Result<_> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let udp = std::net::UdpSocket::bind(LISTEN)?;
        let tcp = std::net::TcpListener::bind(LISTEN)?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| std::io::Error::other("socket thread panicked"))?
}

/// One sandbox's sockets: dropping this closes them (the TCP server's tasks
/// are aborted with it, the UDP task explicitly).
struct Serving {
    _tcp: Server<SharedHandler>,
    udp: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.udp.abort();
    }
}

/// hickory's server wants to own its handler; the UDP loop shares it.
struct SharedHandler(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for SharedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        rh: R,
    ) -> ResponseInfo {
        self.0.handle_request::<R, T>(request, rh).await
    }
}

struct Handler {
    sandbox: String,
    inner: Arc<Inner>,
    inflight: std::sync::atomic::AtomicUsize,
}

/// Counts one forwarded query in flight for as long as it lives.
struct Slot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The answer to one question, before it is put in a message.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
}

impl Handler {
    /// Local names from the sandbox's current view (looked up per query, so
    /// a swap is visible at once); anything else forwarded if allowed.
    async fn reply(&self, qname: &Name, qtype: RecordType) -> Reply {
        let table = self
            .inner
            .views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.sandbox)
            .cloned();
        let local = table
            .as_ref()
            .map(|t| t.answer(qname, qtype))
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
            Answer::NotLocal if table.as_ref().is_some_and(|t| t.forward()) => {
                r.authoritative = false;
                let n = self
                    .inflight
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _slot = Slot(&self.inflight);
                let resolved = if n >= self.inner.cfg.max_inflight_per_sandbox {
                    Err("too many forwarded queries in flight".to_string())
                } else {
                    self.inner.upstreams.resolve(qname, qtype).await
                };
                match resolved {
                    Ok(resp) => {
                        r.code = resp.metadata.response_code;
                        r.answers = resp.answers;
                        r.authorities = resp.authorities;
                    }
                    Err(e) => {
                        debug!(sandbox = %self.sandbox, %qname, "upstream failed: {e}");
                        r.code = ResponseCode::ServFail;
                    }
                }
            }
            Answer::NotLocal => r.code = ResponseCode::NXDomain,
        }
        if qtype == RecordType::ANY && r.answers.is_empty() {
            r.code = ResponseCode::NotImp;
        }
        r
    }

    /// Whether a question can be answered without waiting on anything.
    fn is_local(&self, qname: &Name, qtype: RecordType) -> bool {
        let views = self.inner.views.read().unwrap_or_else(|p| p.into_inner());
        match views.get(&self.sandbox) {
            Some(t) => !t.forward() || t.answer_peek(qname, qtype),
            None => true,
        }
    }
}

/// The UDP side, served directly rather than through hickory's server: local
/// answers are written from the receive loop itself, without a task, a
/// channel or a second copy of the request; only forwarded questions get a
/// task of their own, so they never hold up local ones.
async fn serve_udp(sock: Arc<tokio::net::UdpSocket>, handler: Arc<Handler>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        // Malformed packets are dropped: nothing to answer to.
        let Ok(req) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let Some(q) = req.queries.first().cloned() else {
            if let Some(b) = udp_response(&req, Reply::error(ResponseCode::FormErr)) {
                let _ = sock.send_to(&b, peer).await;
            }
            continue;
        };
        let (qname, qtype) = (q.name().clone(), q.query_type());
        if handler.is_local(&qname, qtype) {
            if let Some(b) = udp_response(&req, handler.reply(&qname, qtype).await) {
                let _ = sock.send_to(&b, peer).await;
            }
        } else {
            let (sock, handler) = (Arc::clone(&sock), Arc::clone(&handler));
            tokio::spawn(async move {
                if let Some(b) = udp_response(&req, handler.reply(&qname, qtype).await) {
                    let _ = sock.send_to(&b, peer).await;
                }
            });
        }
    }
}

impl Reply {
    fn error(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            answers: vec![],
            authorities: vec![],
        }
    }
}

/// The response message for `req`, truncated (TC set, no records) if it does
/// not fit the client's UDP size.
fn udp_response(req: &Message, r: Reply) -> Option<Vec<u8>> {
    let mut meta = Metadata::response_from_request(&req.metadata);
    meta.recursion_available = true;
    meta.authoritative = r.authoritative;
    meta.response_code = r.code;
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata = meta;
    m.queries = req.queries.clone();
    m.answers = r.answers;
    m.authorities = r.authorities;
    let limit = match &req.edns {
        Some(e) => {
            let mut echo = Edns::new();
            echo.set_max_payload(e.max_payload().max(512));
            m.set_edns(echo);
            usize::from(e.max_payload().max(512))
        }
        None => 512,
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

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut rh: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let mut answers: Vec<Record> = Vec::new();
        let mut authorities: Vec<Record> = Vec::new();
        match request.request_info() {
            Err(_) => meta.response_code = ResponseCode::FormErr,
            Ok(info) => {
                let qname: Name = info.query.name().into();
                let r = self.reply(&qname, info.query.query_type()).await;
                meta.response_code = r.code;
                meta.authoritative = r.authoritative;
                answers = r.answers;
                authorities = r.authorities;
            }
        }
        // A custom handler echoes EDNS itself (hickory's Catalog would).
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = edns.as_ref() {
            builder.edns(e);
        }
        let msg = builder.build(
            meta,
            answers.iter(),
            authorities.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match rh.send_response(msg).await {
            Ok(info) => info,
            Err(_) => {
                meta.response_code = ResponseCode::ServFail;
                Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                }
                .into()
            }
        }
    }
}
