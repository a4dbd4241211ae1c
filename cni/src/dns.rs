//! The DNS hand-off: netd's DNS server lives in the daemon, which reads the
//! names this plugin records in the store (sandbox name, aliases, pod name).
//! After an ADD with `dns: true` the plugin tells a running daemon about the
//! new sandbox (`POST /netd/dns/sync?sandbox=NAME`: serve it and add its
//! names, without re-reading the rest), or starts one when none answers;
//! after a DEL, the reaper asks for a full re-read (`POST /netd/dns/sync`).
//! Failing to do so never fails the attach.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use netd_cni::NetConf;

use crate::{socket, state_dir};

/// The hand-off on its way: sent, its answer not read yet, so the caller
/// can do other work while the daemon does its part.
pub struct Handoff(Option<UnixStream>);

/// Make sure a daemon serves DNS for the new sandbox (with
/// [`Handoff::finish`]): tell a running one,
/// or start one (detached, in this host namespace, on the same state) and
/// wait for it briefly, so the names answer as soon as ADD returns. Failing
/// to do so never fails the attach: the network works.
pub fn begin(conf: &NetConf, sandbox: &str) -> Handoff {
    Handoff(send_sync(&socket(conf), Some(sandbox)))
}

impl Handoff {
    /// Wait for the daemon's answer; without one, start a daemon and wait
    /// for it briefly (a daemon that has just started reads everything).
    pub fn finish(self, conf: &NetConf) {
        if self.0.is_some_and(answered) {
            return;
        }
        let sock = socket(conf);
        if let Err(e) = start_daemon(conf, &sock) {
            eprintln!("netd-cni: could not start the netd daemon for DNS: {e}");
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if dns_sync(&sock) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!(
            "netd-cni: the netd daemon did not answer on {} in time",
            sock.display()
        );
    }
}

/// `POST /netd/dns/sync`: re-read everything; true when the daemon answered.
pub fn dns_sync(socket: &Path) -> bool {
    send_sync(socket, None).is_some_and(answered)
}

/// Send `POST /netd/dns/sync[?sandbox=NAME]`; the connection to read the
/// answer from, if the daemon took the request. Sandbox names are
/// `[A-Za-z0-9_.-]`: nothing to escape.
fn send_sync(socket: &Path, sandbox: Option<&str>) -> Option<UnixStream> {
    let mut s = UnixStream::connect(socket).ok()?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let query = sandbox.map(|n| format!("?sandbox={n}")).unwrap_or_default();
    let req = format!(
        "POST /netd/dns/sync{query} HTTP/1.1\r\nHost: netd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    Some(s)
}

/// Whether the daemon answered 200.
fn answered(mut s: UnixStream) -> bool {
    let mut head = [0u8; 16];
    matches!(s.read(&mut head), Ok(n) if n >= 12 && &head[9..12] == b"200")
}

fn start_daemon(conf: &NetConf, sock: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // The netd binary beside this plugin, else the one on PATH.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("netd")))
        .filter(|p| p.exists());
    let bin = beside.unwrap_or_else(|| PathBuf::from("netd"));
    let state = state_dir(conf);
    let run = sock
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/netd"));
    std::fs::create_dir_all(&state)?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(state.join("daemon.log"))?;
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--socket")
        .arg(sock)
        .arg("daemon")
        .arg("--state-dir")
        .arg(&state)
        .arg("--run-dir")
        .arg(&run)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon must outlive the
    // plugin and not share the runtime's session or terminal.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
    cmd.spawn().map(|_| ())
}
