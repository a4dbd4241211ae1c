//! The HTTP side of the daemon: one `axum::Router` for both route families,
//! Docker's error body on every refusal, the body limit, and the version
//! prefix Docker clients put before every path.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use netd_api::ErrorBody;
use serde::de::DeserializeOwned;

use super::{Daemon, docker};
use crate::error::{Error, Kind};

/// An API failure: status plus Docker's `{"message": …}` body.
pub(super) struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Invalid => StatusCode::BAD_REQUEST,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::Busy | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ErrorBody { message: self.1 })).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok_json(status: StatusCode, v: impl serde::Serialize) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

/// The largest request body read. Every request is a small JSON object; a
/// bigger one is refused before it is parsed, let alone stored.
pub const MAX_BODY: usize = 1 << 20;

pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// A JSON body. Not `axum::Json`: Docker clients do not always send a
/// content type, and every refusal (too large, malformed) must be a 400 or
/// 413 with Docker's `{"message": …}`, not axum's plain-text 415/422.
pub(super) struct JsonBody<T>(pub T);

/// A JSON body that may be empty (`None`).
pub(super) struct MaybeJson<T>(pub Option<T>);

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: the limit is {MAX_BODY} bytes"),
            )
        }
        e => bad(format!("cannot read request body: {}", e.body_text())),
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse_body(&read_body(req, state).await?).map(JsonBody)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = read_body(req, state).await?;
        if body.is_empty() {
            return Ok(MaybeJson(None));
        }
        parse_body(&body).map(|v| MaybeJson(Some(v)))
    }
}

/// `axum::extract::Query` refusing with Docker's body.
pub(super) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|e| bad(e.body_text()))
    }
}

/// Serve both route families on `listener` until `shutdown` completes.
pub(super) async fn serve(
    listener: tokio::net::UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .merge(super::routes_docker::routes())
        .merge(super::routes_netd::routes())
        .merge(super::metrics::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&daemon),
            super::metrics::count,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&daemon),
            sync_proxy,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(docker_headers))
        .with_state(daemon);
    // Outside the router: the path must be rewritten before it is routed.
    let app = tower::Layer::layer(&axum::middleware::map_request(unversioned), router);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// `GET /metrics` alone, over TCP (`netd daemon --metrics ADDR:PORT`):
/// the API itself never leaves its Unix socket.
pub(super) async fn serve_metrics(listener: tokio::net::TcpListener, daemon: Arc<Daemon>) {
    let router = super::metrics::routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(daemon);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!("metrics listener: {e}");
    }
}

/// After every request that may change something (every method but GET
/// and HEAD; the CNI plugin's hand-off included), the `[::1]` listeners
/// follow the store before the answer goes out: a removed sandbox's port is
/// free when `rm` returns, a new one's served when `create` does. One
/// indexed read when nothing is published on `[::1]`.
async fn sync_proxy(
    axum::extract::State(d): axum::extract::State<Arc<Daemon>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let resp = next.run(req).await;
    if changes {
        d.proxy.sync(&d.netd).await;
    }
    resp
}

/// Docker clients prefix paths with the API version (`/v1.47/networks`);
/// netd serves every version it accepts alike. A trailing slash is dropped
/// too, as Docker does.
async fn unversioned(mut req: Request) -> Request {
    let path = req.uri().path();
    let rest = path.strip_prefix("/v").and_then(|r| {
        let end = r.find('/').unwrap_or(r.len());
        let ver = &r[..end];
        (!ver.is_empty() && ver.bytes().all(|c| c.is_ascii_digit() || c == b'.')).then(|| &r[end..])
    });
    let trimmed = rest.unwrap_or(path).trim_end_matches('/');
    if trimmed.len() == path.len() {
        return req;
    }
    let new = match req.uri().query() {
        Some(q) => format!("/{}?{q}", trimmed.trim_start_matches('/')),
        None => format!("/{}", trimmed.trim_start_matches('/')),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = new.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn docker_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(docker::API_VERSION));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("netd/", env!("CARGO_PKG_VERSION"))),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    resp
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("page not found: {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed on {}", uri.path()),
    )
}

/// A stream of newline-delimited JSON events: the kept ones the filter's
/// `since` (or `until`) asks to replay, then live ones, until `until`.
pub(super) fn event_stream(
    daemon: &Daemon,
    docker_shape: bool,
    filter: Option<docker::EventFilter>,
) -> Response {
    // One call copies the past and subscribes: nothing emitted in between
    // is lost or sent twice (see `Hub`).
    let (past, rx) = match filter.as_ref().and_then(|f| f.replay_from()) {
        Some(from) => daemon.netd.subscribe_since(from),
        None => (Vec::new(), daemon.netd.subscribe()),
    };
    let wanted = move |f: &Option<docker::EventFilter>, e: &crate::ops::Event| {
        f.as_ref().is_none_or(|f| f.matches(e) && !f.after_until(e))
    };
    let past: std::collections::VecDeque<_> =
        past.into_iter().filter(|e| wanted(&filter, e)).collect();
    let end = filter.as_ref().and_then(|f| f.until).map(|u| {
        std::time::UNIX_EPOCH
            + std::time::Duration::from_nanos(u64::try_from(u.max(0)).unwrap_or(u64::MAX))
    });
    let line = move |e: &crate::ops::Event| {
        let v = if docker_shape {
            docker::event(e)
        } else {
            serde_json::to_value(e).unwrap_or_default()
        };
        let mut line = v.to_string();
        line.push('\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    };
    let stream = futures::stream::unfold((past, rx), move |(mut past, mut rx)| {
        let filter = filter.clone();
        async move {
            if let Some(e) = past.pop_front() {
                return Some((line(&e), (past, rx)));
            }
            loop {
                let next = match end {
                    // Past `until` the stream ends, as Docker's does: at
                    // once after the replay when it is past already.
                    Some(until) => match until.duration_since(std::time::SystemTime::now()) {
                        Ok(left) => match tokio::time::timeout(left, rx.recv()).await {
                            Ok(r) => r,
                            Err(_) => return None,
                        },
                        Err(_) => return None,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Ok(e) if !wanted(&filter, &e) => continue,
                    Ok(e) => return Some((line(&e), (past, rx))),
                    // A slow reader missed some: go on with what comes next.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn path_of(p: &str) -> String {
        let req = Request::builder().uri(p).body(Body::empty()).unwrap();
        unversioned(req).await.uri().to_string()
    }

    #[tokio::test]
    async fn version_prefix() {
        assert_eq!(path_of("/v1.47/networks").await, "/networks");
        assert_eq!(path_of("/v1.41/_ping").await, "/_ping");
        assert_eq!(path_of("/v1.41").await, "/");
        assert_eq!(path_of("/networks/").await, "/networks");
        assert_eq!(path_of("/version").await, "/version");
        assert_eq!(path_of("/vx/networks").await, "/vx/networks");
        assert_eq!(
            path_of("/v1.47/networks?filters=%7B%7D").await,
            "/networks?filters=%7B%7D"
        );
    }
}
