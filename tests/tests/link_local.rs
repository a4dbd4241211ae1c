//! Docker's LinkLocalIPs (`docker network connect --link-local-ip`): the
//! addresses are on the sandbox's interface on that network, with scope
//! link, and answer pings from another sandbox on the same bridge.

use netd_tests as support;
use support::{Daemon, Netns};

fn ping6(ns: &str, target: &str) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-6", "-c1", "-W2", target])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn link_local_ips_are_added_and_answer_on_that_network() {
    let tag = format!("nevt{}l", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let docker = |args: &[&str]| {
        let out = daemon.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (home, net) = (format!("{tag}-home"), format!("{tag}-n"));
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    docker(&["network", "create", "--subnet", "10.204.20.0/24", &home]);
    docker(&["network", "create", "--subnet", "10.204.21.0/24", &net]);
    daemon.cli_ok(&["sandbox", "create", "--network", &home, &a]);
    // b on the network with its own link-local addresses (netd's CLI, at
    // sandbox create); nobody else has one yet, so nothing answers. Its
    // IPv6 one is what turns IPv6 on for its interface: on an IPv4-only
    // network it is off otherwise, as in Docker.
    daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "--link-local-ip",
        "169.254.10.6",
        "--link-local-ip",
        "fe80::a:6",
        &b,
    ]);
    assert!(
        !support::ping(&b, "169.254.10.5"),
        "answered before connect"
    );

    // What Docker refuses is refused, naming it, and nothing is joined.
    let out = daemon.docker(&[
        "network",
        "connect",
        "--link-local-ip",
        "10.0.0.5",
        &net,
        &a,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("10.0.0.5 is not link-local"),
        "{err}"
    );
    let d = daemon.cli_json(&["sandbox", "inspect", &a]);
    assert_eq!(d[0]["endpoints"].as_array().unwrap().len(), 1, "{d}");

    docker(&[
        "network",
        "connect",
        "--link-local-ip",
        "169.254.10.5",
        "--link-local-ip",
        "fe80::a:5",
        &net,
        &a,
    ]);
    let addrs = support::run_ok("ip", &["-n", &a, "-o", "addr", "show", "dev", "eth1"]);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("inet 169.254.10.5/16") && l.contains("scope link")),
        "{addrs}"
    );
    assert!(
        addrs.contains("inet 10.204.21."),
        "its own address too: {addrs}"
    );
    assert!(addrs.contains("inet6 fe80::a:5/64"), "{addrs}");
    // Only on that network's interface; the other one, on an IPv4-only
    // network without an IPv6 link-local address, has no IPv6 at all (it
    // would flood duplicate address detection and MLD over the bridge).
    let eth0 = support::run_ok("ip", &["-n", &a, "-o", "addr", "show", "dev", "eth0"]);
    assert!(!eth0.contains("169.254."), "{eth0}");
    assert!(!eth0.contains("inet6"), "{eth0}");
    let off = support::run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &a,
            "cat",
            "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
        ],
    );
    assert_eq!(off.trim(), "1");

    // Traffic: b reaches both over the bridge.
    assert!(
        support::ping(&b, "169.254.10.5"),
        "no answer from 169.254.10.5"
    );
    // (The first IPv6 ping may go out before b's own address is usable.)
    assert!(
        support::wait_until(std::time::Duration::from_secs(5), || ping6(
            &b,
            "fe80::a:5%eth0"
        )),
        "no answer from fe80::a:5"
    );

    let d = daemon.cli_json(&["sandbox", "inspect", &a]);
    assert_eq!(
        d[0]["endpoints"][1]["link_local_ips"],
        serde_json::json!(["169.254.10.5", "fe80::a:5"]),
        "{d}"
    );

    // Lost behind netd's back: reconcile puts it back.
    support::run_ok(
        "ip",
        &["-n", &a, "addr", "del", "169.254.10.5/16", "dev", "eth1"],
    );
    assert!(!support::ping(&b, "169.254.10.5"));
    let (code, body) = daemon.api("POST", "/netd/reconcile", None);
    assert_eq!(code, 200, "{body}");
    assert!(
        support::ping(&b, "169.254.10.5"),
        "not put back by reconcile"
    );

    // Disconnect takes them along.
    docker(&["network", "disconnect", &net, &a]);
    assert!(
        !support::ping(&b, "169.254.10.5"),
        "answered after disconnect"
    );

    for s in [&a, &b] {
        daemon.cli_ok(&["sandbox", "rm", s]);
    }
    for n in [&home, &net] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}
