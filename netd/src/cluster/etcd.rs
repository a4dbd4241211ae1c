//! The cluster store on etcd (v3 API over gRPC, `etcd-client`).
//!
//! Every write is one transaction whose compares make it all-or-nothing
//! against concurrent hosts; every request is bounded by [`REQUEST_TIMEOUT`]
//! so an away etcd is an error in seconds, not a hang. The host's records
//! (`hosts/`, its `ipam/` keys and endpoints) ride one lease kept alive by
//! a task (`lease`); the view is kept by another (`watch`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::alloc::{ipam_error, pick_vni, pick4, pick6};
use super::{
    CResult, Claimed, ClusterConfig, ClusterEndpoint, ClusterError, ClusterStore, ClusterView,
    HostRecord, keys,
};
use crate::model::{Id, Network};

/// The bound on every request to etcd.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times a transaction that lost a race is tried again: each
/// round one of the racing hosts wins, so this bounds the hosts claiming
/// on one network at the same moment, not the cluster's size.
const RETRIES: u32 = 32;

/// A short random pause before trying a lost race again, so the losers do
/// not meet again in lockstep.
async fn jitter(attempt: u32) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let cap = 2 * u64::from(attempt.min(10)) + 1;
    tokio::time::sleep(Duration::from_millis(u64::from(nanos) % cap)).await;
}

/// The lease and what this host put under it, to be put back under a new
/// lease if the old one runs out (etcd away longer than the TTL).
#[derive(Default)]
pub(super) struct Held {
    pub lease: i64,
    /// `ipam/` keys this host holds.
    pub ipam: BTreeSet<String>,
    /// Endpoint keys and their JSON.
    pub endpoints: BTreeMap<String, Vec<u8>>,
}

pub struct Etcd {
    pub(super) cfg: ClusterConfig,
    pub(super) label: String,
    pub(super) client: Client,
    pub(super) held: Arc<Mutex<Held>>,
    view: watch::Receiver<Arc<ClusterView>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

pub(super) fn unavailable(
    label: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> ClusterError {
    ClusterError::Unavailable {
        endpoints: label.to_string(),
        source: e.into(),
    }
}

/// One request, bounded by [`REQUEST_TIMEOUT`]; any failure is Unavailable.
pub(super) async fn bounded<T>(
    label: &str,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> CResult<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(label, e)),
        Err(_) => Err(unavailable(
            label,
            format!("no answer within {REQUEST_TIMEOUT:?}"),
        )),
    }
}

impl Etcd {
    /// Connect, take a lease and record this host; the lease is renewed and
    /// the view followed from here on.
    pub async fn connect(cfg: ClusterConfig) -> CResult<Arc<Etcd>> {
        let label = cfg.endpoints.join(",");
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            // HTTP/2 pings: a silently dead connection is noticed in
            // seconds, and the watch stream with it.
            .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = super::connect::tls_options(&label, &cfg)? {
            opts = opts.with_tls(tls);
        }
        let client = bounded(&label, Client::connect(&cfg.endpoints, Some(opts))).await?;
        let held = Arc::new(Mutex::new(Held::default()));
        let lease = super::lease::grant(&label, &client, &cfg).await?;
        lock(&held).lease = lease;
        let (tx, rx) = watch::channel(Arc::new(ClusterView::default()));
        let etcd = Etcd {
            label: label.clone(),
            client: client.clone(),
            held: held.clone(),
            view: rx,
            tasks: Mutex::new(Vec::new()),
            cfg: cfg.clone(),
        };
        let renew = tokio::spawn(super::lease::keep_alive(
            label.clone(),
            client.clone(),
            cfg,
            held,
        ));
        let follow = tokio::spawn(super::follow::follow(label, client, tx));
        *lock(&etcd.tasks) = vec![renew, follow];
        Ok(Arc::new(etcd))
    }

    /// Stop renewing the lease and following the view, without revoking:
    /// as if the host died (its records go when the lease runs out).
    pub fn stop_renewing(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    fn lease(&self) -> i64 {
        lock(&self.held).lease
    }

    async fn txn(&self, txn: Txn) -> CResult<etcd_client::TxnResponse> {
        let mut c = self.client.clone();
        bounded(&self.label, c.txn(txn)).await
    }

    async fn get_prefix(&self, prefix: &str) -> CResult<Vec<(String, Vec<u8>)>> {
        let mut c = self.client.clone();
        let r = bounded(
            &self.label,
            c.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await?;
        Ok(r.kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    async fn create(&self, mut net: Network) -> CResult<Network> {
        let name_key = keys::network(net.name.as_str());
        for attempt in 0..RETRIES {
            if attempt > 0 {
                jitter(attempt).await;
            }
            let used: BTreeSet<u32> = self
                .get_prefix(&keys::vnis())
                .await?
                .iter()
                .filter_map(|(k, _)| match keys::parse(k) {
                    Some(keys::Key::Vni(v)) => Some(v),
                    _ => None,
                })
                .collect();
            let vni = pick_vni(&used)
                .ok_or_else(|| ClusterError::Exhausted("no free VXLAN network id left".into()))?;
            super::alloc::set_vni(&mut net, vni)?;
            let json = serde_json::to_vec(&net).map_err(|e| ClusterError::Corrupt {
                key: name_key.clone(),
                source: e,
            })?;
            let vni_key = keys::vni(vni.get());
            let txn = Txn::new()
                .when([
                    Compare::version(name_key.clone(), CompareOp::Equal, 0),
                    Compare::version(vni_key.clone(), CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(name_key.clone(), json, None),
                    TxnOp::put(vni_key, net.id.as_str(), None),
                ])
                .or_else([TxnOp::get(name_key.clone(), None)]);
            let r = self.txn(txn).await?;
            if r.succeeded() {
                return Ok(net);
            }
            let name_taken = r.op_responses().iter().any(|op| match op {
                TxnOpResponse::Get(g) => !g.kvs().is_empty(),
                _ => false,
            });
            if name_taken {
                return Err(ClusterError::Conflict(format!(
                    "network {} already exists in the cluster",
                    net.name
                )));
            }
            // Another host took the VNI meanwhile: pick again.
        }
        Err(ClusterError::Conflict(format!(
            "network {}: VXLAN network ids contended, try again",
            net.name
        )))
    }

    async fn remove(&self, net: &Network) -> CResult<()> {
        let ipam = keys::ipam_prefix(&net.id);
        let eps = keys::endpoints_prefix(&net.id);
        let name_key = keys::network(net.name.as_str());
        let mut ops = vec![TxnOp::delete(name_key.clone(), None)];
        if let Some(o) = net.overlay() {
            ops.push(TxnOp::delete(keys::vni(o.vni.get()), None));
        }
        // Range compares: no key under either prefix, checked at commit, so
        // a claim or publish racing the removal makes it fail instead.
        let txn = Txn::new()
            .when([
                Compare::version(ipam.clone(), CompareOp::Equal, 0).with_prefix(),
                Compare::version(eps.clone(), CompareOp::Equal, 0).with_prefix(),
                Compare::version(name_key, CompareOp::Greater, 0),
            ])
            .and_then(ops)
            .or_else([
                TxnOp::get(ipam, Some(GetOptions::new().with_prefix())),
                TxnOp::get(eps, Some(GetOptions::new().with_prefix())),
            ]);
        let r = self.txn(txn).await?;
        if r.succeeded() {
            return Ok(());
        }
        let mut hosts = BTreeSet::new();
        for op in r.op_responses() {
            if let TxnOpResponse::Get(g) = op {
                for kv in g.kvs() {
                    match keys::parse(&String::from_utf8_lossy(kv.key())) {
                        Some(keys::Key::Endpoint { host, .. }) => {
                            hosts.insert(host.to_string());
                        }
                        Some(keys::Key::Ipam { .. }) => {
                            hosts.insert(String::from_utf8_lossy(kv.value()).into_owned());
                        }
                        _ => {}
                    }
                }
            }
        }
        if hosts.is_empty() {
            return Err(ClusterError::NotFound(format!(
                "network {} not found in the cluster",
                net.name
            )));
        }
        let hosts: Vec<String> = hosts.into_iter().collect();
        Err(ClusterError::Conflict(format!(
            "network {} has active endpoints on hosts {}",
            net.name,
            hosts.join(", ")
        )))
    }

    async fn claim_once(&self, net: &Network, want: Claimed) -> CResult<Option<Claimed>> {
        let Some(b) = net.bridge() else {
            return Ok(Some(Claimed::default()));
        };
        let held: BTreeMap<IpAddr, String> = self
            .get_prefix(&keys::ipam_prefix(&net.id))
            .await?
            .into_iter()
            .filter_map(|(k, v)| match keys::parse(&k) {
                Some(keys::Key::Ipam { addr, .. }) => {
                    Some((addr, String::from_utf8_lossy(&v).into_owned()))
                }
                _ => None,
            })
            .collect();
        let mine = |a: IpAddr| held.get(&a).is_some_and(|h| h == self.host());
        let mut got = Claimed::default();
        // Per address: create-if-absent, or (a restarted host re-claiming
        // its own address) still ours.
        let mut compares = Vec::new();
        if let Some(v4) = &b.ipv4 {
            let ip = match want.ip {
                Some(w) if mine(w.into()) => w,
                w => {
                    let used = held.keys().filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        _ => None,
                    });
                    pick4(v4, &used.collect(), w).map_err(ipam_error)?
                }
            };
            got.ip = Some(ip);
        }
        if let Some(v6) = &b.ipv6 {
            let ip = match want.ip6 {
                Some(w) if mine(w.into()) => w,
                w => {
                    let used = held.keys().filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        _ => None,
                    });
                    pick6(v6, &used.collect(), w).map_err(ipam_error)?
                }
            };
            got.ip6 = Some(ip);
        }
        let lease = self.lease();
        let mut puts = Vec::new();
        for a in got.addrs() {
            let key = keys::ipam(&net.id, a);
            compares.push(if mine(a) {
                Compare::value(key.clone(), CompareOp::Equal, self.host())
            } else {
                Compare::version(key.clone(), CompareOp::Equal, 0)
            });
            puts.push(TxnOp::put(
                key,
                self.host(),
                Some(PutOptions::new().with_lease(lease)),
            ));
        }
        let r = self.txn(Txn::new().when(compares).and_then(puts)).await?;
        if !r.succeeded() {
            return Ok(None);
        }
        let mut h = lock(&self.held);
        for a in got.addrs() {
            h.ipam.insert(keys::ipam(&net.id, a));
        }
        Ok(Some(got))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (plain inserts).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClusterStore for Etcd {
    fn host(&self) -> &str {
        &self.cfg.host
    }

    fn vtep(&self) -> Ipv4Addr {
        self.cfg.advertise
    }

    fn create_network(&self, net: Network) -> BoxFuture<'_, CResult<Network>> {
        self.create(net).boxed()
    }

    fn remove_network<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, CResult<()>> {
        self.remove(net).boxed()
    }

    fn claim<'a>(&'a self, net: &'a Network, want: Claimed) -> BoxFuture<'a, CResult<Claimed>> {
        async move {
            for attempt in 0..RETRIES {
                if let Some(c) = self.claim_once(net, want).await? {
                    return Ok(c);
                }
                jitter(attempt).await;
            }
            Err(ClusterError::Conflict(format!(
                "network {}: addresses contended, try again",
                net.name
            )))
        }
        .boxed()
    }

    fn release<'a>(&'a self, net: &'a Network, addrs: Claimed) -> BoxFuture<'a, CResult<()>> {
        async move {
            let keys: Vec<String> = addrs
                .addrs()
                .into_iter()
                .map(|a| keys::ipam(&net.id, a))
                .collect();
            // Only this host's: an address another host holds is not ours to free.
            let ops: Vec<TxnOp> = keys
                .iter()
                .map(|k| {
                    TxnOp::txn(
                        Txn::new()
                            .when([Compare::value(k.clone(), CompareOp::Equal, self.host())])
                            .and_then([TxnOp::delete(k.clone(), None)]),
                    )
                })
                .collect();
            self.txn(Txn::new().and_then(ops)).await?;
            let mut h = lock(&self.held);
            for k in &keys {
                h.ipam.remove(k);
            }
            Ok(())
        }
        .boxed()
    }

    fn publish<'a>(&'a self, ep: &'a ClusterEndpoint) -> BoxFuture<'a, CResult<()>> {
        async move {
            let key = keys::endpoint(&ep.network, self.host(), &ep.endpoint);
            let json = serde_json::to_vec(ep).map_err(|e| ClusterError::Corrupt {
                key: key.clone(),
                source: e,
            })?;
            let opts = PutOptions::new().with_lease(self.lease());
            let mut c = self.client.clone();
            bounded(&self.label, c.put(key.clone(), json.clone(), Some(opts))).await?;
            lock(&self.held).endpoints.insert(key, json);
            Ok(())
        }
        .boxed()
    }

    fn withdraw<'a>(&'a self, network: &'a Id, endpoint: &'a Id) -> BoxFuture<'a, CResult<()>> {
        async move {
            let key = keys::endpoint(network, self.host(), endpoint);
            let mut c = self.client.clone();
            bounded(&self.label, c.delete(key.clone(), None)).await?;
            lock(&self.held).endpoints.remove(&key);
            Ok(())
        }
        .boxed()
    }

    fn view(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }
}

/// This host's record.
pub(super) fn host_record(cfg: &ClusterConfig) -> Vec<u8> {
    serde_json::to_vec(&HostRecord {
        host: cfg.host.clone(),
        vtep: cfg.advertise,
    })
    .unwrap_or_default()
}
