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

/// (ifname, IPv4) of a container's interfaces as the kernel has them:
/// not `lo`, and not the `ndr…` ends of retired pairs that DEL leaves to be
/// deleted later.
fn kernel_ifaces(ns: &Netns) -> BTreeSet<(String, String)> {
    let v = ns.json(&["-4", "addr"]);
    let mut out = BTreeSet::new();
    for l in v.as_array().unwrap() {
        let name = l["ifname"].as_str().unwrap();
        if name == "lo" || name.starts_with("ndr") {
            continue;
        }
        for a in l["addr_info"].as_array().unwrap() {
            out.insert((name.to_string(), a["local"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// The same, as the store has it for the sandbox of `netns`.
fn store_ifaces(w: &World, netns: &str) -> BTreeSet<(String, String)> {
    let Some(sb) = w
        .sandboxes()
        .into_iter()
        .find(|s| s.netns_path() == Some(netns))
    else {
        return BTreeSet::new();
    };
    w.endpoints()
        .into_iter()
        .filter(|e| e.sandbox == sb.id)
        .map(|e| (e.ifname.to_string(), e.primary_addr()))
        .collect()
}

/// The plugin (one process per DEL/ADD) and the daemon (for `netd network
/// connect`/`disconnect`) change one container's sandbox at the same time:
/// they take turns, so after every round the store's endpoints of the
/// container are exactly its interfaces in the kernel, every DEL succeeds,
/// and the CLI is refused only with 404/409.
#[test]
fn cc_plugin_and_daemon_on_one_container_take_turns() {
    let w = World::new("cct");
    let base = conf("1.1.0", "cctnet", "10.231.0.0/24");
    let _daemon = w.daemon();
    let cli = |args: &[&str]| w.netd(args);
    let extra = "ccextra";
    let out = cli(&["network", "create", "--subnet", "10.231.1.0/24", extra]);
    assert!(out.status.success(), "{out:?}");
    let ctr = w.container("c");
    for round in 0..8 {
        w.add("cctid", &ctr, &base);
        let name = w
            .sandboxes()
            .into_iter()
            .find(|s| s.netns_path() == Some(ctr.path().as_str()))
            .expect("the container's sandbox")
            .name
            .to_string();
        std::thread::scope(|s| {
            let del = s.spawn(|| w.cmd("DEL", "cctid", Some(&ctr), "eth0", &base));
            let clis: Vec<_> = (0..6)
                .map(|i| {
                    let verb = if i % 2 == 0 { "connect" } else { "disconnect" };
                    let name = name.clone();
                    s.spawn(move || (verb, cli(&["network", verb, extra, &name])))
                })
                .collect();
            del.join().unwrap().silent();
            for h in clis {
                let (verb, out) = h.join().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success()
                        || err.contains("not found")
                        || err.contains("is not connected to network")
                        || err.contains("is already connected to network"),
                    "round {round}: {verb}: {err}"
                );
            }
        });
        assert_eq!(
            store_ifaces(&w, &ctr.path()),
            kernel_ifaces(&ctr),
            "round {round}: store (left) and kernel (right) disagree"
        );
        // Start the next round from nothing.
        let _ = cli(&["network", "disconnect", "--force", extra, &name]);
        let _ = cli(&["sandbox", "rm", "--force", &name]);
        assert!(kernel_ifaces(&ctr).is_empty(), "round {round}");
    }
}
