//! Waiting for another process's lock on the database, counted.
//!
//! rusqlite's `busy_timeout` is SQLite's own handler, which offers no hook
//! to count the waits; this is the same schedule (SQLite's
//! `sqliteDefaultBusyCallback`: sleeps of 1, 2, 5, ... 100 ms until the
//! timeout) with a count of each retry for `netd_store_busy_retries_total`.

use std::time::Duration;

/// SQLite's sleeps, in ms, for the first retries; 100 ms after them.
const DELAYS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// How long `tries` earlier retries slept in all, and how long the next one sleeps.
fn schedule(tries: u64) -> (u64, u64) {
    let first: u64 = DELAYS.iter().take(tries as usize).sum();
    match DELAYS.get(tries as usize) {
        Some(d) => (first, *d),
        None => (first + (tries - DELAYS.len() as u64) * 100, 100),
    }
}

/// The busy handler: sleep and retry until `super::BUSY_TIMEOUT`.
pub(super) fn wait(tries: i32) -> bool {
    let timeout = super::BUSY_TIMEOUT.as_millis() as u64;
    let (slept, next) = schedule(u64::try_from(tries).unwrap_or(0));
    let next = next.min(timeout.saturating_sub(slept));
    if next == 0 {
        return false;
    }
    crate::counters::store_busy_retry();
    std::thread::sleep(Duration::from_millis(next));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_sqlite() {
        assert_eq!(schedule(0), (0, 1));
        assert_eq!(schedule(3), (8, 10));
        assert_eq!(schedule(11), (228, 100));
        assert_eq!(schedule(12), (328, 100));
        assert_eq!(schedule(13), (428, 100));
    }
}
