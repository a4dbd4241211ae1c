//! The bridge driver: a Linux bridge per network with the gateway address
//! on it, a veth pair per endpoint, the host sysctls a bridge needs.
//!
//! An overlay network is the same on each host, plus a VXLAN device on the
//! bridge (in its plan) that carries it to the other hosts; the bridge has
//! the same gateway address and MAC everywhere (an anycast gateway), so
//! each host routes its own sandboxes' egress. The peers' forwarding
//! entries come from the cluster (`daemon::cluster`): they change with
//! other hosts, not with this host's operations.

use futures::future::BoxFuture;

use super::{NetworkDriver, SandboxMode};
use crate::kernel::{BridgeState, KResult, Kernel};
use crate::model::{Endpoint, Network, Sandbox};
use crate::plan::{self, BridgePlan, EndpointPlan};

pub struct BridgeDriver {
    name: &'static str,
}

pub const BRIDGE: BridgeDriver = BridgeDriver { name: "bridge" };
pub const OVERLAY: BridgeDriver = BridgeDriver { name: "overlay" };

/// Make the bridge exist as planned, with its sysctls and its VXLAN port.
async fn bridge_up<K: Kernel>(k: &K, plan: &BridgePlan) -> KResult<BridgeState> {
    let state = k.apply_bridge(plan).await?;
    for (key, value) in plan::bridge_sysctls(plan) {
        k.ensure_sysctl(&key, value)?;
    }
    if let Some(v) = &plan.vxlan {
        k.apply_vxlan(v, state).await?;
    }
    Ok(state)
}

impl<K: Kernel> NetworkDriver<K> for BridgeDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn sandbox_mode(&self) -> SandboxMode {
        SandboxMode::Own
    }

    fn endpoint_plan(
        &self,
        net: &Network,
        sandbox: &Sandbox,
        ep: &Endpoint,
    ) -> Option<EndpointPlan> {
        plan::endpoint(net, sandbox, ep)
    }

    fn own_links(&self, net: &Network) -> Vec<String> {
        // The VXLAN port first: deleting the bridge would only free it.
        plan::bridge(net)
            .map(|b| b.vxlan.map(|v| v.name).into_iter().chain([b.name]))
            .into_iter()
            .flatten()
            .collect()
    }

    fn create<'a>(&'a self, k: &'a K, net: &'a Network) -> BoxFuture<'a, KResult<()>> {
        Box::pin(async move {
            if let Some(bp) = plan::bridge(net) {
                bridge_up(k, &bp).await?;
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, k: &'a K, net: &'a Network) -> BoxFuture<'a, KResult<()>> {
        Box::pin(async move {
            for link in <Self as NetworkDriver<K>>::own_links(self, net) {
                k.delete_host_link(&link).await?;
            }
            Ok(())
        })
    }

    fn attach<'a>(&'a self, k: &'a K, p: &'a EndpointPlan) -> BoxFuture<'a, KResult<bool>> {
        Box::pin(async move {
            let bridge = bridge_up(k, &p.bridge).await?;
            k.apply_endpoint(p, bridge).await?;
            Ok(bridge.created)
        })
    }
}
