//! The operations: the one implementation of create, remove, connect,
//! disconnect, prune and reconcile that the CLI (through the daemon), the
//! daemon's API and the CNI plugin all call.
//!
//! Each operation validates the request, commits the change to the store in
//! one transaction, then applies the plan to the kernel through the seams of
//! [`crate::kernel::traits`] and the network's driver ([`crate::driver`]).
//! Every step that changed something registers its undo with a
//! [`rollback::Rollback`]; if a later step fails, the rollback takes all of
//! it back, so a refused request changes nothing.
//!
//! One file per concern: `network`, `sandbox`, `endpoint`, `reconcile`,
//! `events`, `firewall`, `locks`, `detail`; `rollback` is the guard.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::kernel::{Host, Kernel, Netlink};
use crate::lock;
use crate::store::Store;

pub mod attachment;
pub mod check;
pub mod cluster;
mod detail;
mod endpoint;
pub mod ensure;
mod events;
mod firewall;
pub mod firewalld;
mod locks;
mod network;
mod reconcile;
pub(crate) mod rollback;
mod sandbox;
#[cfg(test)]
mod tests;

pub use detail::{EndpointDetail, NetworkDetail, ReconcileReport, SandboxDetail};
pub use events::Event;

/// Where netd keeps its state, and where its daemon listens.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub socket: PathBuf,
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/netd";
pub const DEFAULT_RUN_DIR: &str = "/run/netd";
/// The bridge of the predefined `bridge` network, like Docker's `docker0`.
pub const DEFAULT_BRIDGE: &str = "netd0";
/// Under the state dir: one lock file per sandbox (see `Netd::sandbox_lock`).
const LOCK_DIR: &str = "locks";

/// The operations over a store and a kernel. `K` is the real [`Host`]
/// everywhere but in unit tests, which give it a recording fake.
pub struct Netd<K: Kernel = Host> {
    store: Store,
    k: K,
    /// Made by the first subscriber (or `keep_events`): a process nobody
    /// listens to (the CNI plugin, the CLI) neither allocates the slots nor
    /// builds events.
    events: std::sync::OnceLock<events::Hub>,
    state_dir: PathBuf,
    /// With deferred link removal, the host veths of retired endpoints,
    /// for the caller to delete once nobody waits (see `defer_link_removal`).
    deferred: Option<std::sync::Mutex<Vec<String>>>,
    /// The cluster this host is in (`with_cluster`): overlay networks.
    cluster: Option<std::sync::Arc<dyn crate::cluster::ClusterStore>>,
    /// The overlay networks the last view of the cluster had (see
    /// `follow_cluster`).
    cluster_seen: std::sync::Mutex<std::collections::HashSet<crate::model::Id>>,
    /// The daemon's `--forward-accept`: the `netd.forward_accept` of the
    /// bridge networks it creates without one, and of the predefined
    /// `bridge` (see `with_forward_accept`).
    forward_accept: Option<String>,
}

impl Netd<Host> {
    /// Open the store under `state_dir` and make sure the predefined
    /// networks exist. The process's own namespace is the host namespace.
    /// Must be called inside a tokio runtime.
    pub async fn open(state_dir: &Path) -> Result<Netd> {
        Netd::with_kernel(state_dir, Host::open()?).await
    }

    /// The netlink connection in the namespace netd runs in.
    pub fn host(&self) -> &Netlink {
        self.k.netlink()
    }

    /// A duplicate of the firewall's netlink socket. nf_tables frees what a
    /// commit removed after an RCU grace period, and closing the socket
    /// waits for that; whoever holds this duplicate closes it later.
    pub fn firewall_socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.k.firewall().socket()
    }
}

impl<K: Kernel> Netd<K> {
    /// [`Netd::open`] over any kernel.
    pub async fn with_kernel(state_dir: &Path, k: K) -> Result<Netd<K>> {
        let store = Store::open(state_dir)?;
        lock::private_dir(&state_dir.join(LOCK_DIR), 0o700)?;
        let netd = Netd {
            store,
            k,
            state_dir: state_dir.to_path_buf(),
            events: std::sync::OnceLock::new(),
            deferred: None,
            cluster: None,
            cluster_seen: Default::default(),
            forward_accept: None,
        };
        netd.ensure_predefined().await?;
        Ok(netd)
    }

    /// Removing an endpoint retires its veth pair instead of deleting it,
    /// and leaves the deletion to whoever takes `take_deferred_links`: for
    /// a caller that someone waits for (the CNI plugin's DEL), deleting a
    /// link costs an RCU grace period each.
    pub fn defer_link_removal(mut self) -> Netd<K> {
        self.deferred = Some(Default::default());
        self
    }

    /// The host veths retired since the last call; deleting them (or a
    /// reconcile, which removes netd-named links the store does not know)
    /// finishes their removal.
    pub fn take_deferred_links(&self) -> Vec<String> {
        self.deferred
            .as_ref()
            .map(|d| std::mem::take(&mut *d.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }

    pub fn kernel(&self) -> &K {
        &self.k
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
