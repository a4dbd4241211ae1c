//! netd's own routes, under `/netd/`: netd's types in and out.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use netd_api::{Disconnect, DnsSync, Prune, Pruned, RemoveSandbox};
use serde::Deserialize;
use serde_json::json;

use super::Daemon;
use super::docker;
use super::serve::{ApiResult, JsonBody, MaybeJson, Query, bad, event_stream, ok_json};
use crate::model::{EndpointRequest, NetworkCreate, SandboxCreate};

type D = State<Arc<Daemon>>;

/// `POST /netd/networks/{id}/connect` (in netd's types, so not in netd-api).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectBody {
    pub sandbox: String,
    #[serde(default)]
    pub endpoint: EndpointRequest,
}

pub(super) fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/netd/networks", get(list_networks).post(create_network))
        // A network may be named `prune` (see the Docker routes).
        .route(
            "/netd/networks/prune",
            post(prune)
                .get(|s: D| inspect_network(s, Path("prune".into())))
                .delete(|s: D| remove_network(s, Path("prune".into()))),
        )
        .route(
            "/netd/networks/{id}",
            get(inspect_network).delete(remove_network),
        )
        .route("/netd/networks/{id}/members/{name}", get(members))
        .route("/netd/networks/{id}/connect", post(connect))
        .route("/netd/networks/{id}/disconnect", post(disconnect))
        .route("/netd/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route(
            "/netd/sandboxes/{id}",
            get(inspect_sandbox).delete(remove_sandbox),
        )
        .route("/netd/dns/sync", post(dns_sync))
        .route("/netd/reconcile", post(reconcile))
        .route("/netd/events", get(events))
}

async fn list_networks(State(d): D) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.list_networks()?)
}

async fn create_network(State(d): D, JsonBody(r): JsonBody<NetworkCreate>) -> ApiResult {
    let net = d.netd.create_network(&r).await?;
    ok_json(
        StatusCode::CREATED,
        d.netd.inspect_network(net.id.as_str())?,
    )
}

async fn prune(State(d): D, MaybeJson(r): MaybeJson<Prune>) -> ApiResult {
    let raw = r.and_then(|r| r.filters).map(|v| v.to_string());
    let f = docker::Filters::parse(raw.as_deref())
        .and_then(|f| f.prune(std::time::SystemTime::now()))
        .map_err(bad)?;
    let removed = d.netd.prune_networks(|net| f.matches(net)).await?;
    ok_json(StatusCode::OK, Pruned { removed })
}

async fn inspect_network(State(d): D, Path(id): Path<String>) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.inspect_network(id.as_str())?)
}

async fn members(State(d): D, Path((id, name)): Path<(String, String)>) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.members(id.as_str(), &name)?)
}

async fn remove_network(State(d): D, Path(id): Path<String>) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.remove_network(id.as_str()).await?)
}

async fn connect(
    State(d): D,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<ConnectBody>,
) -> ApiResult {
    ok_json(
        StatusCode::OK,
        d.netd.connect(id.as_str(), &r.sandbox, &r.endpoint).await?,
    )
}

async fn disconnect(
    State(d): D,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<Disconnect>,
) -> ApiResult {
    d.netd.disconnect(id.as_str(), &r.sandbox, r.force).await?;
    ok_json(StatusCode::OK, json!({}))
}

async fn list_sandboxes(State(d): D) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.list_sandboxes()?)
}

async fn create_sandbox(State(d): D, JsonBody(r): JsonBody<SandboxCreate>) -> ApiResult {
    ok_json(StatusCode::CREATED, d.netd.create_sandbox(&r).await?)
}

async fn inspect_sandbox(State(d): D, Path(id): Path<String>) -> ApiResult {
    ok_json(StatusCode::OK, d.netd.inspect_sandbox(id.as_str())?)
}

async fn remove_sandbox(
    State(d): D,
    Path(id): Path<String>,
    Query(q): Query<RemoveSandbox>,
) -> ApiResult {
    ok_json(
        StatusCode::OK,
        d.netd.remove_sandbox(id.as_str(), q.force).await?,
    )
}

/// The hand-off of other processes (the CNI plugin): DNS names, and (by
/// the layer every change passes, `serve::sync_proxy`) the `[::1]` ports.
async fn dns_sync(State(d): D, Query(q): Query<DnsSync>) -> ApiResult {
    match q.sandbox {
        Some(name) => d.dns.sync_sandbox(&d.netd, &name).await,
        None => d.dns.sync(&d.netd).await,
    }
    ok_json(StatusCode::OK, json!({}))
}

async fn reconcile(State(d): D) -> ApiResult {
    let report = d.netd.reconcile().await?;
    // A namespace it made again needs the sandbox's DNS sockets opened
    // again, in the new one.
    d.dns.follow_namespaces(&d.netd).await;
    ok_json(StatusCode::OK, report)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
}

/// As `GET /events` (the same `since` and `until`), in netd's shape.
async fn events(State(d): D, Query(q): Query<EventsQuery>) -> axum::response::Response {
    let f = docker::Filters::default().events(
        q.since.as_deref(),
        q.until.as_deref(),
        std::time::SystemTime::now(),
    );
    match f {
        Ok(f) => event_stream(&d, false, Some(f)),
        Err(e) => bad(e).into_response(),
    }
}
