//! Active health checks: every interval, each member gets a TCP connect or
//! an HTTP GET; `fall` failures in a row take it out, `rise` successes put
//! it back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::config::{HealthCheck, ServiceConfig};
use crate::pool::Transition;
use crate::service::ServiceState;

/// Without active checks, a member ejected by a failed connect gets
/// another chance after this.
pub const PASSIVE_COOLDOWN: Duration = Duration::from_secs(5);

pub async fn run(svc: Arc<ServiceState>, cfg: Arc<ServiceConfig>) {
    let h = &cfg.health;
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for m in svc.pool.members() {
            m.expire_idle(cfg.idle_timeout);
        }
        if h.check == HealthCheck::None {
            for m in svc.pool.readmit_after(PASSIVE_COOLDOWN) {
                info!(service = %svc.name, member = %m.name, addr = %m.addr, "member back in rotation after its cool-down");
            }
            continue;
        }
        let members = svc.pool.members();
        let mut set = tokio::task::JoinSet::new();
        for m in members {
            let check = h.check.clone();
            let timeout = h.timeout;
            set.spawn(async move {
                let r = probe(m.addr, &check, timeout).await;
                (m, r)
            });
        }
        while let Some(Ok((m, r))) = set.join_next().await {
            match svc.pool.report(&m, r.is_ok(), h.rise, h.fall) {
                Transition::Up => {
                    info!(service = %svc.name, member = %m.name, addr = %m.addr, "member healthy again, back in rotation")
                }
                Transition::Down => {
                    let e = r.err().map(|e| format!("{e:#}")).unwrap_or_default();
                    warn!(service = %svc.name, member = %m.name, addr = %m.addr, "member failed {} health checks, out of rotation: {e}", h.fall)
                }
                Transition::None => {}
            }
        }
    }
}

/// One check of one member.
pub async fn probe(addr: SocketAddr, check: &HealthCheck, timeout: Duration) -> Result<()> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let HealthCheck::Http(path) = check else {
            return Ok(());
        };
        s.set_nodelay(true)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: netd-lb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(256);
        let mut tmp = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < 4096 {
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if !(200..400).contains(&code) {
            bail!(
                "GET {path} answered {:?}",
                line.lines().next().unwrap_or("")
            );
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => bail!("no answer within {timeout:?}"),
    }
}
