//! Dual-stack networks against the fake kernel: both families planned,
//! applied and undone together.

use super::*;
use crate::error::Kind;

fn dual(name: &str, subnet: &str, subnet6: &str) -> NetworkCreate {
    NetworkCreate {
        ipv6: true,
        subnet6: Some(subnet6.into()),
        ..net(name, subnet)
    }
}

fn create_d1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&dual("d1", "10.60.0.0/24", "fd00:60::/64"))
            .await
            .map(|_| ())
    })
}

fn create_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&publishing("s1", "d1", &["8080:80"]))
            .await
            .map(|_| ())
    })
}

fn with_d1_and_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        create_d1(t).await?;
        t.network("v4", "10.61.0.0/24").await;
        t.netd
            .create_sandbox(&sandbox("s1", "v4"))
            .await
            .map(|_| ())
    })
}

fn connect_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let req = EndpointRequest {
            ip6: Some("fd00:60::99".parse().expect("v6")),
            ..Default::default()
        };
        t.netd.connect("d1", "s1", &req).await.map(|_| ())
    })
}

#[tokio::test]
async fn a_dual_stack_sandbox_gets_both_addresses_routes_and_bridge_sysctls() {
    let t = world().await;
    create_d1(&t).await.unwrap();
    let d = t.netd.create_sandbox(&sandbox("s1", "d1")).await.unwrap();
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    let key = (ns.clone(), "eth0".to_string());
    assert_eq!(w.ifaces[&key].to_string(), "10.60.0.2/24");
    assert_eq!(w.ifaces6[&key].to_string(), "fd00:60::2/64");
    assert_eq!(w.default_routes6[&ns].0.to_string(), "fd00:60::1");
    let bridge = t.bridge_of("d1");
    assert_eq!(w.sysctls[&format!("net/ipv6/conf/{bridge}/accept_ra")], "0");
    assert_eq!(w.sysctls["net/ipv6/conf/all/forwarding"], "1");
    t.assert_consistent();
}

#[tokio::test]
async fn dual_stack_network_create_fails_cleanly_at_every_kernel_step() {
    every_failure_point(nothing, create_d1).await;
}

#[tokio::test]
async fn dual_stack_sandbox_create_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(create_d1, create_s1).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn connecting_to_a_dual_stack_network_fails_cleanly_at_every_kernel_step() {
    every_failure_point(with_d1_and_s1, connect_s1).await;
}

#[tokio::test]
async fn an_ipv6_address_outside_or_on_an_ipv4_network_is_refused_before_any_kernel_call() {
    let t = world().await;
    with_d1_and_s1(&t).await.unwrap();
    let snap = t.snapshot();
    let calls = t.k().calls().len();
    let req = |ip6: &str| EndpointRequest {
        ip6: Some(ip6.parse().unwrap()),
        ..Default::default()
    };
    for ip6 in ["fd00:61::5", "fd00:60::1", "fd00:60::"] {
        let e = t.netd.connect("d1", "s1", &req(ip6)).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{ip6}: {e}");
        assert!(e.to_string().contains(ip6), "{e}");
    }
    let on_v4 = SandboxCreate {
        endpoint: req("fd00:60::5"),
        ..sandbox("s2", "v4")
    };
    let e = t.netd.create_sandbox(&on_v4).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(e.to_string().contains("no IPv6 subnet"), "{e}");
    assert_eq!(t.k().calls().len(), calls, "no kernel call");
    assert_eq!(t.snapshot(), snap);
}

#[tokio::test]
async fn disconnecting_the_network_with_the_ipv6_route_moves_it_to_the_next() {
    let t = world().await;
    create_d1(&t).await.unwrap();
    t.netd
        .create_network(&dual("d2", "10.62.0.0/24", "fd00:62::/64"))
        .await
        .unwrap();
    let d = t.netd.create_sandbox(&sandbox("s1", "d1")).await.unwrap();
    t.netd
        .connect("d2", "s1", &EndpointRequest::default())
        .await
        .unwrap();
    let ns = PathBuf::from(&d.netns);
    assert_eq!(
        t.k().world().default_routes6[&ns].0.to_string(),
        "fd00:60::1"
    );
    t.netd.disconnect("d1", "s1", false).await.unwrap();
    let w = t.k().world();
    assert_eq!(w.default_routes6[&ns].0.to_string(), "fd00:62::1");
    assert_eq!(w.default_routes[&ns].0.to_string(), "10.62.0.1");
    t.assert_consistent();
}

#[tokio::test]
async fn a_dual_stack_network_with_released_addresses_is_removed_whole() {
    let t = world().await;
    create_d1(&t).await.unwrap();
    for s in ["s1", "s2", "s3"] {
        t.netd.create_sandbox(&sandbox(s, "d1")).await.unwrap();
    }
    // s2's address joins the free list, then the network goes with it.
    t.netd.remove_sandbox("s2", false).await.unwrap();
    let again = t.netd.create_sandbox(&sandbox("s4", "d1")).await.unwrap();
    assert_eq!(
        again.endpoints[0].endpoint.ip6.unwrap().to_string(),
        "fd00:60::3"
    );
    t.netd.remove_sandbox("s4", false).await.unwrap();
    for s in ["s1", "s3"] {
        t.netd.remove_sandbox(s, false).await.unwrap();
    }
    t.netd.remove_network("d1").await.unwrap();
    let free: i64 = t
        .netd
        .store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM ip6_free", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(free, 0, "the free list goes with its network");
    // The same subnet is free again, starting from its first address.
    create_d1(&t).await.unwrap();
    let d = t.netd.create_sandbox(&sandbox("s5", "d1")).await.unwrap();
    assert_eq!(
        d.endpoints[0].endpoint.ip6.unwrap().to_string(),
        "fd00:60::2"
    );
    t.assert_consistent();
}
