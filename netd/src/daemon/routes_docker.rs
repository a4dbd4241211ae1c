//! Docker Engine API routes (so `DOCKER_HOST=unix://…` works for networks),
//! translated to and from netd's operations by [`docker`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use netd_api::FiltersQuery;
use serde_json::{Value, json};

use super::Daemon;
use super::docker;
use super::serve::{ApiResult, JsonBody, Query, bad, event_stream, ok_json};

type D = State<Arc<Daemon>>;

pub(super) fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/_ping", get(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/networks", get(list))
        // A network may be named `create` or `prune`: the router picks the
        // static path whatever the method, so it serves those names too.
        .route(
            "/networks/create",
            post(create)
                .get(|s: D| inspect(s, Path("create".into())))
                .delete(|s: D| remove(s, Path("create".into()))),
        )
        .route(
            "/networks/prune",
            post(prune)
                .get(|s: D| inspect(s, Path("prune".into())))
                .delete(|s: D| remove(s, Path("prune".into()))),
        )
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
        .route("/events", get(events))
}

async fn ping() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")],
        "OK",
    )
}

async fn version() -> ApiResult {
    ok_json(
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
    )
}

async fn info() -> ApiResult {
    ok_json(
        StatusCode::OK,
        json!({ "Name": "netd", "ServerVersion": env!("CARGO_PKG_VERSION"), "OSType": "linux" }),
    )
}

/// Docker reports Go's architecture names.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn list(State(d): D, Query(q): Query<FiltersQuery>) -> ApiResult {
    let f = docker::Filters::parse(q.filters.as_deref())
        .and_then(|f| f.networks())
        .map_err(bad)?;
    let list: Vec<Value> = d
        .netd
        .list_networks()?
        .iter()
        .filter(|n| f.matches(n))
        .map(|n| docker::network_resource(n, false))
        .collect();
    ok_json(StatusCode::OK, list)
}

async fn inspect(State(d): D, Path(id): Path<String>) -> ApiResult {
    ok_json(
        StatusCode::OK,
        docker::network_resource(&d.netd.inspect_network(id.as_str())?, true),
    )
}

async fn create(State(d): D, JsonBody(r): JsonBody<docker::CreateRequest>) -> ApiResult {
    let net = d.netd.create_network(&r.into_netd().map_err(bad)?).await?;
    ok_json(
        StatusCode::CREATED,
        docker::CreateResponse {
            id: net.id.to_string(),
            warning: String::new(),
        },
    )
}

async fn prune(State(d): D, Query(q): Query<FiltersQuery>) -> ApiResult {
    let f = docker::Filters::parse(q.filters.as_deref())
        .and_then(|f| f.prune(std::time::SystemTime::now()))
        .map_err(bad)?;
    let removed = d.netd.prune_networks(|net| f.matches(net)).await?;
    ok_json(StatusCode::OK, json!({ "NetworksDeleted": removed }))
}

async fn remove(State(d): D, Path(id): Path<String>) -> ApiResult {
    d.netd.remove_network(id.as_str()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connect(
    State(d): D,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<docker::ConnectRequest>,
) -> ApiResult {
    let ep = r.endpoint().map_err(bad)?;
    d.netd.connect(id.as_str(), &r.container, &ep).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    State(d): D,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<docker::DisconnectRequest>,
) -> ApiResult {
    d.netd
        .disconnect(id.as_str(), &r.container, r.force)
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, serde::Deserialize, Default)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

async fn events(State(d): D, Query(q): Query<EventsQuery>) -> axum::response::Response {
    let f = docker::Filters::parse(q.filters.as_deref()).and_then(|f| {
        f.events(
            q.since.as_deref(),
            q.until.as_deref(),
            std::time::SystemTime::now(),
        )
    });
    match f {
        Ok(f) => event_stream(&d, true, Some(f)),
        Err(e) => bad(e).into_response(),
    }
}
