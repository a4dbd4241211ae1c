//! The building blocks of netd's rules, and the rules of each network.

use std::ffi::CStr;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Batch, Chain, ChainType, Hook, MsgType, Policy, Rule, Table};

use super::expr::{
    Attr, Raw, bitwise_and, cmp, counter, ct_status, fib_daddr_type, lookup, lookup_not,
    masquerade, meta, payload, verdict,
};
use super::{
    R32_0, R32_1, R32_2, R32_4, R32_5, REG1, SET_BRIDGES, SET_DIRECT4, SET_DIRECT6, SET_TRUSTED4,
    SET_TRUSTED6,
};
use crate::model::Proto;
use crate::plan::firewall::NetworkRules;

const RTN_LOCAL: u32 = 2;
const CT_STATUS_DNAT: u32 = 1 << 5;

pub(super) fn ipv4_only() -> Vec<Raw> {
    vec![
        meta(libc::NFT_META_NFPROTO, REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &[libc::NFPROTO_IPV4 as u8]),
    ]
}

pub(super) fn ipv6_only() -> Vec<Raw> {
    vec![
        meta(libc::NFT_META_NFPROTO, REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &[libc::NFPROTO_IPV6 as u8]),
    ]
}

/// `ip6 saddr NET`: the source address is at offset 8 of the IPv6 header.
pub(super) fn saddr6_in(net: ipnet::Ipv6Net) -> Vec<Raw> {
    vec![
        payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 8, 16, REG1),
        bitwise_and(REG1, &net.netmask().octets()),
        cmp(libc::NFT_CMP_EQ, REG1, &net.network().octets()),
    ]
}

pub(super) fn saddr_in(net: ipnet::Ipv4Net) -> Vec<Raw> {
    vec![
        payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 12, 4, REG1),
        bitwise_and(REG1, &net.netmask().octets()),
        cmp(libc::NFT_CMP_EQ, REG1, &net.network().octets()),
    ]
}

/// Interface names compare as NUL-terminated strings of up to 16 bytes.
fn ifname_bytes(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.push(0);
    b
}

pub(super) fn ifname_key(name: &str) -> Vec<u8> {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b.to_vec()
}

fn iif_is(name: &str, op: i32) -> Vec<Raw> {
    vec![
        meta(libc::NFT_META_IIFNAME, REG1),
        cmp(op, REG1, &ifname_bytes(name)),
    ]
}

fn oif_is(name: &str, op: i32) -> Vec<Raw> {
    vec![
        meta(libc::NFT_META_OIFNAME, REG1),
        cmp(op, REG1, &ifname_bytes(name)),
    ]
}

/// `ct state new` (nftables' state bit for NEW).
fn ct_new() -> Vec<Raw> {
    const CT_STATE_NEW: u32 = 8;
    vec![
        Raw {
            name: c"ct",
            attrs: vec![
                Attr::U32(sys::NFTNL_EXPR_CT_KEY as u16, libc::NFT_CT_STATE as u32),
                Attr::U32(sys::NFTNL_EXPR_CT_DREG as u16, REG1),
            ],
        },
        bitwise_and(REG1, &CT_STATE_NEW.to_ne_bytes()),
        cmp(libc::NFT_CMP_NEQ, REG1, &0u32.to_ne_bytes()),
    ]
}

/// `fib daddr type local`. Uses REG1, so it comes before any concatenation
/// is loaded into the 32-bit registers that overlap it.
pub(super) fn daddr_is_local() -> Vec<Raw> {
    vec![
        fib_daddr_type(REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &RTN_LOCAL.to_ne_bytes()),
    ]
}

/// Drop what arrives on a netd bridge addressed to the host's loopback
/// (`route_localnet` is on for localhost publishing, so the kernel would
/// otherwise deliver it to services bound to 127.0.0.1, CVE-2020-8558).
/// Per family: `ip daddr 127.0.0.0/8` and `ip6 daddr ::1`.
pub(super) fn loopback_from_bridges(batch: &mut Batch, chain: &Chain<'_>) {
    // The address first: every packet the host receives passes here, and
    // almost none is for loopback, so most stop at one comparison.
    let mut e = ipv4_only();
    e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 16, 4, REG1));
    e.push(bitwise_and(REG1, &[255, 0, 0, 0]));
    e.push(cmp(libc::NFT_CMP_EQ, REG1, &[127, 0, 0, 0]));
    e.push(meta(libc::NFT_META_IIFNAME, REG1));
    e.push(lookup(SET_BRIDGES, REG1, None));
    e.push(counter());
    e.push(verdict(libc::NF_DROP, None));
    add_rule(batch, chain, e);
    let e = vec![
        meta(libc::NFT_META_NFPROTO, REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &[libc::NFPROTO_IPV6 as u8]),
        payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 24, 16, REG1),
        cmp(
            libc::NFT_CMP_EQ,
            REG1,
            &std::net::Ipv6Addr::LOCALHOST.octets(),
        ),
        meta(libc::NFT_META_IIFNAME, REG1),
        lookup(SET_BRIDGES, REG1, None),
        counter(),
        verdict(libc::NF_DROP, None),
    ];
    add_rule(batch, chain, e);
}

pub(super) fn ct_dnat() -> Vec<Raw> {
    vec![
        ct_status(REG1),
        bitwise_and(REG1, &CT_STATUS_DNAT.to_ne_bytes()),
        cmp(libc::NFT_CMP_NEQ, REG1, &0u32.to_ne_bytes()),
    ]
}

pub(super) fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
        Proto::Sctp => libc::IPPROTO_SCTP as u8,
    }
}

pub(super) fn add_rule(batch: &mut Batch, chain: &Chain<'_>, exprs: Vec<Raw>) {
    let mut r = Rule::new(chain);
    for e in &exprs {
        r.add_expr(e);
    }
    batch.add(&r, MsgType::Add);
}

pub(super) fn base_chain<'a>(
    table: &'a Table,
    name: &CStr,
    hook: Hook,
    prio: i32,
    ty: ChainType,
) -> Chain<'a> {
    let mut c = Chain::new(name, table);
    c.set_hook(hook, prio);
    c.set_type(ty);
    c.set_policy(Policy::Accept);
    c
}

/// An internal network's traffic stays on its bridge, both ways. These come
/// before `ct status dnat accept`: a published port of another network,
/// reached through the internal network's gateway (a host address), is still
/// a way out.
pub(super) fn internal_rules(batch: &mut Batch, fwd: &Chain<'_>, n: &NetworkRules) {
    if !n.internal {
        return;
    }
    let br = n.bridge.as_str();
    let mut e = iif_is(br, libc::NFT_CMP_EQ);
    e.extend(oif_is(br, libc::NFT_CMP_NEQ));
    e.push(verdict(libc::NF_DROP, None));
    add_rule(batch, fwd, e);
    let mut e = oif_is(br, libc::NFT_CMP_EQ);
    e.extend(iif_is(br, libc::NFT_CMP_NEQ));
    e.push(verdict(libc::NF_DROP, None));
    add_rule(batch, fwd, e);
}

pub(super) fn network_rules(
    batch: &mut Batch,
    post: &Chain<'_>,
    fwd: &Chain<'_>,
    n: &NetworkRules,
) {
    let br = n.bridge.as_str();
    if let (true, Some(net4)) = (n.masquerade, n.subnet) {
        let mut e = ipv4_only();
        e.extend(saddr_in(net4));
        e.extend(oif_is(br, libc::NFT_CMP_NEQ));
        e.push(counter());
        e.push(masquerade());
        add_rule(batch, post, e);
    }
    if let (false, Some(net4)) = (n.internal, n.subnet) {
        // A container reaching a published port of its own network through
        // the host: without this, the reply would bypass the NAT.
        let mut e = ipv4_only();
        e.extend(saddr_in(net4));
        e.extend(oif_is(br, libc::NFT_CMP_EQ));
        e.extend(ct_dnat());
        e.push(masquerade());
        add_rule(batch, post, e);
    }
    if let Some(net6) = n.subnet6 {
        if n.masquerade6 {
            let mut e = ipv6_only();
            e.extend(saddr6_in(net6));
            e.extend(oif_is(br, libc::NFT_CMP_NEQ));
            e.push(counter());
            e.push(masquerade());
            add_rule(batch, post, e);
        }
        if !n.internal {
            let mut e = ipv6_only();
            e.extend(saddr6_in(net6));
            e.extend(oif_is(br, libc::NFT_CMP_EQ));
            e.extend(ct_dnat());
            e.push(masquerade());
            add_rule(batch, post, e);
        }
    }
    let mut e = iif_is(br, libc::NFT_CMP_EQ);
    e.push(meta(libc::NFT_META_OIFNAME, REG1));
    e.push(lookup(SET_BRIDGES, REG1, None));
    e.push(cmp(libc::NFT_CMP_NEQ, REG1, &ifname_bytes(br)));
    e.push(verdict(libc::NF_DROP, None));
    add_rule(batch, fwd, e);
    if !n.icc {
        let mut e = iif_is(br, libc::NFT_CMP_EQ);
        e.extend(oif_is(br, libc::NFT_CMP_EQ));
        e.push(verdict(libc::NF_DROP, None));
        add_rule(batch, fwd, e);
    }
    if n.routed4 {
        routed_rules(batch, fwd, br, Family::V4);
    }
    if n.routed6 {
        routed_rules(batch, fwd, br, Family::V6);
    }
    for t in &n.trusted {
        trusted_rules(batch, fwd, br, t);
    }
    // Containers are reached from outside through published ports only
    // (accepted above): a machine that routes to the subnet cannot open
    // connections to unpublished ports. Replies to the containers' own
    // connections are not new.
    let mut e = oif_is(br, libc::NFT_CMP_EQ);
    e.extend(iif_is(br, libc::NFT_CMP_NEQ));
    e.extend(ct_new());
    e.push(verdict(libc::NF_DROP, None));
    add_rule(batch, fwd, e);
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// Routed IPv4 or IPv6: from outside the host (not from another netd
/// bridge, which stays isolated), ICMP of the family and the published
/// container ports are reached at the containers' own addresses.
/// Everything else new is dropped by the rule that follows.
fn routed_rules(batch: &mut Batch, fwd: &Chain<'_>, br: &str, family: Family) {
    // The destination address: offset 16 (4 bytes) of IPv4, 24 (16) of
    // IPv6; the protocol and port follow it in the concatenation.
    let (only, icmp, off, len, proto_reg, port_reg, set) = match family {
        Family::V4 => (
            ipv4_only as fn() -> Vec<Raw>,
            libc::IPPROTO_ICMP as u8,
            16,
            4,
            R32_1,
            R32_2,
            SET_DIRECT4,
        ),
        Family::V6 => (
            ipv6_only as fn() -> Vec<Raw>,
            libc::IPPROTO_ICMPV6 as u8,
            24,
            16,
            R32_4,
            R32_5,
            SET_DIRECT6,
        ),
    };
    let from_outside = || {
        let mut e = oif_is(br, libc::NFT_CMP_EQ);
        e.push(meta(libc::NFT_META_IIFNAME, REG1));
        e.push(lookup_not(SET_BRIDGES, REG1));
        e.extend(only());
        e
    };
    let mut e = from_outside();
    e.push(meta(libc::NFT_META_L4PROTO, REG1));
    e.push(cmp(libc::NFT_CMP_EQ, REG1, &[icmp]));
    e.push(verdict(libc::NF_ACCEPT, None));
    add_rule(batch, fwd, e);
    // The concatenation overlaps REG1, so it is loaded last.
    let mut e = from_outside();
    e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, off, len, R32_0));
    e.push(meta(libc::NFT_META_L4PROTO, proto_reg));
    e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, port_reg));
    e.push(lookup(set, R32_0, None));
    e.push(verdict(libc::NF_ACCEPT, None));
    add_rule(batch, fwd, e);
}

/// `trusted_host_interfaces`: new connections arriving on `iface` reach
/// the published container ports at the containers' own addresses, per
/// family (the address is at offset 16 of IPv4, 24 of IPv6).
fn trusted_rules(batch: &mut Batch, fwd: &Chain<'_>, br: &str, iface: &str) {
    for (family, off, len, set) in [
        (ipv4_only(), 16, 4, SET_TRUSTED4),
        (ipv6_only(), 24, 16, SET_TRUSTED6),
    ] {
        let mut e = oif_is(br, libc::NFT_CMP_EQ);
        e.extend(iif_is(iface, libc::NFT_CMP_EQ));
        e.extend(family);
        // The concatenation overlaps REG1, so it is loaded last; the
        // protocol and port follow the address's 4 or 16 bytes.
        let (proto_reg, port_reg) = if len == 4 {
            (R32_1, R32_2)
        } else {
            (R32_4, R32_5)
        };
        e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, off, len, R32_0));
        e.push(meta(libc::NFT_META_L4PROTO, proto_reg));
        e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, port_reg));
        e.push(lookup(set, R32_0, None));
        e.push(counter());
        e.push(verdict(libc::NF_ACCEPT, None));
        add_rule(batch, fwd, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_nul_terminated() {
        assert_eq!(ifname_bytes("br0"), b"br0\0".to_vec());
        assert_eq!(ifname_key("br0").len(), 16);
    }
}
