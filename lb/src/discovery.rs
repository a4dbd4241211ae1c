//! Where members come from: the netd API (listed, then followed through
//! `/netd/events`), or periodic DNS A lookups of the alias.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};

use crate::config::{Discover, ServiceConfig};
use crate::service::ServiceState;

/// Re-list this often even without events, in case some were missed.
const RESYNC: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Events closer together than this are applied with one re-list...
const COALESCE: Duration = Duration::from_millis(20);
/// ...for at most this long.
const COALESCE_MAX: Duration = Duration::from_millis(200);

pub async fn run(svc: Arc<ServiceState>, cfg: Arc<ServiceConfig>) {
    match cfg.discover {
        Discover::Api => run_api(&svc, &cfg).await,
        Discover::Dns => run_dns(&svc, &cfg).await,
    }
}

// ---- netd API -------------------------------------------------------------

/// The part of an endpoint we need
/// (`GET /netd/networks/{network}/members/{alias}`).
#[derive(Debug, Deserialize)]
pub struct ApiEndpoint {
    pub sandbox_name: String,
    pub ip: Ipv4Addr,
}

/// Members as (name, address:port), in address order. Which endpoints are
/// members is netd's answer: the same rule as its DNS (alias, sandbox
/// name, NAME.NETWORK, short id, any case).
pub fn member_addrs(eps: &[ApiEndpoint], port: u16) -> Vec<(String, SocketAddr)> {
    let mut v: Vec<(String, SocketAddr)> = eps
        .iter()
        .map(|e| (e.sandbox_name.clone(), SocketAddr::from((e.ip, port))))
        .collect();
    v.sort_by_key(|(_, a)| *a);
    v
}

/// A minimal HTTP/1.1 client over netd's Unix socket.
struct ApiConn {
    stream: UnixStream,
    buf: Vec<u8>,
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ApiConn {
    async fn get(socket: &Path, path: &str) -> Result<(ApiConn, u16, Option<usize>, bool)> {
        let mut stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connect to netd at {}", socket.display()))?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: netd\r\nUser-Agent: netd-lb\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut c = ApiConn {
            stream,
            buf: Vec::with_capacity(8192),
        };
        let head_end = loop {
            if let Some(i) = find(&c.buf, b"\r\n\r\n") {
                break i;
            }
            if c.buf.len() > 64 * 1024 {
                bail!("response header too long");
            }
            if c.fill().await? == 0 {
                bail!("netd closed the connection before answering");
            }
        };
        let head = String::from_utf8_lossy(&c.buf[..head_end]).into_owned();
        c.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("malformed status line from netd")?;
        let mut len = None;
        let mut chunked = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    len = v.parse().ok();
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        Ok((c, status, len, chunked))
    }

    async fn fill(&mut self) -> Result<usize> {
        let mut tmp = [0u8; 8192];
        let n = self.stream.read(&mut tmp).await?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// The next chunk of a chunked body; `None` after the last one.
    /// Cancel-safe: the buffer changes only once a whole chunk is in.
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let size_text = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .with_context(|| format!("bad chunk size {size_text:?}"))?;
                let total = i + 2 + size + 2;
                if self.buf.len() >= total {
                    let data = self.buf[i + 2..i + 2 + size].to_vec();
                    self.buf.drain(..total);
                    return Ok((size > 0).then_some(data));
                }
            }
            if self.fill().await? == 0 {
                bail!("the stream ended inside a chunk");
            }
        }
    }

    async fn body(&mut self, len: Option<usize>, chunked: bool) -> Result<Vec<u8>> {
        if chunked {
            let mut out = Vec::new();
            while let Some(c) = self.chunk().await? {
                out.extend_from_slice(&c);
            }
            return Ok(out);
        }
        match len {
            Some(n) => {
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        bail!("body shorter than its Content-Length");
                    }
                }
                Ok(self.buf[..n].to_vec())
            }
            None => {
                while self.fill().await? > 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The members of `alias` on `network`; `None` when netd does not know
/// the network.
pub async fn list_members(
    socket: &Path,
    network: &str,
    alias: &str,
) -> Result<Option<Vec<ApiEndpoint>>> {
    let path = format!(
        "/netd/networks/{}/members/{}",
        percent_encode(network),
        percent_encode(alias)
    );
    let fut = async {
        let (mut c, status, len, chunked) = ApiConn::get(socket, &path).await?;
        let body = c.body(len, chunked).await?;
        match status {
            200 => Ok(Some(
                serde_json::from_slice(&body).context("parse members from netd")?,
            )),
            404 => Ok(None),
            s => bail!(
                "netd answered {s} for {path}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
        }
    };
    tokio::time::timeout(API_TIMEOUT, fut)
        .await
        .context("netd did not answer in time")?
}

/// `GET /netd/events`, read line by line.
struct Events {
    conn: ApiConn,
    pending: Vec<u8>,
}

impl Events {
    async fn open(socket: &Path) -> Result<Events> {
        let (conn, status, _, chunked) =
            tokio::time::timeout(API_TIMEOUT, ApiConn::get(socket, "/netd/events"))
                .await
                .context("netd did not answer in time")??;
        if status != 200 {
            bail!("netd answered {status} for /netd/events");
        }
        if !chunked {
            bail!("netd's event stream is not chunked");
        }
        Ok(Events {
            conn,
            pending: Vec::new(),
        })
    }

    /// The next event line; `None` when the stream ends.
    async fn next(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(line));
            }
            match self.conn.chunk().await? {
                Some(c) => self.pending.extend_from_slice(&c),
                None => return Ok(None),
            }
        }
    }
}

async fn relist(svc: &ServiceState, cfg: &ServiceConfig) -> Result<()> {
    let network = cfg.network.as_deref().unwrap_or_default();
    let list = match list_members(&cfg.socket, network, &cfg.alias).await? {
        Some(eps) => member_addrs(&eps, cfg.port),
        None => {
            if svc.pool.members().is_empty() && !svc.pool.discovered() {
                warn!(service = %svc.name, network, "netd has no such network (yet)");
            }
            Vec::new()
        }
    };
    svc.apply_members(&list);
    Ok(())
}

async fn run_api(svc: &ServiceState, cfg: &ServiceConfig) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        // Subscribe first, then list: a change between the two is not lost.
        let res = async {
            let ev = Events::open(&cfg.socket).await?;
            relist(svc, cfg).await?;
            Ok::<_, anyhow::Error>(ev)
        }
        .await;
        let mut events = match res {
            Ok(ev) => ev,
            Err(e) => {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                if !failing {
                    warn!(service = %svc.name, "netd API: {e:#}; keeping the {} known members, retrying", svc.pool.members().len());
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if failing {
            info!(service = %svc.name, "netd API reachable again");
            failing = false;
        }
        backoff = Duration::from_millis(100);
        loop {
            match tokio::time::timeout(RESYNC, events.next()).await {
                // Quiet for a while: re-list anyway.
                Err(_) => {}
                Ok(Ok(Some(line))) => {
                    debug!(service = %svc.name, event = %line, "netd event");
                    // A burst (a sandbox on several networks, a compose
                    // project starting) costs one re-list, not one each.
                    let until = tokio::time::Instant::now() + COALESCE_MAX;
                    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(
                        until.min(tokio::time::Instant::now() + COALESCE),
                        events.next(),
                    )
                    .await
                    {
                        debug!(service = %svc.name, event = %line, "netd event");
                    }
                }
                Ok(Ok(None)) => {
                    warn!(service = %svc.name, "netd event stream ended; reconnecting");
                    break;
                }
                Ok(Err(e)) => {
                    warn!(service = %svc.name, "netd event stream: {e:#}; reconnecting");
                    break;
                }
            }
            if let Err(e) = relist(svc, cfg).await {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                warn!(service = %svc.name, "list members: {e:#}; reconnecting");
                break;
            }
        }
    }
}

// ---- DNS ------------------------------------------------------------------

async fn run_dns(svc: &ServiceState, cfg: &ServiceConfig) {
    let Some(server) = cfg.dns_server else {
        warn!(service = %svc.name, "DNS discovery without a DNS server");
        return;
    };
    let mut failing = false;
    loop {
        match crate::dns::lookup_a(server, &cfg.alias, Duration::from_secs(2)).await {
            Ok(ips) => {
                if failing {
                    info!(service = %svc.name, %server, "DNS answers again");
                    failing = false;
                }
                let list: Vec<(String, SocketAddr)> = ips
                    .into_iter()
                    .map(|ip| (ip.to_string(), SocketAddr::from((ip, cfg.port))))
                    .collect();
                svc.apply_members(&list);
            }
            Err(e) => {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                if !failing {
                    warn!(service = %svc.name, %server, "DNS lookup of {:?}: {e:#}; keeping the known members", cfg.alias);
                    failing = true;
                }
            }
        }
        tokio::time::sleep(cfg.dns_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_address_order() {
        let eps: Vec<ApiEndpoint> = serde_json::from_str(
            r#"[
            {"sandbox_name":"a","ip":"10.0.0.3","aliases":["web"],"network_name":"n"},
            {"sandbox_name":"web","ip":"10.0.0.4","aliases":[]},
            {"sandbox_name":"c","ip":"10.0.0.2","aliases":["db","web"]}
        ]"#,
        )
        .unwrap();
        let m = member_addrs(&eps, 80);
        let names: Vec<_> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "a", "web"]);
        assert_eq!(m[0].1, "10.0.0.2:80".parse().unwrap());
    }

    #[tokio::test]
    async fn chunked_event_lines_split_anywhere() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut ev = Events {
            conn: ApiConn {
                stream: a,
                buf: Vec::new(),
            },
            pending: Vec::new(),
        };
        let body: &[u8] = b"c\r\n{\"a\":1}\n{\"b\"\r\n4\r\n:2}\n\r\n0\r\n\r\n";
        tokio::spawn(async move {
            for piece in body.chunks(3) {
                b.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // A timeout mid-chunk must not lose data.
        let mut lines = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(1), ev.next()).await {
                Err(_) => continue,
                Ok(Ok(Some(l))) => lines.push(l),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("{e:#}"),
            }
        }
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("my net/x"), "my%20net%2Fx");
    }
}
