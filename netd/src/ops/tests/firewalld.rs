//! netd's bridges in a firewalld zone (`netd daemon --firewalld`), against
//! a recording firewalld: each bridge in the store goes in, a removed
//! network's goes out, a reload brings them all back, and a refusal names
//! firewalld and the zone and changes nothing else.

use super::*;
use crate::kernel::fake::firewalld::FakeFirewalld;
use crate::kernel::firewalld::FirewalldError;
use crate::ops::firewalld::{FirewalldMode, ZoneSync, parse_mode};

#[test]
fn the_flag_is_off_auto_or_a_zone() {
    assert_eq!(parse_mode("off"), Ok(FirewalldMode::Off));
    assert_eq!(
        parse_mode("auto"),
        Ok(FirewalldMode::Zone("trusted".into()))
    );
    assert_eq!(parse_mode("netd"), Ok(FirewalldMode::Zone("netd".into())));
    for bad in ["", "a b", "zone/x", "x;y", &"z".repeat(65)] {
        let e = parse_mode(bad).unwrap_err();
        assert!(e.contains("--firewalld"), "{e}");
    }
}

#[tokio::test]
async fn every_bridge_goes_in_the_zone_and_a_removed_networks_goes_out() {
    let t = world().await;
    t.network("a", "10.52.1.0/24").await;
    t.network("b", "10.52.2.0/24").await;
    let fw = FakeFirewalld::with_zones(&["trusted", "public"]);
    let mut z = ZoneSync::new("trusted");
    let want = t.netd.firewalld_bridges().unwrap();
    assert!(want.contains(&t.bridge_of("a")) && want.contains(&t.bridge_of("bridge")));
    let r = z.sync(&fw, &want).await;
    assert_eq!(fw.interfaces("trusted"), want);
    assert_eq!(r.added.len(), want.len());
    // Nothing changed: no calls at all.
    let calls = fw.calls().len();
    assert_eq!(z.sync(&fw, &want).await, Default::default());
    assert_eq!(fw.calls().len(), calls);

    let gone = t.bridge_of("b");
    t.netd.remove_network("b").await.unwrap();
    let r = z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert_eq!(r.removed, vec![gone.clone()]);
    assert!(!fw.interfaces("trusted").contains(&gone));
    assert!(fw.interfaces("trusted").contains(&t.bridge_of("a")));
}

#[tokio::test]
async fn after_a_reload_every_bridge_goes_back() {
    let t = world().await;
    t.network("a", "10.52.3.0/24").await;
    let fw = FakeFirewalld::with_zones(&["trusted"]);
    let mut z = ZoneSync::new("trusted");
    let want = t.netd.firewalld_bridges().unwrap();
    z.sync(&fw, &want).await;
    fw.reload();
    assert!(fw.interfaces("trusted").is_empty());
    z.forget();
    let r = z.sync(&fw, &want).await;
    assert_eq!(r.added.len(), want.len());
    assert_eq!(fw.interfaces("trusted"), want);
}

#[tokio::test]
async fn the_operators_own_interfaces_and_placements_are_left_alone() {
    let t = world().await;
    t.network("a", "10.52.4.0/24").await;
    let fw = FakeFirewalld::with_zones(&["trusted", "internal"]);
    fw.place("trusted", "eth9");
    let a = t.bridge_of("a");
    fw.place("internal", &a);
    let mut z = ZoneSync::new("trusted");
    let r = z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert_eq!(r.elsewhere, vec![a.clone()]);
    assert!(fw.interfaces("internal").contains(&a), "not moved");
    t.netd.remove_network("a").await.unwrap();
    z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert!(fw.interfaces("trusted").contains("eth9"), "never netd's");
    assert!(
        !fw.calls().iter().any(|c| c.contains("eth9")),
        "{:?}",
        fw.calls()
    );
}

#[tokio::test]
async fn a_refused_add_is_reported_and_tried_again() {
    let t = world().await;
    t.network("a", "10.52.5.0/24").await;
    let a = t.bridge_of("a");
    let fw = FakeFirewalld::with_zones(&["trusted"]);
    fw.fail_on(&a, FirewalldError::Other("COMMAND_FAILED: nft".into()));
    let before = t.snapshot();
    let mut z = ZoneSync::new("trusted");
    let want = t.netd.firewalld_bridges().unwrap();
    let r = z.sync(&fw, &want).await;
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, a);
    assert!(!fw.interfaces("trusted").contains(&a));
    assert!(
        fw.interfaces("trusted").contains(&t.bridge_of("bridge")),
        "the others went in"
    );
    assert_eq!(t.snapshot(), before, "netd's store and kernel untouched");
    fw.heal();
    let r = z.sync(&fw, &want).await;
    assert_eq!(r.added, vec![a.clone()]);
}

#[tokio::test]
async fn a_missing_zone_is_an_error_naming_it() {
    let t = world().await;
    let fw = FakeFirewalld::with_zones(&["public"]);
    let mut z = ZoneSync::new("netd");
    let r = z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert!(r.added.is_empty());
    assert!(
        matches!(&r.failed[0].1, FirewalldError::InvalidZone(n) if n == "netd"),
        "{r:?}"
    );
    assert!(r.failed[0].1.to_string().contains("no such zone: netd"));
    // Said once, not at every retry; said again when the answer changes.
    assert_eq!(z.fresh_refusals(&r).len(), r.failed.len());
    let again = z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert_eq!(again.failed, r.failed, "tried again");
    assert!(z.fresh_refusals(&again).is_empty());
    let b = t.bridge_of("bridge");
    fw.fail_on(&b, FirewalldError::NotRunning);
    let third = z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    assert_eq!(
        z.fresh_refusals(&third),
        vec![(b, FirewalldError::NotRunning)]
    );
}

#[tokio::test]
async fn a_refused_remove_keeps_the_bridge_to_try_again() {
    let t = world().await;
    t.network("a", "10.52.6.0/24").await;
    let a = t.bridge_of("a");
    let fw = FakeFirewalld::with_zones(&["trusted"]);
    let mut z = ZoneSync::new("trusted");
    z.sync(&fw, &t.netd.firewalld_bridges().unwrap()).await;
    t.netd.remove_network("a").await.unwrap();
    fw.fail_on(&a, FirewalldError::NotRunning);
    let want = t.netd.firewalld_bridges().unwrap();
    let r = z.sync(&fw, &want).await;
    assert_eq!(r.failed, vec![(a.clone(), FirewalldError::NotRunning)]);
    fw.heal();
    let r = z.sync(&fw, &want).await;
    assert_eq!(r.removed, vec![a.clone()]);
    assert!(!fw.interfaces("trusted").contains(&a));
}
