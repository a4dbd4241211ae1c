//! Networks: create, list, inspect, members, remove, prune, and the
//! predefined `bridge`, `host` and `none`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;

use super::rollback::{Rollback, Undo};
use super::{DEFAULT_BRIDGE, Netd, detail};
use crate::driver;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, KernelError};
use crate::model::*;
use crate::store;
use crate::{ipam, ipam6};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Host routes by family.
fn split_routes(routes: Vec<IpNet>) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for r in routes {
        match r {
            IpNet::V4(n) => v4.push(n),
            IpNet::V6(n) => v6.push(n),
        }
    }
    (v4, v6)
}

/// The IPv6 side of a new network: the given subnet, clear of the host's
/// routes, or the first free /64 of the ULA pool.
fn ipv6_side(
    c: &rusqlite::Connection,
    r: &ValidIpv6,
    routes6: &[Ipv6Net],
    taken6: &[Ipv6Net],
) -> Result<Ipv6Config> {
    let mut existing = store::subnets6(c)?;
    existing.extend_from_slice(taken6);
    let subnet = match r.subnet {
        Some(s) => {
            if let Some(route) = ipam6::host_route_overlap6(&s, &existing, routes6) {
                return Err(Error::Conflict(format!(
                    "IPv6 subnet {s} overlaps {route}, a route of the host's own links"
                )));
            }
            s
        }
        None => ipam6::pick_subnet6(&existing, routes6).ok_or_else(|| {
            Error::Conflict(format!(
                "no free /64 left in {}; pass an IPv6 --subnet",
                ipam6::POOL6
            ))
        })?,
    };
    Ok(Ipv6Config {
        subnet,
        gateway: r.gateway.unwrap_or_else(|| ipam6::default_gateway6(subnet)),
        ip_range: r.ip_range,
        masquerade: r.masquerade,
        aux_addresses: r.aux_addresses.clone(),
    })
}

/// A new network's bridge settings: the subnets given, or picked clear of
/// the store's networks, the host's `routes` and the `taken` subnets (an
/// overlay network's: those of the cluster's other overlay networks).
pub(super) fn bridge_config(
    c: &rusqlite::Connection,
    v: &ValidNetworkCreate,
    id: &Id,
    routes: (&[Ipv4Net], &[Ipv6Net]),
    taken: (&[Ipv4Net], &[Ipv6Net]),
) -> Result<BridgeConfig> {
    let ipv4 = if v.ipv4 {
        let mut existing = store::subnets(c)?;
        existing.extend_from_slice(taken.0);
        let subnet = match v.subnet {
            Some(s) => {
                if let Some(r) = ipam::host_route_overlap(&s, &existing, routes.0) {
                    return Err(Error::Conflict(format!(
                        "subnet {s} overlaps {r}, a route of the host's own links"
                    )));
                }
                s
            }
            None => ipam::pick_subnet(&existing, routes.0).ok_or_else(|| {
                Error::Conflict(
                    "no free private range left for a new network; pass --subnet".into(),
                )
            })?,
        };
        Some(Ipv4Config {
            subnet,
            gateway: v.gateway.unwrap_or_else(|| ipam::default_gateway(subnet)),
            ip_range: v.ip_range,
            masquerade: v.masquerade,
            aux_addresses: v.aux_addresses.clone(),
        })
    } else {
        None
    };
    let ipv6 = v
        .ipv6
        .as_ref()
        .map(|r| ipv6_side(c, r, routes.1, taken.1))
        .transpose()?;
    let bridge = match &v.bridge {
        Some(b) => b.clone(),
        None => format!("{BRIDGE_PREFIX}{}", &id.as_str()[..10]).parse()?,
    };
    Ok(BridgeConfig {
        ipv4,
        ipv6,
        bridge,
        mtu: v.mtu,
        internal: v.internal,
        icc: v.icc,
    })
}

/// The record of a new network.
pub(super) fn network_of(v: &ValidNetworkCreate, id: Id, driver: Driver) -> Network {
    Network {
        id,
        name: v.name.clone(),
        driver,
        options: v.options.clone(),
        labels: v.labels.clone(),
        dns_servers: v.dns_servers.clone(),
        created: now_rfc3339(),
        config_from: None,
    }
}

/// The config-only network a `--config-from` names: by exact name only,
/// as Docker's, and it must be config-only.
fn config_network(c: &rusqlite::Connection, from: &str) -> Result<Network> {
    let missing = || Error::NotFound(format!("configuration network {from:?} does not exist"));
    let n = match store::network(c, store::Ref::Name(from)) {
        Ok(n) => n,
        Err(Error::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e),
    };
    if n.config_only().is_none() {
        return Err(Error::Invalid(format!(
            "network {from} is not a configuration network: --config-from takes a network made with --config-only"
        )));
    }
    Ok(n)
}

/// The networks made `--config-from` the config-only network `n`.
fn made_from(c: &rusqlite::Connection, n: &Network) -> Result<Vec<Name>> {
    if n.config_only().is_none() {
        return Ok(Vec::new());
    }
    Ok(store::networks(c)?
        .into_iter()
        .filter(|o| o.config_from.as_ref() == Some(&n.name))
        .map(|o| o.name)
        .collect())
}

impl<K: Kernel> Netd<K> {
    pub(crate) async fn ensure_predefined(&self) -> Result<()> {
        // Every process opens the store, most of them with the networks
        // there: check the names without parsing every network's spec.
        const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];
        if self
            .store
            .read(|c| store::network_names_present(c, &PREDEFINED))?
            == PREDEFINED.len()
        {
            return Ok(());
        }
        let (routes, _) = split_routes(self.k.route_destinations().await?);
        self.store.write(|c| {
            for (name, driver) in [("host", Driver::Host), ("none", Driver::Null)] {
                if store::network(c, name).is_err() {
                    store::insert_network(c, &new_network(name, driver)?)?;
                }
            }
            if store::network(c, "bridge").is_err() {
                let subnet = ipam::pick_subnet(&store::subnets(c)?, &routes).ok_or_else(|| {
                    Error::Conflict("no free private range for the default bridge network".into())
                })?;
                let cfg = BridgeConfig {
                    ipv4: Some(Ipv4Config {
                        subnet,
                        gateway: ipam::default_gateway(subnet),
                        ip_range: None,
                        masquerade: true,
                        aux_addresses: BTreeMap::new(),
                    }),
                    ipv6: None,
                    bridge: DEFAULT_BRIDGE.parse()?,
                    mtu: None,
                    internal: false,
                    icc: true,
                };
                store::insert_network(c, &new_network("bridge", Driver::Bridge(cfg))?)?;
            }
            Ok(())
        })
    }

    /// A daemon-wide `netd.forward_accept` (`netd daemon --forward-accept`):
    /// recorded in each bridge network created without the option, so
    /// every process that syncs the firewall (the CNI plugin's too) reads
    /// the same rules from the store; and made the predefined `bridge`'s
    /// option now, or taken from it when `value` is None, since that
    /// network's settings are the daemon's flags. A bad value is refused
    /// and changes nothing.
    pub fn with_forward_accept(mut self, value: Option<String>) -> Result<Netd<K>> {
        if let Some(v) = &value {
            crate::plan::forward::parse(v)?;
        }
        let changed = self.store.write(|c| {
            let bridge = store::network(c, "bridge")?;
            let mut options = bridge.options.clone();
            match &value {
                Some(v) => options.insert(OPT_FORWARD_ACCEPT.to_string(), v.clone()),
                None => options.remove(OPT_FORWARD_ACCEPT),
            };
            if options == bridge.options {
                return Ok(false);
            }
            store::set_network_options(c, &bridge.id, &options)?;
            Ok(true)
        })?;
        if changed {
            info!(forward_accept = ?value, "the predefined bridge network's netd.forward_accept follows --forward-accept");
        }
        self.forward_accept = value;
        Ok(self)
    }

    pub async fn create_network(&self, req: &NetworkCreate) -> Result<Network> {
        if let Some(why) = req.config_refusal() {
            return Err(Error::Forbidden(why));
        }
        if req.config_only {
            return self.create_config_only(req);
        }
        // A network made from a config-only one is the request its settings
        // make, validated and created as any other, and remembers the name.
        let from = match &req.config_from {
            Some(from) => {
                let cfg = self.store.read(|c| config_network(c, from))?;
                let settings = cfg.config_only().cloned().unwrap_or_default();
                Some((settings.request(req, &cfg.options, &cfg.labels), cfg.name))
            }
            None => None,
        };
        let (req, config_from) = match &from {
            Some((merged, name)) => (merged, Some(name.clone())),
            None => (req, None),
        };
        let mut v = req.validate()?;
        if v.overlay && config_from.is_some() {
            return Err(Error::Invalid(
                "--config-from makes bridge networks: an overlay network's settings are the cluster's"
                    .into(),
            ));
        }
        if let Some(d) = &self.forward_accept
            && !v.overlay
        {
            v.options
                .entry(OPT_FORWARD_ACCEPT.to_string())
                .or_insert_with(|| d.clone());
        }
        refuse_predefined(v.name.as_str())?;
        if let Some(f) = v.options.get(OPT_FORWARD_ACCEPT) {
            crate::plan::forward::parse(f)?;
        }
        if let Some(b) = &v.bridge
            && self.k.host_link_kind(b.as_str()).await?.is_some()
        {
            // netd deletes the bridge with the network: never adopt a link it did not make.
            return Err(Error::Conflict(format!(
                "interface {b} already exists on the host"
            )));
        }
        // Both a picked and a given subnet must stay clear of the host's own
        // links: a given one on a host link would make the gateway the
        // host's own address.
        let (routes, routes6) = split_routes(self.k.route_destinations().await?);
        let id = Id::random();
        let mut rb = Rollback::new(self);
        let net = if v.overlay {
            let net = self.create_in_cluster(&v, &id, &routes, &routes6).await?;
            rb.push(Undo::ClusterNetwork(Box::new(net.clone())));
            // The cluster's watch may have brought it here already.
            let inserted = self
                .store
                .write(|c| match store::network_by_id(c, &net.id) {
                    Ok(_) => Ok(()),
                    Err(_) => store::insert_network(c, &net),
                });
            rb.check(inserted).await?;
            net
        } else {
            self.store.write(|c| {
                // Its config network may have gone since it was read.
                if let Some(from) = &config_from {
                    config_network(c, from.as_str())?;
                }
                let cfg = bridge_config(c, &v, &id, (&routes, &routes6), (&[], &[]))?;
                let mut net = network_of(&v, id.clone(), Driver::Bridge(cfg));
                net.config_from = config_from.clone();
                store::insert_network(c, &net)?;
                Ok(net)
            })?
        };
        rb.push(Undo::NetworkRecord(net.id.clone()));
        let drv = driver::of::<K>(&net.driver);
        let made = drv.create(&self.k, &net).await;
        // A name taken by a link netd did not make stays the owner's.
        if !made.as_ref().is_err_and(KernelError::is_taken) {
            for link in drv.own_links(&net) {
                rb.push(Undo::Link(link));
            }
        }
        rb.check(made.map_err(Error::from)).await?;
        rb.push(Undo::Firewall);
        rb.check(self.sync_firewall().await).await?;
        rb.commit();
        info!(network = %net.name, id = %net.id.short(), "network created");
        self.emit_created(&net);
        Ok(net)
    }

    fn emit_created(&self, net: &Network) {
        self.emit(
            "network",
            "create",
            &net.id,
            &net.name,
            &[("driver", net.driver.name())],
        );
    }

    /// Docker's `--config-only`: a record of the settings, checked as a
    /// network's would be, and nothing in the kernel: no bridge, no
    /// firewall rules, no subnet taken.
    fn create_config_only(&self, req: &NetworkCreate) -> Result<Network> {
        let v = req.validate()?;
        refuse_predefined(v.name.as_str())?;
        let net = network_of(&v, Id::random(), Driver::ConfigOnly(ConfigOnly::of(&v)));
        self.store.write(|c| store::insert_network(c, &net))?;
        info!(network = %net.name, id = %net.id.short(), "config-only network created");
        self.emit_created(&net);
        Ok(net)
    }

    pub fn list_networks(&self) -> Result<Vec<detail::NetworkDetail>> {
        self.store.read(|c| {
            store::networks(c)?
                .into_iter()
                .map(|n| detail::network_detail(c, n))
                .collect()
        })
    }

    /// A network's record alone, without reading its endpoints.
    pub fn network<'a>(&self, reference: impl Into<store::Ref<'a>>) -> Result<Network> {
        let reference = reference.into();
        self.store.read(|c| store::network(c, reference))
    }

    pub fn inspect_network<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
    ) -> Result<detail::NetworkDetail> {
        let reference = reference.into();
        self.store
            .read(|c| detail::network_detail(c, store::network(c, reference)?))
    }

    /// The endpoints of a network that answer to `name` in its DNS (the
    /// sandbox name, `NAME.NETWORK`, the short id or an alias, any case):
    /// the members of a service alias, for the load balancer.
    pub fn members<'a>(
        &self,
        network: impl Into<store::Ref<'a>>,
        name: &str,
    ) -> Result<Vec<detail::EndpointDetail>> {
        let network = network.into();
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        let (n, mut out) = self.store.read(|c| {
            let n = store::network(c, network)?;
            let eps = detail::network_endpoints(c, &n, |s, e| {
                crate::plan::dns::endpoint_names(n.name.as_str(), s, e).contains(&want)
            })?;
            Ok((n, eps))
        })?;
        // An overlay network's members on the other hosts too.
        if n.overlay().is_some()
            && let Some(cluster) = &self.cluster
        {
            let view = Arc::clone(&cluster.view().borrow());
            for (s, e) in super::cluster::remote_rows(cluster.host(), &view) {
                if e.network == n.id
                    && crate::plan::dns::endpoint_names(n.name.as_str(), &s, &e).contains(&want)
                {
                    out.push(detail::EndpointDetail::new(n.name.clone(), s.name, e));
                }
            }
        }
        Ok(out)
    }

    pub async fn remove_network<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
    ) -> Result<Network> {
        let reference = reference.into();
        let (net, eps) = self.store.read(|c| {
            let n = store::network(c, reference)?;
            let eps = store::endpoints_of_network(c, &n.id)?;
            let names: Vec<String> = eps
                .iter()
                .map(|e| store::sandbox_by_id(c, &e.sandbox).map(|s| s.name.to_string()))
                .collect::<Result<_>>()?;
            Ok((n, names))
        })?;
        if net.is_predefined() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        if !eps.is_empty() {
            return Err(Error::Conflict(format!(
                "network {} has active endpoints ({})",
                net.name,
                eps.join(", ")
            )));
        }
        // An overlay network goes from the cluster first, which refuses
        // while any host has endpoints on it; then from this host.
        if let Some(cluster) = self.cluster_for(&net)? {
            cluster.remove_network(&net).await?;
        }
        // The store decides first, with the endpoint check repeated inside
        // the transaction (a connect may have raced us); only a committed
        // removal touches the kernel, so a refused rm changes nothing. A
        // bridge left by a failure here is an orphan the reconcile removes.
        self.store.write(|c| {
            if !store::endpoints_of_network(c, &net.id)?.is_empty() {
                return Err(Error::Conflict(format!(
                    "network {} has active endpoints",
                    net.name
                )));
            }
            // Docker answers 403: the network is not busy, it is depended on.
            let users = made_from(c, &net)?;
            if !users.is_empty() {
                return Err(Error::Forbidden(format!(
                    "configuration network {:?} is in use by network {}: remove that first",
                    net.name.as_str(),
                    users
                        .iter()
                        .map(Name::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            store::delete_network(c, &net.id)
        })?;
        // A config-only network has nothing in the kernel to take away.
        if net.config_only().is_none() {
            driver::of::<K>(&net.driver).remove(&self.k, &net).await?;
            self.sync_firewall().await?;
        }
        info!(network = %net.name, "network removed");
        self.emit("network", "destroy", &net.id, &net.name, &[]);
        Ok(net)
    }

    /// Remove every user-defined network with no endpoints that matches
    /// `keep`. Returns the names removed.
    pub async fn prune_networks(&self, matches: impl Fn(&Network) -> bool) -> Result<Vec<String>> {
        let candidates: Vec<Network> = self.store.read(|c| {
            let mut out = Vec::new();
            for n in store::networks(c)? {
                if !n.is_predefined()
                    && matches(&n)
                    && store::endpoints_of_network(c, &n.id)?.is_empty()
                    && made_from(c, &n)?.is_empty()
                {
                    out.push(n);
                }
            }
            Ok(out)
        })?;
        let mut removed = Vec::new();
        for n in candidates {
            match self.remove_network(n.id.as_str()).await {
                Ok(n) => removed.push(n.name.to_string()),
                // Raced with an attach (or a --config-from): that network
                // is in use again.
                Err(Error::Conflict(_)) | Err(Error::NotFound(_)) | Err(Error::Forbidden(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

fn new_network(name: &str, driver: Driver) -> Result<Network> {
    Ok(Network {
        id: Id::random(),
        name: name.parse()?,
        driver,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        dns_servers: Vec::new(),
        created: now_rfc3339(),
        config_from: None,
    })
}

/// Docker answers 403 here, not 409: the name is not merely taken, it can
/// never be given.
fn refuse_predefined(name: &str) -> Result<()> {
    if matches!(name, "bridge" | "host" | "none") {
        return Err(Error::Forbidden(format!(
            "{name} is a pre-defined network and cannot be created"
        )));
    }
    Ok(())
}
