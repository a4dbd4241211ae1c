//! Docker's LinkLocalIPs: addresses added to a sandbox's interface on one
//! network besides its own, at connect and at sandbox create, put back by
//! reconcile, and none left by a failed attach.

use super::*;
use crate::error::Kind;

fn ll(ips: &[&str]) -> EndpointRequest {
    EndpointRequest {
        link_local_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn nets(ips: &[&str]) -> Vec<ipnet::IpNet> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

fn with_two_networks(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd.create_network(&net("n1", "10.60.0.0/24")).await?;
        t.netd.create_network(&net("n2", "10.61.0.0/24")).await?;
        t.netd.create_sandbox(&sandbox("s1", "n1")).await?;
        Ok(())
    })
}

fn connect_n2_link_local(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .connect("n2", "s1", &ll(&["169.254.10.5", "fe80::10:5"]))
            .await
            .map(|_| ())
    })
}

fn with_n1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd.create_network(&net("n1", "10.60.0.0/24")).await?;
        Ok(())
    })
}

fn create_s1_link_local(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&SandboxCreate {
                endpoint: ll(&["169.254.7.7"]),
                ..sandbox("s1", "n1")
            })
            .await
            .map(|_| ())
    })
}

#[tokio::test]
async fn connect_adds_them_to_that_interface_only_and_inspect_shows_them() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    connect_n2_link_local(&t).await.unwrap();
    let d = t.netd.inspect_sandbox("s1").unwrap();
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    // Link-local prefixes, as Docker adds them: /16 and /64.
    assert_eq!(
        w.link_local[&(ns.clone(), "eth1".into())],
        nets(&["169.254.10.5/16", "fe80::10:5/64"])
    );
    assert!(!w.link_local.contains_key(&(ns.clone(), "eth0".into())));
    // Its own address is still there, beside them.
    assert!(w.ifaces.contains_key(&(ns, "eth1".into())));
    let ep = &d.endpoints[1].endpoint;
    assert_eq!(
        ep.link_local_ips,
        [
            "169.254.10.5".parse::<std::net::IpAddr>().unwrap(),
            "fe80::10:5".parse().unwrap()
        ]
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["endpoints"][1]["link_local_ips"],
        serde_json::json!(["169.254.10.5", "fe80::10:5"]),
        "{json}"
    );
    // None asked, none written.
    assert!(
        json["endpoints"][0].get("link_local_ips").is_none(),
        "{json}"
    );
    t.assert_consistent();

    // Disconnect takes them with the interface.
    t.netd.disconnect("n2", "s1", false).await.unwrap();
    assert!(t.k().world().link_local.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn connect_with_them_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(with_two_networks, connect_n2_link_local).await;
    assert!(steps >= 3 && failed > 0, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn sandbox_create_with_them_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(with_n1, create_s1_link_local).await;
    assert!(steps >= 3 && failed > 0, "{steps} steps, {failed} failed");
    let t = world().await;
    with_n1(&t).await.unwrap();
    create_s1_link_local(&t).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s1").unwrap().netns);
    assert_eq!(
        t.k().world().link_local[&(ns, "eth0".into())],
        nets(&["169.254.7.7/16"])
    );
}

#[tokio::test]
async fn what_is_not_link_local_is_refused_naming_it_and_nothing_changes() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let before = t.snapshot();
    for (ips, want) in [
        (&["10.61.0.9"][..], "10.61.0.9 is not link-local"),
        (
            &["169.254.1.1", "fe80::1", "169.254.1.1"],
            "169.254.1.1 is given twice",
        ),
        (&["2001:db8::1"], "2001:db8::1 is not link-local"),
    ] {
        let e = t.netd.connect("n2", "s1", &ll(ips)).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains(want), "{ips:?}: {e}");
        assert_eq!(t.snapshot(), before);
    }
    let many: Vec<String> = (0..17).map(|i| format!("169.254.3.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = t.netd.connect("n2", "s1", &ll(&many)).await.unwrap_err();
    assert!(
        e.to_string().contains("too many link-local addresses (17)"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn reconcile_puts_lost_ones_back() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    connect_n2_link_local(&t).await.unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s1").unwrap().netns);
    t.k().drop_link_local_behind(&ns, "eth1");
    let r = t.netd.reconcile().await.unwrap();
    assert!(r.failures.is_empty(), "{r:?}");
    assert_eq!(
        t.k().world().link_local[&(ns, "eth1".into())],
        nets(&["169.254.10.5/16", "fe80::10:5/64"])
    );
    t.assert_consistent();
}

#[test]
fn an_endpoint_record_from_before_reads_with_none() {
    use crate::model::fixtures;
    let n = fixtures::network("n", "10.1.0.0/24");
    let s = fixtures::sandbox("s");
    let mut v = serde_json::to_value(fixtures::endpoint(&n, &s, "10.1.0.2", &[], &[])).unwrap();
    v.as_object_mut().unwrap().remove("link_local_ips");
    let ep: Endpoint = serde_json::from_value(v).unwrap();
    assert!(ep.link_local_ips.is_empty());
}
