//! IPv6 address management, pure: the ULA pool new dual-stack networks
//! take their /64 from, and the offsets that the store's free list keys
//! addresses by (`store::endpoints`), so that the next free address is an
//! index lookup however large the subnet.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::model::Ipv6Config;

/// netd's ULA /48 (RFC 4193: `fd` + a 40-bit id, here the bytes of
/// "netd"), cut into /64s for networks created with `--ipv6` and no subnet,
/// as Docker cuts its default-address-pools.
pub const POOL6: &str = "fd6e:6574:6400::/48";

/// The conventional gateway: the subnet's `::1`.
pub fn default_gateway6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /64 of the pool that overlaps neither an existing network nor
/// a host route (the default route and link-local/multicast routes, which
/// every host has, do not count).
pub fn pick_subnet6(existing: &[Ipv6Net], host_routes: &[Ipv6Net]) -> Option<Ipv6Net> {
    let pool: Ipv6Net = POOL6.parse().expect("valid pool");
    pool.subnets(64).ok()?.find(|cand| {
        !existing.iter().any(|e| overlaps6(e, cand))
            && !host_routes
                .iter()
                .filter(|r| counts_as_host_route(r))
                .any(|r| overlaps6(r, cand))
    })
}

fn counts_as_host_route(r: &Ipv6Net) -> bool {
    let ll: Ipv6Net = "fe80::/10".parse().expect("valid");
    let mc: Ipv6Net = "ff00::/8".parse().expect("valid");
    r.prefix_len() > 0 && !ll.contains(r) && !mc.contains(r)
}

/// The host route a requested IPv6 subnet would clash with, if any (not
/// netd's own bridge routes: those overlaps are the store's to report).
pub fn host_route_overlap6(
    subnet: &Ipv6Net,
    existing: &[Ipv6Net],
    host_routes: &[Ipv6Net],
) -> Option<Ipv6Net> {
    host_routes
        .iter()
        .filter(|r| counts_as_host_route(r))
        .filter(|r| !existing.iter().any(|e| e.contains(*r)))
        .filter(|r| overlaps6(r, subnet))
        .min_by_key(|r| r.prefix_len())
        .copied()
}

/// Where dynamic addresses come from: offsets 0.. of `range` (the
/// ip-range, or the subnet). The store keeps each address's offset in an
/// indexed INTEGER column; offsets past `MAX_OFFSET` (never reached by
/// allocation, a bridge takes 1,024 ports) are not tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range6 {
    pub range: Ipv6Net,
}

pub const MAX_OFFSET: u128 = i64::MAX as u128;

impl Range6 {
    /// The offset of `ip` in the range, if it is in it and trackable.
    pub fn offset(&self, ip: Ipv6Addr) -> Option<i64> {
        if !self.range.contains(&ip) {
            return None;
        }
        let off = u128::from(ip) - u128::from(self.range.network());
        i64::try_from(off).ok()
    }

    /// The address at `off`, if the range is that large.
    pub fn at(&self, off: i64) -> Option<Ipv6Addr> {
        let off = u128::try_from(off).ok()?;
        let size_minus_one = u128::MAX >> self.range.prefix_len();
        (off <= size_minus_one).then(|| Ipv6Addr::from(u128::from(self.range.network()) + off))
    }
}

/// Addresses no sandbox may have: the subnet-router anycast address (the
/// subnet's first), the gateway and the auxiliary addresses.
pub fn reserved6(cfg: &Ipv6Config, ip: Ipv6Addr) -> bool {
    ip == cfg.subnet.network() || ip == cfg.gateway || cfg.aux_addresses.values().any(|a| *a == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_pool_skips_networks_and_host_routes() {
        assert_eq!(pick_subnet6(&[], &[]), Some(n("fd6e:6574:6400::/64")));
        let routes = [
            n("::/0"),
            n("fe80::/64"),
            n("ff00::/8"),
            n("fd6e:6574:6400:1::/64"),
        ];
        assert_eq!(
            pick_subnet6(&[n("fd6e:6574:6400::/64")], &routes),
            Some(n("fd6e:6574:6400:2::/64"))
        );
        // A wide host route over the whole pool leaves nothing.
        assert_eq!(pick_subnet6(&[], &[n("fd00::/8")]), None);
    }

    #[test]
    fn host_route_overlaps_name_the_route() {
        let routes = [n("::/0"), n("fe80::/64"), n("2001:db8:1::/48")];
        assert_eq!(
            host_route_overlap6(&n("2001:db8:1:5::/64"), &[], &routes),
            Some(n("2001:db8:1::/48"))
        );
        assert_eq!(host_route_overlap6(&n("fd00:1::/64"), &[], &routes), None);
        // netd's own bridge route is the store's to report.
        let own = [n("2001:db8:1::/48")];
        assert_eq!(
            host_route_overlap6(&n("2001:db8:1:5::/64"), &own, &routes),
            None
        );
    }

    #[test]
    fn offsets_round_trip() {
        let r = Range6 {
            range: n("fd00::/64"),
        };
        let ip: Ipv6Addr = "fd00::2:1".parse().unwrap();
        let off = r.offset(ip).unwrap();
        assert_eq!(off, 0x20001);
        assert_eq!(r.at(off), Some(ip));
        assert_eq!(r.offset("fd01::1".parse().unwrap()), None);
        let small = Range6 {
            range: n("fd00::/120"),
        };
        assert_eq!(small.at(255), Some("fd00::ff".parse().unwrap()));
        assert_eq!(small.at(256), None);
        // Beyond what an i64 holds: not tracked.
        assert_eq!(r.offset("fd00::8000:0:0:0".parse().unwrap()), None);
        assert_eq!(
            default_gateway6(n("fd00:5::/64")),
            "fd00:5::1".parse::<Ipv6Addr>().unwrap()
        );
    }
}
