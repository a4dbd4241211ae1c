//! `netd daemon`: the HTTP/JSON API on a Unix socket, the start-up
//! reconcile, and clean shutdown.
//!
//! Two families of routes share one dispatcher: Docker Engine API network
//! routes (so `DOCKER_HOST=unix://…` works) and netd's own under `/netd/`.
//! Both call the same [`Netd`] operations.

pub mod dns_host;
pub mod docker;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tracing::{info, warn};

use crate::error::{Error, Kind};
use crate::lock::{self, FileLock};
use crate::model::{EndpointRequest, NetworkCreate, SandboxCreate};
use crate::ops::{Netd, Paths};

pub struct Daemon {
    netd: Arc<Netd>,
    dns: Arc<dns_host::DnsHost>,
}

/// An API failure: status plus Docker's `{"message": …}` body.
struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Invalid => StatusCode::BAD_REQUEST,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "message": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok_json(status: StatusCode, v: impl serde::Serialize) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

/// The largest request body read. Every request is a small JSON object; a
/// bigger one is refused before it is parsed, let alone stored.
pub const MAX_BODY: usize = 1 << 20;

fn body_error(e: axum::Error) -> ApiError {
    let inner = e.into_inner();
    if inner.is::<http_body_util::LengthLimitError>() {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: the limit is {MAX_BODY} bytes"),
        )
    } else {
        bad(format!("cannot read request body: {inner}"))
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// `a=1&b=x%20y` into pairs, percent-decoded.
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return vec![] };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True" | "yes"))
}

/// Docker clients prefix paths with the API version: `/v1.47/networks`.
fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let ver = &rest[..end];
    if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        &rest[end..]
    } else {
        path
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    sandbox: String,
    #[serde(default)]
    endpoint: EndpointRequest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    sandbox: String,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    #[serde(default)]
    filters: Option<Value>,
}

/// The `api_bodies` fuzz target's entry: the first byte picks a route, the
/// rest is its body (or its `filters` parameter), parsed and validated
/// exactly as the route does before it calls an operation. Must never panic.
#[doc(hidden)]
pub fn fuzz_body(bytes: &[u8]) {
    let Some((route, rest)) = bytes.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(rest);
    if body.len() > MAX_BODY {
        return;
    }
    let now = std::time::SystemTime::now();
    match route % 9 {
        0 => {
            if let Ok(r) = parse_body::<docker::CreateRequest>(&body)
                && let Ok(c) = r.into_netd()
            {
                let _ = c.validate();
            }
        }
        1 => {
            if let Ok(r) = parse_body::<docker::ConnectRequest>(&body)
                && let Ok(e) = r.endpoint()
            {
                let _ = e.validate();
            }
        }
        2 => {
            let _ = parse_body::<docker::DisconnectRequest>(&body);
        }
        3 => {
            let raw = String::from_utf8_lossy(rest);
            let _ = docker::Filters::parse(Some(&raw)).and_then(|f| f.prune(now));
            if let Ok(f) = docker::Filters::parse(Some(&raw)) {
                let _ = f.check(&["dangling", "driver", "id", "label", "name", "scope", "type"]);
            }
        }
        4 => {
            if let Ok(r) = parse_body::<NetworkCreate>(&body) {
                let _ = r.validate();
            }
        }
        5 => {
            if let Ok(r) = parse_body::<SandboxCreate>(&body) {
                let _ = r.endpoint.validate();
            }
        }
        6 => {
            if let Ok(r) = parse_body::<ConnectBody>(&body) {
                let _ = r.endpoint.validate();
            }
        }
        7 => {
            let _ = parse_body::<DisconnectBody>(&body);
        }
        _ => {
            if let Ok(r) = parse_body::<PruneBody>(&body) {
                let raw = r.filters.map(|v| v.to_string());
                let _ = docker::Filters::parse(raw.as_deref()).and_then(|f| f.prune(now));
            }
        }
    }
}

impl Daemon {
    async fn dispatch(self: Arc<Self>, req: Request) -> Response {
        let method = req.method().clone();
        let path = strip_version(req.uri().path())
            .trim_end_matches('/')
            .to_string();
        let q = query_pairs(req.uri().query());
        let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
            Ok(b) => b,
            Err(e) => return body_error(e).into_response(),
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let res = self.route(&method, &segs, &q, &body).await;
        let mut resp = res.unwrap_or_else(|e| e.into_response());
        let h = resp.headers_mut();
        h.insert("Api-Version", HeaderValue::from_static(docker::API_VERSION));
        h.insert(
            "Server",
            HeaderValue::from_static(concat!("netd/", env!("CARGO_PKG_VERSION"))),
        );
        h.insert("Ostype", HeaderValue::from_static("linux"));
        resp
    }

    async fn route(
        &self,
        m: &Method,
        segs: &[&str],
        q: &[(String, String)],
        body: &Bytes,
    ) -> ApiResult {
        let n = &self.netd;
        match (m.as_str(), segs) {
            ("GET" | "HEAD", ["_ping"]) => Ok((
                StatusCode::OK,
                [(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")],
                "OK",
            )
                .into_response()),
            ("GET", ["version"]) => ok_json(
                StatusCode::OK,
                json!({
                    "Platform": { "Name": "netd" },
                    "Version": env!("CARGO_PKG_VERSION"),
                    "ApiVersion": docker::API_VERSION,
                    "MinAPIVersion": docker::MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": go_arch(),
                    "Components": [{ "Name": "netd", "Version": env!("CARGO_PKG_VERSION") }],
                }),
            ),
            ("GET", ["info"]) => ok_json(
                StatusCode::OK,
                json!({ "Name": "netd", "ServerVersion": env!("CARGO_PKG_VERSION"), "OSType": "linux" }),
            ),

            // ---- Docker network routes --------------------------------------
            ("GET", ["networks"]) => {
                let f = docker::Filters::parse(query(q, "filters")).map_err(bad)?;
                f.check(&["dangling", "driver", "id", "label", "name", "scope", "type"])
                    .map_err(bad)?;
                let list: Vec<Value> = n
                    .list_networks()?
                    .iter()
                    .filter(|d| f.network_matches(d))
                    .map(|d| docker::network_resource(d, false))
                    .collect();
                ok_json(StatusCode::OK, list)
            }
            ("GET", ["networks", id]) => ok_json(
                StatusCode::OK,
                docker::network_resource(&n.inspect_network(id)?, true),
            ),
            ("POST", ["networks", "create"]) => {
                let r: docker::CreateRequest = parse_body(body)?;
                let net = n.create_network(&r.into_netd().map_err(bad)?).await?;
                ok_json(
                    StatusCode::CREATED,
                    docker::CreateResponse {
                        id: net.id.to_string(),
                        warning: String::new(),
                    },
                )
            }
            ("POST", ["networks", "prune"]) => {
                let f = docker::Filters::parse(query(q, "filters"))
                    .and_then(|f| f.prune(std::time::SystemTime::now()))
                    .map_err(bad)?;
                let removed = n.prune_networks(|net| f.matches(net)).await?;
                ok_json(StatusCode::OK, json!({ "NetworksDeleted": removed }))
            }
            ("DELETE", ["networks", id]) => {
                n.remove_network(id).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ("POST", ["networks", id, "connect"]) => {
                let r: docker::ConnectRequest = parse_body(body)?;
                let ep = r.endpoint().map_err(bad)?;
                n.connect(id, &r.container, &ep).await?;
                Ok(StatusCode::OK.into_response())
            }
            ("POST", ["networks", id, "disconnect"]) => {
                let r: docker::DisconnectRequest = parse_body(body)?;
                n.disconnect(id, &r.container, r.force).await?;
                Ok(StatusCode::OK.into_response())
            }
            ("GET", ["events"]) => Ok(self.event_stream(true)),

            // ---- netd's own routes ------------------------------------------
            ("GET", ["netd", "networks"]) => ok_json(StatusCode::OK, n.list_networks()?),
            ("POST", ["netd", "networks"]) => {
                let r: NetworkCreate = parse_body(body)?;
                let net = n.create_network(&r).await?;
                ok_json(StatusCode::CREATED, n.inspect_network(net.id.as_str())?)
            }
            ("POST", ["netd", "networks", "prune"]) => {
                let r: PruneBody = if body.is_empty() {
                    PruneBody::default()
                } else {
                    parse_body(body)?
                };
                let raw = r.filters.map(|v| v.to_string());
                let f = docker::Filters::parse(raw.as_deref())
                    .and_then(|f| f.prune(std::time::SystemTime::now()))
                    .map_err(bad)?;
                let removed = n.prune_networks(|net| f.matches(net)).await?;
                ok_json(StatusCode::OK, json!({ "removed": removed }))
            }
            ("GET", ["netd", "networks", id]) => ok_json(StatusCode::OK, n.inspect_network(id)?),
            ("GET", ["netd", "networks", id, "members", name]) => {
                ok_json(StatusCode::OK, n.members(id, name)?)
            }
            ("DELETE", ["netd", "networks", id]) => {
                ok_json(StatusCode::OK, n.remove_network(id).await?)
            }
            ("POST", ["netd", "networks", id, "connect"]) => {
                let r: ConnectBody = parse_body(body)?;
                ok_json(
                    StatusCode::OK,
                    n.connect(id, &r.sandbox, &r.endpoint).await?,
                )
            }
            ("POST", ["netd", "networks", id, "disconnect"]) => {
                let r: DisconnectBody = parse_body(body)?;
                n.disconnect(id, &r.sandbox, r.force).await?;
                ok_json(StatusCode::OK, json!({}))
            }
            ("GET", ["netd", "sandboxes"]) => ok_json(StatusCode::OK, n.list_sandboxes()?),
            ("POST", ["netd", "sandboxes"]) => {
                let r: SandboxCreate = parse_body(body)?;
                ok_json(StatusCode::CREATED, n.create_sandbox(&r).await?)
            }
            ("GET", ["netd", "sandboxes", id]) => ok_json(StatusCode::OK, n.inspect_sandbox(*id)?),
            ("DELETE", ["netd", "sandboxes", id]) => ok_json(
                StatusCode::OK,
                n.remove_sandbox(*id, truthy(query(q, "force"))).await?,
            ),
            ("POST", ["netd", "dns", "sync"]) => {
                match query(q, "sandbox") {
                    Some(name) => self.dns.sync_sandbox(n, name).await,
                    None => self.dns.sync(n).await,
                }
                ok_json(StatusCode::OK, json!({}))
            }
            ("POST", ["netd", "reconcile"]) => {
                let report = n.reconcile().await?;
                // A namespace it made again needs the sandbox's DNS sockets
                // opened again, in the new one.
                self.dns.follow_namespaces(n).await;
                ok_json(StatusCode::OK, report)
            }
            ("GET", ["netd", "events"]) => Ok(self.event_stream(false)),
            _ => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("page not found: {m} /{}", segs.join("/")),
            )),
        }
    }

    /// A never-ending stream of newline-delimited JSON events.
    fn event_stream(&self, docker_shape: bool) -> Response {
        let rx = self.netd.subscribe();
        let stream = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let v = if docker_shape {
                            docker::event(&e)
                        } else {
                            serde_json::to_value(&e).unwrap_or_default()
                        };
                        let mut line = v.to_string();
                        line.push('\n');
                        return Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx));
                    }
                    // A slow reader missed some: go on with what comes next.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// Docker reports Go's architecture names.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Where daemons lock their network namespace. Not under the state or
/// run dir, which differ between daemons: two daemons with any settings in
/// one namespace must meet here. Only root may enter it, so no other user
/// can hold the lock and keep the daemon from starting (an abstract socket
/// name, used before, could be bound by anyone in the namespace).
pub const NAMESPACE_LOCK_DIR: &str = "/run/netd-netns";

/// One daemon per network namespace: a lock file named after the
/// namespace's inode, which cannot be reused while the daemon holding the
/// lock lives in it.
fn lock_namespace() -> Result<FileLock> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/net").context("stat /proc/self/ns/net")?;
    let dir = Path::new(NAMESPACE_LOCK_DIR);
    lock::private_dir(dir, 0o700)?;
    let p = dir.join(format!("net-{}.lock", ns.ino()));
    match take_now(&p)? {
        Some(l) => {
            sweep_namespace_locks(dir);
            Ok(l)
        }
        None => bail!(
            "another netd daemon is already running in this network namespace (it holds {})",
            p.display()
        ),
    }
}

/// Delete the lock files of daemons that died without removing theirs
/// (killed, or their namespace gone): a file nobody holds guards nothing.
fn sweep_namespace_locks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(Some(stale)) = FileLock::try_lock(&e.path()) {
            stale.remove();
        }
    }
}

/// Take the daemon lock under the state dir: one daemon per state.
fn lock_state(state_dir: &Path) -> Result<FileLock> {
    lock::private_dir(state_dir, 0o700)?;
    match take_now(&state_dir.join("daemon.lock"))? {
        Some(l) => Ok(l),
        None => bail!(
            "another netd daemon is already running with state dir {}",
            state_dir.display()
        ),
    }
}

/// A daemon lock is taken at once or not at all: a second daemon must not
/// queue behind the first. A few quick tries ride out a daemon that is
/// removing the file as it stops (see `FileLock::remove`).
fn take_now(p: &Path) -> Result<Option<FileLock>> {
    for _ in 0..3 {
        if let Some(l) = FileLock::try_lock(p)? {
            return Ok(Some(l));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(None)
}

fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("socket {} is in use by another daemon", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(l)
}

/// Run the daemon until SIGTERM or SIGINT. Containers' networks stay as they
/// are when it stops: the kernel keeps them, the next start reconciles.
pub async fn run(paths: &Paths, dns: netd_dns::Config) -> Result<()> {
    // Every check that can refuse to start comes before the reconcile, which
    // removes links it does not know: never let a second daemon do that.
    let ns_lock = lock_namespace()?;
    let _lock = lock_state(&paths.state_dir)?;
    // Only root lists or writes the run dir; others may pass through it to
    // the socket, which its own mode (0660) guards.
    lock::private_dir(&paths.run_dir, RUN_DIR_MODE)?;
    let listener = bind_socket(&paths.socket)?;
    // For whoever started the daemon from afar (the CNI plugin) and must stop it.
    let pid_file = paths.run_dir.join("netd.pid");
    lock::write_private(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    let netd = Netd::open(&paths.state_dir).await.context("open state")?;
    let report = netd.reconcile().await.context("reconcile")?;
    info!(
        bridges = report.bridges,
        endpoints = report.endpoints,
        orphans = ?report.orphans_removed,
        recreated = ?report.namespaces_recreated,
        "reconciled kernel with store"
    );
    for f in &report.failures {
        warn!("reconcile: {f}");
    }
    let netd = Arc::new(netd);
    netd.watch_firewall().context("watch nftables")?;
    let dns = Arc::new(dns_host::DnsHost::new(dns));
    dns.sync(&netd).await;
    dns.follow(Arc::clone(&netd));
    watch_links(Arc::clone(&netd), Arc::clone(&dns)).context("watch links")?;
    let daemon = Arc::new(Daemon { netd, dns });
    let app = axum::Router::new()
        .fallback(|State(d): State<Arc<Daemon>>, req: Request| async move { d.dispatch(req).await })
        .with_state(daemon);
    info!(socket = %paths.socket.display(), "netd daemon listening");
    let socket: PathBuf = paths.socket.clone();
    // Stop accepting on SIGTERM/SIGINT, let requests in flight finish, but
    // never wait on long-lived streams (events) for more than a moment.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let graceful = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    tokio::select! {
        r = server => r.context("serve")?,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => info!("requests still open after {SHUTDOWN_GRACE:?}; stopping anyway"),
    }
    let _ = std::fs::remove_file(&socket);
    ns_lock.remove();
    info!("netd daemon stopped");
    Ok(())
}

/// How long the link watcher waits for more of a burst (a bridge deleted
/// with its ports, `ip netns del` of several sandboxes) before repairing.
const LINK_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Put back links that someone else deletes in the host namespace (see
/// `repair`). netd's own deletions never reach here (`link_watch`), and a
/// repair only recreates what the store has, so the two cannot loop.
fn watch_links(netd: Arc<Netd>, dns: Arc<dns_host::DnsHost>) -> Result<()> {
    use crate::kernel::link_watch::{self, LinkEvent};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LinkEvent>();
    link_watch::watch(move |e| {
        let _ = tx.send(e);
    })?;
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(LINK_SETTLE).await;
            let mut deleted = std::collections::HashSet::new();
            let mut overrun = false;
            let mut take = |e: LinkEvent| match e {
                LinkEvent::Deleted(names) => deleted.extend(names),
                LinkEvent::Overrun => overrun = true,
            };
            take(first);
            while let Ok(e) = rx.try_recv() {
                take(e);
            }
            if overrun {
                // Anything may be gone: the full pass.
                match netd.reconcile().await {
                    Ok(r) => {
                        info!(endpoints = r.endpoints, failures = ?r.failures, "link notifications were lost; reconciled");
                        dns.follow_namespaces(&netd).await;
                    }
                    Err(e) => warn!("reconcile after lost link notifications: {e}"),
                }
                continue;
            }
            match netd.repair_links(&deleted).await {
                Ok(r) if r.is_empty() => {}
                Ok(r) => {
                    info!(bridges = ?r.bridges, veths = ?r.veths, failures = ?r.failures, "repaired links deleted by someone else")
                }
                Err(e) => warn!("repairing deleted links: {e}"),
            }
        }
    });
    Ok(())
}

/// The run dir's mode: search only for group and others.
const RUN_DIR_MODE: u32 = 0o711;

/// How long SIGTERM waits for open requests (event streams never end).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon still stops on kill -9; never exit early.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(strip_version("/v1.47/networks"), "/networks");
        assert_eq!(strip_version("/v1.41/_ping"), "/_ping");
        assert_eq!(strip_version("/networks"), "/networks");
        assert_eq!(strip_version("/version"), "/version");
    }

    #[test]
    fn query_decoding() {
        let q = query_pairs(Some(
            "filters=%7B%22name%22%3A%7B%22a%22%3Atrue%7D%7D&force=1",
        ));
        assert_eq!(query(&q, "filters"), Some(r#"{"name":{"a":true}}"#));
        assert!(truthy(query(&q, "force")));
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
