//! A recording fake of the kernel seams, for the operations' unit tests:
//! it keeps links, namespaces, the firewall table and sysctls as a model
//! of what the kernel would hold, logs every call, and can be told to fail
//! the Nth fallible call once (then it behaves again, so a rollback runs
//! against a kernel that works).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::hostport::HostPortError;
use super::netns::NsId;
use super::traits::*;
use crate::model::Resolver;
use crate::plan::firewall::{FirewallPlan, PortElement};
use crate::plan::overlay::{OverlayPeer, VxlanPlan};
use crate::plan::{BridgePlan, EndpointPlan};

/// A host link as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    pub kind: String,
    pub index: u32,
    /// The bridge a port is on, by name.
    pub controller: Option<String>,
    /// A veth's other end: its namespace and name there.
    pub peer: Option<(PathBuf, String)>,
}

/// Everything the fake kernel holds; two states compare equal when a
/// kernel would look the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    pub links: BTreeMap<String, FakeLink>,
    /// Interfaces inside namespaces: (namespace, name) → address.
    pub ifaces: BTreeMap<(PathBuf, String), Ipv4Net>,
    /// IPv6 addresses of interfaces inside namespaces.
    pub ifaces6: BTreeMap<(PathBuf, String), Ipv6Net>,
    /// Link-local addresses (Docker's LinkLocalIPs) of interfaces inside
    /// namespaces, besides the one above.
    pub link_local: BTreeMap<(PathBuf, String), Vec<IpNet>>,
    /// Sysctls of interfaces inside namespaces: path under /proc/sys to
    /// value. They go with their interface, as in the kernel.
    pub iface_sysctls: BTreeMap<(PathBuf, String), BTreeMap<String, String>>,
    /// Default routes per namespace and family: (gateway, via interface).
    pub default_routes: BTreeMap<PathBuf, (Ipv4Addr, String)>,
    pub default_routes6: BTreeMap<PathBuf, (IpAddr, String)>,
    pub namespaces: BTreeMap<PathBuf, NsId>,
    pub lo_up: BTreeSet<PathBuf>,
    pub resolv_confs: BTreeSet<String>,
    /// None until the first full apply, as a host before netd ran.
    pub table: Option<FirewallPlan>,
    pub sysctls: BTreeMap<String, String>,
    pub routes: Vec<IpNet>,
    /// VXLAN devices (also in `links`, kind "vxlan") by name.
    pub vxlans: BTreeMap<String, FakeVxlan>,
    /// The addresses on each bridge (the gateways netd put there).
    pub bridge_addrs: BTreeMap<String, BTreeSet<IpNet>>,
}

/// A VXLAN device's settings and the peers last synced to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVxlan {
    pub vni: u32,
    pub mtu: u32,
    pub peers: Vec<OverlayPeer>,
}

#[derive(Debug, Default)]
struct State {
    world: World,
    calls: Vec<String>,
    /// Fallible calls made so far.
    count: usize,
    /// Fail the call whose count is this, once.
    fail_at: Option<usize>,
    next_index: u32,
    next_ino: u64,
    /// Host ports a host socket holds, and addresses that are not the host's.
    held_ports: BTreeSet<u16>,
    foreign: BTreeSet<Ipv4Addr>,
}

/// The fake kernel. Namespaces are paths under a directory of the test's.
#[derive(Debug)]
pub struct FakeKernel {
    state: Mutex<State>,
    run_dir: PathBuf,
    home: NsId,
}

const HOME: NsId = NsId { dev: 4, ino: 1 };

impl FakeKernel {
    pub fn new(run_dir: &Path) -> FakeKernel {
        FakeKernel {
            state: Mutex::new(State {
                next_index: 10,
                next_ino: 100,
                ..Default::default()
            }),
            run_dir: run_dir.to_path_buf(),
            home: HOME,
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the kernel holds now.
    pub fn world(&self) -> World {
        self.st().world.clone()
    }

    /// A sandbox's IPv4 default route lost (deleted by hand).
    pub fn drop_default_route(&self, netns: &Path) {
        self.st().world.default_routes.remove(netns);
    }

    /// A bridge's addresses lost (flushed by hand).
    pub fn flush_bridge_addresses(&self, bridge: &str) {
        self.st().world.bridge_addrs.remove(bridge);
    }

    /// An IPv4 default route made by someone else (a runtime, a user).
    pub fn set_default_route(&self, netns: &Path, gateway: Ipv4Addr, via: &str) {
        self.st()
            .world
            .default_routes
            .insert(netns.to_path_buf(), (gateway, via.to_string()));
    }

    /// Every call so far, in order ("apply_bridge nd-…").
    pub fn calls(&self) -> Vec<String> {
        self.st().calls.clone()
    }

    /// How many fallible calls have been made.
    pub fn count(&self) -> usize {
        self.st().count
    }

    /// Fail the `n`th fallible call from now on (0: the next one), once.
    pub fn fail_after(&self, n: usize) {
        let mut s = self.st();
        s.fail_at = Some(s.count + n);
    }

    pub fn hold_port(&self, port: u16) {
        self.st().held_ports.insert(port);
    }

    pub fn make_foreign(&self, ip: Ipv4Addr) {
        self.st().foreign.insert(ip);
    }

    pub fn add_route(&self, net: impl Into<IpNet>) {
        self.st().world.routes.push(net.into());
    }

    /// A link made by someone else.
    pub fn add_foreign_link(&self, name: &str, kind: &str) {
        let mut s = self.st();
        let index = s.next_index;
        s.next_index += 1;
        s.world.links.insert(
            name.to_string(),
            FakeLink {
                kind: kind.to_string(),
                index,
                controller: None,
                peer: None,
            },
        );
    }

    /// A namespace made by someone else (an engine), for adopting.
    pub fn add_foreign_namespace(&self, path: &Path) -> NsId {
        let mut s = self.st();
        s.next_ino += 1;
        let id = NsId {
            dev: 4,
            ino: s.next_ino,
        };
        s.world.namespaces.insert(path.to_path_buf(), id);
        id
    }

    /// Delete a link behind netd's back, as `ip link del` would.
    pub fn delete_behind(&self, name: &str) {
        remove_link(&mut self.st().world, name);
    }

    /// Remove an interface's link-local addresses behind netd's back, as
    /// `ip addr del` would.
    pub fn drop_link_local_behind(&self, netns: &Path, ifname: &str) {
        self.st()
            .world
            .link_local
            .remove(&(netns.to_path_buf(), ifname.to_string()));
    }

    /// Set an interface's sysctl behind netd's back, as `sysctl -w` in the
    /// sandbox would (`key` as under /proc/sys).
    pub fn set_iface_sysctl_behind(&self, netns: &Path, ifname: &str, key: &str, value: &str) {
        self.st()
            .world
            .iface_sysctls
            .entry((netns.to_path_buf(), ifname.to_string()))
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// Remove every table, as `nft flush ruleset` would.
    pub fn flush_ruleset(&self) {
        self.st().world.table = None;
    }

    /// Delete a namespace behind netd's back, as `ip netns del` would.
    pub fn delete_namespace_behind(&self, path: &Path) {
        remove_namespace(&mut self.st().world, path);
    }

    /// Log the call and decide whether it fails.
    fn call(&self, what: String) -> KResult<MutexGuard<'_, State>> {
        let mut s = self.st();
        let n = s.count;
        s.count += 1;
        s.calls.push(what.clone());
        if s.fail_at == Some(n) {
            s.fail_at = None;
            return Err(KernelError::failed(format!("injected failure: {what}")));
        }
        Ok(s)
    }

    fn home_path(&self) -> PathBuf {
        self.run_dir.join("home")
    }
}

fn remove_link(w: &mut World, name: &str) {
    let Some(l) = w.links.remove(name) else {
        return;
    };
    w.bridge_addrs.remove(name);
    w.vxlans.remove(name);
    if let Some((ns, ifname)) = &l.peer {
        drop_iface(w, ns, ifname);
    }
    if l.kind == "bridge" {
        for port in w.links.values_mut() {
            if port.controller.as_deref() == Some(name) {
                port.controller = None;
            }
        }
        // The kernel drops a link's conf/ sysctls with it.
        let v4 = format!("net/ipv4/conf/{name}/");
        let v6 = format!("net/ipv6/conf/{name}/");
        w.sysctls
            .retain(|k, _| !k.starts_with(&v4) && !k.starts_with(&v6));
    }
}

fn drop_iface(w: &mut World, ns: &Path, ifname: &str) {
    w.ifaces.remove(&(ns.to_path_buf(), ifname.to_string()));
    w.ifaces6.remove(&(ns.to_path_buf(), ifname.to_string()));
    w.link_local.remove(&(ns.to_path_buf(), ifname.to_string()));
    w.iface_sysctls
        .remove(&(ns.to_path_buf(), ifname.to_string()));
    if w.default_routes
        .get(ns)
        .is_some_and(|(_, via)| via == ifname)
    {
        w.default_routes.remove(ns);
    }
    if w.default_routes6
        .get(ns)
        .is_some_and(|(_, via)| via == ifname)
    {
        w.default_routes6.remove(ns);
    }
}

fn remove_namespace(w: &mut World, path: &Path) {
    w.namespaces.remove(path);
    w.lo_up.remove(path);
    w.default_routes.remove(path);
    w.default_routes6.remove(path);
    w.ifaces.retain(|(ns, _), _| ns != path);
    w.ifaces6.retain(|(ns, _), _| ns != path);
    w.link_local.retain(|(ns, _), _| ns != path);
    // A veth dies with its peer's namespace.
    let gone: Vec<String> = w
        .links
        .iter()
        .filter(|(_, l)| l.peer.as_ref().is_some_and(|(ns, _)| ns == path))
        .map(|(n, _)| n.clone())
        .collect();
    for n in gone {
        w.links.remove(&n);
    }
}

impl LinkOps for FakeKernel {
    async fn host_link_kind(&self, name: &str) -> KResult<Option<String>> {
        let s = self.call(format!("host_link_kind {name}"))?;
        Ok(s.world.links.get(name).map(|l| l.kind.clone()))
    }

    async fn host_link_names(&self) -> KResult<Vec<String>> {
        let s = self.call("host_link_names".into())?;
        Ok(s.world.links.keys().cloned().collect())
    }

    async fn route_destinations(&self) -> KResult<Vec<IpNet>> {
        let s = self.call("route_destinations".into())?;
        Ok(s.world.routes.clone())
    }

    async fn delete_host_link(&self, name: &str) -> KResult<()> {
        let mut s = self.call(format!("delete_host_link {name}"))?;
        remove_link(&mut s.world, name);
        Ok(())
    }

    async fn apply_bridge(&self, plan: &BridgePlan) -> KResult<BridgeState> {
        let mut s = self.call(format!("apply_bridge {}", plan.name))?;
        // As the kernel adapter: the planned addresses are (re)added, and
        // nothing else is taken away.
        let addrs = plan
            .address
            .map(IpNet::from)
            .into_iter()
            .chain(plan.address6.map(IpNet::from));
        let is_bridge = s
            .world
            .links
            .get(&plan.name)
            .is_none_or(|l| l.kind == "bridge");
        if is_bridge {
            s.world
                .bridge_addrs
                .entry(plan.name.clone())
                .or_default()
                .extend(addrs);
        }
        if let Some(l) = s.world.links.get(&plan.name) {
            if l.kind != "bridge" {
                return Err(KernelError::NotABridge {
                    name: plan.name.clone(),
                    kind: l.kind.clone(),
                });
            }
            return Ok(BridgeState {
                index: l.index,
                created: false,
            });
        }
        let index = s.next_index;
        s.next_index += 1;
        s.world.links.insert(
            plan.name.clone(),
            FakeLink {
                kind: "bridge".into(),
                index,
                controller: None,
                peer: None,
            },
        );
        Ok(BridgeState {
            index,
            created: true,
        })
    }

    async fn apply_endpoint(&self, plan: &EndpointPlan, bridge: BridgeState) -> KResult<()> {
        let mut s = self.call(format!("apply_endpoint {}", plan.host_veth))?;
        let w = &mut s.world;
        if !w.namespaces.contains_key(&plan.netns) {
            return Err(KernelError::failed(format!(
                "no namespace at {}",
                plan.netns.display()
            )));
        }
        let Some((bname, _)) = w.links.iter().find(|(_, l)| l.index == bridge.index) else {
            return Err(KernelError::failed(format!("no bridge {}", bridge.index)));
        };
        let bname = bname.clone();
        let key = (plan.netns.clone(), plan.ifname.clone());
        let complete = w.links.contains_key(&plan.host_veth)
            && w.ifaces.get(&key).copied() == plan.address
            && w.ifaces6.get(&key).copied() == plan.address6
            && plan
                .link_local
                .iter()
                .all(|a| w.link_local.get(&key).is_some_and(|have| have.contains(a)))
            && (plan.gateway.is_none() || w.default_routes.contains_key(&plan.netns))
            && (plan.gateway6.is_none() || w.default_routes6.contains_key(&plan.netns));
        if complete {
            if let Some(l) = w.links.get_mut(&plan.host_veth) {
                l.controller = Some(bname);
            }
            // As the kernel adapter: the endpoint's own settings again.
            for (k, v) in &plan.sysctls {
                w.iface_sysctls
                    .entry(key.clone())
                    .or_default()
                    .insert(k.clone(), v.clone());
            }
            return Ok(());
        }
        remove_link(w, &plan.host_veth);
        drop_iface(w, &plan.netns, &plan.ifname);
        let index = s.next_index;
        s.next_index += 1;
        let w = &mut s.world;
        w.links.insert(
            plan.host_veth.clone(),
            FakeLink {
                kind: "veth".into(),
                index,
                controller: Some(bname),
                peer: Some(key.clone()),
            },
        );
        if let Some(a4) = plan.address {
            w.ifaces.insert(key.clone(), a4);
        }
        if let Some(a6) = plan.address6 {
            w.ifaces6.insert(key.clone(), a6);
        }
        if !plan.link_local.is_empty() {
            w.link_local.insert(key.clone(), plan.link_local.clone());
        }
        // As the kernel: the pair is made before a setting is written, and
        // a setting with no file under /proc/sys (here: a key starting
        // "no_such") fails the attach with the pair left behind.
        for (k, v) in &plan.sysctls {
            if k.rsplit('/')
                .next()
                .is_some_and(|k| k.starts_with("no_such"))
            {
                return Err(KernelError::failed(format!(
                    "no sysctl /proc/sys/{k} in {}",
                    plan.netns.display()
                )));
            }
            w.iface_sysctls
                .entry(key.clone())
                .or_default()
                .insert(k.clone(), v.clone());
        }
        w.lo_up.insert(plan.netns.clone());
        if let Some(gw) = plan.gateway {
            w.default_routes
                .entry(plan.netns.clone())
                .or_insert((gw, plan.ifname.clone()));
        }
        if let Some(gw) = plan.gateway6 {
            w.default_routes6
                .entry(plan.netns.clone())
                .or_insert((gw.into(), plan.ifname.clone()));
        }
        Ok(())
    }

    async fn reattach_port(&self, plan: &EndpointPlan) -> KResult<bool> {
        let mut s = self.call(format!("reattach_port {}", plan.host_veth))?;
        let w = &mut s.world;
        if !w.links.contains_key(&plan.bridge.name) {
            return Ok(false);
        }
        match w.links.get_mut(&plan.host_veth) {
            Some(l) if l.controller.as_deref() != Some(plan.bridge.name.as_str()) => {
                l.controller = Some(plan.bridge.name.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn retire_endpoint(&self, plan: &EndpointPlan) -> KResult<()> {
        let mut s = self.call(format!("retire_endpoint {}", plan.host_veth))?;
        let w = &mut s.world;
        let key = (plan.netns.clone(), plan.ifname.clone());
        let addr = w.ifaces.get(&key).copied();
        let addr6 = w.ifaces6.get(&key).copied();
        let link_local = w.link_local.get(&key).cloned();
        if addr.is_some() || addr6.is_some() {
            drop_iface(w, &plan.netns, &plan.ifname);
            // Down: the address stays on the retired link, the route goes.
            let retired = (plan.netns.clone(), plan.retired_ifname.clone());
            if let Some(ll) = link_local {
                w.link_local.insert(retired.clone(), ll);
            }
            if let Some(a6) = addr6 {
                w.ifaces6.insert(retired.clone(), a6);
            }
            if let Some(a4) = addr {
                w.ifaces.insert(retired, a4);
            }
            if let Some(l) = w.links.get_mut(&plan.host_veth) {
                l.peer = Some((plan.netns.clone(), plan.retired_ifname.clone()));
            }
        }
        Ok(())
    }

    async fn loopback_up(&self, netns: &Path) -> KResult<()> {
        let mut s = self.call(format!("loopback_up {}", netns.display()))?;
        if !s.world.namespaces.contains_key(netns) {
            return Err(KernelError::failed(format!(
                "no namespace at {}",
                netns.display()
            )));
        }
        s.world.lo_up.insert(netns.to_path_buf());
        Ok(())
    }

    async fn ensure_default_route(
        &self,
        netns: &Path,
        gateway: IpAddr,
        ours: &[IpAddr],
    ) -> KResult<bool> {
        let mut s = self.call(format!(
            "ensure_default_route {} {gateway}",
            netns.display()
        ))?;
        let w = &mut s.world;
        let now = match gateway {
            IpAddr::V4(_) => w.default_routes.get(netns).map(|(g, _)| IpAddr::V4(*g)),
            IpAddr::V6(_) => w.default_routes6.get(netns).map(|(g, _)| *g),
        };
        if now.is_some_and(|now| now == gateway || !ours.contains(&now)) {
            return Ok(false);
        }
        let via = match gateway {
            IpAddr::V4(gw) => w
                .ifaces
                .iter()
                .find(|((ns, _), a)| ns == netns && a.contains(&gw))
                .map(|((_, via), _)| via.clone()),
            IpAddr::V6(gw) => w
                .ifaces6
                .iter()
                .find(|((ns, _), a)| ns == netns && a.contains(&gw))
                .map(|((_, via), _)| via.clone()),
        };
        let Some(via) = via else {
            return Err(KernelError::failed(format!("no route to {gateway}")));
        };
        if let IpAddr::V4(gw) = gateway {
            w.default_routes.insert(netns.to_path_buf(), (gw, via));
        } else {
            w.default_routes6
                .insert(netns.to_path_buf(), (gateway, via));
        }
        Ok(true)
    }
}

impl NamespaceOps for FakeKernel {
    fn ns_id(&self, path: &Path) -> Option<NsId> {
        if path == self.home_path() {
            return Some(self.home);
        }
        self.st().world.namespaces.get(path).copied()
    }

    fn file_id(&self, path: &Path) -> Option<NsId> {
        self.ns_id(path)
    }

    fn is_netns(&self, path: &Path) -> bool {
        self.ns_id(path).is_some()
    }

    fn home_ns(&self) -> Option<NsId> {
        Some(self.home)
    }

    fn named_path(&self, name: &str) -> PathBuf {
        self.run_dir.join("netns").join(name)
    }

    fn named_exists(&self, name: &str) -> bool {
        let path = self.named_path(name);
        self.st().world.namespaces.contains_key(&path)
    }

    fn create_named(&self, name: &str) -> KResult<PathBuf> {
        let path = self.named_path(name);
        let mut s = self.call(format!("create_named {name}"))?;
        if s.world.namespaces.contains_key(&path) {
            return Err(KernelError::NamespaceExists {
                path: path.display().to_string(),
            });
        }
        s.next_ino += 1;
        let id = NsId {
            dev: 4,
            ino: s.next_ino,
        };
        s.world.namespaces.insert(path.clone(), id);
        Ok(path)
    }

    fn delete_named(&self, path: &Path) -> KResult<()> {
        let mut s = self.call(format!("delete_named {}", path.display()))?;
        remove_namespace(&mut s.world, path);
        Ok(())
    }

    fn write_resolv_conf(&self, name: &str, _dns: &Resolver) -> KResult<()> {
        let mut s = self.call(format!("write_resolv_conf {name}"))?;
        s.world.resolv_confs.insert(name.to_string());
        Ok(())
    }

    fn remove_etc(&self, name: &str) {
        let mut s = self.st();
        s.calls.push(format!("remove_etc {name}"));
        s.world.resolv_confs.remove(name);
    }
}

impl FirewallOps for FakeKernel {
    async fn apply_firewall(&self, plan: FirewallPlan) -> KResult<()> {
        let mut s = self.call("apply_firewall".into())?;
        s.world.table = Some(plan);
        Ok(())
    }

    async fn add_ports(&self, elems: Vec<PortElement>) -> KResult<()> {
        let mut s = self.call(format!("add_ports {}", elems.len()))?;
        let Some(t) = &mut s.world.table else {
            return Err(KernelError::failed("no table inet netd"));
        };
        // One batch: an element already there fails it whole, as nft does.
        if elems.iter().any(|e| t.ports.contains(e)) {
            return Err(KernelError::failed("element exists"));
        }
        t.ports.extend(elems);
        t.ports.sort();
        Ok(())
    }

    async fn del_ports(&self, elems: Vec<PortElement>) -> KResult<()> {
        let mut s = self.call(format!("del_ports {}", elems.len()))?;
        let Some(t) = &mut s.world.table else {
            return Err(KernelError::failed("no table inet netd"));
        };
        if elems.iter().any(|e| !t.ports.contains(e)) {
            return Err(KernelError::failed("no such element"));
        }
        t.ports.retain(|p| !elems.contains(p));
        Ok(())
    }

    fn check_host_ports(&self, elems: &[PortElement]) -> Result<(), HostPortError> {
        let s = self.st();
        for e in elems {
            if let Some(std::net::IpAddr::V4(ip)) = e.host_ip
                && s.foreign.contains(&ip)
            {
                return Err(HostPortError::NotLocal(ip.into()));
            }
            if s.held_ports.contains(&e.host_port) {
                return Err(HostPortError::InUse {
                    addr: e.host_ip,
                    port: e.host_port,
                    proto: e.proto,
                });
            }
        }
        Ok(())
    }
}

impl SysctlOps for FakeKernel {
    fn ensure_sysctl(&self, key: &str, value: &str) -> KResult<()> {
        let mut s = self.call(format!("ensure_sysctl {key}={value}"))?;
        s.world.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl OverlayOps for FakeKernel {
    async fn apply_vxlan(&self, plan: &VxlanPlan, bridge: BridgeState) -> KResult<()> {
        let mut s = self.call(format!("apply_vxlan {} vni {}", plan.name, plan.vni))?;
        let Some(bname) = s
            .world
            .links
            .iter()
            .find(|(_, l)| l.index == bridge.index && l.kind == "bridge")
            .map(|(n, _)| n.clone())
        else {
            return Err(KernelError::failed(format!("no bridge {}", bridge.index)));
        };
        match s.world.links.get(&plan.name) {
            Some(l) if l.kind != "vxlan" => {
                return Err(KernelError::NotAVxlan {
                    name: plan.name.clone(),
                    kind: l.kind.clone(),
                });
            }
            // As the kernel: settings fixed at creation make it again.
            Some(_) if s.world.vxlans.get(&plan.name).map(|v| v.vni) != Some(plan.vni) => {
                remove_link(&mut s.world, &plan.name);
            }
            _ => {}
        }
        if let Some(l) = s.world.links.get_mut(&plan.name) {
            l.controller = Some(bname);
            if let Some(v) = s.world.vxlans.get_mut(&plan.name) {
                v.mtu = plan.mtu;
            }
            return Ok(());
        }
        let index = s.next_index;
        s.next_index += 1;
        s.world.links.insert(
            plan.name.clone(),
            FakeLink {
                kind: "vxlan".into(),
                index,
                controller: Some(bname),
                peer: None,
            },
        );
        s.world.vxlans.insert(
            plan.name.clone(),
            FakeVxlan {
                vni: plan.vni,
                mtu: plan.mtu,
                peers: Vec::new(),
            },
        );
        Ok(())
    }

    async fn sync_peers(&self, vxlan: &str, peers: &[OverlayPeer]) -> KResult<()> {
        let mut s = self.call(format!("sync_peers {vxlan} {}", peers.len()))?;
        let Some(v) = s.world.vxlans.get_mut(vxlan) else {
            return Err(KernelError::failed(format!(
                "VXLAN device {vxlan} not found"
            )));
        };
        let mut peers = peers.to_vec();
        peers.sort();
        v.peers = peers;
        Ok(())
    }
}

pub mod firewalld;
mod tests;
