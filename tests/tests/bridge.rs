//! Bridge networks end to end: a host namespace running the daemon,
//! sandboxes as containers, proven with kernel state and real traffic.

use netd_tests as support;

use std::process::Command;

use serde_json::Value;
use support::{Netns, World, ping, run_ok};

/// `ip -j` output of a command run in namespace `ns`.
fn ip_json(ns: &str, args: &[&str]) -> Value {
    let mut full = vec!["-j", "-n", ns];
    full.extend_from_slice(args);
    serde_json::from_str(&run_ok("ip", &full)).expect("ip -j output")
}

fn links(ns: &str) -> Vec<String> {
    ip_json(ns, &["link"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

fn addr_of(ns: &str, dev: &str) -> Option<String> {
    let v = ip_json(ns, &["-4", "addr", "show", "dev", dev]);
    let a = v.get(0)?.get("addr_info")?.get(0)?;
    Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"]))
}

fn world(tag: &str) -> World {
    World::new("ndA", tag)
}

/// Worlds this file's tests build on.
trait Bridged {
    fn network_with_two(&self, subnet: &str) -> (String, String, String);
}

impl Bridged for World {
    /// A network on `subnet` with two sandboxes, `a` (.2) and `b` (.3).
    fn network_with_two(&self, subnet: &str) -> (String, String, String) {
        let (net, a, b) = (self.name("net"), self.name("a"), self.name("b"));
        self.daemon
            .cli_ok(&["network", "create", "--subnet", subnet, &net]);
        self.daemon
            .cli_ok(&["sandbox", "create", "--network", &net, &a]);
        self.daemon
            .cli_ok(&["sandbox", "create", "--network", &net, &b]);
        (net, a, b)
    }
}

#[test]
fn two_sandboxes_talk_over_a_bridge() {
    let w = world("p");
    let (net, a, b) = w.network_with_two("10.201.1.0/24");

    // Kernel state: addresses in order, MAC derived from the address,
    // default route via the gateway, lo up, a bridge with the gateway.
    assert_eq!(addr_of(&a, "eth0").as_deref(), Some("10.201.1.2/24"));
    assert_eq!(addr_of(&b, "eth0").as_deref(), Some("10.201.1.3/24"));
    let eth0 = &ip_json(&a, &["link", "show", "eth0"])[0];
    assert_eq!(eth0["address"], "02:42:0a:c9:01:02");
    let lo = &ip_json(&a, &["link", "show", "lo"])[0];
    assert!(
        lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "lo is down"
    );
    let routes = ip_json(&a, &["route"]);
    let default = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == "default")
        .expect("a default route");
    assert_eq!(default["gateway"], "10.201.1.1");
    let info = w.daemon.cli_json(&["network", "inspect", &net]);
    let bridge = info[0]["driver"]["bridge"].as_str().unwrap().to_string();
    assert_eq!(
        addr_of(w.host.name(), &bridge).as_deref(),
        Some("10.201.1.1/24")
    );
    assert_eq!(info[0]["endpoints"].as_array().unwrap().len(), 2);

    // Traffic.
    assert!(ping(&a, "10.201.1.3"), "a cannot reach b");
    assert!(ping(&b, "10.201.1.2"), "b cannot reach a");
    assert!(ping(&a, "10.201.1.1"), "a cannot reach the gateway");
}

#[test]
fn connect_adds_eth1_and_disconnect_removes_it() {
    let w = world("c");
    let (n1, n2, a, b) = (w.name("n1"), w.name("n2"), w.name("a"), w.name("b"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.2.0/24", &n1]);
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.201.3.0/24",
        "--ip-range",
        "10.201.3.128/25",
        &n2,
    ]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &n1, &a]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &n2,
        "--ip",
        "10.201.3.7",
        &b,
    ]);
    assert_eq!(
        addr_of(&b, "eth0").as_deref(),
        Some("10.201.3.7/24"),
        "static --ip honoured"
    );
    assert!(
        !ping(&a, "10.201.3.7"),
        "different networks must not reach each other yet"
    );

    w.daemon
        .cli_ok(&["network", "connect", "--alias", "db", &n2, &a]);
    assert_eq!(
        addr_of(&a, "eth1").as_deref(),
        Some("10.201.3.128/24"),
        "dynamic addresses come from --ip-range"
    );
    assert!(ping(&a, "10.201.3.7"), "eth1 does not carry traffic");
    let sb = w.daemon.cli_json(&["sandbox", "inspect", &a]);
    let eps = sb[0]["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    assert!(
        eps.iter()
            .any(|e| e["ifname"] == "eth1" && e["aliases"][0] == "db")
    );

    // Already connected: refused, nothing changed.
    let before = w.snapshot();
    let err = w.daemon.cli_err(&["network", "connect", &n2, &a]);
    assert!(err.contains("already connected"), "{err}");
    assert_eq!(w.snapshot(), before);

    w.daemon.cli_ok(&["network", "disconnect", &n2, &a]);
    assert!(!links(&a).contains(&"eth1".to_string()), "eth1 still there");
    assert!(!ping(&a, "10.201.3.7"), "traffic after disconnect");
    assert!(ping(&a, "10.201.2.1"), "eth0 lost its network");
    let err = w.daemon.cli_err(&["network", "disconnect", &n2, &a]);
    assert!(err.contains("not connected"), "{err}");
}

#[test]
fn none_and_host_modes() {
    let w = world("m");
    let (none, host) = (w.name("none"), w.name("hostmode"));
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", "none", &none]);
    assert_eq!(links(&none), vec!["lo".to_string()], "none gets only lo");
    let lo = &ip_json(&none, &["link", "show", "lo"])[0];
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert!(ping(&none, "127.0.0.1"));
    let net = w.name("n");
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.4.0/24", &net]);
    let err = w.daemon.cli_err(&["network", "connect", &net, &none]);
    assert!(err.contains("none"), "{err}");

    w.daemon
        .cli_ok(&["sandbox", "create", "--network", "host", &host]);
    assert!(!Netns::exists(&host), "host mode creates no namespace");
    let out = w
        .daemon
        .cli_ok(&["sandbox", "exec", &host, "--", "ip", "-j", "link"]);
    let theirs: Vec<String> = serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        theirs,
        links(w.host.name()),
        "host mode sees the host namespace"
    );
    assert!(
        theirs.contains(&"netd0".to_string()),
        "the default bridge netd0 exists"
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let w = world("e");
    let (net, a) = (w.name("net"), w.name("a"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.5.0/24", &net]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "--ip",
        "10.201.5.9",
        &a,
    ]);
    let before = w.snapshot();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "network".into(),
                "create".into(),
                "--subnet".into(),
                "10.201.5.128/25".into(),
                w.name("x"),
            ],
            "overlaps",
        ),
        (
            vec![
                "network".into(),
                "create".into(),
                "--subnet".into(),
                "10.201.6.1/24".into(),
                w.name("x"),
            ],
            "host bits",
        ),
        (
            vec![
                "network".into(),
                "create".into(),
                "--subnet".into(),
                "300.1.1.0/24".into(),
                w.name("x"),
            ],
            "invalid subnet",
        ),
        (
            vec![
                "network".into(),
                "create".into(),
                "--subnet".into(),
                "10.201.7.0/24".into(),
                net.clone(),
            ],
            "already exists",
        ),
        (
            vec![
                "network".into(),
                "create".into(),
                "-o".into(),
                "foo=bar".into(),
                w.name("x"),
            ],
            "unknown option",
        ),
        (
            vec![
                "sandbox".into(),
                "create".into(),
                "--network".into(),
                net.clone(),
                "--ip".into(),
                "10.201.9.2".into(),
                w.name("x"),
            ],
            "outside subnet",
        ),
        (
            vec![
                "sandbox".into(),
                "create".into(),
                "--network".into(),
                net.clone(),
                "--ip".into(),
                "10.201.5.9".into(),
                w.name("x"),
            ],
            "already in use",
        ),
        (
            vec![
                "sandbox".into(),
                "create".into(),
                "--network".into(),
                "nosuch".into(),
                w.name("x"),
            ],
            "not found",
        ),
        // Once refused by the kernel (a 500 after the store took it): now
        // refused in validation.
        (
            vec![
                "sandbox".into(),
                "create".into(),
                "--network".into(),
                net.clone(),
                "--mac".into(),
                "00:00:00:00:00:00".into(),
                w.name("x"),
            ],
            "all-zero",
        ),
        (
            vec!["network".into(), "rm".into(), net.clone()],
            "active endpoints",
        ),
        (
            vec!["network".into(), "rm".into(), "bridge".into()],
            "pre-defined",
        ),
        (
            vec![
                "network".into(),
                "connect".into(),
                net.clone(),
                w.name("ghost"),
            ],
            "sandbox",
        ),
        (
            vec!["sandbox".into(), "rm".into(), w.name("ghost")],
            "not found",
        ),
        (
            vec![
                "sandbox".into(),
                "exec".into(),
                w.name("ghost"),
                "--".into(),
                "true".into(),
            ],
            "not found",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = w.daemon.cli_err(&args);
        assert!(
            err.contains(want),
            "`netd {}`: expected {want:?} in {err:?}",
            args.join(" ")
        );
        assert_eq!(
            w.snapshot(),
            before,
            "`netd {}` changed something",
            args.join(" ")
        );
    }
    // The daemon refuses the same requests itself, with a 4xx status and a
    // message, in both API families (not only through the CLI's checks).
    let (x, ghost) = (w.name("x"), w.name("ghost"));
    let api: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/netd/networks".into(),
            format!(r#"{{"name":"{x}","subnet":"10.0.0.1/24"}}"#),
            400,
            "host bits",
        ),
        (
            "POST",
            "/netd/networks".into(),
            format!(r#"{{"name":"{x}","subnet":"10.201.5.0/25"}}"#),
            409,
            "overlaps",
        ),
        (
            "POST",
            "/netd/networks".into(),
            format!(r#"{{"name":"{x}","subnet":"10.201.6.0/24","bogus":1}}"#),
            400,
            "bogus",
        ),
        (
            "POST",
            "/v1.47/networks/create".into(),
            format!(r#"{{"Name":"{x}","IPAM":{{"Config":[{{"Subnet":"300.1.1.0/24"}}]}}}}"#),
            400,
            "300.1.1.0/24",
        ),
        (
            "POST",
            "/v1.47/networks/create".into(),
            format!(r#"{{"Name":"{x}","Options":{{"foo":"bar"}}}}"#),
            400,
            "unknown option",
        ),
        (
            "DELETE",
            "/v1.47/networks/bridge".into(),
            String::new(),
            403,
            "pre-defined",
        ),
        (
            "POST",
            format!("/v1.47/networks/{net}/connect"),
            format!(r#"{{"Container":"{ghost}"}}"#),
            404,
            "not found",
        ),
        (
            "GET",
            format!("/netd/networks/{ghost}/members/web"),
            String::new(),
            404,
            "not found",
        ),
    ];
    for (method, path, body, status, want) in api {
        let (got, text) = w
            .daemon
            .api(method, &path, (!body.is_empty()).then_some(body.as_str()));
        assert!(
            got == status && text.contains(want),
            "{method} {path}: got {got} {text:?}, want {status} with {want:?}"
        );
        assert_eq!(w.snapshot(), before, "{method} {path} changed something");
    }
    assert!(
        !Netns::exists(&w.name("x")),
        "a refused sandbox left a namespace"
    );
}

#[test]
fn daemon_restart_after_kill_keeps_everything_and_repairs_the_kernel() {
    let mut w = world("k");
    let (_net, a, b) = w.network_with_two("10.201.8.0/24");
    assert!(ping(&a, "10.201.8.3"));

    w.daemon.kill9();
    // The containers keep their network while the daemon is down...
    assert!(ping(&a, "10.201.8.3"), "traffic stopped with the daemon");
    // ...and damage done meanwhile is repaired at the next start: a lost
    // veth, a lost bridge address, and an orphan link with netd's naming.
    let info_b = Command::new("ip")
        .args(["-n", w.host.name(), "-j", "link"])
        .output()
        .unwrap();
    let host_links: Value = serde_json::from_slice(&info_b.stdout).unwrap();
    let veths: Vec<String> = host_links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("nd-"))
        .map(str::to_string)
        .collect();
    assert_eq!(veths.len(), 2);
    w.host.run_ok("ip", &["link", "del", &veths[0]]);
    // The other veth set down, and both sandboxes' default routes deleted.
    w.host.run_ok("ip", &["link", "set", &veths[1], "down"]);
    // (The sandbox whose veth was deleted lost its route with it.)
    for s in [&a, &b] {
        let _ = Command::new("ip")
            .args(["-n", s, "route", "del", "default"])
            .output();
    }
    let bridge = links(w.host.name())
        .into_iter()
        .find(|l| l.starts_with("netd-"))
        .unwrap();
    w.host.run_ok("ip", &["addr", "flush", "dev", &bridge]);
    w.host.run_ok(
        "ip",
        &[
            "link",
            "add",
            "nd-000000000000",
            "type",
            "veth",
            "peer",
            "name",
            "ndA-orphan-p",
        ],
    );
    // ifbs (the CNI plugin's egress limits, named after their host veths):
    // one whose endpoint is gone is an orphan too; a live endpoint's stays,
    // and so does someone else's link that only starts like one.
    let live_ifb = format!("ndi{}", &veths[1][3..]);
    for ifb in ["ndi000000000000", live_ifb.as_str(), "ndiother"] {
        w.host
            .run_ok("ip", &["link", "add", "name", ifb, "type", "ifb"]);
    }
    assert!(
        !ping(&a, "10.201.8.3") || !ping(&b, "10.201.8.2"),
        "damage should break something"
    );

    w.daemon.restart();
    assert!(ping(&a, "10.201.8.3"), "a cannot reach b after restart");
    assert!(
        ping(&b, "10.201.8.1"),
        "b cannot reach the gateway after restart"
    );
    let now = links(w.host.name());
    assert!(
        !now.contains(&"nd-000000000000".to_string()),
        "orphan veth not removed"
    );
    assert!(
        !now.contains(&"ndi000000000000".to_string()),
        "orphan ifb not removed"
    );
    assert!(
        now.contains(&live_ifb) && now.contains(&"ndiother".to_string()),
        "an ifb that is no orphan was removed: {now:?}"
    );
    assert_eq!(
        addr_of(w.host.name(), &bridge).as_deref(),
        Some("10.201.8.1/24")
    );
    for s in [&a, &b] {
        let routes = run_ok("ip", &["-n", s, "route", "show", "default"]);
        assert!(
            routes.contains("via 10.201.8.1"),
            "default route of {s} not restored: {routes:?}"
        );
    }
    let ls = w.daemon.cli_json(&["sandbox", "ls", "--format", "json"]);
    assert_eq!(ls.as_array().unwrap().len(), 2, "sandboxes lost");
}

#[test]
fn removing_everything_leaves_nothing_and_addresses_are_reused() {
    let w = world("r");
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    let before = links(w.host.name());
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.9.0/24", &net]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &a]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &b]);
    w.daemon.cli_ok(&["sandbox", "rm", &a]);
    assert!(!Netns::exists(&a), "namespace of a removed sandbox is left");
    // The released .2 is handed out again before anything higher.
    let c = w.name("c");
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &c]);
    assert_eq!(addr_of(&c, "eth0").as_deref(), Some("10.201.9.2/24"));
    w.daemon.cli_ok(&["sandbox", "rm", &b, &c]);
    w.daemon.cli_ok(&["network", "rm", &net]);
    assert_eq!(links(w.host.name()), before, "links left behind");
    let nets = w.daemon.cli_json(&["network", "ls", "--format", "json"]);
    assert_eq!(
        nets.as_array().unwrap().len(),
        3,
        "only bridge, host and none remain"
    );
    assert!(
        w.daemon
            .cli_json(&["sandbox", "ls", "--format", "json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Prune removes unused user networks only.
    let (p1, p2) = (w.name("p1"), w.name("p2"));
    w.daemon.cli_ok(&["network", "create", &p1]);
    w.daemon.cli_ok(&["network", "create", &p2]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &p2, &a]);
    let out = w.daemon.cli_ok(&["network", "prune", "--force"]);
    assert!(out.lines().any(|l| l == p1), "{out}");
    assert!(
        !out.lines().any(|l| l == p2),
        "a network in use was pruned: {out}"
    );
}

#[test]
fn concurrent_creates_get_distinct_addresses() {
    let w = world("q");
    let net = w.name("net");
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.10.0/24", &net]);
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let name = w.name(&format!("s{i}"));
            let sock = w.daemon.socket();
            let net = net.clone();
            std::thread::spawn(move || {
                Command::new(support::netd_bin())
                    .arg("--socket")
                    .arg(sock)
                    .args(["sandbox", "create", "--network", &net, &name])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut ips: Vec<String> = (0..16)
        .map(|i| addr_of(&w.name(&format!("s{i}")), "eth0").unwrap())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 16, "an address was given twice: {ips:?}");
}

#[test]
fn the_stock_docker_cli_drives_netd() {
    let w = world("d");
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", w.daemon.socket().display()),
            )
            .args(args)
            .output()
            .expect("the docker CLI (scripts/setup.sh installs one)");
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (net, other, a) = (w.name("dk"), w.name("dk2"), w.name("a"));
    let id = docker(&[
        "network",
        "create",
        "--subnet",
        "10.201.11.0/24",
        "--label",
        "team=web",
        &net,
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(docker(&["network", "ls"]).contains(&net));
    assert!(
        docker(&[
            "network",
            "ls",
            "--filter",
            "label=team=web",
            "--format",
            "{{.Name}}"
        ])
        .trim()
            == net
    );
    let inspect: Value = serde_json::from_str(&docker(&["network", "inspect", &net])).unwrap();
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], "10.201.11.0/24");

    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.12.0/24", &other]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &other, &a]);
    docker(&["network", "connect", "--alias", "web", &net, &a]);
    let inspect: Value = serde_json::from_str(&docker(&["network", "inspect", &net])).unwrap();
    let containers = inspect[0]["Containers"].as_object().unwrap();
    assert_eq!(containers.len(), 1);
    let c = containers.values().next().unwrap();
    assert_eq!(c["Name"], a.as_str());
    assert_eq!(c["IPv4Address"], "10.201.11.2/24");
    assert_eq!(
        addr_of(&a, "eth1").as_deref(),
        Some("10.201.11.2/24"),
        "docker connect did not reach the kernel"
    );
    assert!(ping(&a, "10.201.11.1"));

    docker(&["network", "disconnect", &net, &a]);
    assert!(!links(&a).contains(&"eth1".to_string()));
    docker(&["network", "rm", &net]);
    let names = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!names.lines().any(|l| l == net), "{names}");
    let unused = w.name("unused");
    docker(&["network", "create", &unused]);
    let pruned = docker(&["network", "prune", "-f"]);
    assert!(pruned.lines().any(|l| l == unused), "{pruned}");
    assert!(
        !pruned.lines().any(|l| l == other),
        "a network in use was pruned: {pruned}"
    );
}

/// `network rm N` racing `network connect N S`: either may win, but exactly
/// one does, and a network still listed has its bridge with its address (a
/// removal refused because the connect got in first used to delete the
/// bridge anyway).
#[test]
fn network_rm_racing_connect_leaves_one_winner_and_a_whole_network() {
    let w = world("x");
    let (base, n, sb) = (w.name("base"), w.name("n"), w.name("sb"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.118.0/24", &base]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &base, &sb]);
    let bridges = || -> Vec<String> {
        links(w.host.name())
            .into_iter()
            .filter(|l| l.starts_with("netd-"))
            .collect()
    };
    let mut outcomes = std::collections::BTreeSet::new();
    for round in 0..20 {
        let before = bridges();
        w.daemon
            .cli_ok(&["network", "create", "--subnet", "10.201.119.0/24", &n]);
        let bridge = bridges()
            .into_iter()
            .find(|b| !before.contains(b))
            .expect("the new network's bridge");
        let (rm, connect) = std::thread::scope(|sc| {
            let rm = sc.spawn(|| w.daemon.cli(&["network", "rm", &n]));
            let connect = sc.spawn(|| w.daemon.cli(&["network", "connect", &n, &sb]));
            (rm.join().unwrap(), connect.join().unwrap())
        });
        let listed = w
            .daemon
            .cli_json(&["network", "ls", "--format", "json"])
            .to_string()
            .contains(&format!("\"{n}\""));
        let info = format!(
            "round {round}: rm {:?} / connect {:?}",
            rm.status, connect.status
        );
        match (rm.status.success(), connect.status.success()) {
            (true, false) => {
                assert!(!listed, "removed network still listed; {info}");
                assert!(
                    !links(w.host.name()).contains(&bridge),
                    "bridge left; {info}"
                );
                outcomes.insert("rm won");
            }
            (false, true) => {
                assert!(listed, "{info}");
                assert_eq!(
                    addr_of(w.host.name(), &bridge).as_deref(),
                    Some("10.201.119.1/24"),
                    "the network's bridge is gone or bare; {info}"
                );
                assert!(ping(&sb, "10.201.119.1"), "{info}");
                w.daemon.cli_ok(&["network", "disconnect", &n, &sb]);
                w.daemon.cli_ok(&["network", "rm", &n]);
                outcomes.insert("connect won");
            }
            _ => panic!("not exactly one winner (listed: {listed}); {info}"),
        }
    }
    eprintln!("outcomes seen: {outcomes:?}");
    assert!(ping(&sb, "10.201.118.1"), "sb lost its own network");
}

/// `GET /netd/networks/{net}/members/{name}`: the endpoints that answer to a
/// name in the network's DNS (what netd-lb's discovery asks for), by the
/// same rule: alias, sandbox name, NAME.NETWORK, any case.
#[test]
fn members_of_a_name_follow_the_dns_rule() {
    let w = world("n");
    let (net, other) = (w.name("net"), w.name("other"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.120.0/24", &net]);
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.121.0/24", &other]);
    let (a, b, c) = (w.name("a"), w.name("b"), w.name("c"));
    for s in [&a, &b] {
        w.daemon
            .cli_ok(&["sandbox", "create", "--network", &net, "--alias", "web", s]);
    }
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &c]);
    // An alias "web" on another network is not a member on this one.
    w.daemon
        .cli_ok(&["network", "connect", "--alias", "web", &other, &c]);

    let ips = |path: String| -> Vec<String> {
        let mut v: Vec<String> = w
            .daemon
            .api_get(&path)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ip"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ips(format!("/netd/networks/{net}/members/WEB")),
        vec!["10.201.120.2", "10.201.120.3"]
    );
    assert_eq!(
        ips(format!("/netd/networks/{net}/members/{c}.{net}")),
        vec!["10.201.120.4"]
    );
    assert_eq!(
        ips(format!("/netd/networks/{other}/members/web")),
        vec!["10.201.121.2"]
    );
    assert!(ips(format!("/netd/networks/{net}/members/nobody")).is_empty());
    w.daemon.cli_ok(&["sandbox", "rm", &a]);
    assert_eq!(
        ips(format!("/netd/networks/{net}/members/web")),
        vec!["10.201.120.3"]
    );
}
