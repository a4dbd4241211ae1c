//! Following the cluster: a full read of `/netd/`, then a watch from the
//! next revision, applied to [`ViewState`]. On any watch failure (etcd away,
//! compaction, cancel) the view is marked disconnected and the read starts
//! again after a backoff: events missed meanwhile are in the new read.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use super::etcd::bounded;
use super::keys;
use super::view::ViewState;
use super::{CResult, ClusterView};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(super) async fn follow(label: String, client: Client, tx: watch::Sender<Arc<ClusterView>>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match follow_once(&label, &client, &tx).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => tracing::debug!("cluster watch: {e}"),
        }
        tx.send_modify(|v| {
            if v.connected {
                let mut nv = (**v).clone();
                nv.connected = false;
                *v = Arc::new(nv);
            }
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Ok when the watch ended in a way that calls for a fresh read at once
/// (compaction, cancel); Err when etcd is away.
async fn follow_once(
    label: &str,
    client: &Client,
    tx: &watch::Sender<Arc<ClusterView>>,
) -> CResult<()> {
    let mut c = client.clone();
    let r = bounded(
        label,
        c.get(keys::ROOT, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let mut rev = r.header().map(|h| h.revision()).unwrap_or(0);
    let mut state = ViewState::default();
    for kv in r.kvs() {
        state.put(&String::from_utf8_lossy(kv.key()), kv.value());
    }
    tx.send_replace(Arc::new(state.view(rev, true)));
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(rev + 1);
    let mut stream = bounded(label, c.watch(keys::ROOT, Some(opts))).await?;
    loop {
        // No timeout here: a quiet cluster sends nothing; a dead connection
        // is caught by the client's HTTP/2 keep-alive.
        let msg = stream
            .message()
            .await
            .map_err(|e| super::etcd::unavailable(label, e))?;
        let Some(resp) = msg else {
            return Err(super::etcd::unavailable(label, "watch stream closed"));
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            tracing::info!(
                reason = resp.cancel_reason(),
                "cluster watch cancelled; reading the cluster again"
            );
            return Ok(());
        }
        if resp.events().is_empty() {
            continue;
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            match ev.event_type() {
                EventType::Put => state.put(&key, kv.value()),
                EventType::Delete => state.delete(&key),
            }
            rev = rev.max(kv.mod_revision());
        }
        if let Some(h) = resp.header() {
            rev = rev.max(h.revision());
        }
        tx.send_replace(Arc::new(state.view(rev, true)));
    }
}
