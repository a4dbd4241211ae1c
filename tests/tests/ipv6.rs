//! Dual-stack bridge networks end to end: IPv6 subnets, addresses, routes,
//! IPAM and DNS, proven with real traffic between sandboxes.

use netd_tests as support;

use support::{World, addrs6, addrs6_flags, dig, ping6, run_ok};

fn default_gw6(ns: &str) -> Option<String> {
    support::default_gateway6(ns)
}

fn world(tag: &str) -> World {
    World::new("nd6", tag)
}

#[test]
fn dual_stack_sandboxes_get_both_families_at_once_and_talk_over_ipv6() {
    let w = world("ds");
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.dual_network(&net, "10.206.1.0/24", "fd00:206:1::/64", &[]);
    w.cli(&["sandbox", "create", "--network", &net, &a]);
    w.cli(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "--ip6",
        "fd00:206:1::99",
        &b,
    ]);

    // The gateway on the bridge, the sandbox's address usable at once: no
    // DAD (nodad, never tentative), so the very first ping is answered.
    let ins = w.daemon.cli_json(&["network", "inspect", &net]);
    let bridge = ins[0]["driver"]["bridge"].as_str().unwrap().to_string();
    assert_eq!(ins[0]["driver"]["ipv6"]["subnet"], "fd00:206:1::/64");
    let gw = addrs6(w.host.name(), &bridge);
    assert_eq!(gw.len(), 1, "{gw:?}");
    assert_eq!(gw[0], "fd00:206:1::1/64");
    let ea = addrs6_flags(&a, "eth0");
    assert_eq!(ea.len(), 1, "{ea:?}");
    assert_eq!(ea[0].0, "fd00:206:1::2/64", "lowest free address");
    assert!(
        ea[0].1.contains(&"nodad".to_string()) && !ea[0].1.contains(&"tentative".to_string()),
        "{ea:?}"
    );
    assert_eq!(addrs6(&b, "eth0")[0], "fd00:206:1::99/64");
    assert!(ping6(&a, "fd00:206:1::99"), "first ping6 a -> b");
    assert!(ping6(&b, "fd00:206:1::2"), "ping6 b -> a");
    assert!(ping6(&a, "fd00:206:1::1"), "ping6 to the gateway");
    assert_eq!(default_gw6(&a).as_deref(), Some("fd00:206:1::1"));
    // IPv4 as before.
    assert!(support::ping(&a, "10.206.1.3"));

    // No router advertisements taken inside; the host veth has no IPv6.
    let ra = run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &a,
            "cat",
            "/proc/sys/net/ipv6/conf/eth0/accept_ra",
        ],
    );
    assert_eq!(ra.trim(), "0");
    for veth in w.host.links("nd-") {
        assert!(addrs6(w.host.name(), &veth).is_empty());
        let all = run_ok(
            "ip",
            &["-n", w.host.name(), "-6", "addr", "show", "dev", &veth],
        );
        assert!(all.trim().is_empty(), "IPv6 on host veth {veth}: {all}");
    }

    // inspect shows both families.
    let sb = w.daemon.cli_json(&["sandbox", "inspect", &a]).to_string();
    assert!(sb.contains("fd00:206:1::2"), "{sb}");

    // A released address is the next one handed out again.
    w.cli(&["sandbox", "rm", &a]);
    let c = w.name("c");
    w.cli(&["sandbox", "create", "--network", &net, &c]);
    assert_eq!(addrs6(&c, "eth0")[0], "fd00:206:1::2/64");
    let d = w.name("d");
    w.cli(&["sandbox", "create", "--network", &net, &d]);
    assert_eq!(addrs6(&d, "eth0")[0], "fd00:206:1::3/64");
}

#[test]
fn a_sandbox_on_two_dual_stack_networks_reaches_both_and_the_pool_gives_ula_subnets() {
    let w = world("two");
    let (n1, n2) = (w.name("n1"), w.name("n2"));
    // No IPv6 subnet given: /64s from netd's ULA pool, one after the other.
    w.cli(&["network", "create", "--ipv6", &n1]);
    w.cli(&["network", "create", "--ipv6", &n2]);
    let s1 = w.daemon.cli_json(&["network", "inspect", &n1]).to_string();
    let s2 = w.daemon.cli_json(&["network", "inspect", &n2]).to_string();
    assert!(s1.contains("fd6e:6574:6400::/64"), "{s1}");
    assert!(s2.contains("fd6e:6574:6400:1::/64"), "{s2}");
    let (a, b, both) = (w.name("a"), w.name("b"), w.name("both"));
    w.cli(&["sandbox", "create", "--network", &n1, &a]);
    w.cli(&["sandbox", "create", "--network", &n2, &b]);
    w.cli(&["sandbox", "create", "--network", &n1, &both]);
    w.cli(&[
        "network",
        "connect",
        "--ip6",
        "fd6e:6574:6400:1::42",
        &n2,
        &both,
    ]);
    assert_eq!(addrs6(&both, "eth1")[0], "fd6e:6574:6400:1::42/64");
    assert!(ping6(&both, "fd6e:6574:6400::2"), "both -> a on n1");
    assert!(ping6(&both, "fd6e:6574:6400:1::2"), "both -> b on n2");
    assert!(ping6(&a, "fd6e:6574:6400::3"));
    assert!(ping6(&b, "fd6e:6574:6400:1::42"));
    // Disconnecting n1 (which held the default routes) moves IPv6's to n2.
    w.cli(&["network", "disconnect", &n1, &both]);
    assert_eq!(default_gw6(&both).as_deref(), Some("fd6e:6574:6400:1::1"));
}

#[test]
fn bad_ipv6_input_is_refused_naming_the_value_and_changes_nothing() {
    let w = world("bad");
    let net = w.name("net");
    w.cli(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:207::/64",
        &net,
    ]);
    w.cli(&["network", "create", &w.name("v4")]);
    let before = w.snapshot();
    let other = w.name("other");
    for (args, words) in [
        (
            vec!["--subnet", "fd00:208::/64"],
            vec!["fd00:208::/64", "--ipv6"],
        ),
        (
            vec![
                "--ipv6",
                "--subnet",
                "fd00:208::/64",
                "--subnet",
                "fd00:209::/64",
            ],
            vec!["fd00:208::/64", "fd00:209::/64", "one per family"],
        ),
        (
            vec!["--ipv6", "--subnet", "fd00:207:0:0:1::/80"],
            vec!["overlaps", "fd00:207::/64"],
        ),
        (
            vec!["--ipv6", "--subnet", "fd00:208::/121"],
            vec!["/121", "/120"],
        ),
        (
            vec!["--ipv6", "--subnet", "fd00:208::1/64"],
            vec!["host bits", "fd00:208::/64"],
        ),
        (
            vec!["--ipv6", "--subnet", "fe80::/64"],
            vec!["fe80::/64", "link-local"],
        ),
        (
            vec![
                "--ipv6",
                "--subnet",
                "fd00:208::/64",
                "--gateway",
                "fd00:209::1",
            ],
            vec!["fd00:209::1", "fd00:208::/64"],
        ),
        (
            vec![
                "--ipv6",
                "--subnet",
                "fd00:208::/64",
                "-o",
                "com.docker.network.bridge.gateway_mode_ipv6=bgp",
            ],
            vec!["bgp", "nat or routed"],
        ),
    ] {
        let mut full = vec!["network", "create"];
        full.extend(args.iter().copied());
        full.push(&other);
        let err = w.daemon.cli_err(&full);
        for word in &words {
            assert!(err.contains(word), "{args:?}: {err:?} lacks {word:?}");
        }
    }
    let sb = w.name("sb");
    for (net, ip6, words) in [
        (net.clone(), "fd00:300::5", vec!["fd00:300::5", "outside"]),
        (net.clone(), "fd00:207::", vec!["fd00:207::", "reserved"]),
        (net.clone(), "fd00:207::1", vec!["fd00:207::1", "reserved"]),
        (
            w.name("v4"),
            "fd00:207::5",
            vec!["no IPv6 subnet", "--ipv6"],
        ),
    ] {
        let err = w
            .daemon
            .cli_err(&["sandbox", "create", "--network", &net, "--ip6", ip6, &sb]);
        for word in &words {
            assert!(err.contains(word), "{ip6}: {err:?} lacks {word:?}");
        }
    }
    // Over the Docker API too: a v6 config without EnableIPv6, two of them.
    for body in [
        r#"{"Name":"dk","IPAM":{"Config":[{"Subnet":"fd00:210::/64"}]}}"#,
        r#"{"Name":"dk","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:210::/64"},{"Subnet":"fd00:211::/64"}]}}"#,
        r#"{"Name":"dk","EnableIPv4":false}"#,
        r#"{"Name":"dk","EnableIPv4":false,"EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"10.210.0.0/24"}]}}"#,
    ] {
        let (status, msg) = w.daemon.api("POST", "/networks/create", Some(body));
        assert_eq!(status, 400, "{body}: {msg}");
    }
    assert_eq!(w.snapshot(), before, "a refused request changed something");
}

#[test]
fn names_resolve_to_aaaa_and_ipv6_addresses_back_to_names() {
    let w = world("dns");
    let net = w.name("net");
    w.dual_network(&net, "10.206.3.0/24", "fd00:206:3::/64", &[]);
    let (a, b, c) = (w.name("a"), w.name("b"), w.name("c"));
    w.cli(&["sandbox", "create", "--network", &net, &a]);
    w.cli(&["sandbox", "create", "--network", &net, "--alias", "web", &b]);
    w.cli(&["sandbox", "create", "--network", &net, "--alias", "web", &c]);
    support::wait_connectable(&a, "127.0.0.11:53", std::time::Duration::from_secs(5));
    let d = dig(&a, &["AAAA", &b]);
    assert_eq!(d.status, "NOERROR", "{}", d.text);
    assert_eq!(d.answers, vec!["fd00:206:3::3"]);
    assert_eq!(dig(&a, &["A", &b]).answers, vec!["10.206.3.3"]);
    assert_eq!(
        dig(&a, &["AAAA", &format!("{b}.{net}")]).answers,
        vec!["fd00:206:3::3"]
    );
    // The alias rotates over both members.
    let first = dig(&a, &["AAAA", "web"]).answers;
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["fd00:206:3::3", "fd00:206:3::4"]);
    let second = dig(&a, &["AAAA", "web"]).answers;
    assert_ne!(first, second, "AAAA answers rotate");
    // PTR in ip6.arpa.
    let d = dig(&a, &["-x", "fd00:206:3::4"]);
    assert_eq!(d.status, "NOERROR", "{}", d.text);
    assert_eq!(d.answers, vec![format!("{c}.{net}.")]);
}

#[test]
fn reconcile_restores_lost_ipv6_addresses_and_routes() {
    let w = world("rec");
    let net = w.name("net");
    w.dual_network(&net, "10.206.5.0/24", "fd00:206:5::/64", &[]);
    let (a, b) = (w.name("a"), w.name("b"));
    w.cli(&["sandbox", "create", "--network", &net, &a]);
    w.cli(&["sandbox", "create", "--network", &net, &b]);
    assert!(ping6(&a, "fd00:206:5::3"));
    let bridge = w.daemon.cli_json(&["network", "inspect", &net])[0]["driver"]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    // The gateway's IPv6 address, one sandbox's IPv6 address and route gone.
    w.host.run_ok(
        "ip",
        &["-6", "addr", "flush", "dev", &bridge, "scope", "global"],
    );
    run_ok("ip", &["-n", &b, "-6", "route", "del", "default"]);
    run_ok(
        "ip",
        &[
            "-n", &b, "-6", "addr", "flush", "dev", "eth0", "scope", "global",
        ],
    );
    assert!(!ping6(&a, "fd00:206:5::3"), "damage should break something");
    let (code, text) = w.daemon.api("POST", "/netd/reconcile", None);
    assert_eq!(code, 200, "{text}");
    assert_eq!(addrs6(w.host.name(), &bridge)[0], "fd00:206:5::1/64");
    assert_eq!(addrs6(&b, "eth0")[0], "fd00:206:5::3/64");
    assert_eq!(default_gw6(&b).as_deref(), Some("fd00:206:5::1"));
    assert!(ping6(&a, "fd00:206:5::3"), "a -> b after reconcile");
    assert!(ping6(&b, "fd00:206:5::1"), "b -> gateway after reconcile");
}
