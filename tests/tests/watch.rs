//! The daemon keeps the kernel as the store says when someone else changes
//! it: a bridge or host veth deleted by hand comes back (with traffic), a
//! sandbox namespace deleted by hand is recreated with its DNS serving
//! again; and a sandbox may not adopt the daemon's own namespace.

use netd_tests as support;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use support::{Daemon, Netns, ping, run_ok};

/// Poll `f` every 50 ms for up to 5 s.
fn within_5s(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn sandbox_names(daemon: &Daemon) -> Vec<String> {
    daemon
        .api_get("/netd/sandboxes")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn wt_the_daemons_own_namespace_cannot_be_adopted() {
    let tag = format!("wtH{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let before = host.links("");
    let sandboxes = sandbox_names(&daemon);
    let own = host.path();
    let err = daemon.cli_err(&["sandbox", "create", "--netns", &own, &format!("{tag}-s")]);
    assert!(
        err.contains(&own) && err.contains("the network namespace netd runs in"),
        "{err}"
    );
    // The same namespace under another path, through the API.
    let sleeper = support::spawn_in(host.name(), "sleep", &["30"]);
    let proc_path = format!("/proc/{}/ns/net", sleeper.0.id());
    // nsenter execs sleep in place: its pid is sleep's, in the host
    // namespace once nsenter has joined it. Until then the pid is in this
    // process's namespace, and the request would be a different one.
    let inode = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while inode(&proc_path) != inode(&own) {
        assert!(
            std::time::Instant::now() < deadline,
            "{proc_path} never joined {own}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let body = format!(r#"{{"name":"{tag}-t","netns":"{proc_path}"}}"#);
    let (code, text) = daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains(&proc_path), "{text}");
    // Nothing changed: no link in the host namespace, no record.
    assert_eq!(host.links(""), before);
    assert_eq!(sandbox_names(&daemon), sandboxes);
}

/// The bridge's name and its ports' masters, from the host namespace.
fn master_of(host: &Netns, link: &str) -> Option<String> {
    host.link(link)
        .and_then(|l| l["master"].as_str().map(str::to_string))
}

fn ip_of(daemon: &Daemon, sandbox: &str) -> String {
    daemon.api_get(&format!("/netd/sandboxes/{sandbox}"))["endpoints"][0]["ip"]
        .as_str()
        .unwrap()
        .to_string()
}

fn host_veth_of(daemon: &Daemon, sandbox: &str) -> String {
    daemon.api_get(&format!("/netd/sandboxes/{sandbox}"))["endpoints"][0]["host_veth"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn wt_a_bridge_deleted_by_hand_comes_back_with_its_ports() {
    let tag = format!("wtB{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let net = format!("{tag}-n");
    daemon.cli_ok(&["network", "create", "--subnet", "10.214.0.0/24", &net]);
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    for s in [&a, &b] {
        daemon.cli_ok(&["sandbox", "create", "--network", &net, s]);
    }
    let bridge = daemon.api_get(&format!("/netd/networks/{net}"))["driver"]["bridge"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no bridge name"));
    let ipb = ip_of(&daemon, &b);
    assert!(ping(&a, &ipb), "a cannot reach b at all");

    host.run_ok("ip", &["link", "del", &bridge]);
    assert!(
        within_5s(|| ping(&a, &ipb)),
        "a cannot reach b after the bridge was deleted: {}",
        daemon.log()
    );
    for s in [&a, &b] {
        assert_eq!(
            master_of(&host, &host_veth_of(&daemon, s)).as_deref(),
            Some(bridge.as_str()),
            "{s}'s veth is not on the bridge"
        );
    }
    assert!(
        daemon
            .log()
            .contains("repaired links deleted by someone else")
    );
}

#[test]
fn wt_a_host_veth_deleted_by_hand_comes_back() {
    let tag = format!("wtV{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let net = format!("{tag}-n");
    daemon.cli_ok(&["network", "create", "--subnet", "10.215.0.0/24", &net]);
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    for s in [&a, &b] {
        daemon.cli_ok(&["sandbox", "create", "--network", &net, s]);
    }
    let ipb = ip_of(&daemon, &b);
    assert!(ping(&a, &ipb));
    let veth = host_veth_of(&daemon, &b);
    host.run_ok("ip", &["link", "del", &veth]);
    assert!(
        within_5s(|| ping(&a, &ipb)),
        "b unreachable after its veth was deleted: {}",
        daemon.log()
    );
    assert!(host.link(&veth).is_some());
    let routes = run_ok("ip", &["-n", &b, "route"]);
    assert!(
        routes.contains("default via 10.215.0.1 dev eth0"),
        "{routes}"
    );

    // netd's own removals are not "repaired": a disconnect and a sandbox
    // rm delete veths on purpose.
    daemon.cli_ok(&["network", "disconnect", &net, &b]);
    daemon.cli_ok(&["sandbox", "rm", &a]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(host.links("nd-").is_empty(), "{:?}", host.links("nd-"));
    assert!(!run_ok("ip", &["-n", &b, "link"]).contains("eth0"));
    let log = daemon.log();
    assert_eq!(
        log.matches("repaired links deleted by someone else")
            .count(),
        1,
        "{log}"
    );
}

/// `dig @127.0.0.11 NAME` from inside a namespace: the answers.
fn dig(ns: &str, name: &str) -> String {
    support::dig(ns, &[name]).answers.join("\n")
}

#[test]
fn wt_dns_serves_a_namespace_that_was_deleted_and_made_again() {
    let tag = format!("wtN{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let net = format!("{tag}-n");
    daemon.cli_ok(&["network", "create", "--subnet", "10.216.0.0/24", &net]);
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    for s in [&a, &b] {
        daemon.cli_ok(&["sandbox", "create", "--network", &net, s]);
    }
    let ipb = ip_of(&daemon, &b);
    assert!(within_5s(|| dig(&a, &b) == ipb), "no DNS to begin with");
    run_ip(&["netns", "del", &a]);
    let (code, text) = daemon.api("POST", "/netd/reconcile", None);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(&a), "{a} not recreated: {text}");
    assert!(
        within_5s(|| dig(&a, &b) == ipb),
        "the recreated namespace's DNS does not answer: {}",
        daemon.log()
    );
    assert!(ping(&a, &ipb));
}

fn run_ip(args: &[&str]) {
    run_ok("ip", args);
}
