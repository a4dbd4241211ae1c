//! The one test harness of the workspace: namespaces, processes and a
//! daemon that clean up on drop, so every integration test (here, in
//! `cni/tests` and `lb/tests`) builds its world the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
mod daemon;
pub use daemon::{Daemon, StartedDaemon, World};

/// `cargo build -p PACKAGE...` once per test binary (per `once`), then
/// where this profile's binaries are: cargo builds other packages'
/// binaries for integration tests only when asked.
fn built(once: &'static std::sync::Once, packages: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    once.call_once(|| {
        let mut args = vec!["build", "-q"];
        for p in packages {
            args.extend(["-p", p]);
        }
        let st = Command::new(env!("CARGO"))
            .args(&args)
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "cargo {} failed", args.join(" "));
    });
    bin_dir(&root)
}

/// Where cargo puts this profile's binaries: beside the running test
/// binary (`<target>/debug/deps/..`), which also holds under
/// `CARGO_TARGET_DIR`; `<root>/target/debug` otherwise.
fn bin_dir(root: &Path) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
        })
        .unwrap_or_else(|| root.join("target/debug"))
}

/// netd and netd-cni, built together on first use of either.
fn workspace_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    built(&BUILD, &["netd", "netd-cni"]).join(name)
}

pub fn netd_bin() -> PathBuf {
    workspace_bin("netd")
}

pub fn cni_bin() -> PathBuf {
    workspace_bin("netd-cni")
}

/// netd-lb, built on first use only (its dependencies are the workspace's
/// heaviest, and few tests outside lb/ need it).
pub fn lb_bin() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    built(&BUILD, &["netd-lb"]).join("netd-lb")
}

fn check(cmd: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    check(cmd, args, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace at /run/netns/NAME, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run_ok("ip", &["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        ns.run_ok("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace as `ip netns add` leaves it: `lo` never brought up (no
    /// address on it, no local routing table yet), as a runtime without
    /// CNI's `loopback` plugin hands one over.
    pub fn bare(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run_ok("ip", &["netns", "add", name]);
        Netns {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    pub fn exists(name: &str) -> bool {
        Path::new(&format!("/run/netns/{name}")).exists()
    }

    /// Run in this namespace with nsenter (keeps the mount namespace, see
    /// TESTING.md gotchas), whatever the outcome.
    pub fn output(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .arg(cmd)
            .args(args)
            .output()
            .expect("run nsenter")
    }

    /// Run in this namespace; panics with its output unless it succeeds.
    pub fn run_ok(&self, cmd: &str, args: &[&str]) -> String {
        let out = self.output(cmd, args);
        check(cmd, args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn output_ok(&self, cmd: &str, args: &[&str]) -> String {
        self.run_ok(cmd, args)
    }

    /// `ip -j ARGS` in this namespace.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.run_ok("ip", &full)).expect("ip -j output")
    }

    /// `ip -j link show NAME`, or None.
    pub fn link(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.output("ip", &["-j", "link", "show", "dev", name]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get(0).cloned())
    }

    /// Names of links whose name starts with `prefix`.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        self.json(&["link"])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// IPv4 CIDRs on `dev`.
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        self.json(&["-4", "addr", "show", "dev", dev])
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
            .collect()
    }

    pub fn default_gateway(&self) -> Option<String> {
        self.json(&["-4", "route", "show", "default"])
            .as_array()
            .and_then(|a| a.first().cloned())
            .and_then(|r| r["gateway"].as_str().map(str::to_string))
    }

    /// Whether one ping from here to `ip` is answered.
    pub fn ping(&self, ip: &str) -> bool {
        ping(&self.name, ip)
    }
}

/// A directory under the system temp dir, emptied at creation and removed
/// on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The HTTP status `curl` gets for `url` from inside `ns` ("000" when
/// nothing answers within 3 s).
pub fn curl(ns: &Netns, url: &str) -> String {
    let out = ns.output(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "3",
            url,
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A process we started, killed by pid and reaped on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_in(netns: &str, cmd: &str, args: &[&str]) -> Child {
    let path = format!("--net=/run/netns/{netns}");
    let mut full = vec![path.as_str(), cmd];
    full.extend_from_slice(args);
    Child(
        Command::new("nsenter")
            .args(&full)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    )
}

/// `curl --unix-socket SOCKET http://x/metrics`, as an operator would:
/// the daemon's Prometheus text.
pub fn scrape_metrics(socket: &std::path::Path) -> String {
    let out = Command::new("curl")
        .args(["-sfS", "--unix-socket"])
        .arg(socket)
        .arg("http://x/metrics")
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A TCP service in `netns` on every address of both families, greeting
/// every connection with `greeting`; ended when the guard drops.
pub fn greeter(netns: &str, port: u16, greeting: &str) -> Child {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::', {port})); s.listen(16)\n\
         while True:\n    c,a=s.accept(); c.sendall(b'{greeting}'); c.close()\n"
    );
    let child = spawn_in(netns, "python3", &["-c", &script]);
    wait_listening(netns, port);
    child
}

/// Wait until something listens on TCP `port` inside `netns`.
pub fn wait_listening(netns: &str, port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let out = Command::new("ip")
            .args(["netns", "exec", netns, "ss", "-Htln"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port} in {netns}");
}

/// Whether one ping from `ns` to `ip` is answered.
pub fn ping(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether one ping over IPv6 from `ns` to `ip` is answered (within 2 s).
pub fn ping6(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "2", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The global IPv6 addresses on `dev` in `ns` (`ADDR/PREFIX`), each with
/// those of its flags that say whether it is usable (tentative, dadfailed,
/// nodad).
pub fn addrs6_flags(ns: &str, dev: &str) -> Vec<(String, Vec<String>)> {
    let out = run_ok("ip", &["-j", "-n", ns, "-6", "addr", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    let mut res = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] != "global" {
                continue;
            }
            let flags = ["tentative", "dadfailed", "nodad"]
                .iter()
                .filter(|f| a[**f] == serde_json::Value::Bool(true))
                .map(|f| f.to_string())
                .collect();
            let addr = format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]);
            res.push((addr, flags));
        }
    }
    res
}

/// The global IPv6 addresses on `dev` in `ns` (`ADDR/PREFIX`).
pub fn addrs6(ns: &str, dev: &str) -> Vec<String> {
    addrs6_flags(ns, dev).into_iter().map(|(a, _)| a).collect()
}

/// The gateway of the IPv6 default route in `ns`, if there is one.
pub fn default_gateway6(ns: &str) -> Option<String> {
    let out = run_ok("ip", &["-j", "-n", ns, "-6", "route", "show", "default"]);
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v.get(0)?.get("gateway")?.as_str().map(str::to_string)
}

/// Join a host namespace to an "outside" one by a veth: host `PREFIX.1/24`,
/// outside `PREFIX.2/24` (PREFIX like "10.202.1").
pub fn uplink(host: &Netns, outside: &Netns, prefix: &str) {
    uplink_links(host, outside, prefix);
}

/// `uplink`, plus IPv6: host `PREFIX6::1/64`, outside `PREFIX6::2/64`
/// (PREFIX6 like "2001:db8:207:1"), without DAD so both answer at once.
pub fn uplink6(host: &Netns, outside: &Netns, prefix: &str, prefix6: &str) {
    let (up, upo) = uplink_links(host, outside, prefix);
    for (ns, dev, me) in [(host, &up, 1), (outside, &upo, 2)] {
        ns.run_ok(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{prefix6}::{me}/64"),
                "dev",
                dev,
                "nodad",
            ],
        );
    }
    // The first packets to a fresh veth's IPv6 addresses can go unanswered
    // until the kernel has the link ready (its solicited-node groups
    // joined): a test's first connection would then wait out neighbour
    // discovery. Until the outside answers the host, it is not an uplink.
    let outside6 = format!("{prefix6}::2");
    let ready = (0..50).any(|_| {
        host.output("ping", &["-6", "-c", "1", "-W", "1", &outside6])
            .status
            .success()
            || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
    });
    assert!(ready, "the IPv6 uplink to {outside6} never answered");
}

/// The uplink's veth pair, addressed and up: (host end, outside end).
fn uplink_links(host: &Netns, outside: &Netns, prefix: &str) -> (String, String) {
    let up = format!(
        "ndup{}{}",
        std::process::id() % 100_000,
        prefix.rsplit('.').next().unwrap_or("0")
    );
    let up = &up[..up.len().min(13)];
    let upo = format!("{up}o");
    run_ok(
        "ip",
        &[
            "link",
            "add",
            up,
            "netns",
            host.name(),
            "type",
            "veth",
            "peer",
            "name",
            &upo,
            "netns",
            outside.name(),
        ],
    );
    host.run_ok("ip", &["addr", "add", &format!("{prefix}.1/24"), "dev", up]);
    host.run_ok("ip", &["link", "set", up, "up"]);
    outside.run_ok(
        "ip",
        &["addr", "add", &format!("{prefix}.2/24"), "dev", &upo],
    );
    outside.run_ok("ip", &["link", "set", &upo, "up"]);
    (up.to_string(), upo)
}

/// Run `f` on a thread that has joined namespace `ns`: sockets it opens
/// live there, and the calling thread stays where it is.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a valid namespace fd; only this thread moves.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Connect from `ns` to ADDR:PORT over TCP (`[v6]:port` or `v4:port`) and
/// read until the server closes: what it said, or None when nothing
/// answered within 2 s.
pub fn tcp_read(ns: &str, addr: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR:PORT");
    in_ns(ns, move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        Some(buf)
    })
}

/// Whether `addr` accepts a TCP connection from namespace `ns` within
/// `within`.
pub fn wait_connectable(ns: &str, addr: &str, within: Duration) -> bool {
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR:PORT");
    in_ns(ns, move || {
        let start = Instant::now();
        while start.elapsed() < within {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        false
    })
}

/// What `dig @127.0.0.11` answered from inside a namespace.
#[derive(Debug)]
pub struct Dig {
    /// The header's status (NOERROR, NXDOMAIN, ...), or "no answer: ..."
    pub status: String,
    /// The last field of each answer record, in order (addresses, names).
    pub answers: Vec<String>,
    /// dig's whole output.
    pub text: String,
    pub took: Duration,
}

/// `dig @127.0.0.11 ARGS` from inside `ns`, one try of at most 3 s.
pub fn dig(ns: &str, args: &[&str]) -> Dig {
    let t = Instant::now();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["dig", "@127.0.0.11", "+tries=1", "+time=3"])
        .args(args)
        .output()
        .expect("run dig");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {text}"));
    let mut answers = Vec::new();
    let mut in_answer = false;
    for l in text.lines() {
        if l.starts_with(";; ANSWER SECTION") {
            in_answer = true;
        } else if in_answer && l.trim().is_empty() {
            in_answer = false;
        } else if in_answer {
            answers.push(l.split_whitespace().last().unwrap_or("").to_string());
        }
    }
    Dig {
        status,
        answers,
        text,
        took,
    }
}

/// Poll `f` every 50 ms until it is true or `within` has passed.
pub fn wait_until(within: Duration, f: impl FnMut() -> bool) -> bool {
    time_until(within, f).is_some()
}

/// How long until `f` holds, polled every 25 ms for at most `within`
/// (what a test measures and quotes: a restore after a reload, say).
pub fn time_until(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
