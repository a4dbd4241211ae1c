//! A host firewall of the operator's own beside netd's table: a forward
//! chain with policy drop in another table (what ufw, firewalld and
//! Docker's iptables leave), made by the test inside its own host
//! namespace. With `netd.forward_accept` netd's traffic still passes, on
//! both families: egress over masquerade, container to container, a
//! published port from an outside namespace; netd's rules in that chain go
//! with the network, and come back after the other table is reloaded.
//! Without the option the drop policy drops it (so these tests can fail).

use std::time::Duration;

use netd_tests as support;
use support::{Netns, World, tcp_read, uplink6};

/// The test's world plus an outside namespace on a dual-stack uplink:
/// host 10.231.N.1 / 2001:db8:231:N::1, outside .2 / ::2.
struct Fw {
    w: World,
    outside: Netns,
    host4: String,
    host6: String,
    out4: String,
    out6: String,
    n: u8,
}

fn fw(tag: &str, n: u8) -> Fw {
    let w = World::new("hfx", tag);
    let outside = Netns::new(&w.name("out"));
    let p4 = format!("10.231.{n}");
    let p6 = format!("2001:db8:231:{n}");
    uplink6(&w.host, &outside, &p4, &p6);
    w.host.run_ok(
        "ip",
        &["route", "add", "default", "via", &format!("{p4}.2")],
    );
    w.host.run_ok(
        "ip",
        &["-6", "route", "add", "default", "via", &format!("{p6}::2")],
    );
    Fw {
        w,
        outside,
        host4: format!("{p4}.1"),
        host6: format!("{p6}::1"),
        out4: format!("{p4}.2"),
        out6: format!("{p6}::2"),
        n,
    }
}

/// The operator's firewall, as `nft -f` loads it: TABLE (family FAMILY)
/// with a forward chain CHAIN whose policy is drop, replaced atomically
/// if it is there (what `ufw reload` and `nft -f` with a `delete table`
/// do).
fn load_drop_table(w: &World, family: &str, table: &str, chain: &str) {
    let file = std::env::temp_dir().join(format!("{}-{family}-{table}.nft", w.tag));
    let text = format!(
        "table {family} {table}\ndelete table {family} {table}\n\
         table {family} {table} {{\n  chain {chain} {{\n    \
         type filter hook forward priority 0; policy drop;\n  }}\n}}\n"
    );
    std::fs::write(&file, text).expect("write nft file");
    w.host
        .run_ok("nft", &["-f", file.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&file);
}

fn said(ns: &str, addr: &str) -> Option<String> {
    tcp_read(ns, addr)
}

/// The sandbox's global addresses on eth0: (IPv4, IPv6).
fn addrs(ns: &str) -> (String, String) {
    let v4 = support::run_ok("ip", &["-n", ns, "-4", "-j", "addr", "show", "eth0"]);
    let v4: serde_json::Value = serde_json::from_str(&v4).expect("ip -j");
    let v4 = v4[0]["addr_info"][0]["local"]
        .as_str()
        .expect("an IPv4 address")
        .to_string();
    let v6 = support::addrs6(ns, "eth0")
        .into_iter()
        .find(|a| !a.starts_with("fe80"))
        .expect("an IPv6 address");
    let v6 = v6.split('/').next().unwrap_or(&v6).to_string();
    (v4, v6)
}

/// netd's rules in a chain of the host's: their comments.
fn netd_rules(w: &World, family: &str, table: &str, chain: &str) -> Vec<String> {
    let out = w
        .host
        .output("nft", &["list", "chain", family, table, chain]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("comment \"netd ").nth(1))
        .map(|c| c.trim_end_matches('"').to_string())
        .collect()
}

/// Two sandboxes on a dual-stack network NET (10.232.N.0/24,
/// fd00:232:N::/64), `a` publishing 8080 to its greeter on 80; the
/// outside runs a greeter on 9999. Returns the sandbox names.
fn two_sandboxes(f: &Fw, extra: &[&str]) -> (String, String, String) {
    let (net, a, b) = (f.w.name("net"), f.w.name("a"), f.w.name("b"));
    let n = f.n;
    f.w.dual_network(
        &net,
        &format!("10.232.{n}.0/24"),
        &format!("fd00:232:{n}::/64"),
        extra,
    );
    f.w.cli(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
    f.w.cli(&["sandbox", "create", "--network", &net, &b]);
    (net, a, b)
}

/// Everything a container network needs from forwarding, on both
/// families: what failed, by name (empty: all passed).
fn broken_paths(f: &Fw, a: &str, b: &str) -> Vec<&'static str> {
    let (a4, a6) = addrs(a);
    let mut broken = Vec::new();
    let out = f.outside.name();
    let checks: [(&'static str, &str, String, &str); 6] = [
        ("egress v4", a, format!("{}:9999", f.out4), "outside"),
        ("egress v6", a, format!("[{}]:9999", f.out6), "outside"),
        ("container to container v4", b, format!("{a4}:80"), "a"),
        ("container to container v6", b, format!("[{a6}]:80"), "a"),
        ("published v4", out, format!("{}:8080", f.host4), "a"),
        ("published v6", out, format!("[{}]:8080", f.host6), "a"),
    ];
    for (what, from, to, want) in checks {
        if said(from, &to).as_deref() != Some(want) {
            broken.push(what);
        }
    }
    broken
}

#[test]
fn a_drop_policy_in_another_table_drops_container_traffic_without_the_option() {
    let f = fw("off", 1);
    load_drop_table(&f.w, "inet", "filter", "forward");
    let (_net, a, b) = two_sandboxes(&f, &[]);
    let _web = support::greeter(&a, 80, "a");
    let _out = support::greeter(f.outside.name(), 9999, "outside");
    let broken = broken_paths(&f, &a, &b);
    assert_eq!(
        broken.len(),
        6,
        "a drop policy in another table must drop every forwarded path without \
         netd.forward_accept; these passed anyway: all but {broken:?}"
    );
    assert!(netd_rules(&f.w, "inet", "filter", "forward").is_empty());
}

#[test]
fn named_chain_gets_accept_rules_that_survive_reloads_and_go_with_the_network() {
    let f = fw("named", 2);
    load_drop_table(&f.w, "inet", "filter", "forward");
    let (net, a, b) = two_sandboxes(&f, &["-o", "netd.forward_accept=inet/filter/forward"]);
    let bridge = f.w.host.links("netd-").pop().expect("the network's bridge");
    let _web = support::greeter(&a, 80, "a");
    let _out = support::greeter(f.outside.name(), 9999, "outside");
    assert_eq!(broken_paths(&f, &a, &b), Vec::<&str>::new());
    let mut rules = netd_rules(&f.w, "inet", "filter", "forward");
    rules.sort();
    assert_eq!(rules, [format!("{bridge} in"), format!("{bridge} out")]);

    // The operator's firewall is reloaded (the table replaced, as `nft -f`
    // and `ufw reload` do): netd's rules are back within a second.
    load_drop_table(&f.w, "inet", "filter", "forward");
    let back = support::time_until(Duration::from_secs(1), || {
        netd_rules(&f.w, "inet", "filter", "forward").len() == 2
    });
    assert!(
        back.is_some(),
        "accept rules not back within 1 s of a reload"
    );
    eprintln!("accept rules back {back:?} after a reload");
    assert_eq!(broken_paths(&f, &a, &b), Vec::<&str>::new());
    // Flushed without being replaced.
    f.w.host
        .run_ok("nft", &["flush", "chain", "inet", "filter", "forward"]);
    let back = support::time_until(Duration::from_secs(1), || {
        netd_rules(&f.w, "inet", "filter", "forward").len() == 2
    });
    assert!(
        back.is_some(),
        "accept rules not back within 1 s of a flush"
    );
    eprintln!("accept rules back {back:?} after a flush");
    // `nft flush ruleset` takes both tables; the operator's comes back
    // later, as a separate load: netd's rules follow it.
    f.w.host.run_ok("nft", &["flush", "ruleset"]);
    load_drop_table(&f.w, "inet", "filter", "forward");
    let back = support::time_until(Duration::from_secs(1), || {
        netd_rules(&f.w, "inet", "filter", "forward").len() == 2
    });
    assert!(
        back.is_some(),
        "accept rules not back within 1 s of the table coming back"
    );
    eprintln!("accept rules back {back:?} after the table came back");
    assert_eq!(broken_paths(&f, &a, &b), Vec::<&str>::new());

    // Removing the network removes them; the operator's chain stays.
    f.w.cli(&["sandbox", "rm", &a, &b]);
    f.w.cli(&["network", "rm", &net]);
    assert_eq!(
        netd_rules(&f.w, "inet", "filter", "forward"),
        Vec::<String>::new()
    );
    let chain =
        f.w.host
            .output_ok("nft", &["list", "chain", "inet", "filter", "forward"]);
    assert!(chain.contains("policy drop"), "{chain}");
}

#[test]
fn auto_opens_every_drop_policy_forward_chain_ufw_style_and_late_ones() {
    let f = fw("auto", 3);
    // What ufw leaves through iptables-nft: `ip filter` and `ip6 filter`,
    // FORWARD with policy drop, an operator's rule in it.
    for ipt in ["iptables-nft", "ip6tables-nft"] {
        f.w.host.run_ok(ipt, &["-P", "FORWARD", "DROP"]);
        f.w.host
            .run_ok(ipt, &["-A", "FORWARD", "-i", "lo", "-j", "ACCEPT"]);
    }
    // A chain with policy accept is none of netd's business.
    f.w.host.run_ok("nft", &["add", "table", "inet", "calm"]);
    f.w.host.run_ok(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "calm",
            "forward",
            "{ type filter hook forward priority 0; policy accept; }",
        ],
    );
    let (net, a, b) = two_sandboxes(&f, &["-o", "netd.forward_accept=auto"]);
    let _web = support::greeter(&a, 80, "a");
    let _out = support::greeter(f.outside.name(), 9999, "outside");
    assert_eq!(broken_paths(&f, &a, &b), Vec::<&str>::new());
    assert_eq!(netd_rules(&f.w, "ip", "filter", "FORWARD").len(), 2);
    assert_eq!(netd_rules(&f.w, "ip6", "filter", "FORWARD").len(), 2);
    assert!(netd_rules(&f.w, "inet", "calm", "forward").is_empty());
    // iptables reads netd's rules as its own kind (no "incompatible"
    // table), after the operator's.
    let bridge = f.w.host.links("netd-").pop().expect("the network's bridge");
    let listed = f.w.host.output_ok("iptables-nft", &["-S", "FORWARD"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "-P FORWARD DROP",
            "-A FORWARD -i lo -j ACCEPT",
            &format!("-A FORWARD -i {bridge} -m comment --comment \"netd {bridge} in\" -j ACCEPT"),
            &format!("-A FORWARD -o {bridge} -m comment --comment \"netd {bridge} out\" -j ACCEPT"),
        ]
    );
    // `ufw reload` rewrites the table with iptables-restore.
    let file = std::env::temp_dir().join(format!("{}-restore", f.w.tag));
    std::fs::write(
        &file,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -i lo -j ACCEPT\nCOMMIT\n",
    )
    .expect("write rules");
    f.w.host.run_ok(
        "iptables-nft-restore",
        &[file.to_str().expect("utf-8 path")],
    );
    let _ = std::fs::remove_file(&file);
    let back = support::time_until(Duration::from_secs(1), || {
        netd_rules(&f.w, "ip", "filter", "FORWARD").len() == 2
    });
    assert!(
        back.is_some(),
        "accept rules not back within 1 s of iptables-restore"
    );
    eprintln!("accept rules back {back:?} after iptables-restore");

    // A drop policy that appears later is found by the watcher.
    load_drop_table(&f.w, "inet", "late", "guard");
    let found = support::time_until(Duration::from_secs(1), || {
        netd_rules(&f.w, "inet", "late", "guard").len() == 2
    });
    assert!(
        found.is_some(),
        "a new drop-policy chain was not opened within 1 s"
    );
    eprintln!("a new drop-policy chain opened {found:?} after it appeared");
    assert_eq!(broken_paths(&f, &a, &b), Vec::<&str>::new());

    f.w.cli(&["sandbox", "rm", &a, &b]);
    f.w.cli(&["network", "rm", &net]);
    for (fam, t, c) in [
        ("ip", "filter", "FORWARD"),
        ("ip6", "filter", "FORWARD"),
        ("inet", "late", "guard"),
    ] {
        assert!(netd_rules(&f.w, fam, t, c).is_empty(), "{fam} {t} {c}");
    }
}

/// `netd daemon --forward-accept auto`: the predefined `bridge` network and
/// a network created without the option get accept rules in the drop-policy
/// chain, and egress passes there; a network created with
/// `netd.forward_accept=none` opts out and stays dropped. A bad value
/// refuses to start the daemon.
#[test]
fn the_daemon_wide_default_opens_the_predefined_bridge_and_new_networks() {
    let tag = format!("hfd{}", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    support::uplink(&host, &outside, "10.231.9");
    host.run_ok("ip", &["route", "add", "default", "via", "10.231.9.2"]);
    host.run_ok("nft", &["add", "table", "inet", "hostfw"]);
    host.run_ok(
        "nft",
        &["add chain inet hostfw hostfwd { type filter hook forward priority 0; policy drop; }"],
    );
    let _svc = support::greeter(outside.name(), 9999, "outside");

    // Refused while parsing its flags, before it touches anything (the
    // paths are the test's own all the same).
    let scratch = std::env::temp_dir().join(format!("{tag}-bad"));
    let bad = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", host.name()))
        .arg(support::netd_bin())
        .arg("--socket")
        .arg(scratch.join("netd.sock"))
        .args(["daemon", "--state-dir"])
        .arg(scratch.join("state"))
        .arg("--run-dir")
        .arg(scratch.join("run"))
        .args(["--forward-accept", "inet/hostfw"])
        .output()
        .expect("run netd");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success(),
        "a bad --forward-accept started the daemon"
    );
    assert!(err.contains("inet/hostfw"), "{err}");
    assert!(
        !scratch.exists(),
        "a refused start made {}",
        scratch.display()
    );

    let daemon = support::Daemon::start_with(&host, &["--forward-accept", "auto"]);
    let (a, net, b, closed, c) = (
        format!("{tag}-a"),
        format!("{tag}-n"),
        format!("{tag}-b"),
        format!("{tag}-closed"),
        format!("{tag}-c"),
    );
    // On the predefined bridge: no --network.
    daemon.cli_ok(&["sandbox", "create", &a]);
    daemon.cli_ok(&["network", "create", "--subnet", "10.233.9.0/24", &net]);
    daemon.cli_ok(&["sandbox", "create", "--network", &net, &b]);
    daemon.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.233.10.0/24",
        "-o",
        "netd.forward_accept=none",
        &closed,
    ]);
    daemon.cli_ok(&["sandbox", "create", "--network", &closed, &c]);
    let out = "10.231.9.2:9999";
    assert_eq!(
        said(&a, out).as_deref(),
        Some("outside"),
        "predefined bridge dropped"
    );
    assert_eq!(
        said(&b, out).as_deref(),
        Some("outside"),
        "new network dropped"
    );
    assert_eq!(
        said(&c, out),
        None,
        "netd.forward_accept=none still let it out"
    );
    let inspect = daemon.cli_ok(&["network", "inspect", &net]);
    assert!(
        inspect.contains("\"netd.forward_accept\": \"auto\""),
        "{inspect}"
    );

    for s in [&a, &b, &c] {
        daemon.cli_ok(&["sandbox", "rm", s]);
    }
    for n in [&net, &closed] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}
