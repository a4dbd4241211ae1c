//! netd daemons the tests start (and the ones the plugin starts), and the
//! world most tests build on.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::*;

/// What most integration tests start from: a daemon in a host namespace of
/// the test's own, and names for what the test creates.
pub struct World {
    pub host: Netns,
    pub daemon: Daemon,
    /// `PREFIX<pid>TAG`: every namespace and object the test names starts so.
    pub tag: String,
}

impl World {
    /// `prefix` is the test file's (a few letters), `tag` the test's.
    /// Tests run in parallel in one process: a (prefix, tag) used twice
    /// would share namespaces and state, so it panics.
    pub fn new(prefix: &str, tag: &str) -> World {
        static TAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let tag = format!("{prefix}{}{tag}", std::process::id());
        let mut tags = TAGS.lock().unwrap_or_else(|p| p.into_inner());
        assert!(!tags.contains(&tag), "world tag {tag:?} used twice");
        tags.push(tag.clone());
        drop(tags);
        let host = Netns::new(&format!("{tag}-host"));
        let daemon = Daemon::start(&host);
        World { host, daemon, tag }
    }

    /// A name of the test's: `TAG-s`.
    pub fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.tag)
    }

    /// `netd network create --ipv6 --subnet V4 --subnet V6 [EXTRA] NAME`.
    pub fn dual_network(&self, name: &str, v4: &str, v6: &str, extra: &[&str]) {
        let mut args = vec![
            "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6,
        ];
        args.extend_from_slice(extra);
        args.push(name);
        self.cli(&args);
    }

    /// `netd ARGS`, which must succeed: its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        self.daemon.cli_ok(args)
    }

    /// Networks and sandboxes as the CLI lists them, and the host's links
    /// with their addresses (not their operational state, which a bridge
    /// changes on its own when a port's carrier comes up): for "a refused
    /// request changed nothing".
    pub fn snapshot(&self) -> (serde_json::Value, serde_json::Value, String) {
        (
            self.daemon.cli_json(&["network", "ls", "--format", "json"]),
            self.daemon.cli_json(&["sandbox", "ls", "--format", "json"]),
            links_and_addresses(&self.host),
        )
    }
}

/// `netd daemon` in a host namespace, with its own state, run dir and
/// socket; killed and reaped on drop. Sandboxes it created are removed first.
pub struct Daemon {
    child: Option<std::process::Child>,
    dir: PathBuf,
    host: String,
    extra: Vec<String>,
    /// A command the daemon is started through (`prlimit --nofile=...`).
    wrap: Vec<String>,
    /// Extra environment (`DBUS_SYSTEM_BUS_ADDRESS` of a test's own bus).
    env: Vec<(String, String)>,
}

impl Daemon {
    pub fn start(host: &Netns) -> Daemon {
        Daemon::start_with(host, &[])
    }

    /// Start with extra `netd daemon` flags.
    pub fn start_with(host: &Netns, extra: &[&str]) -> Daemon {
        Daemon::start_wrapped(host, &[], extra)
    }

    /// Start through `wrap` (a command that execs the rest of its command
    /// line, such as `prlimit --nofile=1024:4096`), with extra flags.
    pub fn start_wrapped(host: &Netns, wrap: &[&str], extra: &[&str]) -> Daemon {
        Daemon::start_full(host, wrap, &[], extra)
    }

    /// Start with extra environment variables and flags.
    pub fn start_env(host: &Netns, env: &[(&str, &str)], extra: &[&str]) -> Daemon {
        Daemon::start_full(host, &[], env, extra)
    }

    fn start_full(host: &Netns, wrap: &[&str], env: &[(&str, &str)], extra: &[&str]) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("netd-test-{}-{}", host.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            host: host.name().to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrap: wrap.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("netd.sock")
    }

    /// The daemon's `--state-dir` (for a second netd process on its store).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("daemon.log")).unwrap();
        let mut cmd = match self.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("nsenter");
                c
            }
            None => Command::new("nsenter"),
        };
        let child = cmd
            .arg(format!("--net=/run/netns/{}", self.host))
            .arg(netd_bin())
            .args(["--socket"])
            .arg(self.socket())
            .args(["daemon", "--state-dir"])
            .arg(self.dir.join("state"))
            .arg("--run-dir")
            .arg(self.dir.join("run"))
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    /// The daemon's pid (the wrapper and nsenter exec it, so it is theirs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// What the daemon wrote to stderr so far (for failure reports).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
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

    /// The stock docker CLI against this daemon's socket.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("the docker CLI (scripts/setup.sh installs one)")
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

    /// `METHOD PATH` with an optional JSON body on the daemon's API socket
    /// (netd-api's client, which every client of netd uses): the status and
    /// the response body.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let client = netd_api::blocking::Client::new(self.socket()).expect("client runtime");
        let method = netd_api::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let (status, body) = client
            .raw(method, path, body.map(|b| b.to_string().into()))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET PATH`, which must succeed, parsed.
    pub fn api_get(&self, path: &str) -> serde_json::Value {
        let (code, text) = self.api("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(args)).expect("JSON output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Sandboxes' namespaces live under /run/netns: remove them through netd.
        // Never panic here (a panic while unwinding aborts every test).
        let ls = Command::new(netd_bin())
            .arg("--socket")
            .arg(self.socket())
            .args(["sandbox", "ls", "--quiet"])
            .output();
        if let Ok(out) = ls {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["sandbox", "rm", "--force"];
                args.extend(ids.iter().map(String::as_str));
                let _ = Command::new(netd_bin())
                    .arg("--socket")
                    .arg(self.socket())
                    .args(&args)
                    .output();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon something else started (netd-cni does, for DNS), stopped by the
/// pid it wrote when the test ends.
pub struct StartedDaemon(pub PathBuf);

impl Drop for StartedDaemon {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let Ok(pid) = pid.trim().parse::<i32>() else {
            return;
        };
        // Only a netd process: the pid file may be stale.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "netd" {
            return;
        }
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `NAME ADDR/PREFIX...` per link in `ns`, one line each, without
/// link-local addresses.
fn links_and_addresses(ns: &Netns) -> String {
    let mut out = String::new();
    for l in ns.json(&["addr"]).as_array().into_iter().flatten() {
        out.push_str(l["ifname"].as_str().unwrap_or("?"));
        // Link-local addresses are the kernel's, made when a link first
        // gets a carrier, whatever netd does.
        let addrs = l["addr_info"].as_array().into_iter().flatten();
        for a in addrs.filter(|a| a["scope"] != "link") {
            out.push_str(&format!(
                " {}/{}",
                a["local"].as_str().unwrap_or("?"),
                a["prefixlen"]
            ));
        }
        out.push('\n');
    }
    out
}
