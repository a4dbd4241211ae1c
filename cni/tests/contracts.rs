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
