//! netd-lb over IPv6: members at IPv6 addresses found by AAAA lookups or by
//! the `ip6` of netd's member list, IPv6 and dual-stack listeners, IPv6
//! clients in the forwarding headers. Everything runs in a namespace of the
//! test's own (`lb6x<pid><tag>`), whose `lo` carries the members' addresses;
//! the netd API is a stand-in serving a fixed member list (this branch's
//! daemon has no IPv6 endpoints yet), the DNS server a small responder on
//! `[::1]` (`support/standins.rs`). Needs root (namespaces) and python3.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use support::standins::{Dns6, FakeNetd};
use support::*;

/// The members: name and IPv6 address, each serving its name over HTTP on
/// :8000 and as the greeting of a TCP echo on :8001.
const MEMBERS: [(&str, &str); 3] = [("m1", "fd6b::11"), ("m2", "fd6b::12"), ("m3", "fd6b::13")];

/// The namespace with the members' addresses on `lo` and a backend on each.
struct V6World {
    // Drop order: backends first, then the namespace, then the directory.
    _backends: Vec<Child>,
    ns: Netns,
    dir: TempDir,
}

impl V6World {
    fn new(tag: &str) -> V6World {
        let name = format!("lb6x{}{tag}", std::process::id());
        let dir = TempDir::new(&format!("netd-lb-{name}"));
        let ns = Netns::new(&name);
        let script = dir.0.join("backend.py");
        std::fs::write(&script, BACKEND_PY).unwrap();
        let mut backends = Vec::new();
        for (member, ip) in MEMBERS {
            // nodad: usable at once, not after duplicate address detection.
            ns.run_ok(
                "ip",
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{ip}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ],
            );
            for (mode, port) in [("http", "8000"), ("echo", "8001")] {
                backends.push(spawn_in(
                    &name,
                    "python3",
                    &[script.to_str().unwrap(), mode, member, port, ip],
                ));
            }
        }
        for (member, ip) in MEMBERS {
            for port in [8000, 8001] {
                assert!(
                    wait_connectable(&name, &format!("[{ip}]:{port}"), Duration::from_secs(10)),
                    "backend {member} does not answer on [{ip}]:{port}"
                );
            }
        }
        V6World {
            _backends: backends,
            ns,
            dir,
        }
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }
}

/// netd-lb in the world's namespace, killed (by pid) on drop.
struct LbProc {
    child: Option<Child>,
    log: PathBuf,
}

impl LbProc {
    /// Start with `args`; wait until every address of `reach` accepts.
    fn start(w: &V6World, tag: &str, args: &[&str], reach: &[&str]) -> LbProc {
        let log = w.dir.0.join(format!("{tag}.log"));
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", w.ns()))
            .arg(lb_bin())
            .args(args)
            .env("RUST_LOG", "info,netd_lb=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn netd-lb");
        let lb = LbProc {
            child: Some(Child(child)),
            log,
        };
        for addr in reach {
            assert!(
                wait_connectable(w.ns(), addr, Duration::from_secs(10)),
                "netd-lb does not accept on {addr}:\n{}",
                lb.log_text()
            );
        }
        lb
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LbProc {
    fn drop(&mut self) {
        drop(self.child.take());
        if std::thread::panicking() {
            eprintln!("--- netd-lb log ---\n{}", self.log_text());
        }
    }
}

/// `n` GETs of `/` on fresh connections to `addr` from the namespace; how
/// often each body came back, and the failures.
fn spread(ns: &str, addr: &str, n: usize) -> (HashMap<String, usize>, Vec<String>) {
    let addr = addr.to_string();
    let res: Vec<Result<String, String>> = in_ns(ns, move || {
        (0..n)
            .map(|_| match http_get(&addr, "/", &[]) {
                Ok(r) if r.status == 200 => Ok(r.body.trim().to_string()),
                Ok(r) => Err(format!("status {}: {}", r.status, r.body.trim())),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    });
    (tally(&res), failures(&res))
}

/// Until every member has answered through `addr`.
fn wait_all_members(ns: &str, addr: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let (t, _) = spread(ns, addr, 6);
        if MEMBERS.iter().all(|(m, _)| t.contains_key(*m)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not every member answers through {addr}");
}

/// Round-robin over three members: 30 requests, 10 each, none failed.
fn assert_even(ns: &str, addr: &str) {
    let (t, failed) = spread(ns, addr, 30);
    assert!(failed.is_empty(), "{failed:?}");
    for (m, _) in MEMBERS {
        assert_eq!(t.get(m).copied(), Some(10), "{addr}: {t:?}");
    }
}

/// The forwarding headers a member saw for a request to `addr`.
fn forwarded_headers(ns: &str, addr: &str) -> (String, String) {
    let addr = addr.to_string();
    let r = in_ns(ns, move || http_get(&addr, "/headers", &[])).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let get = |name: &str| {
        r.body
            .lines()
            .find_map(|l| {
                l.split_once(": ")
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no {name} in {}", r.body))
    };
    (get("x-forwarded-for"), get("forwarded"))
}

/// netd-lb on `listen` over the AAAA records of `web` at `server`, with
/// `extra` flags.
fn start_aaaa(w: &V6World, tag: &str, listen: &str, server: &str, extra: &[&str]) -> LbProc {
    let mut args = vec![
        "--listen",
        listen,
        "--alias",
        "web",
        "--discover",
        "dns",
        "--dns-server",
        server,
        "--dns-interval",
        "200ms",
        "--ip-family",
        "ipv6",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    // A wildcard listener is reached on loopback.
    let reach = listen.replace("[::]", "[::1]");
    LbProc::start(w, tag, &args, &[&reach])
}

#[test]
fn aaaa_discovery_spreads_over_ipv6_members_behind_an_ipv6_listener() {
    let w = V6World::new("dn");
    let addrs = MEMBERS.iter().map(|(_, ip)| ip.parse().unwrap()).collect();
    let dns = Dns6::start(w.ns(), "web", addrs);
    let server = format!("[::1]:{}", dns.port);
    let lb = start_aaaa(&w, "dns", "[::1]:8080", &server, &["--port", "8000"]);
    wait_all_members(w.ns(), "[::1]:8080");
    assert_even(w.ns(), "[::1]:8080");
    // AAAA questions only: an ipv6 service never asks for A records.
    assert!(dns.asked(RecordType::AAAA) >= 1);
    assert_eq!(dns.asked(RecordType::A), 0);
    // DNS members are named by address.
    let log = lb.log_text();
    assert!(log.contains("member=fd6b::11"), "{log}");
    // An IPv6 client, in both forwarding headers.
    let (xff, fwd) = forwarded_headers(w.ns(), "[::1]:8080");
    assert_eq!(xff, "::1");
    assert!(fwd.starts_with("for=\"[::1]\";proto=http"), "{fwd}");

    // The same over pingora's proxy (the h2c path), dual-stack, and in TCP
    // mode.
    let _h2c = start_aaaa(
        &w,
        "h2c",
        "[::]:8084",
        &server,
        &["--port", "8000", "--h2c"],
    );
    wait_all_members(w.ns(), "[::1]:8084");
    assert_even(w.ns(), "[::1]:8084");
    assert_even(w.ns(), "127.0.0.1:8084");
    let (xff, fwd) = forwarded_headers(w.ns(), "[::1]:8084");
    assert_eq!(xff, "::1");
    assert!(fwd.starts_with("for=\"[::1]\";proto=http"), "{fwd}");
    let (xff, fwd) = forwarded_headers(w.ns(), "127.0.0.1:8084");
    assert_eq!(xff, "127.0.0.1");
    assert!(fwd.starts_with("for=127.0.0.1;proto=http"), "{fwd}");
    let _tcp = start_aaaa(
        &w,
        "tcp",
        "[::1]:8090",
        &server,
        &["--port", "8001", "--mode", "tcp"],
    );
    let start = Instant::now();
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < MEMBERS.len() && start.elapsed() < Duration::from_secs(10) {
        let out = tcp_roundtrip(w.ns(), "[::1]:8090", b"ping".to_vec()).unwrap_or_default();
        let out = String::from_utf8_lossy(&out).into_owned();
        if let Some(member) = out.strip_suffix("\nping") {
            *seen.entry(member.to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), MEMBERS.len(), "TCP streams reached {seen:?}");
}

#[test]
fn api_discovery_uses_ip6_and_a_dual_stack_listener_takes_both_families() {
    let w = V6World::new("ap");
    // Every member with its ip6, plus an endpoint without one, which an
    // ipv6 service must skip.
    let mut members: Vec<serde_json::Value> = MEMBERS
        .iter()
        .enumerate()
        .map(|(i, (name, ip6))| {
            serde_json::json!({
                "sandbox_name": name, "ip": format!("10.9.0.{}", i + 2), "ip6": ip6,
                "aliases": ["web"],
            })
        })
        .collect();
    members.push(serde_json::json!({
        "sandbox_name": "v4only", "ip": "10.9.0.9", "aliases": ["web"],
    }));
    let netd = FakeNetd::start(&w.dir.0, "net", "web", &members.into());
    let socket = netd.socket.to_str().unwrap().to_string();
    let lb = LbProc::start(
        &w,
        "api",
        &[
            "--listen",
            "[::]:8081",
            "--network",
            "net",
            "--alias",
            "web",
            "--port",
            "8000",
            "--ip-family",
            "ipv6",
            "--socket",
            &socket,
            "--threads",
            "2",
        ],
        &["[::1]:8081", "127.0.0.1:8081"],
    );
    wait_all_members(w.ns(), "[::1]:8081");
    assert!(netd.lists.load(Ordering::Relaxed) >= 1);
    // Members are the listed endpoints at their ip6; the one without an
    // IPv6 address is skipped, so nothing fails.
    assert_even(w.ns(), "[::1]:8081");
    assert_even(w.ns(), "127.0.0.1:8081");
    assert!(
        lb.log_text().contains("no IPv6 address: skipped"),
        "{}",
        lb.log_text()
    );
    // An IPv4 client of the dual-stack listener is shown as IPv4, not as
    // ::ffff:127.0.0.1; an IPv6 one in brackets.
    let (xff, fwd) = forwarded_headers(w.ns(), "127.0.0.1:8081");
    assert_eq!(xff, "127.0.0.1");
    assert!(fwd.starts_with("for=127.0.0.1;proto=http"), "{fwd}");
    let (xff, fwd) = forwarded_headers(w.ns(), "[::1]:8081");
    assert_eq!(xff, "::1");
    assert!(fwd.starts_with("for=\"[::1]\";proto=http"), "{fwd}");
}

/// Run netd-lb to its exit in the namespace; status code and stderr.
fn run_to_exit(w: &V6World, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", w.ns()))
        .arg(lb_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netd-lb");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_ip_family_and_clashing_listeners_are_refused() {
    let w = V6World::new("bad");
    let (code, err) = run_to_exit(
        &w,
        &[
            "--listen",
            "[::1]:8082",
            "--network",
            "net",
            "--alias",
            "web",
            "--port",
            "8000",
            "--ip-family",
            "inet6",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unknown IP family \"inet6\"") && err.contains("ipv4, ipv6"),
        "{err}"
    );
    let file = w.dir.0.join("bad.toml");
    std::fs::write(
        &file,
        "[[service]]\nlisten = \"[::1]:8082\"\nnetwork = \"net\"\nalias = \"web\"\nport = 8000\n\
         ip_family = \"IPv6\"\n",
    )
    .unwrap();
    let (code, err) = run_to_exit(&w, &["--config", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown IP family \"IPv6\""), "{err}");
    // [::]:PORT takes IPv4 too, so it cannot share a port with an IPv4
    // listener: refused up front (exit 1), not a pingora panic.
    std::fs::write(
        &file,
        "[[service]]\nname = \"a\"\nlisten = \"127.0.0.1:8083\"\nnetwork = \"net\"\nalias = \"web\"\n\
         port = 8000\n\n[[service]]\nname = \"b\"\nlisten = \"[::]:8083\"\nnetwork = \"net\"\n\
         alias = \"web\"\nport = 8000\n",
    )
    .unwrap();
    let (code, err) = run_to_exit(&w, &["--config", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("service b: cannot listen on [::]:8083"),
        "{err}"
    );
}
