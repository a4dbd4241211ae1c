//! The watcher that notices links deleted in the host namespace (by hand,
//! by another tool), so the daemon can put back what the store says
//! should be there.
//!
//! netd's own deletions are told apart without the store: the host
//! namespace's [`super::Netlink`] notes the name of every link it is about
//! to delete ([`expect_deletion`]) while a watcher runs, and the watcher
//! drops those notifications itself. What is left (someone else's
//! deletion, or another netd process's, such as a CNI DEL's deferred
//! one) is for the caller to check against the store.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::notify::Notice;
use tracing::{debug, warn};

const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
/// The bridge driver reports a port leaving it as an RTM_DELLINK of
/// family AF_BRIDGE: the link itself is still there.
const AF_BRIDGE: u8 = 7;

/// What the watcher saw.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Links deleted by someone other than this process.
    Deleted(Vec<String>),
    /// Notifications were lost (the socket overran): anything may be gone.
    Overrun,
}

static WATCHING: AtomicBool = AtomicBool::new(false);
/// Names this process is deleting, with when: a deletion that fails never
/// shows up, so old entries expire instead of hiding a later deletion of a
/// link of the same name (`netd0`).
static EXPECTED: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());
const EXPECTED_FOR: Duration = Duration::from_secs(5);

/// Note that this process is about to delete the host link `name`. Does
/// nothing unless a watcher runs (the CNI plugin and the CLI keep no list).
pub fn expect_deletion(name: &str) {
    if !WATCHING.load(Ordering::Relaxed) {
        return;
    }
    let mut e = EXPECTED.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    e.retain(|(_, t)| now.duration_since(*t) < EXPECTED_FOR);
    e.push((name.to_string(), now));
}

/// Whether the deletion of `name` was this process's own (and forget it).
fn was_expected(name: &str) -> bool {
    let mut e = EXPECTED.lock().unwrap_or_else(|p| p.into_inner());
    match e.iter().position(|(n, _)| n == name) {
        Some(i) => {
            e.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The names of the links a batch of rtnetlink notifications deletes.
pub fn deleted_links(buf: &[u8]) -> Vec<String> {
    super::notify::messages(buf)
        // The body: ifinfomsg (16: family, pad, type, index, flags, change),
        // then attributes.
        .filter(|m| m.ty == RTM_DELLINK && m.body.len() >= 16 && m.body[0] != AF_BRIDGE)
        .filter_map(|m| super::notify::string_attr(&m.body[16..], IFLA_IFNAME))
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// Watch link notifications in the calling thread's namespace and call
/// `on_event` with the links someone else deleted. Runs on its own thread,
/// which sleeps in `recv` while nothing changes.
pub fn watch(on_event: impl Fn(LinkEvent) + Send + 'static) -> Result<()> {
    super::notify::listen(
        libc::NETLINK_ROUTE as isize,
        libc::RTNLGRP_LINK,
        None,
        "netd-link-watch",
        move |notice| match notice {
            Notice::Batch(batch) => {
                let mut gone = deleted_links(batch);
                gone.retain(|name| !was_expected(name));
                if !gone.is_empty() {
                    on_event(LinkEvent::Deleted(gone));
                }
            }
            Notice::Overrun => {
                debug!("link notifications overran; checking every link");
                on_event(LinkEvent::Overrun);
            }
            Notice::Stopped(e) => {
                warn!("link watcher stopped: {e}");
                WATCHING.store(false, Ordering::Relaxed);
            }
        },
    )?;
    WATCHING.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, family: u8, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let n = format!("{name}\0");
        attr.extend_from_slice(&((4 + n.len()) as u16).to_ne_bytes());
        attr.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(n.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((32 + attr.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        let mut ifi = [0u8; 16];
        ifi[0] = family;
        m.extend_from_slice(&ifi);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn deletions_of_links_only() {
        assert_eq!(
            deleted_links(&msg(RTM_DELLINK, 0, "nd-0123")),
            vec!["nd-0123"]
        );
        assert!(
            deleted_links(&msg(16, 0, "nd-0123")).is_empty(),
            "RTM_NEWLINK"
        );
        assert!(
            deleted_links(&msg(RTM_DELLINK, AF_BRIDGE, "nd-0123")).is_empty(),
            "a port leaving its bridge"
        );
        let mut two = msg(RTM_DELLINK, 0, "netd0");
        two.extend(msg(16, 0, "x"));
        two.extend(msg(RTM_DELLINK, 0, "nd-ab"));
        assert_eq!(deleted_links(&two), vec!["netd0", "nd-ab"]);
        assert!(deleted_links(&[1, 2, 3]).is_empty());
    }

    /// Truncated and corrupted batches end the walk; they never panic.
    #[test]
    fn damaged_batches_are_harmless() {
        let mut two = msg(RTM_DELLINK, 0, "nd-0123456789ab");
        two.extend(msg(RTM_DELLINK, 0, "netd0"));
        for cut in 0..two.len() {
            let _ = deleted_links(&two[..cut]);
        }
        let mut x: u32 = 0x9e37_79b9;
        for i in 0..two.len() {
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let mut bad = two.clone();
                bad[i] = x as u8;
                let _ = deleted_links(&bad);
            }
        }
    }

    #[test]
    fn own_deletions_are_expected_once() {
        WATCHING.store(true, Ordering::Relaxed);
        expect_deletion("wt-own0");
        assert!(was_expected("wt-own0"));
        assert!(!was_expected("wt-own0"), "forgotten once seen");
        assert!(!was_expected("wt-other"));
    }
}
