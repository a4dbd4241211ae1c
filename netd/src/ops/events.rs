//! Events: what changed, for `GET /events` and the watchers, and the last
//! [`HISTORY`] of them for `GET /events?since=…`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use super::Netd;
use crate::kernel::Kernel;
use crate::model::{Id, Name};

/// How many past events a `since` can replay: Docker's daemon keeps the
/// last 256 (moby `daemon/events`, `eventsLimit`), and so does netd.
pub const HISTORY: usize = 256;

/// How far a live reader may fall behind before it skips what it missed.
const CHANNEL: usize = 1024;

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
    /// The same moment in nanoseconds since the epoch (what `since` and
    /// `until` compare, as Docker's `timeNano`).
    pub time_nano: u64,
}

/// The live channel and the recent past, filled by one path.
pub(crate) struct Hub {
    /// Held while an event is recorded *and* sent, and while a subscriber
    /// copies the past *and* subscribes. So an event is either in the copy
    /// (sent before) or on the new receiver (sent after), never both and
    /// never neither. A lock rather than sequence numbers: it is held for a
    /// push and a channel send (no await, no I/O), and a reader that does
    /// not dedupe cannot get it wrong.
    recent: Mutex<VecDeque<Event>>,
    history: usize,
    tx: broadcast::Sender<Event>,
}

impl Hub {
    pub(crate) fn new(history: usize, channel: usize) -> Hub {
        Hub {
            recent: Mutex::new(VecDeque::with_capacity(history)),
            history,
            tx: broadcast::channel(channel.max(1)).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        // A panic while holding it left at worst one event unrecorded.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn publish(&self, e: Event) {
        let mut recent = self.lock();
        if self.history > 0 {
            if recent.len() == self.history {
                recent.pop_front();
            }
            recent.push_back(e.clone());
        }
        // No receiver is not an error: the past still keeps it.
        let _ = self.tx.send(e);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The kept events at or after `since` (nanoseconds since the epoch),
    /// oldest first, and a receiver of every event after them.
    pub(crate) fn replay(&self, since: i128) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.lock();
        let past = recent
            .iter()
            .filter(|e| i128::from(e.time_nano) >= since)
            .cloned()
            .collect();
        (past, self.tx.subscribe())
    }
}

impl<K: Kernel> Netd<K> {
    fn hub(&self) -> &Hub {
        self.events.get_or_init(|| Hub::new(HISTORY, CHANNEL))
    }

    /// Start keeping events (the daemon does, before it changes anything),
    /// so that a later `since` finds them. Until then, or without it, a
    /// process nobody listens to (the CNI plugin, the CLI) builds none.
    pub fn keep_events(&self) {
        self.hub();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.hub().subscribe()
    }

    /// The kept events at or after `since` (Unix nanoseconds), oldest
    /// first, then every later one on the receiver: none lost between the
    /// two, none twice.
    pub fn subscribe_since(&self, since: i128) -> (Vec<Event>, broadcast::Receiver<Event>) {
        self.hub().replay(since)
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
        let now = time::OffsetDateTime::now_utc();
        events.publish(Event {
            kind,
            action,
            id: id.to_string(),
            name: name.to_string(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: u64::try_from(now.unix_timestamp()).unwrap_or(0),
            time_nano: u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event {
            kind: "network",
            action: "create",
            id: n.to_string(),
            name: format!("n{n}"),
            attributes: BTreeMap::new(),
            time: n,
            time_nano: n * 1_000_000_000,
        }
    }

    fn ids(v: &[Event]) -> Vec<u64> {
        v.iter().map(|e| e.id.parse().unwrap()).collect()
    }

    #[test]
    fn keeps_the_last_history_oldest_first() {
        let hub = Hub::new(4, 16);
        for n in 1..=6 {
            hub.publish(ev(n));
        }
        let (past, _) = hub.replay(0);
        assert_eq!(ids(&past), [3, 4, 5, 6]);
        // `since` is inclusive, in nanoseconds.
        let (past, _) = hub.replay(5_000_000_000);
        assert_eq!(ids(&past), [5, 6]);
        let (past, _) = hub.replay(5_000_000_001);
        assert_eq!(ids(&past), [6]);
        let (past, _) = hub.replay(7_000_000_000);
        assert!(past.is_empty());
    }

    #[test]
    fn replay_then_live_loses_and_repeats_nothing() {
        const N: u64 = 20_000;
        let hub = std::sync::Arc::new(Hub::new(N as usize, N as usize));
        let writer = {
            let hub = std::sync::Arc::clone(&hub);
            std::thread::spawn(move || {
                for n in 0..N {
                    hub.publish(ev(n));
                }
            })
        };
        // Readers that join while the writer runs, each at a different
        // point: what they replay and then receive is every event, once,
        // in order.
        let mut readers = Vec::new();
        for _ in 0..8 {
            let (past, rx) = hub.replay(0);
            readers.push((past, rx));
            std::thread::yield_now();
        }
        writer.join().unwrap();
        let mut joined_midway = 0;
        for (past, mut rx) in readers {
            let mut got = ids(&past);
            if !got.is_empty() && got.len() < N as usize {
                joined_midway += 1;
            }
            while let Ok(e) = rx.try_recv() {
                got.push(e.id.parse().unwrap());
            }
            assert_eq!(got, (0..N).collect::<Vec<_>>());
        }
        // Not a proof that the race was hit, but it usually is.
        eprintln!("{joined_midway} of 8 readers joined midway");
    }

    #[test]
    fn no_history_keeps_nothing() {
        let hub = Hub::new(0, 4);
        let mut rx = hub.subscribe();
        hub.publish(ev(1));
        assert!(hub.replay(0).0.is_empty());
        assert_eq!(rx.try_recv().unwrap().id, "1");
    }
}
