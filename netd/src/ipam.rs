//! Address management: pure, deterministic functions over a subnet and the
//! set of addresses already taken. The store calls them inside the write
//! transaction that records the result, so two writers never see the same
//! free address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::model::Ipv4Config;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("address {ip} is outside subnet {subnet}")]
    OutsideSubnet { ip: IpAddr, subnet: IpNet },
    #[error(
        "address {ip} is reserved in subnet {subnet} (network, broadcast, gateway or an auxiliary address)"
    )]
    Reserved { ip: IpAddr, subnet: IpNet },
    #[error("address {ip} is already in use on this network")]
    Taken { ip: IpAddr },
    #[error("no free address left in {range}")]
    Exhausted { range: IpNet },
}

fn reserved(cfg: &Ipv4Config, ip: Ipv4Addr) -> bool {
    ip == cfg.subnet.network()
        || ip == cfg.subnet.broadcast()
        || ip == cfg.gateway
        || cfg.aux_addresses.values().any(|a| *a == ip)
}

/// A requested address of either family, if it is usable: in `subnet`,
/// not reserved there, not taken.
pub fn wanted<A: Into<IpAddr> + Copy>(
    ip: A,
    inside: bool,
    subnet: IpNet,
    reserved: bool,
    taken: bool,
) -> Result<A, IpamError> {
    if !inside {
        return Err(IpamError::OutsideSubnet {
            ip: ip.into(),
            subnet,
        });
    }
    if reserved {
        return Err(IpamError::Reserved {
            ip: ip.into(),
            subnet,
        });
    }
    if taken {
        return Err(IpamError::Taken { ip: ip.into() });
    }
    Ok(ip)
}

/// Choose an address: the requested one if it is usable, else the lowest
/// free address of the ip-range (or of the subnet). Lowest-free makes
/// released addresses the first to be reused, as Docker users expect.
pub fn allocate(
    cfg: &Ipv4Config,
    used: &BTreeSet<Ipv4Addr>,
    request: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    if let Some(ip) = request {
        return wanted(
            ip,
            cfg.subnet.contains(&ip),
            cfg.subnet.into(),
            reserved(cfg, ip),
            used.contains(&ip),
        );
    }
    let range = cfg.ip_range.unwrap_or(cfg.subnet);
    let start = u32::from(range.network());
    let end = u32::from(range.broadcast());
    // Walk the used set alongside the candidates instead of probing each
    // address, so a nearly full /16 costs O(used), not O(range * log used).
    let mut taken = used
        .range(Ipv4Addr::from(start)..=Ipv4Addr::from(end))
        .peekable();
    let mut n = start;
    loop {
        let ip = Ipv4Addr::from(n);
        while taken.peek().is_some_and(|t| **t < ip) {
            taken.next();
        }
        let is_taken = taken.peek().is_some_and(|t| **t == ip);
        if !is_taken && !reserved(cfg, ip) {
            return Ok(ip);
        }
        if n == end {
            return Err(IpamError::Exhausted {
                range: range.into(),
            });
        }
        n += 1;
    }
}

/// The conventional gateway: the first host address of the subnet.
pub fn default_gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Where networks created without `--subnet` come from, in order: Docker's
/// default pools (172.17-31.0.0/16, then 192.168.0.0/16 cut into /20s).
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let big =
        (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid /16"));
    let small =
        (0..16u8).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).expect("valid /20"));
    big.chain(small)
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first pool that overlaps neither an existing network nor a host route.
/// A default route (0.0.0.0/0) is not a conflict: everything overlaps it.
pub fn pick_subnet(existing: &[Ipv4Net], host_routes: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().find(|cand| {
        !existing.iter().any(|e| overlaps(e, cand))
            && !host_routes
                .iter()
                .filter(|r| r.prefix_len() > 0)
                .any(|r| overlaps(r, cand))
    })
}

/// The host route that a requested subnet would clash with, if any. The
/// default route does not count, nor do the routes of netd's own bridges
/// (inside an existing network's subnet: that overlap is the store's to
/// report, naming the network).
pub fn host_route_overlap(
    subnet: &Ipv4Net,
    existing: &[Ipv4Net],
    host_routes: &[Ipv4Net],
) -> Option<Ipv4Net> {
    host_routes
        .iter()
        .filter(|r| r.prefix_len() > 0)
        .filter(|r| !existing.iter().any(|e| e.contains(*r)))
        .filter(|r| overlaps(r, subnet))
        // The widest names the link's subnet rather than its address.
        .min_by_key(|r| r.prefix_len())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(subnet: &str, range: Option<&str>) -> Ipv4Config {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        Ipv4Config {
            subnet,
            gateway: default_gateway(subnet),
            ip_range: range.map(|r| r.parse().unwrap()),
            masquerade: true,
            aux_addresses: Default::default(),
        }
    }

    #[test]
    fn in_host_route_overlap() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let routes = [
            n("0.0.0.0/0"),
            n("192.0.2.0/24"),
            n("10.5.0.0/24"),
            n("10.5.0.1/32"),
        ];
        let existing = [n("10.5.0.0/24")];
        // A host link's subnet, wider or narrower.
        assert_eq!(
            host_route_overlap(&n("192.0.2.0/25"), &existing, &routes),
            Some(n("192.0.2.0/24"))
        );
        assert_eq!(
            host_route_overlap(&n("192.0.0.0/16"), &existing, &routes),
            Some(n("192.0.2.0/24"))
        );
        // Only the default route, or netd's own bridge routes: no clash here.
        assert_eq!(
            host_route_overlap(&n("10.9.0.0/24"), &existing, &routes),
            None
        );
        assert_eq!(
            host_route_overlap(&n("10.5.0.0/25"), &existing, &routes),
            None
        );
    }

    #[test]
    fn first_allocations_skip_gateway() {
        let c = cfg("10.0.0.0/24", None);
        let mut used = BTreeSet::new();
        let a = allocate(&c, &used, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 0, 0, 2));
        used.insert(a);
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 0, 0, 3)
        );
    }

    #[test]
    fn ip_range_bounds_dynamic_but_not_static() {
        let c = cfg("10.0.0.0/24", Some("10.0.0.128/25"));
        let used = BTreeSet::new();
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 0, 0, 128)
        );
        assert_eq!(
            allocate(&c, &used, Some(Ipv4Addr::new(10, 0, 0, 5))).unwrap(),
            Ipv4Addr::new(10, 0, 0, 5)
        );
    }

    #[test]
    fn static_errors() {
        let c = cfg("10.0.0.0/24", None);
        let used: BTreeSet<_> = [Ipv4Addr::new(10, 0, 0, 9)].into();
        assert!(matches!(
            allocate(&c, &used, Some(Ipv4Addr::new(10, 0, 1, 1))),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            allocate(&c, &used, Some(Ipv4Addr::new(10, 0, 0, 1))),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            allocate(&c, &used, Some(Ipv4Addr::new(10, 0, 0, 255))),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            allocate(&c, &used, Some(Ipv4Addr::new(10, 0, 0, 9))),
            Err(IpamError::Taken { .. })
        ));
    }

    #[test]
    fn exhaustion() {
        let c = cfg("10.0.0.0/30", None);
        let mut used = BTreeSet::new();
        used.insert(allocate(&c, &used, None).unwrap());
        assert!(matches!(
            allocate(&c, &used, None),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn subnet_picking_avoids_networks_and_routes() {
        let existing = ["172.17.0.0/16".parse().unwrap()];
        let routes = [
            "0.0.0.0/0".parse().unwrap(),
            "172.18.5.0/24".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&existing, &routes),
            Some("172.19.0.0/16".parse().unwrap())
        );
    }

    proptest! {
        /// Any sequence of allocations and releases never hands out a used,
        /// reserved or out-of-range address, and a released address is the
        /// next one handed out when it is the lowest free one.
        #[test]
        fn allocations_are_unique_and_reuse(ops in proptest::collection::vec((any::<bool>(), 0usize..64, proptest::option::of(0u8..=255)), 1..200)) {
            let c = cfg("10.9.0.0/26", None);
            let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
            for (alloc, idx, req) in ops {
                if alloc || used.is_empty() {
                    let request = req.map(|o| Ipv4Addr::new(10, 9, 0, o));
                    match allocate(&c, &used, request) {
                        Ok(ip) => {
                            prop_assert!(c.subnet.contains(&ip));
                            prop_assert!(!reserved(&c, ip));
                            prop_assert!(!used.contains(&ip));
                            if let Some(r) = request { prop_assert_eq!(ip, r); }
                            used.insert(ip);
                        }
                        Err(IpamError::Exhausted { .. }) => prop_assert_eq!(used.len(), 61),
                        Err(IpamError::Taken { ip: IpAddr::V4(ip) }) => prop_assert!(used.contains(&ip)),
                        Err(IpamError::Reserved { ip: IpAddr::V4(ip), .. }) => prop_assert!(reserved(&c, ip)),
                        Err(IpamError::OutsideSubnet { ip: IpAddr::V4(ip), .. }) => prop_assert!(!c.subnet.contains(&ip)),
                        Err(e) => prop_assert!(false, "an IPv6 error from IPv4 allocation: {e}"),
                    }
                } else {
                    let victim = *used.iter().nth(idx % used.len()).unwrap();
                    used.remove(&victim);
                    let lowest_free = (2..63u8).map(|o| Ipv4Addr::new(10, 9, 0, o)).find(|ip| !used.contains(ip)).unwrap();
                    prop_assert_eq!(allocate(&c, &used, None).unwrap(), lowest_free);
                    prop_assert!(lowest_free <= victim);
                }
            }
        }
    }
}
