//! Events: what changed, for `GET /events` and the watchers.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::broadcast;

use super::Netd;
use crate::kernel::Kernel;
use crate::model::{Id, Name};

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

impl<K: Kernel> Netd<K> {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_init(|| broadcast::channel(1024).0)
            .subscribe()
    }

    pub(crate) fn emit(
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
            time: super::now_secs(),
        });
    }
}
