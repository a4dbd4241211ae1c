//! Endpoints: connect and disconnect, and the attach both sandbox create
//! and connect share; applying an endpoint again for reconcile and repair.

use tracing::{info, warn};

use super::rollback::{Rollback, Undo};
use super::{Netd, detail};
use crate::driver::{self, SandboxMode};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::model::*;
use crate::plan::{self, EndpointPlan};
use crate::store;

impl<K: Kernel> Netd<K> {
    /// The endpoint plan of `ep` by its network's driver.
    pub(crate) fn endpoint_plan(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Option<EndpointPlan> {
        driver::of::<K>(&net.driver).endpoint_plan(net, sb, ep)
    }

    /// Make a recorded endpoint real: its links, then its published ports,
    /// each registered with `rb` as it is made. The caller has checked the
    /// host ports and holds the sandbox's lock.
    pub(crate) async fn attach_endpoint(
        &self,
        rb: &mut Rollback<'_, K>,
        net: &Network,
        sandbox: &Sandbox,
        ep: &Endpoint,
    ) -> Result<()> {
        if let Some(p) = self.endpoint_plan(net, sandbox, ep) {
            // Before the step: a pair half made must go too.
            rb.push(Undo::Endpoint(Box::new(p.clone())));
            let applied = self.apply_endpoint(net, Some(sandbox), &p).await;
            rb.check(applied).await?;
        }
        rb.push(Undo::Ports(Box::new((net.clone(), ep.clone()))));
        rb.check(self.publish(net, ep).await).await?;
        self.publish_endpoint(rb, net, sandbox, ep).await
    }

    /// Apply an endpoint plan; when that had to make the network's bridge
    /// again (deleted by hand with no watcher running), the network's
    /// other veths lost it too and are put back. `held`: the sandbox
    /// whose lock the caller holds.
    async fn apply_endpoint(
        &self,
        net: &Network,
        held: Option<&Sandbox>,
        p: &EndpointPlan,
    ) -> Result<()> {
        if driver::of::<K>(&net.driver).attach(&self.k, p).await? {
            self.repair_network(net, held).await;
        }
        Ok(())
    }

    /// Take an endpoint's veth pair away: now, or retired for later.
    pub(crate) async fn remove_links(&self, p: &EndpointPlan) -> Result<()> {
        let Some(deferred) = &self.deferred else {
            self.k.delete_host_link(&p.host_veth).await?;
            // The veth is what counts: an ifb left is an orphan that
            // reconcile and CNI GC delete.
            if let Some(ifb) = &p.ifb
                && let Err(e) = self.k.delete_host_link(ifb).await
            {
                warn!(ifb, "could not delete the endpoint's ifb: {e}");
            }
            return Ok(());
        };
        // Deferred (a CNI DEL): its reaper deletes the ifb with the veth.
        match self.k.retire_endpoint(p).await {
            Ok(()) => {
                deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(p.host_veth.clone());
                Ok(())
            }
            Err(e) => {
                warn!(veth = %p.host_veth, "could not retire the endpoint, deleting it now: {e}");
                Ok(self.k.delete_host_link(&p.host_veth).await?)
            }
        }
    }

    /// Apply an endpoint again (reconcile, link repair) under its
    /// sandbox's lock, with the records read again under it: an endpoint
    /// that a disconnect or a CNI DEL removed meanwhile stays removed,
    /// instead of coming back as a pair no record owns. `false` when the
    /// endpoint or its sandbox's namespace is gone.
    pub(crate) async fn reapply_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<bool> {
        let seen = self.store.read(|c| store::sandbox_by_id(c, &ep.sandbox))?;
        let _lock = self.sandbox_lock(&seen.name).await?;
        let now = self.store.read(|c| {
            let Ok(sb) = store::sandbox_by_id(c, &ep.sandbox) else {
                return Ok(None);
            };
            Ok(store::endpoint(c, &net.id, &sb.id)?
                .filter(|e| e.id == ep.id)
                .map(|e| (sb, e)))
        })?;
        let Some((sb, ep)) = now else {
            return Ok(false);
        };
        self.reapply_endpoint_of(net, &sb, &ep).await
    }

    /// Put an endpoint's existing host veth back on its bridge, nothing
    /// more (see `LinkOps::reattach_port`): safe without the sandbox's lock.
    pub(crate) async fn reattach_port_of(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Result<bool> {
        let Some(p) = self.endpoint_plan(net, sb, ep) else {
            return Ok(false);
        };
        Ok(self.k.reattach_port(&p).await?)
    }

    /// `reapply_endpoint` for a caller that holds the sandbox's lock.
    pub(crate) async fn reapply_endpoint_of(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Result<bool> {
        let Some(p) = self.endpoint_plan(net, sb, ep) else {
            return Ok(false);
        };
        // A namespace that went took the pair with it; reconcile (or the
        // engine's DEL) deals with the sandbox.
        if !self.k.is_netns(&p.netns) {
            return Ok(false);
        }
        driver::of::<K>(&net.driver).attach(&self.k, &p).await?;
        Ok(true)
    }

    pub async fn connect<'a>(
        &self,
        network: impl Into<store::Ref<'a>>,
        sandbox: impl Into<store::Ref<'a>>,
        req: &EndpointRequest,
    ) -> Result<detail::EndpointDetail> {
        let (network, sandbox) = (network.into(), sandbox.into());
        req.validate()?;
        // Held until the endpoint is in the kernel (or undone): a second
        // connect then finds it recorded (409), a disconnect finds it whole.
        let (_lock, sb) = self.lock_sandbox(sandbox).await?;
        let net = self.store.read(|c| store::network(c, network))?;
        if let Some(why) = net.refuse_config_only() {
            return Err(Error::Forbidden(why));
        }
        if driver::of::<K>(&net.driver).sandbox_mode() != SandboxMode::Own {
            return Err(Error::Invalid(format!(
                "cannot connect to network {}: sandboxes join host or none only when created",
                net.name
            )));
        }
        match (&sb.net, sb.isolated) {
            (SandboxNet::Host, _) => {
                return Err(Error::Invalid(format!(
                    "sandbox {} shares the host's network namespace and cannot join other networks",
                    sb.name
                )));
            }
            (_, true) => {
                return Err(Error::Invalid(format!(
                    "sandbox {} was created with --network none and cannot join networks",
                    sb.name
                )));
            }
            _ => {}
        }
        let mut rb = Rollback::new(self);
        let claimed = self.claim_addresses(&mut rb, &net, req).await?;
        let req = claimed.as_ref().unwrap_or(req);
        let inserted = self
            .store
            .write(|c| store::insert_endpoint(c, &net, &sb, req));
        let ep = rb.check(inserted).await?;
        rb.push(Undo::EndpointRecord(ep.id.clone()));
        rb.check(self.check_host_ports(&net, &ep)).await?;
        self.attach_endpoint(&mut rb, &net, &sb, &ep).await?;
        rb.commit();
        // A network with a higher gateway priority than the sandbox's
        // others takes the default route (the attach made one only where
        // there was none).
        if let Err(e) = self.settle_default_routes(&sb, &[], true).await {
            warn!(sandbox = %sb.name, "default route not moved to network {}: {e}", net.name);
        }
        info!(network = %net.name, sandbox = %sb.name, ip = ?ep.ip, ip6 = ?ep.ip6, "connected");
        self.emit(
            "network",
            "connect",
            &net.id,
            &net.name,
            &[("sandbox", sb.name.as_str()), ("ip", &ep.primary_addr())],
        );
        Ok(detail::EndpointDetail::new(net.name, sb.name, ep))
    }

    pub async fn disconnect<'a>(
        &self,
        network: impl Into<store::Ref<'a>>,
        sandbox: impl Into<store::Ref<'a>>,
        force: bool,
    ) -> Result<()> {
        let (network, sandbox) = (network.into(), sandbox.into());
        // Held until the endpoint is gone from kernel and store: a second
        // disconnect then finds nothing (404), a connect a free interface.
        let (_lock, sb) = self.lock_sandbox(sandbox).await?;
        let (net, ep) = self.store.read(|c| {
            let n = store::network(c, network)?;
            let e = store::endpoint(c, &n.id, &sb.id)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "sandbox {} is not connected to network {}",
                    sb.name, n.name
                ))
            })?;
            Ok((n, e))
        })?;
        self.withdraw_endpoint(&net, &ep).await?;
        if let Some(p) = self.endpoint_plan(&net, &sb, &ep)
            && let Err(e) = self.remove_links(&p).await
        {
            if !force {
                if net.overlay().is_some()
                    && let Err(again) = self.publish_again(&sb, &ep).await
                {
                    warn!(sandbox = %sb.name, "not published again after a failed disconnect: {again}");
                }
                return Err(e);
            }
            warn!(sandbox = %sb.name, "forced disconnect: {e}");
        }
        self.store.write(|c| store::delete_endpoint(c, &ep.id))?;
        self.release_addresses(&net, &ep).await;
        if let Err(e) = self.unpublish(&net, &ep).await {
            warn!(sandbox = %sb.name, "withdrawing published ports: {e}");
        }
        // The default route may have left with that interface: give it to
        // another network the sandbox is still on.
        if let Err(e) = self
            .settle_default_routes(&sb, &plan::gateways(std::slice::from_ref(&net)), false)
            .await
        {
            warn!(sandbox = %sb.name, "no default route after disconnect: {e}");
        }
        info!(network = %net.name, sandbox = %sb.name, "disconnected");
        self.emit(
            "network",
            "disconnect",
            &net.id,
            &net.name,
            &[("sandbox", sb.name.as_str())],
        );
        Ok(())
    }

    /// Give the sandbox the default routes its networks' priorities ask
    /// for, taking them from any of its networks' gateways or `left` (a
    /// network it just left); a route someone else made stays. `if_ranked`:
    /// nothing to do unless a priority is set (without one the first
    /// network's route stands, as attach made it).
    pub(crate) async fn settle_default_routes(
        &self,
        sb: &Sandbox,
        left: &[std::net::IpAddr],
        if_ranked: bool,
    ) -> Result<()> {
        let nets = self.store.read(|c| {
            store::endpoints_of_sandbox(c, &sb.id)?
                .iter()
                .map(|e| Ok((store::network_by_id(c, &e.network)?, e.gw_priority)))
                .collect::<Result<Vec<_>>>()
        })?;
        if if_ranked && nets.iter().all(|(_, p)| *p == 0) {
            return Ok(());
        }
        let mut ours = plan::gateways(&nets.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        ours.extend_from_slice(left);
        for (netns, gw) in plan::default_routes(sb, &nets) {
            self.k.ensure_default_route(&netns, gw, &ours).await?;
        }
        Ok(())
    }
}
