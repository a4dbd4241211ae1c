//! The embedded DNS server with real queries: `dig @127.0.0.11` from inside
//! sandboxes, over UDP and TCP, with dnsmasq in an "outside" namespace as the
//! upstream resolver.

use netd_tests as support;

use std::process::Command;
use std::time::Duration;

use support::{Child, Daemon, Netns, World, in_ns, uplink};

/// `dig` from inside `ns`; (status, answers in order, elapsed).
fn dig(ns: &str, args: &[&str]) -> (String, Vec<String>, Duration) {
    let d = support::dig(ns, args);
    (d.status, d.answers, d.took)
}

#[test]
fn names_aliases_rotation_ptr_scoping_and_forwarding() {
    let tag = format!("ndD{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, "10.202.9");
    let dnsmasq: Child = support::spawn_in(
        outside.name(),
        "dnsmasq",
        &[
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=10.202.9.2",
            "--address=/example.test/192.0.2.7",
            "--local-ttl=60",
            "--pid-file=",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Two upstreams, one dead (nothing listens there): asked in parallel,
    // the live one answers.
    let mut daemon = Daemon::start_with(
        &host,
        &[
            "--dns-upstream",
            "10.202.9.77",
            "--dns-upstream",
            "10.202.9.2",
        ],
    );
    let name = |s: &str| format!("{tag}-{s}");
    let (front, back) = (name("front"), name("back"));
    daemon.cli_ok(&["network", "create", "--subnet", "10.204.1.0/24", &front]);
    daemon.cli_ok(&["network", "create", "--subnet", "10.204.2.0/24", &back]);
    let (a, b, c, db) = (name("a"), name("b"), name("c"), name("db"));
    for s in [&a, &b, &c] {
        daemon.cli_ok(&[
            "sandbox",
            "create",
            "--network",
            &front,
            "--alias",
            "web",
            s,
        ]);
    }
    daemon.cli_ok(&["sandbox", "create", "--network", &back, &db]);

    // An alias with three members: all three in every answer, the first rotating.
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let (status, answers, _) = dig(&a, &["web"]);
        assert_eq!(status, "NOERROR");
        let mut sorted = answers.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["10.204.1.2", "10.204.1.3", "10.204.1.4"]);
        firsts.push(answers[0].clone());
    }
    firsts.sort();
    firsts.dedup();
    assert_eq!(
        firsts.len(),
        3,
        "successive answers must start with successive members"
    );

    // Sandbox name (any case), NAME.NETWORK over TCP, PTR, AAAA without IPv6.
    assert_eq!(dig(&a, &[&b.to_uppercase()]).1, vec!["10.204.1.3"]);
    assert_eq!(
        dig(&a, &["+tcp", &format!("{b}.{front}")]).1,
        vec!["10.204.1.3"]
    );
    assert_eq!(
        dig(&a, &["-x", "10.204.1.4"]).1,
        vec![format!("{c}.{front}.").to_lowercase()]
    );
    let (status, answers, _) = dig(&a, &["web", "AAAA"]);
    assert_eq!(
        (status.as_str(), answers.len()),
        ("NOERROR", 0),
        "AAAA of an IPv4-only name is NODATA"
    );

    // A name from another network does not resolve.
    let (status, answers, _) = dig(&a, &[&db]);
    assert!(
        answers.is_empty(),
        "{db} resolved from another network: {answers:?}"
    );
    assert_ne!(status, "NOERROR");

    // Forwarded to the upstream, despite a dead one in the list, promptly.
    let (status, answers, took) = dig(&a, &["www.example.test"]);
    assert_eq!(
        (status.as_str(), answers),
        ("NOERROR", vec!["192.0.2.7".to_string()])
    );
    assert!(
        took < Duration::from_secs(1),
        "forwarding waited on the dead upstream: {took:?}"
    );

    // Local answers never wait on upstream work: a query only the dead
    // upstream could answer is in flight while a local one is asked.
    let slow_ns = a.clone();
    let slow = std::thread::spawn(move || dig(&slow_ns, &["nothing.invalid"]));
    std::thread::sleep(Duration::from_millis(100));
    let (_, answers, took) = dig(&a, &[&b]);
    assert_eq!(answers, vec!["10.204.1.3"]);
    assert!(
        took < Duration::from_millis(500),
        "a local answer took {took:?}"
    );
    let _ = slow.join();

    // resolv.conf for the sandbox, used by `ip netns exec` and `netd sandbox exec`.
    let resolv = std::fs::read_to_string(format!("/etc/netns/{a}/resolv.conf")).unwrap();
    assert!(
        resolv.contains("nameserver 127.0.0.11") && resolv.contains("ndots:0"),
        "{resolv}"
    );
    let getent = daemon.cli_ok(&["sandbox", "exec", &a, "--", "getent", "hosts", &c]);
    assert!(getent.starts_with("10.204.1.4"), "{getent}");

    // Leaving and joining show on the next query.
    daemon.cli_ok(&["sandbox", "rm", &c]);
    let mut now = dig(&a, &["web"]).1;
    now.sort();
    assert_eq!(now, vec!["10.204.1.2", "10.204.1.3"]);
    assert!(
        !std::path::Path::new(&format!("/etc/netns/{c}")).exists(),
        "resolv.conf of a removed sandbox left"
    );
    daemon.cli_ok(&["network", "connect", "--alias", "web", &front, &db]);
    let mut now = dig(&a, &["web"]).1;
    now.sort();
    assert_eq!(
        now,
        vec!["10.204.1.2", "10.204.1.3", "10.204.1.4"],
        "the new member is not served"
    );
    // ...and db now sees front's names.
    assert_eq!(dig(&db, &[&a]).1, vec!["10.204.1.2"]);

    // Forwarded answers are cached for their TTL: with the upstream gone,
    // the name still resolves.
    drop(dnsmasq);
    let (status, answers, _) = dig(&a, &["www.example.test"]);
    assert_eq!(
        (status.as_str(), answers),
        ("NOERROR", vec!["192.0.2.7".to_string()]),
        "not served from the cache"
    );

    // Malformed packets (random bytes, truncated headers) never take the
    // server down: it still answers afterwards.
    let junk = "import os, socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                for n in list(range(0, 40)) + [512, 4000]:\n    s.sendto(os.urandom(n), ('127.0.0.11', 53))\n";
    let st = Command::new("ip")
        .args(["netns", "exec", &a, "python3", "-c", junk])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        dig(&a, &[&b]).1,
        vec!["10.204.1.3"],
        "the server died on malformed input"
    );
    // TCP limits: 16 silent connections take every TCP slot of the sandbox;
    // a 17th is closed at once, UDP keeps answering, the silent ones are
    // closed after the idle timeout (5 s), and then TCP answers again.
    let hog = format!(
        "import socket, struct, time\n\
         held = [socket.create_connection(('127.0.0.11', 53)) for _ in range(16)]\n\
         time.sleep(0.3)\n\
         extra = socket.create_connection(('127.0.0.11', 53))\n\
         extra.settimeout(2)\n\
         try:\n    print('extra', 'closed' if extra.recv(1) == b'' else 'open')\n\
         except (socket.timeout, ConnectionResetError) as e:\n    print('extra', 'closed' if isinstance(e, ConnectionResetError) else 'open')\n\
         q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in '{b}'.split('.')) + b'\\0' + struct.pack('>HH', 1, 1)\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.settimeout(2)\n\
         u.sendto(q, ('127.0.0.11', 53))\n\
         r = u.recv(512)\n\
         print('udp', r[3] & 15, struct.unpack('>H', r[6:8])[0])\n\
         t = time.time()\n\
         held[0].settimeout(15)\n\
         print('idle', 'closed' if held[0].recv(1) == b'' else 'open', round(time.time() - t))\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &a, "python3", "-c", &hog])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "extra closed", "{text}");
    assert_eq!(
        lines[1], "udp 0 1",
        "UDP must answer while TCP is full: {text}"
    );
    let idle: Vec<&str> = lines[2].split(' ').collect();
    assert_eq!(idle[1], "closed", "{text}");
    let secs: u64 = idle[2].parse().unwrap();
    assert!(
        (3..=8).contains(&secs),
        "idle close after {secs} s, want ~5: {text}"
    );
    assert_eq!(
        dig(&a, &["+tcp", &b]).1,
        vec!["10.204.1.3"],
        "TCP does not answer after the hogs are gone"
    );
    // A daemon killed and started again serves every existing sandbox
    // again, aliases and NAME.NETWORK included.
    daemon.restart();
    let mut back_up = false;
    for _ in 0..50 {
        if dig(&a, &["web"]).1.len() == 3 {
            back_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(back_up, "DNS not served again after a daemon restart");
    assert_eq!(dig(&db, &[&format!("{b}.{front}")]).1, vec!["10.204.1.3"]);
}

/// Connect from sandbox `ns` to NAME:PORT, resolved inside it (its
/// resolv.conf, so 127.0.0.11) for family 4 or 6: "ADDRESS GREETING".
fn connect_by_name(ns: &str, name: &str, family: u8, port: u16) -> String {
    let script = "import socket, sys\n\
                  fam = socket.AF_INET6 if sys.argv[2] == '6' else socket.AF_INET\n\
                  ai = socket.getaddrinfo(sys.argv[1], int(sys.argv[3]), fam, socket.SOCK_STREAM)[0]\n\
                  s = socket.socket(ai[0], ai[1])\n\
                  s.settimeout(3)\n\
                  s.connect(ai[4])\n\
                  print(ai[4][0], s.recv(100).decode().strip())\n";
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script, name])
        .arg(family.to_string())
        .arg(port.to_string())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A TCP server in namespace `ns` on `addr` (port 0: any) that greets every
/// connection with `hello` and closes it; its port. The accepting thread
/// lives as long as the test process.
fn greeter(ns: &str, addr: &str) -> u16 {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let l = in_ns(ns, move || std::net::TcpListener::bind(addr).unwrap());
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hello\n");
        }
    });
    port
}

#[test]
fn host_docker_internal_is_the_gateway_and_reachable() {
    let w = World::new("cdnx", "h");
    let (v4, dual, internal) = (w.name("v4"), w.name("ds"), w.name("in"));
    w.cli(&["network", "create", "--subnet", "10.214.1.0/24", &v4]);
    w.dual_network(&dual, "10.214.2.0/24", "fd00:214:2::/64", &[]);
    w.cli(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.214.3.0/24",
        &internal,
    ]);
    let (a, b, c) = (w.name("a"), w.name("b"), w.name("c"));
    w.cli(&["sandbox", "create", "--network", &v4, &a]);
    w.cli(&["sandbox", "create", "--network", &dual, &b]);
    w.cli(&["sandbox", "create", "--network", &internal, &c]);

    // Each sandbox gets the host side of its own network: the gateway, of
    // both families on a dual-stack network (NODATA for AAAA on IPv4 only).
    for name in ["host.docker.internal", "HOST.Containers.Internal."] {
        let ask = |ns: &str, ty: &str| {
            let (status, answers, _) = dig(ns, &[name, ty]);
            (status, answers)
        };
        let ok = |v: &[&str]| {
            (
                "NOERROR".to_string(),
                v.iter().map(|s| s.to_string()).collect(),
            )
        };
        assert_eq!(ask(&a, "A"), ok(&["10.214.1.1"]), "{name}");
        assert_eq!(ask(&a, "AAAA"), ok(&[]), "{name}");
        assert_eq!(ask(&b, "A"), ok(&["10.214.2.1"]), "{name}");
        assert_eq!(ask(&b, "AAAA"), ok(&["fd00:214:2::1"]), "{name}");
        // Nothing on an internal network is meant to reach the host.
        assert_eq!(ask(&c, "A").0, "NXDOMAIN", "{name}");
    }

    // Reachable: a server in the test's host namespace (on the wildcard
    // address; netd drops traffic from a bridge to the host's loopback)
    // answers a connect to host.docker.internal:PORT, resolved in the
    // sandbox by its own resolver.
    let port4 = greeter(w.host.name(), "0.0.0.0:0");
    let port6 = greeter(w.host.name(), "[::]:0");
    assert_eq!(
        connect_by_name(&a, "host.docker.internal", 4, port4),
        "10.214.1.1 hello"
    );
    assert_eq!(
        connect_by_name(&b, "host.containers.internal", 4, port4),
        "10.214.2.1 hello"
    );
    assert_eq!(
        connect_by_name(&b, "host.docker.internal", 6, port6),
        "fd00:214:2::1 hello"
    );
}

/// A fake upstream resolver on 127.0.0.1 in namespace `ns`, UDP and TCP on
/// one port: over UDP it answers every question truncated (TC, no records),
/// over TCP with `n` A records (192.0.2.1...). Its port, and how many TCP
/// questions it got. Its threads live as long as the test process.
fn truncating_upstream(ns: &str, n: u8) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering::Relaxed;

    fn reply(query: &[u8], full: Option<u8>) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        let mut m = Message::query();
        m.metadata.id = q.metadata.id;
        m.metadata.message_type = MessageType::Response;
        m.queries = q.queries.clone();
        match full {
            Some(n) => {
                let name = q.queries.first()?.name().clone();
                m.answers = (1..=n)
                    .map(|i| Record::from_rdata(name.clone(), 60, RData::A(A::new(192, 0, 2, i))))
                    .collect();
            }
            None => m.metadata.truncation = true,
        }
        m.to_vec().ok()
    }

    let (udp, tcp) = in_ns(ns, || {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind(udp.local_addr().unwrap()).unwrap();
        (udp, tcp)
    });
    let port = udp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, peer)) = udp.recv_from(&mut buf) {
            if let Some(r) = reply(&buf[..len], None) {
                let _ = udp.send_to(&r, peer);
            }
        }
    });
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = asked.clone();
    std::thread::spawn(move || {
        for mut c in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            counted.fetch_add(1, Relaxed);
            if let Some(r) = reply(&q, Some(n)) {
                let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&r);
                let _ = c.write_all(&framed);
            }
        }
    });
    (port, asked)
}

#[test]
fn truncated_upstream_answer_is_fetched_over_tcp() {
    use std::sync::atomic::Ordering::Relaxed;
    let tag = format!("cdnx{}t", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    // 60 A records: about 1 KB, more than a 512-byte UDP answer holds.
    let (port, asked_tcp) = truncating_upstream(host.name(), 60);
    let upstream = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(&host, &["--dns-upstream", &upstream]);
    let (net, a) = (format!("{tag}-n"), format!("{tag}-a"));
    daemon.cli_ok(&["network", "create", "--subnet", "10.214.9.0/24", &net]);
    daemon.cli_ok(&["sandbox", "create", "--network", &net, &a]);

    let want: Vec<String> = (1..=60).map(|i| format!("192.0.2.{i}")).collect();
    for args in [&["big.example.test"][..], &["+tcp", "big.example.test"]] {
        let (status, mut answers, _) = dig(&a, args);
        answers.sort_by_key(|a| a.parse::<std::net::Ipv4Addr>().ok());
        assert_eq!(status, "NOERROR", "{args:?}");
        assert_eq!(answers, want, "{args:?}: not the whole answer");
    }
    assert!(
        asked_tcp.load(Relaxed) >= 1,
        "the upstream was never asked over TCP"
    );
}

/// Per-network upstreams (`network create --dns`, as podman) and a
/// sandbox's own (`sandbox create --dns --dns-search --dns-option`, as
/// `docker run`): three dnsmasq in the test's host namespace, each the only
/// one that knows its name; 127.0.0.11 asks the right one for each sandbox,
/// and the sandbox's resolv.conf has its search list and options.
#[test]
fn network_and_sandbox_upstreams_answer_names_only_they_know() {
    let tag = format!("ndu{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let known = [
        ("127.0.1.1", "daemon.test", "192.0.2.1"),
        ("127.0.1.2", "network.test", "192.0.2.2"),
        ("127.0.1.3", "sandbox.test", "192.0.2.3"),
    ];
    let _servers: Vec<Child> = known
        .iter()
        .map(|(ip, name, a)| {
            support::spawn_in(
                host.name(),
                "dnsmasq",
                &[
                    "--no-daemon",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    &format!("--listen-address={ip}"),
                    &format!("--address=/{name}/{a}"),
                    "--pid-file=",
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let daemon = Daemon::start_with(&host, &["--dns-upstream", "127.0.1.1"]);
    let name = |s: &str| format!("{tag}-{s}");
    let (plain, own_net) = (name("plain"), name("ownnet"));
    daemon.cli_ok(&["network", "create", "--subnet", "10.214.11.0/24", &plain]);
    daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.214.12.0/24",
        "--dns",
        "127.0.1.2",
        &own_net,
    ]);
    let (p, n, o) = (name("p"), name("n"), name("o"));
    daemon.cli_ok(&["sandbox", "create", "--network", &plain, &p]);
    daemon.cli_ok(&["sandbox", "create", "--network", &own_net, &n]);
    daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &own_net,
        "--dns",
        "127.0.1.3",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:2",
        "--dns-option",
        "edns0",
        &o,
    ]);
    // Each sandbox's upstream, and only it, knows its name.
    for (from, answered) in [(&p, 0), (&n, 1), (&o, 2)] {
        for (i, (_, qname, a)) in known.iter().enumerate() {
            let got = dig(from, &[qname]).1;
            if i == answered {
                assert_eq!(got, [*a], "{qname} from {from}");
            } else {
                assert!(got.is_empty(), "{qname} from {from}: {got:?}");
            }
        }
    }
    // Local names do not depend on upstreams.
    assert_eq!(dig(&o, &[&n]).1, ["10.214.12.2"]);
    let conf = support::run_ok("ip", &["netns", "exec", &o, "cat", "/etc/resolv.conf"]);
    assert!(
        conf.contains("nameserver 127.0.0.11\n")
            && conf.contains("search corp.example\n")
            && conf.contains("options ndots:2 edns0\n"),
        "{conf}"
    );
    let inspect = daemon.cli_ok(&["network", "inspect", &own_net]);
    assert!(inspect.contains("127.0.1.2"), "{inspect}");
    let inspect = daemon.cli_ok(&["sandbox", "inspect", &o]);
    assert!(inspect.contains("corp.example"), "{inspect}");

    // Bad values: refused naming the value, nothing made.
    for (args, names) in [
        (
            vec!["network", "create", "--dns", "300.1.1.1", &name("bad1")],
            "300.1.1.1",
        ),
        (
            vec![
                "network",
                "create",
                "--internal",
                "--dns",
                "10.0.0.53",
                &name("bad2"),
            ],
            "internal",
        ),
        (
            vec![
                "sandbox",
                "create",
                "--network",
                &plain,
                "--dns-option",
                "bogus",
                &name("bad3"),
            ],
            "bogus",
        ),
        (
            vec![
                "sandbox",
                "create",
                "--network",
                "none",
                "--dns",
                "10.0.0.53",
                &name("bad4"),
            ],
            "bridge or overlay",
        ),
    ] {
        let out = daemon.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(names),
            "{args:?}: {err}"
        );
    }
    let ls = daemon.cli_ok(&["network", "ls"]) + &daemon.cli_ok(&["sandbox", "ls"]);
    assert!(
        !ls.contains(&name("bad")),
        "a refused create left something: {ls}"
    );
}
