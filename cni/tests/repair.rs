//! With no daemon to watch links, the next ADD on a network whose bridge
//! was deleted by hand makes the bridge again and puts every existing
//! container's veth back on it.

mod support;

use support::{World, conf};

#[test]
fn wt_an_add_after_the_bridge_was_deleted_reattaches_every_veth() {
    let w = World::new("wtrep");
    let (c1, c2, c3) = (w.container("c1"), w.container("c2"), w.container("c3"));
    let cf = conf("1.1.0", "wtrepnet", "10.217.0.0/24");
    w.add("wtr1", &c1, &cf);
    w.add("wtr2", &c2, &cf);
    assert!(c1.ping("10.217.0.3"));
    let bridge = w.host.link(&w.veths()[0]).unwrap()["master"]
        .as_str()
        .unwrap()
        .to_string();
    w.host.run_ok("ip", &["link", "del", &bridge]);
    assert!(!c1.ping("10.217.0.3"), "still reachable without a bridge?");

    w.add("wtr3", &c3, &cf);
    for v in w.veths() {
        assert_eq!(
            w.host.link(&v).unwrap()["master"].as_str(),
            Some(bridge.as_str()),
            "{v} is not back on {bridge}"
        );
    }
    assert!(c1.ping("10.217.0.3"), "c1 cannot reach c2 after the ADD");
    assert!(c3.ping("10.217.0.2"), "c3 cannot reach c1");
    for (id, c) in [("wtr1", &c1), ("wtr2", &c2), ("wtr3", &c3)] {
        w.cmd("DEL", id, Some(c), "eth0", &cf).silent();
    }
}
