//! cniVersion 0.1.0 and 0.2.0: ADD answers in their result shape (`ip4`,
//! `ip6`, `dns`; no interfaces), DEL works, and what those versions did not
//! have (CHECK, GC, STATUS, chaining through `prevResult`) is refused with
//! code 1 naming the version, nothing made.

mod support;

use serde_json::{Value, json};
use support::{World, conf};

fn keys(r: &Value) -> Vec<&str> {
    r.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn cni020_add_del_in_the_old_result_shape() {
    let w = World::new("ncon-v020");
    let c = w.container("c");
    let mut cf = conf("0.2.0", "oldnet", "10.225.0.0/24");
    cf["subnet6"] = json!("fd00:225::/64");
    let r = w.add("old1", &c, &cf);
    assert_eq!(keys(&r), ["cniVersion", "dns", "ip4", "ip6"], "{r}");
    assert_eq!(r["cniVersion"], "0.2.0");
    assert_eq!(
        r["ip4"],
        json!({ "ip": "10.225.0.2/24", "gateway": "10.225.0.1",
                "routes": [{ "dst": "0.0.0.0/0", "gw": "10.225.0.1" }] }),
        "{r}"
    );
    assert_eq!(
        r["ip6"],
        json!({ "ip": "fd00:225::2/64", "gateway": "fd00:225::1",
                "routes": [{ "dst": "::/0", "gw": "fd00:225::1" }] }),
        "{r}"
    );
    // The result is what the container has, and it reaches its gateways.
    assert_eq!(c.addresses("eth0"), vec!["10.225.0.2/24"]);
    assert!(c.ping("10.225.0.1"), "ping the IPv4 gateway");
    assert!(
        netd_tests::ping6(c.name(), "fd00:225::1"),
        "ping the IPv6 gateway"
    );

    // What 0.2.0 did not have: refused with 1, naming the version.
    let mut chk = cf.clone();
    chk["prevResult"] = r.clone();
    for (cmd, conf) in [("CHECK", &chk), ("GC", &cf), ("STATUS", &cf)] {
        let e = w.cmd(cmd, "old1", Some(&c), "eth0", conf).error();
        assert_eq!(e["code"], 1, "{cmd}: {e}");
        assert_eq!(e["cniVersion"], "0.2.0", "{e}");
        assert_eq!(
            e["msg"],
            format!("config version does not allow {cmd}"),
            "{e}"
        );
        assert!(e["details"].as_str().unwrap().contains("0.2.0"), "{e}");
    }
    // Chaining came with 0.3.0: an ADD with a prevResult makes nothing.
    let c2 = w.container("c2");
    let e = w.cmd("ADD", "old2", Some(&c2), "eth0", &chk).error();
    assert_eq!(e["code"], 1, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("prevResult"), "{e}");
    assert!(c2.link("eth0").is_none());
    assert_eq!(w.sandboxes().len(), 1);

    w.cmd("DEL", "old1", Some(&c), "eth0", &cf).silent();
    assert!(c.link("eth0").is_none(), "DEL left eth0");
    assert!(w.endpoints().is_empty() && w.sandboxes().is_empty());
    assert!(w.veths_after_reaping(0).is_empty());
    w.cmd("DEL", "old1", Some(&c), "eth0", &cf).silent();
}

/// A configuration without `cniVersion` is 0.1.0 (libcni's reading):
/// answered in that version's shape.
#[test]
fn cni010_a_configuration_without_a_version_is_0_1_0() {
    let w = World::new("ncon-v010");
    let c = w.container("c");
    let mut cf = conf("0.1.0", "oldnet1", "10.226.0.0/24");
    cf.as_object_mut().unwrap().remove("cniVersion");
    let r = w.add("old1", &c, &cf);
    assert_eq!(keys(&r), ["cniVersion", "dns", "ip4"], "{r}");
    assert_eq!(r["cniVersion"], "0.1.0");
    assert_eq!(r["ip4"]["ip"], "10.226.0.2/24", "{r}");
    assert!(c.ping("10.226.0.1"), "ping the gateway");
    w.cmd("DEL", "old1", Some(&c), "eth0", &cf).silent();
    assert!(c.link("eth0").is_none(), "DEL left eth0");
}

/// A delegated IPAM plugin answering a 0.2.0 configuration gives `ip4`:
/// netd takes that lease as it takes `ips` from newer plugins.
#[test]
fn cni020_host_local_lease_in_ip4() {
    let host_local = "/usr/lib/cni/host-local";
    assert!(
        std::path::Path::new(host_local).exists(),
        "{host_local} is missing: apt-get install containernetworking-plugins"
    );
    let w = World::new("ncon-v020ipam");
    let leases = w.state.0.join("host-local");
    let cf = json!({
        "cniVersion": "0.2.0", "name": "oldipam", "type": "netd-cni",
        "ipam": { "type": "host-local", "dataDir": leases,
                  "ranges": [[{ "subnet": "10.227.0.0/24", "rangeStart": "10.227.0.50",
                                "gateway": "10.227.0.1" }]] }
    });
    let c = w.container("c");
    let r = w.add("old1", &c, &cf);
    assert_eq!(r["ip4"]["ip"], "10.227.0.50/24", "{r}");
    assert_eq!(r["ip4"]["gateway"], "10.227.0.1", "{r}");
    assert_eq!(c.addresses("eth0"), vec!["10.227.0.50/24"]);
    assert!(c.ping("10.227.0.1"), "ping host-local's gateway");
    let lease = leases.join("oldipam").join("10.227.0.50");
    assert!(lease.exists(), "host-local holds the lease");
    w.cmd("DEL", "old1", Some(&c), "eth0", &cf).silent();
    assert!(!lease.exists(), "DEL released host-local's lease");
}
