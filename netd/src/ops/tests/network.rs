//! Networks against the fake kernel.

use super::*;
use crate::error::Kind;

fn create_n1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&net("n1", "10.50.0.0/24"))
            .await
            .map(|_| ())
    })
}

fn remove_n1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.remove_network("n1").await.map(|_| ()) })
}

#[tokio::test]
async fn create_makes_the_bridge_its_sysctls_and_its_rules() {
    let t = world().await;
    let n = t.network("n1", "10.50.0.0/24").await;
    let b = n.bridge().unwrap().bridge.to_string();
    let w = t.k().world();
    assert_eq!(w.links[&b].kind, "bridge");
    assert_eq!(w.sysctls[&format!("net/ipv4/conf/{b}/route_localnet")], "1");
    assert_eq!(w.sysctls["net/ipv4/ip_forward"], "1");
    let table = w.table.unwrap();
    assert!(table.networks.iter().any(|r| r.bridge == b && r.masquerade));
    t.assert_consistent();
}

#[tokio::test]
async fn create_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(nothing, create_n1).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn a_bridge_name_taken_by_another_kind_of_link_is_a_conflict_naming_it() {
    let t = world().await;
    t.k().add_foreign_link("br-taken", "dummy");
    let before = t.snapshot();
    let req = NetworkCreate {
        options: [(
            "com.docker.network.bridge.name".to_string(),
            "br-taken".to_string(),
        )]
        .into(),
        ..net("n1", "10.50.0.0/24")
    };
    let e = t.netd.create_network(&req).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(e.to_string().contains("br-taken"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_link_that_appears_between_the_check_and_the_create_is_never_taken() {
    // The name was free at the check; by the time the bridge is made a
    // dummy link holds it. The driver refuses it, and the rollback must
    // not delete a link netd did not make.
    let t = world().await;
    let n = t.network("n1", "10.50.0.0/24").await;
    let b = n.bridge().unwrap().bridge.to_string();
    t.netd.remove_network("n1").await.unwrap();
    t.k().add_foreign_link(&b, "dummy");
    let e = crate::driver::of::<FakeKernel>(&n.driver)
        .create(t.k(), &n)
        .await
        .unwrap_err();
    assert!(e.is_taken(), "{e}");
    assert_eq!(t.k().world().links[&b].kind, "dummy");
}

#[tokio::test]
async fn a_subnet_on_a_host_route_is_refused_and_a_picked_one_avoids_it() {
    let t = world().await;
    t.k()
        .add_route("10.60.0.0/16".parse::<ipnet::Ipv4Net>().unwrap());
    let before = t.snapshot();
    let e = t
        .netd
        .create_network(&net("n1", "10.60.1.0/24"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(e.to_string().contains("10.60.0.0/16"), "{e}");
    assert_eq!(t.snapshot(), before);
    let picked = t
        .netd
        .create_network(&NetworkCreate {
            name: "auto".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = picked.bridge().unwrap().ipv4.as_ref().unwrap().subnet;
    assert!(!s.contains(&"10.60.0.1".parse::<std::net::Ipv4Addr>().unwrap()));
}

#[tokio::test]
async fn a_taken_network_name_is_a_conflict_and_changes_nothing() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let before = t.snapshot();
    let e = t
        .netd
        .create_network(&net("n1", "10.51.0.0/24"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn remove_deletes_the_bridge_and_its_rules() {
    let t = world().await;
    let n = t.network("n1", "10.50.0.0/24").await;
    t.netd.remove_network("n1").await.unwrap();
    let w = t.k().world();
    assert!(!w.links.contains_key(n.bridge().unwrap().bridge.as_str()));
    assert!(
        w.table
            .unwrap()
            .networks
            .iter()
            .all(|r| r.subnet != n.bridge().unwrap().ipv4.as_ref().map(|v| v.subnet))
    );
    t.assert_consistent();
}

#[tokio::test]
async fn remove_with_endpoints_is_a_conflict_naming_them_and_keeps_all() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("s1", "n1").await;
    let before = t.snapshot();
    let e = t.netd.remove_network("n1").await.unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(e.to_string().contains("s1"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn predefined_networks_cannot_be_removed() {
    let t = world().await;
    for name in ["bridge", "host", "none"] {
        let e = t.netd.remove_network(name).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Forbidden, "{name}");
    }
}

#[tokio::test]
async fn predefined_names_cannot_be_created() {
    let t = world().await;
    for name in ["bridge", "host", "none"] {
        let e = t
            .netd
            .create_network(&net(name, "10.74.0.0/24"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Forbidden, "{name}");
        assert!(e.to_string().contains("pre-defined"), "{e}");
    }
}

#[tokio::test]
async fn removing_what_does_not_exist_is_not_found() {
    let t = world().await;
    let e = t.netd.remove_network("nope").await.unwrap_err();
    assert_eq!(e.kind(), Kind::NotFound);
}

#[tokio::test]
async fn a_failed_bridge_removal_is_a_kernel_error_after_the_record_went() {
    // The store decides first: the record goes, the bridge left behind is
    // an orphan that reconcile removes.
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.k().fail_after(0);
    let e = remove_n1(&t).await.unwrap_err();
    assert!(matches!(e, Error::Kernel(_)), "{e}");
    assert!(t.netd.network("n1").is_err());
    let report = t.netd.reconcile().await.unwrap();
    assert_eq!(report.orphans_removed.len(), 1, "{report:?}");
    t.assert_consistent();
}

#[tokio::test]
async fn prune_removes_only_unused_user_networks_that_match() {
    let t = world().await;
    t.network("keep-used", "10.50.0.0/24").await;
    t.network("drop-me", "10.51.0.0/24").await;
    t.network("not-matched", "10.52.0.0/24").await;
    t.sandbox("s1", "keep-used").await;
    let removed = t
        .netd
        .prune_networks(|n| n.name.as_str() != "not-matched")
        .await
        .unwrap();
    assert_eq!(removed, vec!["drop-me".to_string()]);
    assert!(t.netd.network("keep-used").is_ok() && t.netd.network("not-matched").is_ok());
    assert!(t.netd.network("bridge").is_ok());
    t.assert_consistent();
}

#[tokio::test]
async fn members_are_the_endpoints_answering_to_a_name_or_alias() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    for s in ["a", "b"] {
        let req = SandboxCreate {
            endpoint: EndpointRequest {
                aliases: vec!["web".into()],
                ..Default::default()
            },
            ..sandbox(s, "n1")
        };
        t.netd.create_sandbox(&req).await.unwrap();
    }
    t.sandbox("c", "n1").await;
    let mut web: Vec<String> = t
        .netd
        .members("n1", "WEB.")
        .unwrap()
        .into_iter()
        .map(|m| m.sandbox_name.to_string())
        .collect();
    web.sort();
    assert_eq!(web, ["a", "b"]);
    assert_eq!(t.netd.members("n1", "c").unwrap().len(), 1);
}
