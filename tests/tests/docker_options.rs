//! Docker's bridge options as a compose file sends them through the Docker
//! API, applied with real traffic: published ports bound to
//! `host_binding_ipv4` only, routed IPv4 (no masquerade), the interface
//! prefix and the MTU.

use std::time::Duration;

use netd_tests as support;
use support::{Daemon, Netns, ping, uplink};

/// A TCP service in `ns` greeting every connection with `greeting`.
fn greeter(ns: &str, port: u16, greeting: &str) -> support::Child {
    let script = format!(
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port})); s.listen(16)\n\
         while True:\n    c,_=s.accept(); c.sendall(b'{greeting}'); c.close()\n"
    );
    let child = support::spawn_in(ns, "python3", &["-c", &script]);
    support::wait_listening(ns, port);
    child
}

#[test]
fn compose_bridge_options_bind_ports_and_route() {
    let tag = format!("cdx{}o", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, "10.202.40");
    host.run_ok("ip", &["route", "add", "default", "via", "10.202.40.2"]);
    // A second host address, on the uplink's segment (the host answers ARP
    // for it): the one published ports are bound to.
    host.run_ok("ip", &["addr", "add", "10.202.40.5/32", "dev", "lo"]);
    let daemon = Daemon::start(&host);
    let (net, a) = (format!("{tag}-net"), format!("{tag}-a"));

    let body = format!(
        r#"{{"Name":"{net}","Driver":"bridge","IPAM":{{"Config":[{{"Subnet":"10.203.40.0/24"}}]}},"Options":{{"com.docker.network.bridge.host_binding_ipv4":"10.202.40.5","com.docker.network.bridge.gateway_mode_ipv4":"routed","com.docker.network.bridge.enable_ip_masquerade":"true","com.docker.network.bridge.inhibit_ipv4":"false","com.docker.network.container_iface_prefix":"ens","com.docker.network.driver.mtu":"1400"}},"Labels":{{"com.docker.compose.network":"default"}}}}"#
    );
    let (code, text) = daemon.api("POST", "/v1.47/networks/create", Some(&body));
    assert_eq!(code, 201, "{text}");
    let inspect = daemon.api_get(&format!("/v1.47/networks/{net}"));
    assert_eq!(
        inspect["Options"]["com.docker.network.bridge.host_binding_ipv4"],
        "10.202.40.5"
    );
    daemon.cli_ok(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
    let _svc = greeter(&a, 80, "sandbox-a");

    // Bound to host_binding_ipv4 only: reached there, not at the host's
    // other address.
    let there =
        support::wait_connectable(outside.name(), "10.202.40.5:8080", Duration::from_secs(3));
    assert!(there, "the port bound to host_binding_ipv4 did not answer");
    assert_eq!(
        support::tcp_read(outside.name(), "10.202.40.5:8080").as_deref(),
        Some("sandbox-a")
    );
    assert_eq!(
        support::tcp_read(outside.name(), "10.202.40.1:8080"),
        None,
        "published on an address other than host_binding_ipv4"
    );

    // The interface prefix and MTU inside the sandbox.
    let link = support::run_ok(
        "ip",
        &["netns", "exec", &a, "ip", "-o", "link", "show", "ens0"],
    );
    assert!(link.contains("mtu 1400"), "{link}");

    // Routed: no masquerade, so the outside (no route back to the
    // container subnet) never answers.
    assert!(ping(host.name(), "10.202.40.2"));
    assert!(
        !ping(&a, "10.202.40.2"),
        "routed mode masqueraded the sandbox's traffic"
    );
    daemon.cli_ok(&["sandbox", "rm", &a]);
    daemon.cli_ok(&["network", "rm", &net]);
}
