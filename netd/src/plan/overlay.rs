//! What an overlay network needs in the kernel beyond a bridge: its VXLAN
//! device, and the forwarding and neighbour entries that send each remote
//! endpoint's frames to its host.

use std::net::{IpAddr, Ipv4Addr};

use crate::cluster::ClusterEndpoint;
use crate::model::{BridgeConfig, Mac, Network};

/// The VXLAN header and its outer UDP, IP and Ethernet headers.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The IANA port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// An overlay network's MTU when none is given: a 1500-byte underlay less
/// the VXLAN encapsulation.
pub const DEFAULT_OVERLAY_MTU: u32 = 1500 - VXLAN_OVERHEAD;
/// The prefix of netd's VXLAN devices (followed by the network id's start).
pub const VXLAN_PREFIX: &str = "netdvx-";

/// The anycast gateway's MAC: from the gateway address, so every host
/// derives the same one and no endpoint can have it.
pub fn gateway_mac(b: &BridgeConfig) -> Mac {
    match (&b.ipv4, &b.ipv6) {
        (Some(v4), _) => Mac::for_ip(v4.gateway),
        (None, Some(v6)) => Mac::for_addr(IpAddr::V6(v6.gateway)),
        (None, None) => Mac([0x02, 0x42, 0, 0, 0, 1]),
    }
}

/// A network's VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPlan {
    pub name: String,
    pub vni: u32,
    /// The bridge it is a port of.
    pub bridge: String,
    pub mtu: u32,
}

/// A remote endpoint as the VXLAN device needs it: its MAC is reached
/// through `vtep`, and its addresses answer with its MAC (ARP and
/// neighbour discovery are answered locally, never flooded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OverlayPeer {
    pub mac: Mac,
    pub vtep: Ipv4Addr,
    pub addrs: Vec<IpAddr>,
}

pub fn vxlan(net: &Network) -> Option<VxlanPlan> {
    let o = net.overlay()?;
    Some(VxlanPlan {
        name: format!("{VXLAN_PREFIX}{}", &net.id.as_str()[..8]),
        vni: o.vni.get(),
        bridge: o.bridge.bridge.to_string(),
        mtu: o.bridge.mtu.unwrap_or(DEFAULT_OVERLAY_MTU),
    })
}

/// The peers of `net` on this host: every endpoint of the network on
/// another host, sorted.
pub fn peers(net: &Network, me: &str, endpoints: &[ClusterEndpoint]) -> Vec<OverlayPeer> {
    let mut out: Vec<OverlayPeer> = endpoints
        .iter()
        .filter(|e| e.network == net.id && e.host != me)
        .map(|e| OverlayPeer {
            mac: e.mac,
            vtep: e.vtep,
            addrs: e
                .ip
                .map(IpAddr::V4)
                .into_iter()
                .chain(e.ip6.map(IpAddr::V6))
                .collect(),
        })
        .collect();
    out.sort();
    out
}
