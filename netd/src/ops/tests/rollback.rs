//! The rollback guard and events.

use super::*;
use crate::ops::rollback::{Rollback, Undo};

#[tokio::test]
async fn the_firewall_is_taken_back_last_from_the_store_as_it_was() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let before = t.snapshot();
    // A network recorded and in the table, then rolled back with the
    // firewall registered first: the rebuild must not see the record.
    let n = t.network("n2", "10.51.0.0/24").await;
    let mut rb = Rollback::new(&t.netd);
    rb.push(Undo::Firewall);
    rb.push(Undo::NetworkRecord(n.id.clone()));
    rb.push(Undo::Link(n.bridge().unwrap().bridge.to_string()));
    let e = rb.fail(Error::Conflict("test".into())).await;
    assert!(matches!(e, Error::Conflict(_)));
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_busy_failure_does_not_wait_for_the_firewall_again() {
    let t = world().await;
    let n = t.network("n2", "10.51.0.0/24").await;
    let calls = t.k().count();
    let mut rb = Rollback::new(&t.netd);
    rb.push(Undo::Firewall);
    rb.push(Undo::NetworkRecord(n.id.clone()));
    rb.fail(Error::Busy("held".into())).await;
    assert!(
        !t.k().calls()[calls..].iter().any(|c| c == "apply_firewall"),
        "{:?}",
        &t.k().calls()[calls..]
    );
}

#[tokio::test]
async fn a_committed_rollback_undoes_nothing() {
    let t = world().await;
    let n = t.network("n1", "10.50.0.0/24").await;
    let before = t.snapshot();
    let mut rb = Rollback::new(&t.netd);
    rb.push(Undo::NetworkRecord(n.id.clone()));
    rb.commit();
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn every_change_is_an_event_in_order() {
    let t = world().await;
    let mut rx = t.netd.subscribe();
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("s1", "n1").await;
    t.netd.disconnect("n1", "s1", false).await.unwrap();
    t.netd.remove_sandbox("s1", false).await.unwrap();
    t.netd.remove_network("n1").await.unwrap();
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        got.push(format!("{} {}", e.kind, e.action));
    }
    assert_eq!(
        got,
        [
            "network create",
            "sandbox create",
            "network connect",
            "network disconnect",
            "sandbox destroy",
            "network destroy"
        ]
    );
}

#[tokio::test]
async fn a_failed_operation_emits_nothing() {
    let t = world().await;
    let mut rx = t.netd.subscribe();
    t.k().fail_after(0);
    t.netd
        .create_network(&net("n1", "10.50.0.0/24"))
        .await
        .unwrap_err();
    assert!(rx.try_recv().is_err());
}
