//! The daemon's side of the cluster: join it at start, make this host's
//! endpoints known again, and follow the cluster's view from then on (other
//! hosts' networks made here, their endpoints' forwarding entries, their
//! names in DNS, events for the load balancer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::dns_host::DnsHost;
use crate::cluster::{ClusterConfig, ClusterStore, ClusterView};
use crate::model::{Endpoint, Id, Name, Sandbox};
use crate::ops::Netd;

/// How long a start waits for the first full read of the cluster before
/// serving with what it has (the watch catches up).
const FIRST_VIEW: Duration = Duration::from_secs(5);

/// Connect to etcd and register this host.
pub async fn join(cfg: ClusterConfig) -> Result<Arc<dyn ClusterStore>> {
    let endpoints = cfg.endpoints.join(",");
    let host = cfg.host.clone();
    let store = crate::cluster::etcd::Etcd::connect(cfg)
        .await
        .with_context(|| format!("join the cluster at {endpoints}"))?;
    info!(host = %host, store = %endpoints, "joined the cluster");
    Ok(store)
}

/// After the reconcile, before the API serves: this host's endpoints
/// claimed and published again, and the cluster's networks made here.
pub async fn start(netd: &Netd) -> Result<()> {
    let Some(cluster) = netd.cluster() else {
        return Ok(());
    };
    let mut rx = cluster.view();
    let first = tokio::time::timeout(FIRST_VIEW, rx.wait_for(|v| v.revision > 0))
        .await
        .map(|r| r.is_ok());
    if first.is_err() {
        warn!("no full read of the cluster within {FIRST_VIEW:?}; following it as it comes");
    }
    let n = netd
        .republish()
        .await
        .context("publish this host's endpoints")?;
    let view = Arc::clone(&rx.borrow());
    netd.follow_cluster(&view, first.is_ok_and(|read| read))
        .await?;
    info!(
        endpoints = n,
        networks = view.networks.len(),
        "cluster state applied"
    );
    Ok(())
}

/// Follow the view for as long as the daemon runs.
pub fn follow(netd: Arc<Netd>, dns: Arc<DnsHost>) {
    let Some(cluster) = netd.cluster() else {
        return;
    };
    let mut rx = cluster.view();
    tokio::spawn(async move {
        let mut last: Vec<(Sandbox, Endpoint)> = Vec::new();
        loop {
            let view: Arc<ClusterView> = Arc::clone(&rx.borrow_and_update());
            if let Err(e) = netd.follow_cluster(&view, false).await {
                warn!("following the cluster: {e}");
            }
            let rows = netd.remote_rows(&view);
            tracing::debug!(
                revision = view.revision,
                connected = view.connected,
                networks = view.networks.len(),
                endpoints = view.endpoints.len(),
                remote = rows.len(),
                "cluster view followed"
            );
            if rows != last {
                announce(&netd, &view, &last, &rows);
                dns.set_remote(rows.clone());
                last = rows;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Events for other hosts' endpoints that came or went, as a local
/// connect or disconnect would give: the load balancer follows them.
fn announce(
    netd: &Netd,
    view: &ClusterView,
    before: &[(Sandbox, Endpoint)],
    now: &[(Sandbox, Endpoint)],
) {
    let names: BTreeMap<&Id, &Name> = view.networks.values().map(|n| (&n.id, &n.name)).collect();
    let key = |r: &(Sandbox, Endpoint)| r.1.id.clone();
    let old: BTreeMap<Id, &(Sandbox, Endpoint)> = before.iter().map(|r| (key(r), r)).collect();
    let new: BTreeMap<Id, &(Sandbox, Endpoint)> = now.iter().map(|r| (key(r), r)).collect();
    for (id, (s, e)) in &new {
        if old.get(id).is_some_and(|o| o.1 == *e) {
            continue;
        }
        if let Some(net) = names.get(&e.network) {
            netd.emit_remote(
                "connect",
                &e.network,
                net,
                s.name.as_str(),
                &e.primary_addr(),
            );
        }
    }
    for (id, (s, e)) in &old {
        if !new.contains_key(id)
            && let Some(net) = names.get(&e.network)
        {
            netd.emit_remote("disconnect", &e.network, net, s.name.as_str(), "");
        }
    }
}
