//! The bridge driver: a Linux bridge per network with the gateway address
//! on it, a veth pair per endpoint, the host sysctls a bridge needs.

use futures::future::BoxFuture;

use super::{NetworkDriver, SandboxMode};
use crate::kernel::{BridgeState, KResult, Kernel};
use crate::model::{Endpoint, Network, Sandbox};
use crate::plan::{self, BridgePlan, EndpointPlan};

pub struct BridgeDriver;

/// Make the bridge exist as planned, with its sysctls.
async fn bridge_up<K: Kernel>(k: &K, plan: &BridgePlan) -> KResult<BridgeState> {
    let state = k.apply_bridge(plan).await?;
    for (key, value) in plan::bridge_sysctls(plan) {
        k.ensure_sysctl(&key, value)?;
    }
    Ok(state)
}

impl<K: Kernel> NetworkDriver<K> for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
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
        plan::bridge(net).map(|b| b.name).into_iter().collect()
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
            match plan::bridge(net) {
                Some(bp) => k.delete_host_link(&bp.name).await,
                None => Ok(()),
            }
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
