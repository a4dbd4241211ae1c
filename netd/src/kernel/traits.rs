//! What the operations need from the kernel, as traits: links, addresses
//! and routes; namespaces; the firewall; sysctls. [`super::Host`] is the
//! real kernel (rtnetlink, nftnl, bind mounts, /proc/sys); a recording fake
//! (`super::fake`) stands in for it in the operations' unit tests.
//!
//! Plans go in (`crate::plan`), so an implementation decides how, never
//! what. Every method is idempotent, as the reconciler applies any plan
//! again. The futures are `Send` so the daemon can run operations on any
//! worker; `Netd` is generic over [`Kernel`], so the real kernel's calls
//! are direct, not through a vtable.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use super::error::{KResult, KernelError};
use super::hostport::HostPortError;
use super::netns::NsId;
use crate::model::Resolver;
use crate::plan::firewall::{FirewallPlan, PortElement};
use crate::plan::overlay::{OverlayPeer, VxlanPlan};
use crate::plan::{BridgePlan, EndpointPlan};

/// A bridge as it is once applied: its index (for enslaving ports to it
/// without another lookup) and whether it had to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeState {
    pub index: u32,
    pub created: bool,
}

/// Links, addresses and routes: the host namespace's, and through an
/// endpoint plan's namespace path, a sandbox's.
pub trait LinkOps: Send + Sync {
    /// The kind of the host link `name` ("bridge", "veth", "dummy"…;
    /// "device" when it has none), if it exists.
    fn host_link_kind(&self, name: &str) -> impl Future<Output = KResult<Option<String>>> + Send;
    /// The names of every link in the host namespace.
    fn host_link_names(&self) -> impl Future<Output = KResult<Vec<String>>> + Send;
    /// The destinations of the host's routes (subnets to stay clear of).
    fn route_destinations(&self) -> impl Future<Output = KResult<Vec<IpNet>>> + Send;
    /// Delete a host link; gone already is fine.
    fn delete_host_link(&self, name: &str) -> impl Future<Output = KResult<()>> + Send;
    /// Make a bridge exist, addressed and up. A link of that name that is
    /// not a bridge is [`KernelError::NotABridge`].
    fn apply_bridge(&self, plan: &BridgePlan) -> impl Future<Output = KResult<BridgeState>> + Send;
    /// Make an endpoint's veth pair exist on `bridge`, the sandbox side
    /// named, addressed and routed. A complete pair is left alone or only
    /// put back on the bridge; a half-made one is made again.
    fn apply_endpoint(
        &self,
        plan: &EndpointPlan,
        bridge: BridgeState,
    ) -> impl Future<Output = KResult<()>> + Send;
    /// Put an existing host veth back on its bridge and nothing more (a
    /// missing pair may be an attach in flight elsewhere). True if it was.
    fn reattach_port(&self, plan: &EndpointPlan) -> impl Future<Output = KResult<bool>> + Send;
    /// Take an endpoint out of service without deleting its pair: the
    /// sandbox side down and renamed, its name and address free at once.
    fn retire_endpoint(&self, plan: &EndpointPlan) -> impl Future<Output = KResult<()>> + Send;
    /// Bring `lo` up in a namespace.
    fn loopback_up(&self, netns: &Path) -> impl Future<Output = KResult<()>> + Send;
    /// Make the namespace's default route of `gateway`'s family go via
    /// it: added where there is none, moved from a gateway in `ours` (one
    /// netd made). A route via any other gateway is not netd's and stays.
    /// True if the route changed.
    fn ensure_default_route(
        &self,
        netns: &Path,
        gateway: IpAddr,
        ours: &[IpAddr],
    ) -> impl Future<Output = KResult<bool>> + Send;
}

/// Network namespaces and their per-namespace files.
pub trait NamespaceOps: Send + Sync {
    /// The namespace at `path`, if it names one.
    fn ns_id(&self, path: &Path) -> Option<NsId>;
    /// Device and inode of `path` without checking it is a namespace.
    fn file_id(&self, path: &Path) -> Option<NsId>;
    fn is_netns(&self, path: &Path) -> bool;
    /// The namespace netd runs in: no sandbox may adopt it.
    fn home_ns(&self) -> Option<NsId>;
    /// Where a namespace netd creates for sandbox `name` is bound.
    fn named_path(&self, name: &str) -> PathBuf;
    /// Whether something (a namespace, a stale file) is at that path.
    fn named_exists(&self, name: &str) -> bool;
    fn create_named(&self, name: &str) -> KResult<PathBuf>;
    /// Remove a namespace netd created; gone already is fine.
    fn delete_named(&self, path: &Path) -> KResult<()>;
    /// The sandbox's resolv.conf, pointing at 127.0.0.11.
    /// The sandbox's resolv.conf: nameserver 127.0.0.11, its search list
    /// (else the host's) and options.
    fn write_resolv_conf(&self, name: &str, dns: &Resolver) -> KResult<()>;
    /// Remove the sandbox's per-namespace files; best effort.
    fn remove_etc(&self, name: &str);
}

/// netd's nftables table.
pub trait FirewallOps: Send + Sync {
    /// Replace the whole table with `plan`, atomically.
    fn apply_firewall(&self, plan: FirewallPlan) -> impl Future<Output = KResult<()>> + Send;
    fn add_ports(&self, elems: Vec<PortElement>) -> impl Future<Output = KResult<()>> + Send;
    fn del_ports(&self, elems: Vec<PortElement>) -> impl Future<Output = KResult<()>> + Send;
    /// Refuse ports on an address that is not the host's, or held by a
    /// host socket. Run before any kernel change.
    fn check_host_ports(&self, elems: &[PortElement]) -> Result<(), HostPortError>;
}

/// Sysctls of the host namespace, `key` as under /proc/sys
/// (`net/ipv4/ip_forward`).
pub trait SysctlOps: Send + Sync {
    /// Set `key` to `value` unless it already is.
    fn ensure_sysctl(&self, key: &str, value: &str) -> KResult<()>;
}

/// The VXLAN side of overlay networks, in the host namespace.
pub trait OverlayOps: Send + Sync {
    /// Make the network's VXLAN device exist as a port of its bridge
    /// (`bridge`, as `apply_bridge` left it): the plan's VNI, UDP 4789, no
    /// learning and ARP/neighbour discovery answered from its own
    /// neighbour table (nothing flooded to other hosts), the plan's MTU,
    /// up. A link of that name that is not VXLAN is
    /// [`KernelError::NotAVxlan`], a refusal like [`KernelError::NotABridge`].
    fn apply_vxlan(
        &self,
        plan: &VxlanPlan,
        bridge: BridgeState,
    ) -> impl Future<Output = KResult<()>> + Send;
    /// Make the device's forwarding entries (each peer's MAC to its VTEP)
    /// and neighbour entries (each peer address to its MAC) exactly
    /// `peers`: missing ones added, others removed.
    fn sync_peers(
        &self,
        vxlan: &str,
        peers: &[OverlayPeer],
    ) -> impl Future<Output = KResult<()>> + Send;
}

/// Everything the operations need from the kernel.
pub trait Kernel: LinkOps + NamespaceOps + FirewallOps + SysctlOps + OverlayOps + 'static {}

impl<T: LinkOps + NamespaceOps + FirewallOps + SysctlOps + OverlayOps + 'static> Kernel for T {}
