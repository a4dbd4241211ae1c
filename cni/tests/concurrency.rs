//! 64 plugin processes at once, as a runtime starting a pod burst does:
//! every ADD gets its own address (the store serialises them with
//! `BEGIN IMMEDIATE`), every DEL releases it.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{Netns, World, conf};

const N: usize = 64;

#[test]
fn sixty_four_concurrent_adds_get_distinct_addresses() {
    let w = World::new("par");
    let base = conf("1.1.0", "parnet", "10.230.0.0/24");
    let nss: Vec<Netns> = (0..N).map(|i| w.container(&format!("p{i}"))).collect();

    // Start all 64 before any finishes: a barrier, then one exec per thread.
    let barrier = std::sync::Barrier::new(N);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (w, base, barrier) = (&w, &base, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    w.cmd("ADD", &format!("par{i}"), Some(ns), "eth0", base)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().ok())
            .collect()
    });

    let mut seen = BTreeSet::new();
    for (r, ns) in results.iter().zip(&nss) {
        let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
        // The address in the result is the one the namespace has.
        assert_eq!(ns.addresses("eth0"), vec![addr.clone()], "{}", ns.name());
        assert!(seen.insert(addr.clone()), "{addr} was handed out twice");
    }
    assert_eq!(seen.len(), N);
    assert_eq!(w.endpoints().len(), N);
    assert_eq!(w.veths().len(), N);
    // They all work: the first and the last reach each other.
    let last = results[N - 1]["ips"][0]["address"].as_str().unwrap();
    assert!(nss[0].ping(last.split('/').next().unwrap()));

    // And 64 concurrent DELs release everything.
    let barrier = std::sync::Barrier::new(N);
    std::thread::scope(|s| {
        for (i, ns) in nss.iter().enumerate() {
            let (w, base, barrier) = (&w, &base, &barrier);
            s.spawn(move || {
                barrier.wait();
                w.cmd("DEL", &format!("par{i}"), Some(ns), "eth0", base)
                    .silent();
            });
        }
    });
    assert!(w.endpoints().is_empty());
    assert!(w.sandboxes().is_empty());
    let left = w.veths_after_reaping(0);
    assert!(left.is_empty(), "{left:?}");
}
