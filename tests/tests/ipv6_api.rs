//! Dual-stack networks as the APIs and CLIs show them: the stock docker
//! CLI creating, inspecting and connecting over netd's Docker routes, netd's
//! own tables and JSON, and bad IPv6 input refused with nothing changed.

use netd_tests as support;

use std::process::{Command, Output};

use serde_json::Value;
use support::{World, addrs6, ping6};

fn world(tag: &str) -> World {
    World::new("api6x", tag)
}

/// The stock docker CLI, pointed at the world's daemon.
trait Docker {
    fn docker_out(&self, args: &[&str]) -> Output;
    fn docker(&self, args: &[&str]) -> String;
    fn docker_err(&self, args: &[&str]) -> String;
    fn docker_inspect(&self, net: &str) -> Value;
}

impl Docker for World {
    fn docker_out(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.daemon.socket().display()),
            )
            .args(args)
            .output()
            .expect("the docker CLI (scripts/setup.sh installs one)")
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_out(args);
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn docker_err(&self, args: &[&str]) -> String {
        let out = self.docker_out(args);
        assert!(
            !out.status.success(),
            "docker {} should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn docker_inspect(&self, net: &str) -> Value {
        let v: Value = serde_json::from_str(&self.docker(&["network", "inspect", net]))
            .expect("docker network inspect JSON");
        v[0].clone()
    }
}

#[test]
fn the_stock_docker_cli_creates_inspects_and_connects_dual_stack_networks() {
    let w = world("dk");
    let (net, pool, other, a) = (w.name("ds"), w.name("pool"), w.name("v4"), w.name("a"));
    let id = w.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.207.1.0/24",
        "--subnet",
        "fd00:207:1::/64",
        "--gateway",
        "fd00:207:1::fe",
        "--ip-range",
        "fd00:207:1::/80",
        "-o",
        "com.docker.network.bridge.gateway_mode_ipv6=routed",
        &net,
    ]);
    assert_eq!(id.trim().len(), 64);
    let ins = w.docker_inspect(&net);
    assert_eq!(ins["EnableIPv4"], true);
    assert_eq!(ins["EnableIPv6"], true);
    let config = ins["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(config.len(), 2, "{config:?}");
    assert_eq!(config[0]["Subnet"], "10.207.1.0/24");
    assert_eq!(config[0]["Gateway"], "10.207.1.1");
    assert_eq!(config[1]["Subnet"], "fd00:207:1::/64");
    assert_eq!(config[1]["Gateway"], "fd00:207:1::fe");
    assert_eq!(config[1]["IPRange"], "fd00:207:1::/80");
    assert_eq!(
        ins["Options"]["com.docker.network.bridge.gateway_mode_ipv6"], "routed",
        "the option round-trips"
    );
    // The docker CLI's own reading of the fields.
    assert_eq!(
        w.docker(&["network", "inspect", "-f", "{{.EnableIPv6}}", &net])
            .trim(),
        "true"
    );

    // `--ipv6` alone: a ULA /64 from the pool, beside a free IPv4 subnet.
    w.docker(&["network", "create", "--ipv6", &pool]);
    let ins = w.docker_inspect(&pool);
    assert_eq!(ins["EnableIPv6"], true);
    let config = ins["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(config.len(), 2, "{config:?}");
    let s6 = config[1]["Subnet"].as_str().unwrap();
    assert!(s6.starts_with("fd") && s6.ends_with("/64"), "{s6}");
    assert!(!config[0]["Subnet"].as_str().unwrap().contains(':'));

    // `docker network ls` reads EnableIPv6 for its IPV6 column.
    let ls = w.docker(&["network", "ls", "--format", "{{.Name}} {{.IPv6}} {{.IPv4}}"]);
    assert!(ls.lines().any(|l| l == format!("{net} true true")), "{ls}");
    assert!(ls.lines().any(|l| l == format!("{pool} true true")), "{ls}");
    assert!(ls.lines().any(|l| l == "bridge false true"), "{ls}");

    // Connect with a static IPv6 address: the kernel has it, Containers
    // shows it as Docker writes it (address/prefix).
    w.cli(&["network", "create", "--subnet", "10.207.2.0/24", &other]);
    w.cli(&["sandbox", "create", "--network", &other, &a]);
    w.docker(&[
        "network",
        "connect",
        "--ip6",
        "fd00:207:1::77",
        "--alias",
        "web",
        &net,
        &a,
    ]);
    let ins = w.docker_inspect(&net);
    let containers = ins["Containers"].as_object().unwrap();
    assert_eq!(containers.len(), 1);
    let c = containers.values().next().unwrap();
    assert_eq!(c["Name"], a.as_str());
    assert_eq!(c["IPv4Address"], "10.207.1.2/24");
    assert_eq!(c["IPv6Address"], "fd00:207:1::77/64");
    assert_eq!(addrs6(&a, "eth1"), vec!["fd00:207:1::77/64".to_string()]);
    assert!(ping6(&a, "fd00:207:1::fe"), "ping6 the gateway");
    // On the IPv4-only network the field is there, empty, as Docker has it.
    let ins = w.docker_inspect(&other);
    assert_eq!(ins["EnableIPv6"], false);
    let c = ins["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(c["IPv6Address"], "");

    // A dynamic IPv6 address comes from the ip-range.
    let b = w.name("b");
    w.cli(&["sandbox", "create", "--network", &other, &b]);
    w.docker(&["network", "connect", &net, &b]);
    let ins = w.docker_inspect(&net);
    let got: Vec<String> = ins["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter(|c| c["Name"] == b.as_str())
        .map(|c| c["IPv6Address"].as_str().unwrap().to_string())
        .collect();
    // ::1 is free: the gateway is ::fe.
    assert_eq!(
        got,
        vec!["fd00:207:1::1/64".to_string()],
        "lowest free in the range"
    );

    w.docker(&["network", "disconnect", &net, &a]);
    w.docker(&["network", "disconnect", &net, &b]);
    w.docker(&["network", "rm", &net, &pool]);
    let names = w.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!names.lines().any(|l| l == net || l == pool), "{names}");
}

#[test]
fn bad_ipv6_input_is_refused_naming_the_value_and_changes_nothing() {
    let w = world("bad");
    let (net, v4, a) = (w.name("ds"), w.name("v4"), w.name("a"));
    w.dual_network(&net, "10.207.3.0/24", "fd00:207:3::/64", &[]);
    let home = w.name("home");
    w.cli(&["network", "create", "--subnet", "10.207.4.0/24", &v4]);
    w.cli(&["network", "create", "--subnet", "10.207.7.0/24", &home]);
    w.cli(&["sandbox", "create", "--network", &home, &a]);
    let before = w.snapshot();
    let x = w.name("x");

    // The stock docker CLI: its messages come from netd's 400s.
    let e = w.docker_err(&["network", "create", "--subnet", "fd00:207:9::/64", &x]);
    assert!(
        e.contains("fd00:207:9::/64") && e.contains("EnableIPv6"),
        "{e}"
    );
    let e = w.docker_err(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:207:9::/64",
        "--subnet",
        "fd00:207:a::/64",
        &x,
    ]);
    assert!(
        e.contains("fd00:207:9::/64") && e.contains("fd00:207:a::/64"),
        "{e}"
    );
    let e = w.docker_err(&["network", "create", "--ipv4=false", &x]);
    assert!(e.contains("EnableIPv4") && e.contains("--ipv6"), "{e}");
    let e = w.docker_err(&[
        "network",
        "create",
        "--ipv6",
        "--ipv4=false",
        "--subnet",
        "10.207.9.0/24",
        &x,
    ]);
    assert!(
        e.contains("10.207.9.0/24") && e.contains("IPv6-only"),
        "{e}"
    );
    let e = w.docker_err(&["network", "connect", "--ip6", "fd00:999::5", &net, &a]);
    assert!(e.contains("fd00:999::5"), "{e}");
    let e = w.docker_err(&["network", "connect", "--ip6", "fd00:207:4::5", &v4, &a]);
    assert!(e.contains("fd00:207:4::5"), "{e}");

    // The same over the raw Docker routes: 400 and the value named.
    // An overlap is a conflict (409), as for IPv4; the rest are 400.
    let cases: &[(&str, String, &str, u16)] = &[
        (
            "/v1.47/networks/create",
            format!(r#"{{"Name":"{x}","IPAM":{{"Config":[{{"Subnet":"fd00:207:9::/64"}}]}}}}"#),
            "fd00:207:9::/64",
            400,
        ),
        (
            "/v1.47/networks/create",
            format!(
                r#"{{"Name":"{x}","EnableIPv6":true,"IPAM":{{"Config":[{{"Subnet":"fd00:207:9::/64"}},{{"Gateway":"fd00:207:a::1"}}]}}}}"#
            ),
            "fd00:207:a::1",
            400,
        ),
        (
            "/v1.47/networks/create",
            format!(
                r#"{{"Name":"{x}","EnableIPv6":true,"IPAM":{{"Config":[{{"Subnet":"fd00:207:9::/121"}}]}}}}"#
            ),
            "fd00:207:9::/121",
            400,
        ),
        (
            "/v1.47/networks/create",
            format!(
                r#"{{"Name":"{x}","EnableIPv6":true,"IPAM":{{"Config":[{{"Subnet":"fd00:207:3::/64"}}]}}}}"#
            ),
            "fd00:207:3::/64",
            409,
        ),
        (
            "/v1.47/networks/create",
            format!(
                r#"{{"Name":"{x}","EnableIPv6":true,"Options":{{"com.docker.network.bridge.gateway_mode_ipv6":"bogus"}}}}"#
            ),
            "bogus",
            400,
        ),
        (
            &*format!("/v1.47/networks/{net}/connect"),
            format!(
                r#"{{"Container":"{a}","EndpointConfig":{{"IPAMConfig":{{"IPv6Address":"10.0.0.1"}}}}}}"#
            ),
            "10.0.0.1",
            400,
        ),
        // netd's own routes.
        (
            "/netd/networks",
            format!(r#"{{"name":"{x}","subnet6":"fd00:207:9::/64"}}"#),
            "fd00:207:9::/64",
            400,
        ),
        (
            "/netd/networks",
            format!(
                r#"{{"name":"{x}","ipv6":true,"subnet6":"fd00:207:9::/64","gateway6":"fd00:207:a::1"}}"#
            ),
            "fd00:207:a::1",
            400,
        ),
        (
            &*format!("/netd/networks/{net}/connect"),
            format!(r#"{{"sandbox":"{a}","endpoint":{{"ip6":"fd00:999::5"}}}}"#),
            "fd00:999::5",
            400,
        ),
    ];
    for (path, body, named, status) in cases {
        let (code, text) = w.daemon.api("POST", path, Some(body));
        assert_eq!(code, *status, "POST {path} {body}: {text}");
        assert!(text.contains(named), "POST {path} {body}: {text}");
    }
    // netd's own CLI.
    let e = w
        .daemon
        .cli_err(&["network", "create", "--subnet", "fd00:207:9::/64", &x]);
    assert!(e.contains("fd00:207:9::/64") && e.contains("--ipv6"), "{e}");
    assert_eq!(w.snapshot(), before, "refused input changed something");
}

#[test]
fn netd_tables_and_json_show_both_families() {
    let w = world("ls");
    let (net, a, b) = (w.name("ds"), w.name("a"), w.name("b"));
    // Created over netd's own route with every IPv6 field.
    let body = format!(
        r#"{{"name":"{net}","subnet":"10.207.5.0/24","ipv6":true,"subnet6":"fd00:207:5::/64","gateway6":"fd00:207:5::1","ip_range6":"fd00:207:5::100/120"}}"#
    );
    let (code, text) = w.daemon.api("POST", "/netd/networks", Some(&body));
    assert_eq!(code, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["driver"]["ipv6"]["subnet"], "fd00:207:5::/64");
    assert_eq!(created["driver"]["ipv6"]["ip_range"], "fd00:207:5::100/120");
    w.cli(&["sandbox", "create", "--network", &net, &a]);
    w.cli(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "--ip6",
        "fd00:207:5::42",
        &b,
    ]);
    // Connect over netd's own route with a static IPv6 address.
    let (v4, c) = (w.name("v4"), w.name("c"));
    w.cli(&["network", "create", "--subnet", "10.207.6.0/24", &v4]);
    w.cli(&["sandbox", "create", "--network", &v4, &c]);
    let (code, text) = w.daemon.api(
        "POST",
        &format!("/netd/networks/{net}/connect"),
        Some(&format!(
            r#"{{"sandbox":"{c}","endpoint":{{"ip6":"fd00:207:5::43"}}}}"#
        )),
    );
    assert_eq!(code, 200, "{text}");
    let ep: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ep["ip6"], "fd00:207:5::43", "{ep}");
    assert_eq!(
        addrs6(&c, ep["ifname"].as_str().unwrap()),
        vec!["fd00:207:5::43/64".to_string()]
    );

    // network ls: SUBNET carries both families; the row still splits on blanks.
    let ls = w.cli(&["network", "ls"]);
    let row: Vec<&str> = ls
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(net.as_str()))
        .unwrap_or_else(|| panic!("{ls}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[4], "10.207.5.0/24,fd00:207:5::/64", "{ls}");
    assert_eq!(row[5], "3", "{ls}");
    assert!(ls.lines().next().unwrap().contains("SUBNET"), "{ls}");

    // sandbox ls: IPS has each address, IPv4 first.
    let ls = w.cli(&["sandbox", "ls"]);
    let ips = |name: &str| -> String {
        ls.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{ls}"))
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(ips(&a), "10.207.5.2,fd00:207:5::100", "{ls}");
    assert_eq!(ips(&b), "10.207.5.3,fd00:207:5::42", "{ls}");

    // inspect JSON: everything.
    let ins = w.daemon.cli_json(&["network", "inspect", &net]);
    let v6 = &ins[0]["driver"]["ipv6"];
    assert_eq!(v6["subnet"], "fd00:207:5::/64");
    assert_eq!(v6["gateway"], "fd00:207:5::1");
    assert_eq!(v6["ip_range"], "fd00:207:5::100/120");
    assert_eq!(v6["masquerade"], true);
    let eps = ins[0]["endpoints"].as_array().unwrap();
    assert!(eps.iter().any(|e| e["ip6"] == "fd00:207:5::42"), "{eps:?}");
    let sb = w.daemon.cli_json(&["sandbox", "inspect", &a]);
    assert_eq!(sb[0]["endpoints"][0]["ip6"], "fd00:207:5::100");
    assert_eq!(sb[0]["endpoints"][0]["ip"], "10.207.5.2");
    let json = w.daemon.cli_json(&["network", "ls", "--format", "json"]);
    let n = json
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == net.as_str())
        .unwrap();
    assert_eq!(n["driver"]["ipv6"]["subnet"], "fd00:207:5::/64");
    let json = w.daemon.cli_json(&["sandbox", "ls", "--format", "json"]);
    let s = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == b.as_str())
        .unwrap();
    assert_eq!(s["endpoints"][0]["ip6"], "fd00:207:5::42");

    // An IPv4-only network keeps its old table cells and JSON.
    let ls = w.cli(&["network", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(v4.as_str())
                && l.split_whitespace().nth(4) == Some("10.207.6.0/24")),
        "{ls}"
    );
    let ins = w.daemon.cli_json(&["network", "inspect", &v4]);
    assert!(ins[0]["driver"].get("ipv6").is_none(), "{ins}");
}

#[test]
fn an_ipv6_only_network_through_the_docker_cli() {
    let w = world("only");
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.docker(&[
        "network",
        "create",
        "--ipv6",
        "--ipv4=false",
        "--subnet",
        "fd00:207:20::/64",
        &net,
    ]);
    let ins = w.docker_inspect(&net);
    assert_eq!(ins["EnableIPv4"], false);
    assert_eq!(ins["EnableIPv6"], true);
    let config = ins["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(config.len(), 1, "{config:?}");
    assert_eq!(config[0]["Subnet"], "fd00:207:20::/64");
    w.cli(&["sandbox", "create", &a]);
    w.cli(&["sandbox", "create", &b]);
    w.docker(&["network", "connect", &net, &a]);
    w.docker(&["network", "connect", "--ip6", "fd00:207:20::99", &net, &b]);
    let ins = w.docker_inspect(&net);
    let by_name = |n: &str| {
        ins["Containers"]
            .as_object()
            .unwrap()
            .values()
            .find(|c| c["Name"] == n)
            .cloned()
            .unwrap()
    };
    // No IPv4 address: the field is there, empty, as Docker writes it.
    assert_eq!(by_name(&a)["IPv4Address"], "");
    assert_eq!(by_name(&a)["IPv6Address"], "fd00:207:20::2/64");
    assert_eq!(by_name(&b)["IPv6Address"], "fd00:207:20::99/64");
    assert!(ping6(&a, "fd00:207:20::99"), "ping6 a -> b");
    let ls = w.docker(&["network", "ls", "--format", "{{.Name}} {{.IPv4}} {{.IPv6}}"]);
    assert!(ls.lines().any(|l| l == format!("{net} false true")), "{ls}");
    let c = w.name("c");
    w.cli(&["sandbox", "create", &c]);
    let e = w.docker_err(&["network", "connect", "--ip", "10.0.0.5", &net, &c]);
    assert!(e.contains("10.0.0.5") && e.contains("IPv6-only"), "{e}");
}
