//! How many of each record there are, for the daemon's gauges: one read,
//! four counts over primary-key indexes.

use rusqlite::Connection;

use crate::error::Result;

/// Rows in the store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub networks: u64,
    pub sandboxes: u64,
    pub endpoints: u64,
    /// Published host ports: one per (host address, protocol, port).
    pub published_ports: u64,
}

pub fn counts(c: &Connection) -> Result<Counts> {
    let n = |table: &str| -> Result<u64> {
        let v: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(Counts {
        networks: n("networks")?,
        sandboxes: n("sandboxes")?,
        endpoints: n("endpoints")?,
        published_ports: n("published")?,
    })
}
