//! HTTP mode (without h2c): our own HTTP/1.1 keep-alive proxy, hosted as a
//! pingora [`ServerApp`] like TCP mode, so listeners, threads and shutdown
//! stay shared.
//!
//! pingora's `ProxyHttp` path spent ~5x nginx's user time per request (a
//! task, a channel and header maps per request, timers around every I/O).
//! Here a client connection is one loop over reused buffers: the request
//! head is parsed in place and rewritten straight into the outgoing buffer,
//! member connections come from a small idle list on the member, and a
//! read only arms a timer when it would block.

mod chunked;
#[doc(hidden)]
pub mod fuzz;
mod head;
mod io;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::config::{Algorithm, ServiceConfig};
use crate::metrics::ErrorKind;
use crate::pool::{Member, Registration, Transition};
use crate::service::ServiceState;

use chunked::Chunked;
pub use head::{Body, Client, HeadError, ReqHead, RespHead, parse_request, parse_response};
use io::{Buf, IoFail, Timer};

/// Longest request or response head; longer requests get 431.
pub const HEAD_LIMIT: usize = 64 * 1024;
/// Read buffer per direction and client connection.
const BUF_SIZE: usize = 16 * 1024;
/// How long a request with `Expect: 100-continue` waits for the member's
/// interim answer before its body is sent anyway.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

pub struct Http1Lb {
    svc: Arc<ServiceState>,
}

impl Http1Lb {
    pub fn new(svc: Arc<ServiceState>) -> Http1Lb {
        Http1Lb { svc }
    }
}

#[async_trait]
impl ServerApp for Http1Lb {
    async fn process_new(
        self: &Arc<Self>,
        client: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client_addr = client
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())))
            // An IPv4 client of a dual-stack `[::]` listener is IPv4.
            .map(|ip| Client::new(ip.to_canonical()));
        let mut c = Conn {
            svc: &self.svc,
            client,
            client_addr,
            cbuf: Buf::new(BUF_SIZE, HEAD_LIMIT),
            ubuf: Buf::new(BUF_SIZE, HEAD_LIMIT),
            out: Vec::with_capacity(4096),
            key: Vec::new(),
            tried: Vec::new(),
            head_timer: Timer::new(),
            timer: Timer::new(),
            shutdown: shutdown.clone(),
            shutdown_signal: {
                let mut rx = shutdown.clone();
                Box::pin(async move {
                    let _ = rx.changed().await;
                })
            },
        };
        while c.one_request().await == Next::KeepAlive {}
        None
    }
}

#[derive(PartialEq, Eq, Debug)]
enum Next {
    KeepAlive,
    Close,
}

/// One client connection's state, reused from request to request.
struct Conn<'a> {
    svc: &'a Arc<ServiceState>,
    client: Stream,
    client_addr: Option<Client>,
    /// Bytes from the client not yet handled (a pipelined request may wait
    /// here).
    cbuf: Buf,
    /// Bytes from the member not yet handled.
    ubuf: Buf,
    /// The head being sent (request to a member, or response to the client).
    out: Vec<u8>,
    /// Consistent-hash key of the current request.
    key: Vec<u8>,
    tried: Vec<SocketAddr>,
    /// For the wait for a request head (idle and request timeouts)...
    head_timer: Timer,
    /// ...and for everything else (mostly the request timeout).
    timer: Timer,
    shutdown: ShutdownWatch,
    /// Ready when shutdown starts: made once per connection, so an idle
    /// wait does not register a new waiter each time.
    shutdown_signal: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// How one request ended, for metrics and the keep-alive decision.
struct Outcome {
    /// Final status sent to the client (0: none).
    status: u16,
    /// Counted as a proxy error.
    error: bool,
    keep: bool,
}

impl Outcome {
    fn local(status: u16, keep: bool) -> Outcome {
        Outcome {
            status,
            error: status >= 500,
            keep,
        }
    }
}

/// Why an exchange with a member failed.
enum Fail {
    /// No response was forwarded: the client gets a 502, or, when not
    /// even a byte of a response arrived and nothing of the body was
    /// consumed, the request may go elsewhere.
    BeforeResponse {
        body_sent: bool,
        partial: bool,
        why: String,
    },
    /// A response was (partly) forwarded, or the client went away: only
    /// closing is left.
    Late,
    /// The client's chunked body is malformed.
    BadBody(String),
}

impl Conn<'_> {
    async fn one_request(&mut self) -> Next {
        let cfg = self.svc.cfg();
        let hash = (cfg.algorithm == Algorithm::ConsistentHash).then_some(&cfg.hash_key);
        // The head: in the buffer already (pipelined), or read now.
        let head = loop {
            if !self.cbuf.is_empty() {
                match parse_request(
                    self.cbuf.filled(),
                    self.client_addr.as_ref(),
                    hash,
                    &mut self.key,
                    &mut self.out,
                ) {
                    Ok(Some(h)) => break h,
                    Ok(None) if self.cbuf.len() >= HEAD_LIMIT => {
                        // Not even the request line ended: its target is
                        // too long (RFC 9112 3); else the fields are.
                        let line_ended = self.cbuf.filled().contains(&b'\n');
                        return self.reject(if line_ended { 431 } else { 414 }).await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        debug!(service = %self.svc.name, "bad request: {e}");
                        return self.reject(e.status()).await;
                    }
                }
            }
            let idle = self.cbuf.is_empty();
            if idle && *self.shutdown.borrow() {
                return Next::Close;
            }
            let wait = if idle {
                cfg.idle_timeout
            } else {
                cfg.request_timeout
            };
            let read = io::read(&mut self.client, &mut self.cbuf, &mut self.head_timer, wait);
            let r = if idle {
                tokio::select! {
                    biased;
                    r = read => r,
                    _ = self.shutdown_signal.as_mut() => return Next::Close,
                }
            } else {
                read.await
            };
            match r {
                Ok(0) | Err(_) => return Next::Close,
                Ok(_) => {}
            }
        };
        if head.connect {
            return self.reject(405).await;
        }
        let _inflight = crate::inflight();
        let start = Instant::now();
        self.cbuf.consume(head.len);
        let o = self.proxy(&cfg, &head).await;
        let m = &self.svc.metrics;
        m.response(o.status);
        if o.error {
            m.error(ErrorKind::Proxy);
        }
        m.latency.observe(start.elapsed());
        if o.keep && !*self.shutdown.borrow() {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// Answer a request we could not parse (or will not proxy), and close.
    async fn reject(&mut self, status: u16) -> Next {
        self.svc.metrics.response(status);
        if self.local_response(status, false).await.is_ok() {
            self.linger().await;
        }
        Next::Close
    }

    /// Before closing on a request we did not read to its end: read and
    /// drop what the client still sends (briefly), so that the close does
    /// not reset the connection before the client has read our answer.
    async fn linger(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.client).await;
        let until = Instant::now() + Duration::from_secs(1);
        let mut drained = 0;
        while drained < 1 << 20 {
            self.cbuf.clear();
            let left = until.saturating_duration_since(Instant::now());
            match io::read(&mut self.client, &mut self.cbuf, &mut self.timer, left).await {
                Ok(n) if n > 0 => drained += n,
                _ => return,
            }
        }
    }

    async fn local_response(&mut self, status: u16, keep: bool) -> Result<(), IoFail> {
        self.out.clear();
        head::local_response(&mut self.out, status, keep);
        io::write_all(
            &mut self.client,
            &self.out,
            &mut self.timer,
            Duration::from_secs(5),
        )
        .await
    }

    /// Pick members and run the exchange, with retries; answer 502/503
    /// ourselves when no member can.
    async fn proxy(&mut self, cfg: &ServiceConfig, head: &ReqHead) -> Outcome {
        let svc = Arc::clone(self.svc);
        let req_head_len = self.out.len();
        // Without a body the request can be sent again as long as no
        // response byte came back.
        let resendable = head.idempotent && head.body == Body::None;
        let no_body_left = head.body == Body::None;
        self.tried.clear();
        let mut connect_failures = 0u32;
        let mut resends = 0u32;
        'members: loop {
            let Some(m) = svc.pool.select(cfg.algorithm, &self.key, &self.tried) else {
                if self.tried.is_empty() {
                    svc.metrics.error(ErrorKind::NoBackend);
                    debug!(service = %svc.name, "no members");
                    let keep = no_body_left && head.keep_alive;
                    return match self.local_response(503, keep).await {
                        Ok(()) => Outcome {
                            status: 503,
                            error: false,
                            keep,
                        },
                        Err(_) => Outcome::local(0, false),
                    };
                }
                return self.bad_gateway(no_body_left && head.keep_alive).await;
            };
            self.tried.push(m.addr);
            let _guard = m.track();
            let mut fresh_only = false;
            loop {
                let pooled = if fresh_only {
                    None
                } else {
                    m.take_idle(cfg.idle_timeout)
                };
                let reused = pooled.is_some();
                let (mut up, reg) = match pooled {
                    Some(p) => p,
                    None => match connect(&m, cfg).await {
                        Ok(c) => c,
                        Err(e) => {
                            svc.metrics.error(ErrorKind::Connect);
                            if svc.pool.eject(&m) == Transition::Down {
                                warn!(service = %svc.name, member = %m.name, addr = %m.addr, "connect failed, member out of rotation: {e}");
                            }
                            connect_failures += 1;
                            if connect_failures <= cfg.retries {
                                svc.metrics.retries.fetch_add(1, Relaxed);
                                debug!(service = %svc.name, member = %m.name, "connect failed, retrying another member: {e}");
                                continue 'members;
                            }
                            return self.bad_gateway(no_body_left && head.keep_alive).await;
                        }
                    },
                };
                self.out.truncate(req_head_len);
                self.ubuf.clear();
                match self.exchange(&mut up, cfg, head).await {
                    Ok((o, reusable)) => {
                        if reusable {
                            m.put_idle(up, reg, cfg.idle_timeout);
                        }
                        return o;
                    }
                    Err(Fail::BeforeResponse {
                        body_sent,
                        partial,
                        why,
                    }) => {
                        drop(reg);
                        if resendable && !body_sent && !partial {
                            if reused && !m.is_gone() {
                                // The member had closed the pooled
                                // connection: the same member, on a new one.
                                svc.metrics.retries.fetch_add(1, Relaxed);
                                debug!(service = %svc.name, member = %m.name, "pooled connection failed, re-sending on a new one: {why}");
                                fresh_only = true;
                                continue;
                            }
                            if resends < cfg.retries {
                                // The member failed after taking the request
                                // (it died, or its network vanished): an
                                // idempotent request goes to another one.
                                resends += 1;
                                svc.metrics.retries.fetch_add(1, Relaxed);
                                debug!(service = %svc.name, member = %m.name, "member failed mid-request, re-sending: {why}");
                                continue 'members;
                            }
                        }
                        debug!(service = %svc.name, member = %m.name, "member failed: {why}");
                        let keep = !body_sent && no_body_left && head.keep_alive;
                        return self.bad_gateway(keep).await;
                    }
                    Err(Fail::BadBody(why)) => {
                        debug!(service = %svc.name, "bad request body: {why}");
                        let _ = self.local_response(400, false).await;
                        return Outcome::local(400, false);
                    }
                    Err(Fail::Late) => {
                        return Outcome {
                            status: 0,
                            error: true,
                            keep: false,
                        };
                    }
                }
            }
        }
    }

    async fn bad_gateway(&mut self, keep: bool) -> Outcome {
        match self.local_response(502, keep).await {
            Ok(()) => Outcome::local(502, keep),
            Err(_) => Outcome::local(0, false),
        }
    }

    /// Send the request on `up` and the response back. Ok: the outcome,
    /// and whether `up` can carry another request.
    async fn exchange(
        &mut self,
        up: &mut TcpStream,
        cfg: &ServiceConfig,
        head: &ReqHead,
    ) -> Result<(Outcome, bool), Fail> {
        let rt = cfg.request_timeout;
        let mut body_sent = false;
        // What of the body is buffered already goes with the head.
        let mut body = match head.body {
            Body::None => None,
            Body::Length(n) => Some(BodyCopy::Length(n)),
            Body::Chunked => Some(BodyCopy::Chunked(Chunked::default())),
        };
        let before = |why: String, body_sent| Fail::BeforeResponse {
            body_sent,
            partial: false,
            why,
        };
        let waits_for_continue = head.expect_continue && body.is_some();
        if let Some(b) = &mut body
            && !waits_for_continue
            && !self.cbuf.is_empty()
        {
            body_sent = true;
            if b.stage(&mut self.cbuf, &mut self.out)
                .map_err(Fail::BadBody)?
            {
                body = None;
            }
        }
        io::write_all(up, &self.out, &mut self.timer, rt)
            .await
            .map_err(|e| before(e.to_string(), body_sent))?;
        // The body waits for the member's 100 Continue (or a final answer,
        // then it is never sent).
        let mut early: Option<RespHead> = None;
        // Some response head came: `out` no longer holds the request, so
        // the request cannot be sent again.
        let mut answered = false;
        if waits_for_continue {
            loop {
                match self.read_response_head(up, head, CONTINUE_WAIT).await {
                    Ok(r) if r.status == 100 => {
                        answered = true;
                        self.forward_interim(r.len, head, rt).await?;
                        break;
                    }
                    Ok(r) if r.is_interim() => {
                        answered = true;
                        self.forward_interim(r.len, head, rt).await?;
                    }
                    Ok(r) => {
                        early = Some(r);
                        break;
                    }
                    Err(IoFail::TimedOut) if self.ubuf.is_empty() => break,
                    Err(e) => {
                        return Err(Fail::BeforeResponse {
                            body_sent: false,
                            partial: answered || !self.ubuf.is_empty(),
                            why: e.to_string(),
                        });
                    }
                }
            }
        }
        if early.is_none()
            && let Some(b) = body.take()
        {
            body_sent = true;
            self.send_body(up, b, rt).await?;
        }
        // The response head; interim 1xx answers are passed on.
        let resp = loop {
            let r = match early.take() {
                Some(r) => r,
                None => self.read_response_head(up, head, rt).await.map_err(|e| {
                    Fail::BeforeResponse {
                        body_sent,
                        partial: answered || !self.ubuf.is_empty(),
                        why: e.to_string(),
                    }
                })?,
            };
            if r.is_interim() {
                answered = true;
                self.forward_interim(r.len, head, rt).await?;
                continue;
            }
            break r;
        };
        // The client's head is in self.out now (written by parse_response).
        // A body that waited for 100 Continue and got a final answer
        // instead was never read: the connection cannot carry another
        // request.
        let client_keep =
            head.keep_alive && body.is_none() && resp.client_keep && !*self.shutdown.borrow();
        head::finish_response_head(&mut self.out, head, &resp, client_keep);
        self.ubuf.consume(resp.len);
        if resp.status == 101 {
            self.splice(up).await;
            return Ok((
                Outcome {
                    status: 101,
                    error: false,
                    keep: false,
                },
                false,
            ));
        }
        let copy = match resp.body {
            Body::None => None,
            Body::Length(n) => Some(BodyCopy::Length(n)),
            Body::Chunked => Some(BodyCopy::Chunked(Chunked::dechunking(head.http10))),
        };
        let status = resp.status;
        let ok = self.send_response(up, copy, resp.until_close, rt).await;
        let reusable = ok && resp.upstream_keep && self.ubuf.is_empty();
        Ok((
            Outcome {
                status,
                error: !ok,
                keep: ok && client_keep,
            },
            reusable,
        ))
    }

    /// Pass an interim (1xx) response head on to an HTTP/1.1 client.
    async fn forward_interim(
        &mut self,
        len: usize,
        head: &ReqHead,
        rt: Duration,
    ) -> Result<(), Fail> {
        if !head.http10 {
            self.out.clear();
            self.out.extend_from_slice(&self.ubuf.filled()[..len]);
            io::write_all(&mut self.client, &self.out, &mut self.timer, rt)
                .await
                .map_err(|_| Fail::Late)?;
        }
        self.ubuf.consume(len);
        Ok(())
    }

    /// Read until a whole response head is in `ubuf`, and parse it
    /// (writing the client's version of it into `out`).
    async fn read_response_head(
        &mut self,
        up: &mut TcpStream,
        head: &ReqHead,
        wait: Duration,
    ) -> Result<RespHead, IoFail> {
        loop {
            if !self.ubuf.is_empty() {
                match parse_response(self.ubuf.filled(), head, &mut self.out) {
                    Ok(Some(r)) => return Ok(r),
                    Ok(None) if self.ubuf.len() >= HEAD_LIMIT => {
                        return Err(IoFail::Bad("response head too large".into()));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(IoFail::Bad(format!("bad response: {e}"))),
                }
            }
            match io::read(up, &mut self.ubuf, &mut self.timer, wait).await? {
                0 => return Err(IoFail::Eof),
                _ => continue,
            }
        }
    }

    /// Stream the rest of the request body from the client to the member.
    async fn send_body(
        &mut self,
        up: &mut TcpStream,
        mut b: BodyCopy,
        rt: Duration,
    ) -> Result<(), Fail> {
        loop {
            self.out.clear();
            let done = b
                .stage(&mut self.cbuf, &mut self.out)
                .map_err(Fail::BadBody)?;
            if !self.out.is_empty() {
                io::write_all(up, &self.out, &mut self.timer, rt)
                    .await
                    .map_err(|e| Fail::BeforeResponse {
                        body_sent: true,
                        partial: false,
                        why: e.to_string(),
                    })?;
            }
            if done {
                return Ok(());
            }
            match io::read(&mut self.client, &mut self.cbuf, &mut self.timer, rt).await {
                Ok(0) | Err(_) => return Err(Fail::Late),
                Ok(_) => {}
            }
        }
    }

    /// Send the head in `out` and the response body to the client.
    /// Returns whether the whole response went through.
    async fn send_response(
        &mut self,
        up: &mut TcpStream,
        mut body: Option<BodyCopy>,
        until_close: bool,
        rt: Duration,
    ) -> bool {
        loop {
            let done = match &mut body {
                None if !until_close => true,
                None => {
                    let data = self.ubuf.filled();
                    self.out.extend_from_slice(data);
                    let n = data.len();
                    self.ubuf.consume(n);
                    false
                }
                Some(b) => match b.stage(&mut self.ubuf, &mut self.out) {
                    Ok(d) => d,
                    Err(why) => {
                        debug!(service = %self.svc.name, "bad response body: {why}");
                        return false;
                    }
                },
            };
            if !self.out.is_empty() {
                if io::write_all(&mut self.client, &self.out, &mut self.timer, rt)
                    .await
                    .is_err()
                {
                    return false;
                }
                self.out.clear();
            }
            if done {
                return true;
            }
            match io::read(up, &mut self.ubuf, &mut self.timer, rt).await {
                Ok(0) => return until_close,
                Ok(_) => {}
                Err(e) => {
                    debug!(service = %self.svc.name, "member failed mid-response: {e}");
                    return false;
                }
            }
        }
    }

    /// After a 101: the head in `out`, then bytes both ways until either
    /// side is done.
    async fn splice(&mut self, up: &mut TcpStream) {
        let rest = self.ubuf.filled();
        self.out.extend_from_slice(rest);
        let n = rest.len();
        self.ubuf.consume(n);
        let t = Duration::from_secs(30);
        if io::write_all(&mut self.client, &self.out, &mut self.timer, t)
            .await
            .is_err()
        {
            return;
        }
        if !self.cbuf.is_empty() {
            let pending = self.cbuf.filled().to_vec();
            self.cbuf.clear();
            if io::write_all(up, &pending, &mut self.timer, t)
                .await
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut self.client, up).await {
            debug!(service = %self.svc.name, "upgraded connection ended: {e}");
        }
    }
}

/// How much of a body is still to come, by its framing.
enum BodyCopy {
    Length(u64),
    Chunked(Chunked),
}

impl BodyCopy {
    /// Move what `buf` holds of the body into `out` (framed for the other
    /// side); true when the body is complete.
    fn stage(&mut self, buf: &mut Buf, out: &mut Vec<u8>) -> Result<bool, String> {
        match self {
            BodyCopy::Length(rest) => {
                let data = buf.filled();
                let n = (data.len() as u64).min(*rest) as usize;
                out.extend_from_slice(&data[..n]);
                buf.consume(n);
                *rest -= n as u64;
                Ok(*rest == 0)
            }
            BodyCopy::Chunked(c) => {
                let (n, done) = c.feed(buf.filled(), out).map_err(|e| e.to_string())?;
                buf.consume(n);
                Ok(done)
            }
        }
    }
}

/// A new connection to `m`, registered with it for its lifetime so it can
/// be cut if the member vanishes.
async fn connect(
    m: &Arc<Member>,
    cfg: &ServiceConfig,
) -> Result<(TcpStream, Option<Registration>), String> {
    let s = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(m.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {:?}", cfg.connect_timeout)),
    };
    let _ = s.set_nodelay(true);
    crate::tcp::set_dead_peer_timeout(&s, cfg.dead_peer_timeout);
    let reg = {
        use std::os::fd::AsRawFd;
        m.register(s.as_raw_fd())
    };
    Ok((s, reg))
}
