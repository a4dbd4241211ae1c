//! Finishing a DEL after it has returned. Deleting a veth blocks for an RCU
//! grace period (~20 ms here), and so does closing the netfilter socket
//! after a commit that removed elements; the runtime waits for neither.
//! DEL retires its links (down and renamed in the sandbox: nothing of the
//! attachment is usable, its interface name and address are free) and
//! hands their deletion, its firewall socket, and telling the DNS daemon to
//! forget the names, to a detached copy of this plugin, which does them in
//! the next few milliseconds. Should that copy die first, the daemon's
//! reconcile removes netd-named links that no endpoint owns.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netd::kernel::Netlink;
use netd::model::HOST_VETH_PREFIX;

/// The variable that turns this binary into the reaper: the host veths to
/// delete, comma-separated.
const VAR: &str = "NETD_CNI_REAP";
/// The daemon socket to send a DNS sync to first, if any.
const DNS_VAR: &str = "NETD_CNI_REAP_DNS";

/// Start the reaper for `links` (and a DNS sync through `dns`), holding
/// `hold` open until it exits. Not waited for: its output goes nowhere and
/// it has a process group of its own, so a runtime waiting for the plugin's
/// stdout, or signalling its process group, is not held up by it.
pub fn spawn(links: &[String], dns: Option<&Path>, hold: Option<OwnedFd>) {
    if links.is_empty() && dns.is_none() {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("netd-cni: cannot find this binary to finish the DEL: {e}");
            return;
        }
    };
    let mut cmd = Command::new(exe);
    cmd.env(VAR, links.join(","))
        .env_remove(DNS_VAR)
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(d) = dns {
        cmd.env(DNS_VAR, d);
    }
    // Its own process group, so that signals for the runtime's group do not
    // reach it; no pre_exec hook, so std can use posix_spawn, which is
    // cheaper than fork for a process this size.
    cmd.process_group(0);
    // The child inherits a descriptor without close-on-exec.
    // SAFETY: dup of a descriptor we own; the copy is closed below.
    let inherited = hold
        .as_ref()
        .map(|fd| unsafe { libc::dup(fd.as_raw_fd()) })
        .filter(|fd| *fd >= 0);
    let spawned = cmd.spawn();
    if let Some(fd) = inherited {
        // SAFETY: closing the copy made above, which nothing else uses.
        unsafe { libc::close(fd) };
    }
    if let Err(e) = spawned {
        eprintln!("netd-cni: cannot start the reaper, finishing the DEL now: {e}");
        finish(links, dns);
    }
}

fn finish(links: &[String], dns: Option<&Path>) {
    if let Some(sock) = dns {
        crate::dns::dns_sync(sock);
    }
    delete_now(links);
}

/// Delete `links` in this process, waiting for each.
fn delete_now(links: &[String]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let Ok(host) = Netlink::current() else {
            return;
        };
        for l in links {
            if let Err(e) = host.delete_link(l).await {
                eprintln!("netd-cni: delete {l}: {e:#}");
            }
        }
    });
}

/// When this process was started as the reaper: do its work and exit.
/// Only netd's host veth names are taken, whatever the variable says.
pub fn run_if_asked() {
    let Some(list) = std::env::var_os(VAR) else {
        return;
    };
    let links: Vec<String> = list
        .to_string_lossy()
        .split(',')
        .filter(|l| l.starts_with(HOST_VETH_PREFIX) && l.len() <= 15)
        .map(str::to_string)
        .collect();
    let dns = std::env::var_os(DNS_VAR).map(PathBuf::from);
    finish(&links, dns.as_deref());
    std::process::exit(0);
}
