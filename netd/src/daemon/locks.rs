//! The daemon's exclusive claims: one daemon per network namespace, one per
//! state dir, and its socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tokio::net::UnixListener;

use crate::lock::{self, FileLock};

/// Where daemons lock their network namespace. Not under the state or
/// run dir, which differ between daemons: two daemons with any settings in
/// one namespace must meet here. Only root may enter it, so no other user
/// can hold the lock and keep the daemon from starting (an abstract socket
/// name, used before, could be bound by anyone in the namespace).
pub const NAMESPACE_LOCK_DIR: &str = "/run/netd-netns";

/// One daemon per network namespace: a lock file named after the
/// namespace's inode, which cannot be reused while the daemon holding the
/// lock lives in it.
pub(super) fn lock_namespace() -> Result<FileLock> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/net").context("stat /proc/self/ns/net")?;
    let dir = Path::new(NAMESPACE_LOCK_DIR);
    lock::private_dir(dir, 0o700)?;
    let p = dir.join(format!("net-{}.lock", ns.ino()));
    match take_now(&p)? {
        Some(l) => {
            sweep_namespace_locks(dir);
            Ok(l)
        }
        None => bail!(
            "another netd daemon is already running in this network namespace (it holds {})",
            p.display()
        ),
    }
}

/// Delete the lock files of daemons that died without removing theirs
/// (killed, or their namespace gone): a file nobody holds guards nothing.
fn sweep_namespace_locks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(Some(stale)) = FileLock::try_lock(&e.path()) {
            stale.remove();
        }
    }
}

/// Take the daemon lock under the state dir: one daemon per state.
pub(super) fn lock_state(state_dir: &Path) -> Result<FileLock> {
    lock::private_dir(state_dir, 0o700)?;
    match take_now(&state_dir.join("daemon.lock"))? {
        Some(l) => Ok(l),
        None => bail!(
            "another netd daemon is already running with state dir {}",
            state_dir.display()
        ),
    }
}

/// A daemon lock is taken at once or not at all: a second daemon must not
/// queue behind the first. A few quick tries ride out a daemon that is
/// removing the file as it stops (see `FileLock::remove`).
fn take_now(p: &Path) -> Result<Option<FileLock>> {
    for _ in 0..3 {
        if let Some(l) = FileLock::try_lock(p)? {
            return Ok(Some(l));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(None)
}

pub(super) fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("socket {} is in use by another daemon", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(l)
}
