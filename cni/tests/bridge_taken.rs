//! A configuration whose `bridge` names a link the host already has (one
//! netd did not make) is a configuration error, refused at once and naming
//! the link: not a retry loop ending in "try again later".

mod support;

use serde_json::json;
use support::{World, conf};

#[test]
fn a_bridge_name_taken_by_another_link_is_a_config_error() {
    let w = World::new("brtaken");
    let c = w.container("c");
    // A veth rather than a dummy: every kernel that runs netd has veths.
    w.host.run_ok(
        "ip",
        &[
            "link", "add", "ndtaken0", "type", "veth", "peer", "name", "ndtaken1",
        ],
    );
    let links_before = w.host.links("");
    let mut cfg = conf("1.1.0", "takennet", "10.236.0.0/24");
    cfg["bridge"] = json!("ndtaken0");

    let started = std::time::Instant::now();
    let e = w.cmd("ADD", "takenctr", Some(&c), "eth0", &cfg).error();
    assert_eq!(e["code"], 7, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("ndtaken0") && msg.contains("already exists"),
        "{e}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused only after {:?}",
        started.elapsed()
    );

    // Nothing left behind: no record, no new link, the veth untouched.
    let store = netd::store::Store::open(&w.state.0).unwrap();
    let nets = store.read(netd::store::networks).unwrap();
    assert!(
        !nets.iter().any(|n| n.name.as_str() == "takennet"),
        "the refused ADD left its network"
    );
    assert!(w.sandboxes().is_empty());
    assert!(w.endpoints().is_empty());
    assert_eq!(w.host.links(""), links_before);
    let veth = w.host.link("ndtaken0").expect("the veth is still there");
    assert!(veth.get("master").is_none(), "{veth}");
    assert!(c.link("eth0").is_none());

    // The same configuration with a free bridge name works.
    cfg["bridge"] = json!("ndfree0");
    let r = w.add("takenctr", &c, &cfg);
    assert_eq!(r["ips"][0]["address"], "10.236.0.2/24");
    w.cmd("DEL", "takenctr", Some(&c), "eth0", &cfg).silent();
}
