//! Locks between processes: the firewall's, and one per sandbox.

use tracing::warn;

use super::{LOCK_DIR, Netd};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::lock::{self, FileLock};
use crate::model::{Name, Sandbox};
use crate::store;

impl<K: Kernel> Netd<K> {
    /// Serialise firewall changes between processes (the daemon, CLI-less
    /// library users, CNI plugins): a full apply reads the store and replaces
    /// the table, and must not interleave with another process's elements.
    pub(crate) async fn firewall_lock(&self) -> Result<FileLock> {
        FileLock::lock(
            &self.state_dir.join("firewall.lock"),
            lock::LOCK_WAIT,
            "the firewall",
        )
        .await
    }

    /// Serialise the operations that change one sandbox (create, remove,
    /// connect, disconnect), between processes too: each holds this from its
    /// read of the store through its kernel work, so none acts on a record
    /// another is changing. Keyed by name, which exists before the sandbox
    /// does (for create) and never changes. Taken before the firewall lock,
    /// never after it.
    pub(crate) async fn sandbox_lock(&self, name: &Name) -> Result<FileLock> {
        let path = self
            .state_dir
            .join(LOCK_DIR)
            .join(format!("sandbox-{name}.lock"));
        FileLock::lock(&path, lock::LOCK_WAIT, &format!("sandbox {name}")).await
    }

    /// Resolve `reference`, take its sandbox's lock, and read the sandbox
    /// again under it: what was read before may have been removed meanwhile.
    pub(crate) async fn lock_sandbox(
        &self,
        reference: store::Ref<'_>,
    ) -> Result<(FileLock, Sandbox)> {
        let seen = self.store.read(|c| store::sandbox(c, reference))?;
        let lock = self.sandbox_lock(&seen.name).await?;
        match self.store.read(|c| store::sandbox_by_id(c, &seen.id)) {
            Ok(sb) => Ok((lock, sb)),
            Err(Error::NotFound(_)) => {
                self.release_if_gone(lock, &seen.name);
                Err(Error::NotFound(format!("sandbox {} not found", seen.name)))
            }
            Err(e) => Err(e),
        }
    }

    /// Let go of a sandbox's lock, deleting its file if no sandbox has
    /// that name (so files do not pile up with every container ever run).
    pub(crate) fn release_if_gone(&self, lock: FileLock, name: &Name) {
        match self.store.read(|c| store::sandbox_name_taken(c, name)) {
            Ok(false) => lock.remove(),
            Ok(true) => {}
            Err(e) => warn!(sandbox = %name, "keeping {}: {e}", lock.path().display()),
        }
    }
}
