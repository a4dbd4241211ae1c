//! netd's nftables table, `inet netd`, programmed over netlink with nftnl.
//!
//! ```text
//! table inet netd {
//!   set bridges  { type ifname }                          # every netd bridge
//!   map pub_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//!   map pub_any  { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   chain publish {                                        # DNAT of published ports, to the host only
//!     fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @pub_addr
//!     fib daddr type local dnat ip to meta l4proto . th dport map @pub_any
//!   }
//!   chain localnet { type filter hook prerouting priority raw
//!     ip daddr 127.0.0.0/8 iifname @bridges drop           # no host loopback from sandboxes
//!     ip6 daddr ::1 iifname @bridges drop
//!   }
//!   chain prerouting  { type nat hook prerouting priority dstnat; jump publish }
//!   chain output      { type nat hook output priority -100; jump publish }
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     ip saddr SUBNET oifname != BRIDGE masquerade        # per network, unless off/internal
//!     ip saddr SUBNET oifname BRIDGE ct status dnat masquerade   # hairpin to a published port
//!     ip saddr 127.0.0.0/8 ct status dnat masquerade       # localhost publishing
//!   }
//!   chain forward { type filter hook forward priority filter
//!     iifname BRIDGE oifname != BRIDGE drop                # internal networks, both ways,
//!     oifname BRIDGE iifname != BRIDGE drop                #   even to published ports
//!     ct status dnat accept                                # published ports cross networks
//!     iifname BRIDGE oifname @bridges oifname != BRIDGE drop   # isolation between networks
//!     iifname BRIDGE oifname BRIDGE drop                   # enable_icc=false
//!     oifname BRIDGE iifname != BRIDGE ct state new drop   # only published ports from outside
//!   }
//! }
//! ```
//!
//! Rules exist per network; containers and ports are map elements. A full
//! apply replaces the whole table in one atomic batch; attaching and
//! detaching add or remove elements only.
//!
//! nftnl's types hold raw pointers, so everything here runs on the calling
//! (blocking) thread; the socket is created in the namespace of that thread.

use std::ffi::{CStr, CString, c_void};
use std::net::Ipv4Addr;
use std::os::raw::c_char;
use std::ptr::NonNull;

use anyhow::{Context, Result, anyhow, bail};
use nftnl::expr::Expression;
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{
    Batch, Chain, ChainType, FinalizedBatch, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table,
};

use crate::model::Proto;
use crate::plan::firewall::{FirewallPlan, NetworkRules, PortElement};

pub const TABLE: &CStr = c"netd";
const SET_BRIDGES: &CStr = c"bridges";
const MAP_ADDR: &CStr = c"pub_addr";
const MAP_ANY: &CStr = c"pub_any";

// Registers: the 16-byte NFT_REG_1 overlaps the 4-byte NFT_REG32_00..03.
const REG1: u32 = libc::NFT_REG_1 as u32;
const R32_0: u32 = libc::NFT_REG32_00 as u32;
const R32_1: u32 = libc::NFT_REG32_01 as u32;
const R32_2: u32 = libc::NFT_REG32_02 as u32;
const VERDICT_REG: u32 = libc::NFT_REG_VERDICT as u32;

// Data types of set keys (nftables' datatype ids), concatenated 6 bits apart.
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const fn concat(a: u32, b: u32) -> u32 {
    (a << 6) | b
}

const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const CT_STATUS_DNAT: u32 = 1 << 5;

/// One attribute of a raw expression.
enum Attr {
    U32(u16, u32),
    Str(u16, CString),
    Data(u16, Vec<u8>),
}

/// Any nftables expression, by name and attributes: nftnl's typed
/// expressions cannot pick registers, invert lookups or do fib.
struct Raw {
    name: &'static CStr,
    attrs: Vec<Attr>,
}

impl Expression for Raw {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: nftnl_expr_alloc returns an owned expression (or null on
        // OOM, where aborting like nftnl itself does is the only option).
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(self.name.as_ptr()))
                .expect("nftnl_expr_alloc: out of memory");
            for a in &self.attrs {
                match a {
                    Attr::U32(k, v) => sys::nftnl_expr_set_u32(e.as_ptr(), *k, *v),
                    Attr::Str(k, v) => {
                        sys::nftnl_expr_set_str(e.as_ptr(), *k, v.as_ptr());
                    }
                    Attr::Data(k, v) => {
                        sys::nftnl_expr_set(
                            e.as_ptr(),
                            *k,
                            v.as_ptr() as *const c_void,
                            v.len() as u32,
                        );
                    }
                }
            }
            e
        }
    }
}

fn meta(key: i32, dreg: u32) -> Raw {
    Raw {
        name: c"meta",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_META_KEY as u16, key as u32),
            Attr::U32(sys::NFTNL_EXPR_META_DREG as u16, dreg),
        ],
    }
}

fn payload(base: i32, offset: u32, len: u32, dreg: u32) -> Raw {
    Raw {
        name: c"payload",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_BASE as u16, base as u32),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, offset),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_LEN as u16, len),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_DREG as u16, dreg),
        ],
    }
}

fn cmp(op: i32, sreg: u32, data: &[u8]) -> Raw {
    Raw {
        name: c"cmp",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_CMP_SREG as u16, sreg),
            Attr::U32(sys::NFTNL_EXPR_CMP_OP as u16, op as u32),
            Attr::Data(sys::NFTNL_EXPR_CMP_DATA as u16, data.to_vec()),
        ],
    }
}

fn bitwise_and(reg: u32, mask: &[u8]) -> Raw {
    Raw {
        name: c"bitwise",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_BITWISE_SREG as u16, reg),
            Attr::U32(sys::NFTNL_EXPR_BITWISE_DREG as u16, reg),
            Attr::U32(sys::NFTNL_EXPR_BITWISE_LEN as u16, mask.len() as u32),
            Attr::Data(sys::NFTNL_EXPR_BITWISE_MASK as u16, mask.to_vec()),
            Attr::Data(sys::NFTNL_EXPR_BITWISE_XOR as u16, vec![0; mask.len()]),
        ],
    }
}

fn lookup(set: &CStr, sreg: u32, dreg: Option<u32>) -> Raw {
    let mut attrs = vec![
        Attr::U32(sys::NFTNL_EXPR_LOOKUP_SREG as u16, sreg),
        Attr::Str(sys::NFTNL_EXPR_LOOKUP_SET as u16, set.to_owned()),
    ];
    if let Some(d) = dreg {
        attrs.push(Attr::U32(sys::NFTNL_EXPR_LOOKUP_DREG as u16, d));
    }
    Raw {
        name: c"lookup",
        attrs,
    }
}

fn fib_daddr_type(dreg: u32) -> Raw {
    Raw {
        name: c"fib",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_FIB_RESULT as u16, NFT_FIB_RESULT_ADDRTYPE),
            Attr::U32(sys::NFTNL_EXPR_FIB_FLAGS as u16, NFTA_FIB_F_DADDR),
            Attr::U32(sys::NFTNL_EXPR_FIB_DREG as u16, dreg),
        ],
    }
}

fn ct_status(dreg: u32) -> Raw {
    Raw {
        name: c"ct",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_CT_KEY as u16, libc::NFT_CT_STATUS as u32),
            Attr::U32(sys::NFTNL_EXPR_CT_DREG as u16, dreg),
        ],
    }
}

fn dnat4(addr_reg: u32, port_reg: u32) -> Raw {
    Raw {
        name: c"nat",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_NAT_TYPE as u16, libc::NFT_NAT_DNAT as u32),
            Attr::U32(sys::NFTNL_EXPR_NAT_FAMILY as u16, libc::NFPROTO_IPV4 as u32),
            Attr::U32(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN as u16, addr_reg),
            Attr::U32(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN as u16, port_reg),
        ],
    }
}

fn masquerade() -> Raw {
    Raw {
        name: c"masq",
        attrs: vec![],
    }
}

fn verdict(code: i32, chain: Option<&CStr>) -> Raw {
    let mut attrs = vec![
        Attr::U32(sys::NFTNL_EXPR_IMM_DREG as u16, VERDICT_REG),
        Attr::U32(sys::NFTNL_EXPR_IMM_VERDICT as u16, code as u32),
    ];
    if let Some(c) = chain {
        attrs.push(Attr::Str(sys::NFTNL_EXPR_IMM_CHAIN as u16, c.to_owned()));
    }
    Raw {
        name: c"immediate",
        attrs,
    }
}

fn counter() -> Raw {
    Raw {
        name: c"counter",
        attrs: vec![],
    }
}

// ---- building blocks of rules -------------------------------------------------

fn ipv4_only() -> Vec<Raw> {
    vec![
        meta(libc::NFT_META_NFPROTO, REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &[libc::NFPROTO_IPV4 as u8]),
    ]
}

fn saddr_in(net: ipnet::Ipv4Net) -> Vec<Raw> {
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

fn ifname_key(name: &str) -> Vec<u8> {
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
fn daddr_is_local() -> Vec<Raw> {
    vec![
        fib_daddr_type(REG1),
        cmp(libc::NFT_CMP_EQ, REG1, &RTN_LOCAL.to_ne_bytes()),
    ]
}

/// Drop what arrives on a netd bridge addressed to the host's loopback
/// (`route_localnet` is on for localhost publishing, so the kernel would
/// otherwise deliver it to services bound to 127.0.0.1, CVE-2020-8558).
/// Per family: `ip daddr 127.0.0.0/8` and `ip6 daddr ::1`.
fn loopback_from_bridges(batch: &mut Batch, chain: &Chain<'_>) {
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

fn ct_dnat() -> Vec<Raw> {
    vec![
        ct_status(REG1),
        bitwise_and(REG1, &CT_STATUS_DNAT.to_ne_bytes()),
        cmp(libc::NFT_CMP_NEQ, REG1, &0u32.to_ne_bytes()),
    ]
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
        Proto::Sctp => libc::IPPROTO_SCTP as u8,
    }
}

// ---- sets and elements ----------------------------------------------------------

/// A named set or map, with raw control of key and data types.
struct RawSet {
    set: NonNull<sys::nftnl_set>,
}

impl RawSet {
    fn new(name: &CStr, id: u32, key_type: u32, key_len: u32, data: Option<(u32, u32)>) -> RawSet {
        // SAFETY: fresh allocation, attributes set by value before use.
        unsafe {
            let set = NonNull::new(sys::nftnl_set_alloc()).expect("nftnl_set_alloc: out of memory");
            let s = set.as_ptr();
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, libc::NFPROTO_INET as u32);
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, TABLE.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_TYPE as u16, key_type);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_LEN as u16, key_len);
            if let Some((dtype, dlen)) = data {
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FLAGS as u16, libc::NFT_SET_MAP as u32);
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_TYPE as u16, dtype);
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_LEN as u16, dlen);
            }
            RawSet { set }
        }
    }

    /// Tell `nft list` the key is in host byte order (strings), as nft
    /// itself records in the set's user data; the kernel ignores it.
    fn host_order_key(&mut self) {
        // TLV: NFTNL_UDATA_SET_KEYBYTEORDER (0), length 4, BYTEORDER_HOST_ENDIAN (1).
        let mut udata = vec![0u8, 4];
        udata.extend_from_slice(&1u32.to_ne_bytes());
        // SAFETY: nftnl copies the buffer.
        unsafe {
            sys::nftnl_set_set_data(
                self.set.as_ptr(),
                sys::NFTNL_SET_USERDATA as u16,
                udata.as_ptr() as *const c_void,
                udata.len() as u32,
            );
        }
    }

    /// A set object that only names an existing set, to carry elements.
    fn reference(name: &CStr) -> RawSet {
        // SAFETY: as above.
        unsafe {
            let set = NonNull::new(sys::nftnl_set_alloc()).expect("nftnl_set_alloc: out of memory");
            let s = set.as_ptr();
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, libc::NFPROTO_INET as u32);
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, TABLE.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            RawSet { set }
        }
    }

    fn add_elem(&mut self, key: &[u8], data: Option<&[u8]>) {
        // SAFETY: the element is handed over to the set, which frees it.
        unsafe {
            let el = sys::nftnl_set_elem_alloc();
            assert!(!el.is_null(), "nftnl_set_elem_alloc: out of memory");
            sys::nftnl_set_elem_set(
                el,
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr() as *const c_void,
                key.len() as u32,
            );
            if let Some(d) = data {
                sys::nftnl_set_elem_set(
                    el,
                    sys::NFTNL_SET_ELEM_DATA as u16,
                    d.as_ptr() as *const c_void,
                    d.len() as u32,
                );
            }
            sys::nftnl_set_elem_add(self.set.as_ptr(), el);
        }
    }
}

impl Drop for RawSet {
    fn drop(&mut self) {
        // SAFETY: we own the set and its elements.
        unsafe { sys::nftnl_set_free(self.set.as_ptr()) }
    }
}

/// The set itself (NEWSET).
struct SetMsg<'a>(&'a RawSet);
/// Its elements (NEWSETELEM without NLM_F_EXCL: adding an element that is
/// already there with the same data is not an error, so re-applying is safe).
struct ElemsMsg<'a>(&'a RawSet);

// SAFETY: both write a single message bounded by nft_nlmsg_maxsize(); element
// messages are chunked by the caller to stay far below it.
unsafe impl NlMsg for SetMsg<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _t: MsgType) {
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf as *mut c_char,
                libc::NFT_MSG_NEWSET as u16,
                libc::NFPROTO_INET as u16,
                (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(h, self.0.set.as_ptr());
        }
    }
}

unsafe impl NlMsg for ElemsMsg<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, t: MsgType) {
        let (ty, flags) = match t {
            MsgType::Add => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_ACK,
            ),
            MsgType::Del => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf as *mut c_char,
                ty as u16,
                libc::NFPROTO_INET as u16,
                flags as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(h, self.0.set.as_ptr());
        }
    }
}

/// Key and data of a port element, each concatenation member padded to 4 bytes.
fn port_elem_bytes(e: &PortElement) -> (Vec<u8>, Vec<u8>) {
    let mut key = Vec::with_capacity(12);
    if let Some(ip) = e.host_ip {
        key.extend_from_slice(&ip.octets());
    }
    key.extend_from_slice(&[proto_number(e.proto), 0, 0, 0]);
    key.extend_from_slice(&e.host_port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    let mut data = Vec::with_capacity(8);
    data.extend_from_slice(&e.addr.octets());
    data.extend_from_slice(&e.port.to_be_bytes());
    data.extend_from_slice(&[0, 0]);
    (key, data)
}

/// Element messages for `elems`, split so no message nears the 64 KiB limit.
fn element_sets(elems: &[PortElement]) -> Vec<RawSet> {
    const CHUNK: usize = 512;
    let mut out = Vec::new();
    for (name, want_addr) in [(MAP_ADDR, true), (MAP_ANY, false)] {
        let mine: Vec<&PortElement> = elems
            .iter()
            .filter(|e| e.host_ip.is_some() == want_addr)
            .collect();
        for chunk in mine.chunks(CHUNK) {
            let mut s = RawSet::reference(name);
            for e in chunk {
                let (k, d) = port_elem_bytes(e);
                s.add_elem(&k, Some(&d));
            }
            out.push(s);
        }
    }
    out
}

// ---- the whole table --------------------------------------------------------------

fn add_rule(batch: &mut Batch, chain: &Chain<'_>, exprs: Vec<Raw>) {
    let mut r = Rule::new(chain);
    for e in &exprs {
        r.add_expr(e);
    }
    batch.add(&r, MsgType::Add);
}

fn base_chain<'a>(
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
fn internal_rules(batch: &mut Batch, fwd: &Chain<'_>, n: &NetworkRules) {
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

fn network_rules(batch: &mut Batch, post: &Chain<'_>, fwd: &Chain<'_>, n: &NetworkRules) {
    let br = n.bridge.as_str();
    if n.masquerade {
        let mut e = ipv4_only();
        e.extend(saddr_in(n.subnet));
        e.extend(oif_is(br, libc::NFT_CMP_NEQ));
        e.push(counter());
        e.push(masquerade());
        add_rule(batch, post, e);
    }
    if !n.internal {
        // A container reaching a published port of its own network through
        // the host: without this, the reply would bypass the NAT.
        let mut e = ipv4_only();
        e.extend(saddr_in(n.subnet));
        e.extend(oif_is(br, libc::NFT_CMP_EQ));
        e.extend(ct_dnat());
        e.push(masquerade());
        add_rule(batch, post, e);
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

/// The batch that replaces the table with exactly `plan`, atomically:
/// add (so the delete cannot fail), delete, then build anew.
fn full_batch(plan: &FirewallPlan) -> FinalizedBatch {
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
    batch.add(&SetMsg(&bridges), MsgType::Add);
    if !plan.networks.is_empty() {
        batch.add(&ElemsMsg(&bridges), MsgType::Add);
    }
    batch.add(&SetMsg(&addr_map), MsgType::Add);
    batch.add(&SetMsg(&any_map), MsgType::Add);
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

/// The first non-zero error in a buffer of netlink messages, as a positive errno.
fn first_error(buf: &[u8]) -> Option<i32> {
    const NLMSG_ERROR: u16 = 2;
    let mut off = 0;
    while off + 20 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if ty == NLMSG_ERROR {
            let err =
                i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
            if err != 0 {
                return Some(-err);
            }
        }
        off += (len + 3) & !3;
    }
    None
}

/// The smallest send buffer a netlink socket has (net.core.wmem_default
/// is 212,992 on every kernel we run on; a smaller one only means an early
/// raise).
const DEFAULT_SNDBUF: usize = 64 * 1024;

/// A netfilter netlink socket in the calling thread's namespace.
pub struct Nft {
    sock: mnl::Socket,
    /// What the send buffer is known to hold (the kernel's default until
    /// a large batch raised it).
    sndbuf: std::cell::Cell<usize>,
}

impl Nft {
    pub fn open() -> Result<Nft> {
        let sock =
            mnl::Socket::new(mnl::Bus::Netfilter).context("open netfilter netlink socket")?;
        let nft = Nft {
            sock,
            sndbuf: std::cell::Cell::new(DEFAULT_SNDBUF),
        };
        let fd = nft.fd();
        // SAFETY: fcntl on the socket's own fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            bail!(
                "make netfilter socket non-blocking: {}",
                std::io::Error::last_os_error()
            );
        }
        // Errors without the failed request echoed back: a refused batch of
        // large element messages would otherwise overflow the receive buffer
        // and leave stale answers for the next batch.
        let one: libc::c_int = 1;
        // SAFETY: an int option on our own fd.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_NETLINK,
                libc::NETLINK_CAP_ACK,
                &one as *const _ as *const c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            bail!(
                "set NETLINK_CAP_ACK on the netfilter socket: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(nft)
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        // SAFETY: reads the fd of the socket we own.
        unsafe { mnl::mnl_sys::mnl_socket_get_fd(self.sock.as_raw_socket()) }
    }

    /// The netlink port id: notifications caused by this socket carry it.
    pub fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// Send a batch and collect its answers. The kernel processes a batch
    /// synchronously inside sendmsg, so every ack and error is queued on the
    /// socket when send returns: read until the queue is empty (a failed batch
    /// is not acked to the end, so counting acks would wait forever).
    fn send(&self, batch: &FinalizedBatch) -> Result<()> {
        self.send_whole(batch).context("send nftables batch")?;
        let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
        let mut first_err: Option<i32> = None;
        loop {
            match self.sock.recv_raw(&mut buf[..]) {
                Ok(n) => {
                    if let Some(e) = first_error(&buf[..n]) {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Answers were lost: the batch's outcome is unknown, so treat
                // it as failed, and keep draining so nothing stale is left.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    first_err.get_or_insert(libc::ENOBUFS);
                }
                Err(e) => return Err(e).context("receive nftables acks"),
            }
        }
        match first_err {
            Some(errno) => Err(anyhow!(std::io::Error::from_raw_os_error(errno))),
            None => Ok(()),
        }
    }

    /// Send the batch in one `sendmsg`. nftnl splits a batch into pages of
    /// 128 KiB (about 3,000 port elements); the kernel takes a batch from
    /// one message only, and a page sent on its own is a batch without its
    /// end, which it refuses with EINVAL. The message must also fit the
    /// socket's send buffer (212,992 bytes by default), so the buffer is
    /// raised to the batch's size first, as `nft` does for large rulesets.
    fn send_whole(&self, batch: &FinalizedBatch) -> std::io::Result<()> {
        let mut iov: Vec<libc::iovec> = batch
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut c_void,
                iov_len: b.len(),
            })
            .collect();
        let total: usize = iov.iter().map(|v| v.iov_len).sum();
        self.ensure_sndbuf(total)?;
        // The kernel's address: port 0.
        // SAFETY: zeroed sockaddr_nl is a valid "kernel" address.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msghdr points at `to` and `iov`, alive for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &mut to as *mut _ as *mut c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        loop {
            // SAFETY: see above; the buffers stay borrowed from `batch`.
            let n = unsafe { libc::sendmsg(self.fd(), &msg, 0) };
            if n >= 0 {
                if n as usize != total {
                    return Err(std::io::Error::other(format!(
                        "sent {n} of {total} bytes of a batch"
                    )));
                }
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Make the send buffer hold `len` bytes. Only ever grown, and only for
    /// a batch larger than the default: the hot path (a few elements) pays
    /// one comparison.
    fn ensure_sndbuf(&self, len: usize) -> std::io::Result<()> {
        // netlink refuses a message longer than sk_sndbuf - 32.
        let want = len + 4096;
        if want <= self.sndbuf.get() {
            return Ok(());
        }
        let v = libc::c_int::try_from(want).map_err(|_| {
            std::io::Error::other(format!("an nftables batch of {len} bytes is too large"))
        })?;
        // SAFETY: setsockopt with an int option on our own fd. FORCE needs
        // CAP_NET_ADMIN, which changing nftables needs anyway.
        let r = unsafe {
            libc::setsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                &v as *const _ as *const c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.sndbuf.set(want);
        Ok(())
    }

    /// Replace the table with exactly `plan`, atomically.
    pub fn apply(&self, plan: &FirewallPlan) -> Result<()> {
        self.send(&full_batch(plan))
            .context("apply table inet netd")
    }

    /// Add (`MsgType::Add`) or remove (`MsgType::Del`) port elements. Fails if
    /// the table is missing (or, for removal, an element is), so the caller
    /// can fall back to a full apply.
    pub fn elements(&self, elems: &[PortElement], op: MsgType) -> Result<()> {
        if elems.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        let sets = element_sets(elems);
        for s in &sets {
            batch.add(&ElemsMsg(s), op);
        }
        self.send(&batch.finalize())
            .context("update published ports")
    }

    /// Remove the table (nothing else). Gone already is fine.
    pub fn remove(&self) -> Result<()> {
        let mut batch = Batch::new();
        let table = Table::new(TABLE, ProtoFamily::Inet);
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        self.send(&batch.finalize())
            .context("remove table inet netd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_layout_pads_members_to_four_bytes() {
        let e = PortElement {
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
            proto: Proto::Udp,
            host_port: 8080,
            addr: Ipv4Addr::new(10, 0, 0, 2),
            port: 80,
        };
        let (k, d) = port_elem_bytes(&e);
        assert_eq!(k, vec![127, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(d, vec![10, 0, 0, 2, 0, 80, 0, 0]);
        let (k, _) = port_elem_bytes(&PortElement { host_ip: None, ..e });
        assert_eq!(k.len(), 8);
    }

    #[test]
    fn interface_names_are_nul_terminated() {
        assert_eq!(ifname_bytes("br0"), b"br0\0".to_vec());
        assert_eq!(ifname_key("br0").len(), 16);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// Runs in a private namespace: needs root, like every kernel test here.
    #[test]
    fn apply_add_and_remove_elements_in_a_private_namespace() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let nft = Nft::open().unwrap();
            let e = PortElement {
                host_ip: None,
                proto: Proto::Tcp,
                host_port: 8080,
                addr: Ipv4Addr::new(10, 0, 0, 2),
                port: 80,
            };
            let err = nft.elements(&[e], MsgType::Del).unwrap_err();
            assert!(format!("{err:#}").contains("No such file"), "{err:#}");
            nft.apply(&FirewallPlan {
                networks: vec![],
                ports: vec![e],
            })
            .unwrap();
            nft.elements(&[e], MsgType::Del).unwrap();
            assert!(
                nft.elements(&[e], MsgType::Del).is_err(),
                "deleting twice must fail"
            );
            nft.elements(&[e], MsgType::Add).unwrap();
            nft.elements(&[e], MsgType::Add)
                .expect("adding the same element again is not an error");
            let changed = PortElement { port: 81, ..e };
            assert!(
                nft.elements(&[changed], MsgType::Add).is_err(),
                "same key, other target"
            );
            nft.remove().unwrap();
        })
        .join()
        .unwrap();
    }

    /// A batch larger than one nftnl page (128 KiB, ~3,000 elements) goes
    /// out whole: a full apply and an element update of 20,000 ports.
    #[test]
    fn batches_of_any_size_in_a_private_namespace() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let nft = Nft::open().unwrap();
            let ports: Vec<PortElement> = (0..20_000u16)
                .map(|i| PortElement {
                    host_ip: (i % 2 == 0).then_some(Ipv4Addr::LOCALHOST),
                    proto: Proto::Tcp,
                    host_port: 10_000 + i,
                    addr: Ipv4Addr::new(10, 0, 0, 2),
                    port: 80,
                })
                .collect();
            nft.apply(&FirewallPlan {
                networks: vec![],
                ports: ports.clone(),
            })
            .unwrap();
            // Deleting succeeds only if every element is there.
            nft.elements(&ports, MsgType::Del).unwrap();
            nft.elements(&ports, MsgType::Add).unwrap();
            nft.elements(&ports, MsgType::Del).unwrap();
            assert!(nft.elements(&ports[..1], MsgType::Del).is_err());
            nft.remove().unwrap();
        })
        .join()
        .unwrap();
    }
}
