//! Endpoints: lookups, and attachment with its address, interface name
//! and published ports allocated in the caller's transaction.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use rusqlite::{Connection, OptionalExtension, params};

use super::from_json;
use super::ports::{host_key, resolve_ports};
use crate::error::{Error, Result};
use crate::ipam;
use crate::model::{Endpoint, EndpointRequest, Id, IfName, Mac, Network, PortMapping, Sandbox};

/// The kernel refuses a bridge's 1024th port (BR_MAX_PORTS, with port 0
/// reserved): say so before trying.
pub const MAX_BRIDGE_PORTS: usize = 1023;

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
    if let Some(why) = crate::plan::firewall::unpublishable(network, &req.ports) {
        return Err(Error::Invalid(why));
    }
    if endpoint(c, &network.id, &sandbox.id)?.is_some() {
        return Err(Error::Conflict(format!(
            "sandbox {} is already connected to network {}",
            sandbox.name, network.name
        )));
    }
    // The `ip` column holds each endpoint's IPv4 address, or its IPv6 one
    // on an IPv6-only network: unique per network either way.
    let count: usize = c.query_row(
        "SELECT COUNT(*) FROM endpoints WHERE network_id = ?1",
        [network.id.as_str()],
        |r| r.get(0),
    )?;
    if count >= MAX_BRIDGE_PORTS {
        return Err(Error::Conflict(format!(
            "network {} is full: a Linux bridge takes at most {MAX_BRIDGE_PORTS} endpoints",
            network.name
        )));
    }
    let ip = match (&cfg.ipv4, req.ip) {
        (Some(v4), request) => {
            let used: BTreeSet<Ipv4Addr> = {
                let mut st = c.prepare_cached("SELECT ip FROM endpoints WHERE network_id = ?1")?;
                let rows = st.query_map([network.id.as_str()], |r| r.get::<_, String>(0))?;
                rows.map(|r| {
                    r?.parse()
                        .map_err(|_| Error::Store("corrupt address".into()))
                })
                .collect::<Result<_>>()?
            };
            Some(ipam::allocate(v4, &used, request)?)
        }
        (None, Some(ip)) => {
            return Err(Error::Invalid(format!(
                "network {} is IPv6-only: cannot give it the IPv4 address {ip}",
                network.name
            )));
        }
        (None, None) => None,
    };
    let (ip6, ip6_off) = match (&cfg.ipv6, req.ip6) {
        (Some(v6), request) => {
            let (ip6, off) = super::ipam6::allocate6(c, &network.id, v6, request)?;
            (Some(ip6), off)
        }
        (None, Some(ip6)) => {
            return Err(Error::Invalid(format!(
                "network {} has no IPv6 subnet: cannot give {ip6} (create it with --ipv6)",
                network.name
            )));
        }
        (None, None) => (None, None),
    };
    // A bridge config always has one side, so one of the two is set.
    let primary: IpAddr = match (ip, ip6) {
        (Some(v4), _) => v4.into(),
        (None, Some(v6)) => v6.into(),
        (None, None) => {
            return Err(Error::Store(format!(
                "network {} has neither an IPv4 nor an IPv6 subnet",
                network.name
            )));
        }
    };
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
            .map(|i| format!("{}{i}", network.iface_prefix()))
            .find(|n| !taken_ifs.contains(n))
            .unwrap_or_default(),
    };
    let ports = match network.default_host_ip() {
        None => resolve_ports(c, &req.ports)?,
        Some(bind) => {
            let bound: Vec<_> = req
                .ports
                .iter()
                .map(|m| PortMapping {
                    host_ip: m.host_ip.or(Some(bind.into())),
                    ..*m
                })
                .collect();
            resolve_ports(c, &bound)?
        }
    };
    let ep = Endpoint {
        id: Id::random(),
        network: network.id.clone(),
        sandbox: sandbox.id.clone(),
        ifname: IfName::try_from(ifname)?,
        ip,
        ip6,
        mac: req.mac.unwrap_or_else(|| Mac::for_addr(primary)),
        aliases: req.aliases.clone(),
        ports,
        gw_priority: req.gw_priority,
        link_local_ips: req.link_local_ips.clone(),
        sysctls: req.sysctls.clone(),
        egress_ifb: req.egress_ifb,
    };
    c.execute(
        "INSERT INTO endpoints (id, network_id, sandbox_id, ip, ifname, spec, ip6, ip6_off)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            ep.id.as_str(),
            ep.network.as_str(),
            ep.sandbox.as_str(),
            primary.to_string(),
            ep.ifname.as_str(),
            serde_json::to_string(&ep)?,
            ep.ip6.map(|a| a.to_string()),
            ip6_off,
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

pub fn delete_endpoint(c: &Connection, id: &Id) -> Result<()> {
    // The schema's trigger gives an IPv6 offset back to the free list.
    c.execute("DELETE FROM endpoints WHERE id = ?1", [id.as_str()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{net, sbx, tmpdir};
    use crate::store::{Store, insert_network, insert_sandbox};

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
                        mine.push(ep.ip.unwrap());
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
}
