//! Input the daemon must refuse, in both API families, with a 4xx status
//! and a message naming the value, changing nothing: special and host-link
//! subnets, unusable MACs, prune filters that are not filters, bodies over
//! the limit.

use netd_tests as support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Daemon, Netns, World};

fn world(tag: &str) -> World {
    World::new("in", tag)
}

/// Refusals, checked in one place.
trait Refuses {
    fn refused(&self, method: &str, path: &str, body: &str, status: u16, want: &str);
}

impl Refuses for World {
    /// Send `body` and check the status and that the message names `want`.
    fn refused(&self, method: &str, path: &str, body: &str, status: u16, want: &str) {
        let (got, text) = self
            .daemon
            .api(method, path, (!body.is_empty()).then_some(body));
        let msg: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert!(
            got == status && msg["message"].as_str().is_some_and(|m| m.contains(want)),
            "{method} {path} {body}: got {got} {text}, want {status} naming {want:?}"
        );
    }
}

#[test]
fn in_special_subnets_and_macs_are_refused_naming_the_value() {
    let w = world("sp");
    let net = w.name("net");
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.241.0.0/24", &net]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", "none", &w.name("s")]);
    let before = w.snapshot();
    let x = w.name("x");
    for subnet in [
        "127.0.0.0/8",
        "0.0.0.0/8",
        "169.254.0.0/16",
        "240.0.0.0/4",
        "224.0.0.0/4",
        "239.1.0.0/24",
    ] {
        w.refused(
            "POST",
            "/netd/networks",
            &json!({ "name": x, "subnet": subnet }).to_string(),
            400,
            subnet,
        );
        assert_eq!(
            w.snapshot(),
            before,
            "/netd/networks {subnet} changed something"
        );
        w.refused(
            "POST",
            "/v1.47/networks/create",
            &json!({ "Name": x, "IPAM": { "Config": [{ "Subnet": subnet }] } }).to_string(),
            400,
            subnet,
        );
        assert_eq!(
            w.snapshot(),
            before,
            "networks/create {subnet} changed something"
        );
    }
    let zero = "00:00:00:00:00:00";
    w.refused(
        "POST",
        "/netd/sandboxes",
        &json!({ "name": x, "network": net, "endpoint": { "mac": zero } }).to_string(),
        400,
        zero,
    );
    w.refused(
        "POST",
        &format!("/v1.47/networks/{net}/connect"),
        &json!({ "Container": w.name("s"), "EndpointConfig": { "MacAddress": zero } }).to_string(),
        400,
        zero,
    );
    w.refused(
        "POST",
        &format!("/netd/networks/{net}/connect"),
        &json!({ "sandbox": w.name("s"), "endpoint": { "mac": "01:00:5e:00:00:01" } }).to_string(),
        400,
        "01:00:5e:00:00:01",
    );
    assert_eq!(w.snapshot(), before, "a refused MAC changed something");
    // netd's own API takes a port as the `-p` string (docs/api.md), checked
    // by the same parser.
    w.refused(
        "POST",
        "/netd/sandboxes",
        &json!({ "name": x, "network": net, "endpoint": { "ports": ["8081:80/icmp"] } })
            .to_string(),
        400,
        "icmp",
    );
    assert_eq!(w.snapshot(), before, "a refused port changed something");
    let (code, text) = w.daemon.api(
        "POST",
        "/netd/sandboxes",
        Some(
            &json!({ "name": w.name("p"), "network": net, "endpoint": { "ports": ["8081:80"] } })
                .to_string(),
        ),
    );
    assert_eq!(code, 201, "{text}");
    let sb: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        sb["endpoints"][0]["ports"][0],
        json!({"host_ip": null, "host_port": {"start": 8081, "end": 8081},
               "container_port": {"start": 80, "end": 80}, "proto": "tcp"})
    );
    assert!(!Netns::exists(&x), "a refused sandbox left a namespace");
}

#[test]
fn in_subnet_on_a_host_link_is_refused() {
    let w = world("hl");
    // A link of the host (inside this test's host namespace): its subnet is
    // the host's, a network there would take the host's address as gateway.
    w.host.run_ok(
        "ip",
        &[
            "link", "add", "hin-up", "type", "veth", "peer", "name", "hin-upp",
        ],
    );
    w.host
        .run_ok("ip", &["addr", "add", "192.0.2.1/24", "dev", "hin-up"]);
    w.host.run_ok("ip", &["link", "set", "hin-upp", "up"]);
    w.host.run_ok("ip", &["link", "set", "hin-up", "up"]);
    let before = w.snapshot();
    let x = w.name("x");
    for subnet in ["192.0.2.0/24", "192.0.2.0/25", "192.0.0.0/16"] {
        w.refused(
            "POST",
            "/netd/networks",
            &json!({ "name": x, "subnet": subnet }).to_string(),
            409,
            "192.0.2.0/24",
        );
        w.refused(
            "POST",
            "/v1.47/networks/create",
            &json!({ "Name": x, "IPAM": { "Config": [{ "Subnet": subnet }] } }).to_string(),
            409,
            subnet,
        );
        assert_eq!(w.snapshot(), before, "{subnet} changed something");
    }
    // A bridge name that is already a link of the host is refused too: netd
    // deletes its bridge with the network, so it never adopts a link.
    w.refused(
        "POST",
        "/v1.47/networks/create",
        &json!({ "Name": x, "Options": { "com.docker.network.bridge.name": "hin-up" } })
            .to_string(),
        409,
        "hin-up",
    );
    assert_eq!(
        w.snapshot(),
        before,
        "an existing bridge name changed something"
    );
    // The host keeps its address; a free subnet beside it still works.
    assert_eq!(
        w.host.json(&["-4", "addr", "show", "dev", "hin-up"])[0]["addr_info"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "192.0.3.0/24", &x]);
    // Its own bridge routes do not count against a second network elsewhere.
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "192.0.4.0/24",
        &w.name("y"),
    ]);
    let err = w.daemon.cli_err(&[
        "network",
        "create",
        "--subnet",
        "192.0.3.0/25",
        &w.name("z"),
    ]);
    assert!(
        err.contains(&x),
        "an overlap with a network names it: {err}"
    );
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn in_prune_filters_that_are_not_filters_remove_nothing() {
    let w = world("pr");
    for (i, n) in ["a", "b"].iter().enumerate() {
        w.daemon.cli_ok(&[
            "network",
            "create",
            "--subnet",
            &format!("10.242.{i}.0/24"),
            &w.name(n),
        ]);
    }
    let before = w.snapshot();
    let bad: &[(&str, &str)] = &[
        (r#"{"until":{"garbage":true}}"#, "garbage"),
        (
            r#"{"until":{"2026-13-45T00:00:00Z":true}}"#,
            "2026-13-45T00:00:00Z",
        ),
        (
            r#"{"until":{"99999999999999999999":true}}"#,
            "99999999999999999999",
        ),
        (r#"{"until":{"10 days":true}}"#, "10 days"),
        (r#"{"until":{"1h":true,"2h":true}}"#, "more than one until"),
        (r#"{"dangling":{"true":true}}"#, "dangling"),
        (r#"{"until":{"1h":"yes"}}"#, "until"),
    ];
    for (filters, want) in bad {
        w.refused(
            "POST",
            &format!("/v1.47/networks/prune?filters={}", encode(filters)),
            "",
            400,
            want,
        );
        assert_eq!(w.snapshot(), before, "prune {filters} removed something");
        let body = format!(r#"{{"filters":{filters}}}"#);
        w.refused("POST", "/netd/networks/prune", &body, 400, want);
        assert_eq!(
            w.snapshot(),
            before,
            "netd prune {filters} removed something"
        );
    }
    // Good filters still filter: the networks are seconds old.
    for until in ["1h30m", "1.5h", "2020-01-01T00:00:00+02:00", "1577836800.5"] {
        let f = json!({ "until": { until: true } }).to_string();
        let (code, text) = w.daemon.api(
            "POST",
            &format!("/v1.47/networks/prune?filters={}", encode(&f)),
            None,
        );
        assert_eq!(
            (code, text.as_str()),
            (200, r#"{"NetworksDeleted":[]}"#),
            "{until}"
        );
    }
    assert_eq!(w.snapshot(), before);
    let f = json!({ "until": { "-1h": true } }).to_string();
    let (code, text) = w.daemon.api(
        "POST",
        "/netd/networks/prune",
        Some(&format!(r#"{{"filters":{f}}}"#)),
    );
    assert_eq!(code, 200, "{text}");
    let removed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(removed["removed"].as_array().unwrap().len(), 2, "{text}");
}

/// POST a body from a file (too big for an argument) with curl: the daemon
/// answers 413 and closes before reading it all, and curl reports that
/// early answer where hyper's client (netd-api) reports the failed write.
fn post_file(d: &Daemon, path: &str, body: &[u8]) -> (u16, String) {
    let file = std::env::temp_dir().join(format!("hin-body-{}", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let sock = d.socket().to_string_lossy().into_owned();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "--unix-socket",
            &sock,
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://netd{path}"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (text, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap_or(0), text.to_string())
}

#[test]
fn in_bodies_over_the_limit_are_refused_and_nothing_is_stored() {
    let w = world("bd");
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.243.0.0/24",
        &w.name("net"),
    ]);
    let before = w.snapshot();
    let x = w.name("x");
    let huge = "x".repeat(10 << 20);
    for (path, body) in [
        (
            "/netd/networks",
            json!({ "name": x, "labels": { "a": huge } }),
        ),
        (
            "/v1.47/networks/create",
            json!({ "Name": x, "Labels": { "a": huge } }),
        ),
    ] {
        let (code, text) = post_file(&w.daemon, path, body.to_string().as_bytes());
        let msg: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:.200}"));
        assert_eq!(code, 413, "{path}: {text:.200}");
        assert!(
            msg["message"].as_str().unwrap().contains("too large"),
            "{text}"
        );
        assert_eq!(w.snapshot(), before, "{path} stored something");
    }
    // Under the body limit, a field over its own limit is a 400 naming it.
    let long = "x".repeat(100_000);
    w.refused(
        "POST",
        "/netd/networks",
        &json!({ "name": x, "labels": { "big": long } }).to_string(),
        400,
        "\"big\"",
    );
    let many: serde_json::Map<String, Value> =
        (0..1000).map(|i| (format!("k{i}"), json!("v"))).collect();
    w.refused(
        "POST",
        "/v1.47/networks/create",
        &json!({ "Name": x, "Labels": many }).to_string(),
        400,
        "too many labels",
    );
    let aliases: Vec<String> = (0..1000).map(|i| format!("a{i}")).collect();
    w.refused(
        "POST",
        "/netd/sandboxes",
        &json!({ "name": x, "network": w.name("net"), "endpoint": { "aliases": aliases } })
            .to_string(),
        400,
        "too many aliases",
    );
    assert_eq!(w.snapshot(), before, "a refused field changed something");
    assert!(!Netns::exists(&x));
}

/// `dig @127.0.0.11 ARGS` from inside `ns`: the status and the raw output.
fn dig(ns: &str, args: &[&str]) -> (String, String) {
    let d = support::dig(ns, args);
    (d.status, d.text)
}

#[test]
fn in_dns_refuses_class_any_and_answers_edns1_with_badvers() {
    let w = world("dn");
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.244.0.0/24", &net]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &a]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &b]);
    let ok = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        dig(&a, &[&b]).1.contains("10.244.0.3")
    });
    assert!(ok, "{b} never resolved: {}", dig(&a, &[&b]).1);
    for tcp in ["+notcp", "+tcp"] {
        let (status, text) = dig(&a, &[tcp, "-c", "ANY", &b]);
        assert_eq!(status, "REFUSED", "class ANY {tcp}: {text}");
        assert!(!text.contains("10.244.0.3"), "class ANY answered: {text}");
        let (status, text) = dig(&a, &[tcp, "-c", "CH", &b]);
        assert_eq!(status, "REFUSED", "class CH {tcp}: {text}");
        let (status, text) = dig(&a, &[tcp, "+edns=1", "+noednsnegotiation", &b]);
        assert_eq!(status, "BADVERS", "EDNS version 1 {tcp}: {text}");
        assert!(
            text.contains("EDNS: version: 0"),
            "the OPT is not version 0: {text}"
        );
        let (status, text) = dig(&a, &[tcp, "+edns=0", &b]);
        assert_eq!(status, "NOERROR", "{text}");
        assert!(text.contains("10.244.0.3"), "{text}");
    }
}
