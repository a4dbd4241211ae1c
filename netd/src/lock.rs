//! Files only root may touch, and the locks netd processes (the daemon,
//! CNI plugin runs) take between each other.
//!
//! Every lock file lives in a directory only root can enter, so no other
//! user can open it, let alone `flock` it and stall netd. Waits are bounded:
//! a lock still held after the deadline is an [`Error::Busy`] that names the
//! file, never a hang.
//!
//! The bounded wait is our own loop over a non-blocking `flock`: fs4,
//! fd-lock and std's `File::try_lock` (Rust 1.89, above our MSRV) offer
//! only a blocking lock and a single try, so with any of them the loop
//! would stay; the other way to bound a blocking `flock` is a timer signal
//! interrupting it, which a multi-threaded process cannot aim at one
//! thread. nix's `Flock` already unlocks on drop, so no crate is added.

use std::fs::{File, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// How long an operation waits for a lock another process holds.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The longest pause between two tries: short enough that a lock freed is
/// taken again within milliseconds, long enough not to spin.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Create `dir` (and its parents) with `mode`, or take from an existing
/// one every permission bit `mode` does not have.
pub fn private_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
    restrict(dir, mode)
}

/// Take from `path` every permission bit `mode` does not have (a file made
/// by an older netd, or with a loose umask). A missing file is fine.
pub fn restrict(path: &Path, mode: u32) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Store(format!("stat {}: {e}", path.display()))),
    };
    let now = meta.mode() & 0o7777;
    if now & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(now & mode))
        .map_err(|e| Error::Store(format!("chmod {}: {e}", path.display())))
}

/// Open (creating if needed) a file only its owner may read or write.
pub fn open_private(path: &Path) -> Result<File> {
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::Store(format!("open {}: {e}", path.display())))?;
    restrict(path, 0o600)?;
    Ok(f)
}

/// Replace `path`'s contents; the file is readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = open_private(path)?;
    f.set_len(0)
        .and_then(|()| f.write_all(contents))
        .map_err(|e| Error::Store(format!("write {}: {e}", path.display())))
}

/// An exclusive `flock` on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// Take the lock if nobody holds it; `None` if someone does.
    pub fn try_lock(path: &Path) -> Result<Option<FileLock>> {
        let file = open_private(path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(Error::Store(format!("lock {}: {e}", path.display()))),
        };
        // Whoever held it may have removed the file before letting go (see
        // `remove`): a lock on a file no longer at `path` guards nothing.
        let held = lock
            .metadata()
            .map_err(|e| Error::Store(format!("stat {}: {e}", path.display())))?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => Ok(Some(FileLock {
                _lock: lock,
                path: path.to_path_buf(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Store(format!("stat {}: {e}", path.display()))),
        }
    }

    /// Take the lock, waiting at most `wait` for whoever holds it; `what`
    /// names what the lock guards, for the error.
    pub async fn lock(path: &Path, wait: Duration, what: &str) -> Result<FileLock> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(l) = FileLock::try_lock(path)? {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "{what} is busy: another process held {} for more than {} s; try again",
                    path.display(),
                    wait.as_secs_f32()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delete the file, then let go: whoever waits on it finds it gone and
    /// locks a new one (see `try_lock`), so this never lets two in at once.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), "could not remove lock file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netd-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn a_held_lock_is_busy_after_the_deadline_and_names_the_file() {
        let d = tmp("busy");
        private_dir(&d, 0o700).unwrap();
        let p = d.join("x.lock");
        let held = FileLock::lock(&p, LOCK_WAIT, "x").await.unwrap();
        let start = Instant::now();
        let e = FileLock::lock(&p, Duration::from_millis(200), "sandbox s1")
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(matches!(e, Error::Busy(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("sandbox s1 is busy"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        drop(held);
        // Free again: taken at once.
        FileLock::lock(&p, Duration::ZERO, "x").await.unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_waiter_on_a_removed_file_locks_the_new_one() {
        let d = tmp("removed");
        private_dir(&d, 0o700).unwrap();
        let p = d.join("x.lock");
        let first = FileLock::lock(&p, LOCK_WAIT, "x").await.unwrap();
        // A waiter that opened the old file before it went.
        let stale = open_private(&p).unwrap();
        first.remove();
        let stale = Flock::lock(stale, FlockArg::LockExclusiveNonblock).unwrap();
        // The lock on the unlinked file does not keep out the next one...
        let second = FileLock::try_lock(&p).unwrap().expect("a new file, free");
        // ...and holding the new one keeps out a third.
        assert!(FileLock::try_lock(&p).unwrap().is_none());
        drop((stale, second));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dirs_and_files_lose_group_and_other_bits() {
        let d = tmp("modes");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        private_dir(&d, 0o700).unwrap();
        open_private(&f).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&f), 0o600);
        // A run dir keeps its search bits (the socket inside is reached
        // through it) and loses the rest.
        std::fs::set_permissions(&d, Permissions::from_mode(0o775)).unwrap();
        private_dir(&d, 0o711).unwrap();
        assert_eq!(mode(&d), 0o711);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
