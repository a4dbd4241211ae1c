//! The test world for netd-cni on top of the workspace harness
//! (`netd-tests`): a host namespace the plugin runs in (as a runtime would
//! exec it there), container namespaces, an "outside" namespace joined to
//! the host by a veth, and a temporary state dir. Everything is removed on
//! drop, pass or fail. Names are `ndE<pid>-<test>-...` so parallel tests
//! never collide and leftovers are easy to find.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[allow(unused_imports)]
pub use netd_tests::{Child, Netns, StartedDaemon, TempDir, curl, run_ok};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_netd-cni");
/// The versions whose results list interfaces and `ips` (0.3.0 on).
pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The versions with `ip4`/`ip6` results (see legacy_versions.rs).
pub const LEGACY_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

pub fn spawn_in(ns: &Netns, cmd: &str, args: &[&str]) -> Child {
    netd_tests::spawn_in(ns.name(), cmd, args)
}

pub fn wait_listening(ns: &Netns, port: u16) {
    netd_tests::wait_listening(ns.name(), port)
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Success with a result on stdout.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
        self.json()
    }

    /// Success with nothing on stdout.
    pub fn silent(&self) {
        assert_eq!(
            (self.code, self.stdout.as_str()),
            (0, ""),
            "stderr: {}",
            self.stderr
        );
    }

    /// A failure with an error result on stdout: its code.
    pub fn error(&self) -> Value {
        assert_ne!(self.code, 0, "expected a failure: {}", self.stdout);
        let e = self.json();
        assert!(e["cniVersion"].is_string(), "{e}");
        assert!(e["code"].is_u64(), "{e}");
        assert!(e["msg"].is_string(), "{e}");
        e
    }
}

/// One test's world: its host namespace (where the plugin runs) and its
/// state dir.
pub struct World {
    pub tag: String,
    pub host: Netns,
    pub state: TempDir,
}

impl World {
    pub fn new(test: &str) -> World {
        // With `dns`, the plugin starts the `netd` beside it; `cargo test`
        // alone builds only this package's binaries, so build it (once).
        let netd = netd_tests::netd_bin();
        assert_eq!(
            netd.parent(),
            std::path::Path::new(PLUGIN).parent(),
            "netd must sit beside netd-cni"
        );
        let tag = format!("ndE{}-{test}", std::process::id());
        World {
            host: Netns::new(&format!("{tag}-host")),
            state: TempDir::new(&format!("{tag}-state")),
            tag,
        }
    }

    /// A container namespace `<tag>-<name>`, removed with the world.
    pub fn container(&self, name: &str) -> Netns {
        Netns::new(&format!("{}-{name}", self.tag))
    }

    /// Exec the plugin exactly as libcni does: a clean environment with
    /// the CNI_* variables, the configuration on stdin, the result on stdout;
    /// here inside the host namespace, with the test's state dir.
    pub fn exec(&self, env: &[(&str, &str)], stdin: &str) -> Out {
        exec_in(
            &self.host.path(),
            PLUGIN,
            &self.state.0,
            env,
            stdin.as_bytes(),
        )
    }

    pub fn exec_plugin(&self, plugin: &str, env: &[(&str, &str)], stdin: &str) -> Out {
        exec_in(
            &self.host.path(),
            plugin,
            &self.state.0,
            env,
            stdin.as_bytes(),
        )
    }

    /// `CNI_COMMAND` for container `id` (namespace `ns`, interface `ifname`).
    pub fn cmd(
        &self,
        command: &str,
        id: &str,
        ns: Option<&Netns>,
        ifname: &str,
        conf: &Value,
    ) -> Out {
        self.cmd_args(
            command,
            id,
            ns.map(Netns::path).as_deref(),
            ifname,
            "",
            conf,
        )
    }

    pub fn cmd_args(
        &self,
        command: &str,
        id: &str,
        netns: Option<&str>,
        ifname: &str,
        args: &str,
        conf: &Value,
    ) -> Out {
        let mut env = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        if let Some(p) = netns {
            env.push(("CNI_NETNS", p));
        }
        if !args.is_empty() {
            env.push(("CNI_ARGS", args));
        }
        self.exec(&env, &conf.to_string())
    }

    /// The world's own netd daemon in its host namespace, on its state
    /// dir and socket (where the plugin looks), up once it answers; it
    /// ends when the guard drops.
    pub fn daemon(&self) -> Child {
        let run = self.state.0.join("run");
        let daemon = spawn_in(
            &self.host,
            netd_tests::netd_bin().to_str().unwrap(),
            &[
                "--socket",
                run.join("netd.sock").to_str().unwrap(),
                "daemon",
                "--state-dir",
                self.state.0.to_str().unwrap(),
                "--run-dir",
                run.to_str().unwrap(),
            ],
        );
        let start = std::time::Instant::now();
        while !self.netd(&["network", "ls"]).status.success() {
            assert!(start.elapsed().as_secs() < 20, "daemon did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        daemon
    }

    /// The netd CLI against the world's daemon.
    pub fn netd(&self, args: &[&str]) -> std::process::Output {
        Command::new(netd_tests::netd_bin())
            .arg("--socket")
            .arg(self.state.0.join("run/netd.sock"))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn add(&self, id: &str, ns: &Netns, conf: &Value) -> Value {
        self.cmd("ADD", id, Some(ns), "eth0", conf).ok()
    }

    /// The netd-cni veths in the host namespace.
    pub fn veths(&self) -> Vec<String> {
        self.host.links("nd-")
    }

    /// The veths left once DEL's reaper has had time: DEL returns before a
    /// retired pair is deleted, by a process of its own, a few ms later.
    pub fn veths_after_reaping(&self, present: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let v = self.veths();
            if v.len() <= present || std::time::Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Join an "outside" namespace to the host by a veth: host
    /// `PREFIX.1/24`, outside `PREFIX.2/24`.
    pub fn outside(&self, prefix: &str) -> Netns {
        let out = self.container("out");
        self.host.run_ok(
            "ip",
            &[
                "link",
                "add",
                "uplink",
                "type",
                "veth",
                "peer",
                "name",
                "uplink",
                "netns",
                out.name(),
            ],
        );
        self.host.run_ok(
            "ip",
            &["addr", "add", &format!("{prefix}.1/24"), "dev", "uplink"],
        );
        self.host.run_ok("ip", &["link", "set", "uplink", "up"]);
        out.run_ok(
            "ip",
            &["addr", "add", &format!("{prefix}.2/24"), "dev", "uplink"],
        );
        out.run_ok("ip", &["link", "set", "uplink", "up"]);
        out
    }

    /// Endpoints netd has recorded in this world's store.
    pub fn endpoints(&self) -> Vec<netd::model::Endpoint> {
        let store = netd::store::Store::open(&self.state.0).unwrap();
        store.read(netd::store::all_endpoints).unwrap()
    }

    pub fn sandboxes(&self) -> Vec<netd::model::Sandbox> {
        let store = netd::store::Store::open(&self.state.0).unwrap();
        store.read(netd::store::sandboxes).unwrap()
    }
}

/// Run `plugin` in the namespace at `netns`.
pub fn exec_in(netns: &str, plugin: &str, state: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Out {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={netns}"))
        .arg(plugin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NETD_STATE_DIR", state)
        .env("NETD_SOCKET", state.join("run/netd.sock"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the plugin");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A plugin configuration as a runtime hands it over.
pub fn conf(version: &str, name: &str, subnet: &str) -> Value {
    json!({ "cniVersion": version, "name": name, "type": "netd-cni", "subnet": subnet })
}
