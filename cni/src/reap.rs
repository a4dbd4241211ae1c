//! Finishing a DEL after it has returned. Deleting a veth blocks for an RCU
//! grace period (~20 ms here), and so does closing the netfilter socket
//! after a commit that removed elements; the runtime waits for neither.
//! DEL retires its links (down and renamed in the sandbox: nothing of the
//! attachment is usable, its interface name and address are free) and
//! hands their deletion, its firewall socket, and telling the DNS daemon to
//! forget the names, to a detached copy of this plugin, which does them in
//! the next few milliseconds. Should that copy die first, the daemon's
//! reconcile removes netd-named links that no endpoint owns.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use netd::kernel::Netlink;
use netd::model::{HOST_VETH_PREFIX, is_ifb_name};

/// The variable that turns this binary into the reaper: the host veths (and
/// the ifbs beside them) to delete, comma-separated.
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
    if let Err(e) = fork_exec(links, dns, hold.as_ref()) {
        eprintln!("netd-cni: cannot start the reaper, finishing the DEL now: {e}");
        finish(links, dns);
    }
}

/// fork, then exec this binary in the child. Not posix_spawn: that returns
/// only once the child has exec'd, and on a busy machine (a runtime
/// starting many containers) waiting for the child to be scheduled cost the
/// DEL milliseconds. Everything the child needs is prepared before the
/// fork; between fork and exec it makes only async-signal-safe calls.
fn fork_exec(links: &[String], dns: Option<&Path>, hold: Option<&OwnedFd>) -> std::io::Result<()> {
    let cstr = |b: Vec<u8>| CString::new(b).map_err(std::io::Error::other);
    let exe = cstr(b"/proc/self/exe".to_vec())?;
    let mut env: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k == VAR || k == DNS_VAR || k == "CNI_COMMAND" {
            continue;
        }
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(cstr(kv)?);
    }
    env.push(cstr(format!("{VAR}={}", links.join(",")).into_bytes())?);
    if let Some(d) = dns {
        let mut kv = format!("{DNS_VAR}=").into_bytes();
        kv.extend_from_slice(d.as_os_str().as_bytes());
        env.push(cstr(kv)?);
    }
    let argv = [exe.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // The child keeps a copy of `hold` across exec: one without close-on-exec.
    // SAFETY: dup of a descriptor we own; the copy is closed below.
    let inherited = hold.map(|fd| unsafe { libc::dup(fd.as_raw_fd()) });
    // SAFETY: the child only calls async-signal-safe functions (setpgid,
    // dup2, execve, _exit) on data prepared above.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            libc::setpgid(0, 0);
            let n = null.as_raw_fd();
            libc::dup2(n, 0);
            libc::dup2(n, 1);
            libc::dup2(n, 2);
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    let forked = if pid < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    };
    if let Some(fd) = inherited.filter(|fd| *fd >= 0) {
        // SAFETY: closing the copy made above, which nothing else uses.
        unsafe { libc::close(fd) };
    }
    forked
}

/// The DNS re-read, then delete `links` in this process, waiting for each.
fn finish(links: &[String], dns: Option<&Path>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        if let Some(sock) = dns {
            crate::dns::dns_sync(sock).await;
        }
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
/// Only netd's host veth and ifb names are taken, whatever the variable says.
pub fn run_if_asked() {
    let Some(list) = std::env::var_os(VAR) else {
        return;
    };
    let links: Vec<String> = list
        .to_string_lossy()
        .split(',')
        .filter(|l| (l.starts_with(HOST_VETH_PREFIX) && l.len() <= 15) || is_ifb_name(l))
        .map(str::to_string)
        .collect();
    let dns = std::env::var_os(DNS_VAR).map(PathBuf::from);
    finish(&links, dns.as_deref());
    std::process::exit(0);
}
