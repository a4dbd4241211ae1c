//! Subnets as requests give them: parsed, with host bits, prefix lengths
//! and ranges that can never be a container network refused, naming the
//! value.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::{Invalid, invalid};

pub(super) fn parse_net(what: &str, s: &str) -> Result<Ipv4Net, Invalid> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Invalid(format!(
            "invalid {what} {s:?}: expected an IPv4 CIDR such as 10.1.2.0/24"
        ))
    })?;
    if net.network() != net.addr() {
        return invalid(format!(
            "invalid {what} {s:?}: host bits are set (did you mean {}?)",
            net.trunc()
        ));
    }
    if net.prefix_len() > 30 {
        return invalid(format!(
            "invalid {what} {s:?}: a prefix longer than /30 leaves no room for sandboxes"
        ));
    }
    if let Some((range, why)) = special_range(&net) {
        return invalid(format!(
            "invalid {what} {s:?}: it overlaps {range}, {why}, which cannot be a container network"
        ));
    }
    Ok(net)
}

/// IPv4 ranges that can never be a bridge subnet: the kernel either refuses
/// them (multicast gives EINVAL) or treats them specially (loopback is
/// martian on a bridge, 0/8 and 240/4 are not routable, link-local is the
/// host's own). Returned with a word on why, for the message.
const SPECIAL_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (RFC 1122)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved (RFC 1112) and broadcast"),
];

fn special_range(net: &Ipv4Net) -> Option<(Ipv4Net, &'static str)> {
    SPECIAL_RANGES.iter().find_map(|(a, len, why)| {
        let r = Ipv4Net::new(Ipv4Addr::from(*a), *len).ok()?;
        (r.contains(&net.network()) || net.contains(&r.network())).then_some((r, *why))
    })
}

/// IPv6 ranges that can never be a bridge subnet, with a word on why.
const SPECIAL_RANGES6: &[(&str, &str)] = &[
    (
        "::/96",
        "the unspecified, loopback and IPv4-compatible addresses",
    ),
    ("::ffff:0:0/96", "IPv4-mapped addresses"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// The longest IPv6 prefix a network may have: a /120 leaves 255 sandboxes.
pub const MAX_PREFIX6: u8 = 120;

pub(super) fn parse_net6(what: &str, s: &str) -> Result<Ipv6Net, Invalid> {
    let net: Ipv6Net = s.parse().map_err(|_| {
        Invalid(format!(
            "invalid {what} {s:?}: expected an IPv6 CIDR such as fd00:1::/64"
        ))
    })?;
    if net.network() != net.addr() {
        return invalid(format!(
            "invalid {what} {s:?}: host bits are set (did you mean {}?)",
            net.trunc()
        ));
    }
    if net.prefix_len() > MAX_PREFIX6 {
        return invalid(format!(
            "invalid {what} {s:?}: a prefix longer than /{MAX_PREFIX6} is refused"
        ));
    }
    for (range, why) in SPECIAL_RANGES6 {
        let r: Ipv6Net = range.parse().expect("valid special range");
        if r.contains(&net.network()) || net.contains(&r.network()) {
            return invalid(format!(
                "invalid {what} {s:?}: it overlaps {range}, {why}, which cannot be a container network"
            ));
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use crate::model::NetworkCreate;

    #[test]
    fn in_special_subnets_are_refused_naming_the_value() {
        for (subnet, word) in [
            ("127.0.0.0/8", "loopback"),
            ("127.5.0.0/16", "loopback"),
            ("0.0.0.0/8", "this network"),
            ("169.254.0.0/16", "link-local"),
            ("169.254.3.0/24", "link-local"),
            ("224.0.0.0/4", "multicast"),
            ("239.1.2.0/24", "multicast"),
            ("240.0.0.0/4", "reserved"),
            ("255.255.255.0/24", "reserved"),
            // Wider than a special range and containing it.
            ("128.0.0.0/1", "link-local"),
            ("192.0.0.0/2", "multicast"),
            ("0.0.0.0/1", "this network"),
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(subnet.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().0;
            assert!(
                e.contains(subnet) && e.contains(word),
                "{subnet}: {e:?} lacks the value or {word:?}"
            );
        }
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.1.0/24",
            "1.0.0.0/8",
            "223.255.255.0/24",
        ] {
            let c = NetworkCreate {
                name: "n".into(),
                subnet: Some(ok.into()),
                ..Default::default()
            };
            assert!(c.validate().is_ok(), "{ok} refused");
        }
    }
}
