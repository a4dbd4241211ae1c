//! Test world helpers: namespaces and processes that clean up on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace's binaries, built once per test binary (cargo builds other
/// packages' binaries for integration tests only when asked).
fn workspace_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    BUILD.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "netd", "-p", "netd-cni"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p netd -p netd-cni failed");
    });
    root.join("target/debug").join(name)
}

pub fn netd_bin() -> PathBuf {
    workspace_bin("netd")
}

pub fn cni_bin() -> PathBuf {
    workspace_bin("netd-cni")
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

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    pub fn exists(name: &str) -> bool {
        Path::new(&format!("/run/netns/{name}")).exists()
    }

    pub fn run_ok(&self, cmd: &str, args: &[&str]) -> String {
        self.output_ok(cmd, args)
    }

    pub fn output_ok(&self, cmd: &str, args: &[&str]) -> String {
        let net = format!("--net={}", self.path());
        let mut full = vec![net.as_str(), cmd];
        full.extend_from_slice(args);
        // nsenter keeps the mount namespace (see TESTING.md gotchas).
        let out = Command::new("nsenter")
            .args(&full)
            .output()
            .expect("run nsenter");
        check(cmd, args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A process we started, killed by pid and reaped on drop.
pub struct Child(std::process::Child);

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

/// `netd daemon` in a host namespace, with its own state, run dir and
/// socket; killed and reaped on drop. Sandboxes it created are removed first.
pub struct Daemon {
    child: Option<std::process::Child>,
    dir: PathBuf,
    host: String,
    extra: Vec<String>,
}

impl Daemon {
    pub fn start(host: &Netns) -> Daemon {
        Daemon::start_with(host, &[])
    }

    /// Start with extra `netd daemon` flags.
    pub fn start_with(host: &Netns, extra: &[&str]) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("netd-test-{}-{}", host.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            host: host.name().to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("netd.sock")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("daemon.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.host))
            .arg(netd_bin())
            .args(["--socket"])
            .arg(self.socket())
            .args(["daemon", "--state-dir"])
            .arg(self.dir.join("state"))
            .arg("--run-dir")
            .arg(self.dir.join("run"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn netd daemon");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            // The socket is bound before the start-up reconcile; a request
            // answered means the daemon is serving.
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
                && self.cli(&["network", "ls"]).status.success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "daemon did not come up: {}",
            std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
        );
    }

    /// SIGKILL the daemon, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same state dir and socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(netd_bin())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run netd")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        check("netd", args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cli_err(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "netd {} should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(args)).expect("JSON output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Sandboxes' namespaces live under /run/netns: remove them through netd.
        if let Ok(out) = std::panic::catch_unwind(|| self.cli(&["sandbox", "ls", "--quiet"])) {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["sandbox", "rm", "--force"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.cli(&args);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether one ping from `ns` to `ip` is answered.
pub fn ping(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Join a host namespace to an "outside" one by a veth: host `PREFIX.1/24`,
/// outside `PREFIX.2/24` (PREFIX like "10.202.1").
pub fn uplink(host: &Netns, outside: &Netns, prefix: &str) {
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
}
