//! Accept rules in other tables' forward chains (`netd.forward_accept`),
//! against the fake kernel: they are part of the firewall plan, so they
//! come and go with their network and every rollback takes them back.

use super::*;
use crate::error::Kind;
use crate::plan::forward::{ChainRef, Family, Scope};

fn opted(name: &str, subnet: &str, value: &str) -> NetworkCreate {
    NetworkCreate {
        options: [(OPT_FORWARD_ACCEPT.to_string(), value.to_string())].into(),
        ..net(name, subnet)
    }
}

fn create_f1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&opted("f1", "10.51.0.0/24", "inet/filter/forward"))
            .await
            .map(|_| ())
    })
}

fn remove_f1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.remove_network("f1").await.map(|_| ()) })
}

#[tokio::test]
async fn the_accept_rules_come_and_go_with_their_network() {
    let t = world().await;
    t.network("plain", "10.51.1.0/24").await;
    create_f1(&t).await.unwrap();
    let b = t.bridge_of("f1");
    let fwd = t.k().world().table.unwrap().forward;
    assert_eq!(fwd.len(), 1, "only the network that asked: {fwd:?}");
    assert_eq!(fwd[0].bridge, b);
    assert_eq!(
        fwd[0].scope,
        Scope::Chains(vec![ChainRef {
            family: Family::Inet,
            table: "filter".into(),
            chain: "forward".into(),
        }])
    );
    t.assert_consistent();
    remove_f1(&t).await.unwrap();
    assert!(t.k().world().table.unwrap().forward.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn auto_is_kept_as_auto() {
    let t = world().await;
    t.netd
        .create_network(&opted("f2", "10.51.2.0/24", "auto"))
        .await
        .unwrap();
    let fwd = t.k().world().table.unwrap().forward;
    assert_eq!(fwd[0].scope, Scope::Auto);
}

#[tokio::test]
async fn a_bad_value_is_refused_before_anything_changes() {
    let t = world().await;
    let before = t.snapshot();
    for bad in [
        "yes",
        "inet/filter",
        "inet/netd/forward",
        "bridge/filter/forward",
    ] {
        let e = t
            .netd
            .create_network(&opted("f3", "10.51.3.0/24", bad))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{bad}: {e}");
        assert!(e.to_string().contains(OPT_FORWARD_ACCEPT), "{e}");
    }
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn create_with_accept_rules_fails_cleanly_at_every_step() {
    let (steps, failed) = every_failure_point(nothing, create_f1).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn a_remove_that_fails_in_the_kernel_leaves_no_accept_rules_after_reconcile() {
    // As every remove: the record goes first, the kernel's leftovers are
    // the reconciler's; the accept rules go with the next full apply.
    let t = world().await;
    create_f1(&t).await.unwrap();
    t.k().fail_after(0);
    assert!(remove_f1(&t).await.is_err());
    t.netd.reconcile().await.unwrap();
    assert!(t.k().world().table.unwrap().forward.is_empty());
    t.assert_consistent();
}

fn daemon_default(value: &str) -> impl FnOnce(Netd<FakeKernel>) -> Netd<FakeKernel> {
    let value = value.to_string();
    move |n| n.with_forward_accept(Some(value)).expect("a good value")
}

#[tokio::test]
async fn the_daemon_default_goes_to_new_networks_and_the_predefined_bridge() {
    let t = world_with(daemon_default("auto")).await;
    let option = |name: &str| {
        t.netd
            .inspect_network(name)
            .unwrap()
            .network
            .options
            .get(OPT_FORWARD_ACCEPT)
            .cloned()
    };
    assert_eq!(option("bridge").as_deref(), Some("auto"));
    t.network("d1", "10.51.5.0/24").await;
    assert_eq!(
        option("d1").as_deref(),
        Some("auto"),
        "recorded, for the CNI plugin to read"
    );
    // The network's own value wins, and `none` opts out.
    t.netd
        .create_network(&opted("d2", "10.51.6.0/24", "inet/filter/forward"))
        .await
        .unwrap();
    t.netd
        .create_network(&opted("d3", "10.51.7.0/24", "none"))
        .await
        .unwrap();
    let fwd = t.k().world().table.unwrap().forward;
    let bridges: Vec<&str> = fwd.iter().map(|f| f.bridge.as_str()).collect();
    assert!(bridges.contains(&t.bridge_of("d1").as_str()), "{bridges:?}");
    assert!(bridges.contains(&t.bridge_of("d2").as_str()), "{bridges:?}");
    assert!(
        !bridges.contains(&t.bridge_of("d3").as_str()),
        "none asked for rules"
    );
    t.assert_consistent();
}

#[tokio::test]
async fn the_predefined_bridge_follows_the_daemons_flag_and_a_bad_one_changes_nothing() {
    let t = world_with(daemon_default("ip/filter/FORWARD")).await;
    let bridge = || t.netd.inspect_network("bridge").unwrap().network.options;
    assert_eq!(bridge()[OPT_FORWARD_ACCEPT], "ip/filter/FORWARD");
    // A restart without the flag takes it from the predefined bridge, and
    // a network created meanwhile keeps what was recorded for it.
    t.network("kept", "10.51.8.0/24").await;
    let again = Netd::with_kernel(
        &t.dir().join("state"),
        FakeKernel::new(&t.dir().join("run2")),
    )
    .await
    .unwrap();
    let again = again.with_forward_accept(None).unwrap();
    assert!(
        !again
            .inspect_network("bridge")
            .unwrap()
            .network
            .options
            .contains_key(OPT_FORWARD_ACCEPT)
    );
    assert_eq!(
        again.inspect_network("kept").unwrap().network.options[OPT_FORWARD_ACCEPT],
        "ip/filter/FORWARD"
    );
    let before = again.inspect_network("bridge").unwrap().network;
    let e = again
        .with_forward_accept(Some("inet/filter".into()))
        .err()
        .expect("refused");
    assert_eq!(e.kind(), Kind::Invalid);
    assert!(e.to_string().contains("inet/filter"), "{e}");
    let after = Netd::with_kernel(
        &t.dir().join("state"),
        FakeKernel::new(&t.dir().join("run3")),
    )
    .await
    .unwrap();
    assert_eq!(after.inspect_network("bridge").unwrap().network, before);
}
