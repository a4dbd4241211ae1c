//! Links, addresses and routes over rtnetlink. Every function is idempotent:
//! applying what already exists changes nothing, deleting what is gone is
//! not an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressScope,
};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkInfo as NlLinkInfo};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use super::netns::in_netns;

const ENOENT: i32 = 2;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const EADDRNOTAVAIL: i32 = 99;

pub(super) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

pub(super) fn is_gone(e: &rtnetlink::Error) -> bool {
    matches!(errno(e), Some(ENOENT | ENODEV | ESRCH | EADDRNOTAVAIL))
}

pub(super) fn is_exists(e: &rtnetlink::Error) -> bool {
    errno(e) == Some(EEXIST)
}

/// A route netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    h: Handle,
    /// In the namespace this process runs in: its deletions are noted for
    /// the link watcher, which must not undo them.
    home: bool,
}

/// What a link looks like, as much as the adapters need.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub controller: Option<u32>,
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The link's kind ("bridge", "veth", "dummy"…); none for a plain device.
    pub kind: Option<String>,
}

fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: m.header.index,
        name: String::new(),
        controller: None,
        mtu: None,
        mac: None,
        up: m.header.flags.contains(LinkFlags::Up),
        kind: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Controller(c) => info.controller = Some(*c),
            LinkAttribute::Mtu(v) => info.mtu = Some(*v),
            LinkAttribute::Address(b) => info.mac = Some(b.clone()),
            LinkAttribute::LinkInfo(infos) => {
                info.kind = infos.iter().find_map(|i| match i {
                    NlLinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    info
}

/// A host-side veth is only a bridge port: it bridges IPv6 frames whether
/// or not it has IPv6 itself, so it never needs it. With IPv6 on it would get a
/// link-local address and routes, and the kernel walks the whole IPv6 route
/// table whenever a link goes down (`fib6_ifdown`): with a thousand
/// containers that walk, and the addrconf work holding the RTNL lock, made
/// every attach and detach slower. The sysctl is the namespace's of the
/// calling thread: the host's.
fn disable_ipv6(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        // A kernel without IPv6 has no such file, and nothing to turn off.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("disable IPv6 on {ifname}")),
    }
}

impl Netlink {
    /// A connection in the namespace this process runs in.
    /// Must be called inside a tokio runtime.
    pub fn current() -> Result<Netlink> {
        let (conn, h, _) = rtnetlink::new_connection().context("open rtnetlink socket")?;
        tokio::spawn(conn);
        Ok(Netlink { h, home: true })
    }

    /// A connection in the namespace at `path`: the socket is created by a
    /// thread that joined it, then driven by tokio from here.
    pub fn in_netns(path: &Path) -> Result<Netlink> {
        let sock: Socket = in_netns(path, || Ok(Socket::new(NETLINK_ROUTE)?))?;
        // SAFETY: the fd was just taken out of a live netlink socket we own.
        let ts = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, h, _) = rtnetlink::from_socket(ts);
        tokio::spawn(conn);
        Ok(Netlink { h, home: false })
    }

    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let mut s = self.h.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(m) => Ok(m.as_ref().map(link_info)),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("look up link {name}")),
        }
    }

    async fn index(&self, name: &str) -> Result<u32> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| anyhow!("link {name} not found"))
    }

    pub async fn links(&self) -> Result<Vec<LinkInfo>> {
        let s = self.h.link().get().execute();
        let msgs: Vec<LinkMessage> = s.try_collect().await.context("dump links")?;
        Ok(msgs.iter().map(link_info).collect())
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.h
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .context("set link up")
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.h
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .context("set link MAC")
    }

    /// The connection itself, for the adapters beside this one (VXLAN).
    pub(super) fn handle(&self) -> &Handle {
        &self.h
    }

    pub async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(l) = self.link(name).await? else {
            return Ok(());
        };
        if self.home {
            super::link_watch::expect_deletion(name);
        }
        match self.h.link().del(l.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("delete link {name}")),
        }
    }

    /// Take the link called `name` out of use without deleting it, if it is
    /// the one with `mac`: down (its routes go with it), then renamed to
    /// `retired` so that its name is free at once. Deleting a link blocks
    /// its caller for an RCU grace period (~20 ms here); a retired link can
    /// be deleted later by a process nobody waits for. False when there is
    /// no such link.
    pub async fn retire_link(&self, name: &str, mac: &[u8], retired: &str) -> Result<bool> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        if l.mac.as_deref() != Some(mac) {
            return Ok(false);
        }
        let set = |m| async move { self.h.link().set(m).execute().await };
        set(LinkUnspec::new_with_index(l.index).down().build())
            .await
            .with_context(|| format!("set {name} down"))?;
        set(LinkUnspec::new_with_index(l.index)
            .name(retired.to_string())
            .build())
        .await
        .with_context(|| format!("rename {name} to {retired}"))?;
        Ok(true)
    }

    /// Addresses (with prefix, both families) on a link.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let s = self
            .h
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let msgs: Vec<_> = s.try_collect().await.context("dump addresses")?;
        let mut out = Vec::new();
        for m in msgs {
            if m.header.index != index {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a
                    && let Ok(n) = IpNet::new(*ip, m.header.prefix_len)
                {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// Add an address; already there is fine. No dump first: in a host
    /// namespace with thousands of veths the dump would cost O(links).
    /// An IPv6 address skips duplicate address detection: netd's IPAM is
    /// what keeps addresses unique, and with DAD the address would stay
    /// tentative (unusable) for a second or more after attach.
    pub async fn ensure_address(&self, index: u32, addr: impl Into<IpNet>) -> Result<()> {
        self.add_address(index, addr.into(), AddressScope::Universe)
            .await
    }

    /// Add a link-local address (169.254.0.0/16, fe80::/10) with scope
    /// link, as the kernel gives its own: never a source for traffic that
    /// leaves the link. Already there is fine.
    pub async fn ensure_link_local_address(&self, index: u32, addr: IpNet) -> Result<()> {
        self.add_address(index, addr, AddressScope::Link).await
    }

    async fn add_address(&self, index: u32, addr: IpNet, scope: AddressScope) -> Result<()> {
        let mut req = self.h.address().add(index, addr.addr(), addr.prefix_len());
        req.message_mut().header.scope = scope;
        if addr.addr().is_ipv6() {
            let m = req.message_mut();
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_exists(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("add address {addr}")),
        }
    }

    /// Every route of one family, in every table.
    async fn routes(&self, v6: bool) -> Result<Vec<RouteMessage>> {
        let req = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        self.h
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .context("dump routes")
    }

    /// Route destinations of both families in every table, for picking a
    /// free subnet.
    pub async fn route_destinations(&self) -> Result<Vec<IpNet>> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            for m in self.routes(v6).await? {
                let len = m.header.destination_prefix_length;
                let dst = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                });
                let dst = dst.unwrap_or(if v6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                });
                if let Ok(n) = IpNet::new(dst, len) {
                    out.push(n.trunc());
                }
            }
        }
        Ok(out)
    }

    /// Whether a default IPv4 route via a gateway exists (in the main table).
    pub async fn has_default_route(&self) -> Result<bool> {
        Ok(self.default_gateway().await?.is_some())
    }

    /// The gateway of the default IPv4 route in the main table, if there is
    /// one (the CNI plugin reports and checks the route it made).
    pub async fn default_gateway(&self) -> Result<Option<Ipv4Addr>> {
        Ok(match self.default_gateway_of(false).await? {
            Some(IpAddr::V4(gw)) => Some(gw),
            _ => None,
        })
    }

    /// The gateway of the default IPv6 route in the main table.
    pub async fn default_gateway6(&self) -> Result<Option<Ipv6Addr>> {
        Ok(match self.default_gateway_of(true).await? {
            Some(IpAddr::V6(gw)) => Some(gw),
            _ => None,
        })
    }

    pub async fn default_gateway_of(&self, v6: bool) -> Result<Option<IpAddr>> {
        Ok(self
            .routes(v6)
            .await?
            .iter()
            .filter(|m| m.header.destination_prefix_length == 0 && m.header.table == 254)
            .find_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                })
            }))
    }

    /// Whether the main table has a default route of `gateway`'s family.
    pub async fn has_default_route_for(&self, gateway: IpAddr) -> Result<bool> {
        Ok(self.default_gateway_of(gateway.is_ipv6()).await?.is_some())
    }

    pub async fn add_default_route(&self, gateway: impl Into<IpAddr>) -> Result<()> {
        let gateway: IpAddr = gateway.into();
        match self.h.route().add(default_route(gateway)).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_exists(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("add default route via {gateway}")),
        }
    }

    /// Move the default route of `gateway`'s family to it, in one step:
    /// the sandbox is never without one.
    pub async fn replace_default_route(&self, gateway: IpAddr) -> Result<()> {
        self.h
            .route()
            .add(default_route(gateway))
            .replace()
            .execute()
            .await
            .with_context(|| format!("move the default route to {gateway}"))
    }

    /// A bridge with the gateways as its addresses, up: its index, and whether
    /// it had to be created. Re-applying fixes a missing address, a MAC
    /// that was changed or a link that was set down. Without `mac` the
    /// kernel picks the bridge's (and may change it as ports come and go).
    pub async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Option<Ipv4Net>,
        gateway6: Option<Ipv6Net>,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> Result<(u32, bool)> {
        let (index, up, created) = match self.link(name).await? {
            // Someone else's link under the bridge's name: adding the
            // gateway to it and enslaving veths to it would fail later, or
            // worse, work.
            Some(l) if l.kind.as_deref() != Some("bridge") => {
                return Err(super::KernelError::NotABridge {
                    name: name.to_string(),
                    kind: l.kind.unwrap_or_else(|| "device".into()),
                }
                .into());
            }
            Some(l) => {
                if let Some(m) = mac
                    && l.mac.as_deref() != Some(&m[..])
                {
                    self.set_mac(l.index, m)
                        .await
                        .with_context(|| format!("put back the MAC of bridge {name}"))?;
                }
                (l.index, l.up, false)
            }
            None => {
                let mut b = LinkBridge::new(name).up();
                if let Some(m) = mtu {
                    b = b.mtu(m);
                }
                // Given at creation, the kernel keeps it: a bridge takes
                // its ports' lowest MAC only while nobody set one.
                if let Some(m) = mac {
                    b = b.address(m.to_vec());
                }
                match self.h.link().add(b.build()).execute().await {
                    Ok(()) => {}
                    Err(e) if is_exists(&e) => {}
                    Err(e) => return Err(e).with_context(|| format!("create bridge {name}")),
                }
                (self.index(name).await?, false, true)
            }
        };
        if let Some(g4) = gateway {
            self.ensure_address(index, g4).await?;
        }
        if let Some(g6) = gateway6 {
            self.ensure_address(index, g6).await?;
        }
        if !up {
            self.set_up(index).await?;
        }
        Ok((index, created))
    }

    /// Create an endpoint's veth pair in one request: the host end enslaved
    /// to the bridge and up, the peer created directly inside the sandbox's
    /// namespace under its final name and MAC. Creating the peer in place
    /// instead of moving it saves a device re-registration (an RCU grace
    /// period, ~20 ms) per attach. Both names must be free.
    pub async fn create_veth_into(
        &self,
        v: &VethSpec<'_>,
        bridge_index: u32,
        netns: &Path,
    ) -> Result<()> {
        let ns = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(v.ifname.to_string())
            .address(v.mac.to_vec())
            .setns_by_fd(ns.as_raw_fd());
        // Created down: IPv6 goes off before it comes up (below).
        let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(v.host.to_string())
            .controller(bridge_index);
        if let Some(m) = v.mtu {
            peer = peer.mtu(m);
            host = host.mtu(m);
        }
        let req = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.h.link().add(req).execute().await.with_context(|| {
            format!(
                "create veth {} with {} in {}",
                v.host,
                v.ifname,
                netns.display()
            )
        })?;
        let host = self.index(v.host).await?;
        // With bridge netfilter on, a container reaching its own published
        // port is bridged back out of its ingress port: allowed only with hairpin.
        self.h
            .link()
            .set_port(LinkBridgePort::new(host).hairpin(true).build())
            .execute()
            .await
            .context("set hairpin")?;
        disable_ipv6(v.host)?;
        self.set_up(host).await
    }

    /// Make `index` a port of the bridge `bridge_index` again, with hairpin
    /// (lost with the port), and up.
    pub async fn enslave(&self, index: u32, bridge_index: u32) -> Result<()> {
        self.h
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .context("set the bridge of a veth")?;
        self.h
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .context("set hairpin")
    }

    /// The sandbox half: addresses (`link_local` ones with scope link),
    /// up, default route (unless there is one), and `lo` up.
    pub async fn configure_peer(
        &self,
        v: &VethSpec<'_>,
        addrs: &[IpNet],
        link_local: &[IpNet],
        gateways: &[IpAddr],
    ) -> Result<()> {
        self.ensure_lo_up().await?;
        let index = self.index(v.ifname).await?;
        for a in addrs {
            self.ensure_address(index, *a).await?;
        }
        for a in link_local {
            self.ensure_link_local_address(index, *a).await?;
        }
        self.set_up(index).await?;
        for gw in gateways {
            if !self.has_default_route_for(*gw).await? {
                self.add_default_route(*gw).await?;
            }
        }
        Ok(())
    }

    pub async fn ensure_lo_up(&self) -> Result<()> {
        // Every namespace's loopback has this index (LOOPBACK_IFINDEX).
        const LO: u32 = 1;
        self.set_up(LO).await
    }
}

/// The names and settings of one veth pair.
pub struct VethSpec<'a> {
    pub host: &'a str,
    pub ifname: &'a str,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
}

fn default_route(gateway: IpAddr) -> RouteMessage {
    match gateway {
        IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build(),
        IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).build(),
    }
}
