//! Choosing addresses and VNIs from what the cluster already holds: pure,
//! so the etcd store and the fake pick alike and the choice is unit-tested.
//! The caller makes the choice stick with a create-if-absent transaction
//! and picks again when it lost a race.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ipam::IpamError;
use crate::ipam6::reserved6;
use crate::model::{Driver, Ipv4Config, Ipv6Config, Network, Vni};

use super::ClusterError;

/// Overlay VNIs start here, as Docker's do: low ids are often taken by
/// hand-made VXLAN devices.
pub const FIRST_VNI: u32 = 4096;

/// The lowest VNI from [`FIRST_VNI`] not in `used`.
pub fn pick_vni(used: &BTreeSet<u32>) -> Option<Vni> {
    (FIRST_VNI..=Vni::MAX)
        .find(|v| !used.contains(v))
        .and_then(|v| Vni::try_from(v).ok())
}

/// IPv4: the single-host rules exactly (`crate::ipam::allocate`).
pub fn pick4(
    cfg: &Ipv4Config,
    used: &BTreeSet<Ipv4Addr>,
    want: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    crate::ipam::allocate(cfg, used, want)
}

/// IPv6 over an explicit used set (the single-host store keeps a free list
/// in SQLite instead; the cluster reads the network's `ipam/` keys, so the
/// set is at hand): the wanted address if usable, else the lowest free of
/// the ip-range (or the subnet), never the subnet-router anycast address,
/// the gateway nor an aux address.
pub fn pick6(
    cfg: &Ipv6Config,
    used: &BTreeSet<Ipv6Addr>,
    want: Option<Ipv6Addr>,
) -> Result<Ipv6Addr, IpamError> {
    if let Some(ip) = want {
        return crate::ipam::wanted(
            ip,
            cfg.subnet.contains(&ip),
            cfg.subnet.into(),
            reserved6(cfg, ip),
            used.contains(&ip),
        );
    }
    let range = cfg.ip_range.unwrap_or(cfg.subnet);
    let end = range.broadcast();
    // Walk the used set beside the candidates: O(used), however large the range.
    let mut taken = used.range(range.network()..=end).peekable();
    let mut n = u128::from(range.network());
    loop {
        let ip = Ipv6Addr::from(n);
        while taken.peek().is_some_and(|t| **t < ip) {
            taken.next();
        }
        if taken.peek() != Some(&&ip) && !reserved6(cfg, ip) {
            return Ok(ip);
        }
        if ip == end {
            return Err(IpamError::Exhausted {
                range: range.into(),
            });
        }
        n += 1;
    }
}

/// Give an overlay network the VNI the cluster picked; any other network
/// is no overlay to record.
pub fn set_vni(net: &mut Network, vni: Vni) -> Result<(), ClusterError> {
    match &mut net.driver {
        Driver::Overlay(o) => {
            o.vni = vni;
            Ok(())
        }
        _ => Err(ClusterError::Conflict(format!(
            "network {} is not an overlay network",
            net.name
        ))),
    }
}

/// The cluster's error for an IPAM refusal, worded as on one host. An
/// address outside the subnet or reserved is the caller's mistake, which
/// the cluster's errors have no kind for: it is a Conflict with the network.
pub fn ipam_error(e: IpamError) -> ClusterError {
    match e {
        IpamError::Exhausted { .. } => ClusterError::Exhausted(e.to_string()),
        IpamError::Taken { .. } | IpamError::OutsideSubnet { .. } | IpamError::Reserved { .. } => {
            ClusterError::Conflict(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam6::default_gateway6;

    fn cfg6(subnet: &str, range: Option<&str>) -> Ipv6Config {
        let subnet = subnet.parse().unwrap();
        Ipv6Config {
            subnet,
            gateway: default_gateway6(subnet),
            ip_range: range.map(|r| r.parse().unwrap()),
            masquerade: true,
            aux_addresses: Default::default(),
        }
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn vnis_are_lowest_free_from_4096() {
        assert_eq!(pick_vni(&BTreeSet::new()).unwrap().get(), 4096);
        let used = BTreeSet::from([4096, 4097, 4099]);
        assert_eq!(pick_vni(&used).unwrap().get(), 4098);
    }

    #[test]
    fn ipv6_lowest_free_skips_reserved_and_used() {
        let mut c = cfg6("fd00::/120", None);
        c.aux_addresses.insert("r".into(), ip6("fd00::3"));
        let used = BTreeSet::from([ip6("fd00::2"), ip6("fd00::5")]);
        // ::0 is the subnet-router anycast, ::1 the gateway, ::3 aux.
        assert_eq!(pick6(&c, &used, None).unwrap(), ip6("fd00::4"));
        let used: BTreeSet<_> = (2..=255u128)
            .map(|i| Ipv6Addr::from(u128::from(ip6("fd00::")) + i))
            .collect();
        assert!(matches!(
            pick6(&c, &used, None),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn ipv6_range_and_wanted() {
        let c = cfg6("fd00::/64", Some("fd00::100/120"));
        assert_eq!(pick6(&c, &BTreeSet::new(), None).unwrap(), ip6("fd00::100"));
        let used = BTreeSet::from([ip6("fd00::9")]);
        assert_eq!(
            pick6(&c, &used, Some(ip6("fd00::8"))).unwrap(),
            ip6("fd00::8")
        );
        assert_eq!(
            pick6(&c, &used, Some(ip6("fd00::9"))),
            Err(IpamError::Taken {
                ip: ip6("fd00::9").into()
            })
        );
        assert!(matches!(
            pick6(&c, &used, Some(ip6("fd00::1"))),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            pick6(&c, &used, Some(ip6("fd01::1"))),
            Err(IpamError::OutsideSubnet { .. })
        ));
    }

    #[test]
    fn errors_keep_the_single_host_wording() {
        let e = ipam_error(IpamError::Taken {
            ip: "10.0.0.5".parse().unwrap(),
        });
        assert!(
            matches!(&e, ClusterError::Conflict(m) if m == "address 10.0.0.5 is already in use on this network")
        );
    }
}
