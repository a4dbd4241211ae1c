//! Prometheus metrics: counters kept in atomics, rendered as text on
//! `GET /metrics` of the metrics listener.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::service::ServiceState;

/// Upper bounds of the latency histogram, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        // Cumulative buckets are summed at render time: count the first only.
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

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

/// Label value escaping per the text exposition format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One metric family with samples per service: each sample is extra
/// labels (empty, or `key="value"`) and a value.
fn per_service<F>(
    o: &mut String,
    services: &[Arc<ServiceState>],
    (name, kind, help): (&str, &str, &str),
    samples: F,
) where
    F: Fn(&ServiceState) -> Vec<(String, u64)>,
{
    header(o, name, kind, help);
    for s in services {
        let svc = format!("service=\"{}\"", esc(&s.name));
        for (extra, v) in samples(s) {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(o, "{name}{{{svc}{sep}{extra}}} {v}");
        }
    }
}

/// The whole exposition.
pub fn render(services: &[Arc<ServiceState>], reloads: u64) -> String {
    let mut o = String::with_capacity(4096);
    let svc_label = |s: &ServiceState| format!("service=\"{}\"", esc(&s.name));
    let one = |v: u64| vec![(String::new(), v)];

    per_service(
        &mut o,
        services,
        (
            "netd_lb_requests_total",
            "counter",
            "HTTP responses sent, by status class.",
        ),
        |s| {
            s.metrics
                .responses
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("code=\"{}xx\"", i + 1), c.load(Relaxed)))
                .collect()
        },
    );
    per_service(
        &mut o,
        services,
        (
            "netd_lb_connections_total",
            "counter",
            "TCP connections accepted (tcp mode).",
        ),
        |s| one(s.metrics.connections.load(Relaxed)),
    );
    per_service(
        &mut o,
        services,
        (
            "netd_lb_errors_total",
            "counter",
            "Failures: connect (to a member, maybe retried), no_backend, proxy (after a member was reached).",
        ),
        |s| {
            ERROR_KINDS
                .iter()
                .map(|(name, k)| {
                    (
                        format!("kind=\"{name}\""),
                        s.metrics.errors[*k as usize].load(Relaxed),
                    )
                })
                .collect()
        },
    );
    per_service(
        &mut o,
        services,
        (
            "netd_lb_retries_total",
            "counter",
            "Requests or connections sent to another member after a failure.",
        ),
        |s| one(s.metrics.retries.load(Relaxed)),
    );
    header(
        &mut o,
        "netd_lb_request_duration_seconds",
        "histogram",
        "HTTP request latency (tcp mode: connection lifetime).",
    );
    for s in services {
        s.metrics
            .latency
            .render(&mut o, "netd_lb_request_duration_seconds", &svc_label(s));
    }
    per_service(
        &mut o,
        services,
        (
            "netd_lb_tcp_bytes_total",
            "counter",
            "Bytes carried in tcp mode, by direction.",
        ),
        |s| {
            vec![
                ("direction=\"in\"".into(), s.metrics.bytes_in.load(Relaxed)),
                (
                    "direction=\"out\"".into(),
                    s.metrics.bytes_out.load(Relaxed),
                ),
            ]
        },
    );
    per_service(
        &mut o,
        services,
        (
            "netd_lb_discovery_updates_total",
            "counter",
            "Member lists applied from discovery.",
        ),
        |s| one(s.metrics.discovery_updates.load(Relaxed)),
    );
    per_service(
        &mut o,
        services,
        (
            "netd_lb_discovery_errors_total",
            "counter",
            "Failed discovery attempts (netd API or DNS unreachable).",
        ),
        |s| one(s.metrics.discovery_errors.load(Relaxed)),
    );
    let members: Vec<_> = services.iter().map(|s| (s, s.pool.members())).collect();
    per_service(
        &mut o,
        services,
        ("netd_lb_backends", "gauge", "Members known, by health."),
        |s| {
            let ms = s.pool.members();
            let up = ms.iter().filter(|m| m.healthy()).count() as u64;
            vec![
                ("state=\"up\"".into(), up),
                ("state=\"down\"".into(), ms.len() as u64 - up),
            ]
        },
    );
    let per_backend: [(&str, &str, &str); 4] = [
        (
            "netd_lb_backend_up",
            "gauge",
            "1 if the member is in rotation, 0 if health checks or failed connects took it out.",
        ),
        (
            "netd_lb_backend_active",
            "gauge",
            "Requests (tcp: connections) in flight to the member.",
        ),
        (
            "netd_lb_backend_requests_total",
            "counter",
            "Requests (tcp: connections) sent to the member.",
        ),
        (
            "netd_lb_backend_failures_total",
            "counter",
            "Failed connects to the member.",
        ),
    ];
    for (i, (name, kind, help)) in per_backend.iter().enumerate() {
        header(&mut o, name, kind, help);
        for (s, ms) in &members {
            for m in ms {
                let v = match i {
                    0 => m.healthy() as u64,
                    1 => m.active() as u64,
                    2 => m.requests.load(Relaxed),
                    _ => m.failures.load(Relaxed),
                };
                let _ = writeln!(
                    o,
                    "{name}{{{},backend=\"{}\",member=\"{}\"}} {v}",
                    svc_label(s),
                    m.addr,
                    esc(&m.name)
                );
            }
        }
    }
    header(
        &mut o,
        "netd_lb_config_reloads_total",
        "counter",
        "Successful SIGHUP reloads of the config file.",
    );
    let _ = writeln!(o, "netd_lb_config_reloads_total {reloads}");
    o
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
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
            )
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
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(30));
        let mut s = String::new();
        h.render(&mut s, "x", "a=\"b\"");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"10\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{a=\"b\"} 3\n"), "{s}");
    }

    #[test]
    fn escaping() {
        assert_eq!(esc("a\"b\\c"), "a\\\"b\\\\c");
    }
}
