//! Overlay networks across three hosts (issue 13): host namespaces on an
//! underlay bridge, an etcd on the underlay, one daemon per host joined to
//! it (`tests/src/cluster.rs`), real traffic between sandboxes of different
//! hosts, real DNS queries, and the faults: a host killed, etcd away.

use netd_tests as support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, ETCD_IP, Etcd, OUTSIDE_IP, TTL, UNDERLAY};
use support::{Child, dig, ping, ping6, run_ok, spawn_in, tcp_read, wait_listening, wait_until};

/// How long a sandbox made on one host may take to reach the others' DNS
/// and forwarding entries (the watch pushes it; this is patience for a
/// loaded machine, not a target).
const PROPAGATION: Duration = Duration::from_secs(3);

/// The addresses `dig NAME` answers from sandbox `ns`, sorted.
fn resolve(ns: &str, name: &str) -> Vec<String> {
    let mut a = dig(ns, &[name]).answers;
    a.sort();
    a
}

/// Wait until `dig NAME` from `ns` answers exactly `want` (any order); a
/// failure shows the cluster's state.
fn wait_resolves(c: &Cluster, ns: &str, name: &str, want: &[&str], within: Duration) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut got = Vec::new();
    let mut last = String::new();
    let ok = wait_until(within, || {
        let d = dig(ns, &[name]);
        last = format!("{} in {:?}", d.status, d.took);
        got = d.answers;
        got.sort();
        got == want
    });
    if !ok {
        let sockets = run_ok("ip", &["netns", "exec", ns, "ss", "-lnup"]);
        let addrs = run_ok("ip", &["-n", ns, "addr"]);
        panic!(
            "{name} from {ns}: {got:?} ({last}), want {want:?}\n{sockets}\n{addrs}\n{}",
            c.state()
        );
    }
}

/// One ping with the Don't Fragment bit and `size` bytes of payload.
fn ping_df(ns: &str, ip: &str, size: usize) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-M", "do", "-c", "1", "-W", "2",
        ])
        .args(["-s", &size.to_string(), ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `ip -d -j link show DEV` in `ns`: the link's object.
fn link_details(ns: &str, dev: &str) -> serde_json::Value {
    let out = run_ok("ip", &["-n", ns, "-d", "-j", "link", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0].clone()
}

/// The VXLAN device's permanent neighbour entries on host namespace `ns`
/// (remote endpoints' addresses) and its forwarding entries' MACs.
fn vxlan_entries(ns: &str, dev: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let neigh = run_ok("ip", &["-n", ns, "-j", "neigh", "show", "dev", dev]);
    let neigh: serde_json::Value = serde_json::from_str(&neigh).expect("ip -j neigh");
    let ips = neigh
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["dst"].as_str().map(str::to_string))
        .collect();
    let fdb = run_ok("bridge", &["-n", ns, "-j", "fdb", "show", "dev", dev]);
    let fdb: serde_json::Value = serde_json::from_str(&fdb).expect("bridge -j fdb");
    let macs = fdb
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["dst"].is_string())
        .filter_map(|e| e["mac"].as_str().map(str::to_string))
        .collect();
    (ips, macs)
}

/// The world on its own, without the cluster flags: proves the underlay,
/// etcd and the uplinks whatever the daemon knows.
#[test]
fn world_underlay_etcd_uplinks_and_three_daemons() {
    let c = Cluster::build("nov", "w", 3, false);
    let url = Etcd::client_url();
    for (i, h) in c.hosts.iter().enumerate() {
        for n in 1..=3 {
            let ip = format!("{UNDERLAY}.{n}");
            assert!(h.ns.ping(&ip), "h{} cannot reach {ip}", i + 1);
        }
        assert!(h.ns.ping(ETCD_IP), "h{} cannot reach etcd's address", i + 1);
        assert!(
            c.etcd.healthy(h.ns.name()),
            "etcd unhealthy from h{}",
            i + 1
        );
        assert!(h.ns.ping(OUTSIDE_IP), "h{} has no uplink", i + 1);
        h.cli(&["network", "ls"]);
    }
    // A write from one host is read from another: a store, not a port.
    c.h(1)
        .ns
        .run_ok("etcdctl", &["--endpoints", &url, "put", "/nov/k", "v1"]);
    let got = c.h(3).ns.run_ok(
        "etcdctl",
        &["--endpoints", &url, "get", "--print-value-only", "/nov/k"],
    );
    assert_eq!(got.trim(), "v1");
    let sockets: BTreeSet<_> = c.hosts.iter().map(|h| h.daemon.socket()).collect();
    assert_eq!(sockets.len(), 3, "each daemon has a socket of its own");
}

#[test]
fn network_on_every_host_and_sandboxes_ping_across_hosts() {
    let c = Cluster::new("nov", "p");
    let net = c.name("net");
    c.overlay(
        1,
        &net,
        &[
            "--ipv6",
            "--subnet",
            "10.251.1.0/24",
            "--subnet",
            "fd00:251:1::/64",
        ],
    );
    // The contract: on every host within a second.
    let t = Instant::now();
    let seen = c.wait_network(&net, Duration::from_secs(1));
    let took = t.elapsed();
    for (i, n) in seen.iter().enumerate() {
        assert_eq!(n["id"], seen[0]["id"], "h{} has another id", i + 1);
        assert_eq!(n["driver"]["driver"], "overlay", "h{}: {n}", i + 1);
        assert_eq!(n["driver"]["vni"], seen[0]["driver"]["vni"]);
        assert_eq!(n["driver"]["subnet"], "10.251.1.0/24");
        assert_eq!(n["driver"]["gateway"], seen[0]["driver"]["gateway"]);
        assert_eq!(n["driver"]["ipv6"]["subnet"], "fd00:251:1::/64");
    }
    assert!(
        c.h(3).cli(&["network", "ls"]).contains(&net),
        "not in h3's network ls (seen by inspect after {took:?})"
    );

    let s: Vec<String> = (1..=3).map(|n| c.name(&format!("s{n}"))).collect();
    for n in 1..=3 {
        c.sandbox(n, &net, &s[n - 1], &[]);
    }
    let ips: Vec<String> = (1..=3).map(|n| c.h(n).ip(&s[n - 1])).collect();
    let ip6s: Vec<String> = (1..=3).map(|n| c.h(n).ip6(&s[n - 1])).collect();
    assert_eq!(ips.iter().collect::<BTreeSet<_>>().len(), 3, "{ips:?}");
    assert_eq!(ip6s.iter().collect::<BTreeSet<_>>().len(), 3, "{ip6s:?}");
    for (a, from) in s.iter().enumerate() {
        for b in (0..3).filter(|b| *b != a) {
            let ok = wait_until(PROPAGATION, || ping(from, &ips[b]));
            assert!(ok, "h{} -> h{} {}\n{}", a + 1, b + 1, ips[b], c.logs());
            let ok = ping6(from, &ip6s[b]);
            assert!(ok, "h{} -> h{} {}", a + 1, b + 1, ip6s[b]);
        }
    }

    // MTU 1450 inside, and a full-size unfragmented packet crosses hosts.
    for (n, name) in s.iter().enumerate() {
        assert_eq!(link_details(name, "eth0")["mtu"], 1450, "h{}", n + 1);
    }
    assert!(
        ping_df(&s[0], &ips[1], 1450 - 28),
        "1450-byte packet h1 -> h2"
    );

    // One VXLAN device per host, with the network's VNI on port 4789.
    for (n, h) in c.hosts.iter().enumerate() {
        let vx = h.vxlans();
        assert_eq!(vx.len(), 1, "h{}: {vx:?}", n + 1);
        let d = link_details(h.ns.name(), &vx[0]);
        let info = &d["linkinfo"]["info_data"];
        assert_eq!(info["id"], seen[0]["driver"]["vni"], "h{}: {d}", n + 1);
        assert_eq!(info["port"], 4789, "h{}: {d}", n + 1);
        assert_eq!(info["learning"], false, "h{}: {d}", n + 1);
        assert_eq!(info["proxy"], true, "h{}: {d}", n + 1);
        // Unicast only: the two other hosts' sandboxes, and nothing flooded.
        let (ips_here, macs) = vxlan_entries(h.ns.name(), &vx[0]);
        assert!(
            !macs.contains("00:00:00:00:00:00"),
            "h{}: a flood entry",
            n + 1
        );
        assert_eq!(macs.len(), 2, "h{}: {macs:?}", n + 1);
        for other in (0..3).filter(|o| *o != n) {
            for ip in [&ips[other], &ip6s[other]] {
                assert!(ips_here.contains(ip), "h{}: no entry for {ip}", n + 1);
            }
        }
    }
}

#[test]
fn names_and_a_shared_alias_resolve_across_hosts_with_ptr() {
    let c = Cluster::new("nov", "d");
    let net = c.name("dnet");
    c.overlay(2, &net, &["--subnet", "10.251.2.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    let (w1, w2, c3) = (c.name("w1"), c.name("w2"), c.name("c3"));
    c.sandbox(1, &net, &w1, &["--alias", "web"]);
    c.sandbox(2, &net, &w2, &["--alias", "web"]);
    c.sandbox(3, &net, &c3, &[]);
    let (ip1, ip2, ip3) = (c.h(1).ip(&w1), c.h(2).ip(&w2), c.h(3).ip(&c3));

    // From host 3: a name of host 1's, one of host 2's, and the alias both
    // have, with both addresses.
    wait_resolves(&c, &c3, &w1, &[&ip1], PROPAGATION);
    wait_resolves(&c, &c3, &w2, &[&ip2], PROPAGATION);
    wait_resolves(&c, &c3, "web", &[&ip1, &ip2], PROPAGATION);
    // And the other way: host 1 knows host 3's sandbox.
    wait_resolves(&c, &w1, &c3, &[&ip3], PROPAGATION);

    let ptr = dig(&c3, &["-x", &ip2]).answers;
    assert_eq!(ptr, vec![format!("{w2}.{net}.").to_lowercase()]);
    let ptr = dig(&w2, &["-x", &ip1]).answers;
    assert_eq!(ptr, vec![format!("{w1}.{net}.").to_lowercase()]);
}

#[test]
fn eighteen_concurrent_creates_on_three_hosts_get_distinct_addresses() {
    let c = Cluster::new("nov", "c");
    let net = c.name("cnet");
    c.overlay(1, &net, &["--subnet", "10.251.3.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    let names: Vec<(usize, String)> = (1..=3)
        .flat_map(|h| (0..6).map(move |i| (h, i)))
        .map(|(h, i)| (h, c.name(&format!("x{h}{i}"))))
        .collect();
    std::thread::scope(|sc| {
        let handles: Vec<_> = names
            .iter()
            .map(|(h, name)| {
                let (c, net) = (&c, &net);
                sc.spawn(move || {
                    let out = c
                        .h(*h)
                        .daemon
                        .cli(&["sandbox", "create", "--network", net, name]);
                    (name.clone(), out)
                })
            })
            .collect();
        for h in handles {
            let (name, out) = h.join().expect("create thread");
            assert!(
                out.status.success(),
                "create {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    let ips: Vec<String> = names.iter().map(|(h, n)| c.h(*h).ip(n)).collect();
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 18, "an address handed out twice: {ips:?}");
    assert!(ips.iter().all(|ip| ip.starts_with("10.251.3.")), "{ips:?}");
    // Real addresses: the first of host 1 reaches the last of host 3.
    let ok = wait_until(PROPAGATION, || ping(&names[0].1, &ips[17]));
    assert!(ok, "{} -> {}", names[0].1, ips[17]);
}

#[test]
fn a_killed_host_leaves_the_others_dns_within_the_ttl_and_comes_back() {
    let mut c = Cluster::new("nov", "k");
    let net = c.name("knet");
    c.overlay(1, &net, &["--subnet", "10.251.4.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    let (k1, k2, k3) = (c.name("k1"), c.name("k2"), c.name("k3"));
    c.sandbox(1, &net, &k1, &[]);
    c.sandbox(2, &net, &k2, &["--alias", "svc"]);
    c.sandbox(3, &net, &k3, &["--alias", "svc"]);
    let (ip2, ip3) = (c.h(2).ip(&k2), c.h(3).ip(&k3));
    let mac2 = c.h(2).endpoint(&k2)["mac"]
        .as_str()
        .expect("mac")
        .to_string();
    wait_resolves(&c, &k1, "svc", &[&ip2, &ip3], PROPAGATION);
    wait_resolves(&c, &k3, "svc", &[&ip2, &ip3], PROPAGATION);
    assert!(wait_until(PROPAGATION, || ping(&k1, &ip2)));

    c.h_mut(2).daemon.kill9();
    // Its lease runs out within the TTL; the watch then tells the others.
    let within = TTL + Duration::from_secs(4);
    wait_resolves(&c, &k1, "svc", &[&ip3], within);
    wait_resolves(&c, &k3, "svc", &[&ip3], Duration::from_secs(1));
    let d = dig(&k1, &[&k2]);
    assert!(d.answers.is_empty(), "{k2} still resolves: {}", d.text);
    // Gone from the forwarding and neighbour entries too.
    for n in [1, 3] {
        let h = c.h(n);
        let vx = h.vxlans();
        assert_eq!(vx.len(), 1, "h{n}: {vx:?}");
        let gone = wait_until(Duration::from_secs(2), || {
            let (ips, macs) = vxlan_entries(h.ns.name(), &vx[0]);
            !ips.contains(&ip2) && !macs.contains(&mac2)
        });
        assert!(gone, "h{n} still forwards to the dead host's {ip2}/{mac2}");
    }
    // The survivors are unaffected.
    assert!(ping(&k1, &ip3), "h1 -> h3 after h2 died");

    // Restarted on its state dir, host 2 re-publishes its sandbox.
    c.h_mut(2).daemon.restart();
    wait_resolves(&c, &k1, &k2, &[&ip2], Duration::from_secs(10));
    assert!(
        wait_until(PROPAGATION, || ping(&k1, &ip2)),
        "h1 -> h2 after its restart\n{}",
        c.logs()
    );
}

/// A refusal because the store is away: within `secs`, naming the store.
fn refused_naming_the_store(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(124),
        "{what} hung while etcd was away"
    );
    assert!(!out.status.success(), "{what} accepted while etcd was away");
    assert!(
        err.contains("cluster store") && err.contains(&format!("{ETCD_IP}:2379")),
        "{what}: the error does not name the cluster store: {err}"
    );
}

#[test]
fn etcd_away_keeps_the_datapath_refuses_cluster_changes_then_recovers() {
    let mut c = Cluster::new("nov", "e");
    let net = c.name("enet");
    c.overlay(1, &net, &["--subnet", "10.251.5.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    let (e1, e2, e3, e4) = (c.name("e1"), c.name("e2"), c.name("e3"), c.name("e4"));
    c.sandbox(1, &net, &e1, &[]);
    c.sandbox(2, &net, &e2, &[]);
    c.sandbox(3, &net, &e3, &[]);
    let (ip1, ip2) = (c.h(1).ip(&e1), c.h(2).ip(&e2));
    wait_resolves(&c, &e1, &e2, &[&ip2], PROPAGATION);
    wait_resolves(&c, &e3, &e2, &[&ip2], PROPAGATION);
    assert!(wait_until(PROPAGATION, || ping(&e1, &ip2)));

    // SIGSTOP: requests to etcd go unanswered, as behind a partition.
    c.etcd.pause();
    assert!(ping(&e1, &ip2), "h1 -> h2 while etcd is away");
    assert!(ping(&e3, &ip1), "h3 -> h1 while etcd is away");
    assert_eq!(
        resolve(&e1, &e2),
        vec![ip2.clone()],
        "DNS while etcd is away"
    );

    let net2 = c.name("enet2");
    let t = Instant::now();
    let out = c.h(2).cli_within(
        30,
        &[
            "network",
            "create",
            "--driver",
            "overlay",
            "--subnet",
            "10.251.6.0/24",
            &net2,
        ],
    );
    refused_naming_the_store(&out, "overlay network create");
    let refused_in = t.elapsed();
    let out = c
        .h(3)
        .cli_within(30, &["sandbox", "create", "--network", &net, &e4]);
    refused_naming_the_store(&out, "overlay sandbox create");
    assert!(!support::Netns::exists(&e4), "a refused create left {e4}");
    // Local bridge networks do not need the store.
    let local = c.name("local");
    let out = c.h(2).cli_within(
        30,
        &["network", "create", "--subnet", "10.252.1.0/24", &local],
    );
    assert!(
        out.status.success(),
        "bridge network while etcd is away: {out:?}"
    );
    let l1 = c.name("l1");
    c.sandbox(2, &local, &l1, &[]);
    let gw = c.h(2).network(&local).expect("local network")["driver"]["gateway"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ping(&l1, &gw), "local sandbox -> its gateway {gw}");
    assert!(ping(&e2, &ip1), "h2 -> h1 at the end of the outage");

    // etcd back (killed and restarted on its data dir): changes accepted.
    c.etcd.restart();
    let ok = wait_until(Duration::from_secs(20), || {
        let args = [
            "network",
            "create",
            "--driver",
            "overlay",
            "--subnet",
            "10.251.6.0/24",
            &net2,
        ];
        c.h(2).cli_within(10, &args).status.success() || c.h(2).network(&net2).is_some()
    });
    assert!(
        ok,
        "overlay create still refused after etcd came back\n{}",
        c.logs()
    );
    c.wait_network(&net2, Duration::from_secs(2));
    c.sandbox(3, &net, &e4, &[]);
    let ip4 = c.h(3).ip(&e4);
    wait_resolves(&c, &e1, &e4, &[&ip4], PROPAGATION);
    assert!(
        wait_until(PROPAGATION, || ping(&e1, &ip4)),
        "h1 -> new h3 sandbox"
    );
    // What was there before the outage is still known everywhere, once
    // each host's lease and watch are back.
    wait_resolves(&c, &e3, &e2, &[&ip2], Duration::from_secs(10));
    assert!(ping(&e3, &ip2));
    eprintln!("refused in {refused_in:?} while etcd was stopped");
}

/// A TCP server in `ns` on `addr:port` that answers each connection with
/// the Python expression `reply` (`a` is the peer's address) and closes it.
fn answering(ns: &str, addr: &str, port: u16, reply: &str) -> Child {
    spawn_in(
        ns,
        "python3",
        &[
            "-c",
            &format!(
                "import socket\n\
                 s = socket.socket()\n\
                 s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('{addr}', {port}))\n\
                 s.listen(16)\n\
                 while True:\n\
                 \x20   c, a = s.accept()\n\
                 \x20   c.sendall({reply})\n\
                 \x20   c.close()\n"
            ),
        ],
    )
}

#[test]
fn egress_from_an_overlay_sandbox_leaves_through_its_own_host() {
    let c = Cluster::new("nov", "g");
    // Answers each connection with the address it came from: which host
    // masqueraded it.
    let _server = answering(c.outside.name(), OUTSIDE_IP, 8080, "a[0].encode()");
    wait_listening(c.outside.name(), 8080);
    let net = c.name("gnet");
    c.overlay(1, &net, &["--subnet", "10.251.7.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    for n in [1, 2] {
        let s = c.name(&format!("g{n}"));
        c.sandbox(n, &net, &s, &["--publish", "9090:80"]);
        assert!(ping(&s, OUTSIDE_IP), "ping outside from h{n}'s sandbox");
        let seen = tcp_read(&s, &format!("{OUTSIDE_IP}:8080"));
        assert_eq!(
            seen.as_deref(),
            Some(format!("10.203.{n}.1").as_str()),
            "h{n}"
        );
    }
    // Published ports of overlay sandboxes work on their own host, as on a
    // bridge: each host's 9090 reaches its own sandbox.
    let _greeters: Vec<Child> = [1, 2]
        .iter()
        .map(|n| {
            let s = c.name(&format!("g{n}"));
            let g = answering(&s, "0.0.0.0", 80, &format!("b'g{n}'"));
            wait_listening(&s, 80);
            g
        })
        .collect();
    for n in [1, 2] {
        let seen = tcp_read(c.outside.name(), &format!("10.203.{n}.1:9090"));
        assert_eq!(seen.as_deref(), Some(format!("g{n}").as_str()), "h{n}:9090");
    }
}

#[test]
fn network_rm_refused_while_a_remote_sandbox_is_on_it_then_gone_everywhere() {
    let c = Cluster::new("nov", "r");
    let net = c.name("rnet");
    c.overlay(1, &net, &["--subnet", "10.251.8.0/24"]);
    c.wait_network(&net, Duration::from_secs(1));
    let r2 = c.name("r2");
    c.sandbox(2, &net, &r2, &[]);
    let err = c.h(1).daemon.cli_err(&["network", "rm", &net]);
    assert!(!err.is_empty());
    let err3 = c.h(3).daemon.cli_err(&["network", "rm", &net]);
    assert!(!err3.is_empty());
    c.wait_network(&net, Duration::from_secs(1));

    c.h(2).cli(&["sandbox", "rm", &r2]);
    c.h(1).cli(&["network", "rm", &net]);
    for (n, h) in c.hosts.iter().enumerate() {
        let gone = wait_until(Duration::from_secs(2), || {
            h.network(&net).is_none() && h.vxlans().is_empty()
        });
        assert!(gone, "{net} still on h{}: {:?}", n + 1, h.vxlans());
    }
}
