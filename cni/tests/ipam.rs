//! Delegated IPAM: netd-cni with `"ipam": {"type": "host-local", ...}` uses
//! the reference host-local plugin's addresses, and both release them.

mod support;

use serde_json::json;
use support::World;

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

#[test]
fn host_local_chooses_netd_reserves_both_release() {
    assert!(
        std::path::Path::new(HOST_LOCAL).exists(),
        "{HOST_LOCAL} is missing: apt-get install containernetworking-plugins"
    );
    let w = World::new("ipm");
    let leases = w.state.0.join("host-local");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "ipamnet", "type": "netd-cni",
        "ipam": { "type": "host-local", "dataDir": leases,
                  "ranges": [[{ "subnet": "10.222.0.0/24", "rangeStart": "10.222.0.50",
                                "gateway": "10.222.0.1" }]] }
    });
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let r1 = w.add("i1", &c1, &conf);
    assert_eq!(r1["ips"][0]["address"], "10.222.0.50/24", "{r1}");
    assert_eq!(r1["ips"][0]["gateway"], "10.222.0.1");
    let r2 = w.add("i2", &c2, &conf);
    assert_eq!(r2["ips"][0]["address"], "10.222.0.51/24", "{r2}");
    // netd made the network from the lease and reserved the same addresses.
    let eps = w.endpoints();
    let mut ips: Vec<String> = eps.iter().map(|e| e.primary_addr()).collect();
    ips.sort();
    assert_eq!(ips, vec!["10.222.0.50", "10.222.0.51"]);
    assert_eq!(c1.addresses("eth0"), vec!["10.222.0.50/24"]);
    assert!(
        c1.ping("10.222.0.51"),
        "containers on the leased addresses talk"
    );
    assert!(c1.ping("10.222.0.1"), "the gateway is host-local's");
    let lease_file = leases.join("ipamnet").join("10.222.0.50");
    assert!(lease_file.exists(), "host-local holds the lease");
    // CHECK goes to host-local too, and is silent when healthy.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r1.clone();
    w.cmd("CHECK", "i1", Some(&c1), "eth0", &with_prev).silent();

    // DEL releases both; twice is fine.
    w.cmd("DEL", "i1", Some(&c1), "eth0", &conf).silent();
    w.cmd("DEL", "i1", Some(&c1), "eth0", &conf).silent();
    assert!(!lease_file.exists(), "host-local's lease not released");
    assert_eq!(w.endpoints().len(), 1);
    // host-local goes on round-robin (.52), and netd takes what it gives.
    let c3 = w.container("c3");
    let r3 = w.add("i3", &c3, &conf);
    assert_eq!(r3["ips"][0]["address"], "10.222.0.52/24", "{r3}");
    assert!(c3.ping("10.222.0.51"));

    // A lease netd cannot take (outside the network's subnet) fails the ADD
    // and gives the lease back.
    let mut other = conf.clone();
    other["ipam"]["ranges"] = json!([[{ "subnet": "10.223.0.0/24" }]]);
    let c4 = w.container("c4");
    let e = w.cmd("ADD", "i4", Some(&c4), "eth0", &other).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(
        !leases.join("ipamnet").join("10.223.0.2").exists(),
        "the failed ADD kept its lease"
    );
    assert!(c4.link("eth0").is_none());

    for (id, c) in [("i2", &c2), ("i3", &c3)] {
        w.cmd("DEL", id, Some(c), "eth0", &conf).silent();
    }
    assert!(w.endpoints().is_empty());
}

/// host-local with a range set per family: netd takes both leases, the
/// network is made dual-stack from them, and both are released. Two IPv6
/// range sets lease two IPv6 addresses, which netd cannot give one
/// interface: code 7 naming them, the leases given back.
#[test]
fn cni6x_host_local_leases_both_families() {
    let w = World::new("cni6x-hl");
    let leases = w.state.0.join("host-local");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "cni6xhl", "type": "netd-cni",
        "ipam": { "type": "host-local", "dataDir": leases,
                  "ranges": [[{ "subnet": "10.224.0.0/24" }],
                             [{ "subnet": "fd00:cb6:7::/64", "rangeStart": "fd00:cb6:7::10" }]] }
    });
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let r1 = w.add("h1", &c1, &conf);
    assert_eq!(r1["ips"][0]["address"], "10.224.0.2/24", "{r1}");
    assert_eq!(r1["ips"][1]["address"], "fd00:cb6:7::10/64", "{r1}");
    assert_eq!(r1["ips"][1]["gateway"], "fd00:cb6:7::1", "{r1}");
    assert_eq!(
        r1["routes"][1],
        json!({ "dst": "::/0", "gw": "fd00:cb6:7::1" })
    );
    let r2 = w.add("h2", &c2, &conf);
    assert_eq!(r2["ips"][1]["address"], "fd00:cb6:7::11/64", "{r2}");
    let ip6s: Vec<String> = w
        .endpoints()
        .iter()
        .filter_map(|e| e.ip6.map(|a| a.to_string()))
        .collect();
    assert_eq!(ip6s.len(), 2, "{ip6s:?}");
    assert!(ip6s.contains(&"fd00:cb6:7::10".to_string()), "{ip6s:?}");
    let ping6 = c2
        .output("ping", &["-6", "-c", "1", "-W", "2", "fd00:cb6:7::10"])
        .status
        .success();
    assert!(ping6, "containers on host-local's IPv6 leases talk");
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r1.clone();
    w.cmd("CHECK", "h1", Some(&c1), "eth0", &with_prev).silent();
    let lease6 = leases.join("cni6xhl").join("fd00:cb6:7::10");
    assert!(lease6.exists(), "host-local holds the IPv6 lease");
    w.cmd("DEL", "h1", Some(&c1), "eth0", &conf).silent();
    assert!(!lease6.exists(), "host-local's IPv6 lease not released");

    let mut two6 = conf.clone();
    two6["ipam"]["ranges"] = json!([[{ "subnet": "10.224.0.0/24" }],
        [{ "subnet": "fd00:cb6:7::/64", "rangeStart": "fd00:cb6:7::10" }],
        [{ "subnet": "fd00:cb6:8::/64" }]]);
    let c3 = w.container("c3");
    let e = w.cmd("ADD", "h3", Some(&c3), "eth0", &two6).error();
    assert_eq!(e["code"], 7, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("fd00:cb6:7::") && msg.contains("fd00:cb6:8::2/64"),
        "{e}"
    );
    let held: Vec<_> = std::fs::read_dir(leases.join("cni6xhl"))
        .unwrap()
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert_eq!(held.len(), 2, "only h2's two leases are held: {held:?}");
    assert!(c3.link("eth0").is_none());
    assert_eq!(w.endpoints().len(), 1);
    w.cmd("DEL", "h2", Some(&c2), "eth0", &conf).silent();
    assert!(w.endpoints().is_empty());
}
