//! Hosting the DNS server for every sandbox: keeps `netd-dns` in step with
//! the store. Every change (an event of this daemon, or a nudge from another
//! process through `POST /netd/dns/sync`) recomputes the views and swaps
//! them in; sandboxes that left are stopped, new ones served.

use std::path::Path;
use std::sync::Arc;

use netd_dns::{Dns, Record4, View};
use tracing::warn;

use crate::kernel::netns;
use crate::model::SandboxNet;
use crate::ops::Netd;
use crate::plan::dns::views;
use crate::store;

pub struct DnsHost {
    dns: Dns,
    lock: tokio::sync::Mutex<()>,
}

impl DnsHost {
    pub fn new(cfg: netd_dns::Config) -> DnsHost {
        DnsHost {
            dns: Dns::new(cfg),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Serve exactly the sandboxes that should have DNS, with current views.
    pub async fn sync(&self, netd: &Netd) {
        let _one_at_a_time = self.lock.lock().await;
        let state = netd.store().read(|c| {
            Ok((
                store::networks(c)?,
                store::sandboxes(c)?,
                store::all_endpoints(c)?,
            ))
        });
        let (nets, sandboxes, eps) = match state {
            Ok(s) => s,
            Err(e) => return warn!("DNS sync: {e}"),
        };
        let all = views(&nets, &sandboxes, &eps);
        let mut wanted = Vec::new();
        for s in &sandboxes {
            let SandboxNet::Namespace { path, .. } = &s.net else {
                continue;
            };
            let mine: Vec<_> = eps.iter().filter(|e| e.sandbox == s.id).collect();
            if mine.is_empty() || !netns::is_netns(Path::new(path)) {
                continue;
            }
            // A sandbox on networks without names (the default bridge) still
            // gets a resolver that forwards, like Docker's copy of the host's.
            let routes_out = mine.iter().any(|e| {
                nets.iter()
                    .any(|n| n.id == e.network && n.bridge().is_some_and(|b| !b.internal))
            });
            let view = match all.get(&s.id) {
                Some(v) => View {
                    records: v
                        .names
                        .iter()
                        .map(|(n, a)| Record4 {
                            name: n.clone(),
                            addrs: a.clone(),
                        })
                        .collect(),
                    forward: v.forward,
                },
                None => View {
                    records: vec![],
                    forward: routes_out,
                },
            };
            let id = s.id.to_string();
            if let Err(e) = self.dns.serve(&id, Path::new(path), view).await {
                warn!(sandbox = %s.name, "DNS: {e}");
                continue;
            }
            wanted.push(id);
        }
        for id in self.dns.served() {
            if !wanted.contains(&id) {
                self.dns.stop(&id);
            }
        }
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
