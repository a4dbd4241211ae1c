//! A container namespace belongs to one sandbox: an ADD for another
//! container id with the same CNI_NETNS is refused (code 7) and changes
//! nothing, and the first container keeps its interface and its DNS.

mod support;

use serde_json::json;
use support::{World, conf};

#[test]
fn wt_add_of_another_container_into_a_taken_netns_is_refused() {
    let w = World::new("wtshr");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let c = w.container("c");
    let mut cf = conf("1.1.0", "wtshrnet", "10.213.0.0/24");
    cf["dns"] = json!(true);
    let r = w.add("wtfirst", &c, &cf);
    assert_eq!(r["ips"][0]["address"], "10.213.0.2/24");
    let veths = w.veths();
    assert_eq!(veths.len(), 1);

    // Another container id, the same namespace: under another interface
    // name (the case that used to succeed and break the first one's DNS),
    // and under the same one.
    for ifname in ["eth1", "eth0"] {
        let out = w.cmd("ADD", "wtsecond", Some(&c), ifname, &cf);
        let e = out.error();
        assert_eq!(e["code"], 7, "{e}");
        let msg = e["msg"].as_str().unwrap();
        assert!(
            msg.contains(&c.path()) && msg.contains("already belongs to sandbox wtfirst"),
            "{msg}"
        );
    }
    // Nothing changed: one sandbox, one endpoint, one veth, no eth1.
    let names: Vec<String> = w.sandboxes().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["wtfirst"]);
    assert_eq!(w.endpoints().len(), 1);
    assert_eq!(w.veths(), veths);
    assert!(c.link("eth1").is_none(), "the refused ADD left eth1");
    // The first container still resolves its own name through netd's DNS.
    let ip = c
        .run_ok(
            "dig",
            &["+short", "+tries=2", "+time=2", "@127.0.0.11", "wtfirst"],
        )
        .trim()
        .to_string();
    assert_eq!(ip, "10.213.0.2");
    w.cmd("DEL", "wtfirst", Some(&c), "eth0", &cf).silent();
    // DEL's veth is deleted later by a process of its own while the daemon
    // watches links: a record that is gone is not "repaired".
    assert!(w.veths_after_reaping(0).is_empty());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        w.veths().is_empty(),
        "the daemon put back a deleted container's veth"
    );
    assert!(c.link("eth0").is_none());
}
