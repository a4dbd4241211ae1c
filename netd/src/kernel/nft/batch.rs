//! The batch that builds the whole table.

use std::net::{Ipv4Addr, Ipv6Addr};

use nftnl::nftnl_sys::libc;
use nftnl::{Batch, Chain, ChainType, FinalizedBatch, Hook, MsgType, ProtoFamily, Table};

use super::expr::{cmp, dnat4, dnat6, lookup, masquerade, meta, payload, verdict};
use super::maps::{ElemsMsg, RawSet, SetMsg, element_sets};
use super::rules::{
    add_rule, base_chain, ct_dnat, daddr_is_local, ifname_key, internal_rules, ipv4_only,
    ipv6_only, loopback_from_bridges, network_rules, saddr_in,
};
use super::{
    MAP_ADDR, MAP_ADDR6, MAP_ANY, MAP_ANY6, R32_0, R32_1, R32_2, R32_4, R32_5, REG1, SET_BRIDGES,
    SET_DIRECT4, SET_DIRECT6, SET_TRUSTED4, SET_TRUSTED6, TABLE,
};
use crate::plan::firewall::FirewallPlan;

// Data types of set keys (nftables' datatype ids), concatenated 6 bits apart.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const fn concat(a: u32, b: u32) -> u32 {
    (a << 6) | b
}

/// The batch that replaces the table with exactly `plan`, atomically:
/// add (so the delete cannot fail), delete, then build anew.
pub(super) fn full_batch(plan: &FirewallPlan) -> FinalizedBatch {
    let mut batch = Batch::new();
    let table = Table::new(TABLE, ProtoFamily::Inet);
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    batch.add(&table, MsgType::Add);

    let mut bridges = RawSet::new(SET_BRIDGES, 1, TYPE_IFNAME, 16, None);
    bridges.host_order_key();
    for n in &plan.networks {
        bridges.add_elem(&ifname_key(&n.bridge), None);
    }
    let addr_map = RawSet::new(
        MAP_ADDR,
        2,
        concat(concat(TYPE_IPADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        12,
        Some((concat(TYPE_IPADDR, TYPE_INET_SERVICE), 8)),
    );
    let any_map = RawSet::new(
        MAP_ANY,
        3,
        concat(TYPE_INET_PROTO, TYPE_INET_SERVICE),
        8,
        Some((concat(TYPE_IPADDR, TYPE_INET_SERVICE), 8)),
    );
    let addr6_map = RawSet::new(
        MAP_ADDR6,
        4,
        concat(concat(TYPE_IP6ADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        24,
        Some((concat(TYPE_IP6ADDR, TYPE_INET_SERVICE), 20)),
    );
    let any6_map = RawSet::new(
        MAP_ANY6,
        5,
        concat(TYPE_INET_PROTO, TYPE_INET_SERVICE),
        8,
        Some((concat(TYPE_IP6ADDR, TYPE_INET_SERVICE), 20)),
    );
    let direct6 = RawSet::new(
        SET_DIRECT6,
        6,
        concat(concat(TYPE_IP6ADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        24,
        None,
    );
    let trusted4 = RawSet::new(
        SET_TRUSTED4,
        7,
        concat(concat(TYPE_IPADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        12,
        None,
    );
    let trusted6 = RawSet::new(
        SET_TRUSTED6,
        8,
        concat(concat(TYPE_IP6ADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        24,
        None,
    );
    let direct4 = RawSet::new(
        SET_DIRECT4,
        9,
        concat(concat(TYPE_IPADDR, TYPE_INET_PROTO), TYPE_INET_SERVICE),
        12,
        None,
    );
    batch.add(&SetMsg(&bridges), MsgType::Add);
    if !plan.networks.is_empty() {
        batch.add(&ElemsMsg(&bridges), MsgType::Add);
    }
    batch.add(&SetMsg(&addr_map), MsgType::Add);
    batch.add(&SetMsg(&any_map), MsgType::Add);
    batch.add(&SetMsg(&addr6_map), MsgType::Add);
    batch.add(&SetMsg(&any6_map), MsgType::Add);
    batch.add(&SetMsg(&direct4), MsgType::Add);
    batch.add(&SetMsg(&direct6), MsgType::Add);
    batch.add(&SetMsg(&trusted4), MsgType::Add);
    batch.add(&SetMsg(&trusted6), MsgType::Add);
    let elems = element_sets(&plan.ports);
    for s in &elems {
        batch.add(&ElemsMsg(s), MsgType::Add);
    }

    let publish = Chain::new(c"publish", &table);
    batch.add(&publish, MsgType::Add);
    let pre = base_chain(
        &table,
        c"prerouting",
        Hook::PreRouting,
        -100,
        ChainType::Nat,
    );
    let out = base_chain(&table, c"output", Hook::Out, -100, ChainType::Nat);
    let post = base_chain(
        &table,
        c"postrouting",
        Hook::PostRouting,
        100,
        ChainType::Nat,
    );
    let fwd = base_chain(&table, c"forward", Hook::Forward, 0, ChainType::Filter);
    // At raw priority: before conntrack, NAT and routing, so the packet
    // leaves no conntrack entry and cannot be DNAT'ed either.
    let localnet = base_chain(
        &table,
        c"localnet",
        Hook::PreRouting,
        -300,
        ChainType::Filter,
    );
    for c in [&pre, &out, &post, &fwd, &localnet] {
        batch.add(c, MsgType::Add);
    }
    loopback_from_bridges(&mut batch, &localnet);

    // publish: the address-specific map first, then any local address.
    // Both only for packets addressed to the host itself: a mapping on an
    // address that is not (or no longer) the host's must not capture the
    // host's and the containers' traffic to the real owner of that address.
    let mut e = ipv4_only();
    e.extend(daddr_is_local());
    e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 16, 4, R32_0));
    e.push(meta(libc::NFT_META_L4PROTO, R32_1));
    e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, R32_2));
    e.push(lookup(MAP_ADDR, R32_0, Some(REG1)));
    e.push(dnat4(REG1, R32_1));
    add_rule(&mut batch, &publish, e);
    let mut e = ipv4_only();
    e.extend(daddr_is_local());
    e.push(meta(libc::NFT_META_L4PROTO, R32_0));
    e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, R32_1));
    e.push(lookup(MAP_ANY, R32_0, Some(REG1)));
    e.push(dnat4(REG1, R32_1));
    add_rule(&mut batch, &publish, e);
    // The same for IPv6: the destination address is 16 bytes (R32_0..3),
    // so protocol and port follow in R32_4 and R32_5, and the looked-up
    // address . port lands in REG1 with the port in R32_4.
    let mut e = ipv6_only();
    e.extend(daddr_is_local());
    e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 24, 16, R32_0));
    e.push(meta(libc::NFT_META_L4PROTO, R32_4));
    e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, R32_5));
    e.push(lookup(MAP_ADDR6, R32_0, Some(REG1)));
    e.push(dnat6(REG1, R32_4));
    add_rule(&mut batch, &publish, e);
    // Not ::1: a reply to it from a bridge never arrives (see
    // model::ports), so the connection is better refused at once.
    let mut e = ipv6_only();
    e.push(payload(libc::NFT_PAYLOAD_NETWORK_HEADER, 24, 16, REG1));
    e.push(cmp(libc::NFT_CMP_NEQ, REG1, &Ipv6Addr::LOCALHOST.octets()));
    e.extend(daddr_is_local());
    e.push(meta(libc::NFT_META_L4PROTO, R32_0));
    e.push(payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, R32_1));
    e.push(lookup(MAP_ANY6, R32_0, Some(REG1)));
    e.push(dnat6(REG1, R32_4));
    add_rule(&mut batch, &publish, e);
    add_rule(
        &mut batch,
        &pre,
        vec![verdict(libc::NFT_JUMP, Some(c"publish"))],
    );
    add_rule(
        &mut batch,
        &out,
        vec![verdict(libc::NFT_JUMP, Some(c"publish"))],
    );

    // forward: internal networks first; then published ports may cross
    // networks, in both directions.
    for n in &plan.networks {
        internal_rules(&mut batch, &fwd, n);
    }
    let mut e = ct_dnat();
    e.push(verdict(libc::NF_ACCEPT, None));
    add_rule(&mut batch, &fwd, e);
    for n in &plan.networks {
        network_rules(&mut batch, &post, &fwd, n);
    }
    // localhost publishing (route_localnet): the source must not stay 127.x.
    let mut e = ipv4_only();
    e.extend(saddr_in(
        ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("valid /8"),
    ));
    e.extend(ct_dnat());
    e.push(masquerade());
    add_rule(&mut batch, &post, e);
    batch.finalize()
}
