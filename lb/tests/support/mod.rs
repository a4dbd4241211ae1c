//! The world of a netd-lb test, on the workspace harness (`netd-tests`):
//! a host namespace running `netd daemon`, a network, sandboxes with small
//! backends, and netd-lb itself. Everything is made in namespaces named
//! `ndF<pid><tag>-...` and removed on drop, pass or fail; processes are
//! killed by pid. Only what is particular to the balancer lives here.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// (Each test crate uses its own part of these.)
#[allow(unused_imports)]
pub use netd_tests::{Child, Daemon, Netns, TempDir, in_ns, run_ok, spawn_in, wait_connectable};

pub mod standins;

pub const BACKEND_PY: &str = include_str!("backend.py");
pub const RECORDER_PY: &str = include_str!("recorder.py");

pub fn lb_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netd-lb"))
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request on a fresh connection (call inside a namespace).
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    let mut c = KeepAlive::connect(addr)?;
    c.request(path, headers, true)
}

/// A client connection that can carry several requests.
pub struct KeepAlive {
    r: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(addr: &str) -> std::io::Result<KeepAlive> {
        let s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        Ok(KeepAlive {
            r: BufReader::new(s),
        })
    }

    pub fn request(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        close: bool,
    ) -> std::io::Result<Resp> {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: lb.test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        self.r.get_mut().write_all(req.as_bytes())?;
        let mut status_line = String::new();
        if self.r.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut len = None;
        loop {
            let mut l = String::new();
            self.r.read_line(&mut l)?;
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = Vec::new();
        match len {
            Some(n) => {
                body.resize(n, 0);
                self.r.read_exact(&mut body)?;
            }
            None => {
                self.r.read_to_end(&mut body)?;
            }
        }
        Ok(Resp {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Removes namespaces of ours that netd left behind (a sandbox it could
/// not remove): runs after the daemon is gone, before the host goes.
struct Sweep {
    prefix: String,
    keep: String,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("{}-", self.prefix)) && n != self.keep {
                let _ = Command::new("ip").args(["netns", "del", &n]).output();
            }
        }
    }
}

/// A test's world: host namespace, daemon, one network `net`.
pub struct World {
    pub prefix: String,
    pub subnet: String,
    // Drop order (field order): backends, the daemon (which removes its
    // sandboxes), adopted namespaces, leftovers, the host, the directory.
    servers: Mutex<HashMap<String, Child>>,
    pub daemon: Daemon,
    adopted: Mutex<Vec<Netns>>,
    _sweep: Sweep,
    pub host: Netns,
    dir: TempDir,
}

impl World {
    /// `tag` names the test (a few letters); `octet` picks 10.196.OCTET.0/24.
    pub fn new(tag: &str, octet: u8) -> World {
        let prefix = format!("ndF{}{tag}", std::process::id());
        let dir = TempDir::new(&format!("netd-lb-{prefix}"));
        std::fs::write(dir.0.join("backend.py"), BACKEND_PY).unwrap();
        let host = Netns::new(&format!("{prefix}-host"));
        let daemon = Daemon::start(&host);
        let w = World {
            _sweep: Sweep {
                prefix: prefix.clone(),
                keep: host.name().to_string(),
            },
            prefix,
            subnet: format!("10.196.{octet}"),
            servers: Mutex::new(HashMap::new()),
            daemon,
            adopted: Mutex::new(Vec::new()),
            host,
            dir,
        };
        w.netd_ok(&[
            "network",
            "create",
            "--subnet",
            &format!("10.196.{octet}.0/24"),
            "net",
        ]);
        w
    }

    /// The test's scratch directory (logs, config files).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir.0
    }

    pub fn socket(&self) -> PathBuf {
        self.daemon.socket()
    }

    pub fn host_ns(&self) -> &str {
        self.host.name()
    }

    /// SIGKILL the daemon and start it again on the same state.
    pub fn restart_daemon(&mut self) {
        self.daemon.restart();
    }

    pub fn kill_daemon(&mut self) {
        self.daemon.kill9();
    }

    pub fn netd(&self, args: &[&str]) -> Output {
        self.daemon.cli(args)
    }

    pub fn netd_ok(&self, args: &[&str]) -> String {
        self.daemon.cli_ok(args)
    }

    /// The sandbox's full name for a short one.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// Create sandbox SHORT on `net` with `aliases`; its address.
    pub fn sandbox(&self, short: &str, aliases: &[&str]) -> String {
        let name = self.name(short);
        let mut args = vec!["sandbox", "create", "--network", "net"];
        for a in aliases {
            args.extend(["--alias", a]);
        }
        args.push(&name);
        self.netd_ok(&args);
        self.ip_of(&name)
    }

    /// A namespace of ours (not yet a sandbox), for `adopt`.
    pub fn bare_ns(&self, short: &str) -> String {
        let ns = Netns::new(&self.name(short));
        let name = ns.name().to_string();
        self.adopted.lock().unwrap().push(ns);
        name
    }

    /// Make the existing namespace SHORT a sandbox on `net`.
    pub fn adopt(&self, short: &str, aliases: &[&str]) -> String {
        let name = self.name(short);
        let path = format!("/run/netns/{name}");
        let mut args = vec!["sandbox", "create", "--network", "net", "--netns", &path];
        for a in aliases {
            args.extend(["--alias", a]);
        }
        args.push(&name);
        self.netd_ok(&args);
        self.ip_of(&name)
    }

    pub fn rm(&self, short: &str) {
        self.netd_ok(&["sandbox", "rm", &self.name(short)]);
    }

    /// `netd network inspect net`, as JSON.
    pub fn inspect(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.netd_ok(&["network", "inspect", "net"])).unwrap();
        if v.is_array() { v[0].clone() } else { v }
    }

    pub fn ip_of(&self, name: &str) -> String {
        let net = self.inspect();
        net["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["sandbox_name"] == name)
            .and_then(|e| e["ip"].as_str())
            .unwrap_or_else(|| panic!("no endpoint for {name}: {net}"))
            .to_string()
    }

    /// Start a backend (`http` or `echo`) in sandbox SHORT on `port`,
    /// answering with the sandbox's name; wait until the host reaches it.
    pub fn serve(&self, short: &str, mode: &str, port: u16) {
        self.spawn_server(short, mode, port);
        let name = self.name(short);
        let ip = self.ip_of(&name);
        assert!(
            wait_connectable(
                self.host_ns(),
                &format!("{ip}:{port}"),
                Duration::from_secs(10)
            ),
            "backend in {name} does not answer on {ip}:{port}"
        );
    }

    /// Start a backend in namespace SHORT without waiting for it.
    pub fn spawn_server(&self, short: &str, mode: &str, port: u16) {
        self.spawn_server_on(short, mode, port, "0.0.0.0");
    }

    /// Start a backend in namespace SHORT bound to `addr` (`::` for IPv6).
    pub fn spawn_server_on(&self, short: &str, mode: &str, port: u16, addr: &str) {
        let name = self.name(short);
        let script = self.dir().join("backend.py");
        let child = spawn_in(
            &name,
            "python3",
            &[
                script.to_str().unwrap(),
                mode,
                &name,
                &port.to_string(),
                addr,
            ],
        );
        self.servers
            .lock()
            .unwrap()
            .insert(short.to_string(), child);
    }

    /// Start the recording backend (recorder.py) in sandbox SHORT on
    /// `port`; the file it logs every request it reads to.
    pub fn record(&self, short: &str, port: u16) -> PathBuf {
        let script = self.dir().join("recorder.py");
        std::fs::write(&script, RECORDER_PY).unwrap();
        let log = self.dir().join(format!("{short}.requests"));
        std::fs::write(&log, "").unwrap();
        let name = self.name(short);
        let child = spawn_in(
            &name,
            "python3",
            &[
                script.to_str().unwrap(),
                &port.to_string(),
                log.to_str().unwrap(),
            ],
        );
        self.servers
            .lock()
            .unwrap()
            .insert(short.to_string(), child);
        let ip = self.ip_of(&name);
        assert!(
            wait_connectable(
                self.host_ns(),
                &format!("{ip}:{port}"),
                Duration::from_secs(10)
            ),
            "recorder in {name} does not answer on {ip}:{port}"
        );
        log
    }

    /// Kill sandbox SHORT's backend (SIGKILL, as a crash).
    pub fn kill_server(&self, short: &str) {
        self.servers.lock().unwrap().remove(short);
    }

    /// Run `f` in the host namespace.
    pub fn on_host<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_ns(self.host_ns(), f)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- netd daemon log ---\n{}", self.daemon.log());
        }
    }
}

/// netd-lb running in the world's host namespace, killed on drop.
pub struct Lb {
    child: Option<std::process::Child>,
    pub ns: String,
    pub log: PathBuf,
    pub listen: String,
    pub metrics: String,
}

impl Lb {
    /// Start with `args` (without --socket/--metrics, added here); wait
    /// until `listen` accepts connections.
    pub fn start(w: &World, listen: &str, args: &[&str]) -> Lb {
        Self::start_in(w, w.host_ns(), listen, args, true)
    }

    pub fn start_in(w: &World, ns: &str, listen: &str, args: &[&str], api: bool) -> Lb {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = w.dir().join(format!("lb{n}.log"));
        let metrics = "127.0.0.1:9100".to_string();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg(lb_bin())
            .args(args);
        if !args.contains(&"--config") {
            if api {
                cmd.arg("--socket").arg(w.socket());
            }
            cmd.args(["--metrics", &metrics]);
            if !args.contains(&"--threads") {
                cmd.args(["--threads", "2"]);
            }
        }
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("LB_TEST_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn netd-lb");
        let lb = Lb {
            child: Some(child),
            ns: ns.to_string(),
            log,
            listen: listen.to_string(),
            metrics,
        };
        assert!(
            wait_connectable(ns, listen, Duration::from_secs(10)),
            "netd-lb does not listen on {listen}:\n{}",
            lb.log_text()
        );
        lb
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling a child we started and have not reaped.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Wait for exit; its status, or None if still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        let c = self.child.as_mut()?;
        while start.elapsed() < within {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// One GET through the balancer from its namespace.
    pub fn get(&self, path: &str) -> std::io::Result<Resp> {
        let (addr, path) = (self.listen.clone(), path.to_string());
        in_ns(&self.ns, move || http_get(&addr, &path, &[]))
    }

    /// `n` sequential GETs; the bodies (or errors) in order.
    pub fn get_n(&self, path: &str, n: usize) -> Vec<Result<String, String>> {
        let (addr, path) = (self.listen.clone(), path.to_string());
        in_ns(&self.ns, move || {
            (0..n)
                .map(|_| match http_get(&addr, &path, &[]) {
                    Ok(r) if r.status == 200 => Ok(r.body.trim().to_string()),
                    Ok(r) => Err(format!("status {}: {}", r.status, r.body.trim())),
                    Err(e) => Err(e.to_string()),
                })
                .collect()
        })
    }

    pub fn metrics_text(&self) -> String {
        let addr = self.metrics.clone();
        in_ns(&self.ns, move || http_get(&addr, "/metrics", &[]))
            .map(|r| r.body)
            .unwrap_or_default()
    }

    /// The value of the sample whose name and labels start with `prefix`
    /// and contain every one of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let text = self.metrics_text();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|x| l.contains(x))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- netd-lb log ---\n{}", self.log_text());
        }
    }
}

/// Count how often each name appears.
pub fn tally(results: &[Result<String, String>]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in results.iter().flatten() {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}

pub fn failures(results: &[Result<String, String>]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect()
}

/// Write `data` on a TCP connection in namespace `ns`, half-close, and read
/// everything back.
pub fn tcp_roundtrip(ns: &str, addr: &str, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let addr = addr.to_string();
    in_ns(ns, move || {
        let s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = s.try_clone()?;
        let writer = std::thread::spawn(move || {
            w.write_all(&data)?;
            w.shutdown(Shutdown::Write)
        });
        let mut out = Vec::new();
        (&s).read_to_end(&mut out)?;
        writer.join().unwrap()?;
        Ok(out)
    })
}
