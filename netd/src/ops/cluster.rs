//! Overlay networks in the operations: what a change on an overlay network
//! asks of the cluster (its addresses from the cluster's IPAM, its
//! endpoints made known to every host), and how this host follows the
//! cluster (`follow_cluster`): other hosts' networks made here, their
//! endpoints' forwarding entries, their names for DNS.
//!
//! A network that is not an overlay never reaches the cluster; an overlay
//! change with the cluster away is refused before anything changes here.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tracing::{info, warn};

use super::Netd;
use super::rollback::{Rollback, Undo};
use crate::cluster::{Claimed, ClusterEndpoint, ClusterStore, ClusterView};
use crate::driver;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::model::*;
use crate::plan::overlay;
use crate::store;
use crate::{ipam, ipam6};
use ipnet::{Ipv4Net, Ipv6Net};

impl<K: Kernel> Netd<K> {
    /// Join a cluster: overlay networks become possible.
    pub fn with_cluster(mut self, cluster: Arc<dyn ClusterStore>) -> Netd<K> {
        self.cluster = Some(cluster);
        self
    }

    pub fn cluster(&self) -> Option<&Arc<dyn ClusterStore>> {
        self.cluster.as_ref()
    }

    /// A new overlay network recorded in the cluster (its VNI chosen
    /// there), not yet on this host. Its subnets stay clear of the other
    /// overlay networks' as well as of this host's networks and routes.
    pub(super) async fn create_in_cluster(
        &self,
        v: &ValidNetworkCreate,
        id: &Id,
        routes: &[Ipv4Net],
        routes6: &[Ipv6Net],
    ) -> Result<Network> {
        let cluster = self
            .cluster
            .as_deref()
            .ok_or_else(|| no_cluster(v.name.as_str()))?;
        let view = cluster.view().borrow().clone();
        let mut taken: Vec<(Ipv4Net, &Name)> = Vec::new();
        let mut taken6: Vec<(Ipv6Net, &Name)> = Vec::new();
        for n in view.networks.values() {
            if let Some(b) = n.bridge() {
                taken.extend(b.ipv4.as_ref().map(|c| (c.subnet, &n.name)));
                taken6.extend(b.ipv6.as_ref().map(|c| (c.subnet, &n.name)));
            }
        }
        if let Some(s) = v.subnet
            && let Some((_, other)) = taken.iter().find(|(t, _)| ipam::overlaps(t, &s))
        {
            return Err(Error::Conflict(format!(
                "subnet {s} overlaps that of overlay network {other}"
            )));
        }
        if let Some(s) = v.ipv6.as_ref().and_then(|r| r.subnet)
            && let Some((_, other)) = taken6.iter().find(|(t, _)| ipam6::overlaps6(t, &s))
        {
            return Err(Error::Conflict(format!(
                "IPv6 subnet {s} overlaps that of overlay network {other}"
            )));
        }
        let t4: Vec<Ipv4Net> = taken.iter().map(|t| t.0).collect();
        let t6: Vec<Ipv6Net> = taken6.iter().map(|t| t.0).collect();
        let mut cfg = self
            .store
            .read(|c| super::network::bridge_config(c, v, id, (routes, routes6), (&t4, &t6)))?;
        cfg.mtu.get_or_insert(overlay::DEFAULT_OVERLAY_MTU);
        // The cluster picks the VNI; this one is only a placeholder.
        let draft = super::network::network_of(
            v,
            id.clone(),
            Driver::Overlay(OverlayConfig {
                vni: Vni::try_from(Vni::MAX)?,
                bridge: cfg,
            }),
        );
        Ok(cluster.create_network(draft).await?)
    }

    /// The cluster, for undoing what was asked of it.
    pub(crate) fn cluster_or_none(&self) -> Result<&dyn ClusterStore> {
        self.cluster
            .as_deref()
            .ok_or_else(|| Error::Invalid("this netd is not in a cluster".into()))
    }

    /// The cluster, for a change on `net`: None when `net` is no overlay.
    pub(crate) fn cluster_for(&self, net: &Network) -> Result<Option<&dyn ClusterStore>> {
        if net.overlay().is_none() {
            return Ok(None);
        }
        match &self.cluster {
            Some(c) => Ok(Some(c.as_ref())),
            None => Err(no_cluster(net.name.as_str())),
        }
    }

    /// For an endpoint on an overlay network: its addresses taken in the
    /// cluster (the requested ones, or the lowest free), registered with
    /// `rb`, and the request with them filled in; `req` itself otherwise.
    pub(crate) async fn claim_addresses(
        &self,
        rb: &mut Rollback<'_, K>,
        net: &Network,
        req: &EndpointRequest,
    ) -> Result<Option<EndpointRequest>> {
        let Some(cluster) = self.cluster_for(net)? else {
            return Ok(None);
        };
        let want = Claimed {
            ip: req.ip,
            ip6: req.ip6,
        };
        let got = cluster.claim(net, want).await?;
        rb.push(Undo::ClusterAddrs(Box::new((net.clone(), got))));
        Ok(Some(EndpointRequest {
            ip: got.ip,
            ip6: got.ip6,
            ..req.clone()
        }))
    }

    /// Make an endpoint on an overlay network known to every host.
    pub(crate) async fn publish_endpoint(
        &self,
        rb: &mut Rollback<'_, K>,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Result<()> {
        let Some(cluster) = self.cluster_for(net)? else {
            return Ok(());
        };
        rb.push(Undo::ClusterEndpoint(net.id.clone(), ep.id.clone()));
        let record = cluster_endpoint(cluster, sb, ep);
        rb.check(cluster.publish(&record).await.map_err(Error::from))
            .await
    }

    /// An endpoint withdrawn by a removal that failed, published again.
    pub(crate) async fn publish_again(&self, sb: &Sandbox, ep: &Endpoint) -> Result<()> {
        let cluster = self.cluster_or_none()?;
        Ok(cluster.publish(&cluster_endpoint(cluster, sb, ep)).await?)
    }

    /// Before an overlay endpoint is removed here: take it out of the
    /// cluster's view. Refused (nothing changed) with the cluster away.
    pub(crate) async fn withdraw_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        if let Some(cluster) = self.cluster_for(net)? {
            cluster.withdraw(&net.id, &ep.id).await?;
        }
        Ok(())
    }

    /// After an overlay endpoint is gone here: its addresses back to the
    /// cluster. A failure leaves them held by this host's lease until the
    /// next start; it is logged, not returned, as the endpoint is gone.
    pub(crate) async fn release_addresses(&self, net: &Network, ep: &Endpoint) {
        let Ok(Some(cluster)) = self.cluster_for(net) else {
            return;
        };
        let addrs = Claimed {
            ip: ep.ip,
            ip6: ep.ip6,
        };
        if let Err(e) = cluster.release(net, addrs).await {
            warn!(network = %net.name, ip = ?ep.ip, ip6 = ?ep.ip6, "addresses not released: {e}");
        }
    }

    /// After a start: this host's endpoints on overlay networks claimed and
    /// published again (a restart within the lease finds them its own; a
    /// longer absence finds them free, unless another host took one, which
    /// is logged). Returns how many were published.
    pub async fn republish(&self) -> Result<usize> {
        let Some(cluster) = &self.cluster else {
            return Ok(0);
        };
        let rows = self.store.read(|c| {
            let mut out = Vec::new();
            for n in store::networks(c)?
                .into_iter()
                .filter(|n| n.overlay().is_some())
            {
                for e in store::endpoints_of_network(c, &n.id)? {
                    let s = store::sandbox_by_id(c, &e.sandbox)?;
                    out.push((n.clone(), s, e));
                }
            }
            Ok(out)
        })?;
        let mut done = 0;
        for (net, sb, ep) in rows {
            let want = Claimed {
                ip: ep.ip,
                ip6: ep.ip6,
            };
            match cluster.claim(&net, want).await {
                Ok(_) => {}
                Err(e) => {
                    warn!(network = %net.name, sandbox = %sb.name, "address not claimed again: {e}");
                    continue;
                }
            }
            cluster
                .publish(&cluster_endpoint(cluster.as_ref(), &sb, &ep))
                .await?;
            done += 1;
        }
        Ok(done)
    }

    /// Make this host follow the cluster's view: overlay networks created
    /// elsewhere made here (record, bridge, VXLAN device, firewall), ones
    /// removed elsewhere removed here when no local endpoint is on them,
    /// and every overlay network's forwarding entries set to the other
    /// hosts' endpoints. Returns whether the set of networks changed.
    ///
    /// `first`: the first full read after a start, when nothing is being
    /// created here, so a network this host has and the view lacks was
    /// removed while it was away.
    pub async fn follow_cluster(&self, view: &ClusterView, first: bool) -> Result<bool> {
        let Some(cluster) = &self.cluster else {
            return Ok(false);
        };
        let local: Vec<Network> = self
            .store
            .read(store::networks)?
            .into_iter()
            .filter(|n| n.overlay().is_some())
            .collect();
        let mut changed = false;
        let known: HashSet<&Id> = local.iter().map(|n| &n.id).collect();
        for net in view.networks.values() {
            if known.contains(&net.id) {
                continue;
            }
            match self.adopt_overlay(net).await {
                Ok(made) => changed |= made,
                Err(e) => warn!(network = %net.name, "overlay network not made on this host: {e}"),
            }
        }
        // Only with a live view: a view read before an outage must not
        // take networks away. And only networks a view has shown before
        // (or any, on the first full read after a start): one created here
        // a moment ago is in etcd but maybe not yet in this view.
        let wanted: HashSet<&Id> = view.networks.values().map(|n| &n.id).collect();
        let seen_before = {
            let mut seen = self.cluster_seen.lock().unwrap_or_else(|p| p.into_inner());
            let before = std::mem::take(&mut *seen);
            seen.extend(wanted.iter().map(|id| (*id).clone()));
            before
        };
        if view.connected && view.revision > 0 {
            let gone = local
                .iter()
                .filter(|n| !wanted.contains(&n.id))
                .filter(|n| first || seen_before.contains(&n.id));
            for net in gone {
                match self.forget_overlay(net).await {
                    Ok(true) => changed = true,
                    Ok(false) => {}
                    Err(e) => warn!(network = %net.name, "overlay network not removed here: {e}"),
                }
            }
        }
        let me = cluster.host();
        for net in self
            .store
            .read(store::networks)?
            .iter()
            .filter(|n| n.overlay().is_some())
        {
            let Some(vx) = overlay::vxlan(net) else {
                continue;
            };
            let peers = overlay::peers(net, me, &view.endpoints);
            if let Err(e) = self.k.sync_peers(&vx.name, &peers).await {
                warn!(network = %net.name, "overlay peers: {e}");
            }
        }
        Ok(changed)
    }

    /// An overlay network of the cluster made on this host; false when it
    /// was here already (created here, the watch only catching up).
    async fn adopt_overlay(&self, net: &Network) -> Result<bool> {
        let new = self.store.write(|c| {
            if store::network_by_id(c, &net.id).is_ok() {
                return Ok(false);
            }
            store::insert_network(c, net)?;
            Ok(true)
        })?;
        if !new {
            return Ok(false);
        }
        let mut rb = Rollback::new(self);
        rb.push(Undo::NetworkRecord(net.id.clone()));
        let drv = driver::of::<K>(&net.driver);
        for link in drv.own_links(net) {
            rb.push(Undo::Link(link));
        }
        let made = drv.create(&self.k, net).await;
        rb.check(made.map_err(Error::from)).await?;
        rb.push(Undo::Firewall);
        rb.check(self.sync_firewall().await).await?;
        rb.commit();
        info!(network = %net.name, "overlay network joined");
        self.emit(
            "network",
            "create",
            &net.id,
            &net.name,
            &[("driver", "overlay")],
        );
        Ok(true)
    }

    /// An overlay network gone from the cluster, removed here; false
    /// while a local endpoint is still on it.
    async fn forget_overlay(&self, net: &Network) -> Result<bool> {
        let gone = self.store.write(|c| {
            if !store::endpoints_of_network(c, &net.id)?.is_empty() {
                return Ok(false);
            }
            store::delete_network(c, &net.id)?;
            Ok(true)
        })?;
        if !gone {
            return Ok(false);
        }
        driver::of::<K>(&net.driver).remove(&self.k, net).await?;
        self.sync_firewall().await?;
        info!(network = %net.name, "overlay network left (removed in the cluster)");
        self.emit("network", "destroy", &net.id, &net.name, &[]);
        Ok(true)
    }

    /// Other hosts' endpoints on the overlay networks of this host, as
    /// rows for DNS and the load balancer: a sandbox record that is never
    /// served (`SandboxNet::Host`) and its endpoint.
    pub fn remote_rows(&self, view: &ClusterView) -> Vec<(Sandbox, Endpoint)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        remote_rows(cluster.host(), view)
    }
}

impl<K: Kernel> Netd<K> {
    /// An event for another host's endpoint that came ("connect") or went
    /// ("disconnect") on an overlay network, marked `remote`.
    pub fn emit_remote(
        &self,
        action: &'static str,
        network: &Id,
        network_name: &Name,
        sandbox: &str,
        ip: &str,
    ) {
        let mut attrs = vec![("sandbox", sandbox), ("remote", "true")];
        if !ip.is_empty() {
            attrs.push(("ip", ip));
        }
        self.emit("network", action, network, network_name, &attrs);
    }
}

/// See [`Netd::remote_rows`].
pub fn remote_rows(me: &str, view: &ClusterView) -> Vec<(Sandbox, Endpoint)> {
    let nets: BTreeMap<&Id, &Network> = view.networks.values().map(|n| (&n.id, n)).collect();
    view.endpoints
        .iter()
        .filter(|e| e.host != me && nets.contains_key(&e.network))
        .filter_map(|e| {
            let sb = Sandbox {
                id: e.sandbox.clone(),
                name: e.sandbox_name.clone(),
                net: SandboxNet::Host,
                isolated: false,
                dns: Default::default(),
                created: String::new(),
            };
            let ep = Endpoint {
                id: e.endpoint.clone(),
                network: e.network.clone(),
                sandbox: e.sandbox.clone(),
                ifname: "eth0".parse().ok()?,
                ip: e.ip,
                ip6: e.ip6,
                mac: e.mac,
                aliases: e.aliases.clone(),
                ports: Vec::new(),
                gw_priority: 0,
                link_local_ips: Vec::new(),
                sysctls: Vec::new(),
                egress_ifb: false,
            };
            Some((sb, ep))
        })
        .collect()
}

fn cluster_endpoint(cluster: &dyn ClusterStore, sb: &Sandbox, ep: &Endpoint) -> ClusterEndpoint {
    ClusterEndpoint {
        network: ep.network.clone(),
        host: cluster.host().to_string(),
        vtep: cluster.vtep(),
        endpoint: ep.id.clone(),
        sandbox: sb.id.clone(),
        sandbox_name: sb.name.clone(),
        aliases: ep.aliases.clone(),
        ip: ep.ip,
        ip6: ep.ip6,
        mac: ep.mac,
    }
}

pub(crate) fn no_cluster(network: &str) -> Error {
    Error::Invalid(format!(
        "{network} is an overlay network: this netd is not in a cluster \
         (start the daemon with --cluster-store and --cluster-advertise)"
    ))
}
