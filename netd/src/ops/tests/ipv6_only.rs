//! IPv6-only networks (Docker's `--ipv4=false`) against the fake kernel:
//! no IPv4 anywhere, everything IPv6 as on a dual-stack network.

use super::*;
use crate::error::Kind;

fn v6only(name: &str, subnet6: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        ipv4: Some(false),
        ipv6: true,
        subnet6: Some(subnet6.into()),
        ..Default::default()
    }
}

fn create_o1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&v6only("o1", "fd00:70::/64"))
            .await
            .map(|_| ())
    })
}

fn create_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&publishing("s1", "o1", &["8080:80"]))
            .await
            .map(|_| ())
    })
}

#[tokio::test]
async fn an_ipv6_only_sandbox_has_no_ipv4_at_all() {
    let t = world().await;
    create_o1(&t).await.unwrap();
    let d = t
        .netd
        .create_sandbox(&publishing("s1", "o1", &["8080:80"]))
        .await
        .unwrap();
    let ep = &d.endpoints[0].endpoint;
    assert_eq!((ep.ip, ep.ip6), (None, Some("fd00:70::2".parse().unwrap())));
    assert_eq!(
        ep.mac.to_string(),
        "02:42:00:00:00:02",
        "from the IPv6 address"
    );
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    let key = (ns.clone(), "eth0".to_string());
    assert!(
        !w.ifaces.contains_key(&key),
        "an IPv4 address: {:?}",
        w.ifaces
    );
    assert_eq!(w.ifaces6[&key].to_string(), "fd00:70::2/64");
    assert!(!w.default_routes.contains_key(&ns), "an IPv4 default route");
    assert_eq!(w.default_routes6[&ns].0.to_string(), "fd00:70::1");
    let table = w.table.as_ref().unwrap();
    let rules = table
        .networks
        .iter()
        .find(|r| r.subnet6.is_some())
        .expect("the network's rules");
    assert_eq!(rules.subnet, None);
    assert_eq!(rules.subnet6.unwrap().to_string(), "fd00:70::/64");
    assert!(!rules.masquerade && rules.masquerade6);
    // `-p 8080:80` is published on IPv6 only: there is no IPv4 address.
    assert_eq!(table.ports.len(), 1, "{:?}", table.ports);
    assert!(table.ports[0].addr.is_ipv6());
    t.assert_consistent();
}

#[tokio::test]
async fn ipv6_only_network_create_fails_cleanly_at_every_kernel_step() {
    every_failure_point(nothing, create_o1).await;
}

#[tokio::test]
async fn ipv6_only_sandbox_create_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(create_o1, create_s1).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn ipv4_asks_on_an_ipv6_only_network_are_refused_before_any_kernel_call() {
    let t = world().await;
    create_o1(&t).await.unwrap();
    let snap = t.snapshot();
    let calls = t.k().calls().len();
    let with_ip = SandboxCreate {
        endpoint: EndpointRequest {
            ip: Some("10.70.0.5".parse().unwrap()),
            ..Default::default()
        },
        ..sandbox("s2", "o1")
    };
    let e = t.netd.create_sandbox(&with_ip).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(
        e.to_string().contains("10.70.0.5") && e.to_string().contains("IPv6-only"),
        "{e}"
    );
    let on_v4_host = publishing("s3", "o1", &["127.0.0.1:8081:80"]);
    let e = t.netd.create_sandbox(&on_v4_host).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(e.to_string().contains("IPv6-only"), "{e}");
    for bad in [
        NetworkCreate {
            ipv6: false,
            subnet6: None,
            ..v6only("o2", "fd00:71::/64")
        },
        NetworkCreate {
            subnet: Some("10.71.0.0/24".into()),
            ..v6only("o2", "fd00:71::/64")
        },
    ] {
        let e = t.netd.create_network(&bad).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
    }
    assert_eq!(t.k().calls().len(), calls, "no kernel call");
    assert_eq!(t.snapshot(), snap);
}

#[tokio::test]
async fn a_sandbox_on_an_ipv6_only_and_an_ipv4_network_takes_one_default_route_from_each() {
    let t = world().await;
    create_o1(&t).await.unwrap();
    t.network("v4", "10.72.0.0/24").await;
    let d = t.netd.create_sandbox(&sandbox("s1", "o1")).await.unwrap();
    t.netd
        .connect("v4", "s1", &EndpointRequest::default())
        .await
        .unwrap();
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    assert_eq!(w.default_routes[&ns].0.to_string(), "10.72.0.1");
    assert_eq!(w.default_routes6[&ns].0.to_string(), "fd00:70::1");
    drop(w);
    t.netd.disconnect("o1", "s1", false).await.unwrap();
    let w = t.k().world();
    assert!(!w.default_routes6.contains_key(&ns));
    assert_eq!(w.default_routes[&ns].0.to_string(), "10.72.0.1");
    drop(w);
    t.assert_consistent();
}
