//! The nftables datapath over IPv6, with real traffic: a host namespace
//! running the daemon, an "outside" namespace joined to it by a dual-stack
//! veth (2001:db8:207:N::1 on the host, ::2 outside; the outside has no
//! route to the container subnets unless a test adds one), and sandboxes
//! on dual-stack networks.

use std::time::{Duration, Instant};

use netd_tests as support;
use support::{Child, Daemon, Netns, ping6, uplink6};

struct World {
    host: Netns,
    outside: Netns,
    daemon: Daemon,
    tag: String,
    /// The host's and the outside's uplink addresses.
    host6: String,
    out6: String,
}

fn world(tag: &str, n: u8) -> World {
    let tag = format!("fw6x{}{tag}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    let p6 = format!("2001:db8:207:{n}");
    uplink6(&host, &outside, &format!("10.207.{n}"), &p6);
    host.run_ok(
        "ip",
        &["route", "add", "default", "via", &format!("10.207.{n}.2")],
    );
    host.run_ok(
        "ip",
        &["-6", "route", "add", "default", "via", &format!("{p6}::2")],
    );
    let daemon = Daemon::start(&host);
    World {
        host,
        outside,
        daemon,
        tag,
        host6: format!("{p6}::1"),
        out6: format!("{p6}::2"),
    }
}

impl World {
    fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.tag)
    }

    fn dual_network(&self, name: &str, v4: &str, v6: &str, extra: &[&str]) {
        let mut args = vec![
            "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6,
        ];
        args.extend_from_slice(extra);
        args.push(name);
        self.daemon.cli_ok(&args);
    }
}

/// A TCP server on [::] (both families) in `ns` that greets each client
/// with `greeting` and the client's address as it sees it.
fn greeter(ns: &str, port: u16, greeting: &str) -> Child {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::', {port})); s.listen(16)\n\
         while True:\n    c,a=s.accept(); c.sendall(('{greeting} '+a[0].removeprefix('::ffff:')).encode()); c.close()\n"
    );
    let child = support::spawn_in(ns, "python3", &["-c", &script]);
    support::wait_listening(ns, port);
    child
}

/// Connect from `ns` to ADDR:PORT (`[v6]:port` or `v4:port`); what the
/// server said, or None when nothing answered.
fn tcp(ns: &str, addr: &str) -> Option<String> {
    support::tcp_read(ns, addr)
}

/// Who answered (the greeting's first word).
fn who(ns: &str, addr: &str) -> Option<String> {
    tcp(ns, addr).map(|s| s.split(' ').next().unwrap_or("").to_string())
}

/// A refused request left no sandbox, namespace or element behind.
fn assert_left_nothing(w: &World, sandbox: &str, port: &str) {
    assert!(!Netns::exists(sandbox), "a refused sandbox left its netns");
    let ls = w.daemon.cli_ok(&["sandbox", "ls"]);
    assert!(!ls.contains(sandbox), "a refused sandbox is listed: {ls}");
    let table = w.host.output_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(
        !table.contains(&format!(". {port} :")),
        "a refused port left an element:\n{table}"
    );
}

#[test]
fn nat66_publishing_on_both_families_localhost6_hairpin_and_self_healing() {
    let w = world("n", 1);
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.dual_network(&net, "10.208.1.0/24", "fd00:208:1::/64", &[]);
    let on_host = format!("[{}]:8082:80", w.host6);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "8080:80",
        "-p",
        &on_host,
        "-p",
        "[::]:8083:80",
        &a,
    ]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &b]);
    let _web = greeter(&a, 80, "a");
    let _out = greeter(w.outside.name(), 9999, "outside");
    let (h6, o6) = (w.host6.clone(), w.out6.clone());

    // Egress over NAT66: the outside has no route back to fd00:208:1::/64
    // and sees the host's address.
    assert!(ping6(&a, &o6), "egress through NAT66");
    assert_eq!(
        tcp(&a, &format!("[{o6}]:9999")),
        Some(format!("outside {h6}")),
        "the outside saw the container's own address: NAT66 missing"
    );

    // -p 8080:80 on both families; the container sees the outside's own
    // address (DNAT only).
    assert_eq!(
        tcp(w.outside.name(), &format!("[{h6}]:8080")),
        Some(format!("a {o6}"))
    );
    assert_eq!(
        who(w.outside.name(), "10.207.1.1:8080").as_deref(),
        Some("a")
    );
    // 127.0.0.1 answers from the host; [::1] is refused at once (connect
    // fails, no hang: replies to ::1 from a bridge never arrive, so it is
    // never DNAT'ed).
    assert_eq!(who(w.host.name(), "127.0.0.1:8080").as_deref(), Some("a"));
    let t = Instant::now();
    assert_eq!(who(w.host.name(), "[::1]:8080"), None);
    assert!(t.elapsed() < Duration::from_secs(1), "[::1] hung");
    // One host address: that address only, from outside and from the host.
    assert_eq!(
        who(w.outside.name(), &format!("[{h6}]:8082")).as_deref(),
        Some("a")
    );
    assert_eq!(
        who(w.host.name(), &format!("[{h6}]:8082")).as_deref(),
        Some("a")
    );
    assert_eq!(who(w.host.name(), "[::1]:8082"), None);
    // [::] is every IPv6 address, and no IPv4 one.
    assert_eq!(
        who(w.outside.name(), &format!("[{h6}]:8083")).as_deref(),
        Some("a")
    );
    assert_eq!(who(w.outside.name(), "10.207.1.1:8083"), None);

    // Hairpin over IPv6: a neighbour and the container itself, through
    // the host's address.
    assert_eq!(who(&b, &format!("[{h6}]:8080")).as_deref(), Some("a"));
    assert_eq!(who(&a, &format!("[{h6}]:8080")).as_deref(), Some("a"));

    // NAT66 mode: a machine routing to the subnet reaches published ports
    // only, never a container directly.
    w.outside
        .run_ok("ip", &["-6", "route", "add", "fd00:208:1::/64", "via", &h6]);
    assert_eq!(who(w.outside.name(), "[fd00:208:1::2]:80"), None);
    assert!(!ping6(w.outside.name(), "fd00:208:1::2"));
    w.outside
        .run_ok("ip", &["-6", "route", "del", "fd00:208:1::/64", "via", &h6]);

    // The elements: one per port per family.
    let any6 = w
        .host
        .output_ok("nft", &["list", "map", "inet", "netd", "pub_any6"]);
    assert!(any6.contains("tcp . 8080 : fd00:208:1::2 . 80"), "{any6}");
    assert!(any6.contains("tcp . 8083 : fd00:208:1::2 . 80"), "{any6}");
    let addr6 = w
        .host
        .output_ok("nft", &["list", "map", "inet", "netd", "pub_addr6"]);
    assert!(
        addr6.contains(&format!("{h6} . tcp . 8082 : fd00:208:1::2 . 80")),
        "{addr6}"
    );
    let any = w
        .host
        .output_ok("nft", &["list", "map", "inet", "netd", "pub_any"]);
    assert!(any.contains("tcp . 8080 : 10.208.1.2 . 80"), "{any}");
    assert!(!any.contains("8083"), "[::] published on IPv4: {any}");

    // Another tool wipes the firewall: IPv6 publishing and NAT66 come back.
    w.host.run_ok("nft", &["flush", "ruleset"]);
    let start = Instant::now();
    let mut back = false;
    while start.elapsed() < Duration::from_secs(2) {
        if who(w.outside.name(), &format!("[{h6}]:8080")).as_deref() == Some("a") {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(back, "IPv6 published port not restored after a flush");
    assert_eq!(
        who(w.outside.name(), &format!("[{h6}]:8082")).as_deref(),
        Some("a")
    );
    assert_eq!(
        tcp(&a, &format!("[{o6}]:9999")),
        Some(format!("outside {h6}")),
        "NAT66 not restored after a flush"
    );

    // Removing everything leaves no IPv6 trace.
    w.daemon.cli_ok(&["sandbox", "rm", &a, &b]);
    w.daemon.cli_ok(&["network", "rm", &net]);
    let rules = w.host.output_ok("nft", &["list", "ruleset"]);
    assert!(!rules.contains("fd00:208:1"), "stale rules:\n{rules}");
}

/// `gateway_mode_ipv6=routed`: no NAT66; a machine with a route to the
/// subnet reaches the published container ports (and ping) at the
/// container's own address, nothing else. IPv4 is still masqueraded.
#[test]
fn routed_ipv6_keeps_container_addresses_and_opens_published_ports_only() {
    let w = world("r", 2);
    let (net, a) = (w.name("net"), w.name("a"));
    w.dual_network(
        &net,
        "10.208.2.0/24",
        "fd00:208:2::/64",
        &["-o", "com.docker.network.bridge.gateway_mode_ipv6=routed"],
    );
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
    let _web = greeter(&a, 80, "a");
    let _hidden = greeter(&a, 81, "hidden");
    let _out = greeter(w.outside.name(), 9999, "outside");
    let (h6, o6) = (w.host6.clone(), w.out6.clone());
    w.outside
        .run_ok("ip", &["-6", "route", "add", "fd00:208:2::/64", "via", &h6]);

    assert_eq!(
        tcp(&a, &format!("[{o6}]:9999")),
        Some("outside fd00:208:2::2".to_string()),
        "routed mode must keep the container's address"
    );
    assert_eq!(
        tcp(w.outside.name(), "[fd00:208:2::2]:80"),
        Some(format!("a {o6}")),
        "a published container port, directly"
    );
    assert_eq!(
        who(w.outside.name(), "[fd00:208:2::2]:81"),
        None,
        "an unpublished port answered"
    );
    assert!(ping6(w.outside.name(), "fd00:208:2::2"), "ICMPv6 in");
    // The host port still works too, and IPv4 is masqueraded as before.
    assert_eq!(
        who(w.outside.name(), &format!("[{h6}]:8080")).as_deref(),
        Some("a")
    );
    assert_eq!(
        tcp(&a, "10.207.2.2:9999"),
        Some("outside 10.207.2.1".to_string())
    );
    let post = w
        .host
        .output_ok("nft", &["list", "chain", "inet", "netd", "postrouting"]);
    assert!(
        !post.contains("ip6 saddr fd00:208:2::/64 oifname !="),
        "NAT66 in routed mode:\n{post}"
    );
    let direct = w
        .host
        .output_ok("nft", &["list", "set", "inet", "netd", "direct6"]);
    assert!(direct.contains("fd00:208:2::2 . tcp . 80"), "{direct}");
}

/// Isolation between two dual-stack networks, an internal dual-stack
/// network and enable_icc=false hold for IPv6 as for IPv4.
#[test]
fn isolation_internal_and_icc_hold_for_ipv6() {
    let w = world("i", 3);
    let (n1, n2, int, noicc) = (w.name("n1"), w.name("n2"), w.name("int"), w.name("noicc"));
    let (a, a2, b, c, d, d2) = (
        w.name("a"),
        w.name("a2"),
        w.name("b"),
        w.name("c"),
        w.name("d"),
        w.name("d2"),
    );
    w.dual_network(&n1, "10.208.3.0/24", "fd00:208:3::/64", &[]);
    w.dual_network(&n2, "10.208.4.0/24", "fd00:208:4::/64", &[]);
    w.dual_network(&int, "10.208.5.0/24", "fd00:208:5::/64", &["--internal"]);
    w.dual_network(
        &noicc,
        "10.208.6.0/24",
        "fd00:208:6::/64",
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    );
    for (s, n) in [
        (&a, &n1),
        (&a2, &n1),
        (&b, &n2),
        (&c, &int),
        (&d, &noicc),
        (&d2, &noicc),
    ] {
        w.daemon.cli_ok(&["sandbox", "create", "--network", n, s]);
    }
    w.daemon.cli_ok(&["network", "connect", &int, &a]);
    let (h6, o6) = (w.host6.clone(), w.out6.clone());

    // Same network: yes; another network: no.
    assert!(ping6(&a, "fd00:208:3::3"), "neighbours on one network");
    assert!(!ping6(&a, "fd00:208:4::2"), "n1 reached n2 over IPv6");
    assert!(!ping6(&b, "fd00:208:3::2"), "n2 reached n1 over IPv6");
    // Internal: its own members only, no way out, nothing in.
    assert!(ping6(&c, "fd00:208:5::3"), "a on the internal network");
    assert!(!ping6(&c, &o6), "the internal network reached the outside");
    assert!(!ping6(&c, "fd00:208:3::2"), "internal reached n1");
    // ICC off: not each other, but the way out still works.
    assert!(!ping6(&d, "fd00:208:6::3"), "enable_icc=false over IPv6");
    assert!(ping6(&d, &o6), "egress with ICC off");
    // A published port of n2 is reachable from n1 through the host's
    // address (as for IPv4), not from the internal network.
    w.daemon.cli_ok(&["sandbox", "rm", &b]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &n2, "-p", "8080:80", &b]);
    let _web = greeter(&b, 80, "b");
    assert_eq!(who(&a2, &format!("[{h6}]:8080")).as_deref(), Some("b"));
    assert_eq!(who(&c, &format!("[{h6}]:8080")), None);
    assert_eq!(who(&c, "[fd00:208:5::1]:8080"), None);
}

/// Bad input is refused with a message naming the address, and nothing
/// changes: an IPv6 host address on an IPv4-only network, an address that
/// is not the host's, a port a host socket holds on IPv6.
#[test]
fn ipv6_publishing_refusals_change_nothing() {
    let w = world("b", 4);
    let (v4net, dual, a) = (w.name("v4"), w.name("dual"), w.name("a"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.208.7.0/24", &v4net]);
    w.dual_network(&dual, "10.208.8.0/24", "fd00:208:8::/64", &[]);
    let before = w.host.output_ok("nft", &["list", "table", "inet", "netd"]);

    let err = w.daemon.cli_err(&[
        "sandbox",
        "create",
        "--network",
        &v4net,
        "-p",
        "[::1]:8090:80",
        &a,
    ]);
    assert!(
        err.contains("[::1]") && err.contains("no IPv6 subnet"),
        "{err}"
    );
    assert_left_nothing(&w, &a, "8090");
    let body =
        format!(r#"{{"name":"{a}","network":"{v4net}","endpoint":{{"ports":["[::1]:8090:80"]}}}}"#);
    let (code, text) = w.daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("::1"), "{text}");
    assert_left_nothing(&w, &a, "8090");
    // Any IPv6 host address needs an IPv6 network.
    let spec = format!("[{}]:8090:80", w.host6);
    let err = w
        .daemon
        .cli_err(&["sandbox", "create", "--network", &v4net, "-p", &spec, &a]);
    assert!(
        err.contains(&w.host6) && err.contains("no IPv6 subnet"),
        "{err}"
    );
    assert_left_nothing(&w, &a, "8090");
    let body = format!(r#"{{"name":"{a}","network":"{v4net}","endpoint":{{"ports":["{spec}"]}}}}"#);
    let (code, text) = w.daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("no IPv6 subnet"), "{text}");
    assert_left_nothing(&w, &a, "8090");

    // Not an address of this host.
    let err = w.daemon.cli_err(&[
        "sandbox",
        "create",
        "--network",
        &dual,
        "-p",
        "[2001:db8:999::1]:8091:80",
        &a,
    ]);
    assert!(
        err.contains("2001:db8:999::1") && err.contains("not an address of this host"),
        "{err}"
    );
    assert_left_nothing(&w, &a, "8091");

    // A host service on [::1]:8092 (IPv6 only) holds the port for every
    // IPv6 address, not for 127.0.0.1.
    let holder = "import socket, time\ns=socket.socket(socket.AF_INET6)\n\
         s.bind(('::1', 8092)); s.listen(1)\ntime.sleep(600)\n";
    let _holder = support::spawn_in(w.host.name(), "python3", &["-c", holder]);
    support::wait_listening(w.host.name(), 8092);
    for spec in ["[::]:8092:80", "8092:80"] {
        let err = w
            .daemon
            .cli_err(&["sandbox", "create", "--network", &dual, "-p", spec, &a]);
        assert!(
            err.contains("port 8092/tcp") && err.contains("in use on the host"),
            "{spec}: {err}"
        );
        assert_left_nothing(&w, &a, "8092");
    }
    // Link-local and mapped addresses never parse.
    for spec in ["[fe80::1]:8093:80", "[::ffff:10.0.0.1]:8093:80"] {
        let err = w
            .daemon
            .cli_err(&["sandbox", "create", "--network", &dual, "-p", spec, &a]);
        assert!(
            err.contains(&spec[1..spec.find(']').unwrap()]),
            "{spec}: {err}"
        );
        assert_left_nothing(&w, &a, "8093");
    }
    assert_eq!(
        w.host.output_ok("nft", &["list", "table", "inet", "netd"]),
        before,
        "a refusal changed the table"
    );
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &dual,
        "-p",
        "127.0.0.1:8092:80",
        &a,
    ]);
}

/// What a UDP server in a sandbox answers to a datagram sent from `ns` to
/// `addr`, asked a few times (the server may still be starting); None when
/// nothing answered.
fn udp_ask(ns: &str, addr: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR:PORT");
    support::in_ns(ns, move || {
        let s = std::net::UdpSocket::bind("[::1]:0").ok()?;
        s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        let mut buf = [0u8; 512];
        for _ in 0..10 {
            s.send_to(b"?", addr).ok()?;
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                assert_eq!(from, addr, "the answer comes from the published port");
                return Some(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        None
    })
}

/// Whether `[::1]:port` can be bound in `ns` (TCP and UDP): nothing holds it.
fn loopback6_free(ns: &str, port: u16) -> bool {
    support::in_ns(ns, move || {
        std::net::TcpListener::bind(("::1", port)).is_ok()
            && std::net::UdpSocket::bind(("::1", port)).is_ok()
    })
}

/// `-p [::1]:H:C` (issue 12): no NAT element; the daemon proxies TCP and
/// UDP from the host's [::1] to the container's IPv6 address. A second
/// sandbox or a host socket cannot take the port; a daemon restart serves
/// it again; removing the sandbox frees it.
#[test]
fn loopback6_publishing_through_the_daemons_proxy() {
    let mut w = world("l", 5);
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.dual_network(&net, "10.208.9.0/24", "fd00:208:9::/64", &[]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "[::1]:8180:80",
        "-p",
        "[::1]:8153:5353/udp",
        &a,
    ]);
    let _web = greeter(&a, 80, "a");
    let udp = "import socket\ns=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.bind(('::', 5353))\n\
         while True:\n    d,c=s.recvfrom(2048); s.sendto(('a '+c[0]).encode(), c)\n";
    let _dns = support::spawn_in(&a, "python3", &["-c", udp]);

    // From the host: the container answers, and sees the bridge's IPv6
    // gateway as the client (the proxy's side of the connection).
    assert_eq!(
        tcp(w.host.name(), "[::1]:8180"),
        Some("a fd00:208:9::1".to_string()),
        "{}",
        w.daemon.log()
    );
    assert_eq!(
        udp_ask(w.host.name(), "[::1]:8153"),
        Some("a fd00:208:9::1".to_string())
    );
    // Only [::1]: no element in the maps, nothing on the other addresses.
    let table = w.host.output_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(
        !table.contains("8180") && !table.contains("8153"),
        "{table}"
    );
    assert_eq!(who(w.host.name(), &format!("[{}]:8180", w.host6)), None);
    assert_eq!(who(w.host.name(), "127.0.0.1:8180"), None);

    // Taken: by another sandbox (on [::1], every address or [::]), or by a
    // host socket.
    for spec in ["[::1]:8180:80", "8180:80", "[::]:8180:80"] {
        let err = w
            .daemon
            .cli_err(&["sandbox", "create", "--network", &net, "-p", spec, &b]);
        assert!(
            err.contains("8180/tcp") && err.contains(&format!("sandbox {a}")),
            "{spec}: {err}"
        );
        assert_left_nothing(&w, &b, "8180");
    }
    let holder = "import socket, time\ns=socket.socket(socket.AF_INET6)\n\
         s.bind(('::1', 8190)); s.listen(1)\ntime.sleep(600)\n";
    let held = support::spawn_in(w.host.name(), "python3", &["-c", holder]);
    support::wait_listening(w.host.name(), 8190);
    let c = w.name("c");
    let err = w.daemon.cli_err(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "[::1]:8190:80",
        &c,
    ]);
    assert!(
        err.contains("port 8190/tcp") && err.contains("in use on the host"),
        "{err}"
    );
    assert_left_nothing(&w, &c, "8190");
    drop(held);

    // A daemon that died and came back serves the port again.
    w.daemon.restart();
    assert_eq!(who(w.host.name(), "[::1]:8180").as_deref(), Some("a"));
    assert_eq!(
        udp_ask(w.host.name(), "[::1]:8153"),
        Some("a fd00:208:9::1".to_string())
    );

    // Removing the sandbox frees the ports by the time rm returns, and
    // another sandbox may take them.
    w.daemon.cli_ok(&["sandbox", "rm", &a]);
    assert!(loopback6_free(w.host.name(), 8180), "8180 still held");
    assert!(loopback6_free(w.host.name(), 8153), "8153 still held");
    assert_eq!(who(w.host.name(), "[::1]:8180"), None);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "[::1]:8180:80",
        &b,
    ]);
    let _web_b = greeter(&b, 80, "b");
    assert_eq!(who(w.host.name(), "[::1]:8180").as_deref(), Some("b"));
}
