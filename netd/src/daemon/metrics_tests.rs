//! The daemon's metrics: route to operation, status to outcome, every family.

use super::*;
use std::time::Duration;

fn scrape(ops: OpMetrics, dns: Vec<(String, Arc<ViewStats>)>) -> String {
    render(Scrape {
        ops: Arc::new(ops),
        counts: Counts {
            networks: 4,
            sandboxes: 2,
            endpoints: 3,
            published_ports: 1,
        },
        dns,
        dns_served: 2,
    })
}

#[test]
fn routes_name_operations() {
    let op = |m: Method, p: &str| Op::of(&m, p);
    assert_eq!(
        op(Method::POST, "/networks/create"),
        Some(Op::CreateNetwork)
    );
    assert_eq!(op(Method::POST, "/netd/networks"), Some(Op::CreateNetwork));
    assert_eq!(
        op(Method::GET, "/networks/create"),
        Some(Op::InspectNetwork)
    );
    assert_eq!(
        op(Method::DELETE, "/networks/prune"),
        Some(Op::RemoveNetwork)
    );
    assert_eq!(
        op(Method::POST, "/netd/networks/prune"),
        Some(Op::PruneNetworks)
    );
    assert_eq!(
        op(Method::DELETE, "/netd/networks/{id}"),
        Some(Op::RemoveNetwork)
    );
    assert_eq!(
        op(Method::POST, "/networks/{id}/connect"),
        Some(Op::Connect)
    );
    assert_eq!(
        op(Method::POST, "/netd/networks/{id}/disconnect"),
        Some(Op::Disconnect)
    );
    assert_eq!(op(Method::POST, "/netd/sandboxes"), Some(Op::CreateSandbox));
    assert_eq!(
        op(Method::DELETE, "/netd/sandboxes/{id}"),
        Some(Op::RemoveSandbox)
    );
    assert_eq!(
        op(Method::GET, "/netd/networks/{id}/members/{name}"),
        Some(Op::Members)
    );
    assert_eq!(op(Method::GET, "/events"), None);
    assert_eq!(op(Method::GET, "/metrics"), None);
    assert_eq!(op(Method::GET, "/_ping"), None);
}

#[test]
fn outcomes_follow_statuses() {
    assert_eq!(Outcome::of(StatusCode::CREATED), Outcome::Ok);
    assert_eq!(Outcome::of(StatusCode::PAYLOAD_TOO_LARGE), Outcome::Invalid);
    assert_eq!(Outcome::of(StatusCode::CONFLICT), Outcome::Conflict);
    assert_eq!(Outcome::of(StatusCode::SERVICE_UNAVAILABLE), Outcome::Busy);
    assert_eq!(
        Outcome::of(StatusCode::INTERNAL_SERVER_ERROR),
        Outcome::Error
    );
}

#[test]
fn every_family_with_its_type() {
    let ops = OpMetrics::default();
    ops.record(Op::CreateSandbox, Outcome::Ok, Duration::from_millis(3));
    ops.record(
        Op::CreateSandbox,
        Outcome::Conflict,
        Duration::from_micros(200),
    );
    let s = scrape(ops, vec![("front".into(), Arc::default())]);
    for (name, ty) in [
        ("netd_operations_total", "counter"),
        ("netd_operation_duration_seconds", "histogram"),
        ("netd_networks", "gauge"),
        ("netd_sandboxes", "gauge"),
        ("netd_endpoints", "gauge"),
        ("netd_published_ports", "gauge"),
        ("netd_dns_served_sandboxes", "gauge"),
        ("netd_dns_queries_total", "counter"),
        ("netd_dns_results_total", "counter"),
        ("netd_dns_forwarded_total", "counter"),
        ("netd_dns_cache_hits_total", "counter"),
        ("netd_dns_query_duration_seconds", "histogram"),
        ("netd_reconciles_total", "counter"),
        ("netd_reconcile_endpoints_total", "counter"),
        ("netd_repairs_total", "counter"),
        ("netd_firewall_restores_total", "counter"),
        ("netd_store_busy_retries_total", "counter"),
    ] {
        assert!(s.contains(&format!("# TYPE {name} {ty}\n")), "{name}:\n{s}");
    }
    assert!(s.contains("netd_sandboxes 2\n"), "{s}");
    assert!(s.contains("netd_published_ports 1\n"), "{s}");
    assert!(
        s.contains("netd_operations_total{op=\"create_sandbox\",outcome=\"ok\"} 1\n"),
        "{s}"
    );
    assert!(
        s.contains("netd_operations_total{op=\"create_sandbox\",outcome=\"conflict\"} 1\n"),
        "{s}"
    );
    // Outcomes that never happened are left out, but every op's `ok` is there.
    assert!(
        s.contains("netd_operations_total{op=\"reconcile\",outcome=\"ok\"} 0\n"),
        "{s}"
    );
    assert!(!s.contains("op=\"reconcile\",outcome=\"busy\""), "{s}");
    assert!(
        s.contains(
            "netd_operation_duration_seconds_bucket{op=\"create_sandbox\",outcome=\"ok\",le=\"0.005\"} 1\n"
        ),
        "{s}"
    );
    assert!(
        s.contains("netd_dns_queries_total{view=\"front\"} 0\n"),
        "{s}"
    );
    assert!(
        s.contains("netd_dns_results_total{view=\"front\",result=\"nxdomain\"} 0\n"),
        "{s}"
    );
    assert!(
        s.contains("netd_repairs_total{source=\"link_watch\",kind=\"bridge\"}"),
        "{s}"
    );
}
