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
    ///
    /// A change to another table (a host firewall reloaded) only re-checks
    /// netd's accept rules in the other tables' forward chains: cheap, and
    /// needed within a second, since the reload took them away.
    pub fn watch_firewall(self: &std::sync::Arc<Self>) -> Result<()> {
        use k::firewall::Change;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
        k::firewall::watch(self.k.firewall().portid(), move |c| {
            let _ = tx.send(c);
        })
        .map_err(crate::error::kernel)?;
        let me = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut own = first == Change::OwnTable;
                while let Ok(c) = rx.try_recv() {
                    own |= c == Change::OwnTable;
                }
                if own {
                    let restored = me.sync_firewall().await;
                    crate::counters::firewall_restored(restored.is_ok());
                    match restored {
                        Ok(()) => info!("restored table inet netd after an outside change"),
                        Err(e) => warn!("could not restore table inet netd: {e}"),
                    }
                } else if let Err(e) = me.sync_forward_accepts().await {
                    warn!("could not check netd's accept rules in other tables: {e}");
                }
            }
        });
        Ok(())
    }

    /// Bring netd's accept rules in other tables' forward chains in line
    /// with the store, leaving netd's own table alone.
    pub async fn sync_forward_accepts(&self) -> Result<()> {
        let _lock = self.firewall_lock().await?;
        let want = self
            .store
            .read(|c| Ok(crate::plan::forward::plan(&store::networks(c)?)))?;
        // No network asks for any: nothing to put back, and what a removed
        // network left was taken away by the full apply of its removal. A
        // busy host (kube-proxy's iptables-restore every few seconds) then
        // costs one store read per burst, no dumps.
        if want.is_empty() {
            return Ok(());
        }
        k::firewall::log_forward(self.k.firewall().sync_forward(&want));
        Ok(())
    }
}
