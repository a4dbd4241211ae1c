//! The one rollback guard of the operations. A step that changed something
//! registers how to take it back; when a later step fails, `fail` takes
//! back everything registered, newest first, and returns the error.
//!
//! The firewall is taken back last, whatever the order: its fallback is a
//! rebuild from the store, which must already be as it was, or the rebuild
//! would put back what the records being undone still describe.

use std::path::PathBuf;

use tracing::warn;

use super::Netd;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::model::{Endpoint, Id, Name, Network};
use crate::plan::EndpointPlan;
use crate::store;

/// How to take one step back.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Delete a network record (and, by cascade, nothing else: it is new).
    NetworkRecord(Id),
    /// Delete a sandbox record and its endpoints' records.
    SandboxRecord(Id),
    EndpointRecord(Id),
    /// Delete a host link netd made (a new network's bridge).
    Link(String),
    /// Remove an endpoint's veth pair (retired, with deferred removal).
    Endpoint(Box<EndpointPlan>),
    /// Delete a namespace netd created, and its files under /etc/netns.
    Namespace {
        path: PathBuf,
        name: Name,
    },
    /// Withdraw an endpoint's published ports.
    // Boxed: the other variants are small and a rollback holds many.
    Ports(Box<(Network, Endpoint)>),
    /// Rebuild the firewall from the store.
    Firewall,
    /// Give addresses taken in the cluster back (an overlay endpoint's).
    ClusterAddrs(Box<(Network, crate::cluster::Claimed)>),
    /// Withdraw an endpoint published to the cluster: (network, endpoint).
    ClusterEndpoint(Id, Id),
    /// Remove an overlay network just recorded in the cluster.
    ClusterNetwork(Box<Network>),
    /// Publish again an endpoint withdrawn from the cluster.
    ClusterPublish(Box<(crate::model::Sandbox, Endpoint)>),
}

impl Undo {
    fn is_firewall(&self) -> bool {
        matches!(self, Undo::Ports(..) | Undo::Firewall)
    }
}

/// Registered undo steps of one operation. Dropping it with steps still
/// registered (a panic, a cancelled future) leaves them undone and says so:
/// the reconciler removes what no record owns.
#[must_use = "an operation must `fail` or `commit` its rollback"]
pub(crate) struct Rollback<'n, K: Kernel> {
    netd: &'n Netd<K>,
    steps: Vec<Undo>,
}

impl<'n, K: Kernel> Rollback<'n, K> {
    pub(crate) fn new(netd: &'n Netd<K>) -> Self {
        Rollback {
            netd,
            steps: Vec::new(),
        }
    }

    /// Register how to take back a step that is about to be made or was
    /// made. Register before a kernel step that may half-succeed.
    pub(crate) fn push(&mut self, undo: Undo) {
        self.steps.push(undo);
    }

    /// Everything worked: keep it.
    pub(crate) fn commit(mut self) {
        self.steps.clear();
    }

    /// `r`, or on failure, the steps taken back and the error returned.
    pub(crate) async fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Take back every registered step and hand back `error`.
    pub(crate) async fn fail(&mut self, error: Error) -> Error {
        let steps = std::mem::take(&mut self.steps);
        let (fw, rest): (Vec<Undo>, Vec<Undo>) = steps.into_iter().partition(Undo::is_firewall);
        for step in rest.into_iter().rev() {
            if let Err(e) = self.undo(step).await {
                warn!("rolling back: {e}");
            }
        }
        for step in fw.into_iter().rev() {
            // A busy firewall lock means the table was never touched: no
            // second wait for the same lock.
            if matches!(step, Undo::Firewall) && matches!(error, Error::Busy(_)) {
                continue;
            }
            if let Err(e) = self.undo(step).await {
                warn!("rolling back the firewall: {e}");
            }
        }
        error
    }

    async fn undo(&self, step: Undo) -> Result<()> {
        let n = self.netd;
        match step {
            Undo::NetworkRecord(id) => n.store.write(|c| store::delete_network(c, &id)),
            Undo::SandboxRecord(id) => n.store.write(|c| store::delete_sandbox(c, &id)),
            Undo::EndpointRecord(id) => n.store.write(|c| store::delete_endpoint(c, &id)),
            Undo::Link(name) => Ok(n.k.delete_host_link(&name).await?),
            Undo::Endpoint(plan) => n.remove_links(&plan).await,
            Undo::Namespace { path, name } => {
                n.k.remove_etc(name.as_str());
                Ok(n.k.delete_named(&path)?)
            }
            Undo::Ports(p) => n.unpublish(&p.0, &p.1).await,
            Undo::Firewall => n.sync_firewall().await,
            Undo::ClusterAddrs(a) => Ok(n.cluster_or_none()?.release(&a.0, a.1).await?),
            Undo::ClusterEndpoint(net, ep) => Ok(n.cluster_or_none()?.withdraw(&net, &ep).await?),
            Undo::ClusterNetwork(net) => Ok(n.cluster_or_none()?.remove_network(&net).await?),
            Undo::ClusterPublish(p) => n.publish_again(&p.0, &p.1).await,
        }
    }
}

impl<K: Kernel> Drop for Rollback<'_, K> {
    fn drop(&mut self) {
        if !self.steps.is_empty() {
            warn!(
                "an operation stopped half-way; left for reconcile: {:?}",
                self.steps
            );
        }
    }
}
