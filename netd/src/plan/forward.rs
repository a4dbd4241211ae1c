//! Accept rules for netd's bridges in *other* tables' forward chains.
//!
//! In nftables an `accept` ends only the base chain it is in: the packet
//! still passes every other table's chains at the same hook, and a drop in
//! any of them wins. A host firewall whose forward chain has policy drop
//! (ufw, Docker's iptables `FORWARD`, a hand-written `inet filter`) so drops
//! what netd's own table accepts. With the network option
//! `netd.forward_accept` the operator lets netd append two rules per bridge
//! to the chains it names (`iifname BRIDGE accept`, `oifname BRIDGE
//! accept`), or to every forward base chain with policy drop (`auto`).
//! They only take the place of that chain's policy for the bridge's
//! traffic: netd's own table still drops what it always drops.

use crate::model::{Invalid, Network, OPT_FORWARD_ACCEPT};

/// The nftables family of a table, as its name in `nft` and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
        }
    }

    /// The families whose forward hook sees routed and bridged-IP traffic.
    pub fn from_nfproto(n: u32) -> Option<Family> {
        match n {
            2 => Some(Family::Ip),
            10 => Some(Family::Ip6),
            1 => Some(Family::Inet),
            _ => None,
        }
    }

    pub fn nfproto(self) -> u32 {
        match self {
            Family::Ip => 2,
            Family::Ip6 => 10,
            Family::Inet => 1,
        }
    }
}

/// One chain of another table, as `FAMILY/TABLE/CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainRef {
    pub family: Family,
    pub table: String,
    pub chain: String,
}

impl std::fmt::Display for ChainRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.family.name(), self.table, self.chain)
    }
}

/// Which chains get the bridge's accept rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every base chain at the forward hook, of family ip, ip6 or inet,
    /// with policy drop, in any table but netd's.
    Auto,
    /// Exactly these (a missing one is skipped until it appears).
    Chains(Vec<ChainRef>),
}

/// A bridge and where its accept rules go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAccept {
    pub bridge: String,
    pub scope: Scope,
}

/// The option's value that asks for no accept rules (see `parse`).
pub const NONE: &str = "none";

/// netd's own table (`inet netd`, `kernel::nft::TABLE`).
pub const NETD_TABLE: &str = "netd";

/// At most this many chains in one option: a host has a few firewalls.
pub const MAX_CHAINS: usize = 16;

/// nftables names are at most 255 bytes; these are the characters the
/// tools that make such chains use (ufw, iptables, firewalld, Docker).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Parse the option's value: `auto`, or `FAMILY/TABLE/CHAIN` separated by
/// commas (family `ip`, `ip6` or `inet`).
pub fn parse(v: &str) -> Result<Scope, Invalid> {
    let v = v.trim();
    if v == "auto" {
        return Ok(Scope::Auto);
    }
    // A network's way out of the daemon's `--forward-accept` default.
    if v == NONE {
        return Ok(Scope::Chains(Vec::new()));
    }
    let bad = |what: &str| {
        Invalid(format!(
            "invalid {OPT_FORWARD_ACCEPT} {what:?}: expected auto, none, or FAMILY/TABLE/CHAIN \
             (family ip, ip6 or inet) separated by commas"
        ))
    };
    let mut out: Vec<ChainRef> = Vec::new();
    for item in v.split(',') {
        let item = item.trim();
        let mut parts = item.split('/');
        let (Some(f), Some(table), Some(chain), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(item));
        };
        let family = match f {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            _ => return Err(bad(item)),
        };
        if !valid_name(table) || !valid_name(chain) {
            return Err(bad(item));
        }
        if family == Family::Inet && table == NETD_TABLE {
            return Err(Invalid(format!(
                "invalid {OPT_FORWARD_ACCEPT} {item:?}: that is netd's own table"
            )));
        }
        let c = ChainRef {
            family,
            table: table.into(),
            chain: chain.into(),
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.len() > MAX_CHAINS {
        return Err(Invalid(format!(
            "too many chains in {OPT_FORWARD_ACCEPT} ({}): at most {MAX_CHAINS}",
            out.len()
        )));
    }
    Ok(Scope::Chains(out))
}

/// The accept rules a network asks for: bridge networks with the option.
/// A value that does not parse asks for none (it was refused at create).
pub fn of_network(n: &Network) -> Option<ForwardAccept> {
    let b = n.bridge()?;
    let scope = parse(n.options.get(OPT_FORWARD_ACCEPT)?).ok()?;
    if scope == Scope::Chains(Vec::new()) {
        return None;
    }
    Some(ForwardAccept {
        bridge: b.bridge.to_string(),
        scope,
    })
}

pub fn plan(networks: &[Network]) -> Vec<ForwardAccept> {
    networks.iter().filter_map(of_network).collect()
}

/// The comment that marks a rule as netd's, and tells which bridge and
/// direction it is for: `netd BRIDGE in` / `netd BRIDGE out`.
pub fn comment(bridge: &str, inbound: bool) -> String {
    format!("netd {bridge} {}", if inbound { "out" } else { "in" })
}

/// Whether a rule comment is one of netd's accept rules.
pub fn is_ours(comment: &str) -> bool {
    let mut w = comment.split(' ');
    matches!(
        (w.next(), w.next(), w.next(), w.next()),
        (Some("netd"), Some(b), Some("in" | "out"), None) if !b.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures;

    #[test]
    fn option_values() {
        assert_eq!(parse("auto"), Ok(Scope::Auto));
        let Ok(Scope::Chains(c)) =
            parse("inet/filter/forward, ip/filter/FORWARD,ip6/filter/FORWARD")
        else {
            panic!("should parse");
        };
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].to_string(), "ip/filter/FORWARD");
        assert_eq!(
            parse("inet/filter/forward,inet/filter/forward"),
            Ok(Scope::Chains(vec![c[0].clone()])),
            "duplicates collapse"
        );
        for bad in [
            "",
            "on",
            "inet/filter",
            "bridge/filter/forward",
            "inet/fil ter/forward",
            "inet/filter/forward/x",
            "inet//forward",
            "inet/netd/forward",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_CHAINS).map(|i| format!("ip/t{i}/c")).collect();
        assert!(parse(&many.join(",")).is_err());
    }

    #[test]
    fn networks_with_the_option_only() {
        let plain = fixtures::network("a", "10.3.0.0/24");
        let mut on = fixtures::network("b", "10.3.1.0/24");
        on.options
            .insert(OPT_FORWARD_ACCEPT.into(), "inet/filter/forward".into());
        let p = plan(&[plain, on.clone()]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].bridge, on.bridge().unwrap().bridge.to_string());
    }

    #[test]
    fn comments_round_trip() {
        assert!(is_ours(&comment("netd0", false)));
        assert!(is_ours(&comment("netd-0123456789", true)));
        assert_eq!(comment("netd0", true), "netd netd0 out");
        assert!(!is_ours("netd"));
        assert!(!is_ours("netd netd0 sideways"));
        assert!(!is_ours("ufw netd0 in"));
    }
}
