//! The state store: the one source of truth, shared by the daemon, the CLI
//! and CNI plugin processes.
//!
//! SQLite in WAL mode. Every write is one `BEGIN IMMEDIATE` transaction, which
//! takes the database's write lock up front: two processes allocating at once
//! are serialised by SQLite itself, and the UNIQUE constraints catch anything
//! that slips past. A crash mid-operation leaves the last committed state.
//!
//! The queries and mutations (networks, sandboxes, endpoints and their
//! published ports, each in its own file) take a `&Connection`: queries run
//! inside [`Store::read`] or [`Store::write`], mutations inside `write` only.

mod busy;
mod counts;
mod endpoints;
mod ipam6;
mod networks;
mod ports;
mod refs;
mod rereader;
mod sandboxes;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

pub use counts::{Counts, counts};
pub use endpoints::{
    MAX_BRIDGE_PORTS, all_endpoints, delete_endpoint, endpoint, endpoint_by_host_veth,
    endpoints_of_network, endpoints_of_sandbox, insert_endpoint,
};
pub use networks::{
    delete_network, insert_network, network, network_by_id, network_names_present, networks,
    set_network_options, subnets, subnets6,
};
pub use ports::{EPHEMERAL_PORTS, published_on_loopback6};
pub use refs::Ref;
pub use rereader::Rereader;
pub use sandboxes::{
    delete_sandbox, insert_sandbox, sandbox, sandbox_by_id, sandbox_name_taken,
    sandbox_netns_paths, sandboxes,
};

/// Bumped with every schema change; `migrate` upgrades older databases.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE networks (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,
    subnet TEXT,
    spec   TEXT NOT NULL
);
CREATE TABLE sandboxes (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL
);
CREATE TABLE endpoints (
    id         TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    ip         TEXT NOT NULL,
    ifname     TEXT NOT NULL,
    spec       TEXT NOT NULL,
    UNIQUE (network_id, ip),
    UNIQUE (network_id, sandbox_id),
    UNIQUE (sandbox_id, ifname)
);
CREATE INDEX endpoints_by_sandbox ON endpoints(sandbox_id);
-- One row per published host port, so a conflict check is an index lookup
-- however many ports exist. host_ip '' means every address.
CREATE TABLE published (
    host_ip     TEXT NOT NULL,
    proto       TEXT NOT NULL,
    port        INTEGER NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    PRIMARY KEY (host_ip, proto, port)
);
CREATE INDEX published_by_port ON published(proto, port);
";

/// Dual-stack: each endpoint's IPv6 address, and its offset in the
/// network's dynamic range, indexed, with a per-network high-water mark and
/// a free list of released offsets below it: the lowest free address is
/// one index lookup (`ipam6`), never a scan of the network's addresses.
const SCHEMA_V2: &str = "
ALTER TABLE networks ADD COLUMN subnet6 TEXT;
ALTER TABLE networks ADD COLUMN ip6_next INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN ip6 TEXT;
ALTER TABLE endpoints ADD COLUMN ip6_off INTEGER;
CREATE UNIQUE INDEX endpoints_ip6 ON endpoints(network_id, ip6);
CREATE UNIQUE INDEX endpoints_ip6_off ON endpoints(network_id, ip6_off);
CREATE TABLE ip6_free (
    network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    off        INTEGER NOT NULL,
    PRIMARY KEY (network_id, off)
) WITHOUT ROWID;
-- However an endpoint goes (alone, with its sandbox), its offset below the
-- mark joins the free list.
CREATE TRIGGER endpoints_release6 AFTER DELETE ON endpoints
WHEN OLD.ip6_off IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO ip6_free (network_id, off)
    SELECT OLD.network_id, OLD.ip6_off FROM networks
    WHERE id = OLD.network_id AND ip6_next > OLD.ip6_off;
END;
";

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Open (creating if needed) `netd.db` under `state_dir`.
    ///
    /// The state dir is root's alone (0700, an existing one is tightened)
    /// and so are the database's files (0600): no other user may read the
    /// records or take the locks on them (SQLite's on `netd.db-shm` among
    /// them), which could stall every write.
    pub fn open(state_dir: &Path) -> Result<Store> {
        crate::lock::private_dir(state_dir, 0o700)?;
        let path = state_dir.join("netd.db");
        // SQLite gives the -wal and -shm files it makes the database's mode.
        crate::lock::open_private(&path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            crate::lock::restrict(Path::new(&p), 0o600)?;
        }
        let conn = Connection::open(&path)
            .map_err(|e| Error::Store(format!("cannot open {}: {e}", path.display())))?;
        // Plugin processes start, write once and exit while the daemon runs:
        // wait for the write lock rather than fail with SQLITE_BUSY.
        conn.busy_handler(Some(busy::wait))?;
        enable_wal(&conn, &path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store {
            conn: Mutex::new(conn),
            path,
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-written state (the
        // transaction rolls back on drop), so the poisoned guard is still sound.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        // Every plugin exec opens the store: a current one costs no write.
        let current = self.read(|c| {
            let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok(v == SCHEMA_VERSION)
        })?;
        if current {
            return Ok(());
        }
        self.write(|tx| {
            let v: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if v > SCHEMA_VERSION {
                return Err(Error::Store(format!(
                    "database schema {v} is newer than this netd understands ({SCHEMA_VERSION}); upgrade netd"
                )));
            }
            if v < 1 {
                tx.execute_batch(SCHEMA_V1)?;
            }
            if v < 2 {
                tx.execute_batch(SCHEMA_V2)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        })
    }

    /// Run `f` as one write transaction: all of it commits or none of it does.
    pub fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        self.name_busy(out)
    }

    /// Run `f` against a consistent snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&tx)
        })();
        self.name_busy(out)
    }

    /// A busy database says which file it was.
    fn name_busy<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| match e {
            Error::Busy(m) => Error::Busy(format!(
                "{}: {m} (waited {} s)",
                self.path.display(),
                BUSY_TIMEOUT.as_secs()
            )),
            e => e,
        })
    }
}

/// How long an opener waits for other processes' locks before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Switch the store to WAL mode (a no-op once the file is in it).
///
/// Switching takes an exclusive lock without calling the busy handler, so
/// when a pod burst opens a store that does not exist yet, all but one
/// opener get SQLITE_BUSY at once: retry those until the busy timeout.
fn enable_wal(conn: &Connection, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0));
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::Store(format!(
                    "{} cannot use WAL mode (the file system gave journal mode {mode})",
                    path.display()
                )));
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                crate::counters::store_busy_retry();
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                return Err(match Error::from(e) {
                    Error::Busy(m) => Error::Busy(format!(
                        "{}: {m} (waited {} s to switch it to WAL mode)",
                        path.display(),
                        BUSY_TIMEOUT.as_secs()
                    )),
                    e => Error::Store(format!("cannot switch {} to WAL mode: {e}", path.display())),
                });
            }
        }
    }
}

fn from_json<T: serde::de::DeserializeOwned>(s: String) -> Result<T> {
    Ok(serde_json::from_str(&s)?)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    use super::*;
    use crate::model::{EndpointRequest, Network, Sandbox, SandboxNet, fixtures};

    pub(super) fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netd-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    pub(super) fn net(name: &str, subnet: &str) -> Network {
        fixtures::network(name, subnet)
    }

    pub(super) fn sbx(name: &str) -> Sandbox {
        let mut s = fixtures::sandbox(name);
        s.net = SandboxNet::Host;
        s
    }

    #[test]
    fn a_version_1_database_is_upgraded_keeping_its_records() {
        let dir = tmpdir("migrate");
        crate::lock::private_dir(&dir, 0o700).unwrap();
        let n = net("old", "10.77.0.0/24");
        {
            let c = Connection::open(dir.join("netd.db")).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO networks (id, name, subnet, spec) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    n.id.as_str(),
                    n.name.as_str(),
                    "10.77.0.0/24",
                    serde_json::to_string(&n).unwrap()
                ],
            )
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        let v: i64 = s
            .read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(s.read(|c| network(c, "old")).unwrap(), n);
        let dual = fixtures::with_ipv6(net("new", "10.78.0.0/24"), "fd00:78::/64");
        s.write(|c| insert_network(c, &dual)).unwrap();
        assert_eq!(
            s.read(subnets6).unwrap(),
            vec!["fd00:78::/64".parse::<ipnet::Ipv6Net>().unwrap()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn round_trip_and_conflicts() {
        let dir = tmpdir("rt");
        let s = Store::open(&dir).unwrap();
        let n = net("n1", "10.1.0.0/24");
        s.write(|c| insert_network(c, &n)).unwrap();
        let err = s
            .write(|c| insert_network(c, &net("n1", "10.2.0.0/24")))
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = s
            .write(|c| insert_network(c, &net("n2", "10.1.0.128/25")))
            .unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
        let got = s.read(|c| network(c, &n.id.as_str()[..8])).unwrap();
        assert_eq!(got, n);
        let sb = sbx("a");
        s.write(|c| insert_sandbox(c, &sb)).unwrap();
        let ep = s
            .write(|c| insert_endpoint(c, &n, &sb, &EndpointRequest::default()))
            .unwrap();
        assert_eq!(ep.ip, Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(ep.ifname.as_str(), "eth0");
        let dup = s.write(|c| insert_endpoint(c, &n, &sb, &EndpointRequest::default()));
        assert!(dup.is_err());
        // A failed transaction leaves nothing behind.
        let before = s.read(all_endpoints).unwrap().len();
        let failed: Result<()> = s.write(|c| {
            insert_sandbox(c, &sbx("aborted"))?;
            Err(Error::Invalid("abort".into()))
        });
        assert!(failed.is_err());
        // Not a hex string, so it cannot match another sandbox's id prefix.
        assert!(s.read(|c| sandbox(c, "aborted")).is_err());
        assert_eq!(s.read(all_endpoints).unwrap().len(), before);
        drop(s);
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.read(networks).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn many_first_opens_at_once_all_succeed() {
        // A pod burst on a fresh host: every plugin process opens a store
        // that does not exist yet, and each one's switch to WAL mode must
        // wait for the others rather than fail.
        for round in 0..20 {
            let dir = tmpdir(&format!("first-open-{round}"));
            let barrier = std::sync::Barrier::new(24);
            std::thread::scope(|s| {
                for _ in 0..24 {
                    s.spawn(|| {
                        barrier.wait();
                        if let Err(e) = Store::open(&dir) {
                            panic!("round {round}: {e}");
                        }
                    });
                }
            });
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
