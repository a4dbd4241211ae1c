//! `trusted_host_interfaces` on a dual-stack network, IPv6 side: from the
//! trusted interface, a published container port answers at the
//! container's own IPv6 address (the `trusted6` set); an unpublished one
//! does not, and from another interface neither does.

use std::time::Duration;

use netd_tests as support;
use support::{Daemon, Netns, uplink6};

#[test]
fn trusted_host_interfaces_reach_published_ports_directly_over_ipv6() {
    let tag = format!("ntr6{}", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let trusted = Netns::new(&format!("{tag}-tr"));
    let other = Netns::new(&format!("{tag}-ot"));
    uplink6(&host, &trusted, "10.202.52", "2001:db8:252:1");
    uplink6(&host, &other, "10.202.53", "2001:db8:253:1");
    // Both sides route the container subnet to the host.
    trusted.run_ok(
        "ip",
        &[
            "-6",
            "route",
            "add",
            "fd00:203:52::/64",
            "via",
            "2001:db8:252:1::1",
        ],
    );
    other.run_ok(
        "ip",
        &[
            "-6",
            "route",
            "add",
            "fd00:203:52::/64",
            "via",
            "2001:db8:253:1::1",
        ],
    );
    let up = host.run_ok("ip", &["-o", "-4", "addr", "show", "to", "10.202.52.1"]);
    let up = up.split_whitespace().nth(1).expect("uplink").to_string();
    let daemon = Daemon::start(&host);
    let (net, a) = (format!("{tag}-net"), format!("{tag}-a"));
    daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.203.52.0/24",
        "--ipv6",
        "--subnet",
        "fd00:203:52::/64",
        "-o",
        &format!("com.docker.network.bridge.trusted_host_interfaces={up}"),
        &net,
    ]);
    daemon.cli_ok(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
    let _p80 = support::greeter(&a, 80, "published");
    let _p81 = support::greeter(&a, 81, "unpublished");
    let set = host.run_ok("nft", &["list", "set", "inet", "netd", "trusted6"]);
    assert!(set.contains("fd00:203:52::2 . tcp . 80"), "{set}");

    let there = support::wait_connectable(
        trusted.name(),
        "[2001:db8:252:1::1]:8080",
        Duration::from_secs(3),
    );
    assert!(there, "the published port did not answer on the host");
    assert_eq!(
        support::tcp_read(trusted.name(), "[fd00:203:52::2]:80").as_deref(),
        Some("published"),
        "the trusted side did not reach the published port directly over IPv6"
    );
    assert_eq!(
        support::tcp_read(trusted.name(), "[fd00:203:52::2]:81"),
        None,
        "an unpublished port was reached over IPv6"
    );
    assert_eq!(
        support::tcp_read(other.name(), "[fd00:203:52::2]:80"),
        None,
        "an untrusted interface reached the container directly over IPv6"
    );
    // Through the host's published port, both sides get in.
    assert_eq!(
        support::tcp_read(other.name(), "[2001:db8:253:1::1]:8080").as_deref(),
        Some("published")
    );
    daemon.cli_ok(&["sandbox", "rm", &a]);
    daemon.cli_ok(&["network", "rm", &net]);
}
