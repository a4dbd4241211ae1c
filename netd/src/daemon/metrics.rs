//! `GET /metrics`: the daemon's Prometheus text, on the API socket and on
//! the `--metrics ADDR:PORT` listener.
//!
//! Operations are counted where every API request passes, a route layer
//! ([`count`]): the matched route and method name the operation, the
//! response's status (chosen from the error's kind) its outcome. Counts and
//! latencies sit in a fixed table of atomics indexed by (op, outcome), so a
//! request adds to two of them and takes no lock. Gauges are read from the
//! store at scrape time, so sandboxes the CNI plugin made count too; DNS
//! counters come from the tables the DNS server answers from
//! ([`netd_dns::ViewStats`]); the background work's from
//! [`crate::counters`]. Rendering is netd-metrics', shared with netd-lb.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use netd_dns::{Outcome as DnsOutcome, ViewStats};
use netd_metrics::prometheus_client::collector::Collector;
use netd_metrics::prometheus_client::encoding::DescriptorEncoder;
use netd_metrics::{Histogram, Kind, family, histograms, single};

use super::Daemon;
use super::serve::ApiResult;
use crate::counters::{self, Repair};
use crate::store::{self, Counts};

/// An operation of the API, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateNetwork,
    RemoveNetwork,
    PruneNetworks,
    Connect,
    Disconnect,
    CreateSandbox,
    RemoveSandbox,
    DnsSync,
    Reconcile,
    ListNetworks,
    InspectNetwork,
    Members,
    ListSandboxes,
    InspectSandbox,
    /// The CNI plugin's commands, as it reports them (see `cni_report`).
    CniAdd,
    CniDel,
    CniCheck,
    CniGc,
    CniStatus,
}

impl Op {
    const ALL: [Op; 19] = [
        Op::CreateNetwork,
        Op::RemoveNetwork,
        Op::PruneNetworks,
        Op::Connect,
        Op::Disconnect,
        Op::CreateSandbox,
        Op::RemoveSandbox,
        Op::DnsSync,
        Op::Reconcile,
        Op::ListNetworks,
        Op::InspectNetwork,
        Op::Members,
        Op::ListSandboxes,
        Op::InspectSandbox,
        Op::CniAdd,
        Op::CniDel,
        Op::CniCheck,
        Op::CniGc,
        Op::CniStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::CreateNetwork => "create_network",
            Op::RemoveNetwork => "remove_network",
            Op::PruneNetworks => "prune_networks",
            Op::Connect => "connect",
            Op::Disconnect => "disconnect",
            Op::CreateSandbox => "create_sandbox",
            Op::RemoveSandbox => "remove_sandbox",
            Op::DnsSync => "dns_sync",
            Op::Reconcile => "reconcile",
            Op::ListNetworks => "list_networks",
            Op::InspectNetwork => "inspect_network",
            Op::Members => "members",
            Op::ListSandboxes => "list_sandboxes",
            Op::InspectSandbox => "inspect_sandbox",
            Op::CniAdd => "cni_add",
            Op::CniDel => "cni_del",
            Op::CniCheck => "cni_check",
            Op::CniGc => "cni_gc",
            Op::CniStatus => "cni_status",
        }
    }

    /// The operation a route serves; `None` for those that are not one
    /// (ping, version, events, metrics). Docker's and netd's routes for
    /// the same operation count as one.
    pub fn of(method: &Method, route: &str) -> Option<Op> {
        let net = route
            .strip_prefix("/netd/networks")
            .or_else(|| route.strip_prefix("/networks"));
        // A network named `create` or `prune` is served by those static
        // routes for GET and DELETE (see `routes_docker`).
        let one_network = |rest: &str| matches!(rest, "/{id}" | "/create" | "/prune");
        Some(match (method.as_str(), net, route) {
            ("GET", Some(""), _) => Op::ListNetworks,
            ("POST", Some(""), _) | ("POST", Some("/create"), _) => Op::CreateNetwork,
            ("POST", Some("/prune"), _) => Op::PruneNetworks,
            ("GET", Some(r), _) if one_network(r) => Op::InspectNetwork,
            ("DELETE", Some(r), _) if one_network(r) => Op::RemoveNetwork,
            ("POST", Some("/{id}/connect"), _) => Op::Connect,
            ("POST", Some("/{id}/disconnect"), _) => Op::Disconnect,
            ("GET", Some("/{id}/members/{name}"), _) => Op::Members,
            ("GET", _, "/netd/sandboxes") => Op::ListSandboxes,
            ("POST", _, "/netd/sandboxes") => Op::CreateSandbox,
            ("GET", _, "/netd/sandboxes/{id}") => Op::InspectSandbox,
            ("DELETE", _, "/netd/sandboxes/{id}") => Op::RemoveSandbox,
            ("POST", _, "/netd/dns/sync") => Op::DnsSync,
            ("POST", _, "/netd/reconcile") => Op::Reconcile,
            _ => return None,
        })
    }
}

/// How an operation ended: from its response's status, which the API
/// chose from the error's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A malformed or invalid request (400, 413).
    Invalid,
    NotFound,
    Conflict,
    Forbidden,
    /// The store or a lock stayed busy (503).
    Busy,
    /// Anything else: a kernel or store failure.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::NotFound,
        Outcome::Conflict,
        Outcome::Forbidden,
        Outcome::Busy,
        Outcome::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::NotFound => "not_found",
            Outcome::Conflict => "conflict",
            Outcome::Forbidden => "forbidden",
            Outcome::Busy => "busy",
            Outcome::Error => "error",
        }
    }

    pub fn of(status: StatusCode) -> Outcome {
        match status {
            s if s.is_success() => Outcome::Ok,
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Outcome::Invalid,
            StatusCode::NOT_FOUND => Outcome::NotFound,
            StatusCode::CONFLICT => Outcome::Conflict,
            StatusCode::FORBIDDEN => Outcome::Forbidden,
            StatusCode::SERVICE_UNAVAILABLE => Outcome::Busy,
            _ => Outcome::Error,
        }
    }
}

const CELLS: usize = Op::ALL.len() * Outcome::ALL.len();

/// The operations' counters: one count and one histogram per (op, outcome).
pub struct OpMetrics {
    counts: [AtomicU64; CELLS],
    latency: Box<[Histogram]>,
}

impl Default for OpMetrics {
    fn default() -> OpMetrics {
        OpMetrics {
            counts: [const { AtomicU64::new(0) }; CELLS],
            latency: (0..CELLS).map(|_| Histogram::default()).collect(),
        }
    }
}

impl OpMetrics {
    fn cell(op: Op, outcome: Outcome) -> usize {
        op as usize * Outcome::ALL.len() + outcome as usize
    }

    pub fn record(&self, op: Op, outcome: Outcome, took: std::time::Duration) {
        let i = OpMetrics::cell(op, outcome);
        self.counts[i].fetch_add(1, Relaxed);
        self.latency[i].observe(took);
    }

    pub fn count(&self, op: Op, outcome: Outcome) -> u64 {
        self.counts[OpMetrics::cell(op, outcome)].load(Relaxed)
    }

    /// The (op, outcome) pairs to print: every op's `ok` (so a scraper
    /// sees the series before the first request), others once they occur.
    fn cells(&self) -> impl Iterator<Item = (Op, Outcome, u64, &Histogram)> {
        Op::ALL.into_iter().flat_map(move |op| {
            Outcome::ALL.into_iter().filter_map(move |o| {
                let i = OpMetrics::cell(op, o);
                let n = self.counts[i].load(Relaxed);
                (o == Outcome::Ok || n > 0).then(|| (op, o, n, &self.latency[i]))
            })
        })
    }
}

/// The route layer that counts every operation.
pub(super) async fn count(State(d): State<Arc<Daemon>>, req: Request, next: Next) -> Response {
    let op = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| Op::of(req.method(), p.as_str()));
    let Some(op) = op else {
        return next.run(req).await;
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    d.ops
        .record(op, Outcome::of(resp.status()), started.elapsed());
    resp
}

/// `/metrics`, for the API socket's router and the `--metrics` listener.
pub(super) fn routes() -> Router<Arc<Daemon>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(d): State<Arc<Daemon>>) -> ApiResult {
    let counts = d.netd.store().read(store::counts)?;
    let text = render(Scrape {
        ops: Arc::clone(&d.ops),
        counts,
        dns: d.dns.view_stats(),
        dns_served: d.dns.served(),
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, netd_metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// What one scrape reads.
pub struct Scrape {
    pub ops: Arc<OpMetrics>,
    pub counts: Counts,
    /// Per view label, its DNS counters.
    pub dns: Vec<(String, Arc<ViewStats>)>,
    pub dns_served: usize,
}

pub fn render(s: Scrape) -> String {
    netd_metrics::render(Collect(s))
}

struct Collect(Scrape);

// The registry wants Debug; the counters are not worth printing.
impl fmt::Debug for Collect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Collect")
    }
}

const COUNTER: Kind = Kind::Counter;
const GAUGE: Kind = Kind::Gauge;

impl Collector for Collect {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        family(
            &mut e,
            (
                "netd_operations",
                "API operations served and CNI commands run, by operation and outcome.",
                COUNTER,
            ),
            s.ops
                .cells()
                .map(|(op, o, n, _)| ([("op", op.name()), ("outcome", o.name())], n)),
        )?;
        histograms(
            &mut e,
            "netd_operation_duration",
            "Operation latency: API request to response, CNI command start to result.",
            s.ops
                .cells()
                .map(|(op, o, _, h)| ([("op", op.name()), ("outcome", o.name())], h)),
        )?;
        let c = &s.counts;
        for (fam, v) in [
            (
                (
                    "netd_networks",
                    "Networks in the store (the predefined ones included).",
                    GAUGE,
                ),
                c.networks,
            ),
            (
                ("netd_sandboxes", "Sandboxes in the store.", GAUGE),
                c.sandboxes,
            ),
            (
                (
                    "netd_endpoints",
                    "Endpoints (a sandbox on a network) in the store.",
                    GAUGE,
                ),
                c.endpoints,
            ),
            (
                (
                    "netd_published_ports",
                    "Published host ports (one per address, protocol and port).",
                    GAUGE,
                ),
                c.published_ports,
            ),
            (
                (
                    "netd_dns_served_sandboxes",
                    "Sandboxes whose 127.0.0.11 this daemon serves.",
                    GAUGE,
                ),
                s.dns_served as u64,
            ),
        ] {
            single(&mut e, fam, v)?;
        }
        let per_view = |f: fn(&ViewStats) -> u64| {
            s.dns
                .iter()
                .map(move |(v, st)| ([("view", v.as_str())], f(st)))
        };
        family(
            &mut e,
            (
                "netd_dns_queries",
                "DNS requests received, per view.",
                COUNTER,
            ),
            per_view(ViewStats::queries),
        )?;
        family(
            &mut e,
            (
                "netd_dns_results",
                "DNS requests by how they ended: answer, nodata, nxdomain, servfail, error (other codes), dropped (not answered).",
                COUNTER,
            ),
            s.dns.iter().flat_map(|(v, st)| {
                DnsOutcome::ALL
                    .into_iter()
                    .map(move |o| ([("view", v.as_str()), ("result", o.name())], st.results(o)))
            }),
        )?;
        family(
            &mut e,
            (
                "netd_dns_forwarded",
                "DNS queries for names outside the view, sent to the upstream resolvers or their cache.",
                COUNTER,
            ),
            per_view(ViewStats::forwarded),
        )?;
        family(
            &mut e,
            (
                "netd_dns_cache_hits",
                "Forwarded DNS queries answered from the cache of upstream answers.",
                COUNTER,
            ),
            per_view(ViewStats::cache_hits),
        )?;
        histograms(
            &mut e,
            "netd_dns_query_duration",
            "DNS latency, from a request's arrival to its answer being sent.",
            s.dns
                .iter()
                .map(|(v, st)| ([("view", v.as_str())], st.latency())),
        )?;
        single(
            &mut e,
            (
                "netd_reconciles",
                "Reconcile passes (start-up, API, lost link notifications).",
                COUNTER,
            ),
            counters::reconciles(),
        )?;
        single(
            &mut e,
            (
                "netd_reconcile_endpoints",
                "Endpoints reconcile applied again (idempotently: most were intact).",
                COUNTER,
            ),
            counters::reapplied(),
        )?;
        family(
            &mut e,
            (
                "netd_repairs",
                "What reconcile and the link watcher put back or removed, and what they could not.",
                COUNTER,
            ),
            Repair::ALL.into_iter().map(|r| {
                let (source, kind) = r.labels();
                ([("source", source), ("kind", kind)], counters::repairs(r))
            }),
        )?;
        let (restored, failed) = counters::firewall_restores();
        family(
            &mut e,
            (
                "netd_firewall_restores",
                "Restores of table inet netd after another tool changed or removed it.",
                COUNTER,
            ),
            [
                ([("result", "ok")], restored),
                ([("result", "failed")], failed),
            ],
        )?;
        single(
            &mut e,
            (
                "netd_store_busy_retries",
                "Waits for another process's lock on the state database (this daemon's).",
                COUNTER,
            ),
            counters::store_busy_retries(),
        )
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
