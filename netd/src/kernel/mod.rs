//! Kernel adapters: make the kernel match a plan, and read it back.
//! The operations see them only through the traits in [`traits`];
//! [`Host`] implements those over the adapter modules below.

pub mod error;
#[cfg(test)]
pub mod fake;
pub mod firewall;
pub mod firewalld;
pub mod host;
pub mod hostport;
pub mod link;
pub mod link_watch;
pub mod netns;
pub mod nft;
pub mod notify;
pub mod traits;
pub mod vxlan;

pub use error::{KResult, KernelError};
pub use host::Host;
pub use link::Netlink;
pub use traits::{BridgeState, FirewallOps, Kernel, LinkOps, NamespaceOps, OverlayOps, SysctlOps};
