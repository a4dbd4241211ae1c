//! Process-wide counters of the work nobody asks for by request: the
//! reconciler's and the link watcher's repairs, firewall restores, store
//! busy waits. Plain static atomics (one relaxed add where the work
//! happens); the daemon's `/metrics` reads them. A CNI plugin process
//! counts too, in its own copy that nobody reads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ops::ReconcileReport;
use crate::repair::RepairReport;

/// Where a repair came from, and what it put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Reconcile: a namespace netd owns made again (after a reboot, or
    /// deleted by hand).
    Namespace,
    /// Reconcile: a link with netd's name that no record owns, removed.
    Orphan,
    /// Reconcile: something it could not put right.
    ReconcileFailure,
    /// Link watcher: a network's bridge deleted by someone else, made again.
    Bridge,
    /// Link watcher: an endpoint's host veth made again.
    Veth,
    /// Link watcher: something it could not put back.
    LinkFailure,
}

impl Repair {
    pub const ALL: [Repair; 6] = [
        Repair::Namespace,
        Repair::Orphan,
        Repair::ReconcileFailure,
        Repair::Bridge,
        Repair::Veth,
        Repair::LinkFailure,
    ];

    /// `(source, kind)` labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Repair::Namespace => ("reconcile", "namespace"),
            Repair::Orphan => ("reconcile", "orphan"),
            Repair::ReconcileFailure => ("reconcile", "failure"),
            Repair::Bridge => ("link_watch", "bridge"),
            Repair::Veth => ("link_watch", "veth"),
            Repair::LinkFailure => ("link_watch", "failure"),
        }
    }
}

static REPAIRS: [AtomicU64; Repair::ALL.len()] = [const { AtomicU64::new(0) }; 6];
static RECONCILES: AtomicU64 = AtomicU64::new(0);
static REAPPLIED: AtomicU64 = AtomicU64::new(0);
/// Restores of the firewall table after an outside change: done, failed.
static FIREWALL_RESTORES: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static STORE_BUSY: AtomicU64 = AtomicU64::new(0);

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Relaxed);
}

/// Count what one reconcile did.
pub fn reconciled(r: &ReconcileReport) {
    add(&RECONCILES, 1);
    add(&REAPPLIED, r.endpoints);
    add(
        &REPAIRS[Repair::Namespace as usize],
        r.namespaces_recreated.len(),
    );
    add(&REPAIRS[Repair::Orphan as usize], r.orphans_removed.len());
    add(
        &REPAIRS[Repair::ReconcileFailure as usize],
        r.failures.len(),
    );
}

/// Count what one link repair did.
pub fn repaired(r: &RepairReport) {
    add(&REPAIRS[Repair::Bridge as usize], r.bridges.len());
    add(&REPAIRS[Repair::Veth as usize], r.veths.len());
    add(&REPAIRS[Repair::LinkFailure as usize], r.failures.len());
}

pub fn firewall_restored(ok: bool) {
    add(&FIREWALL_RESTORES[usize::from(!ok)], 1);
}

/// The store found the database locked by another process (or thread)
/// and waits to try again.
pub fn store_busy_retry() {
    add(&STORE_BUSY, 1);
}

pub fn repairs(k: Repair) -> u64 {
    REPAIRS[k as usize].load(Relaxed)
}

pub fn reconciles() -> u64 {
    RECONCILES.load(Relaxed)
}

/// Endpoints reconciles applied again (idempotently: most were intact).
pub fn reapplied() -> u64 {
    REAPPLIED.load(Relaxed)
}

/// (restored, failed)
pub fn firewall_restores() -> (u64, u64) {
    (
        FIREWALL_RESTORES[0].load(Relaxed),
        FIREWALL_RESTORES[1].load(Relaxed),
    )
}

pub fn store_busy_retries() -> u64 {
    STORE_BUSY.load(Relaxed)
}
