//! An overlay network's VXLAN device, and the entries that send each
//! remote endpoint's frames to its host, over rtnetlink.
//!
//! The device has no local or group address and learns nothing: a frame
//! leaves only for a MAC with a forwarding entry (`MAC -> VTEP`, self,
//! permanent), to that entry's VTEP by the host's routes; with no all-zero
//! entry nothing is flooded to other hosts. ARP requests and neighbour
//! solicitations that reach it from the bridge are answered by the device
//! itself (`proxy`) from its neighbour table, where each remote address
//! has a permanent entry. Everything netd puts there is permanent, so
//! permanent is what a sync removes when it is not wanted any more.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{
    InfoData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::{LinkUnspec, LinkVxlan};

use super::KernelError;
use super::link::{Netlink, is_exists, is_gone};
use crate::model::Mac;
use crate::plan::overlay::{OverlayPeer, VXLAN_PORT, VxlanPlan};

/// How one pass of `ensure_vxlan` ended.
enum Made {
    Done,
    /// The device appeared between the look and the create.
    Raced,
}

/// A VXLAN device as far as netd checks it.
#[derive(Debug)]
struct Device {
    index: u32,
    controller: Option<u32>,
    up: bool,
    mtu: Option<u32>,
    vni: Option<u32>,
    port: Option<u16>,
    learning: Option<bool>,
    proxy: Option<bool>,
}

impl Device {
    /// What cannot be changed on a live device: a device that differs in
    /// it is made again.
    fn matches(&self, plan: &VxlanPlan) -> bool {
        self.vni == Some(plan.vni)
            && self.port == Some(VXLAN_PORT)
            && self.learning == Some(false)
            && self.proxy == Some(true)
    }
}

enum Found {
    Missing,
    Vxlan(Device),
    /// Another kind of link ("device" for none).
    Other(String),
}

fn parse(m: &LinkMessage) -> Found {
    let mut d = Device {
        index: m.header.index,
        controller: None,
        up: m.header.flags.contains(LinkFlags::Up),
        mtu: None,
        vni: None,
        port: None,
        learning: None,
        proxy: None,
    };
    let mut kind = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::Controller(c) => d.controller = Some(*c),
            LinkAttribute::Mtu(v) => d.mtu = Some(*v),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        NlLinkInfo::Kind(k) => kind = Some(k.to_string()),
                        NlLinkInfo::Data(InfoData::Vxlan(v)) => {
                            for x in v {
                                match x {
                                    InfoVxlan::Id(n) => d.vni = Some(*n),
                                    InfoVxlan::Port(p) => d.port = Some(*p),
                                    InfoVxlan::Learning(b) => d.learning = Some(*b),
                                    InfoVxlan::Proxy(b) => d.proxy = Some(*b),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match kind {
        Some(k) if k == "vxlan" => Found::Vxlan(d),
        k => Found::Other(k.unwrap_or_else(|| "device".into())),
    }
}

/// A forwarding entry of the device: a MAC and the VTEP it is behind
/// (none when someone added one without).
type Fdb = ([u8; 6], Option<IpAddr>);

fn mac_of(m: &NeighbourMessage) -> Option<[u8; 6]> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
        _ => None,
    })
}

fn dst_of(m: &NeighbourMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    })
}

fn ip_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

impl Netlink {
    async fn vxlan(&self, name: &str) -> Result<Found> {
        let mut s = self
            .handle()
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(parse(&m)),
            Ok(None) => Ok(Found::Missing),
            Err(e) if is_gone(&e) => Ok(Found::Missing),
            Err(e) => Err(e).with_context(|| format!("look up link {name}")),
        }
    }

    /// Make the VXLAN device of `plan` exist on the bridge `bridge_index`,
    /// up. Idempotent; a device of that name with another VNI or port is
    /// made again, a link of that name of another kind refused.
    pub async fn ensure_vxlan(&self, plan: &VxlanPlan, bridge_index: u32) -> Result<()> {
        match self.try_ensure_vxlan(plan, bridge_index).await? {
            Made::Done => Ok(()),
            // Made by another caller at the same moment (the daemon's
            // cluster loop making a network that a create here is making):
            // a second look finds it, and puts it on the bridge if need be.
            Made::Raced => match self.try_ensure_vxlan(plan, bridge_index).await? {
                Made::Done => Ok(()),
                Made::Raced => Err(anyhow!(
                    "VXLAN device {}: made and deleted by someone else meanwhile",
                    plan.name
                )),
            },
        }
    }

    async fn try_ensure_vxlan(&self, plan: &VxlanPlan, bridge_index: u32) -> Result<Made> {
        let name = &plan.name;
        match self.vxlan(name).await? {
            Found::Other(kind) => {
                return Err(KernelError::NotAVxlan {
                    name: name.clone(),
                    kind,
                }
                .into());
            }
            Found::Vxlan(d) if d.matches(plan) => {
                // A bridge deleted and made again has lost its ports.
                if d.controller != Some(bridge_index) || !d.up || d.mtu != Some(plan.mtu) {
                    self.handle()
                        .link()
                        .set(
                            LinkUnspec::new_with_index(d.index)
                                .controller(bridge_index)
                                .mtu(plan.mtu)
                                .up()
                                .build(),
                        )
                        .execute()
                        .await
                        .with_context(|| format!("put {name} back on its bridge"))?;
                }
                return Ok(Made::Done);
            }
            // Its name is netd's (the network id's): an earlier device of
            // the same network, made with settings it no longer has.
            Found::Vxlan(_) => self.delete_link(name).await?,
            Found::Missing => {}
        }
        let req = LinkVxlan::new(name, plan.vni)
            .port(VXLAN_PORT)
            .learning(false)
            .proxy(true)
            .mtu(plan.mtu)
            .controller(bridge_index)
            .up()
            .build();
        match self.handle().link().add(req).execute().await {
            Ok(()) => Ok(Made::Done),
            Err(e) if is_exists(&e) => Ok(Made::Raced),
            Err(e) => Err(e).with_context(|| format!("create VXLAN device {name}")),
        }
    }

    /// Make the device's permanent forwarding and neighbour entries exactly
    /// those of `peers`. A MAC listed by two peers goes to the first's VTEP,
    /// an address listed twice to the first's MAC.
    pub async fn sync_vxlan_peers(&self, name: &str, peers: &[OverlayPeer]) -> Result<()> {
        let index = match self.vxlan(name).await? {
            Found::Vxlan(d) => d.index,
            Found::Missing => return Err(anyhow!("VXLAN device {name} not found")),
            Found::Other(kind) => {
                return Err(KernelError::NotAVxlan {
                    name: name.to_string(),
                    kind,
                }
                .into());
            }
        };
        let mut fdb: BTreeMap<[u8; 6], Ipv4Addr> = BTreeMap::new();
        let mut neigh: BTreeMap<IpAddr, [u8; 6]> = BTreeMap::new();
        for p in peers {
            fdb.entry(p.mac.0).or_insert(p.vtep);
            for a in &p.addrs {
                neigh.entry(*a).or_insert(p.mac.0);
            }
        }
        let want_fdb: BTreeSet<Fdb> = fdb
            .iter()
            .map(|(m, v)| (*m, Some(IpAddr::V4(*v))))
            .collect();
        let have_fdb = self.fdb(index).await?;
        for e in have_fdb.difference(&want_fdb) {
            self.del_fdb(index, *e).await?;
        }
        for e in want_fdb.difference(&have_fdb) {
            self.add_fdb(index, *e).await?;
        }
        let have_neigh = self.neighbours(index).await?;
        for ip in have_neigh.keys().filter(|ip| !neigh.contains_key(ip)) {
            self.del_neighbour(index, *ip).await?;
        }
        for (ip, mac) in &neigh {
            if have_neigh.get(ip) != Some(mac) {
                self.handle()
                    .neighbours()
                    .add(index, *ip)
                    .link_layer_address(mac)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
                    .with_context(|| format!("add neighbour {ip} on {name}"))?;
            }
        }
        Ok(())
    }

    /// The device's own permanent forwarding entries. The dump is of every
    /// bridge port's and device's entries (a filter by device needs
    /// strict netlink checking): fine for a sync per change of peers.
    async fn fdb(&self, index: u32) -> Result<BTreeSet<Fdb>> {
        let msgs: Vec<NeighbourMessage> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .context("dump forwarding entries")?;
        Ok(msgs
            .iter()
            .filter(|m| {
                m.header.ifindex == index
                    && m.header.flags.contains(NeighbourFlags::Own)
                    && m.header.state == NeighbourState::Permanent
            })
            .filter_map(|m| Some((mac_of(m)?, dst_of(m))))
            .collect())
    }

    /// The device's permanent neighbour entries, both families.
    async fn neighbours(&self, index: u32) -> Result<BTreeMap<IpAddr, [u8; 6]>> {
        let mut req = self.handle().neighbours().get();
        // Filtered by the kernel, strict checking or not.
        req.message_mut()
            .attributes
            .push(NeighbourAttribute::IfIndex(index));
        let msgs: Vec<NeighbourMessage> = req
            .execute()
            .try_collect()
            .await
            .context("dump neighbours")?;
        Ok(msgs
            .iter()
            .filter(|m| {
                m.header.ifindex == index
                    && matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6)
                    && m.header.state == NeighbourState::Permanent
            })
            .filter_map(|m| Some((dst_of(m)?, mac_of(m)?)))
            .collect())
    }

    async fn add_fdb(&self, index: u32, (mac, dst): Fdb) -> Result<()> {
        let mut req = self
            .handle()
            .neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent);
        if let Some(d) = dst {
            req = req.destination(d);
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_exists(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("add forwarding entry {}", Mac(mac))),
        }
    }

    async fn del_fdb(&self, index: u32, (mac, dst): Fdb) -> Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = index;
        m.header.flags = NeighbourFlags::Own;
        m.header.state = NeighbourState::Permanent;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        if let Some(d) = dst {
            m.attributes
                .push(NeighbourAttribute::Destination(ip_address(d)));
        }
        match self.handle().neighbours().del(m).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("delete forwarding entry {}", Mac(mac))),
        }
    }

    async fn del_neighbour(&self, index: u32, ip: IpAddr) -> Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = index;
        m.attributes
            .push(NeighbourAttribute::Destination(ip_address(ip)));
        match self.handle().neighbours().del(m).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("delete neighbour {ip}")),
        }
    }
}
