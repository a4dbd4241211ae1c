//! Putting back links that someone else deleted in the host namespace:
//! a network's bridge (and every veth that was on it), an endpoint's host
//! veth (its sandbox end died with it). What the store no longer has (a
//! veth retired by a CNI DEL and deleted later, a removed network) is left
//! gone: only records decide what is repaired.

use std::collections::HashSet;

use serde::Serialize;
use tracing::warn;

use crate::driver;
use crate::error::Result;
use crate::kernel::Kernel;
use crate::model::{Endpoint, Network, Sandbox};
use crate::ops::Netd;
use crate::store;

/// What a repair put back.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RepairReport {
    pub bridges: Vec<String>,
    pub veths: Vec<String>,
    pub failures: Vec<String>,
}

impl RepairReport {
    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty() && self.veths.is_empty() && self.failures.is_empty()
    }
}

impl<K: Kernel> Netd<K> {
    /// Repair after the host links `deleted` went: bridges of networks the
    /// store has, host veths of endpoints it has. Other names are ignored.
    pub async fn repair_links(&self, deleted: &HashSet<String>) -> Result<RepairReport> {
        let mut report = RepairReport::default();
        let nets = self.store().read(store::networks)?;
        let mut redone = HashSet::new();
        for n in &nets {
            if let Some(b) = n.bridge()
                && deleted.contains(b.bridge.as_str())
            {
                report.bridges.push(b.bridge.to_string());
                let r = self.repair_network(n, None).await;
                report.veths.extend(r.veths);
                report.failures.extend(r.failures);
                redone.insert(n.id.clone());
            }
        }
        for name in deleted {
            let Some(ep) = self
                .store()
                .read(|c| store::endpoint_by_host_veth(c, name))?
            else {
                continue;
            };
            if redone.contains(&ep.network) {
                continue;
            }
            let Some(n) = nets.iter().find(|n| n.id == ep.network) else {
                continue;
            };
            match self.repair_endpoint(n, &ep).await {
                Ok(true) => report.veths.push(name.clone()),
                Ok(false) => {}
                Err(e) => report.failures.push(format!("{name}: {e}")),
            }
        }
        crate::counters::repaired(&report);
        Ok(report)
    }

    /// Make a network's bridge exist and every endpoint on it complete,
    /// back on the bridge. Failures are reported, not fatal. `held`: the
    /// sandbox whose lock the caller holds (an attach that found the bridge
    /// gone); then no sandbox lock is taken (its own would wait on us).
    pub(crate) async fn repair_network(
        &self,
        net: &Network,
        held: Option<&Sandbox>,
    ) -> RepairReport {
        let mut report = RepairReport::default();
        if let Err(e) = driver::of::<K>(&net.driver)
            .create(self.kernel(), net)
            .await
        {
            report.failures.push(format!("network {}: {e}", net.name));
            return report;
        }
        let eps = match self
            .store()
            .read(|c| store::endpoints_of_network(c, &net.id))
        {
            Ok(eps) => eps,
            Err(e) => {
                report.failures.push(e.to_string());
                return report;
            }
        };
        for ep in &eps {
            let applied = match held {
                None => self.repair_endpoint(net, ep).await,
                Some(sb) if sb.id == ep.sandbox => self.reapply_endpoint_of(net, sb, ep).await,
                // Without its sandbox's lock (waiting for it while holding
                // ours could deadlock with an attach doing the same the other
                // way round) another endpoint may be mid-attach in another
                // process: only put its veth back on the bridge.
                Some(_) => match self.store().read(|c| store::sandbox_by_id(c, &ep.sandbox)) {
                    Ok(other) => self.reattach_port_of(net, &other, ep).await,
                    Err(e) => Err(e),
                },
            };
            match applied {
                Ok(true) => report.veths.push(ep.host_veth().to_string()),
                Ok(false) => {}
                Err(e) => report.failures.push(format!("{}: {e}", ep.host_veth())),
            }
        }
        if !report.failures.is_empty() {
            warn!(network = %net.name, "repairing the network's links: {:?}", report.failures);
        }
        report
    }

    /// Apply one endpoint again if it and its sandbox's namespace are
    /// still there (under the sandbox's lock: see `reapply_endpoint`).
    async fn repair_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<bool> {
        self.reapply_endpoint(net, ep).await
    }
}
