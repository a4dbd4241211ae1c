//! netd's nftables table, `inet netd`, programmed over netlink with nftnl.
//!
//! ```text
//! table inet netd {
//!   set bridges   { type ifname }                         # every netd bridge
//!   map pub_addr  { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//!   map pub_any   { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   map pub_addr6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//!   map pub_any6  { type inet_proto . inet_service : ipv6_addr . inet_service }
//!   set direct4   { type ipv4_addr . inet_proto . inet_service }  # routed: container ports
//!   set direct6   { type ipv6_addr . inet_proto . inet_service }  #   reached directly
//!   set trusted4  { type ipv4_addr . inet_proto . inet_service }  # published container ports
//!   set trusted6  { type ipv6_addr . inet_proto . inet_service }  #   of networks with trusted ifaces
//!   chain publish {                                        # DNAT of published ports, to the host only
//!     meta nfproto ipv4 fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @pub_addr
//!     meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @pub_any
//!     meta nfproto ipv6 fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub_addr6
//!     meta nfproto ipv6 ip6 daddr != ::1 fib daddr type local dnat ip6 to meta l4proto . th dport map @pub_any6
//!   }
//!   chain localnet { type filter hook prerouting priority raw
//!     ip daddr 127.0.0.0/8 iifname @bridges drop           # no host loopback from sandboxes
//!     ip6 daddr ::1 iifname @bridges drop
//!   }
//!   chain prerouting  { type nat hook prerouting priority dstnat; jump publish }
//!   chain output      { type nat hook output priority -100; jump publish }
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     ip saddr SUBNET oifname != BRIDGE masquerade        # per network, unless routed/off/internal
//!     ip saddr SUBNET oifname BRIDGE ct status dnat masquerade   # hairpin to a published port
//!     ip6 saddr SUBNET6 oifname != BRIDGE masquerade      # NAT66, unless routed/off/internal
//!     ip6 saddr SUBNET6 oifname BRIDGE ct status dnat masquerade # hairpin over IPv6
//!     ip saddr 127.0.0.0/8 ct status dnat masquerade       # localhost publishing
//!   }
//!   chain forward { type filter hook forward priority filter
//!     iifname BRIDGE oifname != BRIDGE drop                # internal networks, both ways,
//!     oifname BRIDGE iifname != BRIDGE drop                #   even to published ports
//!     ct status dnat accept                                # published ports cross networks
//!     iifname BRIDGE oifname @bridges oifname != BRIDGE drop   # isolation between networks
//!     iifname BRIDGE oifname BRIDGE drop                   # enable_icc=false
//!     oifname BRIDGE iifname != @bridges meta l4proto icmp accept          # routed IPv4:
//!     oifname BRIDGE iifname != @bridges ip daddr . meta l4proto . th dport @direct4 accept
//!     oifname BRIDGE iifname != @bridges meta l4proto ipv6-icmp accept      # routed IPv6:
//!     oifname BRIDGE iifname != @bridges ip6 daddr . meta l4proto . th dport @direct6 accept
//!     oifname BRIDGE iifname TRUSTED ip daddr . meta l4proto . th dport @trusted4 accept   # per
//!     oifname BRIDGE iifname TRUSTED ip6 daddr . meta l4proto . th dport @trusted6 accept  # iface
//!     oifname BRIDGE iifname != BRIDGE ct state new drop   # only published ports from outside
//!   }
//! }
//! ```
//!
//! The forward rules name interfaces only, so isolation, internal networks
//! and ICC hold for both families with the same rules.
//!
//! Outside the table, only with a network's `netd.forward_accept`: two
//! rules per bridge appended to other tables' forward chains
//! (`iifname BRIDGE counter accept comment "netd BRIDGE in"`, and `oifname`
//! ... `out`), kept in line with the plan by [`forward`].
//!
//! Rules exist per network; containers and ports are map elements. A full
//! apply replaces the whole table in one atomic batch; attaching and
//! detaching add or remove elements only.
//!
//! nftnl's types hold raw pointers, so everything here runs on the calling
//! (blocking) thread; the socket is created in the namespace of that thread.

mod batch;
mod expr;
mod forward;
mod maps;
mod rules;
mod socket;

use std::ffi::CStr;

use nftnl::nftnl_sys::libc;

pub use forward::ForwardReport;
pub use socket::Nft;

pub const TABLE: &CStr = c"netd";
const SET_BRIDGES: &CStr = c"bridges";
const MAP_ADDR: &CStr = c"pub_addr";
const MAP_ANY: &CStr = c"pub_any";
const MAP_ADDR6: &CStr = c"pub_addr6";
const MAP_ANY6: &CStr = c"pub_any6";
const SET_DIRECT4: &CStr = c"direct4";
const SET_DIRECT6: &CStr = c"direct6";
const SET_TRUSTED4: &CStr = c"trusted4";
const SET_TRUSTED6: &CStr = c"trusted6";

// Registers: the 16-byte NFT_REG_1 overlaps the 4-byte NFT_REG32_00..03.
const REG1: u32 = libc::NFT_REG_1 as u32;
const R32_0: u32 = libc::NFT_REG32_00 as u32;
const R32_1: u32 = libc::NFT_REG32_01 as u32;
const R32_2: u32 = libc::NFT_REG32_02 as u32;
const R32_4: u32 = libc::NFT_REG32_04 as u32;
const R32_5: u32 = libc::NFT_REG32_05 as u32;
const VERDICT_REG: u32 = libc::NFT_REG_VERDICT as u32;
