//! Attachments of namespaces a runtime made (the CNI plugin's ADD, DEL and
//! GC): a sandbox named after the container that adopts its namespace, one
//! endpoint per network and interface name, and the sandbox forgotten with
//! its last attachment.

use std::path::Path;

use tracing::warn;

use super::ensure::{EnsureError, NetworkSpec};
use super::{EndpointDetail, Netd, SandboxDetail};
use crate::error::{Error, Result, kernel};
use crate::kernel::{Host, Kernel, KernelError, NamespaceOps, Netlink};
use crate::model::*;
use crate::store::Ref;

/// Put the namespace at `netns` on a network as sandbox `sandbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub sandbox: String,
    pub netns: String,
    /// Its `ifname` is the interface to make in the namespace.
    pub endpoint: EndpointRequest,
    /// The container's own upstream DNS servers (the `dns` capability
    /// beside netd's DNS): a new sandbox's; one that has a sandbox already
    /// must have these.
    pub dns: Vec<std::net::IpAddr>,
}

/// An attachment as the kernel has it once made.
#[derive(Debug, Clone)]
pub struct Attached {
    pub endpoint: EndpointDetail,
    pub bridge: BridgeConfig,
    /// The host veth's MAC and MTU.
    pub host_mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// The namespace's default route is via this network's gateway.
    pub default_route: bool,
    /// The same for IPv6, on a dual-stack network.
    pub default_route6: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Network(#[from] EnsureError),
    /// A live sandbox of that name is in another namespace.
    #[error("sandbox {sandbox} is already attached in namespace {netns}")]
    OtherNamespace { sandbox: String, netns: String },
    /// The interface name is in use in the namespace.
    #[error("interface {ifname} already exists in {netns}")]
    InterfaceExists { ifname: IfName, netns: String },
    /// A static IPv6 address asked of a network without an IPv6 side:
    /// refused before anything of the attachment is made.
    #[error("network {network} has no IPv6 subnet: cannot give {ip6}")]
    NoIpv6 {
        network: String,
        ip6: std::net::Ipv6Addr,
    },
    #[error(transparent)]
    Netd(#[from] Error),
}

/// What a detach found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detached {
    /// No sandbox of that name: nothing to do.
    NoSandbox,
    /// The sandbox of that name lives in another live namespace: not the
    /// caller's, left alone.
    OtherNamespace { netns: String },
    /// The attachment (if it was there) is gone, and the sandbox with it if
    /// that was its last.
    Done,
}

/// What a garbage collection of one network's adopted attachments did.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// `(sandbox, ifname)` removed.
    pub removed: Vec<(String, String)>,
    pub failures: Vec<String>,
}

/// Two paths to one namespace (or one file).
fn same_file<K: NamespaceOps>(k: &K, a: &Path, b: &Path) -> bool {
    matches!((k.file_id(a), k.file_id(b)), (Some(x), Some(y)) if x == y)
}

fn mac_of(bytes: Option<&[u8]>) -> Option<Mac> {
    bytes.and_then(|b| <[u8; 6]>::try_from(b).ok()).map(Mac)
}

fn adopted(sb: &Sandbox) -> bool {
    matches!(sb.net, SandboxNet::Namespace { owned: false, .. })
}

fn read_failed(what: &'static str) -> impl Fn(anyhow::Error) -> Error {
    move |e| kernel(e.context(what))
}

/// Attaching reads the kernel back (the namespace's interfaces and routes,
/// the host veth's MAC and MTU) through netlink directly: the kernel seams
/// have no reads of a namespace's links yet, so this part is the real
/// kernel's only.
impl Netd<Host> {
    /// Attach `req`'s namespace to the network `network` describes (made
    /// first if missing). `recorded` runs once a new sandbox is in the store,
    /// before its interfaces are made (not at all when the sandbox existed).
    /// A failure takes back what this call made, the network included.
    pub async fn attach(
        &self,
        network: &NetworkSpec,
        req: &AttachRequest,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<Attached, AttachError> {
        let (bridge, created) = self.ensure_network(network).await?;
        let name = network.create.name.as_str();
        let attached = async {
            if let (Some(ip6), None) = (req.endpoint.ip6, &bridge.ipv6) {
                return Err(AttachError::NoIpv6 {
                    network: name.to_string(),
                    ip6,
                });
            }
            let inside = Netlink::in_netns(Path::new(&req.netns))
                .map_err(read_failed("cannot open the container's namespace"))?;
            if let Some(ifname) = &req.endpoint.ifname
                && inside
                    .link(ifname.as_str())
                    .await
                    .map_err(read_failed("cannot read the container's interfaces"))?
                    .is_some()
            {
                // Most likely another sandbox's interface: say whose.
                self.check_namespace_free(&req.netns, &req.sandbox)?;
                return Err(AttachError::InterfaceExists {
                    ifname: ifname.clone(),
                    netns: req.netns.clone(),
                });
            }
            let ep = self.attach_sandbox(name, req, recorded).await?;
            match self.describe(&bridge, &ep, &inside).await {
                Ok(a) => Ok(a),
                Err(e) => {
                    if let Err(undo) = self
                        .detach(name, &req.sandbox, ep.endpoint.ifname.as_str(), None)
                        .await
                    {
                        warn!(sandbox = %req.sandbox, "undo: {undo}");
                    }
                    Err(e.into())
                }
            }
        }
        .await;
        if attached.is_err() && created {
            self.remove_network_if_unused(name).await;
        }
        attached
    }

    /// The attachment as the kernel now has it.
    async fn describe(
        &self,
        bridge: &BridgeConfig,
        ep: &EndpointDetail,
        inside: &Netlink,
    ) -> Result<Attached> {
        let hv = self
            .host()
            .link(ep.host_veth.as_str())
            .await
            .map_err(read_failed("cannot read the host interface"))?
            .ok_or_else(|| {
                Error::Kernel(KernelError::failed(format!(
                    "host interface {} vanished",
                    ep.host_veth
                )))
            })?;
        let routes = read_failed("cannot read the container's routes");
        let gw = match &bridge.ipv4 {
            Some(v4) if !bridge.internal && ep.endpoint.ip.is_some() => inside
                .default_gateway()
                .await
                .map_err(&routes)?
                .filter(|g| *g == v4.gateway),
            _ => None,
        };
        // An IPv4-only attachment does not pay for a dump of IPv6 routes.
        let gw6 = match (&bridge.ipv6, ep.endpoint.ip6) {
            (Some(v6), Some(_)) if !bridge.internal => inside
                .default_gateway6()
                .await
                .map_err(&routes)?
                .filter(|g| *g == v6.gateway),
            _ => None,
        };
        Ok(Attached {
            endpoint: ep.clone(),
            bridge: bridge.clone(),
            host_mac: mac_of(hv.mac.as_deref()),
            mtu: hv.mtu,
            default_route: gw.is_some(),
            default_route6: gw6.is_some(),
        })
    }
}

impl<K: Kernel> Netd<K> {
    /// The sandbox named in `req` on `network`: a new one adopting the
    /// namespace, or a further endpoint of the one it has. A sandbox of that
    /// name whose namespace is gone (its DEL never came) is forgotten first.
    async fn attach_sandbox(
        &self,
        network: &str,
        req: &AttachRequest,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<EndpointDetail, AttachError> {
        let name = req.sandbox.as_str();
        let mut recorded = Some(recorded);
        for _ in 0..3 {
            match self.inspect_sandbox(Ref::Name(name)) {
                Ok(sb) if !same_file(&self.k, Path::new(&sb.netns), Path::new(&req.netns)) => {
                    if self.k.is_netns(Path::new(&sb.netns)) {
                        return Err(AttachError::OtherNamespace {
                            sandbox: name.to_string(),
                            netns: sb.netns,
                        });
                    }
                    warn!(sandbox = %name, netns = %sb.netns, "removing a stale sandbox: its namespace is gone");
                    match self.remove_sandbox(Ref::Name(name), true).await {
                        Ok(_) | Err(Error::NotFound(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(sb) => {
                    if !req.dns.is_empty() && sb.sandbox.dns.servers != req.dns {
                        return Err(Error::Invalid(format!(
                            "container {name} has the DNS servers {:?}; this attachment asks for {:?}",
                            sb.sandbox.dns.servers, req.dns
                        ))
                        .into());
                    }
                    // The interface is not in the namespace (checked by the
                    // caller): an endpoint on this network is left over from
                    // an attach that was never detached.
                    if sb
                        .endpoints
                        .iter()
                        .any(|x| x.network_name.as_str() == network)
                    {
                        match self
                            .disconnect(Ref::Name(network), Ref::Name(name), true)
                            .await
                        {
                            Ok(()) | Err(Error::NotFound(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    return Ok(self
                        .connect(Ref::Name(network), Ref::Name(name), &req.endpoint)
                        .await?);
                }
                Err(Error::NotFound(_)) => {
                    let create = SandboxCreate {
                        name: name.to_string(),
                        network: Some(network.to_string()),
                        netns: Some(req.netns.clone()),
                        endpoint: req.endpoint.clone(),
                        dns: req.dns.iter().map(|a| a.to_string()).collect(),
                        ..Default::default()
                    };
                    let made = self
                        .create_sandbox_and(&create, |sb| {
                            if let Some(f) = recorded.take() {
                                f(sb);
                            }
                        })
                        .await;
                    return match made {
                        Ok(d) => d.endpoints.into_iter().next().ok_or_else(|| {
                            Error::Kernel(KernelError::failed(format!(
                                "sandbox {name} was made without an endpoint"
                            )))
                            .into()
                        }),
                        // The same sandbox attached to another network at the
                        // same moment: join that one.
                        Err(Error::Conflict(_))
                            if self.inspect_sandbox(Ref::Name(name)).is_ok() =>
                        {
                            continue;
                        }
                        Err(e) => Err(e.into()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy(format!("sandbox {name} changed while attaching")).into())
    }

    /// Take sandbox `sandbox`'s attachment at `ifname` off `network`, and
    /// the sandbox with it when that was the last attachment of a namespace
    /// netd adopted. With `netns`, a sandbox of that name in another live
    /// namespace is someone else's and is left alone. Kernel failures are
    /// logged; the records go anyway.
    pub async fn detach(
        &self,
        network: &str,
        sandbox: &str,
        ifname: &str,
        netns: Option<&str>,
    ) -> Result<Detached> {
        let sb = match self.inspect_sandbox(Ref::Name(sandbox)) {
            Ok(sb) => sb,
            Err(Error::NotFound(_)) => return Ok(Detached::NoSandbox),
            Err(e) => return Err(e),
        };
        if let Some(ns) = netns
            && self.k.is_netns(Path::new(ns))
            && self.k.is_netns(Path::new(&sb.netns))
            && !same_file(&self.k, Path::new(ns), Path::new(&sb.netns))
        {
            return Ok(Detached::OtherNamespace { netns: sb.netns });
        }
        self.detach_sandbox(network, &sb, ifname).await?;
        Ok(Detached::Done)
    }

    async fn detach_sandbox(&self, network: &str, sb: &SandboxDetail, ifname: &str) -> Result<()> {
        let name = sb.sandbox.name.as_str();
        if sb
            .endpoints
            .iter()
            .any(|x| x.network_name.as_str() == network && x.endpoint.ifname.as_str() == ifname)
        {
            match self
                .disconnect(Ref::Name(network), Ref::Name(name), true)
                .await
            {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // Read again: another attach of this sandbox may have put it on
        // another network meanwhile.
        if adopted(&sb.sandbox)
            && self
                .inspect_sandbox(name)
                .is_ok_and(|s| s.endpoints.is_empty())
        {
            match self.remove_sandbox(Ref::Name(name), true).await {
                // Conflict: attached elsewhere even later; that attach keeps it.
                Ok(_) | Err(Error::NotFound(_) | Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Detach every attachment on `network` of a namespace netd adopted
    /// (what CNI plugins and `--netns` made) that `valid` does not list as
    /// `(sandbox, ifname)`. Keeps going past failures, which the report
    /// lists. With deferred link removal, the links go after all records.
    pub async fn gc_attachments(
        &self,
        network: &str,
        valid: &[(String, String)],
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        for sb in self.list_sandboxes()? {
            if !adopted(&sb.sandbox) {
                continue;
            }
            let name = sb.sandbox.name.to_string();
            for ep in &sb.endpoints {
                let key = (name.clone(), ep.endpoint.ifname.to_string());
                if ep.network_name.as_str() != network || valid.contains(&key) {
                    continue;
                }
                match self.detach(network, &name, &key.1, None).await {
                    Ok(_) => report.removed.push(key),
                    Err(e) => report.failures.push(format!("{name}/{}: {e}", key.1)),
                }
            }
        }
        for link in self.take_deferred_links() {
            if let Err(e) = self.k.delete_host_link(&link).await {
                report.failures.push(format!("{link}: {e}"));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_of_six_bytes_only() {
        assert_eq!(
            mac_of(Some(&[2, 0x42, 10, 0, 0, 2])),
            Some(Mac([2, 0x42, 10, 0, 0, 2]))
        );
        assert_eq!(mac_of(Some(&[1, 2, 3])), None);
        assert_eq!(mac_of(None), None);
    }

    // ---- over the fake kernel ----

    use crate::ops::tests::{sandbox, world};

    /// Sandbox `name` adopting a namespace of the test's own on `network`.
    async fn adopted_sandbox(t: &crate::ops::tests::T, name: &str, network: &str) -> String {
        let path = t.dir().join(format!("{name}-ns"));
        t.k().add_foreign_namespace(&path);
        let netns = path.display().to_string();
        let req = SandboxCreate {
            netns: Some(netns.clone()),
            ..sandbox(name, network)
        };
        t.netd.create_sandbox(&req).await.unwrap();
        netns
    }

    #[tokio::test]
    async fn detach_forgets_an_adopted_sandbox_with_its_last_attachment() {
        let t = world().await;
        t.network("n1", "10.70.0.0/24").await;
        let ns = adopted_sandbox(&t, "s1", "n1").await;
        let d = t.netd.detach("n1", "s1", "eth0", Some(&ns)).await.unwrap();
        assert_eq!(d, Detached::Done);
        assert!(t.netd.list_sandboxes().unwrap().is_empty());
        let eps = t.netd.store().read(crate::store::all_endpoints).unwrap();
        assert!(eps.is_empty(), "{eps:?}");
        let w = t.k().world();
        assert!(w.ifaces.is_empty(), "{w:?}");
        assert!(w.links.values().all(|l| l.kind == "bridge"), "{w:?}");
        // The namespace is the engine's: netd never removes it.
        assert!(w.namespaces.contains_key(Path::new(&ns)));
        assert_eq!(
            t.netd.detach("n1", "s1", "eth0", None).await.unwrap(),
            Detached::NoSandbox
        );
    }

    #[tokio::test]
    async fn detach_leaves_a_sandbox_of_that_name_in_another_live_namespace() {
        let t = world().await;
        t.network("n1", "10.70.0.0/24").await;
        adopted_sandbox(&t, "s1", "n1").await;
        let other = t.dir().join("other-ns");
        t.k().add_foreign_namespace(&other);
        let before = t.snapshot();
        let d = t
            .netd
            .detach("n1", "s1", "eth0", Some(&other.display().to_string()))
            .await
            .unwrap();
        assert!(matches!(d, Detached::OtherNamespace { .. }), "{d:?}");
        assert_eq!(t.snapshot(), before);
    }

    #[tokio::test]
    async fn gc_removes_only_unlisted_adopted_attachments_of_its_network() {
        let t = world().await;
        t.network("n1", "10.70.0.0/24").await;
        t.network("n2", "10.71.0.0/24").await;
        adopted_sandbox(&t, "keep", "n1").await;
        adopted_sandbox(&t, "stale", "n1").await;
        adopted_sandbox(&t, "other", "n2").await;
        // Made by netd itself (no --netns): never GC's.
        t.sandbox("own", "n1").await;
        let valid = vec![("keep".to_string(), "eth0".to_string())];
        let report = t.netd.gc_attachments("n1", &valid).await.unwrap();
        assert_eq!(report.removed, vec![("stale".into(), "eth0".into())]);
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let names: Vec<String> = t
            .netd
            .list_sandboxes()
            .unwrap()
            .into_iter()
            .map(|s| s.sandbox.name.to_string())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(!names.contains(&"stale".to_string()), "{names:?}");
        t.assert_consistent();
    }
}
