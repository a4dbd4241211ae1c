//! Docker's bridge options as a compose file sends them through the Docker
//! API, applied with real traffic: published ports bound to
//! `host_binding_ipv4` only, routed IPv4 (no masquerade), the interface
//! prefix and the MTU.

use std::time::Duration;

use netd_tests as support;
use support::{Daemon, Netns, ping, run_ok, uplink};

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
    let _svc = support::greeter(&a, 80, "sandbox-a");

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

/// The stock docker CLI against netd: `ls --filter name=^x$` is an exact
/// match (Docker's filters are regular expressions), a bad pattern is
/// refused naming it, and `--aux-address` goes in and comes back.
#[test]
fn the_docker_cli_filters_by_regex_and_takes_aux_addresses() {
    let tag = format!("cdx{}f", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let docker = |args: &[&str]| daemon.docker(args);
    let (x, xy) = (format!("{tag}-x"), format!("{tag}-xy"));
    daemon.cli_ok(&["network", "create", "--subnet", "10.203.42.0/24", &xy]);
    let out = docker(&[
        "network",
        "create",
        "--subnet",
        "10.203.41.0/24",
        "--aux-address",
        "router=10.203.41.2",
        &x,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = |filter: &str| {
        let out = docker(&["network", "ls", "--filter", filter, "--format", "{{.Name}}"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(ls(&format!("name=^{x}$")), format!("{x}\n"));
    assert_eq!(ls(&format!("name={x}")), format!("{x}\n{xy}\n"));
    // netd's own CLI, the same filters and Docker-style templates.
    let mine = daemon.cli_ok(&[
        "network",
        "ls",
        "--filter",
        &format!("name=^{x}$"),
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(mine, format!("{x} bridge\n"));
    let full = daemon.cli_ok(&[
        "network",
        "ls",
        "-f",
        &format!("name=^{x}$"),
        "--no-trunc",
        "-q",
    ]);
    assert_eq!(full.trim().len(), 64, "{full}");
    let name = daemon.cli_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.driver.subnet}}",
        &x,
    ]);
    assert_eq!(name, format!("{x} 10.203.41.0/24\n"));
    let err = daemon.cli_err(&["network", "ls", "--filter", "type=odd"]);
    assert!(err.contains("'type'='odd'"), "{err}");
    daemon.cli_ok(&["network", "rm", "-f", &format!("{tag}-nosuch")]);
    daemon.cli_err(&["network", "rm", &format!("{tag}-nosuch")]);
    let bad = docker(&["network", "ls", "--filter", "name=web["]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("name=web["), "{err}");

    let out = docker(&["network", "inspect", &x]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(
        v[0]["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router"],
        "10.203.41.2"
    );
    // Never handed out: the first sandbox gets .3.
    let a = format!("{tag}-a");
    daemon.cli_ok(&["sandbox", "create", "--network", &x, &a]);
    let d: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["sandbox", "inspect", &a])).expect("inspect JSON");
    assert_eq!(d[0]["endpoints"][0]["ip"], "10.203.41.3", "{d}");
    daemon.cli_ok(&["sandbox", "rm", &a]);
    for n in [&x, &xy] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}

/// `docker network connect --gw-priority`: the network with the highest
/// priority carries the sandbox's traffic out, seen from outside by the
/// source address (both networks are routed, so nothing is masqueraded);
/// when it leaves, the route goes back.
#[test]
fn gw_priority_picks_the_network_traffic_leaves_by() {
    let tag = format!("cdx{}g", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, "10.202.43");
    host.run_ok("ip", &["route", "add", "default", "via", "10.202.43.2"]);
    for subnet in ["10.203.43.0/24", "10.203.44.0/24"] {
        outside.run_ok("ip", &["route", "add", subnet, "via", "10.202.43.1"]);
    }
    // Answers each connection with the address it came from.
    let script = "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind(('0.0.0.0', 7000)); s.listen(16)\n\
                  while True:\n    c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n";
    let _who = support::spawn_in(outside.name(), "python3", &["-c", script]);
    support::wait_listening(outside.name(), 7000);
    let daemon = Daemon::start(&host);
    let docker = |args: &[&str]| {
        let out = daemon.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (na, nb, a) = (format!("{tag}-a"), format!("{tag}-b"), format!("{tag}-s"));
    for (n, subnet) in [(&na, "10.203.43.0/24"), (&nb, "10.203.44.0/24")] {
        docker(&[
            "network",
            "create",
            "--subnet",
            subnet,
            "-o",
            "com.docker.network.bridge.gateway_mode_ipv4=routed",
            n,
        ]);
    }
    daemon.cli_ok(&["sandbox", "create", "--network", &na, &a]);
    let seen = || support::tcp_read(&a, "10.202.43.2:7000");
    assert_eq!(seen().as_deref(), Some("10.203.43.2"));

    docker(&["network", "connect", "--gw-priority", "10", &nb, &a]);
    let route = support::run_ok("ip", &["-n", &a, "route", "show", "default"]);
    assert!(route.contains("via 10.203.44.1"), "{route}");
    assert_eq!(seen().as_deref(), Some("10.203.44.2"), "not out by b");
    let d: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["sandbox", "inspect", &a])).expect("inspect JSON");
    assert_eq!(d[0]["endpoints"][1]["gw_priority"], 10, "{d}");

    docker(&["network", "disconnect", &nb, &a]);
    assert_eq!(seen().as_deref(), Some("10.203.43.2"), "not back out by a");

    // netd's own CLI: a negative priority yields to a network joined later.
    daemon.cli_ok(&["network", "disconnect", &na, &a]);
    daemon.cli_ok(&["network", "connect", "--gw-priority", "-1", &na, &a]);
    daemon.cli_ok(&["network", "connect", &nb, &a]);
    assert_eq!(seen().as_deref(), Some("10.203.44.2"), "-1 outranked 0");

    daemon.cli_ok(&["sandbox", "rm", &a]);
    for n in [&na, &nb] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}

/// `docker network create --config-only` and `--config-from` with the
/// stock docker CLI: the config network is a record (driver `null`, no
/// bridge, nothing joins it); the network made from it is a real bridge
/// with its subnet, range, gateway, MTU and IPv6, proven by ping; the
/// config network cannot go while that network exists. Then the same
/// through netd's own CLI.
#[test]
fn config_only_networks_hold_settings_for_config_from() {
    let tag = format!("ncfg{}c", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let docker = |args: &[&str]| daemon.docker(args);
    let docker_ok = |args: &[&str]| {
        let out = docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let docker_err = |args: &[&str]| {
        let out = docker(args);
        assert!(!out.status.success(), "docker {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bridges = || host.run_ok("ip", &["-o", "link", "show", "type", "bridge"]);
    let (cfg, real, s) = (
        format!("{tag}-cfg"),
        format!("{tag}-real"),
        format!("{tag}-s"),
    );

    let before = bridges();
    docker_ok(&[
        "network",
        "create",
        "--config-only",
        "--subnet",
        "10.203.46.0/24",
        "--gateway",
        "10.203.46.1",
        "--ip-range",
        "10.203.46.64/26",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "--ipv6",
        "--subnet",
        "fd00:ce:46::/64",
        &cfg,
    ]);
    assert_eq!(bridges(), before, "a config-only network made a bridge");
    let ls = docker_ok(&[
        "network",
        "ls",
        "--filter",
        &format!("name=^{cfg}$"),
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(ls, format!("{cfg} null local\n"));
    let v: serde_json::Value =
        serde_json::from_str(&docker_ok(&["network", "inspect", &cfg])).expect("inspect JSON");
    assert_eq!(v[0]["ConfigOnly"], true, "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.203.46.0/24", "{v}");
    assert_eq!(
        v[0]["IPAM"]["Config"][1]["Subnet"], "fd00:ce:46::/64",
        "{v}"
    );

    // Nothing joins it.
    let err = daemon.cli_err(&["sandbox", "create", "--network", &cfg, &s]);
    assert!(err.contains("configuration-only network"), "{err}");

    docker_ok(&["network", "create", "--config-from", &cfg, &real]);
    let v: serde_json::Value =
        serde_json::from_str(&docker_ok(&["network", "inspect", &real])).expect("inspect JSON");
    assert_eq!(v[0]["ConfigFrom"]["Network"], cfg.as_str(), "{v}");
    assert_eq!(v[0]["ConfigOnly"], false, "{v}");
    assert_eq!(v[0]["Driver"], "bridge", "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.203.46.1", "{v}");

    daemon.cli_ok(&["sandbox", "create", "--network", &real, &s]);
    let d: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["sandbox", "inspect", &s])).expect("inspect JSON");
    let ip: std::net::Ipv4Addr = d[0]["endpoints"][0]["ip"]
        .as_str()
        .expect("an IPv4 address")
        .parse()
        .expect("an address");
    let o = ip.octets();
    assert!(
        o[..3] == [10, 203, 46] && (64..128).contains(&o[3]),
        "{ip} is outside the config's ip-range 10.203.46.64/26"
    );
    assert!(
        ping(&s, "10.203.46.1"),
        "the config's gateway does not answer"
    );
    let link = support::run_ok("ip", &["-n", &s, "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    let ip6 = d[0]["endpoints"][0]["ip6"]
        .as_str()
        .expect("an IPv6 address");
    assert!(ip6.starts_with("fd00:ce:46::"), "{ip6}");
    let answered6 = (0..5).any(|_| support::ping6(&s, "fd00:ce:46::1"));
    assert!(answered6, "the IPv6 gateway does not answer");

    let err = docker_err(&["network", "connect", &cfg, &s]);
    assert!(err.contains("configuration-only network"), "{err}");
    let err = docker_err(&["network", "rm", &cfg]);
    assert!(err.contains("is in use"), "{err}");
    let err = docker_err(&[
        "network",
        "create",
        "--config-from",
        &cfg,
        "--subnet",
        "10.203.47.0/24",
        &format!("{tag}-x"),
    ]);
    assert!(err.contains("user specified configurations"), "{err}");
    let err = docker_err(&[
        "network",
        "create",
        "--config-from",
        &cfg,
        &format!("{tag}-y"),
    ]);
    assert!(err.contains("overlaps"), "{err}");
    // Prune leaves the config network in use (and real, which has s).
    daemon.cli_ok(&["network", "prune", "-f"]);
    docker_ok(&["network", "inspect", &cfg]);

    daemon.cli_ok(&["sandbox", "rm", &s]);
    docker_ok(&["network", "rm", &real]);
    docker_ok(&["network", "rm", &cfg]);
    assert_eq!(bridges(), before);

    // netd's own CLI: the same semantics through netd's API.
    let (cfg2, real2, s2) = (
        format!("{tag}-cfg2"),
        format!("{tag}-real2"),
        format!("{tag}-s2"),
    );
    daemon.cli_ok(&[
        "network",
        "create",
        "--config-only",
        "--subnet",
        "10.203.48.0/24",
        &cfg2,
    ]);
    let ls = daemon.cli_ok(&[
        "network",
        "ls",
        "-f",
        &format!("name=^{cfg2}$"),
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(ls, format!("{cfg2} null\n"));
    let err = daemon.cli_err(&[
        "network",
        "create",
        "--config-from",
        &cfg2,
        "-o",
        "com.docker.network.driver.mtu=1300",
        &real2,
    ]);
    assert!(
        err.contains("network driver options are not supported"),
        "{err}"
    );
    daemon.cli_ok(&["network", "create", "--config-from", &cfg2, &real2]);
    daemon.cli_ok(&["sandbox", "create", "--network", &real2, &s2]);
    assert!(
        ping(&s2, "10.203.48.1"),
        "the gateway of cfg2's subnet does not answer"
    );
    let err = daemon.cli_err(&["network", "rm", &cfg2]);
    assert!(err.contains("is in use by network"), "{err}");
    daemon.cli_ok(&["sandbox", "rm", &s2]);
    daemon.cli_ok(&["network", "rm", &real2]);
    daemon.cli_ok(&["network", "rm", &cfg2]);
}

/// `inhibit_ipv4=true` through the stock docker CLI: the bridge holds no
/// IPv4 address, the sandbox still gets its address and its default route
/// via the gateway, and that gateway is a router of the test's own, plugged
/// into the bridge, which the sandbox reaches (beyond the subnet too). The
/// daemon's reconcile on restart leaves the bridge without the address.
#[test]
fn inhibit_ipv4_leaves_the_gateway_to_a_router_on_the_bridge() {
    let tag = format!("ninh{}", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let router = Netns::new(&format!("{tag}-rt"));
    let mut daemon = Daemon::start(&host);
    let (net, a, br) = (format!("{tag}-net"), format!("{tag}-a"), format!("{tag}b"));
    let out = daemon.docker(&[
        "network",
        "create",
        "--subnet",
        "10.203.48.0/24",
        "--gateway",
        "10.203.48.1",
        "-o",
        "com.docker.network.bridge.inhibit_ipv4=true",
        "-o",
        &format!("com.docker.network.bridge.name={br}"),
        &net,
    ]);
    assert!(
        out.status.success(),
        "docker network create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = daemon.docker(&["network", "inspect", &net]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("inspect");
    assert_eq!(
        inspect[0]["Options"]["com.docker.network.bridge.inhibit_ipv4"],
        "true"
    );
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Gateway"], "10.203.48.1");
    let v4_on_bridge = || host.run_ok("ip", &["-4", "-o", "addr", "show", "dev", &br]);
    assert_eq!(v4_on_bridge(), "", "the bridge got an IPv4 address");

    // The router: its own namespace, a veth whose other end is a port of
    // the bridge, holding the gateway address and one beyond the subnet.
    let port = format!("{tag}p");
    run_ok(
        "ip",
        &[
            "link",
            "add",
            "r0",
            "netns",
            router.name(),
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            host.name(),
        ],
    );
    router.run_ok("ip", &["addr", "add", "10.203.48.1/24", "dev", "r0"]);
    router.run_ok("ip", &["addr", "add", "198.51.100.48/32", "dev", "lo"]);
    router.run_ok("ip", &["link", "set", "r0", "up"]);
    host.run_ok("ip", &["link", "set", &port, "master", &br, "up"]);

    daemon.cli_ok(&["sandbox", "create", "--network", &net, &a]);
    let addr = run_ok(
        "ip",
        &[
            "netns", "exec", &a, "ip", "-4", "-o", "addr", "show", "eth0",
        ],
    );
    assert!(addr.contains("10.203.48.2/24"), "{addr}");
    let route = run_ok(
        "ip",
        &["netns", "exec", &a, "ip", "-4", "route", "show", "default"],
    );
    assert!(route.contains("via 10.203.48.1"), "{route}");
    assert!(
        ping(&a, "10.203.48.1"),
        "the sandbox did not reach the router"
    );
    assert!(
        ping(&a, "198.51.100.48"),
        "the default route did not lead to the router"
    );
    assert_eq!(v4_on_bridge(), "", "the bridge got an IPv4 address");

    // A restart reconciles the kernel to the store: still no address.
    daemon.restart();
    assert_eq!(
        v4_on_bridge(),
        "",
        "reconcile put the gateway on the bridge"
    );
    assert!(ping(&a, "198.51.100.48"));
    daemon.cli_ok(&["sandbox", "rm", &a]);
    daemon.cli_ok(&["network", "rm", &net]);
}

/// `trusted_host_interfaces` through the stock docker CLI, NAT mode: from
/// the trusted interface's side, a published container port answers at the
/// container's own address (Docker's direct routing); an unpublished one
/// does not, and from another interface neither does.
#[test]
fn trusted_host_interfaces_reach_published_ports_directly() {
    let tag = format!("ninh{}t", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let trusted = Netns::new(&format!("{tag}-tr"));
    let other = Netns::new(&format!("{tag}-ot"));
    uplink(&host, &trusted, "10.202.50");
    uplink(&host, &other, "10.202.51");
    // Both sides route the container subnet to the host.
    trusted.run_ok(
        "ip",
        &["route", "add", "10.203.50.0/24", "via", "10.202.50.1"],
    );
    other.run_ok(
        "ip",
        &["route", "add", "10.203.50.0/24", "via", "10.202.51.1"],
    );
    let up_of = |addr: &str| {
        let line = host.run_ok("ip", &["-o", "-4", "addr", "show", "to", addr]);
        line.split_whitespace().nth(1).expect("uplink").to_string()
    };
    let up = up_of("10.202.50.1");
    let daemon = Daemon::start(&host);
    let (net, a) = (format!("{tag}-net"), format!("{tag}-a"));
    let out = daemon.docker(&[
        "network",
        "create",
        "--subnet",
        "10.203.50.0/24",
        "-o",
        &format!("com.docker.network.bridge.trusted_host_interfaces={up}:mgmt0"),
        &net,
    ]);
    assert!(
        out.status.success(),
        "docker network create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = daemon.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.trusted_host_interfaces=eth0:a/b",
        &format!("{tag}-bad"),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("\"a/b\" is not an interface name"), "{err}");

    daemon.cli_ok(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
    let _p80 = support::greeter(&a, 80, "published");
    let _p81 = support::greeter(&a, 81, "unpublished");
    let there =
        support::wait_connectable(trusted.name(), "10.202.50.1:8080", Duration::from_secs(3));
    assert!(there, "the published port did not answer on the host");
    assert_eq!(
        support::tcp_read(trusted.name(), "10.203.50.2:80").as_deref(),
        Some("published"),
        "the trusted side did not reach the published port directly"
    );
    assert_eq!(
        support::tcp_read(trusted.name(), "10.203.50.2:81"),
        None,
        "an unpublished port was reached"
    );
    assert_eq!(
        support::tcp_read(other.name(), "10.203.50.2:80"),
        None,
        "an untrusted interface reached the container directly"
    );
    // Through the host's published port, both sides get in.
    assert_eq!(
        support::tcp_read(other.name(), "10.202.51.1:8080").as_deref(),
        Some("published")
    );
    daemon.cli_ok(&["sandbox", "rm", &a]);
    daemon.cli_ok(&["network", "rm", &net]);
}

/// `docker network connect --driver-opt` with the two endpoint options
/// Docker's bridge driver takes: the interface's name and its sysctls,
/// checked in the sandbox and with a ping through it; an unknown option
/// or a sysctl not written with IFNAME is refused, nothing changed. Then
/// the same through netd's own CLI.
#[test]
fn endpoint_driver_opts_name_the_interface_and_set_its_sysctls() {
    let tag = format!("ndrv{}d", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let docker = |args: &[&str]| daemon.docker(args);
    let docker_ok = |args: &[&str]| {
        let out = docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (n1, n2, s) = (format!("{tag}-n1"), format!("{tag}-n2"), format!("{tag}-s"));
    docker_ok(&["network", "create", "--subnet", "10.203.52.0/24", &n1]);
    docker_ok(&["network", "create", "--subnet", "10.203.53.0/24", &n2]);
    daemon.cli_ok(&["sandbox", "create", "--network", &n1, &s]);
    let sysctl = |key: &str| {
        support::run_ok("ip", &["netns", "exec", &s, "sysctl", "-n", key])
            .trim()
            .to_string()
    };
    let links = || support::run_ok("ip", &["-n", &s, "-o", "link", "show"]);
    let endpoints = || {
        let d: serde_json::Value =
            serde_json::from_str(&daemon.cli_ok(&["sandbox", "inspect", &s]))
                .expect("inspect JSON");
        d[0]["endpoints"].as_array().map_or(0, Vec::len)
    };

    let before = links();
    for (opt, want) in [
        (
            "com.docker.network.endpoint.foo=1",
            "\"com.docker.network.endpoint.foo\" is not supported",
        ),
        (
            "com.docker.network.endpoint.sysctls=net.ipv4.conf.eth1.log_martians=1",
            "represent net.X.Y.ethN.Z=V as net.X.Y.IFNAME.Z=V",
        ),
        (
            "com.docker.network.endpoint.ifname=bad/name",
            "invalid interface name \"bad/name\"",
        ),
    ] {
        let out = docker(&["network", "connect", "--driver-opt", opt, &n2, &s]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{opt} was taken");
        assert!(err.contains(want), "{opt}: {err}");
        assert_eq!(links(), before, "{opt} changed the sandbox");
        assert_eq!(endpoints(), 1, "{opt} left an endpoint");
    }
    // eth0's name is taken in the sandbox.
    let out = docker(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.ifname=eth0",
        &n2,
        &s,
    ]);
    assert!(!out.status.success(), "eth0 taken twice");
    assert_eq!(links(), before);

    // The docker CLI splits --driver-opt at commas (a string slice):
    // a list of sysctls is quoted, CSV-style.
    docker_ok(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.ifname=web0",
        "--driver-opt",
        "\"com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1,net.ipv4.conf.IFNAME.arp_ignore=2\"",
        &n2,
        &s,
    ]);
    support::run_ok("ip", &["-n", &s, "link", "show", "web0"]);
    assert_eq!(sysctl("net.ipv4.conf.web0.log_martians"), "1");
    assert_eq!(sysctl("net.ipv4.conf.web0.arp_ignore"), "2");
    // Only that interface.
    assert_eq!(sysctl("net.ipv4.conf.eth0.log_martians"), "0");
    assert!(ping(&s, "10.203.53.1"), "no ping through web0");
    // Changed by hand, put back by reconcile.
    support::run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &s,
            "sysctl",
            "-qw",
            "net.ipv4.conf.web0.log_martians=0",
        ],
    );
    support::run_ok(
        "curl",
        &[
            "-sfS",
            "-X",
            "POST",
            "--unix-socket",
            daemon.socket().to_str().expect("UTF-8 path"),
            "http://x/netd/reconcile",
        ],
    );
    assert_eq!(sysctl("net.ipv4.conf.web0.log_martians"), "1");
    let d: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["sandbox", "inspect", &s])).expect("inspect JSON");
    assert_eq!(d[0]["endpoints"][1]["ifname"], "web0", "{d}");
    assert_eq!(
        d[0]["endpoints"][1]["sysctls"][0], "net.ipv4.conf.IFNAME.log_martians=1",
        "{d}"
    );
    docker_ok(&["network", "disconnect", &n2, &s]);
    assert!(!links().contains("web0"));

    // netd's own CLI.
    let err = daemon.cli_err(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.bogus=1",
        &n2,
        &s,
    ]);
    assert!(err.contains("com.docker.network.endpoint.bogus"), "{err}");
    daemon.cli_ok(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.ifname=app1",
        "--driver-opt",
        "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.rp_filter=2",
        &n2,
        &s,
    ]);
    assert_eq!(sysctl("net.ipv4.conf.app1.rp_filter"), "2");
    assert!(ping(&s, "10.203.53.1"), "no ping through app1");

    daemon.cli_ok(&["sandbox", "rm", &s]);
    for n in [&n1, &n2] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}
