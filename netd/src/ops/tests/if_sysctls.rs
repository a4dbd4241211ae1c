//! Docker's endpoint driver options: the interface's name
//! (`com.docker.network.endpoint.ifname`) and its sysctls
//! (`com.docker.network.endpoint.sysctls`), written to that interface in
//! the sandbox at attach, gone with it, and none left by a failed attach.

use super::*;
use crate::error::Kind;
use crate::model::EndpointOpts;

fn opts(pairs: &[(&str, &str)]) -> EndpointRequest {
    let o = EndpointOpts::parse(pairs.iter().copied()).unwrap();
    EndpointRequest {
        ifname: o.ifname,
        sysctls: o.sysctls,
        ..Default::default()
    }
}

fn web0() -> EndpointRequest {
    opts(&[
        ("com.docker.network.endpoint.ifname", "web0"),
        (
            "com.docker.network.endpoint.sysctls",
            "net.ipv4.conf.IFNAME.log_martians=1,net.ipv6.conf.IFNAME.accept_ra=2",
        ),
    ])
}

fn with_two_networks(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd.create_network(&net("n1", "10.62.0.0/24")).await?;
        t.netd.create_network(&net("n2", "10.63.0.0/24")).await?;
        t.netd.create_sandbox(&sandbox("s1", "n1")).await?;
        Ok(())
    })
}

fn connect_n2_web0(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.connect("n2", "s1", &web0()).await.map(|_| ()) })
}

#[tokio::test]
async fn connect_names_the_interface_and_sets_its_sysctls_only() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    connect_n2_web0(&t).await.unwrap();
    let d = t.netd.inspect_sandbox("s1").unwrap();
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    assert!(w.ifaces.contains_key(&(ns.clone(), "web0".into())));
    let set = &w.iface_sysctls[&(ns.clone(), "web0".into())];
    assert_eq!(set["net/ipv4/conf/web0/log_martians"], "1");
    assert_eq!(set["net/ipv6/conf/web0/accept_ra"], "2");
    assert_eq!(set.len(), 2);
    // The other interface got none.
    assert!(!w.iface_sysctls.contains_key(&(ns.clone(), "eth0".into())));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["endpoints"][1]["sysctls"],
        serde_json::json!([
            "net.ipv4.conf.IFNAME.log_martians=1",
            "net.ipv6.conf.IFNAME.accept_ra=2"
        ]),
        "{json}"
    );
    assert!(json["endpoints"][0].get("sysctls").is_none(), "{json}");
    t.assert_consistent();

    // Disconnect takes them with the interface.
    t.netd.disconnect("n2", "s1", false).await.unwrap();
    assert!(t.k().world().iface_sysctls.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn connect_with_them_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(with_two_networks, connect_n2_web0).await;
    assert!(steps >= 3 && failed > 0, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn a_sysctl_the_kernel_lacks_fails_the_connect_and_leaves_nothing() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let before = t.snapshot();
    let req = opts(&[(
        "com.docker.network.endpoint.sysctls",
        "net.ipv4.conf.IFNAME.log_martians=1,net.ipv4.conf.IFNAME.no_such_key=1",
    )]);
    let e = t.netd.connect("n2", "s1", &req).await.unwrap_err();
    assert!(e.to_string().contains("no_such_key"), "{e}");
    assert_eq!(t.snapshot(), before);
    t.assert_consistent();
}

#[tokio::test]
async fn a_name_taken_in_the_sandbox_is_a_conflict_and_nothing_changes() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let before = t.snapshot();
    let req = opts(&[("com.docker.network.endpoint.ifname", "eth0")]);
    let e = t.netd.connect("n2", "s1", &req).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict, "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn the_same_setting_twice_is_refused_and_nothing_changes() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    let before = t.snapshot();
    let mut req = web0();
    req.sysctls.push(req.sysctls[0].clone());
    let e = t.netd.connect("n2", "s1", &req).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(e.to_string().contains("given twice"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn sandbox_create_takes_them_too() {
    let t = world().await;
    t.netd
        .create_network(&net("n1", "10.62.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_sandbox(&SandboxCreate {
            endpoint: web0(),
            ..sandbox("s1", "n1")
        })
        .await
        .unwrap();
    let ns = PathBuf::from(t.netd.inspect_sandbox("s1").unwrap().netns);
    let w = t.k().world();
    assert_eq!(
        w.iface_sysctls[&(ns, "web0".into())]["net/ipv4/conf/web0/log_martians"],
        "1"
    );
    t.assert_consistent();
}

#[test]
fn an_endpoint_record_from_before_reads_with_none() {
    use crate::model::fixtures;
    let n = fixtures::network("n", "10.1.0.0/24");
    let s = fixtures::sandbox("s");
    let v = serde_json::to_value(fixtures::endpoint(&n, &s, "10.1.0.2", &[], &[])).unwrap();
    assert!(v.get("sysctls").is_none(), "{v}");
    let ep: Endpoint = serde_json::from_value(v).unwrap();
    assert!(ep.sysctls.is_empty());
}

/// A setting changed by hand in the sandbox is put back by reconcile, as
/// an address or route would be; the others stay as they are.
#[tokio::test]
async fn reconcile_puts_back_a_setting_changed_by_hand() {
    let t = world().await;
    with_two_networks(&t).await.unwrap();
    connect_n2_web0(&t).await.unwrap();
    let ns = PathBuf::from(&t.netd.inspect_sandbox("s1").unwrap().netns);
    let key = "net/ipv4/conf/web0/log_martians";
    t.k().set_iface_sysctl_behind(&ns, "web0", key, "0");
    t.k()
        .set_iface_sysctl_behind(&ns, "web0", "net/ipv4/conf/web0/rp_filter", "2");
    t.netd.reconcile().await.unwrap();
    let w = t.k().world();
    let set = &w.iface_sysctls[&(ns, "web0".into())];
    assert_eq!(set[key], "1");
    assert_eq!(set["net/ipv4/conf/web0/rp_filter"], "2", "not netd's: left");
}
