//! Routed IPv4 (`gateway_mode_ipv4=routed`), as Docker does it: containers
//! keep their own addresses on the way out (no masquerade), and a machine
//! that routes the subnet to the host reaches the published container
//! ports, and ICMP, at the containers' own addresses; unpublished ports
//! stay closed. On a NAT network nothing is reached that way.

use std::time::Duration;

use netd_tests as support;
use support::{Daemon, Netns, ping, uplink};

#[test]
fn routed_ipv4_lets_published_container_ports_in_at_their_own_addresses() {
    let tag = format!("nrt4{}", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, "10.202.54");
    for subnet in ["10.203.54.0/24", "10.203.55.0/24"] {
        outside.run_ok("ip", &["route", "add", subnet, "via", "10.202.54.1"]);
    }
    let daemon = Daemon::start(&host);
    let (routed, nat) = (format!("{tag}-rt"), format!("{tag}-nat"));
    daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.203.54.0/24",
        "-o",
        "com.docker.network.bridge.gateway_mode_ipv4=routed",
        &routed,
    ]);
    daemon.cli_ok(&["network", "create", "--subnet", "10.203.55.0/24", &nat]);
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &routed,
        "-p",
        "8080:80",
        &a,
    ]);
    daemon.cli_ok(&["sandbox", "create", "--network", &nat, "-p", "8081:80", &b]);
    let _a80 = support::greeter(&a, 80, "routed");
    let _a81 = support::greeter(&a, 81, "unpublished");
    let _b80 = support::greeter(&b, 80, "nat");
    let set = host.run_ok("nft", &["list", "set", "inet", "netd", "direct4"]);
    assert!(set.contains("10.203.54.2 . tcp . 80"), "{set}");
    assert!(!set.contains("10.203.55.2"), "{set}");

    let there =
        support::wait_connectable(outside.name(), "10.202.54.1:8080", Duration::from_secs(3));
    assert!(there, "the published port did not answer on the host");
    assert_eq!(
        support::tcp_read(outside.name(), "10.203.54.2:80").as_deref(),
        Some("routed"),
        "the published container port was not reached at its own address"
    );
    assert!(
        ping(outside.name(), "10.203.54.2"),
        "ICMP did not reach the routed container"
    );
    assert_eq!(
        support::tcp_read(outside.name(), "10.203.54.2:81"),
        None,
        "an unpublished port of a routed container was reached"
    );
    assert_eq!(
        support::tcp_read(outside.name(), "10.203.55.2:80"),
        None,
        "a container of a NAT network was reached at its own address"
    );
    // The host's published ports answer for both.
    assert_eq!(
        support::tcp_read(outside.name(), "10.202.54.1:8081").as_deref(),
        Some("nat")
    );
    daemon.cli_ok(&["sandbox", "rm", &a]);
    daemon.cli_ok(&["sandbox", "rm", &b]);
    daemon.cli_ok(&["network", "rm", &routed]);
    daemon.cli_ok(&["network", "rm", &nat]);
}
