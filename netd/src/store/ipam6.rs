//! IPv6 allocation inside the caller's write transaction.
//!
//! Invariant per network: every offset below `networks.ip6_next` (the
//! high-water mark) is either an endpoint's (`endpoints.ip6_off`), a
//! reserved address, or in `ip6_free`. So the lowest free offset is the
//! smallest in `ip6_free` if there is one, else the mark or just past it:
//! an index lookup, not a walk over the network's addresses. Released
//! offsets join the free list by the schema's `endpoints_release6` trigger,
//! however the endpoint's row goes.

use std::net::Ipv6Addr;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::ipam::IpamError;
use crate::ipam6::{Range6, reserved6};
use crate::model::{Id, Ipv6Config};

/// The address for a new endpoint and its offset (None when it lies
/// outside the dynamic range: a static address elsewhere in the subnet).
pub fn allocate6(
    c: &Connection,
    network: &Id,
    cfg: &Ipv6Config,
    request: Option<Ipv6Addr>,
) -> Result<(Ipv6Addr, Option<i64>)> {
    let range = Range6 {
        range: cfg.ip_range.unwrap_or(cfg.subnet),
    };
    let taken = |off: i64| -> Result<bool> {
        Ok(
            c.prepare_cached("SELECT 1 FROM endpoints WHERE network_id = ?1 AND ip6_off = ?2")?
                .exists(params![network.as_str(), off])?,
        )
    };
    let mark: i64 = c.query_row(
        "SELECT ip6_next FROM networks WHERE id = ?1",
        [network.as_str()],
        |r| r.get(0),
    )?;
    if let Some(ip) = request {
        if !cfg.subnet.contains(&ip) {
            return Err(IpamError::OutsideSubnet {
                ip: ip.into(),
                subnet: cfg.subnet.into(),
            }
            .into());
        }
        if reserved6(cfg, ip) {
            return Err(IpamError::Reserved {
                ip: ip.into(),
                subnet: cfg.subnet.into(),
            }
            .into());
        }
        let used = c
            .prepare_cached("SELECT 1 FROM endpoints WHERE network_id = ?1 AND ip6 = ?2")?
            .exists(params![network.as_str(), ip.to_string()])?;
        if used {
            return Err(IpamError::Taken { ip: ip.into() }.into());
        }
        let off = range.offset(ip);
        if let Some(off) = off
            && off < mark
        {
            c.execute(
                "DELETE FROM ip6_free WHERE network_id = ?1 AND off = ?2",
                params![network.as_str(), off],
            )?;
        }
        return Ok((ip, off));
    }
    let freed: Option<i64> = c
        .query_row(
            "SELECT MIN(off) FROM ip6_free WHERE network_id = ?1",
            [network.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(off) = freed {
        c.execute(
            "DELETE FROM ip6_free WHERE network_id = ?1 AND off = ?2",
            params![network.as_str(), off],
        )?;
        if let Some(ip) = range.at(off) {
            return Ok((ip, Some(off)));
        }
    }
    // Past the mark: skip reserved addresses and static ones taken there.
    let mut off = mark;
    loop {
        let ip = range.at(off).ok_or(IpamError::Exhausted {
            range: range.range.into(),
        })?;
        if !reserved6(cfg, ip) && !taken(off)? {
            c.execute(
                "UPDATE networks SET ip6_next = ?2 WHERE id = ?1",
                params![network.as_str(), off + 1],
            )?;
            return Ok((ip, Some(off)));
        }
        off += 1;
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{EndpointRequest, fixtures};
    use crate::store::tests::{sbx, tmpdir};
    use crate::store::{Store, delete_sandbox, insert_endpoint, insert_network, insert_sandbox};

    fn req(ip6: Option<&str>) -> EndpointRequest {
        EndpointRequest {
            ip6: ip6.map(|s| s.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn lowest_free_with_statics_releases_and_ranges() {
        let dir = tmpdir("ipam6");
        let s = Store::open(&dir).unwrap();
        let n = fixtures::with_ipv6(fixtures::network("n", "10.9.0.0/24"), "fd00:9::/64");
        s.write(|c| insert_network(c, &n)).unwrap();
        let add = |name: &str, ip6: Option<&str>| {
            s.write(|c| {
                let sb = sbx(name);
                insert_sandbox(c, &sb)?;
                let ep = insert_endpoint(c, &n, &sb, &req(ip6))?;
                Ok((sb, ep.ip6.unwrap().to_string()))
            })
        };
        // ::1 is the gateway and :: the subnet-router anycast address.
        let (a, ip) = add("a", None).unwrap();
        assert_eq!(ip, "fd00:9::2");
        // A static address just past the mark is skipped by later dynamic ones.
        assert_eq!(add("s", Some("fd00:9::3")).unwrap().1, "fd00:9::3");
        assert_eq!(add("b", None).unwrap().1, "fd00:9::4");
        // Far outside the tracked offsets, anywhere in the subnet.
        assert_eq!(
            add("far", Some("fd00:9::ffff:ffff:ffff:fffe")).unwrap().1,
            "fd00:9::ffff:ffff:ffff:fffe"
        );
        let e = add("dup", Some("fd00:9::4")).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
        // Released (with its sandbox): the lowest again.
        s.write(|c| delete_sandbox(c, &a.id)).unwrap();
        assert_eq!(add("c", None).unwrap().1, "fd00:9::2");
        assert_eq!(add("d", None).unwrap().1, "fd00:9::5");
        // A static request for a freed address takes it off the free list.
        let (b2, _) = add("e", None).unwrap();
        s.write(|c| delete_sandbox(c, &b2.id)).unwrap();
        assert_eq!(add("f", Some("fd00:9::6")).unwrap().1, "fd00:9::6");
        assert_eq!(add("g", None).unwrap().1, "fd00:9::7");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_small_ip_range_runs_out_with_a_clear_error() {
        let dir = tmpdir("ipam6-range");
        let s = Store::open(&dir).unwrap();
        let n = fixtures::with_bridge(
            fixtures::with_ipv6(fixtures::network("n", "10.9.1.0/24"), "fd00:9::/64"),
            |b| {
                if let Some(v6) = &mut b.ipv6 {
                    v6.ip_range = Some("fd00:9::10/126".parse().unwrap());
                }
            },
        );
        s.write(|c| insert_network(c, &n)).unwrap();
        let mut got = Vec::new();
        let err = loop {
            let r = s.write(|c| {
                let sb = sbx(&format!("s{}", got.len()));
                insert_sandbox(c, &sb)?;
                insert_endpoint(c, &n, &sb, &EndpointRequest::default())
            });
            match r {
                Ok(ep) => got.push(ep.ip6.unwrap().to_string()),
                Err(e) => break e.to_string(),
            }
        };
        assert_eq!(
            got,
            ["fd00:9::10", "fd00:9::11", "fd00:9::12", "fd00:9::13"]
        );
        assert!(err.contains("fd00:9::10/126"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writers in separate connections (as plugin processes are) never get
    /// one IPv6 address twice.
    #[test]
    fn concurrent_writers_never_double_allocate_ipv6() {
        let dir = tmpdir("ipam6-conc");
        let s = Store::open(&dir).unwrap();
        let n = fixtures::with_ipv6(fixtures::network("n", "10.9.2.0/24"), "fd00:9:2::/64");
        s.write(|c| insert_network(c, &n)).unwrap();
        drop(s);
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let (dir, n) = (dir.clone(), n.clone());
                std::thread::spawn(move || {
                    let s = Store::open(&dir).unwrap();
                    (0..15)
                        .map(|i| {
                            s.write(|c| {
                                let sb = sbx(&format!("w{w}-{i}"));
                                insert_sandbox(c, &sb)?;
                                let ep = insert_endpoint(c, &n, &sb, &EndpointRequest::default())?;
                                if i % 3 == 0 {
                                    // Some go again at once: their addresses are reused.
                                    delete_sandbox(c, &sb.id)?;
                                    return Ok(None);
                                }
                                Ok(ep.ip6)
                            })
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .flatten()
            .collect();
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "an IPv6 address was handed out twice");
        // Lowest-free: the live ones are exactly ::2 onwards.
        let want: Vec<std::net::Ipv6Addr> = (2..2 + total as u128)
            .map(|i| {
                std::net::Ipv6Addr::from(
                    u128::from("fd00:9:2::".parse::<std::net::Ipv6Addr>().unwrap()) + i,
                )
            })
            .collect();
        assert_eq!(all, want);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
