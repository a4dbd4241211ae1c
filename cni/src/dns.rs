//! The DNS hand-off: netd's DNS server lives in the daemon, which reads the
//! names this plugin records in the store (sandbox name, aliases, pod name).
//! After an ADD with `dns: true` the plugin tells a running daemon about the
//! new sandbox (`POST /netd/dns/sync?sandbox=NAME`: serve it and add its
//! names, without re-reading the rest), or starts one when none answers;
//! after a DEL, the reaper asks for a full re-read (`POST /netd/dns/sync`).
//! Failing to do so never fails the attach.
//!
//! The same hand-off makes the daemon serve ports published on `[::1]`
//! (its userland proxy follows the store after every request that may
//! change it), so it is made, and a daemon started, whenever the
//! `portMappings` have one ([`proxied`]), with DNS or without.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netd_api::{Client, DnsSync};
use netd_cni::NetConf;

use crate::{socket, state_dir};

/// Whether a `portMappings` entry publishes on `[::1]`: only the daemon's
/// proxy serves those (the kernel cannot NAT to `::1`).
pub fn proxied(conf: &NetConf) -> bool {
    conf.runtime_config.port_mappings.iter().any(|p| {
        p.spec()
            .parse::<netd::model::PortMapping>()
            .is_ok_and(|m| m.on_loopback6())
    })
}

/// How long an answer may take before the daemon counts as absent.
const ANSWER: Duration = Duration::from_secs(2);

/// The hand-off on its way: a task sending it beside the rest of the ADD,
/// its answer not waited for yet.
pub struct Handoff(tokio::task::JoinHandle<bool>);

/// Make sure a daemon serves DNS for the new sandbox (with
/// [`Handoff::finish`]): tell a running one,
/// or start one (detached, in this host namespace, on the same state) and
/// wait for it briefly, so the names answer as soon as ADD returns. Failing
/// to do so never fails the attach: the network works.
pub fn begin(conf: &NetConf, sandbox: &str) -> Handoff {
    let sock = socket(conf);
    let sandbox = sandbox.to_string();
    Handoff(tokio::spawn(async move {
        dns_sync_of(&sock, Some(sandbox)).await
    }))
}

impl Handoff {
    /// Wait for the daemon's answer; without one, start a daemon and wait
    /// for it briefly (a daemon that has just started reads everything).
    pub async fn finish(self, conf: &NetConf) {
        if let Ok(Ok(true)) = tokio::time::timeout(ANSWER, self.0).await {
            return;
        }
        let sock = socket(conf);
        if let Err(e) = start_daemon(conf, &sock) {
            eprintln!("netd-cni: could not start the netd daemon for DNS: {e}");
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < deadline {
            if dns_sync(&sock).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "netd-cni: the netd daemon did not answer on {} in time",
            sock.display()
        );
    }
}

/// `POST /netd/dns/sync`: re-read everything; true when the daemon answered.
pub async fn dns_sync(socket: &Path) -> bool {
    dns_sync_of(socket, None).await
}

/// `POST /netd/dns/sync[?sandbox=NAME]`; true when the daemon answered 2xx
/// in time.
async fn dns_sync_of(socket: &Path, sandbox: Option<String>) -> bool {
    let query = match serde_urlencoded::to_string(DnsSync { sandbox }) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    };
    let path = format!("/netd/dns/sync{query}");
    let client = Client::new(socket);
    let sent = client.post_empty(&path);
    matches!(tokio::time::timeout(ANSWER, sent).await, Ok(Ok(())))
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
