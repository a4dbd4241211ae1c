//! Network drivers: the part of create, remove, attach and reconcile that
//! differs between kinds of network. The operations (`crate::ops`) do the
//! rest the same for every driver: validation, the store, locks, the
//! rollback, the firewall, events.
//!
//! A new driver is one module here implementing [`NetworkDriver`], a
//! variant of `model::Driver`, and its arm in [`of`].

use futures::future::BoxFuture;

use crate::kernel::{KResult, Kernel};
use crate::model::{Driver, Endpoint, Network, Sandbox};
use crate::plan::EndpointPlan;

mod bridge;

/// `--network host`: sandboxes share the host's namespace; nothing to make.
pub struct HostDriver;

impl<K: Kernel> NetworkDriver<K> for HostDriver {
    fn name(&self) -> &'static str {
        "host"
    }

    fn sandbox_mode(&self) -> SandboxMode {
        SandboxMode::Host
    }
}

/// `--network none`: a namespace of its own with only `lo`.
pub struct NullDriver;

impl<K: Kernel> NetworkDriver<K> for NullDriver {
    fn name(&self) -> &'static str {
        "null"
    }

    fn sandbox_mode(&self) -> SandboxMode {
        SandboxMode::Isolated
    }
}

/// Docker's config-only network: settings only, nothing in the kernel.
/// Connect and sandbox create refuse it before they ask for the mode.
pub struct ConfigOnlyDriver;

impl<K: Kernel> NetworkDriver<K> for ConfigOnlyDriver {
    fn name(&self) -> &'static str {
        "null"
    }

    fn sandbox_mode(&self) -> SandboxMode {
        SandboxMode::Isolated
    }
}

/// How a sandbox created on a network gets its network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// A namespace of its own (made by netd or given), with an endpoint.
    Own,
    /// The host's namespace: no endpoint, no namespace of its own.
    Host,
    /// A namespace of its own with only `lo`, and never any network.
    Isolated,
}

/// What a network's driver does in the kernel. Boxed futures keep the
/// trait usable as `dyn` with one arm per driver in [`of`]; an allocation
/// per call is nothing next to the netlink round trips behind it.
pub trait NetworkDriver<K: Kernel>: Sync {
    fn name(&self) -> &'static str;

    fn sandbox_mode(&self) -> SandboxMode;

    /// The endpoint plan of `ep` in `sandbox`; None for a driver without
    /// endpoints (the default), or a sandbox without a namespace.
    fn endpoint_plan(&self, _net: &Network, _sb: &Sandbox, _ep: &Endpoint) -> Option<EndpointPlan> {
        None
    }

    /// The host links a network of this driver owns (made by `create`,
    /// deleted by `remove`); the default has none.
    fn own_links(&self, _net: &Network) -> Vec<String> {
        Vec::new()
    }

    /// Make the network's own kernel objects exist (again).
    fn create<'a>(&'a self, _k: &'a K, _net: &'a Network) -> BoxFuture<'a, KResult<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Remove the network's own kernel objects; gone already is fine.
    fn remove<'a>(&'a self, _k: &'a K, _net: &'a Network) -> BoxFuture<'a, KResult<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Make an endpoint exist (again). True when the network's own objects
    /// had to be made again, so its other endpoints lost theirs. Only
    /// called with a plan from `endpoint_plan`.
    fn attach<'a>(&'a self, _k: &'a K, _plan: &'a EndpointPlan) -> BoxFuture<'a, KResult<bool>> {
        Box::pin(async { Ok(false) })
    }
}

/// The driver of a network.
pub fn of<K: Kernel>(d: &Driver) -> &'static dyn NetworkDriver<K> {
    match d {
        Driver::Bridge(_) => &bridge::BRIDGE,
        Driver::Host => &HostDriver,
        Driver::Null => &NullDriver,
        Driver::ConfigOnly(_) => &ConfigOnlyDriver,
        Driver::Overlay(_) => &bridge::OVERLAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::FakeKernel;

    #[test]
    fn each_network_kind_has_its_driver_and_mode() {
        let host = of::<FakeKernel>(&Driver::Host);
        assert_eq!(
            (host.name(), host.sandbox_mode()),
            ("host", SandboxMode::Host)
        );
        let null = of::<FakeKernel>(&Driver::Null);
        assert_eq!(
            (null.name(), null.sandbox_mode()),
            ("null", SandboxMode::Isolated)
        );
    }
}
