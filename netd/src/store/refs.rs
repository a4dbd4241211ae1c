//! How a user names a sandbox or a network, and the lookup by that name.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

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

/// A row's spec by exact name, exact id, or unique id prefix (Docker's
/// rules). `table` is one of our own table names, never user input.
pub(super) fn spec_by_reference(
    c: &Connection,
    table: &str,
    kind: &str,
    r: Ref<'_>,
) -> Result<String> {
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

/// LIKE treats % and _ as wildcards; ids are hex, so anything else cannot match anyway.
fn escape_prefix(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_hexdigit()) {
        s.to_string()
    } else {
        "\u{1}".to_string()
    }
}
