//! Connect and disconnect against the fake kernel.

use super::*;
use crate::error::Kind;

fn with_two_networks(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd.create_network(&net("n1", "10.50.0.0/24")).await?;
        t.netd.create_network(&net("n2", "10.51.0.0/24")).await?;
        t.netd.create_sandbox(&sandbox("s1", "n1")).await?;
        Ok(())
    })
}

fn connect_n2(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .connect("n2", "s1", &ports_req(&["8081:81"]))
            .await
            .map(|_| ())
    })
}

fn with_connected(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        with_two_networks(t).await?;
        connect_n2(t).await
    })
}

#[tokio::test]
async fn connect_adds_an_interface_and_publishes_its_ports() {
    let t = world().await;
    with_connected(&t).await.unwrap();
    let d = t.netd.inspect_sandbox("s1").unwrap();
    assert_eq!(d.endpoints.len(), 2);
    let w = t.k().world();
    let ns = PathBuf::from(&d.netns);
    assert!(w.ifaces.contains_key(&(ns.clone(), "eth1".into())));
    // The first network keeps the default route.
    assert_eq!(w.default_routes[&ns].1, "eth0");
    assert_eq!(w.table.as_ref().unwrap().ports.len(), 1);
    t.assert_consistent();
}

#[tokio::test]
async fn connect_fails_cleanly_at_every_kernel_step() {
    let (steps, _) = every_failure_point(with_two_networks, connect_n2).await;
    assert!(steps >= 3, "{steps} steps");
}

#[tokio::test]
async fn connecting_twice_is_a_conflict_and_changes_nothing() {
    let t = world().await;
    with_connected(&t).await.unwrap();
    let before = t.snapshot();
    let e = connect_n2(&t).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn host_and_none_sandboxes_cannot_connect() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("h", "host").await;
    t.sandbox("z", "none").await;
    let before = t.snapshot();
    for (s, why) in [("h", "host's network namespace"), ("z", "--network none")] {
        let e = t
            .netd
            .connect("n1", s, &EndpointRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid);
        assert!(e.to_string().contains(why), "{e}");
    }
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn nothing_connects_to_host_or_none_after_creation() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("s1", "n1").await;
    for n in ["host", "none"] {
        let e = t
            .netd
            .connect(n, "s1", &EndpointRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{n}");
    }
}

#[tokio::test]
async fn connect_with_a_held_port_changes_nothing() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    t.k().hold_port(8081);
    let before = t.snapshot();
    let e = connect_n2(&t).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn disconnect_removes_pair_and_ports_and_moves_the_default_route() {
    let t = world().await;
    with_connected(&t).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s1").unwrap().netns);
    t.netd.disconnect("n1", "s1", false).await.unwrap();
    let w = t.k().world();
    assert!(!w.ifaces.contains_key(&(ns.clone(), "eth0".into())));
    // The route left with eth0; n2's gateway takes over.
    assert_eq!(
        w.default_routes[&ns],
        ("10.51.0.1".parse().unwrap(), "eth1".into())
    );
    t.assert_consistent();
    t.netd.disconnect("n2", "s1", false).await.unwrap();
    assert!(t.k().world().table.unwrap().ports.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn disconnecting_what_is_not_connected_is_not_found() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let e = t.netd.disconnect("n2", "s1", false).await.unwrap_err();
    assert_eq!(e.kind(), Kind::NotFound);
    assert!(e.to_string().contains("not connected"), "{e}");
    let e = t.netd.disconnect("n2", "nobody", false).await.unwrap_err();
    assert_eq!(e.kind(), Kind::NotFound);
}

#[tokio::test]
async fn a_failed_disconnect_keeps_the_endpoint_unless_forced() {
    let t = world().await;
    with_connected(&t).await.unwrap();
    let before = t.snapshot();
    t.k().fail_after(0);
    let e = t.netd.disconnect("n2", "s1", false).await.unwrap_err();
    assert!(matches!(e, Error::Kernel(_)));
    assert_eq!(t.snapshot(), before);
    t.k().fail_after(0);
    t.netd.disconnect("n2", "s1", true).await.unwrap();
    assert_eq!(t.netd.inspect_sandbox("s1").unwrap().endpoints.len(), 1);
}

#[tokio::test]
async fn deferred_removal_retires_the_pair_and_hands_over_the_veth() {
    let dir = world().await;
    let t = T {
        netd: Netd::with_kernel(
            &dir.dir().join("state2"),
            FakeKernel::new(&dir.dir().join("run2")),
        )
        .await
        .unwrap()
        .defer_link_removal(),
        dir: dir.dir().join("x"),
    };
    t.netd.sync_firewall().await.unwrap();
    with_connected(&t).await.unwrap();
    let veth = t.netd.inspect_sandbox("s1").unwrap().endpoints[1]
        .host_veth
        .to_string();
    t.netd.disconnect("n2", "s1", false).await.unwrap();
    assert_eq!(t.netd.take_deferred_links(), vec![veth.clone()]);
    assert!(t.netd.take_deferred_links().is_empty());
    let w = t.k().world();
    // Still there, its sandbox end renamed out of the way.
    assert!(w.links.contains_key(&veth));
    assert!(!w.ifaces.keys().any(|(_, n)| n == "eth1"));
    // A reconcile finishes the removal.
    let r = t.netd.reconcile().await.unwrap();
    assert_eq!(r.orphans_removed, vec![veth]);
}

#[tokio::test]
async fn an_attach_that_remakes_the_bridge_puts_the_other_veths_back() {
    let t = world().await;
    let n = t.network("n1", "10.50.0.0/24").await;
    let a = t.sandbox("a", "n1").await;
    let bridge = n.bridge().unwrap().bridge.to_string();
    t.k().delete_behind(&bridge);
    assert_eq!(
        t.k().world().links[a.endpoints[0].host_veth.as_str()].controller,
        None
    );
    t.sandbox("b", "n1").await;
    let w = t.k().world();
    assert_eq!(
        w.links[a.endpoints[0].host_veth.as_str()]
            .controller
            .as_deref(),
        Some(bridge.as_str())
    );
    t.assert_consistent();
}

#[tokio::test]
async fn an_ipv6_host_address_on_an_ipv4_network_is_refused_and_changes_nothing() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let before = t.snapshot();
    let calls = t.k().calls().len();
    let e = t
        .netd
        .connect("n2", "s1", &ports_req(&["[2001:db8::1]:8081:81"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
    assert!(e.to_string().contains("[2001:db8::1]"), "{e}");
    assert_eq!(t.snapshot(), before);
    assert_eq!(t.k().calls().len(), calls, "the kernel was touched");
}

#[tokio::test]
async fn a_dual_stack_endpoint_publishes_each_port_on_both_families() {
    let t = world().await;
    let req = NetworkCreate {
        ipv6: true,
        subnet6: Some("fd00:52::/64".into()),
        ..net("d", "10.52.0.0/24")
    };
    t.netd.create_network(&req).await.unwrap();
    t.netd
        .create_sandbox(&publishing(
            "s2",
            "d",
            &["8080:80", "[::]:8443:443", "0.0.0.0:81:81"],
        ))
        .await
        .unwrap();
    let w = t.k().world();
    let ports = &w.table.as_ref().unwrap().ports;
    let fam = |port: u16| -> Vec<bool> {
        ports
            .iter()
            .filter(|p| p.host_port == port)
            .map(|p| p.addr.is_ipv6())
            .collect()
    };
    assert_eq!(fam(8080), vec![false, true]);
    assert_eq!(fam(8443), vec![true]);
    assert_eq!(fam(81), vec![false]);
    assert!(
        w.table
            .as_ref()
            .unwrap()
            .networks
            .iter()
            .any(|n| n.masquerade6)
    );
    // Removing the sandbox withdraws every element of both families.
    t.netd.remove_sandbox("s2", false).await.unwrap();
    assert!(t.k().world().table.as_ref().unwrap().ports.is_empty());
    t.assert_consistent();
}
