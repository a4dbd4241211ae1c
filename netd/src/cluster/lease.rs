//! This host's lease: granted at connect, renewed at a third of the TTL,
//! and when etcd says it ran out (etcd away longer than the TTL) a new one
//! is granted and everything this host had put under the old one is put
//! back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::etcd::{Held, bounded, host_record, lock};
use super::{CResult, ClusterConfig, keys};

fn ttl_secs(cfg: &ClusterConfig) -> i64 {
    // etcd leases count whole seconds; below 1 s is not a lease.
    cfg.ttl.as_secs().max(1) as i64
}

/// A new lease with this host's record under it.
pub(super) async fn grant(label: &str, client: &Client, cfg: &ClusterConfig) -> CResult<i64> {
    let mut c = client.clone();
    let id = bounded(label, c.lease_grant(ttl_secs(cfg), None))
        .await?
        .id();
    let opts = PutOptions::new().with_lease(id);
    bounded(
        label,
        c.put(keys::host(&cfg.host), host_record(cfg), Some(opts)),
    )
    .await?;
    Ok(id)
}

/// Renew until aborted. Errors (etcd away) are retried; only etcd saying
/// the lease is gone (TTL 0) makes a new one.
pub(super) async fn keep_alive(
    label: String,
    client: Client,
    cfg: ClusterConfig,
    held: Arc<Mutex<Held>>,
) {
    let period = (cfg.ttl / 3).max(Duration::from_millis(300));
    loop {
        let id = lock(&held).lease;
        let mut c = client.clone();
        if let Ok((mut keeper, mut stream)) = bounded(&label, c.lease_keep_alive(id)).await {
            loop {
                if bounded(&label, keeper.keep_alive()).await.is_err() {
                    break;
                }
                match bounded(&label, stream.message()).await {
                    Ok(Some(r)) if r.ttl() > 0 => {}
                    Ok(Some(_)) => {
                        tracing::warn!(lease = id, "cluster lease expired; taking a new one");
                        if let Err(e) = regrant(&label, &client, &cfg, &held).await {
                            tracing::warn!("cluster lease: {e}");
                        }
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
                tokio::time::sleep(period).await;
            }
        }
        tokio::time::sleep(period.min(Duration::from_secs(1))).await;
    }
}

/// A new lease, the host record and every held record put back under it.
/// The new id is kept only once all is back, so a failure halfway is
/// retried from the start (the old id still reads as expired).
async fn regrant(
    label: &str,
    client: &Client,
    cfg: &ClusterConfig,
    held: &Arc<Mutex<Held>>,
) -> CResult<()> {
    let id = grant(label, client, cfg).await?;
    let (ipam, endpoints) = {
        let h = lock(held);
        (h.ipam.clone(), h.endpoints.clone())
    };
    let mut c = client.clone();
    let opts = || Some(PutOptions::new().with_lease(id));
    for key in ipam {
        // Create-if-absent, or still ours: another host may have taken the
        // address while ours was gone.
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), cfg.host.as_str(), opts())])
            .or_else([TxnOp::txn(
                Txn::new()
                    .when([Compare::value(
                        key.clone(),
                        CompareOp::Equal,
                        cfg.host.as_str(),
                    )])
                    .and_then([TxnOp::put(key.clone(), cfg.host.as_str(), opts())]),
            )]);
        let r = bounded(label, c.txn(txn)).await?;
        let ours = r.succeeded()
            || r.op_responses()
                .iter()
                .any(|op| matches!(op, etcd_client::TxnOpResponse::Txn(t) if t.succeeded()));
        if !ours {
            tracing::error!(
                key,
                "address taken by another host while this host's lease was gone; its endpoint keeps it locally"
            );
            lock(held).ipam.remove(&key);
        }
    }
    for (key, json) in endpoints {
        bounded(label, c.put(key, json, opts())).await?;
    }
    lock(held).lease = id;
    tracing::info!(lease = id, "cluster lease renewed and records restored");
    Ok(())
}
