//! TCP mode: a plain stream proxy. pingora accepts (so listeners, threads
//! and shutdown are shared with HTTP services); the rest is tokio.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::metrics::ErrorKind;
use crate::pool::Transition;
use crate::service::ServiceState;

pub struct TcpLb {
    svc: Arc<ServiceState>,
}

impl TcpLb {
    pub fn new(svc: Arc<ServiceState>) -> TcpLb {
        TcpLb { svc }
    }
}

#[async_trait]
impl ServerApp for TcpLb {
    async fn process_new(
        self: &Arc<Self>,
        client: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _inflight = crate::inflight();
        let start = Instant::now();
        let svc = &self.svc;
        let cfg = svc.cfg();
        svc.metrics.connections.fetch_add(1, Relaxed);
        let key = client
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())))
            // An IPv4 client of a dual-stack `[::]` listener hashes as IPv4.
            .map(|ip| ip.to_canonical().to_string().into_bytes())
            .unwrap_or_default();
        let mut tried = Vec::new();
        let (guard, upstream) = loop {
            let Some(m) = svc.pool.select(cfg.algorithm, &key, &tried) else {
                svc.metrics.error(if tried.is_empty() {
                    ErrorKind::NoBackend
                } else {
                    ErrorKind::Proxy
                });
                debug!(service = %svc.name, "no member to connect to");
                return None;
            };
            tried.push(m.addr);
            let guard = m.track();
            match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(m.addr)).await {
                Ok(Ok(s)) => break (guard, s),
                r => {
                    let e = match r {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", cfg.connect_timeout),
                    };
                    svc.metrics.error(ErrorKind::Connect);
                    if svc.pool.eject(&m) == Transition::Down {
                        warn!(service = %svc.name, member = %m.name, addr = %m.addr, "connect failed, member out of rotation: {e}");
                    }
                    if tried.len() as u32 > cfg.retries {
                        svc.metrics.error(ErrorKind::Proxy);
                        return None;
                    }
                    svc.metrics.retries.fetch_add(1, Relaxed);
                }
            }
        };
        let _ = upstream.set_nodelay(true);
        set_dead_peer_timeout(&upstream, cfg.dead_peer_timeout);
        let _reg = {
            use std::os::fd::AsRawFd;
            guard.member().register(upstream.as_raw_fd())
        };
        if let Err(e) = pipe(client, upstream, cfg.idle_timeout, svc).await {
            debug!(service = %svc.name, member = %guard.member().name, "stream ended: {e}");
        }
        drop(guard);
        svc.metrics.latency.observe(start.elapsed());
        None
    }
}

/// Keep-alive probes after 1 s idle and TCP_USER_TIMEOUT, so a member
/// whose network vanished ends the stream instead of leaving it hanging.
pub(crate) fn set_dead_peer_timeout(s: &TcpStream, dead: Duration) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let set = |level: libc::c_int, opt: libc::c_int, val: libc::c_int| {
        // SAFETY: setsockopt with a c_int value on a socket we own.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    let secs = dead.as_secs().clamp(1, 3600) as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, secs);
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, secs * 1000);
}

/// Copy both ways until both sides are done (half-closes passed on), one
/// side fails, or nothing moved for `idle`.
async fn pipe(
    client: Stream,
    upstream: TcpStream,
    idle: Duration,
    svc: &ServiceState,
) -> std::io::Result<()> {
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = upstream.into_split();
    let up = copy(&mut cr, &mut uw, &last, epoch, &svc.metrics.bytes_in);
    let down = copy(&mut ur, &mut cw, &last, epoch, &svc.metrics.bytes_out);
    let watchdog = async {
        let step = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(step).await;
            let quiet = epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Relaxed)));
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(up, down) } => r.map(|_| ()),
        _ = watchdog => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout")),
    }
}

async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    last: &AtomicU64,
    epoch: Instant,
    bytes: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction may go on.
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        last.store(epoch.elapsed().as_millis() as u64, Relaxed);
        bytes.fetch_add(n as u64, Relaxed);
    }
}
