//! Many operations on one sandbox at once, from many processes: they are
//! serialised, the losers get a clear 404/409, and the store and the kernel
//! agree afterwards.

use netd_tests as support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;
use support::{Daemon, Netns};

struct World {
    _host: Netns,
    daemon: Daemon,
    tag: String,
}

fn world(tag: &str) -> World {
    let tag = format!("cc{}{tag}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    World {
        _host: host,
        daemon,
        tag,
    }
}

impl World {
    fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.tag)
    }

    /// `netd ARGS` from `n` processes at once (the CLI, as users run it).
    fn cli_parallel(&self, runs: Vec<Vec<String>>) -> Vec<(Vec<String>, Output)> {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|args| {
                let sock = self.daemon.socket();
                std::thread::spawn(move || {
                    let out = Command::new(support::netd_bin())
                        .arg("--socket")
                        .arg(sock)
                        .args(&args)
                        .output()
                        .expect("run netd");
                    (args, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    /// `METHOD PATH BODY` on the API from `n` clients at once: the statuses.
    fn api_parallel(&self, n: usize, method: &str, path: &str, body: &str) -> Vec<(u16, String)> {
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..n)
                .map(|_| sc.spawn(|| self.daemon.api(method, path, Some(body))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn sandbox(&self, name: &str) -> Value {
        self.daemon.cli_json(&["sandbox", "inspect", name])[0].clone()
    }
}

/// (ifname, ip, mac) of every endpoint the store has for a sandbox.
fn store_view(sb: &Value) -> BTreeSet<(String, String, String)> {
    sb["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["ifname"].as_str().unwrap().to_string(),
                e["ip"].as_str().unwrap().to_string(),
                e["mac"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

/// (ifname, ip, mac) of every interface but `lo` in a namespace, one row
/// per IPv4 address (an interface with none gets ip "-").
fn kernel_view(netns: &str) -> BTreeSet<(String, String, String)> {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ip", "-j", "addr"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip addr in {netns}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows = BTreeSet::new();
    for l in v.as_array().unwrap() {
        let name = l["ifname"].as_str().unwrap().to_string();
        if name == "lo" {
            continue;
        }
        let mac = l["address"].as_str().unwrap_or("").to_lowercase();
        let ips: Vec<String> = l["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .map(|a| a["local"].as_str().unwrap().to_string())
            .collect();
        if ips.is_empty() {
            rows.insert((name.clone(), "-".into(), mac.clone()));
        }
        for ip in ips {
            rows.insert((name.clone(), ip, mac.clone()));
        }
    }
    rows
}

/// The host veths enslaved to `bridge` in the host namespace.
fn bridge_ports(w: &World, bridge: &str) -> usize {
    let out = w
        ._host
        .run_ok("ip", &["-j", "link", "show", "master", bridge]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .map_or(0, |a| a.len())
}

/// 40 `network connect m1 S` and `network disconnect m1 S` at once, three
/// rounds: every call either works or is refused with "already connected"
/// (409) or "not connected" (404), never a kernel or store error; after
/// each round the store's endpoints of S are exactly its interfaces in the
/// kernel (names, addresses, MACs), m1's bridge has one port per endpoint
/// on m1; and a new sandbox on m1 gets an address and MAC of its own and
/// reaches S over m1.
#[test]
fn cc_parallel_connect_and_disconnect_keep_store_and_kernel_in_step() {
    let w = world("cd");
    let (base, m1, s, t) = (w.name("base"), w.name("m1"), w.name("s"), w.name("t"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.140.0/24", &base]);
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.141.0/24", &m1]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &base, &s]);
    let bridge = w.daemon.cli_json(&["network", "inspect", &m1])[0]["driver"]["bridge"]
        .as_str()
        .expect("m1's bridge")
        .to_string();
    let netns = w.sandbox(&s)["netns"].as_str().unwrap().to_string();
    let mut seen = BTreeSet::new();
    for round in 0..3 {
        let runs: Vec<Vec<String>> = (0..40)
            .map(|i| {
                let verb = if i % 2 == 0 { "connect" } else { "disconnect" };
                vec!["network".into(), verb.into(), m1.clone(), s.clone()]
            })
            .collect();
        for (args, out) in w.cli_parallel(runs) {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let outcome = match (args[1].as_str(), out.status.success()) {
                (verb, true) => format!("{verb} ok"),
                ("connect", false) if err.contains("is already connected to network") => {
                    "connect 409".to_string()
                }
                ("disconnect", false) if err.contains("is not connected to network") => {
                    "disconnect 404".to_string()
                }
                _ => panic!(
                    "round {round}: netd {} failed with neither 404 nor 409: {err}",
                    args.join(" ")
                ),
            };
            seen.insert(outcome);
        }
        let sb = w.sandbox(&s);
        let store = store_view(&sb);
        let kernel = kernel_view(&netns);
        assert_eq!(
            store, kernel,
            "round {round}: store (left) and kernel (right) disagree on {s}'s interfaces"
        );
        let on_m1 = sb["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["network_name"] == m1.as_str())
            .count();
        assert_eq!(
            bridge_ports(&w, &bridge),
            on_m1,
            "round {round}: ports of {bridge} vs endpoints on {m1}"
        );
    }
    eprintln!("outcomes seen: {seen:?}");
    // Leave S on m1, then a second sandbox there must be a distinct host.
    let _ = w.daemon.cli(&["network", "connect", &m1, &s]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &m1, &t]);
    let (sv, tv) = (w.sandbox(&s), w.sandbox(&t));
    let s_m1 = sv["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["network_name"] == m1.as_str())
        .expect("S on m1")
        .clone();
    let t_m1 = &tv["endpoints"][0];
    assert_ne!(s_m1["ip"], t_m1["ip"], "one address given twice");
    assert_ne!(s_m1["mac"], t_m1["mac"], "one MAC given twice");
    assert_eq!(store_view(&sv), kernel_view(&netns));
    let t_ns = Netns::exists(&t).then(|| t.clone()).expect("t's namespace");
    assert!(
        support::ping(&t_ns, s_m1["ip"].as_str().unwrap()),
        "{t} cannot reach {s} on {m1}"
    );
}

/// N disconnects of one endpoint at once: exactly one succeeds, the others
/// get 404 "not connected". N connects at once: exactly one succeeds, the
/// others get 409 "already connected".
#[test]
fn cc_exactly_one_of_parallel_disconnects_or_connects_wins() {
    let w = world("one");
    let (base, m1, s) = (w.name("base"), w.name("m1"), w.name("s"));
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.142.0/24", &base]);
    w.daemon
        .cli_ok(&["network", "create", "--subnet", "10.201.143.0/24", &m1]);
    w.daemon
        .cli_ok(&["sandbox", "create", "--network", &base, &s]);
    let netns = w.sandbox(&s)["netns"].as_str().unwrap().to_string();
    let path = |verb: &str| format!("/netd/networks/{m1}/{verb}");
    let body = format!(r#"{{"sandbox":"{s}"}}"#);
    for round in 0..3 {
        let connects = w.api_parallel(10, "POST", &path("connect"), &body);
        let mut codes: Vec<u16> = connects.iter().map(|(c, _)| *c).collect();
        codes.sort();
        assert_eq!(
            codes,
            [vec![200], vec![409; 9]].concat(),
            "round {round}: connects {connects:?}"
        );
        assert!(
            connects
                .iter()
                .filter(|(c, _)| *c == 409)
                .all(|(_, m)| m.contains("is already connected to network")),
            "{connects:?}"
        );
        assert_eq!(store_view(&w.sandbox(&s)), kernel_view(&netns));
        let disconnects = w.api_parallel(10, "POST", &path("disconnect"), &body);
        let mut codes: Vec<u16> = disconnects.iter().map(|(c, _)| *c).collect();
        codes.sort();
        assert_eq!(
            codes,
            [vec![200], vec![404; 9]].concat(),
            "round {round}: disconnects {disconnects:?}"
        );
        assert!(
            disconnects
                .iter()
                .filter(|(c, _)| *c == 404)
                .all(|(_, m)| m.contains("is not connected to network")),
            "{disconnects:?}"
        );
        let after = w.sandbox(&s);
        assert_eq!(after["endpoints"].as_array().unwrap().len(), 1);
        assert_eq!(store_view(&after), kernel_view(&netns));
    }
}
