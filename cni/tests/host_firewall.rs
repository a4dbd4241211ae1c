//! `forwardAccept`: a network the plugin creates gets accept rules in the
//! host firewall's drop-policy forward chain (one of the test's own, in
//! its host namespace), so its containers talk and its published port
//! answers; a network without the key stays dropped.

mod support;

use serde_json::json;
use support::{World, conf, curl, spawn_in, wait_listening};

#[test]
fn forward_accept_opens_the_hosts_drop_policy_for_that_network_only() {
    let w = World::new("hfxcni");
    w.host.run_ok("nft", &["add", "table", "inet", "filter"]);
    w.host.run_ok(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "filter",
            "forward",
            "{ type filter hook forward priority 0; policy drop; }",
        ],
    );
    let outside = w.outside("10.233.1");
    let (c1, c2, c3) = (w.container("c1"), w.container("c2"), w.container("c3"));
    let mut open = conf("1.1.0", "hfxopen", "10.233.2.0/24");
    open["forwardAccept"] = json!("inet/filter/forward");
    let mut web = open.clone();
    web["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "" }
    ] });
    w.add("web", &c1, &web);
    w.add("client", &c2, &open);
    let mut shut = conf("1.1.0", "hfxshut", "10.233.3.0/24");
    shut["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "" }
    ] });
    w.add("shut", &c3, &shut);
    let _s1 = spawn_in(&c1, "python3", &["-m", "http.server", "80"]);
    let _s3 = spawn_in(&c3, "python3", &["-m", "http.server", "80"]);
    wait_listening(&c1, 80);
    wait_listening(&c3, 80);

    assert!(c2.ping("10.233.2.2"), "container to container");
    assert_eq!(curl(&outside, "http://10.233.1.1:8080/"), "200");
    let chain = w
        .host
        .run_ok("nft", &["list", "chain", "inet", "filter", "forward"]);
    assert_eq!(chain.matches("comment \"netd ").count(), 2, "{chain}");
    assert_eq!(
        curl(&outside, "http://10.233.1.1:8081/"),
        "000",
        "a network without forwardAccept is dropped by the host's policy"
    );
    for (id, c, cfg) in [
        ("web", &c1, &web),
        ("client", &c2, &open),
        ("shut", &c3, &shut),
    ] {
        w.cmd("DEL", id, Some(c), "eth0", cfg).silent();
    }
}
