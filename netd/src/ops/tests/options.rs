//! Docker's bridge options as a compose file passes them: accepted and
//! applied, those netd cannot honour refused naming them.

use std::collections::BTreeMap;

use super::*;
use crate::error::Kind;

fn compose(name: &str, extra: &[(&str, &str)]) -> NetworkCreate {
    let mut options: BTreeMap<String, String> = [
        (OPT_HOST_BINDING_V4, "192.0.2.10"),
        (OPT_GATEWAY_MODE_V4, "routed"),
        (OPT_MASQUERADE, "true"),
        (OPT_INHIBIT_V4, "false"),
        (OPT_IFACE_PREFIX, "ens"),
        (OPT_MTU, "1400"),
        (OPT_TRUSTED_IFACES, ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        options.insert(k.to_string(), v.to_string());
    }
    NetworkCreate {
        options,
        ..net(name, "10.72.0.0/24")
    }
}

#[tokio::test]
async fn compose_bridge_options_are_applied() {
    let t = world().await;
    let n = t.netd.create_network(&compose("web", &[])).await.unwrap();
    let b = n.bridge().unwrap();
    assert_eq!(b.mtu, Some(1400));
    // Routed: no masquerade, though enable_ip_masquerade says true.
    assert!(!b.ipv4.as_ref().unwrap().masquerade);
    let req = SandboxCreate {
        endpoint: EndpointRequest {
            ports: vec![
                "8080:80".parse().unwrap(),
                "127.0.0.1:8081:81".parse().unwrap(),
            ],
            ..Default::default()
        },
        ..sandbox("s1", "web")
    };
    let d = t.netd.create_sandbox(&req).await.unwrap();
    let e = &d.endpoints[0].endpoint;
    assert_eq!(e.ifname.as_str(), "ens0");
    // A port without a host address takes host_binding_ipv4; one with
    // its own keeps it.
    assert_eq!(e.ports[0].host_ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(e.ports[1].host_ip, Some("127.0.0.1".parse().unwrap()));
    let w = t.k().world();
    let table = w.table.unwrap();
    let el = table.ports.iter().find(|p| p.host_port == 8080).unwrap();
    assert_eq!(el.host_ip, Some("192.0.2.10".parse().unwrap()));
    let rules = table
        .networks
        .iter()
        .find(|r| r.subnet == b.ipv4.as_ref().map(|v| v.subnet))
        .unwrap();
    assert!(!rules.masquerade);
    // A second network connected to the sandbox: ens on its own prefix.
    t.network("plain", "10.73.0.0/24").await;
    let e2 = t
        .netd
        .connect("plain", "s1", &EndpointRequest::default())
        .await
        .unwrap();
    assert_eq!(e2.endpoint.ifname.as_str(), "eth0");
    t.assert_consistent();
}

#[tokio::test]
async fn bridge_options_netd_cannot_honour_are_refused_naming_them() {
    let t = world().await;
    for (k, v, want) in [
        (OPT_INHIBIT_V4, "yes", "inhibit_ipv4 \"yes\""),
        (
            OPT_TRUSTED_IFACES,
            "eth0::eth1",
            "\"\" is not an interface name",
        ),
        (
            OPT_TRUSTED_IFACES,
            "eth0:a/b",
            "\"a/b\" is not an interface name",
        ),
        (
            OPT_TRUSTED_IFACES,
            "eth0:averyveryverylongname",
            "\"averyveryverylongname\"",
        ),
        (
            OPT_TRUSTED_IFACES,
            "a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q",
            "17 interfaces, at most 16",
        ),
        (
            OPT_GATEWAY_MODE_V4,
            "nat-unprotected",
            "\"nat-unprotected\"",
        ),
        (OPT_HOST_BINDING_V4, "somewhere", "\"somewhere\""),
        (OPT_IFACE_PREFIX, "averylongprefix", "\"averylongprefix\""),
        (OPT_IFACE_PREFIX, "a b", "\"a b\""),
        ("com.docker.network.bridge.nonsense", "1", "bridge.nonsense"),
    ] {
        let e = t
            .netd
            .create_network(&compose("bad", &[(k, v)]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains(want), "{k}={v}: {e}");
    }
}

fn inhibited() -> NetworkCreate {
    let mut c = net("inh", "10.74.0.0/24");
    c.options.insert(OPT_INHIBIT_V4.into(), "true".into());
    c
}

fn create_inhibited(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.create_network(&inhibited()).await.map(|_| ()) })
}

fn create_s_on_inhibited(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&sandbox("s1", "inh"))
            .await
            .map(|_| ())
    })
}

/// `inhibit_ipv4=true`: the bridge holds no IPv4 address, not even after a
/// reconcile; the sandbox still gets its address and the gateway as its
/// default route. A plain network's bridge does get its gateway.
#[tokio::test]
async fn inhibit_ipv4_keeps_the_gateway_off_the_bridge_but_on_the_route() {
    let t = world().await;
    create_inhibited(&t).await.unwrap();
    t.network("plain", "10.75.0.0/24").await;
    let d = t.netd.create_sandbox(&sandbox("s1", "inh")).await.unwrap();
    let ns = std::path::PathBuf::from(&d.netns);
    let bridge = t.bridge_of("inh");
    let plain = t.bridge_of("plain");
    let w = t.k().world();
    assert!(w.bridge_addrs[&bridge].is_empty(), "{:?}", w.bridge_addrs);
    assert_eq!(
        w.bridge_addrs[&plain]
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["10.75.0.1/24"]
    );
    let key = (ns.clone(), "eth0".to_string());
    assert_eq!(w.ifaces[&key].to_string(), "10.74.0.2/24");
    assert_eq!(w.default_routes[&ns].0.to_string(), "10.74.0.1");
    // Lost addresses: the reconciler puts back the plain bridge's only.
    t.k().flush_bridge_addresses(&bridge);
    t.k().flush_bridge_addresses(&plain);
    t.netd.reconcile().await.unwrap();
    let w = t.k().world();
    assert!(w.bridge_addrs[&bridge].is_empty());
    assert_eq!(w.bridge_addrs[&plain].len(), 1);
    t.assert_consistent();
}

#[tokio::test]
async fn an_inhibited_network_create_fails_cleanly_at_every_kernel_step() {
    every_failure_point(nothing, create_inhibited).await;
}

#[tokio::test]
async fn a_sandbox_on_an_inhibited_network_fails_cleanly_at_every_kernel_step() {
    every_failure_point(create_inhibited, create_s_on_inhibited).await;
}

/// `trusted_host_interfaces`: the network's rules name the interfaces, and
/// the published ports of its containers (not of other networks') are
/// marked for direct access from them; they go with the sandbox.
#[tokio::test]
async fn trusted_host_interfaces_mark_published_ports_for_direct_access() {
    let t = world().await;
    let mut c = net("tr", "10.76.0.0/24");
    c.options
        .insert(OPT_TRUSTED_IFACES.into(), "mgmt0:vxlan.1".into());
    t.netd.create_network(&c).await.unwrap();
    t.network("plain", "10.77.0.0/24").await;
    t.netd
        .create_sandbox(&publishing("s1", "tr", &["8080:80"]))
        .await
        .unwrap();
    t.netd
        .create_sandbox(&publishing("s2", "plain", &["8081:81"]))
        .await
        .unwrap();
    let table = t.k().world().table.unwrap();
    let rules = |s: &str| {
        table
            .networks
            .iter()
            .find(|r| r.subnet == Some(s.parse().unwrap()))
            .unwrap()
            .trusted
            .clone()
    };
    assert_eq!(rules("10.76.0.0/24"), ["mgmt0", "vxlan.1"]);
    assert!(rules("10.77.0.0/24").is_empty());
    let el = |port: u16| table.ports.iter().find(|p| p.host_port == port).unwrap();
    assert!(el(8080).trusted);
    assert!(!el(8081).trusted);
    t.netd.remove_sandbox("s1", false).await.unwrap();
    let table = t.k().world().table.unwrap();
    assert!(table.ports.iter().all(|p| !p.trusted));
    t.assert_consistent();
}

fn create_trusted(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let mut c = net("tr", "10.76.0.0/24");
        c.options.insert(OPT_TRUSTED_IFACES.into(), "mgmt0".into());
        t.netd.create_network(&c).await.map(|_| ())
    })
}

fn publish_on_trusted(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&publishing("s1", "tr", &["8080:80"]))
            .await
            .map(|_| ())
    })
}

#[tokio::test]
async fn publishing_on_a_trusted_network_fails_cleanly_at_every_kernel_step() {
    every_failure_point(create_trusted, publish_on_trusted).await;
}
