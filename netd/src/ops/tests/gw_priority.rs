//! Docker's GwPriority: which of a sandbox's networks gives its default
//! route, as networks come and go.

use super::*;

fn prio(gw_priority: i64) -> EndpointRequest {
    EndpointRequest {
        gw_priority,
        ..Default::default()
    }
}

fn gw(t: &T, ns: &std::path::Path) -> String {
    t.k().world().default_routes[ns].0.to_string()
}

#[tokio::test]
async fn the_highest_priority_gives_the_default_route_as_networks_come_and_go() {
    let t = world().await;
    for (n, s) in [
        ("a", "10.80.0.0/24"),
        ("b", "10.81.0.0/24"),
        ("c", "10.82.0.0/24"),
    ] {
        t.netd.create_network(&net(n, s)).await.unwrap();
    }
    t.netd.create_sandbox(&sandbox("s", "a")).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s").unwrap().netns);
    assert_eq!(gw(&t, &ns), "10.80.0.1");

    // Higher than a's 0: b takes the route at connect.
    let d = t.netd.connect("b", "s", &prio(10)).await.unwrap();
    assert_eq!(d.endpoint.gw_priority, 10);
    assert_eq!(gw(&t, &ns), "10.81.0.1");
    // Lower than b's: the route stays.
    t.netd.connect("c", "s", &prio(5)).await.unwrap();
    assert_eq!(gw(&t, &ns), "10.81.0.1");
    t.assert_consistent();

    // b leaves: c (5) outranks a (0).
    t.netd.disconnect("b", "s", false).await.unwrap();
    assert_eq!(gw(&t, &ns), "10.82.0.1");
    // c leaves: a, the only one left.
    t.netd.disconnect("c", "s", false).await.unwrap();
    assert_eq!(gw(&t, &ns), "10.80.0.1");
    t.assert_consistent();
}

#[tokio::test]
async fn a_negative_priority_yields_to_a_later_network() {
    let t = world().await;
    t.netd
        .create_network(&net("a", "10.83.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_network(&net("b", "10.84.0.0/24"))
        .await
        .unwrap();
    let mut create = sandbox("s", "a");
    create.endpoint.gw_priority = -1;
    t.netd.create_sandbox(&create).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s").unwrap().netns);
    t.netd.connect("b", "s", &prio(0)).await.unwrap();
    assert_eq!(gw(&t, &ns), "10.84.0.1");
}

#[tokio::test]
async fn a_default_route_netd_did_not_make_is_left_alone() {
    let t = world().await;
    t.netd
        .create_network(&net("a", "10.85.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_network(&net("b", "10.86.0.0/24"))
        .await
        .unwrap();
    t.netd.create_sandbox(&sandbox("s", "a")).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s").unwrap().netns);
    t.k()
        .set_default_route(&ns, "10.85.0.254".parse().unwrap(), "eth0");
    t.netd.connect("b", "s", &prio(10)).await.unwrap();
    assert_eq!(gw(&t, &ns), "10.85.0.254");
}

#[tokio::test]
async fn a_failed_route_move_leaves_the_connect_made() {
    // The move is the connect's last step, after its commit: a failure
    // there is logged, and the endpoint (and the old route) stay.
    let t = world().await;
    t.netd
        .create_network(&net("a", "10.87.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_network(&net("b", "10.88.0.0/24"))
        .await
        .unwrap();
    t.netd.create_sandbox(&sandbox("s", "a")).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s").unwrap().netns);
    let clean = world().await;
    clean
        .netd
        .create_network(&net("a", "10.87.0.0/24"))
        .await
        .unwrap();
    clean
        .netd
        .create_network(&net("b", "10.88.0.0/24"))
        .await
        .unwrap();
    clean.netd.create_sandbox(&sandbox("s", "a")).await.unwrap();
    let before = clean.k().count();
    clean.netd.connect("b", "s", &prio(10)).await.unwrap();
    // The last fallible call of a connect is the route move.
    let steps = clean.k().count() - before;
    t.k().fail_after(steps - 1);
    t.netd.connect("b", "s", &prio(10)).await.unwrap();
    assert_eq!(t.netd.inspect_sandbox("s").unwrap().endpoints.len(), 2);
    assert_eq!(gw(&t, &ns), "10.87.0.1");
    t.assert_consistent();
}

#[tokio::test]
async fn reconcile_gives_a_lost_default_route_back_to_the_ranked_network() {
    let t = world().await;
    t.netd
        .create_network(&net("a", "10.89.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_network(&net("b", "10.90.0.0/24"))
        .await
        .unwrap();
    t.netd.create_sandbox(&sandbox("s", "a")).await.unwrap();
    t.netd.connect("b", "s", &prio(3)).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s").unwrap().netns);
    t.k().drop_default_route(&ns);
    let report = t.netd.reconcile().await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(gw(&t, &ns), "10.90.0.1");
    t.assert_consistent();
}
