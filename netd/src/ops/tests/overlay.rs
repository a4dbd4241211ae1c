//! Overlay networks against the fake kernel and the fake cluster: what the
//! operations ask of the cluster, what they leave when it refuses, and how
//! a host follows the others.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::*;
use crate::cluster::fake::FakeCluster;
use crate::error::Kind;

async fn host(c: &FakeCluster, name: &str, last: u8) -> T {
    let store = c.join(name, Ipv4Addr::new(192, 168, 50, last));
    world_with(|n| n.with_cluster(store)).await
}

fn overlay(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate {
        driver: "overlay".into(),
        ..net(name, subnet)
    }
}

/// The view `t` has of the cluster now.
fn view(t: &T) -> Arc<crate::cluster::ClusterView> {
    Arc::clone(&t.netd.cluster().expect("in a cluster").view().borrow())
}

#[tokio::test]
async fn an_overlay_network_needs_a_cluster_and_a_refusal_changes_nothing() {
    let t = world().await;
    let before = t.snapshot();
    let e = t
        .netd
        .create_network(&overlay("ov", "10.250.0.0/24"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(e.to_string().contains("--cluster-store"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn an_overlay_network_is_recorded_in_the_cluster_and_made_here() {
    let c = FakeCluster::new();
    let t = host(&c, "h1", 1).await;
    let n = t
        .netd
        .create_network(&overlay("ov", "10.250.0.0/24"))
        .await
        .unwrap();
    let o = n.overlay().expect("an overlay network");
    assert!(o.vni.get() >= 4096, "{}", o.vni);
    assert_eq!(o.bridge.mtu, Some(1450), "the VXLAN overhead taken off");
    assert_eq!(view(&t).networks[&n.name], n, "in the cluster as here");
    let vx = plan::overlay::vxlan(&n).unwrap();
    let w = t.k().world();
    assert_eq!(w.links[&vx.name].kind, "vxlan");
    assert_eq!(
        w.links[&vx.name].controller.as_deref(),
        Some(o.bridge.bridge.as_str())
    );
    drop(w);
    t.assert_consistent();
    // One name in the cluster: a second host's create is refused.
    let t2 = host(&c, "h2", 2).await;
    let before = t2.snapshot();
    let e = t2
        .netd
        .create_network(&overlay("ov", "10.251.0.0/24"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict, "{e}");
    let e = t2
        .netd
        .create_network(&overlay("ov2", "10.250.0.128/25"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("overlay network ov"), "{e}");
    assert_eq!(t2.snapshot(), before);
}

#[tokio::test]
async fn hosts_follow_the_cluster_and_take_distinct_addresses() {
    let c = FakeCluster::new();
    let t1 = host(&c, "h1", 1).await;
    let t2 = host(&c, "h2", 2).await;
    let n = t1.network_overlay("ov").await;
    assert!(t2.netd.follow_cluster(&view(&t2), false).await.unwrap());
    assert_eq!(t2.netd.network("ov").unwrap(), n, "same id, VNI, subnet");
    let a = t1.sandbox("a", "ov").await;
    let b = t2.sandbox("b", "ov").await;
    let (ia, ib) = (a.endpoints[0].endpoint.ip, b.endpoint_ip());
    assert_eq!(ia, Some("10.250.0.2".parse().unwrap()));
    assert_eq!(
        ib,
        Some("10.250.0.3".parse().unwrap()),
        "the cluster's IPAM, not h2's"
    );
    // Each host's forwarding entries name the other's endpoint.
    t1.netd.follow_cluster(&view(&t1), false).await.unwrap();
    let vx = plan::overlay::vxlan(&n).unwrap().name;
    let peers = &t1.k().world().vxlans[&vx].peers;
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].vtep, Ipv4Addr::new(192, 168, 50, 2));
    assert_eq!(peers[0].addrs, vec![std::net::IpAddr::V4(ib.unwrap())]);
    // And its names: h1 sees b as a remote row, not its own a.
    let rows = t1.netd.remote_rows(&view(&t1));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.name.as_str(), "b");
    let m = t1.netd.members("ov", "b").unwrap();
    assert_eq!(m.len(), 1, "a remote member for the load balancer");
    // The network stays while h2 has an endpoint on it.
    let e = t1.netd.remove_network("ov").await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict, "{e}");
    t2.netd.remove_sandbox("b", false).await.unwrap();
    assert!(view(&t1).endpoints.iter().all(|e| e.host != "h2"));
    t1.netd.remove_sandbox("a", false).await.unwrap();
    t1.netd.remove_network("ov").await.unwrap();
    assert!(t2.netd.follow_cluster(&view(&t2), false).await.unwrap());
    assert!(t2.netd.network("ov").is_err(), "gone from h2 too");
    t2.assert_consistent();
}

#[tokio::test]
async fn a_network_created_here_survives_a_view_that_lags_behind() {
    let c = FakeCluster::new();
    let t = host(&c, "h1", 1).await;
    let stale = view(&t);
    t.network_overlay("ov").await;
    // The watch has not brought it yet: not taken away for that.
    t.netd.follow_cluster(&stale, false).await.unwrap();
    assert!(t.netd.network("ov").is_ok());
    // Seen in a view, then gone from the cluster: removed here too.
    t.netd.follow_cluster(&view(&t), false).await.unwrap();
    c.remove_network_behind("ov");
    assert!(t.netd.follow_cluster(&view(&t), false).await.unwrap());
    assert!(t.netd.network("ov").is_err());
    // After a start, the first full read decides alone.
    t.network_overlay("ov2").await;
    c.remove_network_behind("ov2");
    assert!(t.netd.follow_cluster(&view(&t), true).await.unwrap());
    assert!(t.netd.network("ov2").is_err());
}

#[tokio::test]
async fn with_the_cluster_away_overlay_changes_are_refused_and_bridges_work() {
    let c = FakeCluster::new();
    let t = host(&c, "h1", 1).await;
    t.network_overlay("ov").await;
    t.sandbox("a", "ov").await;
    c.set_down(true);
    let before = t.snapshot();
    for e in [
        t.netd
            .create_sandbox(&sandbox("b", "ov"))
            .await
            .unwrap_err(),
        t.netd
            .create_network(&overlay("ov2", "10.251.0.0/24"))
            .await
            .unwrap_err(),
        t.netd.remove_sandbox("a", false).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), Kind::Unavailable, "{e}");
    }
    assert_eq!(t.snapshot(), before, "nothing changed");
    t.network("br", "10.31.0.0/24").await;
    t.sandbox("c", "br").await;
    c.set_down(false);
    t.sandbox("b", "ov").await;
    t.assert_consistent();
}

#[tokio::test]
async fn a_failed_attach_gives_its_addresses_back() {
    let c = FakeCluster::new();
    let t = host(&c, "h1", 1).await;
    t.network_overlay("ov").await;
    let before = t.snapshot();
    t.k().fail_after(1);
    t.netd
        .create_sandbox(&sandbox("a", "ov"))
        .await
        .unwrap_err();
    assert_eq!(t.snapshot(), before);
    let v = view(&t);
    assert!(v.endpoints.is_empty(), "{:?}", v.endpoints);
    let a = t.sandbox("a", "ov").await;
    assert_eq!(
        a.endpoints[0].endpoint.ip,
        Some("10.250.0.2".parse().unwrap())
    );
}

#[tokio::test]
async fn a_restarted_host_claims_and_publishes_its_endpoints_again() {
    let c = FakeCluster::new();
    let t = host(&c, "h1", 1).await;
    t.network_overlay("ov").await;
    t.sandbox("a", "ov").await;
    c.expire("h1");
    assert!(view(&t).endpoints.is_empty());
    c.join("h1", Ipv4Addr::new(192, 168, 50, 1));
    assert_eq!(t.netd.republish().await.unwrap(), 1);
    let v = view(&t);
    assert_eq!(v.endpoints.len(), 1);
    assert_eq!(v.endpoints[0].ip, Some("10.250.0.2".parse().unwrap()));
}

impl T {
    async fn network_overlay(&self, name: &str) -> Network {
        self.netd
            .create_network(&overlay(name, "10.250.0.0/24"))
            .await
            .expect("create overlay network")
    }
}

impl crate::ops::SandboxDetail {
    fn endpoint_ip(&self) -> Option<Ipv4Addr> {
        self.endpoints[0].endpoint.ip
    }
}
