//! IPv6-only bridge networks (`--ipv4=false`, Docker 27's) with real
//! traffic: sandboxes with no IPv4 at all that talk, resolve, leave over
//! NAT66 and are reached through a published port, from an outside
//! namespace that has no route back to the container subnet.

use netd_tests as support;

use support::{Child, Netns, World, dig, ping6, run_ok, uplink6};

/// A TCP server on [::] in `ns` that greets each client with `greeting`.
fn greeter(ns: &str, port: u16, greeting: &str) -> Child {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('::', {port})); s.listen(16)\n\
         while True:\n    c,a=s.accept(); c.sendall(('{greeting} '+a[0]).encode()); c.close()\n"
    );
    let child = support::spawn_in(ns, "python3", &["-c", &script]);
    support::wait_listening(ns, port);
    child
}

#[test]
fn ipv6_only_sandboxes_talk_resolve_leave_and_are_reached_over_ipv6_alone() {
    let w = World::new("nd6o", "e2e");
    let outside = Netns::new(&format!("{}-out", w.tag));
    let p6 = "2001:db8:209:1";
    uplink6(&w.host, &outside, "10.209.1", p6);
    w.host.run_ok(
        "ip",
        &["-6", "route", "add", "default", "via", &format!("{p6}::2")],
    );
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.cli(&[
        "network",
        "create",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        "fd00:209:1::/64",
        &net,
    ]);
    w.cli(&["sandbox", "create", "--network", &net, "-p", "8090:80", &a]);
    w.cli(&["sandbox", "create", "--network", &net, "--alias", "web", &b]);

    // No IPv4 anywhere: not on the bridge, not in the sandbox, no IPv4
    // default route; IPv6 usable at once.
    let ins = w.daemon.cli_json(&["network", "inspect", &net]);
    let drv = &ins[0]["driver"];
    assert!(
        drv.get("subnet").is_none() && drv.get("gateway").is_none(),
        "{drv}"
    );
    let bridge = drv["bridge"].as_str().unwrap().to_string();
    let v4 =
        |ns: &str, dev: &str| run_ok("ip", &["-n", ns, "-4", "-o", "addr", "show", "dev", dev]);
    assert_eq!(v4(w.host.name(), &bridge).trim(), "", "IPv4 on the bridge");
    assert_eq!(v4(&a, "eth0").trim(), "", "IPv4 in the sandbox");
    assert_eq!(run_ok("ip", &["-n", &a, "-4", "route"]).trim(), "");
    assert_eq!(
        support::addrs6(&a, "eth0"),
        vec!["fd00:209:1::2/64".to_string()]
    );
    assert_eq!(
        support::default_gateway6(&a).as_deref(),
        Some("fd00:209:1::1")
    );
    assert!(ping6(&a, "fd00:209:1::3"), "ping6 a -> b");

    // Names and the alias answer AAAA; A is an empty NOERROR (the name
    // exists), not NXDOMAIN.
    let aaaa = dig(&a, &["AAAA", &b]);
    assert_eq!(
        aaaa.answers,
        vec!["fd00:209:1::3".to_string()],
        "{}",
        aaaa.text
    );
    let alias = dig(&a, &["AAAA", "web"]);
    assert_eq!(
        alias.answers,
        vec!["fd00:209:1::3".to_string()],
        "{}",
        alias.text
    );
    let a_rec = dig(&a, &["A", &b]);
    assert_eq!(a_rec.status, "NOERROR", "{}", a_rec.text);
    assert!(a_rec.answers.is_empty(), "{}", a_rec.text);
    let ptr = dig(&a, &["-x", "fd00:209:1::3"]);
    assert!(
        ptr.answers.iter().any(|n| n.starts_with(&format!("{b}."))),
        "{}",
        ptr.text
    );

    // Egress over NAT66: the outside sees the host's address.
    let _out = greeter(outside.name(), 9999, "outside");
    assert_eq!(
        support::tcp_read(&a, &format!("[{p6}::2]:9999")),
        Some(format!("outside {p6}::1")),
        "NAT66 egress"
    );
    // -p 8090:80 is published on IPv6 only: reached from outside.
    let _web = greeter(&a, 80, "a");
    let got = support::tcp_read(outside.name(), &format!("[{p6}::1]:8090"));
    assert_eq!(got, Some(format!("a {p6}::2")), "published port over IPv6");

    // IPv4 asks are refused naming the value; nothing changed.
    let before = w.snapshot();
    let c = w.name("c");
    for args in [
        vec![
            "sandbox",
            "create",
            "--network",
            &net,
            "--ip",
            "10.209.9.5",
            &c,
        ],
        vec![
            "sandbox",
            "create",
            "--network",
            &net,
            "-p",
            "127.0.0.1:8091:80",
            &c,
        ],
    ] {
        let e = w.daemon.cli_err(&args);
        assert!(e.contains("IPv6-only"), "{e}");
    }
    let e = w
        .daemon
        .cli_err(&["network", "create", "--ipv4=false", &w.name("n2")]);
    assert!(e.contains("--ipv6"), "{e}");
    assert_eq!(w.snapshot(), before);
}
