//! Dual-stack networks through netd-cni: `subnet6` gives containers an
//! IPv6 address and default route beside the IPv4 ones, results list both,
//! containers reach each other over IPv6 and resolve AAAA at 127.0.0.11,
//! CHECK looks at the IPv6 side too, `ips` takes an IPv6 address, and bad
//! IPv6 input is refused with code 7 changing nothing.

mod support;

use serde_json::{Value, json};
use support::{Netns, World, conf};

fn ping6(ns: &Netns, ip: &str) -> bool {
    ns.output("ping", &["-6", "-c", "1", "-W", "2", ip])
        .status
        .success()
}

/// IPv6 CIDRs of global scope on `dev` (not the fe80:: one).
fn addresses6(ns: &Netns, dev: &str) -> Vec<String> {
    ns.json(&["-6", "addr", "show", "dev", dev, "scope", "global"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

fn default_gateway6(ns: &Netns) -> Option<String> {
    ns.json(&["-6", "route", "show", "default"])
        .as_array()
        .and_then(|a| a.first().cloned())
        .and_then(|r| r["gateway"].as_str().map(str::to_string))
}

fn dual(version: &str, name: &str, subnet: &str, subnet6: &str) -> Value {
    let mut c = conf(version, name, subnet);
    c["subnet6"] = json!(subnet6);
    c
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[test]
fn cni6x_dual_stack_add_ping6_aaaa_check_del() {
    let w = World::new("cni6x-ds");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let mut cf = dual("1.1.0", "cni6xds", "10.231.0.0/24", "fd00:cb6:1::/64");
    cf["dnsEnabled"] = json!(true);

    let r = w.add("cni6xweb", &c1, &cf);
    assert_eq!(
        r["ips"],
        json!([
            { "address": "10.231.0.2/24", "gateway": "10.231.0.1", "interface": 1 },
            { "address": "fd00:cb6:1::2/64", "gateway": "fd00:cb6:1::1", "interface": 1 }
        ]),
        "{r}"
    );
    assert_eq!(
        r["routes"],
        json!([
            { "dst": "0.0.0.0/0", "gw": "10.231.0.1" },
            { "dst": "::/0", "gw": "fd00:cb6:1::1" }
        ])
    );
    assert_eq!(r["dns"]["nameservers"], json!(["127.0.0.11"]));
    // What the result says is what the kernel has.
    assert_eq!(c1.addresses("eth0"), vec!["10.231.0.2/24"]);
    assert_eq!(addresses6(&c1, "eth0"), vec!["fd00:cb6:1::2/64"]);
    assert_eq!(default_gateway6(&c1).as_deref(), Some("fd00:cb6:1::1"));
    let r2 = w.add("cni6xclient", &c2, &cf);
    assert_eq!(r2["ips"][1]["address"], "fd00:cb6:1::3/64");
    // The store's network is dual-stack, made from the keys.
    let eps = w.endpoints();
    assert_eq!(eps.len(), 2);
    assert!(eps.iter().all(|e| e.ip6.is_some()), "{eps:?}");

    // Real IPv6 traffic, at once (no DAD wait), and both families' names.
    assert!(ping6(&c2, "fd00:cb6:1::2"), "ping6 c2 -> c1");
    assert!(ping6(&c1, "fd00:cb6:1::3"), "ping6 c1 -> c2");
    assert!(ping6(&c1, "fd00:cb6:1::1"), "ping6 to the gateway");
    assert!(c2.ping("10.231.0.2"), "IPv4 still works");
    let dig = |ty: &str| {
        c2.run_ok(
            "dig",
            &[
                "+short",
                "+tries=3",
                "+time=2",
                "@127.0.0.11",
                ty,
                "cni6xweb",
            ],
        )
        .trim()
        .to_string()
    };
    assert_eq!(dig("AAAA"), "fd00:cb6:1::2");
    assert_eq!(dig("A"), "10.231.0.2");

    // CHECK: healthy in 1.1.0 and 0.4.0 (whose ips carry "version").
    let chk = with_prev(&cf, &r);
    w.cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &chk).silent();
    let mut old = cf.clone();
    old["cniVersion"] = json!("0.4.0");
    let r_old = w
        .cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &with_prev(&old, &r))
        .code;
    assert_eq!(r_old, 0, "CHECK 0.4.0 with a 1.1.0 prevResult");
    // prevResult with another IPv6 address than the store reserved.
    let mut wrong = chk.clone();
    wrong["prevResult"]["ips"][1]["address"] = json!("fd00:cb6:1::99/64");
    let e = w
        .cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &wrong)
        .error();
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("not reserved") && msg.contains("fd00:cb6:1::2/64"),
        "{e}"
    );
    // The IPv6 default route removed by hand, then put back.
    c1.run_ok("ip", &["-6", "route", "del", "default"]);
    let e = w.cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &chk).error();
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("default route via fd00:cb6:1::1"), "{e}");
    c1.run_ok(
        "ip",
        &["-6", "route", "add", "default", "via", "fd00:cb6:1::1"],
    );
    w.cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &chk).silent();
    // The IPv6 address removed by hand.
    c1.run_ok(
        "ip",
        &["-6", "addr", "del", "fd00:cb6:1::2/64", "dev", "eth0"],
    );
    let e = w.cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &chk).error();
    assert_eq!(e["code"], 999, "{e}");
    assert_eq!(
        e["msg"], "interface eth0 lacks address fd00:cb6:1::2/64",
        "{e}"
    );
    // The IPv4 side alone still checks out for a prevResult without IPv6?
    // No: the store holds both, so a prevResult must list both.
    let mut v4_only = chk.clone();
    v4_only["prevResult"]["ips"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    let e = w
        .cmd("CHECK", "cni6xweb", Some(&c1), "eth0", &v4_only)
        .error();
    assert!(e["msg"].as_str().unwrap().contains("not reserved"), "{e}");

    // DEL cleans up both families; the address is free again.
    w.cmd("DEL", "cni6xweb", Some(&c1), "eth0", &cf).silent();
    w.cmd("DEL", "cni6xweb", Some(&c1), "eth0", &cf).silent();
    assert!(c1.link("eth0").is_none());
    assert_eq!(w.endpoints().len(), 1);
    let c3 = w.container("c3");
    let r3 = w.add("cni6xthird", &c3, &cf);
    assert_eq!(r3["ips"][1]["address"], "fd00:cb6:1::2/64", "{r3}");
    for (id, c) in [("cni6xclient", &c2), ("cni6xthird", &c3)] {
        w.cmd("DEL", id, Some(c), "eth0", &cf).silent();
    }
    assert!(w.endpoints().is_empty());
    assert!(w.sandboxes().is_empty());
    assert!(w.veths_after_reaping(0).is_empty());
}

/// What a refused ADD must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    networks: Vec<String>,
    endpoints: usize,
    sandboxes: usize,
    veths: Vec<String>,
}

fn snapshot(w: &World) -> Snapshot {
    let store = netd::store::Store::open(&w.state.0).unwrap();
    let mut networks: Vec<String> = store
        .read(netd::store::networks)
        .unwrap()
        .into_iter()
        .map(|n| serde_json::to_string(&n).unwrap())
        .collect();
    networks.sort();
    Snapshot {
        networks,
        endpoints: w.endpoints().len(),
        sandboxes: w.sandboxes().len(),
        veths: w.veths(),
    }
}

#[test]
fn cni6x_ips_with_ipv6_and_bad_ipv6_input() {
    let w = World::new("cni6x-ips");
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let cf = dual("1.0.0", "cni6xips", "10.232.0.0/24", "fd00:cb6:2::/64");
    let mut fixed = cf.clone();
    fixed["runtimeConfig"] = json!({ "ips": ["10.232.0.7/24", "fd00:cb6:2::7/64"] });
    let r = w.add("cni6xfixed", &c1, &fixed);
    assert_eq!(r["ips"][0]["address"], "10.232.0.7/24", "{r}");
    assert_eq!(r["ips"][1]["address"], "fd00:cb6:2::7/64", "{r}");
    assert_eq!(addresses6(&c1, "eth0"), vec!["fd00:cb6:2::7/64"]);
    // Only the IPv6 address given: IPv4 from netd's IPAM.
    let mut only6 = cf.clone();
    only6["runtimeConfig"] = json!({ "ips": ["fd00:cb6:2::70"] });
    let r = w.add("cni6xonly6", &c2, &only6);
    assert_eq!(r["ips"][0]["address"], "10.232.0.2/24", "{r}");
    assert_eq!(r["ips"][1]["address"], "fd00:cb6:2::70/64", "{r}");
    assert!(ping6(&c2, "fd00:cb6:2::7"));

    // An IPv4-only network beside it, with one container.
    let v4 = conf("1.0.0", "cni6xv4", "10.233.0.0/24");
    let c3 = w.container("c3");
    w.add("cni6xv4a", &c3, &v4);

    let c4 = w.container("c4");
    let before = snapshot(&w);
    let with = |base: &Value, f: &dyn Fn(&mut Value)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "an IPv6 subnet in the IPv4 key",
            with(&v4, &|c| c["subnet"] = json!("fd00:cb6:9::/64")),
            "fd00:cb6:9::/64",
        ),
        (
            "two IPv6 subnets",
            with(&cf, &|c| {
                c["subnet6"] = json!(["fd00:cb6:2::/64", "fd00:cb6:3::/64"])
            }),
            "fd00:cb6:3::/64",
        ),
        (
            "an IPv4 subnet in the IPv6 key",
            with(&cf, &|c| c["subnet6"] = json!("10.234.0.0/24")),
            "10.234.0.0/24",
        ),
        (
            "two IPv6 addresses in ips",
            with(&cf, &|c| {
                c["runtimeConfig"] = json!({ "ips": ["fd00:cb6:2::8", "fd00:cb6:2::9"] })
            }),
            "fd00:cb6:2::9",
        ),
        (
            "an IPv6 address in ips on an IPv4-only network",
            with(&v4, &|c| {
                c["runtimeConfig"] = json!({ "ips": ["fd00:cb6:2::8/64"] })
            }),
            "fd00:cb6:2::8 is IPv6, but network cni6xv4 has no IPv6 subnet",
        ),
        (
            "an IPv6 address in ips on a new network without IPv6",
            with(&conf("1.0.0", "cni6xnew", "10.235.0.0/24"), &|c| {
                c["runtimeConfig"] = json!({ "ips": ["fd00:cb6:2::8"] })
            }),
            "fd00:cb6:2::8 is IPv6, but network cni6xnew has no IPv6 subnet",
        ),
        (
            "an IPv6 address in ips outside subnet6",
            with(&cf, &|c| {
                c["runtimeConfig"] = json!({ "ips": ["fd00:cb6:5::8"] })
            }),
            "fd00:cb6:5::8",
        ),
        (
            "IPv6 asked of an existing IPv4-only network",
            with(&v4, &|c| c["subnet6"] = json!("fd00:cb6:4::/64")),
            "ipv6: the network has IPv4 only, the configuration IPv4 and IPv6",
        ),
        (
            "ipv6 false of an existing dual-stack network",
            with(&cf, &|c| {
                c.as_object_mut().unwrap().remove("subnet6");
                c["ipv6"] = json!(false);
            }),
            "ipv6: the network has IPv4 and IPv6, the configuration IPv4 only",
        ),
        (
            "another subnet6 than the network's",
            with(&cf, &|c| c["subnet6"] = json!("fd00:cb6:6::/64")),
            "subnet6: the network has fd00:cb6:2::/64, the configuration fd00:cb6:6::/64",
        ),
    ];
    for (what, conf, value) in refused {
        let e = w.cmd("ADD", "cni6xbad", Some(&c4), "eth0", &conf).error();
        assert_eq!(e["code"], 7, "{what}: {e}");
        let text = format!("{} {}", e["msg"], e["details"]);
        assert!(text.contains(value), "{what}: {e} does not name {value}");
        assert_eq!(snapshot(&w), before, "{what} changed something");
        assert!(c4.link("eth0").is_none(), "{what} left eth0");
    }

    for (id, c, conf) in [
        ("cni6xfixed", &c1, &fixed),
        ("cni6xonly6", &c2, &only6),
        ("cni6xv4a", &c3, &v4),
    ] {
        w.cmd("DEL", id, Some(c), "eth0", conf).silent();
    }
    assert!(w.endpoints().is_empty());
}

#[test]
fn cni6x_pool_subnet_and_published_ports_on_a_dual_stack_network() {
    let w = World::new("cni6x-pool");
    let c = w.container("c");
    // `ipv6: true` without subnet6: a ULA /64 from netd's pool.
    let mut cf = conf("1.1.0", "cni6xpool", "10.236.0.0/24");
    cf["ipv6"] = json!(true);
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8086, "containerPort": 80, "protocol": "tcp", "hostIP": "" }
    ] });
    let r = w.add("cni6xp", &c, &cf);
    let a6 = r["ips"][1]["address"].as_str().unwrap();
    assert!(a6.starts_with("fd") && a6.ends_with("::2/64"), "{r}");
    assert_eq!(r["routes"][1]["dst"], "::/0");
    // The port mapping is recorded with the endpoint and published.
    let eps = w.endpoints();
    assert_eq!(eps[0].ports.len(), 1, "{eps:?}");
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(maps.contains("8086"), "{maps}");
    w.cmd("CHECK", "cni6xp", Some(&c), "eth0", &with_prev(&cf, &r))
        .silent();
    w.cmd("DEL", "cni6xp", Some(&c), "eth0", &cf).silent();
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(!maps.contains("8086"), "{maps}");
    // `ipMasq6: false`: routed IPv6 (no NAT66), kept in the record and
    // compared like the other keys.
    let mut routed = dual("1.1.0", "cni6xrouted", "10.238.0.0/24", "fd00:cb6:a::/64");
    routed["ipMasq6"] = json!(false);
    let c2 = w.container("c2");
    w.add("cni6xr", &c2, &routed);
    let store = netd::store::Store::open(&w.state.0).unwrap();
    let net = store
        .read(|c| netd::store::network(c, "cni6xrouted"))
        .unwrap();
    let b = net.bridge().unwrap();
    assert!(
        b.ipv4.as_ref().unwrap().masquerade,
        "IPv4 still masquerades"
    );
    assert!(!b.ipv6.as_ref().unwrap().masquerade, "NAT66 is off");
    let mut nat = routed.clone();
    nat["ipMasq6"] = json!(true);
    let c3 = w.container("c3");
    let e = w.cmd("ADD", "cni6xn", Some(&c3), "eth0", &nat).error();
    assert_eq!(e["code"], 7, "{e}");
    assert_eq!(
        e["details"], "ipMasq6: the network has false, the configuration true",
        "{e}"
    );
    w.cmd("DEL", "cni6xr", Some(&c2), "eth0", &routed).silent();
}

/// A burst of ADDs on one dual-stack network: every container gets IPv6
/// and IPv4 addresses of its own (the indexed IPv6 IPAM under the store's
/// write lock), as its namespace has them; a burst of DELs frees them all,
/// and the next ADD gets the lowest IPv6 address again.
#[test]
fn cni6x_concurrent_adds_get_distinct_ipv6_addresses() {
    const N: usize = 32;
    let w = World::new("cni6x-par");
    let cf = dual("1.1.0", "cni6xpar", "10.237.0.0/24", "fd00:cb6:9::/64");
    let nss: Vec<Netns> = (0..N).map(|i| w.container(&format!("p{i}"))).collect();
    let barrier = std::sync::Barrier::new(N);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (w, cf, barrier) = (&w, &cf, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    w.cmd("ADD", &format!("cni6xp{i}"), Some(ns), "eth0", cf)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().ok())
            .collect()
    });
    let mut seen = std::collections::BTreeSet::new();
    for (r, ns) in results.iter().zip(&nss) {
        let a6 = r["ips"][1]["address"].as_str().unwrap().to_string();
        assert_eq!(addresses6(ns, "eth0"), vec![a6.clone()], "{}", ns.name());
        assert!(seen.insert(a6.clone()), "{a6} was handed out twice");
        assert!(seen.insert(r["ips"][0]["address"].to_string()));
    }
    assert_eq!(seen.len(), 2 * N);
    let last = results[N - 1]["ips"][1]["address"].as_str().unwrap();
    assert!(ping6(&nss[0], last.split('/').next().unwrap()));

    let barrier = std::sync::Barrier::new(N);
    std::thread::scope(|s| {
        for (i, ns) in nss.iter().enumerate() {
            let (w, cf, barrier) = (&w, &cf, &barrier);
            s.spawn(move || {
                barrier.wait();
                w.cmd("DEL", &format!("cni6xp{i}"), Some(ns), "eth0", cf)
                    .silent();
            });
        }
    });
    assert!(w.endpoints().is_empty());
    assert!(w.sandboxes().is_empty());
    let r = w.add("cni6xagain", &nss[0], &cf);
    assert_eq!(r["ips"][1]["address"], "fd00:cb6:9::2/64", "{r}");
    w.cmd("DEL", "cni6xagain", Some(&nss[0]), "eth0", &cf)
        .silent();
    assert!(w.veths_after_reaping(0).is_empty());
}

/// portMappings on a dual-stack network: an empty `hostIP` publishes on
/// both families, `::` on every IPv6 host address, an IPv6 `hostIP` on that
/// address only; each answers over IPv6 from an "outside" namespace joined
/// to the host by a veth, and leaves with DEL. On an IPv4-only network an
/// IPv6 `hostIP` is refused with 7 naming it, nothing made.
#[test]
fn cni6x_published_ports_answer_over_ipv6_from_outside() {
    let w = World::new("cni6x-pub");
    let outside = w.outside("10.202.36");
    w.host.run_ok(
        "ip",
        &[
            "-6",
            "addr",
            "add",
            "fd00:cb6:ff::1/64",
            "dev",
            "uplink",
            "nodad",
        ],
    );
    outside.run_ok(
        "ip",
        &[
            "-6",
            "addr",
            "add",
            "fd00:cb6:ff::2/64",
            "dev",
            "uplink",
            "nodad",
        ],
    );
    let c = w.container("c");
    let mut cf = dual("1.1.0", "cni6xpub", "10.239.0.0/24", "fd00:cb6:b::/64");
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8090, "containerPort": 80, "protocol": "tcp", "hostIP": "" },
        { "hostPort": 8091, "containerPort": 80, "protocol": "tcp", "hostIP": "::" },
        { "hostPort": 8092, "containerPort": 80, "protocol": "tcp", "hostIP": "fd00:cb6:ff::1" }
    ] });
    let r = w.add("cni6xweb", &c, &cf);
    assert_eq!(r["ips"][1]["address"], "fd00:cb6:b::2/64", "{r}");
    let _server = support::spawn_in(&c, "python3", &["-m", "http.server", "80", "--bind", "::"]);
    support::wait_listening(&c, 80);
    let get = |url: &str| support::curl(&outside, url);
    assert_eq!(
        get("http://[fd00:cb6:ff::1]:8090/"),
        "200",
        "both families: IPv6"
    );
    assert_eq!(
        get("http://10.202.36.1:8090/"),
        "200",
        "both families: IPv4"
    );
    assert_eq!(get("http://[fd00:cb6:ff::1]:8091/"), "200", "[::]");
    assert_eq!(get("http://10.202.36.1:8091/"), "000", "[::] is IPv6 only");
    assert_eq!(
        get("http://[fd00:cb6:ff::1]:8092/"),
        "200",
        "one IPv6 address"
    );
    w.cmd("DEL", "cni6xweb", Some(&c), "eth0", &cf).silent();
    assert_eq!(
        get("http://[fd00:cb6:ff::1]:8090/"),
        "000",
        "DEL left the port"
    );
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(!maps.contains("8090") && !maps.contains("8092"), "{maps}");

    let mut v4 = conf("1.1.0", "cni6xpub4", "10.240.0.0/24");
    v4["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8093, "containerPort": 80, "protocol": "tcp", "hostIP": "fd00:cb6:ff::1" }
    ] });
    let c2 = w.container("c2");
    let e = w.cmd("ADD", "cni6xv4web", Some(&c2), "eth0", &v4).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("fd00:cb6:ff::1"), "{e}");
    assert!(w.endpoints().is_empty() && w.sandboxes().is_empty());
    assert!(c2.link("eth0").is_none());
}

/// A portMapping on `::1` (issue 12): without DNS in the configuration,
/// ADD still starts the daemon, whose proxy serves `[::1]:PORT` on the host
/// by the time ADD returns; the port has no map element; DEL frees it.
#[test]
fn cni6x_loopback6_port_mapping_is_served_by_the_daemon() {
    let w = World::new("cni6x-lo6");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let c = w.container("c");
    let mut cf = dual("1.1.0", "cni6xlo6", "10.241.0.0/24", "fd00:cb6:c::/64");
    cf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8094, "containerPort": 80, "protocol": "tcp", "hostIP": "::1" }
    ] });
    let _server = support::spawn_in(&c, "python3", &["-m", "http.server", "80", "--bind", "::"]);
    support::wait_listening(&c, 80);
    let r = w.add("cni6xlo6web", &c, &cf);
    assert_eq!(support::curl(&w.host, "http://[::1]:8094/"), "200");
    let table = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(!table.contains("8094"), "{table}");
    // CHECK looks for no element of a proxied port.
    w.cmd(
        "CHECK",
        "cni6xlo6web",
        Some(&c),
        "eth0",
        &with_prev(&cf, &r),
    )
    .silent();
    w.cmd("DEL", "cni6xlo6web", Some(&c), "eth0", &cf).silent();
    // The reaper tells the daemon just after DEL returns.
    let start = std::time::Instant::now();
    while support::curl(&w.host, "http://[::1]:8094/") != "000" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "DEL left [::1]:8094 served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn cni6x_ipv6_only_network_from_ipv4_false() {
    let w = World::new("cni6x-only");
    let (c1, c2) = (w.container("c1"), w.container("c2"));
    let mut cf = conf("1.1.0", "cni6xonly", "10.0.0.0/24");
    let o = cf.as_object_mut().unwrap();
    o.remove("subnet");
    o.insert("ipv4".into(), json!(false));
    o.insert("subnet6".into(), json!("fd00:cb6:9::/64"));

    let r = w.add("cni6xo1", &c1, &cf);
    assert_eq!(
        r["ips"],
        json!([{ "address": "fd00:cb6:9::2/64", "gateway": "fd00:cb6:9::1", "interface": 1 }]),
        "{r}"
    );
    assert_eq!(
        r["routes"],
        json!([{ "dst": "::/0", "gw": "fd00:cb6:9::1" }])
    );
    assert!(c1.addresses("eth0").is_empty(), "an IPv4 address");
    assert_eq!(addresses6(&c1, "eth0"), vec!["fd00:cb6:9::2/64"]);
    w.add("cni6xo2", &c2, &cf);
    assert!(ping6(&c2, "fd00:cb6:9::2"), "ping6 c2 -> c1");
    assert!(w.endpoints().iter().all(|e| e.ip.is_none()));
    w.cmd("CHECK", "cni6xo1", Some(&c1), "eth0", &with_prev(&cf, &r))
        .silent();

    // The same name asked as dual-stack: the families differ, named.
    let mut dual = cf.clone();
    dual["ipv4"] = json!(true);
    let c3 = w.container("c3");
    let e = w.cmd("ADD", "cni6xo3", Some(&c3), "eth0", &dual).error();
    assert_eq!(e["code"], 7, "{e}");
    let details = e["details"].as_str().unwrap();
    assert!(details.contains("ipv4: the network has IPv6 only"), "{e}");
    // An IPv4 key beside ipv4: false.
    let mut bad = cf.clone();
    bad["subnet"] = json!("10.231.9.0/24");
    bad["name"] = json!("cni6xonly2");
    let e = w.cmd("ADD", "cni6xo4", Some(&c3), "eth0", &bad).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("10.231.9.0/24"), "{e}");
    for (id, c) in [("cni6xo1", &c1), ("cni6xo2", &c2)] {
        w.cmd("DEL", id, Some(c), "eth0", &cf).silent();
    }
    assert!(w.endpoints().is_empty());
}
