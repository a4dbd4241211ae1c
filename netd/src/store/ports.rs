//! Published host ports: conflicts with other endpoints' ports, and ports
//! chosen for specs that name none.

use std::net::{IpAddr, Ipv6Addr};

use rusqlite::{Connection, OptionalExtension, params};

use super::{from_json, network_by_id, sandbox_by_id};
use crate::error::{Error, Result};
use crate::model::{Endpoint, Network, PortMapping, PortRange};

/// Host ports handed out when a publish spec names none (Docker's range).
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49153..=65535;

pub(super) fn host_key(m: &PortMapping) -> String {
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
        && (a.host_ip.is_none()
            || b.host_ip.is_none()
            || a.host_ip == b.host_ip
            || loopback6_and_any6(a.host_ip, b.host_ip))
}

/// `[::1]` and `[::]` clash, though the datapath would keep them apart (the
/// `[::]` elements skip `::1`): the proxy's listener on `[::1]` holds the
/// port for a `[::]` probe, so without this whichever came second would be
/// refused, with a less clear message, in one order only.
fn loopback6_and_any6(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    let (l, u) = (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into());
    (a == Some(l) && b == Some(u)) || (a == Some(u) && b == Some(l))
}

/// Who already publishes a port in `range` for `m`'s protocol and address,
/// as "sandbox S on network N".
fn port_holder(c: &Connection, m: &PortMapping, range: PortRange) -> Result<Option<(u16, String)>> {
    let key = host_key(m);
    // The one other address a specific one clashes with (see
    // `loopback6_and_any6`); '' (taken care of already) otherwise.
    let also = match m.host_ip {
        Some(IpAddr::V6(ip)) if ip.is_loopback() => Ipv6Addr::UNSPECIFIED.to_string(),
        Some(IpAddr::V6(ip)) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
        _ => String::new(),
    };
    let row: Option<(u16, String)> = c
        .query_row(
            "SELECT p.port, e.spec FROM published p JOIN endpoints e ON e.id = p.endpoint_id
             WHERE p.proto = ?1 AND p.port BETWEEN ?2 AND ?3
               AND (p.host_ip = ?4 OR p.host_ip = '' OR ?4 = '' OR p.host_ip = ?5)
             LIMIT 1",
            params![m.proto.to_string(), range.start, range.end, key, also],
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

/// Every endpoint with a port published on `[::1]`, with its network: what
/// the daemon's userland proxy serves. A lookup by the primary key's first
/// column, so it costs nothing however many other ports exist.
pub fn published_on_loopback6(c: &Connection) -> Result<Vec<(Network, Endpoint)>> {
    let mut st = c.prepare_cached(
        "SELECT DISTINCT n.spec, e.spec FROM published p
         JOIN endpoints e ON e.id = p.endpoint_id JOIN networks n ON n.id = e.network_id
         WHERE p.host_ip = ?1",
    )?;
    let loopback = std::net::Ipv6Addr::LOCALHOST.to_string();
    let rows = st.query_map([loopback], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.map(|r| {
        let (n, e) = r?;
        Ok((from_json(n)?, from_json(e)?))
    })
    .collect()
}

/// Fill in host ports that were left to netd, and refuse ports someone
/// already publishes, naming the holder.
pub(super) fn resolve_ports(c: &Connection, wanted: &[PortMapping]) -> Result<Vec<PortMapping>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointRequest;
    use crate::store::tests::{net, sbx, tmpdir};
    use crate::store::{Store, delete_sandbox, insert_endpoint, insert_network, insert_sandbox};

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
    fn loopback6_ports_are_listed_for_the_proxy_and_clash() {
        let dir = tmpdir("ports6");
        let s = Store::open(&dir).unwrap();
        let n = crate::model::fixtures::with_ipv6(net("d", "10.2.0.0/24"), "fd00:2::/64");
        s.write(|c| insert_network(c, &n)).unwrap();
        let req = |specs: &[&str]| EndpointRequest {
            ports: specs.iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        };
        let (a, b) = (sbx("a"), sbx("b"));
        s.write(|c| {
            insert_sandbox(c, &a)?;
            insert_sandbox(c, &b)?;
            insert_endpoint(
                c,
                &n,
                &a,
                &req(&["[::1]:8080:80", "[::1]:8081:81/udp", "9:9"]),
            )
        })
        .unwrap();
        let got = s.read(published_on_loopback6).unwrap();
        assert_eq!(got.len(), 1, "one row per endpoint");
        assert_eq!(got[0].1.sandbox, a.id);
        assert!(got[0].1.ip6.is_some());
        // [::1]:8080 is taken, by a ::1 spec or an every-address one.
        for spec in ["[::1]:8080:80", "8080:80", "[::]:8080:80"] {
            let err = s
                .write(|c| insert_endpoint(c, &n, &b, &req(&[spec])))
                .unwrap_err();
            assert!(err.to_string().contains("sandbox a"), "{spec}: {err}");
        }
        // Another protocol, or 127.0.0.1, is free.
        s.write(|c| {
            insert_endpoint(
                c,
                &n,
                &b,
                &req(&["[::1]:8080:80/udp", "127.0.0.1:8081:81/udp"]),
            )
        })
        .unwrap();
        assert_eq!(s.read(published_on_loopback6).unwrap().len(), 2);
        s.write(|c| delete_sandbox(c, &a.id)).unwrap();
        let got = s.read(published_on_loopback6).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.sandbox, b.id);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
