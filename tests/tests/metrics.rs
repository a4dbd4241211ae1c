//! The daemon's `/metrics`: read with curl on the API socket and on the
//! `--metrics` TCP listener, counting what the test made and what its DNS
//! queries did; a bad `--metrics` stops the daemon from starting.

use netd_tests as support;

use std::process::Command;

use support::{Daemon, Netns, TempDir, netd_bin};

/// The value of the sample `name{labels}` (labels exactly as printed, or
/// "" for none); 0 when the series is not printed yet.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().expect("a number"))
        .unwrap_or(0.0)
}

fn scrape(daemon: &Daemon) -> String {
    support::scrape_metrics(&daemon.socket())
}

fn op(op: &str, outcome: &str) -> String {
    format!("op=\"{op}\",outcome=\"{outcome}\"")
}

#[test]
fn metrics_count_sandboxes_operations_and_dns_on_the_socket_and_over_tcp() {
    let tag = format!("mtx{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    // Forwarded names go to the host namespace's own loopback, where
    // nothing listens: no query leaves the test's namespaces.
    let daemon = Daemon::start_with(
        &host,
        &[
            "--metrics",
            "127.0.0.1:9101",
            "--dns-upstream",
            "127.0.0.1:53",
        ],
    );
    let name = |s: &str| format!("{tag}-{s}");
    let (front, dark) = (name("front"), name("dark"));
    let before = scrape(&daemon);
    assert_eq!(sample(&before, "netd_sandboxes", ""), 0.0, "{before}");

    daemon.cli_ok(&["network", "create", "--subnet", "10.231.1.0/24", &front]);
    daemon.cli_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.231.2.0/24",
        &dark,
    ]);
    let (a, b, c) = (name("a"), name("b"), name("c"));
    daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &front,
        "-p",
        "18080:80",
        &a,
    ]);
    daemon.cli_ok(&["sandbox", "create", "--network", &front, &b]);
    daemon.cli_ok(&["sandbox", "create", "--network", &dark, &c]);
    // A refusal counts under its outcome.
    daemon.cli_err(&["sandbox", "create", "--network", &front, &b]);

    // Names answered, a forwarded one that fails, and NXDOMAIN from the
    // internal network (which never forwards).
    assert_eq!(support::dig(&a, &[&b]).status, "NOERROR");
    assert_eq!(support::dig(&a, &[&b]).status, "NOERROR");
    let fwd = support::dig(&a, &["nowhere.test"]);
    assert_eq!(fwd.status, "SERVFAIL", "{}", fwd.text);
    assert_eq!(support::dig(&c, &["nowhere.test"]).status, "NXDOMAIN");

    let m = scrape(&daemon);
    assert_eq!(sample(&m, "netd_sandboxes", ""), 3.0, "{m}");
    assert_eq!(sample(&m, "netd_endpoints", ""), 3.0, "{m}");
    assert_eq!(sample(&m, "netd_published_ports", ""), 1.0, "{m}");
    assert!(sample(&m, "netd_networks", "") >= 2.0, "{m}");
    assert_eq!(sample(&m, "netd_dns_served_sandboxes", ""), 3.0, "{m}");
    let ops = "netd_operations_total";
    assert_eq!(sample(&m, ops, &op("create_network", "ok")), 2.0, "{m}");
    assert_eq!(sample(&m, ops, &op("create_sandbox", "ok")), 3.0, "{m}");
    assert_eq!(
        sample(&m, ops, &op("create_sandbox", "conflict")),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "netd_operation_duration_seconds_count",
            &op("create_sandbox", "ok")
        ),
        3.0,
        "{m}"
    );

    let view = |v: &str, extra: &str| format!("view=\"{v}\"{extra}");
    let q = |v: &str, extra: &str, fam: &str| sample(&m, fam, &view(v, extra));
    assert_eq!(q(&front, "", "netd_dns_queries_total"), 3.0, "{m}");
    assert_eq!(
        q(&front, ",result=\"answer\"", "netd_dns_results_total"),
        2.0,
        "{m}"
    );
    assert_eq!(
        q(&front, ",result=\"servfail\"", "netd_dns_results_total"),
        1.0,
        "{m}"
    );
    assert_eq!(q(&front, "", "netd_dns_forwarded_total"), 1.0, "{m}");
    assert_eq!(
        q(&front, "", "netd_dns_query_duration_seconds_count"),
        3.0,
        "{m}"
    );
    assert_eq!(q(&dark, "", "netd_dns_queries_total"), 1.0, "{m}");
    assert_eq!(
        q(&dark, ",result=\"nxdomain\"", "netd_dns_results_total"),
        1.0,
        "{m}"
    );
    assert_eq!(q(&dark, "", "netd_dns_forwarded_total"), 0.0, "{m}");

    // The TCP listener serves the same families, and nothing of the API.
    let tcp = host.run_ok("curl", &["-sfS", "http://127.0.0.1:9101/metrics"]);
    assert_eq!(sample(&tcp, "netd_sandboxes", ""), 3.0, "{tcp}");
    let families = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(families(&tcp), families(&m));
    let api = host.output(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9101/netd/networks",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&api.stdout), "404");

    // Removing counts down the gauges and up the operations.
    daemon.cli_ok(&["sandbox", "rm", &a]);
    let m = scrape(&daemon);
    assert_eq!(sample(&m, "netd_sandboxes", ""), 2.0, "{m}");
    assert_eq!(sample(&m, "netd_published_ports", ""), 0.0, "{m}");
    assert_eq!(sample(&m, ops, &op("remove_sandbox", "ok")), 1.0, "{m}");
}

#[test]
fn a_bad_metrics_address_is_refused_and_the_daemon_does_not_start() {
    let tag = format!("mtx{}", std::process::id());
    let host = Netns::new(&format!("{tag}-bad"));
    let dir = TempDir::new(&format!("{tag}-bad"));
    let sock = dir.0.join("netd.sock");
    let start = |metrics: &str| {
        Command::new("nsenter")
            .arg(format!("--net={}", host.path()))
            .arg(netd_bin())
            .arg("--socket")
            .arg(&sock)
            .args(["daemon", "--state-dir"])
            .arg(dir.0.join("state"))
            .arg("--run-dir")
            .arg(dir.0.join("run"))
            .args(["--metrics", metrics])
            .output()
            .expect("run netd daemon")
    };
    for (bad, says) in [
        ("localhost:9101", "is not ADDR:PORT"),
        ("127.0.0.1", "is not ADDR:PORT"),
        ("127.0.0.1:0", "port 0"),
        // Not an address of this (test's) host namespace.
        ("192.0.2.1:9101", "cannot listen there"),
    ] {
        let out = start(bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: started");
        assert!(err.contains(says), "{bad}: {err}");
        assert!(!sock.exists(), "{bad}: left a socket");
    }
}
