//! The shapes the operations answer with: records joined with the names
//! of what they belong to.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernel::netns;
use crate::model::*;
use crate::store;

/// An endpoint together with the names of what it joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointDetail {
    pub network_name: Name,
    pub sandbox_name: Name,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub host_veth: IfName,
}

impl EndpointDetail {
    pub(crate) fn new(
        network_name: Name,
        sandbox_name: Name,
        endpoint: Endpoint,
    ) -> EndpointDetail {
        EndpointDetail {
            network_name,
            sandbox_name,
            host_veth: endpoint.host_veth(),
            endpoint,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDetail {
    #[serde(flatten)]
    pub network: Network,
    pub endpoints: Vec<EndpointDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxDetail {
    #[serde(flatten)]
    pub sandbox: Sandbox,
    /// The namespace path to enter for this sandbox (the host's for host mode).
    pub netns: String,
    pub endpoints: Vec<EndpointDetail>,
}

/// What a reconcile pass did.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub bridges: usize,
    pub endpoints: usize,
    pub orphans_removed: Vec<String>,
    pub namespaces_recreated: Vec<String>,
    pub failures: Vec<String>,
}

/// A network's endpoints with their sandboxes, those `keep` accepts.
pub(crate) fn network_endpoints(
    c: &rusqlite::Connection,
    network: &Network,
    keep: impl Fn(&Sandbox, &Endpoint) -> bool,
) -> Result<Vec<EndpointDetail>> {
    let mut endpoints = Vec::new();
    for e in store::endpoints_of_network(c, &network.id)? {
        let s = store::sandbox_by_id(c, &e.sandbox)?;
        if keep(&s, &e) {
            endpoints.push(EndpointDetail::new(network.name.clone(), s.name, e));
        }
    }
    Ok(endpoints)
}

pub(crate) fn network_detail(c: &rusqlite::Connection, network: Network) -> Result<NetworkDetail> {
    let endpoints = network_endpoints(c, &network, |_, _| true)?;
    Ok(NetworkDetail { network, endpoints })
}

pub(crate) fn sandbox_detail(c: &rusqlite::Connection, sandbox: Sandbox) -> Result<SandboxDetail> {
    let mut endpoints = Vec::new();
    for e in store::endpoints_of_sandbox(c, &sandbox.id)? {
        let n = store::network_by_id(c, &e.network)?;
        endpoints.push(EndpointDetail::new(n.name, sandbox.name.clone(), e));
    }
    Ok(detail_of(sandbox, endpoints))
}

pub(crate) fn detail_of(sandbox: Sandbox, endpoints: Vec<EndpointDetail>) -> SandboxDetail {
    let netns = match &sandbox.net {
        SandboxNet::Namespace { path, .. } => path.clone(),
        SandboxNet::Host => netns::own_netns_path().display().to_string(),
    };
    SandboxDetail {
        sandbox,
        netns,
        endpoints,
    }
}
