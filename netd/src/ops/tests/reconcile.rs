//! Reconcile and link repair against the fake kernel.

use std::collections::HashSet;

use super::*;

async fn populated() -> T {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.netd
        .create_sandbox(&publishing("a", "n1", &["8080:80"]))
        .await
        .unwrap();
    t.sandbox("b", "n1").await;
    t
}

#[tokio::test]
async fn reconcile_makes_a_deleted_bridge_and_its_veths_again() {
    let t = populated().await;
    let b = t.bridge_of("n1");
    t.k().delete_behind(&b);
    let a = t.netd.inspect_sandbox("a").unwrap().endpoints[0]
        .host_veth
        .to_string();
    t.k().delete_behind(&a);
    let r = t.netd.reconcile().await.unwrap();
    assert!(r.failures.is_empty(), "{r:?}");
    assert_eq!(r.endpoints, 2);
    t.assert_consistent();
}

#[tokio::test]
async fn reconcile_removes_links_with_netds_names_and_no_record() {
    let t = populated().await;
    t.k().add_foreign_link("nd-0123456789", "bridge");
    t.k().add_foreign_link("ndv-deadbeef01", "veth");
    t.k().add_foreign_link("eth9", "dummy");
    let r = t.netd.reconcile().await.unwrap();
    let mut gone = r.orphans_removed.clone();
    gone.sort();
    assert!(!gone.iter().any(|n| n == "eth9"), "{gone:?}");
    assert!(t.k().world().links.contains_key("eth9"));
    t.assert_consistent();
}

#[tokio::test]
async fn reconcile_makes_a_lost_namespace_of_netds_again() {
    let t = populated().await;
    let d = t.netd.inspect_sandbox("b").unwrap();
    t.k()
        .delete_namespace_behind(std::path::Path::new(&d.netns));
    let r = t.netd.reconcile().await.unwrap();
    assert_eq!(r.namespaces_recreated, vec!["b".to_string()]);
    t.assert_consistent();
}

#[tokio::test]
async fn reconcile_puts_the_firewall_table_back() {
    let t = populated().await;
    let before = t.k().world().table;
    t.k().flush_ruleset();
    t.netd.reconcile().await.unwrap();
    assert_eq!(t.k().world().table, before);
    t.assert_consistent();
}

#[tokio::test]
async fn reconcile_reports_failures_and_goes_on() {
    let t = populated().await;
    let b = t.bridge_of("n1");
    t.k().delete_behind(&b);
    t.k().fail_after(1);
    let r = t.netd.reconcile().await.unwrap();
    assert!(!r.failures.is_empty(), "{r:?}");
    let r = t.netd.reconcile().await.unwrap();
    assert!(r.failures.is_empty(), "{r:?}");
    t.assert_consistent();
}

#[tokio::test]
async fn repair_puts_back_known_links_only() {
    let t = populated().await;
    let a = t.netd.inspect_sandbox("a").unwrap().endpoints[0]
        .host_veth
        .to_string();
    t.k().delete_behind(&a);
    let deleted: HashSet<String> = [a.clone(), "ndv-unknown0001".to_string()].into();
    let r = t.netd.repair_links(&deleted).await.unwrap();
    assert_eq!(r.veths, vec![a]);
    assert!(r.failures.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn repairing_a_deleted_bridge_puts_every_veth_back() {
    let t = populated().await;
    let b = t.bridge_of("n1");
    t.k().delete_behind(&b);
    let r = t.netd.repair_links(&[b.clone()].into()).await.unwrap();
    assert_eq!(r.bridges, vec![b]);
    assert_eq!(r.veths.len(), 2);
    t.assert_consistent();
}
