//! The operations: the one implementation of create, remove, connect,
//! disconnect, prune and reconcile that the CLI (through the daemon), the
//! daemon's API and the CNI plugin all call.
//!
//! Each operation validates the request, commits the change to the store in
//! one transaction, then applies the plan to the kernel. If the kernel step
//! fails, the store change is undone, so a refused request changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::error::{Error, Result, kernel};
use crate::ipam;
use crate::kernel::firewall::Firewall;
use crate::kernel::{self as k, Netlink, netns};
use crate::lock::{self, FileLock};
use crate::model::*;
use crate::plan;
use crate::plan::firewall as fwplan;
use crate::store::{self, Store};

/// Where netd keeps its state, and where its daemon listens.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub socket: PathBuf,
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/netd";
pub const DEFAULT_RUN_DIR: &str = "/run/netd";
/// The bridge of the predefined `bridge` network, like Docker's `docker0`.
pub const DEFAULT_BRIDGE: &str = "netd0";
/// Under the state dir: one lock file per sandbox (see `Netd::sandbox_lock`).
const LOCK_DIR: &str = "locks";

/// Something that changed, for `GET /events` and watchers.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// "network" or "sandbox".
    pub kind: &'static str,
    /// create, destroy, connect, disconnect.
    pub action: &'static str,
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub time: u64,
}

/// An endpoint together with the names of what it joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointDetail {
    pub network_name: Name,
    pub sandbox_name: Name,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub host_veth: IfName,
}

impl EndpointDetail {
    fn new(network_name: Name, sandbox_name: Name, endpoint: Endpoint) -> EndpointDetail {
        EndpointDetail {
            network_name,
            sandbox_name,
            host_veth: endpoint.host_veth(),
            endpoint,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDetail {
    #[serde(flatten)]
    pub network: Network,
    pub endpoints: Vec<EndpointDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxDetail {
    #[serde(flatten)]
    pub sandbox: Sandbox,
    /// The namespace path to enter for this sandbox (the host's for host mode).
    pub netns: String,
    pub endpoints: Vec<EndpointDetail>,
}

/// What a reconcile pass did.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub bridges: usize,
    pub endpoints: usize,
    pub orphans_removed: Vec<String>,
    pub namespaces_recreated: Vec<String>,
    pub failures: Vec<String>,
}

pub struct Netd {
    store: Store,
    host: Netlink,
    firewall: Firewall,
    /// Made by the first subscriber: a process nobody listens to (the CNI
    /// plugin, the CLI) neither allocates the 1024 slots nor builds events.
    events: std::sync::OnceLock<broadcast::Sender<Event>>,
    state_dir: PathBuf,
    /// With deferred link removal, the host veths of retired endpoints,
    /// for the caller to delete once nobody waits (see `defer_link_removal`).
    deferred: Option<std::sync::Mutex<Vec<String>>>,
    /// The namespace netd runs in (the host's), taken when it opened: no
    /// sandbox may adopt it.
    home_ns: Option<netns::NsId>,
}

fn now_secs() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

impl Netd {
    /// Open the store under `state_dir` and make sure the predefined
    /// networks exist. The process's own namespace is the host namespace.
    /// Must be called inside a tokio runtime.
    pub async fn open(state_dir: &Path) -> Result<Netd> {
        let store = Store::open(state_dir)?;
        lock::private_dir(&state_dir.join(LOCK_DIR), 0o700)?;
        let host = Netlink::current().map_err(kernel)?;
        let firewall = Firewall::start().map_err(kernel)?;
        let netd = Netd {
            store,
            host,
            firewall,
            state_dir: state_dir.to_path_buf(),
            events: std::sync::OnceLock::new(),
            deferred: None,
            home_ns: netns::thread_ns_id(),
        };
        netd.ensure_predefined().await?;
        Ok(netd)
    }

    /// Removing an endpoint retires its veth pair (`kernel::retire_endpoint`)
    /// instead of deleting it, and leaves the deletion to whoever takes
    /// `take_deferred_links`: for a caller that someone waits for (the CNI
    /// plugin's DEL), deleting a link costs an RCU grace period each.
    pub fn defer_link_removal(mut self) -> Netd {
        self.deferred = Some(Default::default());
        self
    }

    /// The host veths retired since the last call; deleting them (or a
    /// reconcile, which removes netd-named links the store does not know)
    /// finishes their removal.
    pub fn take_deferred_links(&self) -> Vec<String> {
        self.deferred
            .as_ref()
            .map(|d| std::mem::take(&mut *d.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }

    /// A duplicate of the firewall's netlink socket. nf_tables frees what a
    /// commit removed after an RCU grace period, and closing the socket
    /// waits for that; whoever holds this duplicate closes it later.
    pub fn firewall_socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.firewall.socket()
    }

    /// Take an endpoint's veth pair away: now, or retired for later.
    async fn remove_links(&self, p: &plan::EndpointPlan) -> anyhow::Result<()> {
        let Some(deferred) = &self.deferred else {
            return k::remove_endpoint(&self.host, p).await;
        };
        match k::retire_endpoint(p).await {
            Ok(()) => {
                deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(p.host_veth.clone());
                Ok(())
            }
            Err(e) => {
                warn!(veth = %p.host_veth, "could not retire the endpoint, deleting it now: {e:#}");
                k::remove_endpoint(&self.host, p).await
            }
        }
    }

    /// The netlink connection in the namespace netd runs in.
    pub fn host(&self) -> &Netlink {
        &self.host
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_init(|| broadcast::channel(1024).0)
            .subscribe()
    }

    fn emit(
        &self,
        kind: &'static str,
        action: &'static str,
        id: &Id,
        name: &Name,
        attrs: &[(&str, &str)],
    ) {
        let Some(events) = self.events.get() else {
            return;
        };
        let _ = events.send(Event {
            kind,
            action,
            id: id.to_string(),
            name: name.to_string(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: now_secs(),
        });
    }

    async fn ensure_predefined(&self) -> Result<()> {
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
        let routes = self.host.route_destinations().await.map_err(kernel)?;
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
                    subnet,
                    gateway: ipam::default_gateway(subnet),
                    ip_range: None,
                    bridge: DEFAULT_BRIDGE.parse()?,
                    mtu: None,
                    internal: false,
                    masquerade: true,
                    icc: true,
                };
                store::insert_network(c, &new_network("bridge", Driver::Bridge(cfg))?)?;
            }
            Ok(())
        })
    }

    // ---- firewall -----------------------------------------------------------

    /// Serialise firewall changes between processes (the daemon, CLI-less
    /// library users, CNI plugins): a full apply reads the store and replaces
    /// the table, and must not interleave with another process's elements.
    async fn firewall_lock(&self) -> Result<FileLock> {
        FileLock::lock(
            &self.state_dir.join("firewall.lock"),
            lock::LOCK_WAIT,
            "the firewall",
        )
        .await
    }

    // ---- per-sandbox locks ------------------------------------------------------

    /// Serialise the operations that change one sandbox (create, remove,
    /// connect, disconnect), between processes too: each holds this from its
    /// read of the store through its kernel work, so none acts on a record
    /// another is changing. Keyed by name, which exists before the sandbox
    /// does (for create) and never changes. Taken before the firewall lock,
    /// never after it.
    async fn sandbox_lock(&self, name: &Name) -> Result<FileLock> {
        let path = self
            .state_dir
            .join(LOCK_DIR)
            .join(format!("sandbox-{name}.lock"));
        FileLock::lock(&path, lock::LOCK_WAIT, &format!("sandbox {name}")).await
    }

    /// Resolve `reference`, take its sandbox's lock, and read the sandbox
    /// again under it: what was read before may have been removed meanwhile.
    async fn lock_sandbox(&self, reference: store::Ref<'_>) -> Result<(FileLock, Sandbox)> {
        let seen = self.store.read(|c| store::sandbox(c, reference))?;
        let lock = self.sandbox_lock(&seen.name).await?;
        match self.store.read(|c| store::sandbox_by_id(c, &seen.id)) {
            Ok(sb) => Ok((lock, sb)),
            Err(Error::NotFound(_)) => {
                self.release_if_gone(lock, &seen.name);
                Err(Error::NotFound(format!("sandbox {} not found", seen.name)))
            }
            Err(e) => Err(e),
        }
    }

    /// Let go of a sandbox's lock, deleting its file if no sandbox has
    /// that name (so files do not pile up with every container ever run).
    fn release_if_gone(&self, lock: FileLock, name: &Name) {
        match self.store.read(|c| store::sandbox_name_taken(c, name)) {
            Ok(false) => lock.remove(),
            Ok(true) => {}
            Err(e) => warn!(sandbox = %name, "keeping {}: {e}", lock.path().display()),
        }
    }

    /// Rebuild netd's nftables table from the store, atomically.
    pub async fn sync_firewall(&self) -> Result<()> {
        let _lock = self.firewall_lock().await?;
        let plan = self.store.read(|c| {
            Ok(fwplan::plan(
                &store::networks(c)?,
                &store::all_endpoints(c)?,
            ))
        })?;
        self.firewall.apply(plan).await.map_err(kernel)
    }

    /// Publish an endpoint's ports; if the table is not there (or not
    /// complete), rebuild it, which includes them.
    async fn publish(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::port_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        let fast = {
            let _lock = self.firewall_lock().await?;
            self.firewall.add(elems).await
        };
        match fast {
            Ok(()) => Ok(()),
            Err(e) => {
                warn!("publishing ports incrementally failed ({e:#}); rebuilding the table");
                self.sync_firewall().await
            }
        }
    }

    /// Refuse an endpoint's published ports on an address that is not the
    /// host's or on a host port a host socket holds. Run before any kernel
    /// work, so a refused attach has no links or elements to take back.
    fn check_host_ports(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::port_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        k::hostport::check(&elems).map_err(|e| match e {
            k::hostport::HostPortError::NotLocal(_) => Error::Invalid(e.to_string()),
            k::hostport::HostPortError::InUse { .. } => Error::Conflict(e.to_string()),
            k::hostport::HostPortError::Io { .. } => Error::Kernel(e.to_string()),
        })
    }

    /// Withdraw an endpoint's ports (its record must be gone or going).
    async fn unpublish(&self, net: &Network, ep: &Endpoint) -> Result<()> {
        let elems = fwplan::port_elements(net, ep);
        if elems.is_empty() {
            return Ok(());
        }
        let fast = {
            let _lock = self.firewall_lock().await?;
            self.firewall.del(elems).await
        };
        if fast.is_err() {
            self.sync_firewall().await?;
        }
        Ok(())
    }

    /// Watch for other tools removing our rules, and restore them from the
    /// store (debounced: a `nft flush ruleset` is many notifications).
    pub fn watch_firewall(self: &std::sync::Arc<Self>) -> Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        k::firewall::watch(self.firewall.portid(), move || {
            let _ = tx.send(());
        })
        .map_err(kernel)?;
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

    // ---- networks -----------------------------------------------------------

    pub async fn create_network(&self, req: &NetworkCreate) -> Result<Network> {
        let v = req.validate()?;
        if let Some(b) = &v.bridge
            && self.host.link(b.as_str()).await.map_err(kernel)?.is_some()
        {
            // netd deletes the bridge with the network: never adopt a link it did not make.
            return Err(Error::Conflict(format!(
                "interface {b} already exists on the host"
            )));
        }
        // Both a picked and a given subnet must stay clear of the host's own
        // links: a given one on a host link would make the gateway the
        // host's own address.
        let routes = self.host.route_destinations().await.map_err(kernel)?;
        let id = Id::random();
        let net = self.store.write(|c| {
            let subnet = match v.subnet {
                Some(s) => {
                    if let Some(r) = ipam::host_route_overlap(&s, &store::subnets(c)?, &routes) {
                        return Err(Error::Conflict(format!(
                            "subnet {s} overlaps {r}, a route of the host's own links"
                        )));
                    }
                    s
                }
                None => ipam::pick_subnet(&store::subnets(c)?, &routes).ok_or_else(|| {
                    Error::Conflict(
                        "no free private range left for a new network; pass --subnet".into(),
                    )
                })?,
            };
            let bridge = match &v.bridge {
                Some(b) => b.clone(),
                None => format!("{BRIDGE_PREFIX}{}", &id.as_str()[..10]).parse()?,
            };
            let net = Network {
                id: id.clone(),
                name: v.name.clone(),
                driver: Driver::Bridge(BridgeConfig {
                    subnet,
                    gateway: v.gateway.unwrap_or_else(|| ipam::default_gateway(subnet)),
                    ip_range: v.ip_range,
                    bridge,
                    mtu: v.mtu,
                    internal: v.internal,
                    masquerade: v.masquerade,
                    icc: v.icc,
                }),
                options: v.options.clone(),
                labels: v.labels.clone(),
                created: now_rfc3339(),
            };
            store::insert_network(c, &net)?;
            Ok(net)
        })?;
        if let Some(bp) = plan::bridge(&net)
            && let Err(e) = k::apply_bridge(&self.host, &bp).await
        {
            let _ = k::remove_bridge(&self.host, &bp).await;
            self.store.write(|c| store::delete_network(c, &net.id))?;
            return Err(kernel(e));
        }
        if let Err(e) = self.sync_firewall().await {
            if let Some(bp) = plan::bridge(&net) {
                let _ = k::remove_bridge(&self.host, &bp).await;
            }
            self.store.write(|c| store::delete_network(c, &net.id))?;
            // A busy lock means the table was never touched: nothing to
            // put back, and no second wait for the same lock.
            if !matches!(e, Error::Busy(_)) {
                let _ = self.sync_firewall().await;
            }
            return Err(e);
        }
        info!(network = %net.name, id = %net.id.short(), "network created");
        self.emit(
            "network",
            "create",
            &net.id,
            &net.name,
            &[("driver", net.driver.name())],
        );
        Ok(net)
    }

    pub fn list_networks(&self) -> Result<Vec<NetworkDetail>> {
        self.store.read(|c| {
            store::networks(c)?
                .into_iter()
                .map(|n| network_detail(c, n))
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
    ) -> Result<NetworkDetail> {
        let reference = reference.into();
        self.store
            .read(|c| network_detail(c, store::network(c, reference)?))
    }

    /// The endpoints of a network that answer to `name` in its DNS (the
    /// sandbox name, `NAME.NETWORK`, the short id or an alias, any case):
    /// the members of a service alias, for the load balancer.
    pub fn members<'a>(
        &self,
        network: impl Into<store::Ref<'a>>,
        name: &str,
    ) -> Result<Vec<EndpointDetail>> {
        let network = network.into();
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        self.store.read(|c| {
            let n = store::network(c, network)?;
            network_endpoints(c, &n, |s, e| {
                crate::plan::dns::endpoint_names(n.name.as_str(), s, e).contains(&want)
            })
        })
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
            store::delete_network(c, &net.id)
        })?;
        if let Some(bp) = plan::bridge(&net) {
            k::remove_bridge(&self.host, &bp).await.map_err(kernel)?;
        }
        self.sync_firewall().await?;
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
                // Raced with an attach: that network is in use again.
                Err(Error::Conflict(_)) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    // ---- sandboxes ------------------------------------------------------------

    pub async fn create_sandbox(&self, req: &SandboxCreate) -> Result<SandboxDetail> {
        self.create_sandbox_and(req, |_| {}).await
    }

    /// [`Netd::create_sandbox`], calling `recorded` once the sandbox is in
    /// the store and its namespace exists, before its interfaces are made:
    /// work that needs only those (the CNI plugin's DNS hand-off) can then
    /// run alongside the kernel's part. Should the create fail later, the
    /// records go again.
    pub async fn create_sandbox_and(
        &self,
        req: &SandboxCreate,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<SandboxDetail> {
        let name: Name = req.name.parse()?;
        let lock = self.sandbox_lock(&name).await?;
        let made = self.create_sandbox_locked(req, recorded).await;
        if made.is_err() {
            self.release_if_gone(lock, &name);
        }
        made
    }

    /// [`Netd::create_sandbox_and`] with the sandbox's lock held.
    async fn create_sandbox_locked(
        &self,
        req: &SandboxCreate,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<SandboxDetail> {
        let name: Name = req.name.parse()?;
        req.endpoint.validate()?;
        let network = req.network.as_deref().unwrap_or("bridge");
        let net = self.store.read(|c| {
            if store::sandbox_name_taken(c, &name)? {
                return Err(Error::Conflict(format!(
                    "sandbox with name {name} already exists"
                )));
            }
            store::network(c, network)
        })?;
        let has_endpoint_opts = req.endpoint.ip.is_some()
            || !req.endpoint.aliases.is_empty()
            || !req.endpoint.ports.is_empty()
            || req.endpoint.mac.is_some();
        let mut adopted = None;
        let (sandbox_net, isolated) = match (&net.driver, &req.netns) {
            (Driver::Host, None) => (SandboxNet::Host, false),
            (Driver::Host, Some(_)) => {
                return Err(Error::Invalid(
                    "a host-mode sandbox shares the host namespace; --netns does not apply".into(),
                ));
            }
            (driver, netns) => {
                let isolated = matches!(driver, Driver::Null);
                let sn = match netns {
                    Some(p) => {
                        let path = PathBuf::from(p);
                        let Some(id) = netns::ns_id(&path) else {
                            return Err(Error::Invalid(format!("{p} is not a network namespace")));
                        };
                        if Some(id) == self.home_ns {
                            // Its interface would land among the host's.
                            return Err(Error::Invalid(format!(
                                "{p} is the network namespace netd runs in; a sandbox needs a namespace of its own (or --network host)"
                            )));
                        }
                        adopted = Some(id);
                        SandboxNet::Namespace {
                            path: p.clone(),
                            owned: false,
                        }
                    }
                    None => {
                        let path = netns::named_path(name.as_str());
                        if path.exists() {
                            return Err(Error::Conflict(format!(
                                "network namespace {} already exists; pass --netns {} to adopt it",
                                name,
                                path.display()
                            )));
                        }
                        SandboxNet::Namespace {
                            path: path.display().to_string(),
                            owned: true,
                        }
                    }
                };
                (sn, isolated)
            }
        };
        if has_endpoint_opts && net.bridge().is_none() {
            return Err(Error::Invalid(format!(
                "--ip, --alias, --publish and --mac need a bridge network, not {}",
                net.name
            )));
        }
        let sandbox = Sandbox {
            id: Id::random(),
            name,
            net: sandbox_net,
            isolated,
            created: now_rfc3339(),
        };
        let endpoint = self.store.write(|c| {
            // In the transaction, so two requests adopting one namespace
            // at once cannot both pass.
            if let (Some(id), Some(p)) = (adopted, &req.netns)
                && let Some(other) = namespace_owner(c, id)?
            {
                return Err(namespace_taken(p, &other));
            }
            store::insert_sandbox(c, &sandbox)?;
            match net.bridge() {
                Some(_) => Ok(Some(store::insert_endpoint(
                    c,
                    &net,
                    &sandbox,
                    &req.endpoint,
                )?)),
                None => Ok(None),
            }
        })?;
        // Create the namespace on its own: if that fails (someone took the
        // name meanwhile), the undo below must not delete what is not ours.
        if let SandboxNet::Namespace { owned: true, .. } = &sandbox.net
            && let Err(e) = netns::create_named(sandbox.name.as_str())
        {
            self.store
                .write(|c| store::delete_sandbox(c, &sandbox.id))?;
            return Err(kernel(e));
        }
        recorded(&sandbox);
        if let Err(failed) = self
            .apply_new_sandbox(&sandbox, &net, endpoint.as_ref())
            .await
        {
            self.undo_sandbox(&sandbox, &net, endpoint.as_ref(), failed.published)
                .await;
            return Err(failed.error);
        }
        info!(sandbox = %sandbox.name, network = %net.name, "sandbox created");
        self.emit(
            "sandbox",
            "create",
            &sandbox.id,
            &sandbox.name,
            &[("network", net.name.as_str())],
        );
        if let Some(ep) = &endpoint {
            self.emit(
                "network",
                "connect",
                &net.id,
                &net.name,
                &[
                    ("sandbox", sandbox.name.as_str()),
                    ("ip", &ep.ip.to_string()),
                ],
            );
        }
        // What was just recorded and applied; no second read of the store.
        let endpoints = endpoint
            .map(|e| EndpointDetail::new(net.name.clone(), sandbox.name.clone(), e))
            .into_iter()
            .collect();
        Ok(detail_of(sandbox, endpoints))
    }

    async fn apply_new_sandbox(
        &self,
        sandbox: &Sandbox,
        net: &Network,
        ep: Option<&Endpoint>,
    ) -> Result<(), AttachFailed> {
        if let Some(ep) = ep {
            self.check_host_ports(net, ep)?;
        }
        if let SandboxNet::Namespace { path, owned } = &sandbox.net {
            if *owned && ep.is_some() {
                netns::write_resolv_conf(sandbox.name.as_str()).map_err(kernel)?;
            }
            // An endpoint brings `lo` up with its own interface.
            if ep.is_none() {
                k::apply_loopback(Path::new(path)).await.map_err(kernel)?;
            }
        }
        if let Some(ep) = ep {
            self.apply_endpoint(net, sandbox, ep).await?;
            self.publish(net, ep)
                .await
                .map_err(AttachFailed::published)?;
        }
        Ok(())
    }

    /// Take back a sandbox whose creation failed; `published`: the attach
    /// reached the firewall, so its port elements may be in the table.
    async fn undo_sandbox(
        &self,
        sandbox: &Sandbox,
        net: &Network,
        ep: Option<&Endpoint>,
        published: bool,
    ) {
        if let Some(ep) = ep
            && let Some(p) = plan::endpoint(net, sandbox, ep)
        {
            let _ = self.remove_links(&p).await;
        }
        if let SandboxNet::Namespace { path, owned: true } = &sandbox.net {
            let _ = netns::delete_named(Path::new(path));
            netns::remove_etc(sandbox.name.as_str());
        }
        if let Err(e) = self.store.write(|c| store::delete_sandbox(c, &sandbox.id)) {
            warn!(sandbox = %sandbox.name, "could not undo sandbox record: {e}");
        }
        if let Some(ep) = ep.filter(|_| published) {
            let _ = self.unpublish(net, ep).await;
        }
    }

    async fn apply_endpoint(&self, net: &Network, sandbox: &Sandbox, ep: &Endpoint) -> Result<()> {
        let Some(p) = plan::endpoint(net, sandbox, ep) else {
            return Ok(());
        };
        if k::apply_endpoint(&self.host, &p).await.map_err(kernel)? {
            // The bridge was gone (deleted by hand with no watcher running):
            // the network's other veths lost it too.
            self.repair_network(net, Some(sandbox)).await;
        }
        Ok(())
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
    /// more (see `kernel::reattach_port`): safe without the sandbox's lock.
    pub(crate) async fn reattach_port_of(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Result<bool> {
        let Some(p) = plan::endpoint(net, sb, ep) else {
            return Ok(false);
        };
        k::reattach_port(&self.host, &p).await.map_err(kernel)
    }

    /// `reapply_endpoint` for a caller that holds the sandbox's lock.
    pub(crate) async fn reapply_endpoint_of(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &Endpoint,
    ) -> Result<bool> {
        let Some(p) = plan::endpoint(net, sb, ep) else {
            return Ok(false);
        };
        // A namespace that went took the pair with it; reconcile (or the
        // engine's DEL) deals with the sandbox.
        if !netns::is_netns(&p.netns) {
            return Ok(false);
        }
        k::apply_endpoint(&self.host, &p).await.map_err(kernel)?;
        Ok(true)
    }

    /// Refuse (`Invalid`) when the namespace at `path` belongs to a
    /// sandbox other than `except`, as creating a sandbox there would.
    pub fn check_namespace_free(&self, path: &str, except: &str) -> Result<()> {
        let Some(id) = netns::ns_id(Path::new(path)) else {
            return Ok(());
        };
        match self.store.read(|c| namespace_owner(c, id))? {
            Some(other) if other != except => Err(namespace_taken(path, &other)),
            _ => Ok(()),
        }
    }

    pub fn list_sandboxes(&self) -> Result<Vec<SandboxDetail>> {
        self.store.read(|c| {
            store::sandboxes(c)?
                .into_iter()
                .map(|s| sandbox_detail(c, s))
                .collect()
        })
    }

    pub fn inspect_sandbox<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
    ) -> Result<SandboxDetail> {
        let reference = reference.into();
        self.store
            .read(|c| sandbox_detail(c, store::sandbox(c, reference)?))
    }

    /// Remove a sandbox: its endpoints, then its namespace if netd made it.
    /// With `force`, kernel failures are logged and the record goes anyway.
    /// An endpoint added while the sandbox is being removed makes this a
    /// conflict and the records stay (the links of the endpoints read first
    /// are gone: removing again finishes), rather than dropping the record
    /// of an attachment its caller was just told had worked.
    pub async fn remove_sandbox<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
        force: bool,
    ) -> Result<Sandbox> {
        let (lock, sandbox) = self.lock_sandbox(reference.into()).await?;
        let eps = self.store.read(|c| {
            let mut eps = Vec::new();
            for e in store::endpoints_of_sandbox(c, &sandbox.id)? {
                eps.push((store::network_by_id(c, &e.network)?, e));
            }
            Ok(eps)
        })?;
        let ids: Vec<Id> = eps.iter().map(|(_, e)| e.id.clone()).collect();
        for (net, ep) in &eps {
            if let Some(p) = plan::endpoint(net, &sandbox, ep)
                && let Err(e) = self.remove_links(&p).await
            {
                if !force {
                    return Err(kernel(e));
                }
                warn!(sandbox = %sandbox.name, "forced removal: {e:#}");
            }
        }
        if let SandboxNet::Namespace { owned: true, .. } = &sandbox.net {
            netns::remove_etc(sandbox.name.as_str());
        }
        if let SandboxNet::Namespace { path, owned: true } = &sandbox.net
            && let Err(e) = netns::delete_named(Path::new(path))
        {
            if !force {
                return Err(kernel(e));
            }
            warn!(sandbox = %sandbox.name, "forced removal: {e:#}");
        }
        self.store.write(|c| {
            let now: Vec<Id> = store::endpoints_of_sandbox(c, &sandbox.id)?
                .into_iter()
                .map(|e| e.id)
                .collect();
            if now != ids {
                return Err(Error::Conflict(format!(
                    "sandbox {} gained an endpoint while being removed",
                    sandbox.name
                )));
            }
            store::delete_sandbox(c, &sandbox.id)
        })?;
        for (net, ep) in &eps {
            if let Err(e) = self.unpublish(net, ep).await {
                warn!(sandbox = %sandbox.name, "withdrawing published ports: {e}");
            }
        }
        // Only now: a sandbox of the same name made at once must not have
        // its ports withdrawn with these.
        lock.remove();
        for (net, _) in &eps {
            self.emit(
                "network",
                "disconnect",
                &net.id,
                &net.name,
                &[("sandbox", sandbox.name.as_str())],
            );
        }
        info!(sandbox = %sandbox.name, "sandbox removed");
        self.emit("sandbox", "destroy", &sandbox.id, &sandbox.name, &[]);
        Ok(sandbox)
    }

    // ---- endpoints ------------------------------------------------------------

    pub async fn connect<'a>(
        &self,
        network: impl Into<store::Ref<'a>>,
        sandbox: impl Into<store::Ref<'a>>,
        req: &EndpointRequest,
    ) -> Result<EndpointDetail> {
        let (network, sandbox) = (network.into(), sandbox.into());
        req.validate()?;
        // Held until the endpoint is in the kernel (or undone): a second
        // connect then finds it recorded (409), a disconnect finds it whole.
        let (_lock, sb) = self.lock_sandbox(sandbox).await?;
        let net = self.store.read(|c| store::network(c, network))?;
        if net.bridge().is_none() {
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
        let ep = self
            .store
            .write(|c| store::insert_endpoint(c, &net, &sb, req))?;
        let applied = async {
            self.check_host_ports(&net, &ep)?;
            self.apply_endpoint(&net, &sb, &ep).await?;
            self.publish(&net, &ep)
                .await
                .map_err(AttachFailed::published)
        }
        .await;
        if let Err(failed) = applied {
            if let Some(p) = plan::endpoint(&net, &sb, &ep) {
                let _ = self.remove_links(&p).await;
            }
            self.store.write(|c| store::delete_endpoint(c, &ep.id))?;
            if failed.published {
                let _ = self.unpublish(&net, &ep).await;
            }
            return Err(failed.error);
        }
        info!(network = %net.name, sandbox = %sb.name, ip = %ep.ip, "connected");
        self.emit(
            "network",
            "connect",
            &net.id,
            &net.name,
            &[("sandbox", sb.name.as_str()), ("ip", &ep.ip.to_string())],
        );
        Ok(EndpointDetail::new(net.name, sb.name, ep))
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
        if let Some(p) = plan::endpoint(&net, &sb, &ep)
            && let Err(e) = self.remove_links(&p).await
        {
            if !force {
                return Err(kernel(e));
            }
            warn!(sandbox = %sb.name, "forced disconnect: {e:#}");
        }
        self.store.write(|c| store::delete_endpoint(c, &ep.id))?;
        if let Err(e) = self.unpublish(&net, &ep).await {
            warn!(sandbox = %sb.name, "withdrawing published ports: {e}");
        }
        // The default route may have left with that interface: give it to
        // another network the sandbox is still on.
        if let Err(e) = self.restore_default_route(&sb).await {
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

    async fn restore_default_route(&self, sb: &Sandbox) -> Result<()> {
        let Some(path) = sb.netns_path() else {
            return Ok(());
        };
        let eps = self.store.read(|c| {
            let mut out = Vec::new();
            for e in store::endpoints_of_sandbox(c, &sb.id)? {
                out.push((store::network_by_id(c, &e.network)?, e));
            }
            Ok(out)
        })?;
        let Some(gw) = eps
            .iter()
            .find_map(|(n, _)| n.bridge().filter(|b| !b.internal).map(|b| b.gateway))
        else {
            return Ok(());
        };
        let nl = Netlink::in_netns(Path::new(path)).map_err(kernel)?;
        if !nl.has_default_route().await.map_err(kernel)? {
            nl.add_default_route(gw).await.map_err(kernel)?;
        }
        Ok(())
    }

    // ---- reconcile ------------------------------------------------------------

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
            if let Some(bp) = plan::bridge(n) {
                match k::apply_bridge(&self.host, &bp).await {
                    Ok(_) => report.bridges += 1,
                    Err(e) => report.failures.push(format!("bridge {}: {e:#}", bp.name)),
                }
            }
        }
        let by_id = |id: &Id| sandboxes.iter().find(|s| &s.id == id);
        for s in &sandboxes {
            if let SandboxNet::Namespace { path, owned } = &s.net
                && !netns::is_netns(Path::new(path))
            {
                if *owned {
                    let _ = std::fs::remove_file(path);
                    match netns::create_named(s.name.as_str()) {
                        Ok(_) => report.namespaces_recreated.push(s.name.to_string()),
                        Err(e) => report
                            .failures
                            .push(format!("namespace of {}: {e:#}", s.name)),
                    }
                } else {
                    warn!(sandbox = %s.name, %path, "the sandbox's namespace is gone; its engine should remove it");
                }
            }
            if let Some(p) = s.netns_path()
                && netns::is_netns(Path::new(p))
                && let Err(e) = k::apply_loopback(Path::new(p)).await
            {
                report.failures.push(format!("lo of {}: {e:#}", s.name));
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
        if let Err(e) = self.sync_firewall().await {
            report.failures.push(format!("firewall: {e}"));
        }
        // Links first, records second: every operation records an endpoint
        // before it makes the link, so a link listed here whose record
        // the second read lacks really is an orphan, not an attach in flight.
        let links = self.host.links().await.map_err(kernel)?;
        let (nets, eps) = self
            .store
            .read(|c| Ok((store::networks(c)?, store::all_endpoints(c)?)))?;
        for name in plan::orphan_links(&nets, &eps, links.iter().map(|l| l.name.as_str())) {
            match self.host.delete_link(&name).await {
                Ok(()) => report.orphans_removed.push(name),
                Err(e) => report.failures.push(format!("orphan {name}: {e:#}")),
            }
        }
        Ok(report)
    }
}

/// An attach that failed, and whether it had reached the firewall: only
/// then may its port elements be in the table. Withdrawing elements that
/// were never added fails the batch and costs a full table rebuild.
struct AttachFailed {
    error: Error,
    published: bool,
}

impl AttachFailed {
    fn published(error: Error) -> AttachFailed {
        AttachFailed {
            error,
            published: true,
        }
    }
}

impl From<Error> for AttachFailed {
    fn from(error: Error) -> AttachFailed {
        AttachFailed {
            error,
            published: false,
        }
    }
}

fn namespace_taken(path: &str, other: &str) -> Error {
    Error::Invalid(format!(
        "network namespace {path} already belongs to sandbox {other}; connect that sandbox to more networks instead"
    ))
}

/// The sandbox whose namespace is `id`, compared by device and inode so
/// that two paths to one namespace are seen as one. A stat per sandbox.
fn namespace_owner(c: &rusqlite::Connection, id: netns::NsId) -> Result<Option<String>> {
    Ok(store::sandbox_netns_paths(c)?
        .into_iter()
        .find(|(_, path)| netns::file_id(Path::new(path)) == Some(id))
        .map(|(name, _)| name))
}

fn new_network(name: &str, driver: Driver) -> Result<Network> {
    Ok(Network {
        id: Id::random(),
        name: name.parse()?,
        driver,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        created: now_rfc3339(),
    })
}

/// A network's endpoints with their sandboxes, those `keep` accepts.
fn network_endpoints(
    c: &rusqlite::Connection,
    network: &Network,
    keep: impl Fn(&Sandbox, &Endpoint) -> bool,
) -> Result<Vec<EndpointDetail>> {
    let mut endpoints = Vec::new();
    for e in store::endpoints_of_network(c, &network.id)? {
        let s = store::sandbox_by_id(c, &e.sandbox)?;
        if keep(&s, &e) {
            endpoints.push(EndpointDetail::new(network.name.clone(), s.name, e));
        }
    }
    Ok(endpoints)
}

fn network_detail(c: &rusqlite::Connection, network: Network) -> Result<NetworkDetail> {
    let endpoints = network_endpoints(c, &network, |_, _| true)?;
    Ok(NetworkDetail { network, endpoints })
}

fn sandbox_detail(c: &rusqlite::Connection, sandbox: Sandbox) -> Result<SandboxDetail> {
    let mut endpoints = Vec::new();
    for e in store::endpoints_of_sandbox(c, &sandbox.id)? {
        let n = store::network_by_id(c, &e.network)?;
        endpoints.push(EndpointDetail::new(n.name, sandbox.name.clone(), e));
    }
    Ok(detail_of(sandbox, endpoints))
}

fn detail_of(sandbox: Sandbox, endpoints: Vec<EndpointDetail>) -> SandboxDetail {
    let netns = match &sandbox.net {
        SandboxNet::Namespace { path, .. } => path.clone(),
        SandboxNet::Host => netns::own_netns_path().display().to_string(),
    };
    SandboxDetail {
        sandbox,
        netns,
        endpoints,
    }
}
