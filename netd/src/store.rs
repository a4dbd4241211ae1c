//! The state store: the one source of truth, shared by the daemon, the CLI
//! and CNI plugin processes.
//!
//! SQLite in WAL mode. Every write is one `BEGIN IMMEDIATE` transaction, which
//! takes the database's write lock up front: two processes allocating at once
//! are serialised by SQLite itself, and the UNIQUE constraints catch anything
//! that slips past. A crash mid-operation leaves the last committed state.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::ipam;
use crate::model::{
    Endpoint, EndpointRequest, Id, IfName, Mac, Name, Network, PortMapping, PortRange, Sandbox,
};

/// Bumped with every schema change; `migrate` upgrades older databases.
pub const SCHEMA_VERSION: i64 = 1;

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

/// The kernel refuses a bridge's 1024th port (BR_MAX_PORTS, with port 0
/// reserved): say so before trying.
pub const MAX_BRIDGE_PORTS: usize = 1023;

/// Host ports handed out when a publish spec names none (Docker's range).
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49153..=65535;

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
        conn.busy_timeout(BUSY_TIMEOUT)?;
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

// ---- queries, usable inside `read` or `write` -------------------------------

fn from_json<T: serde::de::DeserializeOwned>(s: String) -> Result<T> {
    Ok(serde_json::from_str(&s)?)
}

/// How many of `names` are networks, without reading their specs.
pub fn network_names_present(c: &Connection, names: &[&str]) -> Result<usize> {
    let mut st = c.prepare_cached("SELECT 1 FROM networks WHERE name = ?1")?;
    let mut n = 0;
    for name in names {
        if st.exists([name])? {
            n += 1;
        }
    }
    Ok(n)
}

pub fn networks(c: &Connection) -> Result<Vec<Network>> {
    let mut st = c.prepare_cached("SELECT spec FROM networks ORDER BY name")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_json(r?)).collect()
}

/// A row's spec by exact name, exact id, or unique id prefix (Docker's
/// rules). `table` is one of our own table names, never user input.
/// How a user names a sandbox or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref<'a> {
    /// Docker's rule: exact name, exact id, else a unique id prefix (for
    /// people typing at a CLI).
    Any(&'a str),
    /// Exactly this name and nothing else: for programs that name things
    /// themselves (the CNI plugin's container ids), where a prefix match
    /// on someone else's id would act on the wrong sandbox.
    Name(&'a str),
}

impl<'a> From<&'a str> for Ref<'a> {
    fn from(s: &'a str) -> Self {
        Ref::Any(s)
    }
}

impl<'a> From<&&'a str> for Ref<'a> {
    fn from(s: &&'a str) -> Self {
        Ref::Any(s)
    }
}

impl<'a> From<&'a String> for Ref<'a> {
    fn from(s: &'a String) -> Self {
        Ref::Any(s)
    }
}

fn spec_by_reference(c: &Connection, table: &str, kind: &str, r: Ref<'_>) -> Result<String> {
    let reference = match r {
        Ref::Any(s) => s,
        Ref::Name(name) => {
            let s: Option<String> = c
                .query_row(
                    &format!("SELECT spec FROM {table} WHERE name = ?1"),
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            return s.ok_or_else(|| Error::NotFound(format!("{kind} {name} not found")));
        }
    };
    let exact: Option<String> = c
        .query_row(
            &format!("SELECT spec FROM {table} WHERE name = ?1 OR id = ?1"),
            [reference],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(s) = exact {
        return Ok(s);
    }
    let mut st = c.prepare_cached(&format!(
        "SELECT spec FROM {table} WHERE id LIKE ?1 || '%' LIMIT 2"
    ))?;
    let mut found: Vec<String> = st
        .query_map([escape_prefix(reference)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::NotFound(format!("{kind} {reference} not found"))),
        _ => Err(Error::Invalid(format!(
            "{kind} id prefix {reference} is ambiguous"
        ))),
    }
}

/// A network by exact name, exact id, or unique id prefix ([`Ref::Any`]),
/// or by exact name only ([`Ref::Name`]).
pub fn network<'a>(c: &Connection, reference: impl Into<Ref<'a>>) -> Result<Network> {
    from_json(spec_by_reference(
        c,
        "networks",
        "network",
        reference.into(),
    )?)
}

pub fn network_by_id(c: &Connection, id: &Id) -> Result<Network> {
    let s: Option<String> = c
        .query_row(
            "SELECT spec FROM networks WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    s.map(from_json)
        .unwrap_or_else(|| Err(Error::NotFound(format!("network {id} not found"))))
}

pub fn sandboxes(c: &Connection) -> Result<Vec<Sandbox>> {
    let mut st = c.prepare_cached("SELECT spec FROM sandboxes ORDER BY name")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_json(r?)).collect()
}

/// Every sandbox with a namespace of its own: (name, namespace path),
/// without parsing the records.
pub fn sandbox_netns_paths(c: &Connection) -> Result<Vec<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT name, json_extract(spec, '$.net.path') FROM sandboxes \
         WHERE json_extract(spec, '$.net.mode') = 'namespace'",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The endpoint whose host veth is called `name` (`nd-` + the first 12 hex
/// digits of its id), by a range over the primary key.
pub fn endpoint_by_host_veth(c: &Connection, name: &str) -> Result<Option<Endpoint>> {
    let Some(prefix) = name.strip_prefix(crate::model::HOST_VETH_PREFIX) else {
        return Ok(None);
    };
    if prefix.len() != 12 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    // Ids are lowercase hex: every id starting with `prefix` sorts below `prefix` + 'g'.
    let end = format!("{prefix}g");
    let spec: Option<String> = c
        .query_row(
            "SELECT spec FROM endpoints WHERE id >= ?1 AND id < ?2 LIMIT 1",
            [prefix, end.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    spec.map(from_json).transpose()
}

/// Whole-table reads for a reader that reads everything on every change
/// (the daemon's DNS): a row whose stored text is the same as last time is
/// neither parsed nor copied again. Parsing and copying were most of the
/// cost of such a read.
#[derive(Default)]
pub struct Rereader {
    sandboxes: Known<Sandbox>,
    endpoints: Known<Endpoint>,
}

/// By row id: the text last read and what it parsed to.
type Known<T> = HashMap<String, (String, Arc<T>)>;

impl Rereader {
    pub fn sandboxes(&mut self, c: &Connection) -> Result<Vec<Arc<Sandbox>>> {
        reread(
            c,
            "SELECT id, spec FROM sandboxes ORDER BY name",
            &mut self.sandboxes,
        )
    }

    pub fn endpoints(&mut self, c: &Connection) -> Result<Vec<Arc<Endpoint>>> {
        reread(c, "SELECT id, spec FROM endpoints", &mut self.endpoints)
    }
}

fn reread<T: serde::de::DeserializeOwned>(
    c: &Connection,
    query: &str,
    known: &mut Known<T>,
) -> Result<Vec<Arc<T>>> {
    let mut st = c.prepare_cached(query)?;
    let mut rows = st.query([])?;
    let mut next: Known<T> = HashMap::with_capacity(known.len());
    let mut out = Vec::with_capacity(known.len());
    while let Some(r) = rows.next()? {
        let id = r
            .get_ref(0)?
            .as_str()
            .map_err(|e| Error::Store(e.to_string()))?;
        let spec = r
            .get_ref(1)?
            .as_str()
            .map_err(|e| Error::Store(e.to_string()))?;
        let entry = match known.remove_entry(id) {
            Some((id, (old, v))) if old == spec => (id, (old, v)),
            _ => (
                id.to_string(),
                (spec.to_string(), Arc::new(serde_json::from_str(spec)?)),
            ),
        };
        out.push(Arc::clone(&entry.1.1));
        next.insert(entry.0, entry.1);
    }
    *known = next;
    Ok(out)
}

/// A sandbox by exact name, exact id, or unique id prefix ([`Ref::Any`]),
/// or by exact name only ([`Ref::Name`]).
pub fn sandbox<'a>(c: &Connection, reference: impl Into<Ref<'a>>) -> Result<Sandbox> {
    from_json(spec_by_reference(
        c,
        "sandboxes",
        "sandbox",
        reference.into(),
    )?)
}

pub fn sandbox_by_id(c: &Connection, id: &Id) -> Result<Sandbox> {
    let s: Option<String> = c
        .query_row(
            "SELECT spec FROM sandboxes WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    s.map(from_json)
        .unwrap_or_else(|| Err(Error::NotFound(format!("sandbox {id} not found"))))
}

/// LIKE treats % and _ as wildcards; ids are hex, so anything else cannot match anyway.
fn escape_prefix(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_hexdigit()) {
        s.to_string()
    } else {
        "\u{1}".to_string()
    }
}

pub fn endpoints_of_network(c: &Connection, network: &Id) -> Result<Vec<Endpoint>> {
    let mut st =
        c.prepare_cached("SELECT spec FROM endpoints WHERE network_id = ?1 ORDER BY ip")?;
    let rows = st.query_map([network.as_str()], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_json(r?)).collect()
}

pub fn endpoints_of_sandbox(c: &Connection, sandbox: &Id) -> Result<Vec<Endpoint>> {
    let mut st =
        c.prepare_cached("SELECT spec FROM endpoints WHERE sandbox_id = ?1 ORDER BY ifname")?;
    let rows = st.query_map([sandbox.as_str()], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_json(r?)).collect()
}

pub fn all_endpoints(c: &Connection) -> Result<Vec<Endpoint>> {
    let mut st = c.prepare_cached("SELECT spec FROM endpoints")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_json(r?)).collect()
}

pub fn endpoint(c: &Connection, network: &Id, sandbox: &Id) -> Result<Option<Endpoint>> {
    let s: Option<String> = c
        .query_row(
            "SELECT spec FROM endpoints WHERE network_id = ?1 AND sandbox_id = ?2",
            [network.as_str(), sandbox.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    s.map(from_json).transpose()
}

// ---- mutations, inside `write` ----------------------------------------------

/// Subnets of every bridge network, for overlap checks and pool picking.
pub fn subnets(c: &Connection) -> Result<Vec<Ipv4Net>> {
    let mut st = c.prepare_cached("SELECT subnet FROM networks WHERE subnet IS NOT NULL")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| {
        r?.parse()
            .map_err(|_| Error::Store("corrupt subnet".into()))
    })
    .collect()
}

pub fn insert_network(c: &Connection, n: &Network) -> Result<()> {
    if c.query_row(
        "SELECT 1 FROM networks WHERE name = ?1",
        [n.name.as_str()],
        |_| Ok(()),
    )
    .optional()?
    .is_some()
    {
        return Err(Error::Conflict(format!(
            "network with name {} already exists",
            n.name
        )));
    }
    if let Some(b) = n.bridge() {
        for other in networks(c)? {
            if let Some(ob) = other.bridge() {
                if ipam::overlaps(&ob.subnet, &b.subnet) {
                    return Err(Error::Conflict(format!(
                        "subnet {} overlaps subnet {} of network {}",
                        b.subnet, ob.subnet, other.name
                    )));
                }
                if ob.bridge == b.bridge {
                    return Err(Error::Conflict(format!(
                        "bridge {} is already used by network {}",
                        b.bridge, other.name
                    )));
                }
            }
        }
    }
    c.execute(
        "INSERT INTO networks (id, name, subnet, spec) VALUES (?1, ?2, ?3, ?4)",
        params![
            n.id.as_str(),
            n.name.as_str(),
            n.bridge().map(|b| b.subnet.to_string()),
            serde_json::to_string(n)?
        ],
    )?;
    Ok(())
}

pub fn delete_network(c: &Connection, id: &Id) -> Result<()> {
    c.execute("DELETE FROM networks WHERE id = ?1", [id.as_str()])?;
    Ok(())
}

pub fn insert_sandbox(c: &Connection, s: &Sandbox) -> Result<()> {
    if c.query_row(
        "SELECT 1 FROM sandboxes WHERE name = ?1",
        [s.name.as_str()],
        |_| Ok(()),
    )
    .optional()?
    .is_some()
    {
        return Err(Error::Conflict(format!(
            "sandbox with name {} already exists",
            s.name
        )));
    }
    c.execute(
        "INSERT INTO sandboxes (id, name, spec) VALUES (?1, ?2, ?3)",
        params![s.id.as_str(), s.name.as_str(), serde_json::to_string(s)?],
    )?;
    Ok(())
}

pub fn delete_sandbox(c: &Connection, id: &Id) -> Result<()> {
    c.execute("DELETE FROM endpoints WHERE sandbox_id = ?1", [id.as_str()])?;
    c.execute("DELETE FROM sandboxes WHERE id = ?1", [id.as_str()])?;
    Ok(())
}

/// Allocate an address and the next free `ethN` and record the endpoint, all
/// in the caller's transaction.
pub fn insert_endpoint(
    c: &Connection,
    network: &Network,
    sandbox: &Sandbox,
    req: &EndpointRequest,
) -> Result<Endpoint> {
    let cfg = network.bridge().ok_or_else(|| {
        Error::Invalid(format!("network {} has no addresses to give", network.name))
    })?;
    if cfg.internal && !req.ports.is_empty() {
        // Nothing reaches an internal network from outside: accepting the
        // ports would reserve them and publish nothing.
        return Err(Error::Invalid(format!(
            "network {} is internal: ports cannot be published on it",
            network.name
        )));
    }
    if endpoint(c, &network.id, &sandbox.id)?.is_some() {
        return Err(Error::Conflict(format!(
            "sandbox {} is already connected to network {}",
            sandbox.name, network.name
        )));
    }
    let used: BTreeSet<Ipv4Addr> = {
        let mut st = c.prepare_cached("SELECT ip FROM endpoints WHERE network_id = ?1")?;
        let rows = st.query_map([network.id.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| {
            r?.parse()
                .map_err(|_| Error::Store("corrupt address".into()))
        })
        .collect::<Result<_>>()?
    };
    if used.len() >= MAX_BRIDGE_PORTS {
        return Err(Error::Conflict(format!(
            "network {} is full: a Linux bridge takes at most {MAX_BRIDGE_PORTS} endpoints",
            network.name
        )));
    }
    let ip = ipam::allocate(cfg, &used, req.ip)?;
    let taken_ifs: BTreeSet<String> = {
        let mut st = c.prepare_cached("SELECT ifname FROM endpoints WHERE sandbox_id = ?1")?;
        let rows = st.query_map([sandbox.id.as_str()], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let ifname = match &req.ifname {
        Some(n) if taken_ifs.contains(n.as_str()) => {
            return Err(Error::Conflict(format!(
                "sandbox {} already has an interface {n}",
                sandbox.name
            )));
        }
        Some(n) => n.to_string(),
        None => (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken_ifs.contains(n))
            .unwrap_or_default(),
    };
    let ports = resolve_ports(c, &req.ports)?;
    let ep = Endpoint {
        id: Id::random(),
        network: network.id.clone(),
        sandbox: sandbox.id.clone(),
        ifname: IfName::try_from(ifname)?,
        ip,
        mac: req.mac.unwrap_or_else(|| Mac::for_ip(ip)),
        aliases: req.aliases.clone(),
        ports,
    };
    c.execute(
        "INSERT INTO endpoints (id, network_id, sandbox_id, ip, ifname, spec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            ep.id.as_str(),
            ep.network.as_str(),
            ep.sandbox.as_str(),
            ep.ip.to_string(),
            ep.ifname.as_str(),
            serde_json::to_string(&ep)?
        ],
    )?;
    let mut st = c.prepare_cached(
        "INSERT INTO published (host_ip, proto, port, endpoint_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for m in &ep.ports {
        let Some(h) = m.host_port else { continue };
        for port in h.start..=h.end {
            st.execute(params![
                host_key(m),
                m.proto.to_string(),
                port,
                ep.id.as_str()
            ])?;
        }
    }
    Ok(ep)
}

fn host_key(m: &PortMapping) -> String {
    m.host_ip.map(|i| i.to_string()).unwrap_or_default()
}

/// Whether two mappings' host sides can receive the same packets.
fn host_sides_overlap(a: &PortMapping, b: &PortMapping) -> bool {
    let (Some(ha), Some(hb)) = (a.host_port, b.host_port) else {
        return false;
    };
    a.proto == b.proto
        && ha.start <= hb.end
        && hb.start <= ha.end
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

/// Who already publishes a port in `range` for `m`'s protocol and address,
/// as "sandbox S on network N".
fn port_holder(c: &Connection, m: &PortMapping, range: PortRange) -> Result<Option<(u16, String)>> {
    let key = host_key(m);
    let row: Option<(u16, String)> = c
        .query_row(
            "SELECT p.port, e.spec FROM published p JOIN endpoints e ON e.id = p.endpoint_id
             WHERE p.proto = ?1 AND p.port BETWEEN ?2 AND ?3 AND (p.host_ip = ?4 OR p.host_ip = '' OR ?4 = '')
             LIMIT 1",
            params![m.proto.to_string(), range.start, range.end, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((port, spec)) = row else {
        return Ok(None);
    };
    let ep: Endpoint = from_json(spec)?;
    let who = format!(
        "sandbox {} on network {}",
        sandbox_by_id(c, &ep.sandbox)?.name,
        network_by_id(c, &ep.network)?.name
    );
    Ok(Some((port, who)))
}

/// Fill in host ports that were left to netd, and refuse ports someone
/// already publishes, naming the holder.
fn resolve_ports(c: &Connection, wanted: &[PortMapping]) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::with_capacity(wanted.len());
    for m in wanted {
        let mut m = *m;
        match m.host_port {
            Some(h) => {
                if let Some((port, who)) = port_holder(c, &m, h)? {
                    return Err(Error::Conflict(format!(
                        "port {port}/{} on {} is already published by {who}",
                        m.proto,
                        m.host_ip
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "0.0.0.0".into())
                    )));
                }
            }
            None => {
                let len = m.container_port.len() as u16;
                let mut start = *EPHEMERAL_PORTS.start();
                loop {
                    let end = start
                        .checked_add(len - 1)
                        .filter(|e| *e <= *EPHEMERAL_PORTS.end())
                        .ok_or_else(|| {
                            Error::Conflict(format!(
                                "no free host port left for {}/{}",
                                m.container_port, m.proto
                            ))
                        })?;
                    let cand = PortRange { start, end };
                    m.host_port = Some(cand);
                    let taken_here = out.iter().any(|o| host_sides_overlap(o, &m));
                    match port_holder(c, &m, cand)? {
                        Some((port, _)) => start = port + 1,
                        None if taken_here => start = end + 1,
                        None => break,
                    }
                }
            }
        }
        if let Some(o) = out.iter().find(|o| host_sides_overlap(o, &m)) {
            return Err(Error::Invalid(format!("publish specs {o} and {m} overlap")));
        }
        out.push(m);
    }
    Ok(out)
}

pub fn delete_endpoint(c: &Connection, id: &Id) -> Result<()> {
    c.execute("DELETE FROM endpoints WHERE id = ?1", [id.as_str()])?;
    Ok(())
}

/// Names are checked against both tables' UNIQUE constraints; this helper
/// exists so callers can say which kind of object a name refers to.
pub fn sandbox_name_taken(c: &Connection, name: &Name) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM sandboxes WHERE name = ?1",
        [name.as_str()],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SandboxNet, fixtures};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netd-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn net(name: &str, subnet: &str) -> Network {
        fixtures::network(name, subnet)
    }

    fn sbx(name: &str) -> Sandbox {
        let mut s = fixtures::sandbox(name);
        s.net = SandboxNet::Host;
        s
    }

    /// The re-reader returns what a fresh read would: new rows, changed
    /// rows (re-parsed, not the cached value), without removed rows.
    #[test]
    fn rereader_follows_inserts_changes_and_removals() {
        let dir = tmpdir("reread");
        let s = Store::open(&dir).unwrap();
        let mut r = Rereader::default();
        let names = |r: &mut Rereader| -> Vec<String> {
            s.read(|c| r.sandboxes(c))
                .unwrap()
                .iter()
                .map(|x| x.name.to_string())
                .collect()
        };
        let (a, b) = (sbx("a"), sbx("b"));
        s.write(|c| insert_sandbox(c, &a)).unwrap();
        assert_eq!(names(&mut r), ["a"]);
        s.write(|c| insert_sandbox(c, &b)).unwrap();
        assert_eq!(names(&mut r), ["a", "b"]);
        // Same id, other text: the new value, not the remembered one.
        s.write(|c| {
            c.execute(
                "UPDATE sandboxes SET spec = replace(spec, '\"b\"', '\"c\"') WHERE id = ?1",
                [b.id.as_str()],
            )?;
            Ok(())
        })
        .unwrap();
        let again = s.read(|c| r.sandboxes(c)).unwrap();
        assert_eq!(
            again.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        s.write(|c| delete_sandbox(c, &a.id)).unwrap();
        assert_eq!(names(&mut r), ["c"]);
        assert_eq!(r.sandboxes.len(), 1, "removed rows are forgotten");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn published_ports_conflict_and_random_ports() {
        let dir = tmpdir("ports");
        let s = Store::open(&dir).unwrap();
        let n = net("n1", "10.1.0.0/24");
        s.write(|c| insert_network(c, &n)).unwrap();
        let req = |specs: &[&str]| EndpointRequest {
            ports: specs.iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        };
        let a = sbx("a");
        let ep = s
            .write(|c| {
                insert_sandbox(c, &a)?;
                insert_endpoint(
                    c,
                    &n,
                    &a,
                    &req(&[
                        "8080:80",
                        "127.0.0.1:9000-9001:90-91/udp",
                        "53/udp",
                        "54/udp",
                    ]),
                )
            })
            .unwrap();
        assert_eq!(
            ep.ports[2].host_port,
            Some(PortRange {
                start: 49153,
                end: 49153
            })
        );
        assert_eq!(
            ep.ports[3].host_port,
            Some(PortRange {
                start: 49154,
                end: 49154
            })
        );
        let b = sbx("b");
        s.write(|c| insert_sandbox(c, &b)).unwrap();
        // Any address clashes with a specific one, and the error names the holder.
        let err = s
            .write(|c| insert_endpoint(c, &n, &b, &req(&["10.0.0.1:8080:80"])))
            .unwrap_err();
        assert!(err.to_string().contains("sandbox a on network n1"), "{err}");
        let err = s
            .write(|c| insert_endpoint(c, &n, &b, &req(&["9001:1/udp"])))
            .unwrap_err();
        assert!(err.to_string().contains("9001/udp"), "{err}");
        // Another protocol or another specific address is fine.
        let ep = s
            .write(|c| {
                insert_endpoint(
                    c,
                    &n,
                    &b,
                    &req(&["8080:80/udp", "127.0.0.2:9000:90/udp", "53/udp"]),
                )
            })
            .unwrap();
        assert_eq!(
            ep.ports[2].host_port,
            Some(PortRange {
                start: 49155,
                end: 49155
            })
        );
        // Overlap inside one request.
        let c2 = sbx("c");
        s.write(|c| insert_sandbox(c, &c2)).unwrap();
        assert!(
            s.write(|c| insert_endpoint(c, &n, &c2, &req(&["7000:1", "7000:2"])))
                .is_err()
        );
        // Removing the holder frees its ports.
        s.write(|c| delete_sandbox(c, &a.id)).unwrap();
        s.write(|c| insert_endpoint(c, &n, &c2, &req(&["8080:80"])))
            .unwrap();
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
        assert_eq!(ep.ip, Ipv4Addr::new(10, 1, 0, 2));
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

    /// 16 processes' worth of writers (separate connections, as separate
    /// plugin processes have) allocating on one network: every address is
    /// handed out exactly once and none is lost.
    #[test]
    fn concurrent_writers_never_double_allocate() {
        let dir = tmpdir("conc");
        let s = Store::open(&dir).unwrap();
        let n = net("n", "10.5.0.0/16");
        s.write(|c| insert_network(c, &n)).unwrap();
        drop(s);
        let per_writer = 20;
        let handles: Vec<_> = (0..16)
            .map(|w| {
                let dir = dir.clone();
                let n = n.clone();
                std::thread::spawn(move || {
                    let s = Store::open(&dir).unwrap();
                    let mut mine = Vec::new();
                    for i in 0..per_writer {
                        let sb = sbx(&format!("w{w}-{i}"));
                        let ep = s
                            .write(|c| {
                                insert_sandbox(c, &sb)?;
                                insert_endpoint(c, &n, &sb, &EndpointRequest::default())
                            })
                            .unwrap();
                        mine.push(ep.ip);
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "an address was handed out twice");
        let s = Store::open(&dir).unwrap();
        let stored = s.read(|c| endpoints_of_network(c, &n.id)).unwrap();
        assert_eq!(stored.len(), 16 * per_writer, "an allocation was lost");
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
