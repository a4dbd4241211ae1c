//! The CNI contracts netd-cni keeps (issue 16): every key of a
//! configuration is read, honoured or refused, never silently ignored; the
//! CONVENTIONS capabilities and arguments do what they say.

mod support;

use serde_json::{Value, json};
use support::{World, conf};

fn with(mut c: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

/// The reference bridge plugin's keys: a conflist written for `bridge`
/// works where netd does what it asks (isGateway, hairpinMode, ...), and
/// is refused with code 2 naming the key where it does not; nothing is
/// made by a refused ADD.
#[test]
fn reference_bridge_keys_are_honoured_or_refused_naming_the_key() {
    let w = World::new("ccxkeys");
    let c = w.container("c");
    let base = conf("1.1.0", "keysnet", "10.216.0.0/24");
    for (bad, key) in [
        (json!({ "isGateway": false }), "isGateway"),
        (json!({ "isDefaultGateway": false }), "isDefaultGateway"),
        (json!({ "hairpinMode": false }), "hairpinMode"),
        (json!({ "promiscMode": true }), "promiscMode"),
        (json!({ "vlan": 7 }), "vlan"),
        (json!({ "macspoofchk": true }), "macspoofchk"),
        (json!({ "enabledad": true }), "enabledad"),
        (json!({ "portIsolation": true }), "portIsolation"),
        (json!({ "frobnicate": true }), "frobnicate"),
        (
            json!({ "capabilities": { "cgroupPath": true } }),
            "capabilities.cgroupPath",
        ),
    ] {
        let e = w
            .cmd(
                "ADD",
                "kctr",
                Some(&c),
                "eth0",
                &with(base.clone(), bad.clone()),
            )
            .error();
        assert_eq!(e["code"], 2, "{bad}: {e}");
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains(&format!("unsupported field {key}")), "{e}");
    }
    assert!(w.veths().is_empty() && w.sandboxes().is_empty());
    assert!(
        w.host.links("netd-").is_empty(),
        "a refused ADD made a bridge"
    );
    assert!(c.link("eth0").is_none());

    // What netd does anyway: accepted, and so it is.
    let honoured = with(
        base.clone(),
        json!({ "isGateway": true, "isDefaultGateway": true, "hairpinMode": true,
                "promiscMode": false, "vlan": 0, "macspoofchk": false, "enabledad": false,
                "portIsolation": false, "ipMasqBackend": "nftables" }),
    );
    let r = w.add("kctr", &c, &honoured);
    let gw = "10.216.0.1";
    assert_eq!(r["ips"][0]["gateway"], gw);
    assert_eq!(c.default_gateway().as_deref(), Some(gw));
    assert!(c.ping(gw));
    let bridge = w.host.links("netd-");
    assert_eq!(bridge.len(), 1);
    let addrs = w.host.addresses(&bridge[0]);
    assert!(addrs.contains(&format!("{gw}/24")), "isGateway: {addrs:?}");
    let hv = r["interfaces"][0]["name"].as_str().unwrap();
    let port = w.host.json(&["-d", "link", "show", "dev", hv]);
    assert_eq!(
        port[0]["linkinfo"]["info_slave_data"]["hairpin"],
        json!(true),
        "hairpinMode: {port}"
    );
    w.cmd("DEL", "kctr", Some(&c), "eth0", &honoured).silent();
}

/// A container namespace whose `lo` was never up (a bare `ip netns add`)
/// resolves at 127.0.0.11 after ADD. The daemon serves it while the plugin
/// still makes the veth pair; a socket bound before 127.0.0.11 was local
/// answered from 127.0.0.1, which dig and glibc's resolver drop.
#[test]
fn a_container_whose_lo_was_never_up_resolves_names() {
    let w = World::new("ccxlo");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let mut c = conf("1.1.0", "lonet", "10.218.0.0/24");
    c["dnsEnabled"] = json!(true);
    let first = w.container("first");
    w.add("loctr0", &first, &c);
    for i in 1..=5 {
        let ns = support::Netns::bare(&format!("{}-bare{i}", w.tag));
        w.add(&format!("loctr{i}"), &ns, &c);
        let got = ns.run_ok(
            "dig",
            &["+short", "+tries=1", "+time=2", "@127.0.0.11", "loctr0"],
        );
        assert_eq!(got.trim(), "10.218.0.2", "from bare namespace {i}");
    }
}

/// The `dns` capability's servers beside `dnsEnabled`: 127.0.0.11 stays
/// the container's nameserver (the result names it alone) and forwards the
/// container's other names to those servers, as `docker run --dns` does on
/// a user network. A dnsmasq in the host namespace knows one name.
#[test]
fn dns_capability_servers_are_where_the_container_forwards() {
    let w = World::new("ccxup");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let _upstream = support::spawn_in(
        &w.host,
        "dnsmasq",
        &[
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.1.2",
            "--address=/only-upstream.test/192.0.2.9",
            "--pid-file=",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let c = w.container("c");
    let mut cfg = conf("1.1.0", "upnet", "10.219.0.0/24");
    cfg["dnsEnabled"] = json!(true);
    cfg["capabilities"] = json!({ "dns": true });
    cfg["runtimeConfig"] = json!({ "dns": { "servers": ["127.0.1.2"], "searches": ["corp"] } });
    let r = w.add("upctr", &c, &cfg);
    assert_eq!(
        r["dns"],
        json!({ "nameservers": ["127.0.0.11"], "search": ["corp"] }),
        "{r}"
    );
    let got = c.run_ok(
        "dig",
        &[
            "+short",
            "+tries=1",
            "+time=2",
            "@127.0.0.11",
            "only-upstream.test",
        ],
    );
    assert_eq!(got.trim(), "192.0.2.9");
}

/// `aliases` in CONVENTIONS' list form names this attachment, as the map
/// form podman passes does: both resolve at 127.0.0.11.
#[test]
fn list_form_aliases_resolve_at_the_container_nameserver() {
    let w = World::new("ccxalias");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let mut base = conf("1.1.0", "aliasnet", "10.217.0.0/24");
    base["dnsEnabled"] = json!(true);
    base["capabilities"] = json!({ "aliases": true });
    let mut listed = base.clone();
    listed["runtimeConfig"] = json!({ "aliases": ["db", "primary-db"] });
    let r1 = w.add("actr1", &c1, &listed);
    let ip1 = r1["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut mapped = base.clone();
    mapped["runtimeConfig"] = json!({ "aliases": { "aliasnet": ["web"], "other": ["no"] } });
    let r2 = w.add("actr2", &c2, &mapped);
    let ip2 = r2["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let dig = |from: &support::Netns, name: &str| {
        from.run_ok(
            "dig",
            &["+short", "+tries=1", "+time=2", "@127.0.0.11", name],
        )
        .trim()
        .to_string()
    };
    for name in ["db", "primary-db"] {
        assert_eq!(dig(&c2, name), ip1, "{name}");
    }
    assert_eq!(dig(&c1, "web"), ip2);
    assert_eq!(dig(&c1, "no"), "", "another network's alias");
    let eps = w.endpoints();
    let aliases: Vec<_> = eps.iter().map(|e| e.aliases.clone()).collect();
    assert!(
        aliases.contains(&vec!["db".to_string(), "primary-db".to_string()]),
        "{aliases:?}"
    );
    w.cmd("DEL", "actr1", Some(&c1), "eth0", &listed).silent();
    w.cmd("DEL", "actr2", Some(&c2), "eth0", &mapped).silent();
}

/// Static addresses from `args.cni.ips` and `CNI_ARGS` `IP=` (both
/// families), as from `runtimeConfig.ips`; two different addresses of a
/// family are refused naming where each came from; an unknown `CNI_ARGS`
/// key is refused unless `IgnoreUnknown` is set.
#[test]
fn static_addresses_from_args_and_cni_args() {
    let w = World::new("ccxips");
    let base = conf("1.1.0", "ipsnet", "10.218.0.0/24");
    let mut dual = base.clone();
    dual["subnet6"] = json!("fd00:218::/64");
    let c1 = w.container("c1");
    let r = w
        .cmd_args(
            "ADD",
            "ictr1",
            Some(&c1.path()),
            "eth0",
            "IgnoreUnknown=1;IP=10.218.0.50,fd00:218::50",
            &dual,
        )
        .ok();
    assert_eq!(r["ips"][0]["address"], "10.218.0.50/24");
    assert_eq!(r["ips"][1]["address"], "fd00:218::50/64");
    assert_eq!(c1.addresses("eth0")[0], "10.218.0.50/24");
    let c2 = w.container("c2");
    let mut args = dual.clone();
    args["args"] = json!({ "cni": { "ips": ["10.218.0.60/24", "fd00:218::60"] } });
    let r = w.add("ictr2", &c2, &args);
    assert_eq!(r["ips"][0]["address"], "10.218.0.60/24");
    assert_eq!(r["ips"][1]["address"], "fd00:218::60/64");
    assert!(c2.ping("10.218.0.50"));

    let c3 = w.container("c3");
    let e = w
        .cmd_args(
            "ADD",
            "ictr3",
            Some(&c3.path()),
            "eth0",
            "IP=10.218.0.70",
            &args,
        )
        .error();
    assert_eq!(e["code"], 7, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("10.218.0.70 (CNI_ARGS IP)") && msg.contains("args.cni.ips"),
        "{e}"
    );
    let e = w
        .cmd_args("ADD", "ictr3", Some(&c3.path()), "eth0", "FOO=1", &base)
        .error();
    assert_eq!(e["code"], 2, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("CNI_ARGS FOO=1"), "{e}");
    assert!(c3.link("eth0").is_none());
    for (id, ns, c) in [("ictr1", &c1, &dual), ("ictr2", &c2, &args)] {
        w.cmd("DEL", id, Some(ns), "eth0", c).silent();
    }
}

/// SPEC's `dns` object and the `dns` capability go into the result's
/// `dns` (the capability's fields over the object's); beside netd's own
/// DNS, the result's nameserver is 127.0.0.11 alone (the servers asked for
/// are where it forwards: see the next test).
#[test]
fn dns_object_and_capability_fill_the_result() {
    let w = World::new("ccxdns");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let c = w.container("c");
    let mut cf = conf("1.1.0", "dnsobj", "10.219.0.0/24");
    cf["dns"] = json!({ "nameservers": ["10.219.0.53"], "domain": "example.org",
                        "search": ["example.org"], "options": ["ndots:2"] });
    cf["capabilities"] = json!({ "dns": true });
    cf["runtimeConfig"] =
        json!({ "dns": { "searches": ["svc.local", "local"], "options": ["ndots:5"] } });
    let r = w.add("dctr", &c, &cf);
    assert_eq!(
        r["dns"],
        json!({ "nameservers": ["10.219.0.53"], "domain": "example.org",
                "search": ["svc.local", "local"], "options": ["ndots:5"] })
    );
    // netd's DNS: 127.0.0.11 with the runtime's search and options.
    let c2 = w.container("c2");
    let mut netd_dns = conf("1.1.0", "dnsobj", "10.219.0.0/24");
    netd_dns["dnsEnabled"] = json!(true);
    netd_dns["runtimeConfig"] = json!({ "dns": { "searches": ["svc.local"] } });
    let r = w.add("dctr2", &c2, &netd_dns);
    assert_eq!(
        r["dns"],
        json!({ "nameservers": ["127.0.0.11"], "search": ["svc.local"] })
    );
    let c3 = w.container("c3");
    netd_dns["runtimeConfig"] = json!({ "dns": { "servers": ["8.8.8.8"] } });
    let r = w.add("dctr3", &c3, &netd_dns);
    assert_eq!(r["dns"], json!({ "nameservers": ["127.0.0.11"] }));
    let c4 = w.container("c4");
    netd_dns["runtimeConfig"] = json!({ "dns": { "servers": ["dns.example"] } });
    let e = w.cmd("ADD", "dctr4", Some(&c4), "eth0", &netd_dns).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("dns.example"), "{e}");
    // DEL takes what ADD refused (a runtime cleans up with the same
    // configuration), and still removes what it names.
    w.cmd("DEL", "dctr4", Some(&c4), "eth0", &netd_dns).silent();
    w.cmd("DEL", "dctr3", Some(&c3), "eth0", &netd_dns).silent();
    w.cmd("DEL", "dctr2", Some(&c2), "eth0", &netd_dns).silent();
    w.cmd("DEL", "dctr", Some(&c), "eth0", &cf).silent();
    assert!(w.endpoints().is_empty());
}

/// The `ipRanges` capability is the network's subnet, gateway and range
/// (netd's ranges are per network and CIDRs): a new network is made from
/// it, an existing one must match, and a range that is no CIDR is refused.
#[test]
fn ip_ranges_capability_maps_onto_the_network_range() {
    let w = World::new("ccxrng");
    let c = w.container("c");
    let mut cf = json!({ "cniVersion": "1.1.0", "name": "rangenet", "type": "netd-cni",
                         "capabilities": { "ipRanges": true } });
    cf["runtimeConfig"] = json!({ "ipRanges": [[{ "subnet": "10.220.0.0/24",
        "rangeStart": "10.220.0.128", "rangeEnd": "10.220.0.255", "gateway": "10.220.0.1" }]] });
    let r = w.add("rctr", &c, &cf);
    let addr = r["ips"][0]["address"].as_str().unwrap();
    assert!(
        addr.starts_with("10.220.0.1") && addr.ends_with("/24"),
        "{r}"
    );
    let last: u8 = addr
        .split('/')
        .next()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last >= 128, "{addr} is outside the range");
    assert_eq!(r["ips"][0]["gateway"], "10.220.0.1");
    let c2 = w.container("c2");
    let mut other = cf.clone();
    other["runtimeConfig"]["ipRanges"][0][0]["rangeStart"] = json!("10.220.0.64");
    other["runtimeConfig"]["ipRanges"][0][0]["rangeEnd"] = json!("10.220.0.127");
    let e = w.cmd("ADD", "rctr2", Some(&c2), "eth0", &other).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["details"].as_str().unwrap().contains("ipRange"), "{e}");
    other["runtimeConfig"]["ipRanges"][0][0]["rangeStart"] = json!("10.220.0.2");
    other["runtimeConfig"]["ipRanges"][0][0]["rangeEnd"] = json!("10.220.0.254");
    let e = w.cmd("ADD", "rctr2", Some(&c2), "eth0", &other).error();
    assert_eq!(e["code"], 2, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("not a CIDR"), "{e}");
    assert!(c2.link("eth0").is_none());
    w.cmd("DEL", "rctr", Some(&c), "eth0", &cf).silent();
}

/// GC is passed on to a delegated IPAM plugin that speaks 1.1.0, with the
/// runtime's list, and not to one that does not (host-local 1.0.0 would
/// refuse the command); an invalid list reaches neither.
#[test]
fn gc_is_passed_on_to_a_delegated_ipam_plugin_that_speaks_1_1_0() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new("ccxgc");
    let dir = support::TempDir::new(&format!("{}-ipam", w.tag));
    let fake = dir.0.join("ccxfakeipam");
    std::fs::write(
        &fake,
        r#"#!/bin/sh
case "$CNI_COMMAND" in
VERSION) cat >/dev/null; echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}' ;;
GC) cat > "$(dirname "$0")/gc.json" ;;
*) cat >/dev/null; echo '{"cniVersion":"1.1.0","code":7,"msg":"fake"}'; exit 1 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/lib/cni", dir.0.display());
    let mut cf = conf("1.1.0", "gcnet", "10.221.0.0/24");
    cf["ipam"] = json!({ "type": "ccxfakeipam" });
    let gc = |cf: &Value| {
        w.exec(
            &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path)],
            &cf.to_string(),
        )
    };
    cf["cni.dev/valid-attachments"] = json!("nope");
    assert_eq!(gc(&cf).error()["code"], 7);
    assert!(
        !dir.0.join("gc.json").exists(),
        "an invalid list was passed on"
    );
    let list = json!([{ "containerID": "a", "ifname": "eth0" }]);
    cf["cni.dev/valid-attachments"] = list.clone();
    gc(&cf).silent();
    let got: Value =
        serde_json::from_slice(&std::fs::read(dir.0.join("gc.json")).unwrap()).unwrap();
    assert_eq!(got["cni.dev/valid-attachments"], list);
    assert_eq!(got["ipam"]["type"], "ccxfakeipam");
    // host-local (1.0.0 here) has no GC: not passed on, GC succeeds.
    cf["ipam"] = json!({ "type": "host-local", "subnet": "10.221.0.0/24",
                         "dataDir": dir.0.join("hl").to_str().unwrap() });
    gc(&cf).silent();
}

/// CHECK reads the published ports back from the kernel's maps: silent
/// while they are there, an error naming the port once one is gone.
#[test]
fn check_reads_back_the_published_ports() {
    let w = World::new("ccxchk");
    let c = w.container("c");
    let mut cf = conf("1.1.0", "chkports", "10.223.0.0/24");
    cf["subnet6"] = json!("fd00:223::/64");
    cf["capabilities"] = json!({ "portMappings": true });
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": "" },
        { "hostPort": 18053, "containerPort": 53, "protocol": "udp", "hostIP": "" },
    ] });
    let r = w.add("pctr", &c, &cf);
    let mut chk = cf.clone();
    chk["prevResult"] = r;
    w.cmd("CHECK", "pctr", Some(&c), "eth0", &chk).silent();
    w.host.run_ok(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "netd",
            "pub_any6",
            "{ udp . 18053 }",
        ],
    );
    let e = w.cmd("CHECK", "pctr", Some(&c), "eth0", &chk).error();
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("18053/udp") && msg.contains("pub_any6"), "{e}");
    w.host.run_ok("nft", &["delete", "table", "inet", "netd"]);
    let e = w.cmd("CHECK", "pctr", Some(&c), "eth0", &chk).error();
    assert!(
        e["msg"].as_str().unwrap().contains("inet netd is missing"),
        "{e}"
    );
    w.cmd("DEL", "pctr", Some(&c), "eth0", &cf).silent();
}

/// Routed IPv6 (`ipMasq6: false`): the container ports published on the
/// network are let in at the container's own IPv6 address through the
/// `direct6` set; CHECK reads those elements back too and names the one
/// missing.
#[test]
fn check_reads_back_the_routed_ipv6_direct_elements() {
    let w = World::new("ncon-chk6r");
    let c = w.container("c");
    let mut cf = conf("1.1.0", "chkrouted", "10.224.0.0/24");
    cf["subnet6"] = json!("fd00:224::/64");
    cf["ipMasq6"] = json!(false);
    cf["capabilities"] = json!({ "portMappings": true });
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 18081, "containerPort": 80, "protocol": "tcp", "hostIP": "" },
        { "hostPort": 18054, "containerPort": 53, "protocol": "udp", "hostIP": "" },
    ] });
    let r = w.add("rctr", &c, &cf);
    assert_eq!(r["ips"][1]["address"], "fd00:224::2/64", "{r}");
    let mut chk = cf.clone();
    chk["prevResult"] = r;
    w.cmd("CHECK", "rctr", Some(&c), "eth0", &chk).silent();
    let table = w
        .host
        .run_ok("nft", &["list", "set", "inet", "netd", "direct6"]);
    assert!(table.contains("fd00:224::2 . udp . 53"), "{table}");
    w.host.run_ok(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "netd",
            "direct6",
            "{ fd00:224::2 . udp . 53 }",
        ],
    );
    let e = w.cmd("CHECK", "rctr", Some(&c), "eth0", &chk).error();
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("direct6") && msg.contains("fd00:224::2 . udp . 53"),
        "{e}"
    );
    w.cmd("DEL", "rctr", Some(&c), "eth0", &cf).silent();
}
