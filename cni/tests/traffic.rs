//! Real traffic through what netd-cni set up: containers reach each other,
//! a published port answers from an "outside" namespace, a second network
//! gives a second interface, an internal network has no way out.

mod support;

use serde_json::json;
use support::{World, conf, curl, spawn_in, wait_listening};

#[test]
fn containers_talk_and_a_published_port_answers_from_outside() {
    let w = World::new("trf");
    let outside = w.outside("10.202.31");
    let c1 = w.container("c1");
    let c2 = w.container("c2");
    let base = conf("1.1.0", "trfnet", "10.220.0.0/24");
    let mut web = base.clone();
    web["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "" },
        { "hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "10.202.31.1" }
    ] });
    assert_eq!(
        w.add("web", &c1, &web)["ips"][0]["address"],
        "10.220.0.2/24"
    );
    assert_eq!(
        w.add("client", &c2, &base)["ips"][0]["address"],
        "10.220.0.3/24"
    );

    assert!(c1.ping("10.220.0.3"), "c1 cannot reach c2");
    assert!(c2.ping("10.220.0.2"), "c2 cannot reach c1");

    let _server = spawn_in(
        &c1,
        "python3",
        &["-m", "http.server", "80", "--bind", "0.0.0.0"],
    );
    wait_listening(&c1, 80);
    assert_eq!(curl(&c2, "http://10.220.0.2:80/"), "200");
    assert_eq!(
        curl(&outside, "http://10.202.31.1:8080/"),
        "200",
        "published port from outside"
    );
    assert_eq!(
        curl(&outside, "http://10.202.31.1:8081/"),
        "200",
        "published port on a host address"
    );
    // From another container, through the host address (hairpin NAT).
    assert_eq!(curl(&c2, "http://10.202.31.1:8080/"), "200");
    // The ports are map elements of netd's table, gone with the container.
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(maps.contains("8080"), "{maps}");
    w.cmd("DEL", "web", Some(&c1), "eth0", &web).silent();
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(
        !maps.contains("8080"),
        "DEL left the published port: {maps}"
    );
    assert_eq!(curl(&outside, "http://10.202.31.1:8080/"), "000");
    w.cmd("DEL", "client", Some(&c2), "eth0", &base).silent();
}

#[test]
fn second_network_second_interface_and_internal_networks() {
    let w = World::new("two");
    let c = w.container("c");
    let peer = w.container("peer");
    let front = conf("1.0.0", "front", "10.221.0.0/24");
    let mut back = conf("1.0.0", "back", "10.222.0.0/24");
    back["internal"] = json!(true);

    w.add("multi", &c, &front);
    let r = w.cmd("ADD", "multi", Some(&c), "eth1", &back).ok();
    assert_eq!(r["interfaces"][1]["name"], "eth1");
    assert_eq!(r["ips"][0]["address"], "10.222.0.2/24");
    // The default route stays the first network's; an internal one has none.
    assert_eq!(r["routes"], json!([]));
    assert_eq!(c.default_gateway().as_deref(), Some("10.221.0.1"));
    assert_eq!(c.addresses("eth1"), vec!["10.222.0.2/24"]);
    assert_eq!(w.sandboxes().len(), 1, "one sandbox per container");

    // A container only on the internal network: no default route at all.
    let r = w.add("inner", &peer, &back);
    assert_eq!(r["routes"], json!([]));
    assert_eq!(peer.default_gateway(), None);
    assert!(peer.ping("10.222.0.2"), "containers of a network meet");

    // CHECK each attachment against its own result.
    let mut chk = back.clone();
    chk["prevResult"] = r;
    w.cmd("CHECK", "inner", Some(&peer), "eth0", &chk).silent();

    // DEL of the second attachment keeps the first.
    w.cmd("DEL", "multi", Some(&c), "eth1", &back).silent();
    assert!(c.link("eth1").is_none());
    assert!(c.link("eth0").is_some());
    assert!(c.ping("10.221.0.1"));
    // DEL of eth1 again, or of eth0 on the wrong network, changes nothing.
    w.cmd("DEL", "multi", Some(&c), "eth1", &back).silent();
    w.cmd("DEL", "multi", Some(&c), "eth1", &front).silent();
    assert!(c.link("eth0").is_some());
    w.cmd("DEL", "multi", Some(&c), "eth0", &front).silent();
    w.cmd("DEL", "inner", Some(&peer), "eth0", &back).silent();
    assert!(w.sandboxes().is_empty());
    assert!(w.veths_after_reaping(0).is_empty());
}

/// A `hostIP` that is not an address of the host would capture every
/// connection to it (hostIP 8.8.8.8, udp 53: all DNS to 8.8.8.8), and a
/// host port a host socket holds would be taken over: both refused,
/// naming the address or the port, and nothing is left behind.
#[test]
fn port_mappings_on_a_foreign_address_or_a_held_port_are_refused() {
    let w = World::new("fwhip");
    let c = w.container("c");
    let base = conf("1.1.0", "fwhipnet", "10.221.0.0/24");
    let mut dns = base.clone();
    dns["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "8.8.8.8" }
    ] });
    let e = w.cmd("ADD", "dns", Some(&c), "eth0", &dns).error();
    assert_eq!(e["code"], 7, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("8.8.8.8") && msg.contains("not an address of this host"),
        "{e}"
    );
    assert!(w.endpoints().is_empty() && w.sandboxes().is_empty());
    assert!(w.veths_after_reaping(0).is_empty(), "{:?}", w.veths());

    let _held = spawn_in(
        &w.host,
        "python3",
        &["-m", "http.server", "8443", "--bind", "0.0.0.0"],
    );
    wait_listening(&w.host, 8443);
    let mut web = base.clone();
    web["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8443, "containerPort": 80, "protocol": "tcp" }
    ] });
    let e = w.cmd("ADD", "web", Some(&c), "eth0", &web).error();
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("port 8443/tcp") && msg.contains("in use on the host"),
        "{e}"
    );
    assert!(w.endpoints().is_empty() && w.sandboxes().is_empty());
    assert!(w.veths_after_reaping(0).is_empty(), "{:?}", w.veths());
    let table = w.host.output("nft", &["list", "table", "inet", "netd"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(!table.contains("8443"), "{table}");
}
