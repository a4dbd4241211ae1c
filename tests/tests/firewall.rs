//! The nftables datapath with real traffic: a host namespace running the
//! daemon, an "outside" namespace joined to it by a veth (it has no route to
//! the container subnets, so any reply from a container proves masquerade),
//! and sandboxes as containers.

use std::process::Command;
use std::time::{Duration, Instant};

use netd_tests as support;
use support::{Child, Daemon, Netns, ping, uplink};

struct World {
    host: Netns,
    outside: Netns,
    daemon: Daemon,
    tag: String,
}

/// Host 10.202.<n>.1/24 on the uplink, outside .2; the host's default route
/// points at the outside namespace, like a real machine's.
fn world(tag: &str, n: u8) -> World {
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, &format!("10.202.{n}"));
    host.run_ok(
        "ip",
        &["route", "add", "default", "via", &format!("10.202.{n}.2")],
    );
    let daemon = Daemon::start(&host);
    World {
        host,
        outside,
        daemon,
        tag: tag.to_string(),
    }
}

impl World {
    fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.tag)
    }

    /// A Python HTTP server in a sandbox that answers with the sandbox's name.
    fn http_server(&self, sandbox: &str, port: u16) -> Child {
        let script = format!(
            "import http.server\n\
             class H(http.server.BaseHTTPRequestHandler):\n\
             \x20   def do_GET(self):\n\
             \x20       b=b'{sandbox}'\n\
             \x20       self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)\n\
             \x20   def log_message(self, *a): pass\n\
             http.server.HTTPServer(('0.0.0.0', {port}), H).serve_forever()\n"
        );
        let child = support::spawn_in(sandbox, "python3", &["-c", &script]);
        support::wait_listening(sandbox, port);
        child
    }
}

/// GET from inside `ns`; the body, or None when nothing answered.
fn curl(ns: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-m", "2", url])
        .output()
        .expect("run curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Send one UDP datagram from `ns` and wait for the echo.
fn udp_echo(ns: &str, ip: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(2)\n\
         s.sendto(b'ping', ('{ip}', {port}))\nprint(s.recvfrom(100)[0].decode())\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn udp_echo_server(sandbox: &str, ports: &[u16]) -> Child {
    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    let script = format!(
        "import socket, selectors\nsel=selectors.DefaultSelector()\n\
         for p in [{}]:\n    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', p)); sel.register(s, selectors.EVENT_READ)\n\
         while True:\n    for k,_ in sel.select():\n        d,a=k.fileobj.recvfrom(100); k.fileobj.sendto(b'{sandbox}:'+str(k.fileobj.getsockname()[1]).encode(), a)\n",
        list.join(",")
    );
    let child = support::spawn_in(sandbox, "python3", &["-c", &script]);
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[test]
fn masquerade_publishing_hairpin_and_self_healing() {
    let w = world(&format!("ndF{}m", std::process::id()), 1);
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.1.0/24", &net]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8081:80",
        "-p",
        "9000-9001:7000-7001/udp",
        "-p",
        "80",
        &a,
    ]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &b]);
    let _web = w.http_server(&a, 80);
    let _udp = udp_echo_server(&a, &[7000, 7001]);

    // Egress: the outside namespace has no route back to 10.203.1.0/24.
    assert!(ping(&a, "10.202.1.2"), "egress through masquerade");

    // The published port from outside, from the host (loopback and its own
    // address), and from containers through the host's address.
    assert_eq!(
        curl(w.outside.name(), "http://10.202.1.1:8080/").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        curl(w.host.name(), "http://127.0.0.1:8080/").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        curl(w.host.name(), "http://10.202.1.1:8080/").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        curl(&b, "http://10.202.1.1:8080/").as_deref(),
        Some(a.as_str()),
        "hairpin from a neighbour"
    );
    assert_eq!(
        curl(&a, "http://10.202.1.1:8080/").as_deref(),
        Some(a.as_str()),
        "hairpin to itself"
    );
    // Published on 127.0.0.1 only: loopback answers, the uplink address does not.
    assert_eq!(
        curl(w.host.name(), "http://127.0.0.1:8081/").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(curl(w.outside.name(), "http://10.202.1.1:8081/"), None);

    // A UDP range, port by port.
    assert_eq!(
        udp_echo(w.outside.name(), "10.202.1.1", 9000).as_deref(),
        Some(format!("{a}:7000").as_str())
    );
    assert_eq!(
        udp_echo(w.outside.name(), "10.202.1.1", 9001).as_deref(),
        Some(format!("{a}:7001").as_str())
    );

    // A machine that routes to the container subnet reaches published
    // ports only: a new connection straight to a container is dropped.
    w.outside.run_ok(
        "ip",
        &["route", "add", "10.203.1.0/24", "via", "10.202.1.1"],
    );
    assert_eq!(
        curl(w.outside.name(), "http://10.203.1.2:80/"),
        None,
        "an unpublished container port answered a routed outside machine"
    );
    assert_eq!(
        curl(w.outside.name(), "http://10.202.1.1:8080/").as_deref(),
        Some(a.as_str())
    );
    assert!(ping(&a, "10.202.1.2"), "egress with a route back");
    w.outside.run_ok(
        "ip",
        &["route", "del", "10.203.1.0/24", "via", "10.202.1.1"],
    );

    // The random host port is reported by inspect and answers.
    let info = w.daemon.cli_json(&["sandbox", "inspect", &a]);
    let ports = &info[0]["endpoints"][0]["ports"];
    let random = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["container_port"]["start"] == 80
                && p["host_ip"].is_null()
                && p["host_port"]["start"] != 8080
        })
        .expect("the -p 80 mapping");
    let rp = random["host_port"]["start"].as_u64().unwrap();
    assert!(
        (49153..=65535).contains(&rp),
        "random port {rp} outside the ephemeral range"
    );
    assert_eq!(
        curl(w.outside.name(), &format!("http://10.202.1.1:{rp}/")).as_deref(),
        Some(a.as_str())
    );

    // The kernel holds exactly the elements: one per port of the range.
    let table = w
        .host
        .output_ok("nft", &["list", "map", "inet", "netd", "pub_any"]);
    assert!(table.contains("udp . 9001 : 10.203.1.2 . 7001"), "{table}");
    assert!(table.contains("tcp . 8080 : 10.203.1.2 . 80"), "{table}");

    // Another tool wipes the firewall: the daemon restores it within a second.
    w.host.run_ok("nft", &["flush", "ruleset"]);
    let start = Instant::now();
    let mut back = false;
    while start.elapsed() < Duration::from_secs(1) {
        if curl(w.outside.name(), "http://10.202.1.1:8080/").as_deref() == Some(a.as_str()) {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        back,
        "published port not restored within a second of `nft flush ruleset`"
    );

    // Publishing a port that is taken names the holder and changes nothing.
    let c = w.name("c");
    let err = w
        .daemon
        .cli_err(&["sandbox", "create", "--network", &net, "-p", "8080:80", &c]);
    assert!(err.contains(&a), "error should name the holder: {err}");
    assert!(!Netns::exists(&c), "a refused sandbox leaves no namespace");

    // Removing everything removes every trace from the kernel.
    w.daemon.cli_ok(&["sandbox", "rm", &a, &b]);
    w.daemon.cli_ok(&["network", "rm", &net]);
    let rules = w.host.output_ok("nft", &["list", "ruleset"]);
    assert!(
        !rules.contains("10.203.1."),
        "stale rules or elements left:\n{rules}"
    );
    assert_eq!(curl(w.outside.name(), "http://10.202.1.1:8080/"), None);
}

#[test]
fn isolation_internal_and_icc() {
    let w = world(&format!("ndF{}i", std::process::id()), 2);
    let (n1, n2, int, quiet) = (w.name("n1"), w.name("n2"), w.name("int"), w.name("quiet"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.2.0/24", &n1]);
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.3.0/24", &n2]);
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.203.4.0/24",
        &int,
    ]);
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.203.5.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        &quiet,
    ]);
    let (a, b, i1, i2, q1, q2) = (
        w.name("a"),
        w.name("b"),
        w.name("i1"),
        w.name("i2"),
        w.name("q1"),
        w.name("q2"),
    );
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &n1, "-p", "8090:80", &a]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &n2, &b]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &int, &i1]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &int, &i2]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &quiet, &q1]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &quiet, &q2]);
    let _web = w.http_server(&a, 80);

    // Different bridge networks cannot reach each other...
    assert!(ping(&b, "10.203.3.1"), "own gateway reachable");
    assert!(!ping(&b, "10.203.2.2"), "n2 reached n1 directly");
    assert!(!ping(&a, "10.203.3.2"), "n1 reached n2 directly");
    // ...but a published port through the host stays reachable.
    assert_eq!(
        curl(&b, "http://10.202.2.1:8090/").as_deref(),
        Some(a.as_str())
    );

    // Internal: neighbours yes, the outside no (no route, and forwarding dropped).
    assert!(ping(&i1, "10.203.4.3"), "internal neighbours talk");
    assert!(
        !ping(&i1, "10.202.2.2"),
        "internal network reached the outside"
    );
    let routes = w
        .host
        .output_ok("ip", &["netns", "exec", &i1, "ip", "-j", "route"]);
    assert!(
        !routes.contains("default"),
        "internal sandbox got a default route: {routes}"
    );
    assert!(
        !ping(&a, "10.203.4.2"),
        "another network reached the internal one"
    );
    // Not even through another network's published port at the internal
    // network's own gateway (a host address).
    assert_eq!(
        curl(&i1, "http://10.203.4.1:8090/"),
        None,
        "internal network reached a published port"
    );
    // Publishing on an internal network is refused and leaves nothing.
    let i3 = w.name("i3");
    let err = w
        .daemon
        .cli_err(&["sandbox", "create", "--network", &int, "-p", "8091:80", &i3]);
    assert!(err.contains("internal"), "{err}");
    assert!(
        !support::Netns::exists(&i3),
        "a refused sandbox left its namespace"
    );
    let ls = w.daemon.cli_ok(&["sandbox", "ls"]);
    assert!(!ls.contains(&i3), "a refused sandbox is listed: {ls}");

    // ICC off: same-network traffic dropped, the gateway (host) still answers.
    assert!(!ping(&q1, "10.203.5.3"), "ICC off but neighbours talk");
    assert!(
        ping(&q1, "10.203.5.1"),
        "ICC off must not cut the sandbox from the host"
    );
    assert!(ping(&q1, "10.202.2.2"), "ICC off must not cut egress");
}

/// A TCP service in `ns` on ADDR:PORT that greets every connection with
/// `greeting` (a host-only service when ADDR is 127.0.0.1).
fn greeter(ns: &str, addr: &str, port: u16, greeting: &str) -> Child {
    let script = format!(
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(16)\n\
         while True:\n    c,_=s.accept(); c.sendall(b'{greeting}'); c.close()\n"
    );
    let child = support::spawn_in(ns, "python3", &["-c", &script]);
    support::wait_listening(ns, port);
    child
}

/// Connect from `ns` to ADDR:PORT over TCP; the greeting read, or None
/// when nothing answered.
fn tcp_greeting(ns: &str, addr: &str) -> Option<String> {
    support::tcp_read(ns, addr)
}

/// Make `sandbox` send what it addresses to 127.0.0.1 to its gateway, the
/// way a container with CAP_NET_ADMIN (or a crafted frame with CAP_NET_RAW)
/// can: take 127.0.0.1 off its own `lo` (or the answer from 127.0.0.1 is a
/// martian), route 127.0.0.1 via the gateway.
fn route_loopback_via_gateway(sandbox: &str, gateway: &str) {
    let ip = |args: &[&str]| {
        let mut full = vec!["netns", "exec", sandbox];
        full.extend_from_slice(args);
        support::run_ok("ip", &full);
    };
    ip(&["ip", "-4", "addr", "flush", "dev", "lo"]);
    ip(&["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"]);
    ip(&[
        "ip",
        "route",
        "add",
        "127.0.0.1/32",
        "via",
        gateway,
        "dev",
        "eth0",
    ]);
}

/// CVE-2020-8558: `route_localnet` is on for every bridge (localhost
/// publishing needs it), so a sandbox that sends to 127.0.0.1 through its
/// gateway used to reach the host's loopback-only services, from an
/// internal network too. Localhost publishing must keep working.
#[test]
fn sandboxes_do_not_reach_host_loopback_services() {
    let w = world(&format!("fw{}l", std::process::id()), 11);
    let (net, int, a, i) = (w.name("net"), w.name("int"), w.name("a"), w.name("i"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.11.0/24", &net]);
    w.daemon.cli_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.203.12.0/24",
        &int,
    ]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "127.0.0.1:8082:80",
        &a,
    ]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &int, &i]);
    let _secret = greeter(w.host.name(), "127.0.0.1", 7070, "host-only");
    assert_eq!(
        tcp_greeting(w.host.name(), "127.0.0.1:7070").as_deref(),
        Some("host-only"),
        "the host-only service answers the host"
    );
    route_loopback_via_gateway(&a, "10.203.11.1");
    route_loopback_via_gateway(&i, "10.203.12.1");
    assert_eq!(
        tcp_greeting(&a, "127.0.0.1:7070"),
        None,
        "a sandbox reached a service bound to the host's 127.0.0.1"
    );
    assert_eq!(
        tcp_greeting(&i, "127.0.0.1:7070"),
        None,
        "an internal sandbox reached a service bound to the host's 127.0.0.1"
    );
    let counters = w
        .host
        .output_ok("nft", &["list", "chain", "inet", "netd", "localnet"]);
    assert!(counters.contains("ip daddr 127.0.0.0/8"), "{counters}");

    // Localhost publishing still works, from the host itself.
    let _web = w.http_server(&a, 80);
    assert_eq!(
        curl(w.host.name(), "http://127.0.0.1:8082/").as_deref(),
        Some(a.as_str())
    );
}

/// Publish 20,000 ports (four 5,000-port ranges: one range alone is more
/// than one nftnl batch page), wipe the firewall, and check the daemon
/// rebuilds the whole table and the ports answer.
#[test]
fn twenty_thousand_published_ports_survive_a_flush() {
    let w = world(&format!("fw{}p", std::process::id()), 12);
    let net = w.name("net");
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.13.0/24", &net]);
    let sandboxes: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| w.name(s)).collect();
    for (k, sb) in sandboxes.iter().enumerate() {
        let start = 10_000 + 5_000 * k;
        let spec = format!("{start}-{}:80-5079", start + 4_999);
        w.daemon
            .cli_ok(&["sandbox", "create", "--network", &net, "-p", &spec, sb]);
    }
    let count = |w: &World| -> usize {
        let out = w
            .host
            .output("nft", &["-j", "list", "map", "inet", "netd", "pub_any"]);
        if !out.status.success() {
            return 0;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft -j output");
        v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|o| o["map"]["elem"].as_array()))
            .map_or(0, |e| e.len())
    };
    assert_eq!(count(&w), 20_000, "every port is an element");
    let _web_a = w.http_server(&sandboxes[0], 80);
    let _web_d = w.http_server(&sandboxes[3], 80);

    w.host.run_ok("nft", &["flush", "ruleset"]);
    let start = Instant::now();
    while count(&w) != 20_000 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&w), 20_000, "the table came back complete");
    assert_eq!(
        curl(w.outside.name(), "http://10.202.12.1:10000/").as_deref(),
        Some(sandboxes[0].as_str())
    );
    assert_eq!(
        curl(w.outside.name(), "http://10.202.12.1:25000/").as_deref(),
        Some(sandboxes[3].as_str())
    );
    let log = w.daemon.log();
    assert!(!log.contains("Invalid argument"), "{log}");
    // The rebuild's own notifications (one per element) must not overrun
    // the watcher and pass for another outside change: one flush, one
    // rebuild (two at most, should the flush's notifications straddle
    // the debounce), not a chain of them.
    let restores = |w: &World| w.daemon.log().matches("restored table inet netd").count();
    std::thread::sleep(Duration::from_secs(2));
    let settled = restores(&w);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restores(&w), settled, "the daemon keeps rebuilding");
    assert!(
        (1..=2).contains(&settled),
        "{settled} rebuilds after one flush:\n{}",
        w.daemon.log()
    );
}

/// A refused sandbox left nothing: no namespace, no record, no element.
fn assert_left_nothing(w: &World, sandbox: &str, port: &str) {
    assert!(
        !Netns::exists(sandbox),
        "a refused sandbox left its namespace"
    );
    let ls = w.daemon.cli_ok(&["sandbox", "ls"]);
    assert!(!ls.contains(sandbox), "a refused sandbox is listed: {ls}");
    let table = w.host.output_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(
        !table.contains(&format!(". {port} :")),
        "a refused port is in the table:\n{table}"
    );
}

/// Publishing on an address that is not the host's would hijack that
/// address: the host's and the containers' connections to the real owner
/// landed in the sandbox. Such a mapping is refused, and one whose address
/// goes away later stops capturing anything.
#[test]
fn publishing_on_a_foreign_address_is_refused_and_never_hijacks() {
    let w = world(&format!("fw{}f", std::process::id()), 14);
    let (net, a, b) = (w.name("net"), w.name("a"), w.name("b"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.15.0/24", &net]);
    // The real 198.51.100.2 is another machine, behind the host's default
    // route, with a service on 7777.
    w.outside
        .run_ok("ip", &["addr", "add", "198.51.100.2/32", "dev", "lo"]);
    let _real = greeter(w.outside.name(), "198.51.100.2", 7777, "real-owner");
    assert_eq!(
        tcp_greeting(w.host.name(), "198.51.100.2:7777").as_deref(),
        Some("real-owner")
    );

    // Refused through the CLI and the API, naming the address.
    let err = w.daemon.cli_err(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "198.51.100.2:7777:80",
        &a,
    ]);
    assert!(
        err.contains("198.51.100.2") && err.contains("not an address of this host"),
        "{err}"
    );
    assert_left_nothing(&w, &a, "7777");
    let body = format!(
        r#"{{"name":"{a}","network":"{net}","endpoint":{{"ports":[{{"host_ip":"198.51.100.2","host_port":{{"start":7777,"end":7777}},"container_port":{{"start":80,"end":80}},"proto":"udp"}}]}}}}"#
    );
    let (code, text) = w.daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("198.51.100.2") && text.contains("not an address of this host"),
        "{text}"
    );
    assert_left_nothing(&w, &a, "7777");

    // An address the host had when the port was published, and lost.
    w.host
        .run_ok("ip", &["addr", "add", "198.51.100.2/32", "dev", "lo"]);
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "198.51.100.2:7777:80",
        &a,
    ]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &net, &b]);
    let _sandbox = greeter(&a, "0.0.0.0", 80, "sandbox");
    assert_eq!(
        tcp_greeting(w.host.name(), "198.51.100.2:7777").as_deref(),
        Some("sandbox"),
        "published while the address was the host's"
    );
    w.host
        .run_ok("ip", &["addr", "del", "198.51.100.2/32", "dev", "lo"]);
    assert_eq!(
        tcp_greeting(w.host.name(), "198.51.100.2:7777").as_deref(),
        Some("real-owner"),
        "the host's connection to the real address was captured"
    );
    assert_eq!(
        tcp_greeting(&b, "198.51.100.2:7777").as_deref(),
        Some("real-owner"),
        "a container's connection to the real address was captured"
    );
}

/// `-p 2222:80` while a host service listens on 2222 used to take the
/// port over silently. Refused, naming the port, for TCP and UDP, on the
/// given address or any; a listener on another address does not count.
#[test]
fn publishing_a_port_a_host_socket_holds_is_refused() {
    let w = world(&format!("fw{}h", std::process::id()), 15);
    let (net, a) = (w.name("net"), w.name("a"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.203.16.0/24", &net]);
    let _any = greeter(w.host.name(), "0.0.0.0", 2222, "host-any");
    let _lo = greeter(w.host.name(), "127.0.0.1", 2223, "host-lo");
    let udp = "import socket, time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', 5300))\ntime.sleep(600)\n";
    let _udp = support::spawn_in(w.host.name(), "python3", &["-c", udp]);
    let start = Instant::now();
    while !w.host.output_ok("ss", &["-Hunl"]).contains(":5300 ") {
        assert!(start.elapsed() < Duration::from_secs(10), "udp listener");
        std::thread::sleep(Duration::from_millis(50));
    }

    for (spec, named) in [
        ("2222:80", "port 2222/tcp"),
        ("10.202.15.1:2222:80", "port 2222/tcp"),
        ("2223:80", "port 2223/tcp"),
        ("127.0.0.1:2223:80", "port 2223/tcp"),
        ("5300:53/udp", "port 5300/udp"),
        ("5299-5301:53-55/udp", "port 5300/udp"),
    ] {
        let err = w
            .daemon
            .cli_err(&["sandbox", "create", "--network", &net, "-p", spec, &a]);
        assert!(
            err.contains(named) && err.contains("in use on the host"),
            "{spec}: {err}"
        );
        assert_left_nothing(&w, &a, &named[5..9]);
    }
    let body = format!(
        r#"{{"name":"{a}","network":"{net}","endpoint":{{"ports":[{{"host_ip":null,"host_port":{{"start":2222,"end":2222}},"container_port":{{"start":80,"end":80}},"proto":"tcp"}}]}}}}"#
    );
    let (code, text) = w.daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("port 2222/tcp is already in use"), "{text}");
    assert_left_nothing(&w, &a, "2222");
    // The host service still answers on its port.
    assert_eq!(
        tcp_greeting(w.outside.name(), "10.202.15.1:2222").as_deref(),
        Some("host-any")
    );

    // Another protocol, or another address than the listener's: free.
    w.daemon.cli_ok(&[
        "sandbox",
        "create",
        "--network",
        &net,
        "-p",
        "2222:80/udp",
        "-p",
        "10.202.15.1:2223:80",
        &a,
    ]);
    let _web = w.http_server(&a, 80);
    assert_eq!(
        curl(w.outside.name(), "http://10.202.15.1:2223/").as_deref(),
        Some(a.as_str())
    );
}
