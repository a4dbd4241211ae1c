//! The cluster: what overlay networks share between hosts, kept in etcd.
//!
//! A host joins with `netd daemon --cluster-store etcd://… --cluster-advertise
//! IP`. Overlay networks, their addresses and every host's endpoints on them
//! live in etcd; each host keeps its own endpoints in its SQLite store as on
//! one host, and follows the others' through a watch ([`ClusterView`]).
//! Without a cluster nothing here runs: the single-host path never reads
//! etcd.
//!
//! The operations see the cluster only through [`ClusterStore`], so they are
//! unit-tested against the in-memory fake (`fake`); `etcd` is the real one.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::model::{Id, Mac, Name, Network};

pub mod alloc;
mod connect;
pub mod etcd;
#[cfg(test)]
pub mod fake;
mod follow;
pub mod keys;
mod lease;
pub mod view;

/// How this host joins the cluster (the daemon's `--cluster-*` flags).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// etcd client URLs, `http://HOST:2379` or `https://HOST:2379`.
    pub endpoints: Vec<String>,
    /// This host's address on the underlay: its VTEP, the destination of
    /// the other hosts' VXLAN packets for its endpoints.
    pub advertise: Ipv4Addr,
    /// This host's name in the cluster, unique among its hosts.
    pub host: String,
    /// The lease of the host's records: a host that stops renewing it is
    /// gone from the others' view once it runs out.
    pub ttl: Duration,
    pub tls: Option<TlsFiles>,
}

/// TLS client settings for etcd (`--cluster-store-cacert/-cert/-key`).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What can go wrong with a cluster request. Nothing was changed in etcd
/// when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd did not answer in time, or refused the connection.
    #[error("cluster store {endpoints} unavailable: {source}")]
    Unavailable {
        endpoints: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The name, address or VNI is taken, or the network is in use.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// No free address (or VNI) is left.
    #[error("{0}")]
    Exhausted(String),
    /// A record in etcd that netd cannot read.
    #[error("cluster record {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type CResult<T> = Result<T, ClusterError>;

pub use connect::store_endpoints;

/// `/netd/hosts/HOST`, under the host's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    pub vtep: Ipv4Addr,
}

/// An endpoint on an overlay network as every host sees it:
/// `/netd/endpoints/NETWORK_ID/HOST/ENDPOINT_ID`, under its host's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEndpoint {
    pub network: Id,
    pub host: String,
    /// The VTEP of `host`, where the others send its frames.
    pub vtep: Ipv4Addr,
    pub endpoint: Id,
    pub sandbox: Id,
    pub sandbox_name: Name,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Mac,
}

/// The addresses an endpoint got from the cluster's IPAM, one per family
/// the network has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Claimed {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
}

impl Claimed {
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.ip
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ip6.map(IpAddr::V6))
            .collect()
    }
}

/// The cluster as this host last read it: kept current by a watch on etcd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// The etcd revision this view is at (0 before the first read).
    pub revision: i64,
    /// Whether the watch is live; false while etcd is away (the view is
    /// then the last one read, and the datapath keeps following it).
    pub connected: bool,
    /// Overlay networks, by name.
    pub networks: BTreeMap<Name, Network>,
    /// Live hosts (their leases run), by name.
    pub hosts: BTreeMap<String, HostRecord>,
    /// Every endpoint of every live host, this host's own included.
    pub endpoints: Vec<ClusterEndpoint>,
}

/// What the operations need from the cluster. Every call either does all
/// it says or nothing, and answers within a few seconds
/// ([`ClusterError::Unavailable`] otherwise).
pub trait ClusterStore: Send + Sync + 'static {
    /// This host's name in the cluster.
    fn host(&self) -> &str;
    /// This host's VTEP address.
    fn vtep(&self) -> Ipv4Addr;
    /// Record a new overlay network under its name, with a VNI no other
    /// overlay network has (set in the returned copy). A name taken in the
    /// cluster is [`ClusterError::Conflict`].
    fn create_network(&self, net: Network) -> BoxFuture<'_, CResult<Network>>;
    /// Remove an overlay network; refused ([`ClusterError::Conflict`],
    /// naming the hosts) while any host has endpoints or addresses on it.
    fn remove_network<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, CResult<()>>;
    /// Take addresses for a new endpoint, in one etcd transaction: the
    /// wanted ones (taken: Conflict), else the lowest free of each family
    /// the network has (its ip_range when set; never the gateway nor an
    /// aux address). Held under this host's lease.
    fn claim<'a>(&'a self, net: &'a Network, want: Claimed) -> BoxFuture<'a, CResult<Claimed>>;
    /// Give addresses back; ones already free are fine.
    fn release<'a>(&'a self, net: &'a Network, addrs: Claimed) -> BoxFuture<'a, CResult<()>>;
    /// Make an endpoint known to every host (put again: replaced).
    fn publish<'a>(&'a self, ep: &'a ClusterEndpoint) -> BoxFuture<'a, CResult<()>>;
    /// Forget an endpoint of this host; gone already is fine.
    fn withdraw<'a>(&'a self, network: &'a Id, endpoint: &'a Id) -> BoxFuture<'a, CResult<()>>;
    /// The view, updated by the watch; `changed()` wakes on every update.
    fn view(&self) -> tokio::sync::watch::Receiver<Arc<ClusterView>>;
}
