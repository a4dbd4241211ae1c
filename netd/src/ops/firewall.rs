//! netd's nftables table: rebuilt from the store, or changed by one port
//! element batch per endpoint.

use tracing::{info, warn};

use super::Netd;
use crate::error::Result;
use crate::kernel::{self as k, Host, Kernel};
use crate::model::{Endpoint, Network};
use crate::plan::firewall as fwplan;
use crate::store;

impl<K: Kernel> Netd<K> {
    /// Rebuild netd's nftables table from the store, atomically.
    pub async fn sync_firewall(&self) -> Result<()> {
        let _lock = self.firewall_lock().await?;
        let plan = self.store.read(|c| {
            Ok(fwplan::plan(
                &store::networks(c)?,
                &store::all_endpoints(c)?,
            ))
        })?;
        Ok(self.k.apply_firewall(plan).await?)
    }

    /// Publish an endpoint's ports; if the table is not there (or not
    /// complete), rebuild it, which includes them.
    pub(crate) async fn publish(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::nat_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        let fast = {
            let _lock = self.firewall_lock().await?;
            self.k.add_ports(elems).await
        };
        match fast {
            Ok(()) => Ok(()),
            Err(e) => {
                warn!("publishing ports incrementally failed ({e}); rebuilding the table");
                self.sync_firewall().await
            }
        }
    }

    /// Refuse an endpoint's published ports on an address that is not the
    /// host's or on a host port a host socket holds. Run before any kernel
    /// work, so a refused attach has no links or elements to take back.
    /// Ports on `[::1]` are probed too: the daemon's proxy will bind them.
    pub(crate) fn check_host_ports(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::port_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        Ok(self.k.check_host_ports(&elems)?)
    }

    /// Withdraw an endpoint's ports (its record must be gone or going).
    pub(crate) async fn unpublish(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::nat_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        let fast = {
            let _lock = self.firewall_lock().await?;
            self.k.del_ports(elems).await
        };
        if fast.is_err() {
            self.sync_firewall().await?;
        }
        Ok(())
    }
}

impl Netd<Host> {
    /// Watch for other tools removing our rules, and restore them from the
    /// store (debounced: a `nft flush ruleset` is many notifications).
    pub fn watch_firewall(self: &std::sync::Arc<Self>) -> Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        k::firewall::watch(self.k.firewall().portid(), move || {
            let _ = tx.send(());
        })
        .map_err(crate::error::kernel)?;
        let me = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                while rx.try_recv().is_ok() {}
                match me.sync_firewall().await {
                    Ok(()) => info!("restored table inet netd after an outside change"),
                    Err(e) => warn!("could not restore table inet netd: {e}"),
                }
            }
        });
        Ok(())
    }
}
