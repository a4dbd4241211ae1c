//! Prometheus metrics: counters kept in atomics (no lock on the request
//! path), read by a prometheus-client collector and rendered as Prometheus
//! text on `GET /metrics` of the metrics listener by netd-metrics, the
//! renderer the daemon's `/metrics` shares.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_trait::async_trait;
pub use netd_metrics::Histogram;
use netd_metrics::prometheus_client::collector::Collector;
use netd_metrics::prometheus_client::encoding::DescriptorEncoder;
use netd_metrics::{Family, Kind, family, histograms, single};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::service::ServiceState;

/// Why a request or connection failed.
#[derive(Debug, Clone, Copy)]
pub enum ErrorKind {
    /// A connect to a member failed (it may have been retried).
    Connect,
    /// No member to send to.
    NoBackend,
    /// The request failed after a member was reached, or the client went away.
    Proxy,
}

const ERROR_KINDS: [(&str, ErrorKind); 3] = [
    ("connect", ErrorKind::Connect),
    ("no_backend", ErrorKind::NoBackend),
    ("proxy", ErrorKind::Proxy),
];

/// One service's counters.
#[derive(Default)]
pub struct ServiceMetrics {
    /// HTTP responses by status class 1xx..5xx (index 0..4).
    pub responses: [AtomicU64; 5],
    /// TCP connections accepted.
    pub connections: AtomicU64,
    pub retries: AtomicU64,
    errors: [AtomicU64; 3],
    pub latency: Histogram,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub discovery_updates: AtomicU64,
    pub discovery_errors: AtomicU64,
}

impl ServiceMetrics {
    pub fn error(&self, k: ErrorKind) {
        self.errors[k as usize].fetch_add(1, Relaxed);
    }

    pub fn response(&self, status: u16) {
        if (100..600).contains(&status) {
            self.responses[(status / 100 - 1) as usize].fetch_add(1, Relaxed);
        }
    }
}

/// The whole exposition, in Prometheus text format 0.0.4.
pub fn render(services: &[Arc<ServiceState>], reloads: u64) -> String {
    netd_metrics::render(Collect {
        services: services.to_vec(),
        reloads,
    })
}

/// Reads every service's counters when the registry is encoded.
struct Collect {
    services: Vec<Arc<ServiceState>>,
    reloads: u64,
}

// The registry wants Debug; the services' state is not worth printing.
impl fmt::Debug for Collect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collect")
            .field("services", &self.services.len())
            .finish()
    }
}

const COUNTER: Kind = Kind::Counter;
const GAUGE: Kind = Kind::Gauge;

impl Collect {
    /// One family with samples per service: each sample is extra labels
    /// (none, or one `key="value"`) and a value.
    fn per_service<F>(&self, e: &mut DescriptorEncoder, fam: Family, samples: F) -> fmt::Result
    where
        F: Fn(&ServiceState) -> Vec<(Option<(&'static str, &'static str)>, u64)>,
    {
        let all = self.services.iter().flat_map(|s| {
            samples(s).into_iter().map(|(extra, v)| {
                let mut labels = vec![("service", s.name.as_str())];
                labels.extend(extra);
                (labels, v)
            })
        });
        family(e, fam, all)
    }
}
impl Collector for Collect {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let one = |v: u64| vec![(None, v)];
        self.per_service(
            &mut e,
            (
                "netd_lb_requests",
                "HTTP responses sent, by status class.",
                COUNTER,
            ),
            |s| {
                const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
                CODES
                    .iter()
                    .zip(&s.metrics.responses)
                    .map(|(c, n)| (Some(("code", *c)), n.load(Relaxed)))
                    .collect()
            },
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_connections",
                "TCP connections accepted (tcp mode).",
                COUNTER,
            ),
            |s| one(s.metrics.connections.load(Relaxed)),
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_errors",
                "Failures: connect (to a member, maybe retried), no_backend, proxy (after a member was reached).",
                COUNTER,
            ),
            |s| {
                ERROR_KINDS
                    .iter()
                    .map(|(name, k)| (Some(("kind", *name)), s.metrics.errors[*k as usize].load(Relaxed)))
                    .collect()
            },
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_retries",
                "Requests or connections sent to another member after a failure.",
                COUNTER,
            ),
            |s| one(s.metrics.retries.load(Relaxed)),
        )?;
        histograms(
            &mut e,
            "netd_lb_request_duration",
            "HTTP request latency (tcp mode: connection lifetime).",
            self.services
                .iter()
                .map(|s| ([("service", s.name.as_str())], &s.metrics.latency)),
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_tcp_bytes",
                "Bytes carried in tcp mode, by direction.",
                COUNTER,
            ),
            |s| {
                vec![
                    (Some(("direction", "in")), s.metrics.bytes_in.load(Relaxed)),
                    (
                        Some(("direction", "out")),
                        s.metrics.bytes_out.load(Relaxed),
                    ),
                ]
            },
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_discovery_updates",
                "Member lists applied from discovery.",
                COUNTER,
            ),
            |s| one(s.metrics.discovery_updates.load(Relaxed)),
        )?;
        self.per_service(
            &mut e,
            (
                "netd_lb_discovery_errors",
                "Failed discovery attempts (netd API or DNS unreachable).",
                COUNTER,
            ),
            |s| one(s.metrics.discovery_errors.load(Relaxed)),
        )?;
        let members: Vec<_> = self
            .services
            .iter()
            .map(|s| (s, s.pool.members()))
            .collect();
        self.per_service(
            &mut e,
            ("netd_lb_backends", "Members known, by health.", GAUGE),
            |s| {
                let ms = s.pool.members();
                let up = ms.iter().filter(|m| m.healthy()).count() as u64;
                vec![
                    (Some(("state", "up")), up),
                    (Some(("state", "down")), ms.len() as u64 - up),
                ]
            },
        )?;
        let per_backend: [Family; 4] = [
            (
                "netd_lb_backend_up",
                "1 if the member is in rotation, 0 if health checks or failed connects took it out.",
                GAUGE,
            ),
            (
                "netd_lb_backend_active",
                "Requests (tcp: connections) in flight to the member.",
                GAUGE,
            ),
            (
                "netd_lb_backend_requests",
                "Requests (tcp: connections) sent to the member.",
                COUNTER,
            ),
            (
                "netd_lb_backend_failures",
                "Failed connects to the member.",
                COUNTER,
            ),
        ];
        for (i, fam) in per_backend.into_iter().enumerate() {
            let addrs: Vec<Vec<String>> = members
                .iter()
                .map(|(_, ms)| ms.iter().map(|b| b.addr.to_string()).collect())
                .collect();
            let samples = members.iter().zip(&addrs).flat_map(|((s, ms), addrs)| {
                ms.iter().zip(addrs).map(move |(b, addr)| {
                    let labels = [
                        ("service", s.name.as_str()),
                        ("backend", addr.as_str()),
                        ("member", b.name.as_str()),
                    ];
                    let v = match i {
                        0 => b.healthy() as u64,
                        1 => b.active() as u64,
                        2 => b.requests.load(Relaxed),
                        _ => b.failures.load(Relaxed),
                    };
                    (labels, v)
                })
            });
            family(&mut e, fam, samples)?;
        }
        single(
            &mut e,
            (
                "netd_lb_config_reloads",
                "Successful SIGHUP reloads of the config file.",
                COUNTER,
            ),
            self.reloads,
        )
    }
}

/// The metrics listener's HTTP app.
pub struct MetricsApp {
    pub services: Vec<Arc<ServiceState>>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        let (status, ctype, body) = if path == "/metrics" {
            let text = render(&self.services, crate::reloads());
            (200, netd_metrics::CONTENT_TYPE, text.into_bytes())
        } else {
            (404, "text/plain", b"not found: try /metrics\n".to_vec())
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        let s = render(&[], 2);
        assert!(s.contains("# TYPE netd_lb_requests_total counter\n"), "{s}");
        assert!(
            s.contains("# TYPE netd_lb_request_duration_seconds histogram\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE netd_lb_backend_up gauge\n"), "{s}");
        assert!(s.ends_with("netd_lb_config_reloads_total 2\n"), "{s}");
    }
}
