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

mod query;
mod stats;
mod table;
mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tracing::debug;

#[doc(hidden)]
pub use query::fuzz_one;
use query::{Reply, Step, Transport};
pub use stats::{Outcome, ViewStats};
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
    /// Where this view forwards (a sandbox's or its networks' own
    /// servers); empty: the server's ([`Config::upstreams`], else the
    /// host's resolv.conf).
    pub upstreams: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Empty: the nameservers of /etc/resolv.conf as the daemon sees it.
    pub upstreams: Vec<SocketAddr>,
    pub ttl: u32,
    pub upstream_timeout: Duration,
    /// Idle timeout of TCP connections (between queries and within one).
    pub tcp_idle: Duration,
    /// TCP connections one sandbox may hold open; beyond, new ones are
    /// closed at once, so a client that opens and never speaks cannot
    /// exhaust the server.
    pub max_tcp_per_sandbox: usize,
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
            max_tcp_per_sandbox: 16,
            max_inflight_per_sandbox: 64,
        }
    }
}

struct Inner {
    cfg: Config,
    views: RwLock<HashMap<String, Arc<Table>>>,
    servers: Mutex<HashMap<String, Serving>>,
    upstreams: Arc<Upstreams>,
    /// Views' own upstream sets, each with its cache, shared by every table
    /// that forwards to the same servers. Never pruned: the sets are the
    /// few an operator configured.
    own_upstreams: Mutex<HashMap<Vec<SocketAddr>, Arc<Upstreams>>>,
    /// Counts the queries of a sandbox served before it has a table.
    unviewed: Arc<ViewStats>,
}

/// The DNS server for every sandbox; cheap to clone.
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

impl Dns {
    pub fn new(cfg: Config) -> Dns {
        let upstreams = Arc::new(Upstreams::new(cfg.upstreams.clone(), cfg.upstream_timeout));
        Dns {
            inner: Arc::new(Inner {
                cfg,
                views: RwLock::new(HashMap::new()),
                servers: Mutex::new(HashMap::new()),
                upstreams,
                own_upstreams: Mutex::default(),
                unviewed: Arc::default(),
            }),
        }
    }

    /// A table for `view`. Sandboxes with the same view can share one (set
    /// with [`Dns::serve_table`] / [`Dns::set_table`]): memory and the work
    /// of a change then grow with distinct views, not with sandboxes; they
    /// share its round-robin position too.
    pub fn table(&self, view: &View) -> Arc<Table> {
        Arc::new(Table::new(view, self.inner.cfg.ttl))
    }

    /// [`Dns::table`] whose queries count in `stats` (see [`ViewStats`]).
    pub fn table_counted(&self, view: &View, stats: Arc<ViewStats>) -> Arc<Table> {
        Arc::new(Table::counted(view, self.inner.cfg.ttl, stats))
    }

    /// The counters of queries that arrive before their sandbox has a table.
    pub fn unviewed_stats(&self) -> Arc<ViewStats> {
        Arc::clone(&self.inner.unviewed)
    }

    /// Start serving a sandbox: sockets bound to 127.0.0.11:53 inside the
    /// namespace at `netns`. Serving an id again only replaces its view.
    /// Must be called inside a tokio runtime.
    pub async fn serve(&self, sandbox: &str, netns: &Path, view: View) -> Result<(), DnsError> {
        self.serve_table(sandbox, netns, self.table(&view)).await
    }

    /// [`Dns::serve`] with a table built by [`Dns::table`].
    pub async fn serve_table(
        &self,
        sandbox: &str,
        netns: &Path,
        table: Arc<Table>,
    ) -> Result<(), DnsError> {
        self.serve_with(sandbox, table, || open_sockets(netns))
            .map_err(|source| DnsError::Sockets {
                netns: netns.display().to_string(),
                source,
            })
    }

    /// [`Dns::serve_table`] for a caller with its own way into the
    /// sandbox's namespace: `open` makes the sockets there (with
    /// [`Sockets::bind`]), and is called only for a sandbox not served yet.
    /// Must be called inside a tokio runtime.
    pub fn serve_with<E: From<std::io::Error>>(
        &self,
        sandbox: &str,
        table: Arc<Table>,
        open: impl FnOnce() -> Result<Sockets, E>,
    ) -> Result<(), E> {
        self.set_table(sandbox, table);
        if self
            .inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(sandbox)
        {
            return Ok(());
        }
        let Sockets { udp, tcp } = open()?;
        let handler = Arc::new(Handler {
            sandbox: sandbox.to_string(),
            inner: Arc::clone(&self.inner),
            inflight: std::sync::atomic::AtomicUsize::new(0),
        });
        let udp = Arc::new(tokio::net::UdpSocket::from_std(udp)?);
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let udp_task = tokio::spawn(serve_udp(udp, Arc::clone(&handler)));
        let tcp_task = tokio::spawn(serve_tcp(tcp, handler));
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                sandbox.to_string(),
                Serving {
                    tasks: [udp_task, tcp_task],
                },
            );
        debug!(sandbox, "serving DNS");
        Ok(())
    }

    /// Replace a sandbox's view; the next query sees it.
    pub fn set_view(&self, sandbox: &str, view: View) {
        self.set_table(sandbox, self.table(&view));
    }

    /// Replace a sandbox's table; the next query sees it.
    pub fn set_table(&self, sandbox: &str, table: Arc<Table>) {
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

/// A sandbox server's listening sockets, bound to [`LISTEN`].
pub struct Sockets {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

impl Sockets {
    /// Bind UDP and TCP on 127.0.0.11:53 in the calling thread's network
    /// namespace, whose `lo` must be up (else `EADDRNOTAVAIL`). Not bound
    /// ahead with `IP_FREEBIND`: a UDP socket bound to 127.0.0.11 while the
    /// address is not local yet keeps sending its replies from 127.0.0.1
    /// once it is, and connected clients (dig, glibc's resolver) drop them.
    pub fn bind() -> std::io::Result<Sockets> {
        use socket2::{Domain, Socket, Type};
        let open = |ty: Type| -> std::io::Result<Socket> {
            Socket::new(Domain::IPV4, ty.nonblocking().cloexec(), None)
        };
        let udp = open(Type::DGRAM)?;
        udp.bind(&LISTEN.into())?;
        let tcp = open(Type::STREAM)?;
        // As std's TcpListener::bind does: a restarted server rebinds at once.
        tcp.set_reuse_address(true)?;
        tcp.bind(&LISTEN.into())?;
        tcp.listen(1024)?;
        Ok(Sockets {
            udp: udp.into(),
            tcp: tcp.into(),
        })
    }
}

/// Bind the sockets on a thread that joined the sandbox's namespace; they
/// stay in that namespace after the thread ends.
fn open_sockets(netns: &Path) -> std::io::Result<Sockets> {
    let ns = std::fs::File::open(netns)?;
    std::thread::spawn(move || -> std::io::Result<_> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        Sockets::bind()
    })
    .join()
    .map_err(|_| std::io::Error::other("socket thread panicked"))?
}

/// One sandbox's sockets: dropping this aborts its loops, which closes the
/// sockets and every TCP connection (owned by the accept loop's JoinSet).
struct Serving {
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Serving {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
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

impl Handler {
    /// The sandbox's current table, looked up per query so a swap is
    /// visible to the next one.
    fn table(&self) -> Option<Arc<Table>> {
        self.inner
            .views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.sandbox)
            .cloned()
    }

    /// Where a query answered from `table` counts.
    fn stats<'a>(&'a self, table: &'a Option<Arc<Table>>) -> &'a ViewStats {
        table.as_deref().map_or(&self.inner.unviewed, |t| t.stats())
    }

    /// Answer a non-local question from upstream (or the cache); SERVFAIL
    /// when this sandbox already has too many in flight or upstream fails.
    /// The upstreams a query answered from `table` goes to.
    fn upstreams(&self, table: &Option<Arc<Table>>) -> Arc<Upstreams> {
        let own = table.as_deref().map(Table::upstreams).unwrap_or_default();
        if own.is_empty() {
            return Arc::clone(&self.inner.upstreams);
        }
        let mut sets = self
            .inner
            .own_upstreams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let set = sets.entry(own.to_vec()).or_insert_with(|| {
            Arc::new(Upstreams::new(
                own.to_vec(),
                self.inner.cfg.upstream_timeout,
            ))
        });
        Arc::clone(set)
    }

    async fn forward(
        &self,
        req: &Message,
        (qname, qtype): (&Name, RecordType),
        transport: Transport,
        via: &Upstreams,
        stats: &ViewStats,
    ) -> Option<(Vec<u8>, Outcome)> {
        let n = self
            .inflight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _slot = Slot(&self.inflight);
        let resolved = if n >= self.inner.cfg.max_inflight_per_sandbox {
            Err("too many forwarded queries in flight".to_string())
        } else {
            via.resolve_cached(qname, qtype).await
        };
        stats.forward(matches!(resolved, Ok((_, true))));
        let r = match resolved {
            Ok((resp, _)) => Reply {
                code: resp.metadata.response_code,
                authoritative: false,
                answers: resp.answers,
                authorities: resp.authorities,
            },
            Err(e) => {
                debug!(sandbox = %self.sandbox, %qname, "upstream failed: {e}");
                Reply::error(ResponseCode::ServFail)
            }
        };
        let outcome = Outcome::of(r.code, !r.answers.is_empty());
        query::respond(req, r, transport).map(|b| (b, outcome))
    }
}

/// The UDP side: local answers are written from the receive loop itself,
/// without a task, a channel or a second copy of the request; only forwarded
/// questions get a task of their own, so they never hold up local ones.
async fn serve_udp(sock: Arc<tokio::net::UdpSocket>, handler: Arc<Handler>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let arrived = Instant::now();
        let table = handler.table();
        match query::step(&buf[..n], table.as_deref(), Transport::Udp) {
            Step::Reply(b, outcome) => {
                let _ = sock.send_to(&b, peer).await;
                handler.stats(&table).done(outcome, arrived);
            }
            Step::Forward { req, qname, qtype } => {
                let (sock, handler) = (Arc::clone(&sock), Arc::clone(&handler));
                tokio::spawn(async move {
                    let stats = handler.stats(&table);
                    let via = handler.upstreams(&table);
                    let sent = handler
                        .forward(&req, (&qname, qtype), Transport::Udp, &via, stats)
                        .await;
                    let outcome = match sent {
                        Some((b, outcome)) => {
                            let _ = sock.send_to(&b, peer).await;
                            outcome
                        }
                        None => Outcome::Dropped,
                    };
                    stats.done(outcome, arrived);
                });
            }
            Step::Drop => handler.stats(&table).done(Outcome::Dropped, arrived),
        }
    }
}

/// The TCP side: at most `max_tcp_per_sandbox` connections at once (beyond,
/// a new one is closed at once); each is served by its own task until it
/// goes idle, misbehaves or the sandbox stops.
async fn serve_tcp(listener: tokio::net::TcpListener, handler: Arc<Handler>) {
    let slots = Arc::new(Semaphore::new(handler.inner.cfg.max_tcp_per_sandbox));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors, say: back off instead of spinning.
                        debug!(sandbox = %handler.sandbox, "DNS TCP accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    debug!(sandbox = %handler.sandbox, "too many DNS TCP connections");
                    continue;
                };
                let handler = Arc::clone(&handler);
                conns.spawn(async move {
                    tcp_conn(stream, &handler).await;
                    drop(slot);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Length-prefixed queries, answered in order. Closed when idle for
/// `tcp_idle` between queries, within one, or while a reply cannot be
/// written (a client that stops reading).
async fn tcp_conn(mut stream: tokio::net::TcpStream, handler: &Handler) {
    let idle = handler.inner.cfg.tcp_idle;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let mut len = [0u8; 2];
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let n = usize::from(u16::from_be_bytes(len));
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut buf[..n])).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let arrived = Instant::now();
        let table = handler.table();
        let stats = handler.stats(&table);
        let (out, outcome) = match query::step(&buf[..n], table.as_deref(), Transport::Tcp) {
            Step::Reply(b, outcome) => (b, outcome),
            Step::Forward { req, qname, qtype } => {
                let via = handler.upstreams(&table);
                match handler
                    .forward(&req, (&qname, qtype), Transport::Tcp, &via, stats)
                    .await
                {
                    Some(sent) => sent,
                    None => return stats.done(Outcome::Dropped, arrived),
                }
            }
            Step::Drop => return stats.done(Outcome::Dropped, arrived),
        };
        let Ok(len) = u16::try_from(out.len()) else {
            return stats.done(Outcome::Dropped, arrived);
        };
        let mut frame = Vec::with_capacity(out.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&out);
        let written = tokio::time::timeout(idle, stream.write_all(&frame)).await;
        stats.done(outcome, arrived);
        if !matches!(written, Ok(Ok(_))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn sockets_bind_before_lo_is_up_and_answer_once_it_is() {
        // A namespace of this thread's own (gone when the thread ends): its
        // `lo` is down, so 127.0.0.11 does not exist yet, as in a sandbox the
        // CNI plugin is still making while the daemon starts serving it.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let s = Sockets::bind().expect("bind with lo down");
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("run ip");
            assert!(up.success());

            let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
            client.send_to(b"ping", LISTEN).expect("send");
            let mut buf = [0u8; 16];
            s.udp.set_nonblocking(false).expect("blocking");
            s.udp
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .expect("timeout");
            let (n, _) = s.udp.recv_from(&mut buf).expect("datagram arrives");
            assert_eq!(&buf[..n], b"ping");

            let mut c = std::net::TcpStream::connect(LISTEN).expect("tcp connect");
            c.write_all(b"x").expect("write");
            s.tcp.set_nonblocking(false).expect("blocking");
            let (mut conn, _) = s.tcp.accept().expect("accept");
            let mut one = [0u8; 1];
            conn.read_exact(&mut one).expect("read");
            assert_eq!(&one, b"x");
        })
        .join()
        .expect("test thread");
    }
}
