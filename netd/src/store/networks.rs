//! Networks: lookups, and creation with its overlap and name checks.

use ipnet::{Ipv4Net, Ipv6Net};
use rusqlite::{Connection, OptionalExtension, params};

use super::from_json;
use super::refs::{Ref, spec_by_reference};
use crate::error::{Error, Result};
use crate::ipam;
use crate::model::{Id, Network};

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

/// IPv6 subnets of every dual-stack network.
pub fn subnets6(c: &Connection) -> Result<Vec<Ipv6Net>> {
    let mut st = c.prepare_cached("SELECT subnet6 FROM networks WHERE subnet6 IS NOT NULL")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| {
        r?.parse()
            .map_err(|_| Error::Store("corrupt IPv6 subnet".into()))
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
                if let (Some(v4), Some(o4)) = (&b.ipv4, &ob.ipv4)
                    && ipam::overlaps(&o4.subnet, &v4.subnet)
                {
                    return Err(Error::Conflict(format!(
                        "subnet {} overlaps subnet {} of network {}",
                        v4.subnet, o4.subnet, other.name
                    )));
                }
                if let (Some(v6), Some(o6)) = (&b.ipv6, &ob.ipv6)
                    && crate::ipam6::overlaps6(&v6.subnet, &o6.subnet)
                {
                    return Err(Error::Conflict(format!(
                        "IPv6 subnet {} overlaps subnet {} of network {}",
                        v6.subnet, o6.subnet, other.name
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
        "INSERT INTO networks (id, name, subnet, subnet6, spec) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            n.id.as_str(),
            n.name.as_str(),
            n.bridge()
                .and_then(|b| b.ipv4.as_ref())
                .map(|v| v.subnet.to_string()),
            n.bridge()
                .and_then(|b| b.ipv6.as_ref())
                .map(|v| v.subnet.to_string()),
            serde_json::to_string(n)?
        ],
    )?;
    Ok(())
}

/// Record a network's options anew: only the predefined `bridge`, whose
/// options are the daemon's flags, changes after it is made.
pub fn set_network_options(
    c: &Connection,
    id: &Id,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let mut n = network_by_id(c, id)?;
    n.options = options.clone();
    c.execute(
        "UPDATE networks SET spec = ?2 WHERE id = ?1",
        params![id.as_str(), serde_json::to_string(&n)?],
    )?;
    Ok(())
}

pub fn delete_network(c: &Connection, id: &Id) -> Result<()> {
    c.execute("DELETE FROM networks WHERE id = ?1", [id.as_str()])?;
    Ok(())
}
