//! Unit tests of every operation and its rollback, against the recording
//! fake kernel (`crate::kernel::fake`) and a real store in a temporary
//! directory: no root, no CAP_NET_ADMIN. What the real kernel does with the
//! same plans is proven by the root tests under `tests/` and `cni/tests/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;

use super::Netd;
use crate::error::{Error, Result};
use crate::kernel::fake::{FakeKernel, World};
use crate::model::*;
use crate::plan;
use crate::plan::firewall as fwplan;
use crate::store;

mod aux;
mod config_only;
mod dual_stack;
mod egress_ifb;
mod endpoint;
mod firewalld;
mod forward;
mod gw_priority;
mod if_sysctls;
mod ipv6_only;
mod link_local;
mod network;
mod options;
mod overlay;
mod reconcile;
mod rollback;
mod sandbox;

/// One test's netd over the fake kernel, in a directory of its own.
pub(super) struct T {
    pub netd: Netd<FakeKernel>,
    dir: PathBuf,
}

impl Drop for T {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a failed operation must leave as it found: the store's records
/// and everything the fake kernel holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Snapshot {
    networks: Vec<String>,
    sandboxes: Vec<String>,
    endpoints: Vec<String>,
    kernel: World,
}

/// A netd over a fresh fake kernel whose firewall table is in place, as
/// the daemon's is from its start.
pub(super) async fn world() -> T {
    world_with(|n| n).await
}

/// [`world`], with the netd made by `f` from the plain one (one in a
/// cluster, say).
pub(super) async fn world_with(f: impl FnOnce(Netd<FakeKernel>) -> Netd<FakeKernel>) -> T {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "netd-ops-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let k = FakeKernel::new(&dir.join("run"));
    let netd = f(Netd::with_kernel(&dir.join("state"), k)
        .await
        .expect("open netd over the fake kernel"));
    netd.sync_firewall().await.expect("first firewall apply");
    T { netd, dir }
}

/// Every network, sandbox and endpoint record.
type Records = (Vec<Network>, Vec<Sandbox>, Vec<Endpoint>);

impl T {
    pub fn records(&self) -> Records {
        self.netd
            .store()
            .read(|c| {
                Ok((
                    store::networks(c)?,
                    store::sandboxes(c)?,
                    store::all_endpoints(c)?,
                ))
            })
            .expect("read store")
    }

    /// The bridge name of network `name`.
    pub fn bridge_of(&self, name: &str) -> String {
        let n = self.netd.network(name).expect("network");
        n.bridge().expect("a bridge network").bridge.to_string()
    }

    pub fn k(&self) -> &FakeKernel {
        self.netd.kernel()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn snapshot(&self) -> Snapshot {
        let (n, s, e) = self.records();
        let json = |v: Vec<String>| {
            let mut v = v;
            v.sort();
            v
        };
        let mut kernel = self.k().world();
        // Forwarding is the host's: netd turns it on and never off.
        kernel.sysctls.remove("net/ipv4/ip_forward");
        kernel.sysctls.remove("net/ipv6/conf/all/forwarding");
        Snapshot {
            networks: json(
                n.iter()
                    .map(|x| serde_json::to_string(x).unwrap())
                    .collect(),
            ),
            sandboxes: json(
                s.iter()
                    .map(|x| serde_json::to_string(x).unwrap())
                    .collect(),
            ),
            endpoints: json(
                e.iter()
                    .map(|x| serde_json::to_string(x).unwrap())
                    .collect(),
            ),
            kernel,
        }
    }

    /// The kernel matches the store: every bridge network has its bridge,
    /// every endpoint its pair and address, the table its plan, and no
    /// netd-named link lacks a record.
    pub fn assert_consistent(&self) {
        let (nets, sbs, eps) = self.records();
        let w = self.k().world();
        for n in &nets {
            // The default network's bridge is made by its first attach.
            let used = !n.is_predefined() || eps.iter().any(|e| e.network == n.id);
            if let Some(b) = plan::bridge(n).filter(|_| used) {
                assert_eq!(w.links[&b.name].kind, "bridge", "bridge of {}", n.name);
            }
        }
        for ep in &eps {
            let n = nets.iter().find(|n| n.id == ep.network).unwrap();
            let s = sbs.iter().find(|s| s.id == ep.sandbox).unwrap();
            let p = plan::endpoint(n, s, ep).unwrap();
            let l = &w.links[&p.host_veth];
            assert_eq!(l.controller.as_deref(), Some(p.bridge.name.as_str()));
            assert_eq!(
                w.ifaces.get(&(p.netns.clone(), p.ifname.clone())).copied(),
                p.address
            );
            assert_eq!(
                w.ifaces6.get(&(p.netns.clone(), p.ifname.clone())),
                p.address6.as_ref()
            );
            assert_eq!(
                w.link_local
                    .get(&(p.netns.clone(), p.ifname.clone()))
                    .cloned()
                    .unwrap_or_default(),
                p.link_local,
                "link-local addresses of {}",
                p.ifname
            );
        }
        assert_eq!(
            w.table,
            Some(fwplan::plan(&nets, &eps)),
            "table matches the store"
        );
        let orphans = plan::orphan_links(&nets, &eps, w.links.keys().map(String::as_str));
        assert!(orphans.is_empty(), "orphans: {orphans:?}");
    }

    pub async fn network(&self, name: &str, subnet: &str) -> Network {
        self.netd
            .create_network(&net(name, subnet))
            .await
            .expect("create network")
    }

    pub async fn sandbox(&self, name: &str, network: &str) -> super::SandboxDetail {
        self.netd
            .create_sandbox(&sandbox(name, network))
            .await
            .expect("create sandbox")
    }
}

pub(super) fn net(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        subnet: Some(subnet.into()),
        ..Default::default()
    }
}

pub(super) fn sandbox(name: &str, network: &str) -> SandboxCreate {
    SandboxCreate {
        name: name.into(),
        network: Some(network.into()),
        ..Default::default()
    }
}

pub(super) fn publishing(name: &str, network: &str, ports: &[&str]) -> SandboxCreate {
    SandboxCreate {
        endpoint: ports_req(ports),
        ..sandbox(name, network)
    }
}

pub(super) fn ports_req(ports: &[&str]) -> EndpointRequest {
    EndpointRequest {
        ports: ports
            .iter()
            .map(|p| p.parse().expect("port spec"))
            .collect(),
        ..Default::default()
    }
}

/// An operation under test, run against a prepared world.
pub(super) type Op = for<'a> fn(&'a T) -> BoxFuture<'a, Result<()>>;

/// Run `op` on a world prepared by `setup` and count its kernel calls;
/// then, for each of those calls, on a fresh world with that call
/// failing once. Each run must either fail and leave store and kernel
/// exactly as they were, or (where the operation has a fallback, as
/// publishing does with a full rebuild) succeed with a kernel consistent
/// with the store. Returns how many points were tried and how many failed.
pub(super) async fn every_failure_point(setup: Op, op: Op) -> (usize, usize) {
    let clean = world().await;
    setup(&clean).await.expect("setup");
    let before = clean.k().count();
    op(&clean)
        .await
        .expect("the operation works without faults");
    clean.assert_consistent();
    let steps = clean.k().count() - before;
    assert!(steps > 0, "the operation made no kernel call");
    let mut failed = 0;
    for i in 0..steps {
        let t = world().await;
        setup(&t).await.expect("setup");
        let snap = t.snapshot();
        t.k().fail_after(i);
        match op(&t).await {
            Err(e) => {
                failed += 1;
                assert!(
                    matches!(e, Error::Kernel(_)),
                    "step {i}: a kernel failure comes out as one: {e}"
                );
                assert_eq!(
                    t.snapshot(),
                    snap,
                    "step {i} ({:?}) failing must change nothing",
                    t.k().calls().get(t.k().calls().len().saturating_sub(1))
                );
            }
            Ok(()) => t.assert_consistent(),
        }
    }
    assert!(failed > 0, "no failure point made the operation fail");
    (steps, failed)
}

pub(super) fn nothing(_: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async { Ok(()) })
}
