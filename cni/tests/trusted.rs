//! A network made with `trusted_host_interfaces` (by `netd network create`)
//! and used by the plugin: its published ports are let in at the
//! container's own addresses from those interfaces (`trusted4`,
//! `trusted6`), and CHECK reads those elements back, naming one missing.

mod support;

use serde_json::json;
use support::{World, conf};

/// `netd network create ARGS` through a daemon of the world's own, which
/// is stopped again: the plugin then works on the network alone.
fn create_network(w: &World, args: &[&str]) {
    let _daemon = w.daemon();
    let out = w.netd(&[&["network", "create"], args].concat());
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_reads_back_the_trusted_interface_elements() {
    let w = World::new("ntr-chk");
    create_network(
        &w,
        &[
            "--subnet",
            "10.226.0.0/24",
            "--ipv6",
            "--subnet",
            "fd00:226::/64",
            "-o",
            "com.docker.network.bridge.trusted_host_interfaces=ntrup0",
            "trnet",
        ],
    );
    let c = w.container("c");
    let mut cf = conf("1.1.0", "trnet", "10.226.0.0/24");
    cf["capabilities"] = json!({ "portMappings": true });
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 18082, "containerPort": 80, "protocol": "tcp", "hostIP": "" },
    ] });
    let r = w.add("tctr", &c, &cf);
    assert_eq!(r["ips"][0]["address"], "10.226.0.2/24", "{r}");
    assert_eq!(r["ips"][1]["address"], "fd00:226::2/64", "{r}");
    let mut chk = cf.clone();
    chk["prevResult"] = r;
    w.cmd("CHECK", "tctr", Some(&c), "eth0", &chk).silent();
    for (set, elem) in [
        ("trusted4", "10.226.0.2 . tcp . 80"),
        ("trusted6", "fd00:226::2 . tcp . 80"),
    ] {
        let have = w.host.run_ok("nft", &["list", "set", "inet", "netd", set]);
        assert!(have.contains(elem), "{have}");
        w.host.run_ok(
            "nft",
            &[
                "delete",
                "element",
                "inet",
                "netd",
                set,
                &format!("{{ {elem} }}"),
            ],
        );
        let e = w.cmd("CHECK", "tctr", Some(&c), "eth0", &chk).error();
        assert_eq!(e["code"], 999, "{e}");
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains(set) && msg.contains(elem), "{e}");
        w.host.run_ok(
            "nft",
            &[
                "add",
                "element",
                "inet",
                "netd",
                set,
                &format!("{{ {elem} }}"),
            ],
        );
        w.cmd("CHECK", "tctr", Some(&c), "eth0", &chk).silent();
    }
    w.cmd("DEL", "tctr", Some(&c), "eth0", &cf).silent();
}
