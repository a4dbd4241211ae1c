//! Input netd-cni must refuse without changing anything: a GC request
//! whose list of valid attachments is missing or malformed, and a
//! configuration larger than the stdin limit.

mod support;

use serde_json::{Value, json};
use support::{World, conf};

fn state(w: &World) -> (Vec<String>, Vec<String>) {
    let eps = w.endpoints().iter().map(|e| e.primary_addr()).collect();
    (w.veths(), eps)
}

#[test]
fn in_gc_without_a_whole_valid_list_removes_nothing() {
    let w = World::new("ingc");
    let base = conf("1.1.0", "ingcnet", "10.233.0.0/24");
    let cs: Vec<_> = (0..2).map(|i| w.container(&format!("c{i}"))).collect();
    for (i, c) in cs.iter().enumerate() {
        w.add(&format!("i{i}"), c, &base);
    }
    let before = state(&w);
    assert_eq!(before.0.len(), 2);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")];
    let lists: Vec<Option<Value>> = vec![
        None,
        Some(Value::Null),
        Some(json!("i0")),
        Some(json!({ "containerID": "i0", "ifname": "eth0" })),
        Some(json!([{ "containerID": "i0" }])),
        Some(json!([{ "ifname": "eth0" }])),
        Some(json!([{ "containerID": "i0", "ifname": "eth0" }, { "containerID": "i1" }])),
        Some(json!([{ "containerID": "i0", "ifname": null }])),
        Some(json!([{ "containerID": "i0", "ifname": "" }])),
    ];
    for list in lists {
        let mut gc = base.clone();
        if let Some(l) = &list {
            gc["cni.dev/valid-attachments"] = l.clone();
        }
        let e = w.exec(&env, &gc.to_string()).error();
        assert_eq!(e["code"], 7, "{list:?}: {e}");
        assert!(
            e["msg"].as_str().unwrap().contains("valid-attachments"),
            "{list:?}: {e}"
        );
        assert_eq!(state(&w), before, "GC with {list:?} removed something");
    }
    assert!(cs[0].ping("10.233.0.3"), "the attachments still talk");
}

#[test]
fn in_stdin_over_the_limit_is_refused_before_anything_is_made() {
    let w = World::new("instdin");
    let c = w.container("c");
    let mut big = conf("1.0.0", "instdinnet", "10.234.0.0/24");
    // Valid JSON, just too big: padding in a field the plugin ignores.
    big["padding"] = json!("x".repeat(2 << 20));
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "big"),
        ("CNI_NETNS", &c.path()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let e = w.exec(&env, &big.to_string()).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("larger than"), "{e}");
    assert!(c.link("eth0").is_none(), "an interface was made");
    assert!(w.veths().is_empty(), "{:?}", w.veths());
    assert!(w.endpoints().is_empty(), "an endpoint was stored");
    // The same config, small, works: the limit is the only reason.
    let small = conf("1.0.0", "instdinnet", "10.234.0.0/24");
    let r = w.exec(&env, &small.to_string()).ok();
    assert_eq!(r["ips"][0]["address"], "10.234.0.2/24");
}
