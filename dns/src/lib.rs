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
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
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
    servers: Mutex<HashMap<String, Server<Handler>>>,
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
        let handler = Handler {
            sandbox: sandbox.to_string(),
            inner: Arc::clone(&self.inner),
            inflight: std::sync::atomic::AtomicUsize::new(0),
        };
        let mut server = Server::new(handler);
        server.register_socket(tokio::net::UdpSocket::from_std(udp).map_err(err)?);
        server.register_listener(
            tokio::net::TcpListener::from_std(tcp).map_err(err)?,
            self.inner.cfg.tcp_idle,
            64,
        );
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sandbox.to_string(), server);
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
                let qtype = info.query.query_type();
                // The view is looked up per query: a swap is visible at once.
                let table = self
                    .inner
                    .views
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&self.sandbox)
                    .cloned();
                let local = table
                    .as_ref()
                    .map(|t| t.answer(&qname, qtype))
                    .unwrap_or(Answer::NotLocal);
                match local {
                    Answer::Records(r) => {
                        meta.authoritative = true;
                        answers = r;
                    }
                    Answer::NoData => meta.authoritative = true,
                    Answer::NotLocal if table.as_ref().is_some_and(|t| t.forward()) => {
                        let n = self
                            .inflight
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _slot = Slot(&self.inflight);
                        let resolved = if n >= self.inner.cfg.max_inflight_per_sandbox {
                            Err("too many forwarded queries in flight".to_string())
                        } else {
                            self.inner.upstreams.resolve(&qname, qtype).await
                        };
                        match resolved {
                            Ok(resp) => {
                                meta.response_code = resp.metadata.response_code;
                                answers = resp.answers;
                                authorities = resp.authorities;
                            }
                            Err(e) => {
                                debug!(sandbox = %self.sandbox, %qname, "upstream failed: {e}");
                                meta.response_code = ResponseCode::ServFail;
                            }
                        }
                    }
                    Answer::NotLocal => {
                        meta.authoritative = true;
                        meta.response_code = ResponseCode::NXDomain;
                    }
                }
                if qtype == RecordType::ANY && answers.is_empty() {
                    meta.response_code = ResponseCode::NotImp;
                }
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
