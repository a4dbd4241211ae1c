//! The members of a service, their health, and backend selection.
//!
//! Discovery replaces the member list; health checks and failed connects
//! flip a member's health; selection reads a lock-free snapshot.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use pingora_load_balancing::Backend;
use pingora_load_balancing::selection::consistent::KetamaHashing;
use pingora_load_balancing::selection::{BackendIter, BackendSelection};

use crate::config::Algorithm;

/// One backend: a member's address on the service port.
#[derive(Debug)]
pub struct Member {
    pub addr: SocketAddr,
    /// The sandbox name (API discovery) or the address (DNS discovery).
    pub name: String,
    healthy: AtomicBool,
    /// When the member was last taken out, in ms since the pool's epoch.
    down_since_ms: AtomicU64,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    active: AtomicUsize,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Connections carrying a request (or stream) to this member that has
    /// no response yet: our own duplicate of each socket, so it can be shut
    /// down if the member vanishes.
    inflight: Mutex<HashMap<u64, OwnedFd>>,
    /// Idle keep-alive connections to this member (HTTP mode), oldest
    /// first; each stays registered in `inflight` so a vanished member's
    /// connections are cut whether busy or idle.
    idle: Mutex<Vec<IdleConn>>,
    /// Left the member list: its connections are not kept for reuse.
    gone: AtomicBool,
}

/// A pooled connection: the registration is kept by id only, so the
/// member's own list holds no reference back to the member.
#[derive(Debug)]
struct IdleConn {
    stream: tokio::net::TcpStream,
    reg: Option<u64>,
    since: Instant,
}

/// Idle connections kept per member at most; more are closed.
const MAX_IDLE: usize = 256;

static NEXT_REG: AtomicU64 = AtomicU64::new(0);

impl Member {
    fn new(addr: SocketAddr, name: String) -> Member {
        Member {
            addr,
            name,
            healthy: AtomicBool::new(true),
            down_since_ms: AtomicU64::new(0),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            idle: Mutex::new(Vec::new()),
            gone: AtomicBool::new(false),
        }
    }

    fn unregister(&self, id: u64) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Keep `stream` for the next request to this member.
    pub fn put_idle(
        &self,
        stream: tokio::net::TcpStream,
        reg: Option<Registration>,
        max_idle: std::time::Duration,
    ) {
        let c = IdleConn {
            stream,
            reg: reg.map(Registration::into_id),
            since: Instant::now(),
        };
        let closed: Vec<IdleConn> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if self.gone.load(Relaxed) {
                vec![c]
            } else {
                let n = idle
                    .iter()
                    .take_while(|o| c.since.duration_since(o.since) >= max_idle)
                    .count()
                    .max((idle.len() + 1).saturating_sub(MAX_IDLE));
                let out = idle.drain(..n).collect();
                idle.push(c);
                out
            }
        };
        self.close_idle(closed);
    }

    /// The most recently used idle connection not older than `max_idle`
    /// whose member has not closed it.
    pub fn take_idle(
        self: &Arc<Self>,
        max_idle: std::time::Duration,
    ) -> Option<(tokio::net::TcpStream, Option<Registration>)> {
        loop {
            let c = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            let fresh = c.since.elapsed() < max_idle;
            // Readable while idle means EOF or stray bytes: either way the
            // connection cannot carry a request. (No syscall unless the
            // reactor saw it readable.)
            let open = fresh
                && matches!(c.stream.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            if open {
                let reg = c.reg.map(|id| Registration {
                    member: Some(Arc::clone(self)),
                    id,
                });
                return Some((c.stream, reg));
            }
            self.close_idle(vec![c]);
        }
    }

    fn close_idle(&self, conns: Vec<IdleConn>) {
        for c in conns {
            if let Some(id) = c.reg {
                self.unregister(id);
            }
        }
    }

    /// Close idle connections older than `max_idle`.
    pub fn expire_idle(&self, max_idle: std::time::Duration) {
        let expired: Vec<IdleConn> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let n = idle
                .iter()
                .take_while(|c| c.since.elapsed() >= max_idle)
                .count();
            idle.drain(..n).collect()
        };
        self.close_idle(expired);
    }

    /// The member left: close its idle connections and keep no more.
    pub fn retire(&self) {
        self.gone.store(true, Relaxed);
        let all = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        self.close_idle(all);
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Relaxed)
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Remember the connection `fd` until the registration drops.
    pub fn register(self: &Arc<Self>, fd: RawFd) -> Option<Registration> {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller holds open; the
        // new descriptor is ours alone.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return None;
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        let id = NEXT_REG.fetch_add(1, Relaxed);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, owned);
        Some(Registration {
            member: Some(Arc::clone(self)),
            id,
        })
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Shut down every registered connection: their requests fail now
    /// (and are re-sent elsewhere when that is safe) instead of waiting for
    /// a member that is gone.
    pub fn abort_inflight(&self) -> usize {
        let map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for fd in map.values() {
            // SAFETY: shutdown on a descriptor we own; the socket stays open.
            unsafe {
                libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(fd), libc::SHUT_RDWR);
            }
        }
        map.len()
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Count a request or connection on this member until the guard drops.
    pub fn track(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        ActiveGuard(Arc::clone(self))
    }
}

/// Holds one unit of a member's active count.
#[derive(Debug)]
pub struct ActiveGuard(Arc<Member>);

impl ActiveGuard {
    pub fn member(&self) -> &Arc<Member> {
        &self.0
    }
}

/// A connection registered with [`Member::register`]; unregistered (and
/// our duplicate closed) on drop.
#[derive(Debug)]
pub struct Registration {
    /// None once handed to the member's idle list (which unregisters).
    member: Option<Arc<Member>>,
    id: u64,
}

impl Registration {
    /// Keep the registration, drop the reference to the member.
    fn into_id(mut self) -> u64 {
        self.member = None;
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(m) = &self.member {
            m.unregister(self.id);
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// What a health transition was, for logs.
#[derive(Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    Up,
    Down,
}

struct Snapshot {
    members: Vec<Arc<Member>>,
    ring: Option<Arc<KetamaHashing>>,
}

pub struct Pool {
    snap: ArcSwap<Snapshot>,
    rr: AtomicUsize,
    epoch: Instant,
    /// Has discovery delivered a member list yet?
    discovered: AtomicBool,
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

/// The result of replacing the member list.
#[derive(Debug, Default)]
pub struct Change {
    pub added: Vec<(String, SocketAddr)>,
    pub removed: Vec<(String, SocketAddr)>,
    /// The members that left.
    pub gone: Vec<Arc<Member>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            snap: ArcSwap::from_pointee(Snapshot {
                members: Vec::new(),
                ring: None,
            }),
            rr: AtomicUsize::new(0),
            epoch: Instant::now(),
            discovered: AtomicBool::new(false),
        }
    }

    pub fn members(&self) -> Vec<Arc<Member>> {
        self.snap.load().members.clone()
    }

    pub fn discovered(&self) -> bool {
        self.discovered.load(Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Replace the members with `list` (name, address). Members that stay
    /// keep their health and counters; new ones start healthy.
    pub fn set_members(&self, list: &[(String, SocketAddr)]) -> Change {
        self.discovered.store(true, Relaxed);
        let old = self.snap.load_full();
        let mut members = Vec::with_capacity(list.len());
        let mut change = Change::default();
        for (name, addr) in list {
            if members.iter().any(|m: &Arc<Member>| m.addr == *addr) {
                continue;
            }
            match old.members.iter().find(|m| m.addr == *addr) {
                Some(m) if m.name == *name => members.push(Arc::clone(m)),
                Some(m) => {
                    // Same address, another sandbox: a new member.
                    change.removed.push((m.name.clone(), m.addr));
                    change.gone.push(Arc::clone(m));
                    change.added.push((name.clone(), *addr));
                    members.push(Arc::new(Member::new(*addr, name.clone())));
                }
                None => {
                    change.added.push((name.clone(), *addr));
                    members.push(Arc::new(Member::new(*addr, name.clone())));
                }
            }
        }
        for m in &old.members {
            if !list.iter().any(|(_, a)| *a == m.addr) {
                change.removed.push((m.name.clone(), m.addr));
                change.gone.push(Arc::clone(m));
            }
        }
        if change.added.is_empty() && change.removed.is_empty() {
            return change;
        }
        members.sort_by_key(|m| m.addr);
        let backends: BTreeSet<Backend> = members
            .iter()
            .filter_map(|m| Backend::new(&m.addr.to_string()).ok())
            .collect();
        let ring = Some(Arc::new(KetamaHashing::build(&backends)));
        self.snap.store(Arc::new(Snapshot { members, ring }));
        change
    }

    /// Pick a member not in `exclude`. Healthy members first; when none is
    /// healthy, any member (better a try than a certain failure).
    pub fn select(
        &self,
        algorithm: Algorithm,
        key: &[u8],
        exclude: &[SocketAddr],
    ) -> Option<Arc<Member>> {
        let snap = self.snap.load();
        let usable = |m: &Member, need_healthy: bool| {
            !exclude.contains(&m.addr) && (!need_healthy || m.healthy())
        };
        for need_healthy in [true, false] {
            let pick = match algorithm {
                Algorithm::RoundRobin => {
                    self.round_robin(&snap.members, |m| usable(m, need_healthy))
                }
                Algorithm::LeastConn => self.least_conn(&snap.members, |m| usable(m, need_healthy)),
                Algorithm::ConsistentHash => Self::hashed(&snap, key, |m| usable(m, need_healthy)),
            };
            if pick.is_some() {
                return pick;
            }
        }
        None
    }

    fn round_robin(
        &self,
        members: &[Arc<Member>],
        ok: impl Fn(&Member) -> bool,
    ) -> Option<Arc<Member>> {
        let n = members.iter().filter(|m| ok(m)).count();
        if n == 0 {
            return None;
        }
        let i = self.rr.fetch_add(1, Relaxed) % n;
        members.iter().filter(|m| ok(m)).nth(i).cloned()
    }

    fn least_conn(
        &self,
        members: &[Arc<Member>],
        ok: impl Fn(&Member) -> bool,
    ) -> Option<Arc<Member>> {
        if members.is_empty() {
            return None;
        }
        // Start at a rotating offset so ties spread round-robin.
        let start = self.rr.fetch_add(1, Relaxed);
        let n = members.len();
        (0..n)
            .map(|i| &members[(start + i) % n])
            .filter(|m| ok(m))
            .min_by_key(|m| m.active())
            .cloned()
    }

    fn hashed(snap: &Snapshot, key: &[u8], ok: impl Fn(&Member) -> bool) -> Option<Arc<Member>> {
        let ring = snap.ring.as_ref()?;
        let mut it = ring.iter(key);
        // The ring iterator walks on past the first choice; bound it.
        for _ in 0..snap.members.len().max(1) * 8 {
            let b = it.next()?;
            let Some(addr) = b.addr.as_inet() else {
                continue;
            };
            if let Some(m) = snap.members.iter().find(|m| m.addr == *addr)
                && ok(m)
            {
                return Some(Arc::clone(m));
            }
        }
        snap.members.iter().find(|m| ok(m)).cloned()
    }

    /// A failed connect: the member is out at once (passive ejection).
    pub fn eject(&self, m: &Member) -> Transition {
        m.failures.fetch_add(1, Relaxed);
        m.ok_streak.store(0, Relaxed);
        if m.healthy.swap(false, Relaxed) {
            m.down_since_ms.store(self.now_ms(), Relaxed);
            Transition::Down
        } else {
            Transition::None
        }
    }

    /// The result of one active check.
    pub fn report(&self, m: &Member, ok: bool, rise: u32, fall: u32) -> Transition {
        if ok {
            m.fail_streak.store(0, Relaxed);
            let streak = m.ok_streak.fetch_add(1, Relaxed).saturating_add(1);
            if streak >= rise && !m.healthy.swap(true, Relaxed) {
                return Transition::Up;
            }
        } else {
            m.ok_streak.store(0, Relaxed);
            let streak = m.fail_streak.fetch_add(1, Relaxed).saturating_add(1);
            if streak >= fall && m.healthy.swap(false, Relaxed) {
                m.down_since_ms.store(self.now_ms(), Relaxed);
                return Transition::Down;
            }
        }
        Transition::None
    }

    /// Without active checks: members ejected longer than `after` ago get
    /// another chance.
    pub fn readmit_after(&self, after: std::time::Duration) -> Vec<Arc<Member>> {
        let now = self.now_ms();
        let mut back = Vec::new();
        for m in self.snap.load().members.iter() {
            if !m.healthy()
                && now.saturating_sub(m.down_since_ms.load(Relaxed)) >= after.as_millis() as u64
                && !m.healthy.swap(true, Relaxed)
            {
                back.push(Arc::clone(m));
            }
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 80))
    }

    fn pool(n: u8) -> Pool {
        let p = Pool::new();
        let list: Vec<_> = (1..=n).map(|i| (format!("m{i}"), addr(i))).collect();
        p.set_members(&list);
        p
    }

    #[test]
    fn round_robin_is_even_and_skips_the_unhealthy() {
        let p = pool(3);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..30 {
            let m = p.select(Algorithm::RoundRobin, b"", &[]).unwrap();
            *counts.entry(m.addr).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 10), "{counts:?}");
        let m2 = p.members().into_iter().find(|m| m.addr == addr(2)).unwrap();
        assert_eq!(p.eject(&m2), Transition::Down);
        for _ in 0..10 {
            assert_ne!(
                p.select(Algorithm::RoundRobin, b"", &[]).unwrap().addr,
                addr(2)
            );
        }
        // back after `rise` good checks
        assert_eq!(p.report(&m2, true, 2, 2), Transition::None);
        assert_eq!(p.report(&m2, true, 2, 2), Transition::Up);
        // out after `fall` bad ones
        assert_eq!(p.report(&m2, false, 2, 2), Transition::None);
        assert_eq!(p.report(&m2, false, 2, 2), Transition::Down);
    }

    #[test]
    fn exclusion_and_fallback() {
        let p = pool(2);
        let m = p.select(Algorithm::RoundRobin, b"", &[addr(1)]).unwrap();
        assert_eq!(m.addr, addr(2));
        assert!(
            p.select(Algorithm::RoundRobin, b"", &[addr(1), addr(2)])
                .is_none()
        );
        for m in p.members() {
            p.eject(&m);
        }
        // nobody healthy: still try someone
        assert!(p.select(Algorithm::LeastConn, b"", &[]).is_some());
    }

    #[test]
    fn least_conn_prefers_idle() {
        let p = pool(3);
        let busy = p.select(Algorithm::LeastConn, b"", &[]).unwrap();
        let _g1 = busy.track();
        let _g2 = busy.track();
        let other = p.select(Algorithm::LeastConn, b"", &[]).unwrap();
        let _g3 = other.track();
        let third = p.select(Algorithm::LeastConn, b"", &[]).unwrap();
        assert_ne!(third.addr, busy.addr);
        assert_ne!(third.addr, other.addr);
    }

    #[test]
    fn consistent_hash_is_sticky_and_moves_little() {
        let p = pool(4);
        let keys: Vec<String> = (0..200).map(|i| format!("client-{i}")).collect();
        let picks = |p: &Pool| -> Vec<_> {
            keys.iter()
                .map(|k| {
                    p.select(Algorithm::ConsistentHash, k.as_bytes(), &[])
                        .unwrap()
                        .addr
                })
                .collect()
        };
        let before = picks(&p);
        let again = picks(&p);
        assert_eq!(before, again);
        // drop member 4: only its keys move
        p.set_members(
            &(1..=3)
                .map(|i| (format!("m{i}"), addr(i)))
                .collect::<Vec<_>>(),
        );
        let after = picks(&p);
        for (b, a) in before.iter().zip(&after) {
            if *b != addr(4) {
                assert_eq!(a, b);
            }
        }
        let spread: BTreeSet<_> = before.iter().collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn membership_keeps_state() {
        let p = pool(2);
        let m1 = p.members()[0].clone();
        p.eject(&m1);
        let c = p.set_members(&[
            ("m1".into(), addr(1)),
            ("m2".into(), addr(2)),
            ("m3".into(), addr(3)),
        ]);
        assert_eq!(c.added, vec![("m3".to_string(), addr(3))]);
        assert!(c.removed.is_empty());
        assert!(!p.members()[0].healthy());
        let c = p.set_members(&[("m3".into(), addr(3))]);
        assert_eq!(c.removed.len(), 2);
        assert_eq!(p.members().len(), 1);
    }
}
