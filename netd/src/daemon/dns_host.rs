//! Hosting the DNS server for every sandbox: keeps `netd-dns` in step with
//! the store. Every change (an event of this daemon, or a nudge from another
//! process through `POST /netd/dns/sync`) recomputes the views and swaps
//! them in; sandboxes that left are stopped, new ones served.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use netd_dns::{Dns, Record4, Table, View};
use tracing::warn;

use crate::kernel::netns;
use crate::model::{Id, SandboxNet};
use crate::ops::Netd;
use crate::plan::dns::{SandboxNames, views};
use crate::store;

pub struct DnsHost {
    dns: Dns,
    state: tokio::sync::Mutex<Served>,
}

/// Which view a sandbox has: the networks with names it is on, and
/// whether it forwards (for sandboxes only on networks without names).
type ViewKey = (Vec<Id>, bool);

/// What the last sync handed out, so the next one rebuilds only tables
/// whose view changed and touches only sandboxes whose table changed.
#[derive(Default)]
struct Served {
    tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)>,
    sandboxes: HashMap<String, Arc<Table>>,
    rows: store::Rereader,
}

impl DnsHost {
    pub fn new(cfg: netd_dns::Config) -> DnsHost {
        DnsHost {
            dns: Dns::new(cfg),
            state: tokio::sync::Mutex::new(Served::default()),
        }
    }

    /// Serve exactly the sandboxes that should have DNS, with current views.
    pub async fn sync(&self, netd: &Netd) {
        let mut served = self.state.lock().await;
        let rows = &mut served.rows;
        let state = netd
            .store()
            .read(|c| Ok((store::networks(c)?, rows.sandboxes(c)?, rows.endpoints(c)?)));
        let (nets, sandboxes, eps) = match state {
            Ok(s) => s,
            Err(e) => return warn!("DNS sync: {e}"),
        };
        let mut all = views(&nets, &sandboxes, &eps);
        let routes_out: HashMap<&Id, bool> = nets
            .iter()
            .map(|n| (&n.id, n.bridge().is_some_and(|b| !b.internal)))
            .collect();
        let mut mine: HashMap<&Id, Vec<&crate::model::Endpoint>> = HashMap::new();
        for e in &eps {
            mine.entry(&e.sandbox).or_default().push(e);
        }
        let mut tables: HashMap<ViewKey, (SandboxNames, Arc<Table>)> = HashMap::new();
        let mut wanted = HashMap::new();
        for s in &sandboxes {
            let SandboxNet::Namespace { path, .. } = &s.net else {
                continue;
            };
            let Some(mine) = mine.get(&s.id) else {
                continue;
            };
            // Only a sandbox not served yet needs its namespace looked at: a
            // served one whose namespace went keeps its (idle) server until
            // its record goes, and the look-up is most of a sync's system time.
            let id = s.id.to_string();
            if !served.sandboxes.contains_key(&id) && !netns::is_netns(Path::new(path)) {
                continue;
            }
            // A sandbox on networks without names (the default bridge) still
            // gets a resolver that forwards, like Docker's copy of the host's.
            let key: ViewKey = match all.of_sandbox.get(&s.id) {
                Some(k) => (k.clone(), true),
                None => (
                    vec![],
                    mine.iter()
                        .any(|e| routes_out.get(&e.network).copied().unwrap_or(false)),
                ),
            };
            let table = match tables.get(&key) {
                Some((_, t)) => Arc::clone(t),
                None => {
                    // Taken, not cloned: later sandboxes with this key find
                    // it in `tables`.
                    let names = match all.of_sandbox.get(&s.id) {
                        Some(k) => all.views.remove(k).unwrap_or_default(),
                        None => SandboxNames {
                            names: Default::default(),
                            forward: key.1,
                        },
                    };
                    // An unchanged view keeps its table (and its rotation);
                    // only a changed one is turned into records.
                    let t = match served.tables.get(&key) {
                        Some((old, t)) if *old == names => Arc::clone(t),
                        _ => self.dns.table(&View {
                            records: names
                                .names
                                .iter()
                                .map(|(n, a)| Record4 {
                                    name: n.clone(),
                                    addrs: a.clone(),
                                })
                                .collect(),
                            forward: names.forward,
                        }),
                    };
                    tables.insert(key, (names, Arc::clone(&t)));
                    t
                }
            };
            let unchanged = served
                .sandboxes
                .get(&id)
                .is_some_and(|t| Arc::ptr_eq(t, &table));
            if !unchanged
                && let Err(e) = self
                    .dns
                    .serve_table(&id, Path::new(path), Arc::clone(&table))
                    .await
            {
                warn!(sandbox = %s.name, "DNS: {e}");
                continue;
            }
            wanted.insert(id, table);
        }
        for id in self.dns.served() {
            if !wanted.contains_key(&id) {
                self.dns.stop(&id);
            }
        }
        served.tables = tables;
        served.sandboxes = wanted;
    }

    /// Follow this daemon's own changes.
    pub fn follow(self: &Arc<Self>, netd: Arc<Netd>) {
        let me = Arc::clone(self);
        let mut rx = netd.subscribe();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        while rx.try_recv().is_ok() {}
                        me.sync(&netd).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
