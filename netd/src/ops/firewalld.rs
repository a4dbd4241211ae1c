//! netd's bridges in a firewalld zone (`netd daemon --firewalld`).
//!
//! firewalld rejects forwarded traffic from interfaces it has in no zone
//! (its `filter_FORWARD` ends in `reject`), so on a host that runs it
//! container egress fails whatever netd's own table says. The daemon puts
//! every bridge of the store into one zone at runtime and takes a removed
//! network's bridge out. firewalld forgets runtime interfaces when it
//! reloads or restarts: [`ZoneSync::forget`] then makes the next sync add
//! them all again.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::Netd;
use crate::error::Result;
use crate::kernel::Kernel;
use crate::kernel::firewalld::{FirewalldApi, FirewalldError};
use crate::model::Network;
use crate::store;

/// The zone of `--firewalld auto`: in every firewalld, target ACCEPT, so
/// netd's own table alone decides what its bridges forward.
pub const AUTO_ZONE: &str = "trusted";

/// `--firewalld`: off (the default), or the zone for netd's bridges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewalldMode {
    Off,
    Zone(String),
}

/// Parse `--firewalld`: `off`, `auto` (zone `trusted`) or a zone name.
pub fn parse_mode(s: &str) -> std::result::Result<FirewalldMode, String> {
    match s.trim() {
        "off" => Ok(FirewalldMode::Off),
        "auto" => Ok(FirewalldMode::Zone(AUTO_ZONE.to_string())),
        z if !z.is_empty()
            && z.len() <= 64
            && z.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) =>
        {
            Ok(FirewalldMode::Zone(z.to_string()))
        }
        z => Err(format!(
            "invalid --firewalld {z:?}: expected off, auto, or a firewalld zone name \
             (letters, digits, '_' and '-', at most 64)"
        )),
    }
}

/// The bridges of these networks (bridge and overlay networks).
pub fn bridges(networks: &[Network]) -> BTreeSet<String> {
    networks
        .iter()
        .filter_map(|n| n.bridge())
        .map(|b| b.bridge.to_string())
        .collect()
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ZoneReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Bridges firewalld has in another zone: the operator put them
    /// there, netd leaves them.
    pub elsewhere: Vec<String>,
    /// firewalld refused (bridge, why); tried again on the next sync.
    pub failed: Vec<(String, FirewalldError)>,
}

/// The bridges this daemon has put in `zone` since firewalld last
/// (re)started or reloaded. Only these are ever taken out: a zone such as
/// `trusted` may hold the operator's own interfaces.
#[derive(Debug)]
pub struct ZoneSync {
    zone: String,
    placed: BTreeSet<String>,
    /// Refusals already logged: a zone that is missing is tried again at
    /// every sync, and said once, not every time.
    logged: BTreeMap<String, FirewalldError>,
}

impl ZoneSync {
    pub fn new(zone: impl Into<String>) -> ZoneSync {
        ZoneSync {
            zone: zone.into(),
            placed: BTreeSet::new(),
            logged: BTreeMap::new(),
        }
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// firewalld reloaded or restarted: its runtime zones hold none of
    /// netd's bridges any more.
    pub fn forget(&mut self) {
        self.placed.clear();
    }

    /// Put each of `want` in the zone and take out what this daemon put
    /// there for a network that is gone. Only differences cost a call.
    pub async fn sync<A: FirewalldApi>(&mut self, api: &A, want: &BTreeSet<String>) -> ZoneReport {
        let mut r = ZoneReport::default();
        for b in want.difference(&self.placed.clone()) {
            match api.add_interface(&self.zone, b).await {
                Ok(()) => {
                    self.placed.insert(b.clone());
                    r.added.push(b.clone());
                }
                Err(FirewalldError::AlreadyEnabled) => {
                    self.placed.insert(b.clone());
                }
                Err(FirewalldError::ZoneConflict(_)) => {
                    // Not ours to move; remembered so it is not asked again.
                    self.placed.insert(b.clone());
                    r.elsewhere.push(b.clone());
                }
                Err(e) => r.failed.push((b.clone(), e)),
            }
        }
        let gone: Vec<String> = self.placed.difference(want).cloned().collect();
        for b in gone {
            match api.remove_interface(&self.zone, &b).await {
                Ok(()) => {
                    self.placed.remove(&b);
                    r.removed.push(b);
                }
                Err(FirewalldError::NotEnabled) => {
                    self.placed.remove(&b);
                }
                Err(e) => r.failed.push((b, e)),
            }
        }
        r
    }

    /// The refusals of `r` not logged yet (new, or a different answer);
    /// a bridge that went in or out may be refused again later and is
    /// said again then.
    pub fn fresh_refusals(&mut self, r: &ZoneReport) -> Vec<(String, FirewalldError)> {
        for b in r.added.iter().chain(&r.removed) {
            self.logged.remove(b);
        }
        let failed: BTreeSet<&String> = r.failed.iter().map(|(b, _)| b).collect();
        self.logged.retain(|b, _| failed.contains(b));
        r.failed
            .iter()
            .filter(|(b, e)| self.logged.insert(b.clone(), e.clone()).as_ref() != Some(e))
            .cloned()
            .collect()
    }

    /// Log a report: what changed, and each new refusal naming firewalld
    /// and the zone (a refusal changes nothing of netd's own).
    pub fn log(&mut self, r: &ZoneReport) {
        if !r.added.is_empty() || !r.removed.is_empty() {
            info!(zone = %self.zone, added = ?r.added, removed = ?r.removed, "firewalld zone interfaces");
        }
        for b in &r.elsewhere {
            warn!(zone = %self.zone, "firewalld has bridge {b} in another zone; netd leaves it there");
        }
        for (b, e) in self.fresh_refusals(r) {
            warn!(
                "firewalld refused bridge {b} in zone {}: {e}; firewalld may reject that network's traffic (tried again at each change and every few seconds)",
                self.zone
            );
        }
    }
}

impl<K: Kernel> Netd<K> {
    /// The bridges of every network in the store, for [`ZoneSync::sync`].
    pub fn firewalld_bridges(&self) -> Result<BTreeSet<String>> {
        self.store.read(|c| Ok(bridges(&store::networks(c)?)))
    }
}
