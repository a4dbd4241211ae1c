//! Reconcile: make the kernel match the store.

use tracing::warn;

use super::{Netd, detail::ReconcileReport};
use crate::driver;
use crate::error::Result;
use crate::kernel::Kernel;
use crate::model::*;
use crate::plan;
use crate::store;

impl<K: Kernel> Netd<K> {
    /// Make the kernel match the store: bridges and endpoints re-created where
    /// missing, namespaces netd owns re-created after a reboot, and links with
    /// netd's names that the store does not know removed.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let (nets, sandboxes, eps) = self.store.read(|c| {
            Ok((
                store::networks(c)?,
                store::sandboxes(c)?,
                store::all_endpoints(c)?,
            ))
        })?;
        for n in &nets {
            let d = driver::of::<K>(&n.driver);
            if d.sandbox_mode() != driver::SandboxMode::Own {
                continue;
            }
            match d.create(&self.k, n).await {
                Ok(()) => report.bridges += 1,
                Err(e) => report.failures.push(format!("network {}: {e}", n.name)),
            }
        }
        let by_id = |id: &Id| sandboxes.iter().find(|s| &s.id == id);
        for s in &sandboxes {
            let has_endpoints = eps.iter().any(|e| e.sandbox == s.id);
            let Some(sp) = plan::sandbox(s, has_endpoints) else {
                continue;
            };
            if !self.k.is_netns(&sp.netns) {
                match &sp.create {
                    Some(bound) => {
                        // A stale file from before a reboot: the kernel's only.
                        let _ = std::fs::remove_file(&sp.netns);
                        match self.k.create_named(bound) {
                            Ok(_) => report.namespaces_recreated.push(s.name.to_string()),
                            Err(e) => report
                                .failures
                                .push(format!("namespace of {}: {e}", s.name)),
                        }
                    }
                    None => {
                        warn!(sandbox = %s.name, path = %sp.netns.display(), "the sandbox's namespace is gone; its engine should remove it")
                    }
                }
            }
            if self.k.is_netns(&sp.netns)
                && let Err(e) = self.k.loopback_up(&sp.netns).await
            {
                report.failures.push(format!("lo of {}: {e}", s.name));
            }
        }
        for ep in &eps {
            let (Some(n), Some(s)) = (nets.iter().find(|n| n.id == ep.network), by_id(&ep.sandbox))
            else {
                continue;
            };
            match self.reapply_endpoint(n, ep).await {
                Ok(true) => report.endpoints += 1,
                Ok(false) => {}
                Err(e) => report
                    .failures
                    .push(format!("endpoint {} of {}: {e}", ep.ifname, s.name)),
            }
        }
        // An endpoint put back above made the default route where one was
        // missing, by interface order: a ranked network takes it back.
        // Under the sandbox's lock, as connect and disconnect move it.
        for s in &sandboxes {
            if !eps.iter().any(|e| e.sandbox == s.id && e.gw_priority != 0) {
                continue;
            }
            let settled = match self.sandbox_lock(&s.name).await {
                Ok(_lock) => self.settle_default_routes(s, &[], true).await,
                Err(e) => Err(e),
            };
            if let Err(e) = settled {
                report
                    .failures
                    .push(format!("default route of {}: {e}", s.name));
            }
        }
        if let Err(e) = self.sync_firewall().await {
            report.failures.push(format!("firewall: {e}"));
        }
        // Links first, records second: every operation records an endpoint
        // before it makes the link, so a link listed here whose record
        // the second read lacks really is an orphan, not an attach in flight.
        let links = self.k.host_link_names().await?;
        let (nets, eps) = self
            .store
            .read(|c| Ok((store::networks(c)?, store::all_endpoints(c)?)))?;
        for name in plan::orphan_links(&nets, &eps, links.iter().map(String::as_str)) {
            match self.k.delete_host_link(&name).await {
                Ok(()) => report.orphans_removed.push(name),
                Err(e) => report.failures.push(format!("orphan {name}: {e}")),
            }
        }
        crate::counters::reconciled(&report);
        Ok(report)
    }
}
