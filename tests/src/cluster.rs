//! Several hosts in one cluster (overlay networks): an underlay bridge in a
//! namespace of the test's own, three host namespaces on it, an etcd on the
//! underlay started and stopped by the test by pid, one netd daemon per host
//! joined to it, and an "outside" namespace every host has an uplink to.
//!
//! Every namespace and sandbox a cluster names starts with `TAG-` (TAG is
//! `PREFIX<pid>T`), so whatever a failed test leaves behind is found and
//! removed by that prefix when the cluster is dropped.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::*;

/// The underlay: hosts are `UNDERLAY.N` (N = 1, 2, 3), etcd listens on
/// `UNDERLAY.254`, on the underlay namespace's bridge (TESTING.md: hosts
/// meet on documentation addresses).
pub const UNDERLAY: &str = "198.51.100";
pub const ETCD_IP: &str = "198.51.100.254";
/// The lease TTL the daemons are started with: short, so that a dead host
/// leaves the others' view within a test's patience.
pub const TTL: Duration = Duration::from_secs(3);
/// An address of the outside namespace every host routes to through its
/// own uplink (`10.203.N.0/24`, host N at `.1`, outside at `.2`).
pub const OUTSIDE_IP: &str = "203.0.113.10";

/// A host of the cluster: its namespace and its daemon (dropped first, so
/// its sandboxes are removed while the namespace is still there).
pub struct Host {
    pub daemon: Daemon,
    pub ns: Netns,
    /// Its underlay address, its VTEP.
    pub addr: String,
}

impl Host {
    /// `netd ARGS` on this host, which must succeed: its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        self.daemon.cli_ok(args)
    }

    /// `netd ARGS` on this host, given up on after `secs` (`timeout`
    /// kills it), so a daemon that waits on an unreachable store makes the
    /// test fail instead of hang.
    pub fn cli_within(&self, secs: u64, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg(secs.to_string())
            .arg(netd_bin())
            .arg("--socket")
            .arg(self.daemon.socket())
            .args(args)
            .output()
            .expect("run timeout netd")
    }

    /// `netd network inspect NAME` here, if this host knows the network.
    pub fn network(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.daemon.cli(&["network", "inspect", name]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get(0).cloned())
    }

    /// The first endpoint of sandbox `name` as `sandbox inspect` shows it.
    pub fn endpoint(&self, name: &str) -> serde_json::Value {
        let v = self.daemon.cli_json(&["sandbox", "inspect", name]);
        v[0]["endpoints"][0].clone()
    }

    /// The IPv4 address of sandbox `name`'s first endpoint.
    pub fn ip(&self, name: &str) -> String {
        let ep = self.endpoint(name);
        ep["ip"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no IPv4 address: {ep}"))
            .to_string()
    }

    /// The IPv6 address of sandbox `name`'s first endpoint.
    pub fn ip6(&self, name: &str) -> String {
        let ep = self.endpoint(name);
        ep["ip6"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no IPv6 address: {ep}"))
            .to_string()
    }

    /// Names of this host's VXLAN devices (`netdvx-*`).
    pub fn vxlans(&self) -> Vec<String> {
        self.ns.links("netdvx-")
    }
}

/// A single-member etcd 3.4 on the underlay, with its data dir under the
/// test's temp dir; killed by pid on drop.
pub struct Etcd {
    child: Option<std::process::Child>,
    ns: String,
    dir: PathBuf,
    stopped: bool,
}

impl Etcd {
    /// Start etcd in namespace `ns` (which has `ETCD_IP`), its data and
    /// log in `dir`, and wait until it answers.
    pub fn start(ns: &Netns, dir: PathBuf) -> Etcd {
        let mut e = Etcd {
            child: None,
            ns: ns.name().to_string(),
            dir,
            stopped: false,
        };
        e.spawn();
        e
    }

    pub fn client_url() -> String {
        format!("http://{ETCD_IP}:2379")
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("etcd log");
        let url = Etcd::client_url();
        // A single member needs no peers, but etcd always listens for them:
        // the underlay namespace's own loopback keeps that port private.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["etcd", "--name", "novetcd", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "novetcd=http://127.0.0.1:2380"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd (Debian package etcd-server)");
        self.child = Some(child);
        self.stopped = false;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.healthy(&self.ns) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not come up: {}", self.log());
    }

    /// Whether etcd's /health answers true from namespace `ns`.
    pub fn healthy(&self, ns: &str) -> bool {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["curl", "-s", "-m", "2"])
            .arg(format!("{}/health", Etcd::client_url()))
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
            .unwrap_or(false)
    }

    /// etcd's Prometheus metrics, read from namespace `ns`.
    pub fn metrics(&self, ns: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["curl", "-s", "-m", "5"])
            .arg(format!("{}/metrics", Etcd::client_url()))
            .output()
            .expect("curl etcd metrics");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of a child we have not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGSTOP: etcd keeps its sockets but answers nothing, as behind a
    /// partition (clients wait out their timeouts instead of being refused).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.stopped = true;
    }

    /// SIGCONT after `pause`.
    pub fn resume(&mut self) {
        if self.stopped {
            self.signal(libc::SIGCONT);
            self.stopped = false;
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    /// Start again on the same data dir (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn running(&self) -> bool {
        self.child.is_some() && !self.stopped
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// Three hosts, an underlay, etcd and an outside, named `TAG-*`.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub etcd: Etcd,
    /// Every host has an uplink here (`10.203.N.2`) and a default route
    /// through it; it holds `OUTSIDE_IP`.
    pub outside: Netns,
    pub underlay: Netns,
    pub tag: String,
    _dir: TempDir,
}

impl Cluster {
    /// Three hosts whose daemons join the cluster.
    pub fn new(prefix: &str, tag: &str) -> Cluster {
        Cluster::build(prefix, tag, 3, true)
    }

    /// `hosts` hosts on the underlay and etcd; with `join`, each daemon is
    /// started with the `--cluster-*` flags, else as a single host (which
    /// proves the world without a daemon that knows the flags).
    pub fn build(prefix: &str, tag: &str, hosts: usize, join: bool) -> Cluster {
        static TAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let tag = format!("{prefix}{}{tag}", std::process::id());
        let mut tags = TAGS.lock().unwrap_or_else(|p| p.into_inner());
        assert!(!tags.contains(&tag), "cluster tag {tag:?} used twice");
        tags.push(tag.clone());
        drop(tags);

        let dir = TempDir::new(&format!("{tag}-etcd"));
        let underlay = Netns::new(&format!("{tag}-u"));
        underlay.run_ok("ip", &["link", "add", "ulbr", "type", "bridge"]);
        underlay.run_ok("ip", &["link", "set", "ulbr", "up"]);
        underlay.run_ok(
            "ip",
            &["addr", "add", &format!("{ETCD_IP}/24"), "dev", "ulbr"],
        );
        let outside = Netns::new(&format!("{tag}-out"));
        outside.run_ok(
            "ip",
            &["addr", "add", &format!("{OUTSIDE_IP}/32"), "dev", "lo"],
        );

        // Namespaces first, daemons last: a daemon that cannot reach etcd
        // at start-up would only time out.
        let mut nss = Vec::new();
        for n in 1..=hosts {
            let ns = Netns::new(&format!("{tag}-h{n}"));
            let (ul, peer) = ("ul0".to_string(), format!("ulh{n}"));
            run_ok(
                "ip",
                &[
                    "link",
                    "add",
                    &ul,
                    "netns",
                    ns.name(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &peer,
                    "netns",
                    underlay.name(),
                ],
            );
            underlay.run_ok("ip", &["link", "set", &peer, "master", "ulbr"]);
            underlay.run_ok("ip", &["link", "set", &peer, "up"]);
            ns.run_ok(
                "ip",
                &["addr", "add", &format!("{UNDERLAY}.{n}/24"), "dev", &ul],
            );
            ns.run_ok("ip", &["link", "set", &ul, "up"]);
            let up = format!("10.203.{n}");
            uplink(&ns, &outside, &up);
            ns.run_ok(
                "ip",
                &["route", "add", "default", "via", &format!("{up}.2")],
            );
            nss.push(ns);
        }
        let etcd = Etcd::start(&underlay, dir.0.clone());
        for ns in &nss {
            assert!(
                wait_until(Duration::from_secs(10), || etcd.healthy(ns.name())),
                "etcd not reachable from {}",
                ns.name()
            );
        }
        let hosts = nss
            .into_iter()
            .enumerate()
            .map(|(i, ns)| {
                let addr = format!("{UNDERLAY}.{}", i + 1);
                let daemon = if join {
                    let flags = cluster_flags(i + 1, &addr);
                    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                    Daemon::start_with(&ns, &flags)
                } else {
                    Daemon::start(&ns)
                };
                Host { daemon, ns, addr }
            })
            .collect();
        Cluster {
            hosts,
            etcd,
            outside,
            underlay,
            tag,
            _dir: dir,
        }
    }

    /// Host `n`, counted from 1 as the namespaces are.
    pub fn h(&self, n: usize) -> &Host {
        &self.hosts[n - 1]
    }

    pub fn h_mut(&mut self, n: usize) -> &mut Host {
        &mut self.hosts[n - 1]
    }

    /// A name of the test's: `TAG-s` (sandboxes are namespaces under
    /// /run/netns, shared by every host here, so their names must differ
    /// across hosts too).
    pub fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.tag)
    }

    /// `netd network create --driver overlay ARGS... NAME` on host `n`.
    pub fn overlay(&self, n: usize, name: &str, args: &[&str]) -> String {
        let mut full = vec!["network", "create", "--driver", "overlay"];
        full.extend_from_slice(args);
        full.push(name);
        let out = self.h(n).daemon.cli(&full);
        assert!(
            out.status.success(),
            "netd {} on h{n}: {}\n{}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until every host lists network `name` (at most `within`): its
    /// inspect record on each host.
    pub fn wait_network(&self, name: &str, within: Duration) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        let ok = wait_until(within, || {
            seen = self.hosts.iter().filter_map(|h| h.network(name)).collect();
            seen.len() == self.hosts.len()
        });
        assert!(ok, "{name} not on every host within {within:?}: {seen:?}");
        seen
    }

    /// `netd sandbox create --network NET ARGS... NAME` on host `n`.
    pub fn sandbox(&self, n: usize, net: &str, name: &str, args: &[&str]) {
        let mut full = vec!["sandbox", "create", "--network", net];
        full.extend_from_slice(args);
        full.push(name);
        let out = self.h(n).daemon.cli(&full);
        assert!(
            out.status.success(),
            "netd {} on h{n}: {}\n{}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, h) in self.hosts.iter().enumerate() {
            s.push_str(&format!("--- h{} daemon log\n{}\n", i + 1, h.daemon.log()));
        }
        s
    }

    /// The daemons' logs, etcd's keys under `/netd/` and etcd's log: what
    /// a failure of the cluster's state needs to be understood.
    pub fn state(&self) -> String {
        let keys = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.underlay.name()))
            .args(["etcdctl", "--endpoints", &Etcd::client_url()])
            .args(["--command-timeout", "3s", "get", "--prefix", "/netd/"])
            .arg("--write-out=fields")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let keys: Vec<&str> = keys
            .lines()
            .filter(|l| l.starts_with("\"Key\"") || l.starts_with("\"Lease\""))
            .collect();
        format!(
            "{}--- etcd keys\n{}\n--- etcd log (tail)\n{}",
            self.logs(),
            keys.join("\n"),
            tail(&self.etcd.log(), 40)
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The daemons remove their sandboxes on drop, which may need etcd.
        self.etcd.resume();
        self.hosts.clear();
        // Sandboxes of a killed daemon, or ones it could not remove, are
        // namespaces under /run/netns named by the test: all start `TAG-`.
        let prefix = format!("{}-", self.tag);
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) {
                    let _ = Command::new("ip").args(["netns", "del", &name]).output();
                }
            }
        }
    }
}

/// The daemon flags of host `n`. Hosts 1 and 2 are named; host 3 is left
/// to the default (its advertise address), so both forms are exercised.
fn cluster_flags(n: usize, addr: &str) -> Vec<String> {
    let store = format!("etcd://{ETCD_IP}:2379");
    let mut v = vec![
        "--cluster-store".to_string(),
        store,
        "--cluster-advertise".to_string(),
        addr.to_string(),
        "--cluster-ttl".to_string(),
        format!("{}s", TTL.as_secs()),
    ];
    if n < 3 {
        v.extend(["--cluster-host".to_string(), format!("h{n}")]);
    }
    v
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
