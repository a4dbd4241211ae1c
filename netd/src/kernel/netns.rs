//! Network namespaces: create and remove named ones the way `ip netns` does,
//! and run code inside one.
//!
//! Code runs inside a namespace on the calling thread, which joins it for
//! the duration of a synchronous closure and then returns to where it was
//! (a thread's network namespace is its own; the process's other threads
//! are not affected). Sockets created meanwhile keep belonging to the
//! namespace they were created in. Not a helper thread: starting one and
//! waiting for it cost each call a thread start and two wake-ups,
//! milliseconds when the machine is busy starting containers.

use crate::model::Resolver;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

pub fn named_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Run `f` on the calling thread while it is in the network namespace at
/// `path`. `f` must be synchronous: nothing else runs on this thread
/// meanwhile, so no task ever sees the wrong namespace.
pub fn in_netns<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let ns =
        File::open(path).with_context(|| format!("open network namespace {}", path.display()))?;
    let _back = Away::from_home()?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("join network namespace {}", path.display()))?;
    f()
}

/// Run `f` on the calling thread in a new network namespace of its own.
fn in_new_netns<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _back = Away::from_home()?;
    unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    f()
}

/// Takes the thread back to the namespace it was in when dropped, on every
/// path out (errors and panics included).
struct Away {
    home: File,
}

impl Away {
    fn from_home() -> Result<Away> {
        let home = File::open("/proc/thread-self/ns/net")
            .context("open this thread's network namespace")?;
        Ok(Away { home })
    }
}

impl Drop for Away {
    fn drop(&mut self) {
        if let Err(e) = setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Carrying on would put every later socket of this thread (the
            // runtime's, the firewall's) in a sandbox's namespace.
            eprintln!("netd: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

/// `/run/netns` must be a shared mount point, as `ip netns add` makes it, so a
/// namespace mounted here later is seen by processes in other mount namespaces
/// (for example those `ip netns exec` creates).
fn ensure_run_dir_shared() -> Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR).context("create /run/netns")?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if mount(
        None::<&str>,
        NETNS_RUN_DIR,
        None::<&str>,
        shared,
        None::<&str>,
    )
    .is_ok()
    {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself, then make it shared.
    mount(
        Some(NETNS_RUN_DIR),
        NETNS_RUN_DIR,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("bind-mount /run/netns")?;
    mount(
        None::<&str>,
        NETNS_RUN_DIR,
        None::<&str>,
        shared,
        None::<&str>,
    )
    .context("make /run/netns shared")?;
    Ok(())
}

/// Create a new network namespace bound at `/run/netns/NAME`, like
/// `ip netns add NAME`, without forking. Fails if the name exists.
pub fn create_named(name: &str) -> Result<PathBuf> {
    ensure_run_dir_shared()?;
    let target = named_path(name);
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .with_context(|| {
            format!(
                "create {} (does the namespace already exist?)",
                target.display()
            )
        })?;
    let res = in_new_netns(|| {
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("bind-mount the new namespace")
    });
    match res {
        Ok(()) => Ok(target),
        Err(e) => {
            let _ = std::fs::remove_file(&target);
            Err(e)
        }
    }
}

/// Remove a namespace netd created. Gone already is fine.
pub fn delete_named(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmount {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

/// Whether `path` names a live network namespace (a bind mount of one, or a
/// /proc ns link), as opposed to a stale file.
pub fn is_netns(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    match nix::sys::statfs::statfs(path) {
        Ok(s) => s.filesystem_type().0 == NSFS_MAGIC,
        Err(_) => false,
    }
}

/// Which namespace a path names: the device and inode of its nsfs file,
/// the same for every path to one namespace (`/run/netns/X`,
/// `/proc/PID/ns/net`, a bind mount elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// The namespace at `path`, if it names one.
pub fn ns_id(path: &Path) -> Option<NsId> {
    if !is_netns(path) {
        return None;
    }
    file_id(path)
}

/// The device and inode of whatever `path` names, without checking that it
/// is a namespace: one `stat`, for comparing many paths with an [`NsId`]
/// (only an nsfs file has an nsfs device).
pub fn file_id(path: &Path) -> Option<NsId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The namespace the calling thread is in.
pub fn thread_ns_id() -> Option<NsId> {
    ns_id(Path::new("/proc/thread-self/ns/net"))
}

/// The namespace this process runs in, as a path another process can open.
pub fn own_netns_path() -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/net", std::process::id()))
}

/// Write a sysctl under /proc/sys/net as seen from the namespace at `path`.
pub fn set_sysctl(path: &Path, key: &str, value: &str) -> Result<()> {
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    in_netns(path, || {
        // /proc/sys/net resolves against the namespace of the thread that opens it.
        let cur = std::fs::read_to_string(&file).with_context(|| format!("read {file}"))?;
        if cur.trim() != value {
            std::fs::write(&file, value).with_context(|| format!("write {file}"))?;
        }
        Ok(())
    })
}

/// Per-namespace files, as `ip netns exec` bind-mounts them over /etc.
pub fn etc_dir(name: &str) -> PathBuf {
    Path::new("/etc/netns").join(name)
}

/// Point the sandbox's resolver at netd's DNS server, with its own search
/// domains and options or else the host's search domains and `ndots:0` (as
/// Docker does, so single names are tried as is).
pub fn write_resolv_conf(name: &str, dns: &Resolver) -> Result<()> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let text = sandbox_resolv_conf(&host, dns);
    let dir = etc_dir(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("resolv.conf"), text)
        .with_context(|| format!("write {}/resolv.conf", dir.display()))
}

/// A sandbox's resolv.conf given the host's. Without a search list of its
/// own, the one the host's resolver uses: the last `search` or `domain`
/// line (resolv.conf(5)). Every value was checked (`model::resolver`), so
/// none adds a line.
fn sandbox_resolv_conf(host: &str, dns: &Resolver) -> String {
    let search: Vec<String> = if dns.search.is_empty() {
        // Lines that do not parse are skipped: the search list is all we take.
        let (cfg, _errors) = resolv_conf::Config::parse_with_errors(host.as_bytes());
        cfg.get_last_search_or_domain().cloned().collect()
    } else {
        dns.search.iter().map(|d| d.to_string()).collect()
    };
    let mut text = String::from("# written by netd\nnameserver 127.0.0.11\n");
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    text.push_str(&format!("options {}\n", dns.options_line().join(" ")));
    text
}

pub fn remove_etc(name: &str) {
    let _ = std::fs::remove_dir_all(etc_dir(name));
}

#[cfg(test)]
mod tests {
    use super::sandbox_resolv_conf;
    use crate::model::Resolver;

    #[test]
    fn sandbox_resolv_conf_keeps_the_hosts_search_list() {
        let host = "# host\nnameserver 10.0.0.1\nsearch lan corp.example\noptions rotate\n";
        let none = &Resolver::default();
        assert_eq!(
            sandbox_resolv_conf(host, none),
            "# written by netd\nnameserver 127.0.0.11\nsearch lan corp.example\noptions ndots:0\n"
        );
        assert_eq!(
            sandbox_resolv_conf("domain home.arpa\nnameserver bad\n", none),
            "# written by netd\nnameserver 127.0.0.11\nsearch home.arpa\noptions ndots:0\n"
        );
        assert_eq!(
            sandbox_resolv_conf("", none),
            "# written by netd\nnameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn a_sandboxs_own_search_list_and_options_replace_the_hosts() {
        let host = "nameserver 10.0.0.1\nsearch lan\n";
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let own = Resolver::parse(
            &s(&["10.0.0.53"]),
            &s(&["svc.local", "corp"]),
            &s(&["rotate"]),
        )
        .unwrap();
        assert_eq!(
            sandbox_resolv_conf(host, &own),
            "# written by netd\nnameserver 127.0.0.11\nsearch svc.local corp\noptions rotate ndots:0\n"
        );
        let ndots = Resolver::parse(&[], &[], &s(&["ndots:3"])).unwrap();
        assert_eq!(
            sandbox_resolv_conf(host, &ndots),
            "# written by netd\nnameserver 127.0.0.11\nsearch lan\noptions ndots:3\n"
        );
    }
}
