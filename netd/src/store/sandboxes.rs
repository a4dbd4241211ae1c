//! Sandboxes: lookups, creation and removal (with their endpoints).

use rusqlite::{Connection, OptionalExtension, params};

use super::from_json;
use super::refs::{Ref, spec_by_reference};
use crate::error::{Error, Result};
use crate::model::{Id, Name, Sandbox};

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
