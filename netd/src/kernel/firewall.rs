//! The firewall's netfilter socket and the watcher that notices when
//! someone else changes netd's table.
//!
//! Every change goes out through the one socket of [`Firewall`], so the
//! watcher can tell netd's own changes from anybody else's by the netlink
//! port id. A change is a single batch the kernel applies inside `sendmsg`:
//! callers run it in place, under a lock, instead of handing it to a thread
//! of its own (a hand-off that cost a CNI call a thread start and two
//! wake-ups, milliseconds on a busy machine).

use std::sync::Mutex;

use anyhow::Result;
use tracing::{debug, info, warn};

use super::nft::{ForwardReport, Nft};
use super::notify::Notice;
use crate::plan::firewall::{FirewallPlan, PortElement};
use crate::plan::forward::ForwardAccept;

/// The socket, movable between threads.
struct Socket(Nft);

// SAFETY: `Nft` owns an mnl socket: a heap block with a descriptor and its
// bound address, tied to no thread. It is only used under the Mutex below,
// one thread at a time; the nftnl objects that are not `Send` are built and
// dropped inside each call.
unsafe impl Send for Socket {}

pub struct Firewall {
    sock: Mutex<Socket>,
    portid: u32,
}

impl Firewall {
    /// Open the netfilter socket in the namespace of the calling thread.
    pub fn start() -> Result<Firewall> {
        let nft = Nft::open()?;
        Ok(Firewall {
            portid: nft.portid(),
            sock: Mutex::new(Socket(nft)),
        })
    }

    /// A duplicate of the socket (see `Netd::firewall_socket`).
    pub fn socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the descriptor is open while the lock holds `sock`.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(sock.0.fd()) }.try_clone_to_owned()
    }

    pub fn portid(&self) -> u32 {
        self.portid
    }

    fn run(&self, f: impl FnOnce(&Nft) -> Result<()>) -> Result<()> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        f(&sock.0)
    }

    /// Replace the whole table with `plan`, atomically; then bring netd's
    /// accept rules in other tables' forward chains in line with it.
    pub async fn apply(&self, plan: FirewallPlan) -> Result<()> {
        self.run(|n| {
            n.apply(&plan)?;
            log_forward(n.sync_forward(&plan.forward));
            Ok(())
        })
    }

    /// Only the accept rules in other tables (after someone else changed
    /// one of those tables).
    pub fn sync_forward(&self, want: &[ForwardAccept]) -> Result<ForwardReport> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.0.sync_forward(want)
    }

    pub async fn add(&self, elems: Vec<PortElement>) -> Result<()> {
        if elems.is_empty() {
            return Ok(());
        }
        self.run(|n| n.elements(&elems, nftnl::MsgType::Add))
    }

    pub async fn del(&self, elems: Vec<PortElement>) -> Result<()> {
        if elems.is_empty() {
            return Ok(());
        }
        self.run(|n| n.elements(&elems, nftnl::MsgType::Del))
    }
}

/// The accept rules live in tables netd does not own: what cannot be
/// done there is the operator's to see, never a reason to fail netd's own
/// change (its table is already in place).
pub fn log_forward(r: Result<ForwardReport>) {
    match r {
        Ok(r) => {
            if r.added + r.removed > 0 {
                info!(
                    added = r.added,
                    removed = r.removed,
                    "accept rules in other tables' forward chains"
                );
            }
            if !r.missing.is_empty() {
                debug!(chains = ?r.missing, "forward chains named in netd.forward_accept do not exist (yet)");
            }
            for f in &r.failed {
                warn!("could not change netd's accept rules in {f}");
            }
        }
        Err(e) => warn!("could not read other tables' forward chains: {e:#}"),
    }
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// DELTABLE, DELCHAIN, DELRULE, DELSET and their DESTROY twins. Not element
/// removals: every netd process (a CNI DEL, the CLI without a daemon)
/// withdraws a published port by deleting its elements, indistinguishable
/// from anyone else's, and restoring the whole table after each of them
/// cost O(containers) and held the firewall lock that the next attach waits
/// for. `nft flush ruleset` and a firewall reload remove the table itself.
const REMOVALS: &[u16] = &[2, 5, 8, 11, 26, 27, 28, 29];

/// What, in another table, may take netd's accept rules away or call for
/// new ones: a rule, chain or table removed (`ufw reload`, `nft -f`,
/// iptables-restore), a table or chain added or changed (a policy set to
/// drop, a named chain that now exists). Not rules added: other tools add
/// rules all the time and no addition removes netd's.
const OTHER_TABLE_CHANGES: &[u16] = &[0, 2, 3, 5, 8, 26, 27, 28];

/// The table a notification is about (nfgenmsg (4), then attributes;
/// attribute 1 of every table, chain, rule and set message is the table).
fn table_of<'a>(m: &super::notify::Message<'a>) -> Option<&'a [u8]> {
    if m.body.len() < 4 {
        return None;
    }
    super::notify::string_attr(&m.body[4..], 1)
}

/// Whether a batch of nftables notifications removes anything from table
/// `table` on behalf of someone other than `own_portid`.
pub fn foreign_removal(buf: &[u8], table: &str, own_portid: u32) -> bool {
    super::notify::messages(buf).any(|m| {
        m.ty >> 8 == NFNL_SUBSYS_NFTABLES
            && REMOVALS.contains(&(m.ty & 0xff))
            && m.pid != own_portid
            && table_of(&m) == Some(table.as_bytes())
    })
}

/// Whether a batch changes another table than `table` in a way that can
/// concern netd's accept rules there (see [`OTHER_TABLE_CHANGES`]).
pub fn other_table_change(buf: &[u8], table: &str, own_portid: u32) -> bool {
    super::notify::messages(buf).any(|m| {
        m.ty >> 8 == NFNL_SUBSYS_NFTABLES
            && OTHER_TABLE_CHANGES.contains(&(m.ty & 0xff))
            && m.pid != own_portid
            && table_of(&m).is_some_and(|t| t != table.as_bytes())
    })
}

/// What the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// netd's own table lost something: rebuild it (and the accept rules).
    OwnTable,
    /// Another table changed: check netd's accept rules there.
    OtherTable,
}

/// The notification socket's receive buffer (the kernel doubles it).
const WATCH_RCVBUF: usize = 16 << 20;

/// Watch nftables notifications in the calling thread's namespace and call
/// `on_change` whenever someone else removes anything from our table (a
/// flush, `nft flush ruleset`, a firewall reload), or changes another
/// table (see [`other_table_change`]). Runs on its own thread.
pub fn watch(own_portid: u32, on_change: impl Fn(Change) + Send + 'static) -> Result<()> {
    // Room for the notifications of a whole rebuild (element changes are
    // notified too, so a table of 20,000 published ports makes a burst of
    // them). An overrun counts as an outside change and triggers a
    // rebuild, whose own notifications could overrun again. Memory is only
    // taken while notifications queue.
    super::notify::listen(
        libc::NETLINK_NETFILTER as isize,
        libc::NFNLGRP_NFTABLES as u32,
        Some(WATCH_RCVBUF),
        "netd-nft-watch",
        move |notice| match notice {
            Notice::Batch(batch) => {
                if foreign_removal(batch, "netd", own_portid) {
                    on_change(Change::OwnTable);
                } else if other_table_change(batch, "netd", own_portid) {
                    on_change(Change::OtherTable);
                }
            }
            Notice::Overrun => {
                // We missed notifications: assume the worst.
                debug!("nftables notifications overran; re-checking the table");
                on_change(Change::OwnTable);
            }
            Notice::Stopped(e) => warn!("nftables watcher stopped: {e}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, pid: u32, table: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let name = format!("{table}\0");
        let alen = 4 + name.len();
        attr.extend_from_slice(&(alen as u16).to_ne_bytes());
        attr.extend_from_slice(&1u16.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = 16 + 4 + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | ty).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&pid.to_ne_bytes());
        m.extend_from_slice(&[1, 0, 0, 0]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn removals_by_others_of_our_table_only() {
        assert!(foreign_removal(&msg(2, 77, "netd"), "netd", 5));
        assert!(foreign_removal(&msg(8, 77, "netd"), "netd", 5));
        assert!(
            !foreign_removal(&msg(2, 5, "netd"), "netd", 5),
            "our own change"
        );
        assert!(
            !foreign_removal(&msg(2, 77, "other"), "netd", 5),
            "not our table"
        );
        assert!(
            !foreign_removal(&msg(0, 77, "netd"), "netd", 5),
            "an addition"
        );
        assert!(
            !foreign_removal(&msg(14, 77, "netd"), "netd", 5),
            "an element withdrawn by another netd process"
        );
        let mut two = msg(0, 77, "netd");
        two.extend(msg(5, 77, "netd"));
        assert!(foreign_removal(&two, "netd", 5));
        assert!(!foreign_removal(&[1, 2, 3], "netd", 5));
    }

    #[test]
    fn changes_by_others_to_other_tables() {
        // A rule deleted from inet filter by `nft -f` or a reload.
        assert!(other_table_change(&msg(8, 77, "filter"), "netd", 5));
        assert!(
            other_table_change(&msg(3, 77, "filter"), "netd", 5),
            "a chain (re)made"
        );
        assert!(other_table_change(&msg(2, 77, "filter"), "netd", 5));
        assert!(
            !other_table_change(&msg(8, 5, "filter"), "netd", 5),
            "netd's own accept rules going"
        );
        assert!(
            !other_table_change(&msg(8, 77, "netd"), "netd", 5),
            "ours: the other check"
        );
        assert!(
            !other_table_change(&msg(6, 77, "filter"), "netd", 5),
            "a rule added removes nothing of netd's"
        );
    }
}
