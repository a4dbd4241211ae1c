//! An in-memory cluster for the operations' unit tests: the etcd store's
//! semantics (names, VNIs and addresses unique cluster-wide, records going
//! with their host) without etcd. Several fake hosts share one
//! [`FakeCluster`], so a test can run two hosts against each other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::alloc::{ipam_error, pick_vni, pick4, pick6};
use super::etcd::lock;
use super::{
    CResult, Claimed, ClusterEndpoint, ClusterError, ClusterStore, ClusterView, HostRecord,
};
use crate::model::{Driver, Id, Network};

#[derive(Default)]
struct World {
    down: bool,
    revision: i64,
    networks: BTreeMap<String, Network>,
    vnis: BTreeSet<u32>,
    hosts: BTreeMap<String, HostRecord>,
    /// (network, address) -> holding host.
    ipam: BTreeMap<(Id, IpAddr), String>,
    /// (network, host, endpoint) -> endpoint.
    endpoints: BTreeMap<(Id, String, Id), ClusterEndpoint>,
    views: Vec<watch::Sender<Arc<ClusterView>>>,
}

impl World {
    fn view(&self) -> ClusterView {
        ClusterView {
            revision: self.revision,
            connected: !self.down,
            networks: self
                .networks
                .values()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            hosts: self.hosts.clone(),
            endpoints: self
                .endpoints
                .values()
                .filter(|e| self.hosts.contains_key(&e.host))
                .cloned()
                .collect(),
        }
    }

    /// A change: the revision moves and every host's view follows.
    fn changed(&mut self) {
        self.revision += 1;
        let v = Arc::new(self.view());
        for tx in &self.views {
            tx.send_replace(v.clone());
        }
    }
}

/// The shared cluster; [`FakeCluster::join`] makes a host of it.
#[derive(Clone, Default)]
pub struct FakeCluster(Arc<Mutex<World>>);

impl FakeCluster {
    pub fn new() -> FakeCluster {
        FakeCluster::default()
    }

    pub fn join(&self, host: &str, vtep: Ipv4Addr) -> Arc<FakeStore> {
        let mut w = lock(&self.0);
        w.hosts.insert(
            host.to_string(),
            HostRecord {
                host: host.to_string(),
                vtep,
            },
        );
        let (tx, rx) = watch::channel(Arc::new(w.view()));
        w.views.push(tx);
        w.changed();
        Arc::new(FakeStore {
            world: self.0.clone(),
            host: host.to_string(),
            vtep,
            view: rx,
        })
    }

    /// etcd away (every call Unavailable, views disconnected) or back.
    pub fn set_down(&self, down: bool) {
        let mut w = lock(&self.0);
        w.down = down;
        let v = Arc::new(w.view());
        for tx in &w.views {
            tx.send_replace(v.clone());
        }
    }

    /// Network `name` removed from the cluster by someone else.
    pub fn remove_network_behind(&self, name: &str) {
        let mut w = lock(&self.0);
        if let Some(n) = w.networks.remove(name)
            && let Some(o) = n.overlay()
        {
            w.vnis.remove(&o.vni.get());
        }
        w.changed();
    }

    /// `host`'s lease runs out: its host record, addresses and endpoints go.
    pub fn expire(&self, host: &str) {
        let mut w = lock(&self.0);
        w.hosts.remove(host);
        w.ipam.retain(|_, h| h != host);
        w.endpoints.retain(|(_, h, _), _| h != host);
        w.changed();
    }
}

pub struct FakeStore {
    world: Arc<Mutex<World>>,
    host: String,
    vtep: Ipv4Addr,
    view: watch::Receiver<Arc<ClusterView>>,
}

impl FakeStore {
    /// The world, unless the fake etcd is down.
    fn world(&self) -> CResult<std::sync::MutexGuard<'_, World>> {
        let w = lock(&self.world);
        if w.down {
            return Err(ClusterError::Unavailable {
                endpoints: "fake".into(),
                source: "the fake cluster is down".into(),
            });
        }
        Ok(w)
    }

    fn claim_now(&self, net: &Network, want: Claimed) -> CResult<Claimed> {
        let mut w = self.world()?;
        let Some(b) = net.bridge() else {
            return Ok(Claimed::default());
        };
        let held = |a: IpAddr| w.ipam.get(&(net.id.clone(), a));
        let mine = |a: IpAddr| held(a).is_some_and(|h| *h == self.host);
        let on_net = w.ipam.keys().filter(|(n, _)| *n == net.id).map(|(_, a)| *a);
        let mut got = Claimed::default();
        if let Some(v4) = &b.ipv4 {
            got.ip = Some(match want.ip {
                Some(ip) if mine(ip.into()) => ip,
                want => {
                    let used: BTreeSet<Ipv4Addr> = on_net
                        .clone()
                        .filter_map(|a| match a {
                            IpAddr::V4(a) => Some(a),
                            _ => None,
                        })
                        .collect();
                    pick4(v4, &used, want).map_err(ipam_error)?
                }
            });
        }
        if let Some(v6) = &b.ipv6 {
            got.ip6 = Some(match want.ip6 {
                Some(ip) if mine(ip.into()) => ip,
                want => {
                    let used: BTreeSet<Ipv6Addr> = on_net
                        .filter_map(|a| match a {
                            IpAddr::V6(a) => Some(a),
                            _ => None,
                        })
                        .collect();
                    pick6(v6, &used, want).map_err(ipam_error)?
                }
            });
        }
        for a in got.addrs() {
            w.ipam.insert((net.id.clone(), a), self.host.clone());
        }
        w.changed();
        Ok(got)
    }
}

impl ClusterStore for FakeStore {
    fn host(&self) -> &str {
        &self.host
    }

    fn vtep(&self) -> Ipv4Addr {
        self.vtep
    }

    fn create_network(&self, mut net: Network) -> BoxFuture<'_, CResult<Network>> {
        let r = (|| {
            let mut w = self.world()?;
            if w.networks.contains_key(net.name.as_str()) {
                return Err(ClusterError::Conflict(format!(
                    "network {} already exists in the cluster",
                    net.name
                )));
            }
            let vni = pick_vni(&w.vnis)
                .ok_or_else(|| ClusterError::Exhausted("no free VXLAN network id left".into()))?;
            super::alloc::set_vni(&mut net, vni)?;
            w.vnis.insert(vni.get());
            w.networks.insert(net.name.to_string(), net.clone());
            w.changed();
            Ok(net)
        })();
        async move { r }.boxed()
    }

    fn remove_network<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, CResult<()>> {
        let r = (|| {
            let mut w = self.world()?;
            let hosts: BTreeSet<&String> = w
                .ipam
                .iter()
                .filter(|((n, _), _)| *n == net.id)
                .map(|(_, h)| h)
                .chain(
                    w.endpoints
                        .keys()
                        .filter(|(n, _, _)| *n == net.id)
                        .map(|(_, h, _)| h),
                )
                .collect();
            if !hosts.is_empty() {
                let hosts: Vec<&str> = hosts.into_iter().map(String::as_str).collect();
                return Err(ClusterError::Conflict(format!(
                    "network {} has active endpoints on hosts {}",
                    net.name,
                    hosts.join(", ")
                )));
            }
            let Some(old) = w.networks.remove(net.name.as_str()) else {
                return Err(ClusterError::NotFound(format!(
                    "network {} not found in the cluster",
                    net.name
                )));
            };
            if let Some(o) = old.overlay() {
                w.vnis.remove(&o.vni.get());
            }
            w.changed();
            Ok(())
        })();
        async move { r }.boxed()
    }

    fn claim<'a>(&'a self, net: &'a Network, want: Claimed) -> BoxFuture<'a, CResult<Claimed>> {
        let r = self.claim_now(net, want);
        async move { r }.boxed()
    }

    fn release<'a>(&'a self, net: &'a Network, addrs: Claimed) -> BoxFuture<'a, CResult<()>> {
        let r = self.world().map(|mut w| {
            for a in addrs.addrs() {
                let k = (net.id.clone(), a);
                if w.ipam.get(&k) == Some(&self.host) {
                    w.ipam.remove(&k);
                }
            }
            w.changed();
        });
        async move { r }.boxed()
    }

    fn publish<'a>(&'a self, ep: &'a ClusterEndpoint) -> BoxFuture<'a, CResult<()>> {
        let r = self.world().map(|mut w| {
            let k = (ep.network.clone(), self.host.clone(), ep.endpoint.clone());
            w.endpoints.insert(k, ep.clone());
            w.changed();
        });
        async move { r }.boxed()
    }

    fn withdraw<'a>(&'a self, network: &'a Id, endpoint: &'a Id) -> BoxFuture<'a, CResult<()>> {
        let r = self.world().map(|mut w| {
            w.endpoints
                .remove(&(network.clone(), self.host.clone(), endpoint.clone()));
            w.changed();
        });
        async move { r }.boxed()
    }

    fn view(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mac, OverlayConfig, Vni, fixtures};

    fn overlay(name: &str, subnet: &str) -> Network {
        let n = fixtures::network(name, subnet);
        let Driver::Bridge(bridge) = n.driver.clone() else {
            unreachable!("a bridge fixture")
        };
        Network {
            driver: Driver::Overlay(OverlayConfig {
                vni: Vni::try_from(1).unwrap(),
                bridge,
            }),
            ..n
        }
    }

    fn ep(net: &Network, host: &str, c: Claimed) -> ClusterEndpoint {
        ClusterEndpoint {
            network: net.id.clone(),
            host: host.into(),
            vtep: "192.0.2.1".parse().unwrap(),
            endpoint: Id::random(),
            sandbox: Id::random(),
            sandbox_name: "s".parse().unwrap(),
            aliases: vec![],
            ip: c.ip,
            ip6: c.ip6,
            mac: Mac([2, 0, 0, 0, 0, 1]),
        }
    }

    #[tokio::test]
    async fn two_hosts_share_names_addresses_and_endpoints() {
        let cluster = FakeCluster::new();
        let a = cluster.join("a", "192.0.2.1".parse().unwrap());
        let b = cluster.join("b", "192.0.2.2".parse().unwrap());
        let net = a
            .create_network(overlay("ov", "10.5.0.0/24"))
            .await
            .unwrap();
        assert_eq!(net.overlay().unwrap().vni.get(), 4096);
        assert!(b.view().borrow().networks.contains_key(&net.name));
        assert!(matches!(
            b.create_network(overlay("ov", "10.6.0.0/24")).await,
            Err(ClusterError::Conflict(_))
        ));
        let ca = a.claim(&net, Claimed::default()).await.unwrap();
        let cb = b.claim(&net, Claimed::default()).await.unwrap();
        assert_eq!(ca.ip, Some("10.5.0.2".parse().unwrap()));
        assert_eq!(cb.ip, Some("10.5.0.3".parse().unwrap()));
        assert!(matches!(
            b.claim(&net, ca).await,
            Err(ClusterError::Conflict(_))
        ));
        assert_eq!(a.claim(&net, ca).await.unwrap(), ca, "its own again");
        let e = ep(&net, "b", cb);
        b.publish(&e).await.unwrap();
        assert_eq!(a.view().borrow().endpoints, vec![e.clone()]);
        let refused = a.remove_network(&net).await.unwrap_err();
        assert!(
            matches!(&refused, ClusterError::Conflict(m) if m.ends_with("hosts a, b")),
            "{refused}"
        );
        cluster.expire("b");
        assert!(a.view().borrow().endpoints.is_empty());
        a.release(&net, ca).await.unwrap();
        a.remove_network(&net).await.unwrap();
        assert!(b.view().borrow().networks.is_empty());
    }

    #[tokio::test]
    async fn down_is_unavailable_and_disconnected() {
        let cluster = FakeCluster::new();
        let a = cluster.join("a", "192.0.2.1".parse().unwrap());
        cluster.set_down(true);
        assert!(!a.view().borrow().connected);
        assert!(matches!(
            a.create_network(overlay("ov", "10.5.0.0/24")).await,
            Err(ClusterError::Unavailable { .. })
        ));
        cluster.set_down(false);
        assert!(a.view().borrow().connected);
        a.create_network(overlay("ov", "10.5.0.0/24"))
            .await
            .unwrap();
    }
}
