//! HTTP mode with h2c: pingora's proxy (it brings the HTTP/2 server) with
//! our member selection, forwarding headers, retries on failed connects and
//! passive ejection. Without h2c, [`crate::h1`] serves HTTP mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use async_trait::async_trait;
use pingora_core::protocols::l4::ext::TcpKeepalive;
use pingora_core::protocols::l4::socket::SocketAddr as PSocketAddr;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{ProxyHttp, ProxyWarnLogContext, Session};
use tracing::{debug, warn};

use crate::config::{Algorithm, HashKey, ServiceConfig};
use crate::metrics::ErrorKind;
use crate::pool::{ActiveGuard, Registration, Transition};
use crate::service::ServiceState;

pub struct HttpLb {
    svc: Arc<ServiceState>,
}

impl HttpLb {
    pub fn new(svc: Arc<ServiceState>) -> HttpLb {
        HttpLb { svc }
    }
}

pub struct Ctx {
    start: Instant,
    cfg: Arc<ServiceConfig>,
    guard: Option<ActiveGuard>,
    /// The member connection, while its response is awaited.
    reg: Option<Registration>,
    tried: Vec<SocketAddr>,
    connect_failures: u32,
    /// Requests re-sent after the member failed mid-request.
    resends: u32,
    /// A response header came from a member: never re-send after this.
    responded: bool,
    no_backend: bool,
    _inflight: crate::Inflight,
}

fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    match session.client_addr()? {
        // An IPv4 client of a dual-stack `[::]` listener is IPv4.
        PSocketAddr::Inet(a) => Some(a.ip().to_canonical()),
        _ => None,
    }
}

fn hash_key(session: &Session, key: &HashKey) -> Vec<u8> {
    let by_ip = || {
        client_ip(session)
            .map(|ip| ip.to_string().into_bytes())
            .unwrap_or_default()
    };
    match key {
        HashKey::ClientIp => by_ip(),
        HashKey::Path => session.req_header().uri.path().as_bytes().to_vec(),
        HashKey::Header(h) => match session.req_header().headers.get(h.as_str()) {
            Some(v) => v.as_bytes().to_vec(),
            None => by_ip(),
        },
    }
}

/// `for=` value of a Forwarded element (RFC 7239): IPv6 quoted in brackets.
fn forwarded_node(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// Add X-Forwarded-For/-Proto/-Host and Forwarded to a request to a member.
pub fn add_forwarding_headers(
    req: &mut RequestHeader,
    client: Option<std::net::IpAddr>,
) -> Result<()> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()));
    if let Some(ip) = client {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
        let mut el = format!("for={};proto=http", forwarded_node(ip));
        if let Some(h) = &host
            && h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            el.push_str(&format!(";host=\"{h}\""));
        }
        let fwd = match req.headers.get("forwarded").and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {el}"),
            _ => el,
        };
        req.insert_header("forwarded", fwd)?;
    }
    if !req.headers.contains_key("x-forwarded-proto") {
        req.insert_header("x-forwarded-proto", "http")?;
    }
    if let Some(h) = host
        && !req.headers.contains_key("x-forwarded-host")
    {
        req.insert_header("x-forwarded-host", h)?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for HttpLb {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            cfg: self.svc.cfg(),
            guard: None,
            reg: None,
            tried: Vec::new(),
            connect_failures: 0,
            resends: 0,
            responded: false,
            no_backend: false,
            _inflight: crate::inflight(),
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let cfg = Arc::clone(&ctx.cfg);
        let key = if cfg.algorithm == Algorithm::ConsistentHash {
            hash_key(session, &cfg.hash_key)
        } else {
            Vec::new()
        };
        let Some(m) = self.svc.pool.select(cfg.algorithm, &key, &ctx.tried) else {
            if ctx.tried.is_empty() {
                ctx.no_backend = true;
                self.svc.metrics.error(ErrorKind::NoBackend);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    format!("service {}: no members", self.svc.name),
                ));
            }
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                format!("service {}: every member failed", self.svc.name),
            ));
        };
        ctx.tried.push(m.addr);
        ctx.guard = Some(m.track());
        let mut peer = HttpPeer::new(m.addr, false, String::new());
        peer.options.connection_timeout = Some(cfg.connect_timeout);
        peer.options.read_timeout = Some(cfg.request_timeout);
        peer.options.write_timeout = Some(cfg.request_timeout);
        peer.options.idle_timeout = Some(cfg.idle_timeout);
        peer.options.tcp_keepalive = Some(dead_peer_keepalive(cfg.dead_peer_timeout));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        add_forwarding_headers(req, client_ip(session))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.reg = ctx.guard.as_ref().and_then(|g| g.member().register(fd));
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut pingora_http::ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.responded = true;
        ctx.reg = None;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        _resp: &mut pingora_http::ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Idle client connections close after idle_timeout (pingora's
        // default keeps them forever).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(ctx.cfg.idle_timeout.as_secs().max(1)));
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.svc.metrics.error(ErrorKind::Connect);
        ctx.reg = None;
        if let Some(g) = ctx.guard.take()
            && self.svc.pool.eject(g.member()) == Transition::Down
        {
            warn!(service = %self.svc.name, member = %g.member().name, addr = %g.member().addr, "connect failed, member out of rotation: {e}");
        }
        ctx.connect_failures += 1;
        // Nothing reached the member: any method can go elsewhere.
        if ctx.connect_failures <= ctx.cfg.retries {
            self.svc.metrics.retries.fetch_add(1, Relaxed);
            debug!(service = %self.svc.name, %peer, "connect failed, retrying another member: {e}");
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        ctx.reg = None;
        let mut e = e.more_context(format!("Peer: {peer}"));
        let resendable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && !ctx.responded
            && session.response_written().is_none();
        if !resendable {
            e.set_retry(false);
        } else if client_reused {
            // A pooled connection the member had closed: pingora's own case.
            e.retry.decide_reuse(true);
        } else {
            // The member failed after taking the request (it died, or its
            // network vanished and the dead-peer timeout fired): an
            // idempotent request without a response yet goes to another one.
            e.set_retry(ctx.resends < ctx.cfg.retries);
        }
        if e.retry() {
            ctx.resends += 1;
            self.svc.metrics.retries.fetch_add(1, Relaxed);
            debug!(service = %self.svc.name, %peer, "member failed mid-request, re-sending: {e}");
        }
        e
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        _error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        // Retries are counted in netd_lb_retries_total.
        true
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, error: &Error) -> bool {
        // Clients going away and "no members" are not our errors to shout about.
        ctx.no_backend || *error.esource() == ErrorSource::Downstream
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let m = &self.svc.metrics;
        m.response(status);
        if e.is_some() && !ctx.no_backend {
            m.error(ErrorKind::Proxy);
        }
        m.latency.observe(ctx.start.elapsed());
        ctx.reg = None;
        ctx.guard = None;
    }
}

/// TCP keep-alive probes after 1 s idle, and TCP_USER_TIMEOUT: a member
/// that stops acknowledging (its sandbox was removed mid-request) fails the
/// connection after `dead` instead of hanging until the request timeout.
pub fn dead_peer_keepalive(dead: std::time::Duration) -> TcpKeepalive {
    let secs = dead.as_secs().max(1);
    TcpKeepalive {
        idle: std::time::Duration::from_secs(1),
        interval: std::time::Duration::from_secs(1),
        count: secs as usize,
        user_timeout: dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers() {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        r.insert_header("host", "web.example").unwrap();
        add_forwarding_headers(&mut r, Some("10.0.0.9".parse().unwrap())).unwrap();
        assert_eq!(r.headers["x-forwarded-for"], "10.0.0.9");
        assert_eq!(
            r.headers["forwarded"],
            "for=10.0.0.9;proto=http;host=\"web.example\""
        );
        assert_eq!(r.headers["x-forwarded-proto"], "http");
        assert_eq!(r.headers["x-forwarded-host"], "web.example");

        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("x-forwarded-for", "1.2.3.4").unwrap();
        r.insert_header("forwarded", "for=1.2.3.4").unwrap();
        add_forwarding_headers(&mut r, Some("::1".parse().unwrap())).unwrap();
        assert_eq!(r.headers["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(
            r.headers["forwarded"],
            "for=1.2.3.4, for=\"[::1]\";proto=http"
        );
    }
}
