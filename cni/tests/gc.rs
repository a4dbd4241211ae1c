//! GC (CNI 1.1): the runtime lists the attachments still valid; netd-cni
//! removes every other attachment of that network, and only of that network.

mod support;

use serde_json::json;
use support::{World, conf};

#[test]
fn gc_keeps_only_valid_attachments_of_its_network() {
    let w = World::new("gc");
    let base = conf("1.1.0", "gcnet", "10.231.0.0/24");
    let other = conf("1.1.0", "gcother", "10.232.0.0/24");
    let cs: Vec<_> = (0..4).map(|i| w.container(&format!("c{i}"))).collect();
    for (i, c) in cs.iter().enumerate() {
        w.add(&format!("g{i}"), c, &base);
    }
    // g3 is on the other network too, as eth1; g0 keeps eth0 only.
    w.cmd("ADD", "g3", Some(&cs[3]), "eth1", &other).ok();
    assert_eq!(w.veths().len(), 5);

    // GC needs 1.1.0 and CNI_PATH.
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")];
    let mut old = base.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(w.exec(&env, &old.to_string()).error()["code"], 1);
    assert_eq!(
        w.exec(&[("CNI_COMMAND", "GC")], &base.to_string()).error()["code"],
        4
    );

    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([
        { "containerID": "g0", "ifname": "eth0" },
        { "containerID": "g1", "ifname": "eth0" },
        // Listed with another interface name: not this attachment.
        { "containerID": "g2", "ifname": "eth9" },
    ]);
    w.exec(&env, &gc.to_string()).silent();

    assert!(cs[0].link("eth0").is_some() && cs[1].link("eth0").is_some());
    assert!(cs[2].link("eth0").is_none(), "g2 was not collected");
    assert!(cs[3].link("eth0").is_none(), "g3 was not collected");
    assert!(
        cs[3].link("eth1").is_some(),
        "GC of gcnet took g3's attachment to gcother"
    );
    assert!(cs[0].ping("10.231.0.3"), "valid attachments still talk");
    let ips: Vec<String> = w.endpoints().iter().map(|e| e.primary_addr()).collect();
    assert_eq!(ips.len(), 3, "{ips:?}");
    assert!(ips.contains(&"10.232.0.2".to_string()));
    // Collected addresses are free again: the next ADD gets g2's .4.
    let c4 = w.container("c4");
    assert_eq!(
        w.add("g4", &c4, &base)["ips"][0]["address"],
        "10.231.0.4/24"
    );

    // GC with the namespaces gone and an empty list clears the network.
    drop(cs);
    drop(c4);
    let mut gc_all = base.clone();
    gc_all["cni.dev/valid-attachments"] = json!([]);
    w.exec(&env, &gc_all.to_string()).silent();
    let left: Vec<String> = w.endpoints().iter().map(|e| e.primary_addr()).collect();
    assert_eq!(left, vec!["10.232.0.2"]);
    let mut gc_other = other.clone();
    gc_other["cni.dev/valid-attachments"] = json!([]);
    w.exec(&env, &gc_other.to_string()).silent();
    assert!(w.endpoints().is_empty());
    assert!(w.sandboxes().is_empty());
    assert!(w.veths().is_empty(), "{:?}", w.veths());
}
