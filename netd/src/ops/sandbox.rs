//! Sandboxes: create (with its first endpoint), list, inspect, remove.

use std::path::Path;

use tracing::{info, warn};

use super::rollback::{Rollback, Undo};
use super::{Netd, detail};
use crate::driver::{self, SandboxMode};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, NamespaceOps, netns};
use crate::model::*;
use crate::plan;
use crate::store;

impl<K: Kernel> Netd<K> {
    pub async fn create_sandbox(&self, req: &SandboxCreate) -> Result<detail::SandboxDetail> {
        self.create_sandbox_and(req, |_| {}).await
    }

    /// [`Netd::create_sandbox`], calling `recorded` once the sandbox is in
    /// the store and its namespace exists, before its interfaces are made:
    /// work that needs only those (the CNI plugin's DNS hand-off) can then
    /// run alongside the kernel's part. Should the create fail later, the
    /// records go again.
    pub async fn create_sandbox_and(
        &self,
        req: &SandboxCreate,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<detail::SandboxDetail> {
        let name: Name = req.name.parse()?;
        let lock = self.sandbox_lock(&name).await?;
        let made = self.create_sandbox_locked(req, recorded).await;
        if made.is_err() {
            self.release_if_gone(lock, &name);
        }
        made
    }

    /// Where a new sandbox's namespace comes from, refusing what cannot
    /// be: a namespace path for host mode, the daemon's own namespace, a
    /// name whose namespace exists already. The namespace's id when it is
    /// adopted rather than made.
    fn sandbox_net(
        &self,
        name: &Name,
        mode: SandboxMode,
        netns: Option<&str>,
    ) -> Result<(SandboxNet, Option<netns::NsId>)> {
        match (mode, netns) {
            (SandboxMode::Host, None) => Ok((SandboxNet::Host, None)),
            (SandboxMode::Host, Some(_)) => Err(Error::Invalid(
                "a host-mode sandbox shares the host namespace; --netns does not apply".into(),
            )),
            (_, Some(p)) => {
                let Some(id) = self.k.ns_id(Path::new(p)) else {
                    return Err(Error::Invalid(format!("{p} is not a network namespace")));
                };
                if Some(id) == self.k.home_ns() {
                    // Its interface would land among the host's.
                    return Err(Error::Invalid(format!(
                        "{p} is the network namespace netd runs in; a sandbox needs a namespace of its own (or --network host)"
                    )));
                }
                let net = SandboxNet::Namespace {
                    path: p.to_string(),
                    owned: false,
                };
                Ok((net, Some(id)))
            }
            (_, None) => {
                let path = self.k.named_path(name.as_str());
                if self.k.named_exists(name.as_str()) {
                    return Err(Error::Conflict(format!(
                        "network namespace {} already exists; pass --netns {} to adopt it",
                        name,
                        path.display()
                    )));
                }
                let net = SandboxNet::Namespace {
                    path: path.display().to_string(),
                    owned: true,
                };
                Ok((net, None))
            }
        }
    }

    /// [`Netd::create_sandbox_and`] with the sandbox's lock held.
    async fn create_sandbox_locked(
        &self,
        req: &SandboxCreate,
        recorded: impl FnOnce(&Sandbox),
    ) -> Result<detail::SandboxDetail> {
        let name: Name = req.name.parse()?;
        req.endpoint.validate()?;
        let dns = Resolver::parse(&req.dns, &req.dns_search, &req.dns_options)?;
        if req.netns.is_some() && !(dns.search.is_empty() && dns.options.is_empty()) {
            return Err(Error::Invalid(
                "--dns-search and --dns-option write the resolv.conf of a namespace netd makes; \
                 an adopted one's (--netns) is its engine's"
                    .into(),
            ));
        }
        let network = req.network.as_deref().unwrap_or("bridge");
        // For `netd::timing` (bench/scale.sh): how long each phase took.
        let t0 = std::time::Instant::now();
        let net = self.store.read(|c| {
            if store::sandbox_name_taken(c, &name)? {
                return Err(Error::Conflict(format!(
                    "sandbox with name {name} already exists"
                )));
            }
            store::network(c, network)
        })?;
        if let Some(why) = net.refuse_config_only() {
            return Err(Error::Forbidden(why));
        }
        let drv = driver::of::<K>(&net.driver);
        let has_endpoint_opts = req.endpoint.ip.is_some()
            || !req.endpoint.aliases.is_empty()
            || !req.endpoint.ports.is_empty()
            || req.endpoint.mac.is_some();
        let mode = drv.sandbox_mode();
        let (sandbox_net, adopted) = self.sandbox_net(&name, mode, req.netns.as_deref())?;
        if has_endpoint_opts && mode != SandboxMode::Own {
            return Err(Error::Invalid(format!(
                "--ip, --alias, --publish and --mac need a bridge network, not {}",
                net.name
            )));
        }
        if !dns.is_empty() && mode != SandboxMode::Own {
            // Only a sandbox with an endpoint has 127.0.0.11 and a resolv.conf
            // of netd's; host and none would take the flags and do nothing.
            return Err(Error::Invalid(format!(
                "--dns, --dns-search and --dns-option need a bridge or overlay network, not {}",
                net.name
            )));
        }
        if !dns.servers.is_empty() && net.bridge().is_some_and(|b| b.internal) {
            return Err(Error::Invalid(format!(
                "--dns: the sandboxes of internal network {} forward no names",
                net.name
            )));
        }
        let sandbox = Sandbox {
            id: Id::random(),
            name,
            net: sandbox_net,
            isolated: mode == SandboxMode::Isolated,
            dns,
            created: now_rfc3339(),
        };
        let mut rb = Rollback::new(self);
        let claimed = match mode {
            SandboxMode::Own => self.claim_addresses(&mut rb, &net, &req.endpoint).await?,
            _ => None,
        };
        let ep_req = claimed.as_ref().unwrap_or(&req.endpoint);
        let t1 = t0.elapsed();
        let recorded_rows = self.store.write(|c| {
            // In the transaction, so two requests adopting one namespace
            // at once cannot both pass.
            if let (Some(id), Some(p)) = (adopted, &req.netns)
                && let Some(other) = namespace_owner(&self.k, c, id)?
            {
                return Err(namespace_taken(p, &other));
            }
            store::insert_sandbox(c, &sandbox)?;
            match mode {
                SandboxMode::Own => Ok(Some(store::insert_endpoint(c, &net, &sandbox, ep_req)?)),
                _ => Ok(None),
            }
        });
        let endpoint = rb.check(recorded_rows).await?;
        rb.push(Undo::SandboxRecord(sandbox.id.clone()));
        if let Some(ep) = &endpoint {
            rb.check(self.check_host_ports(&net, ep)).await?;
        }
        let t2 = t0.elapsed();
        let sp = plan::sandbox(&sandbox, endpoint.is_some());
        if let Some(sp) = &sp {
            if let Some(bound) = &sp.create {
                // Registered only once made: a name someone else took
                // meanwhile is not ours to delete.
                let made = self.k.create_named(bound);
                rb.check(made.map_err(Error::from)).await?;
                rb.push(Undo::Namespace {
                    path: sp.netns.clone(),
                    name: sandbox.name.clone(),
                });
            }
            if sp.resolv_conf {
                let written = self
                    .k
                    .write_resolv_conf(sandbox.name.as_str(), &sandbox.dns);
                rb.check(written.map_err(Error::from)).await?;
            }
        }
        recorded(&sandbox);
        let t3 = t0.elapsed();
        if let Some(ep) = &endpoint {
            self.attach_endpoint(&mut rb, &net, &sandbox, ep).await?;
        }
        let t4 = t0.elapsed();
        if let Some(sp) = sp.filter(|p| p.loopback) {
            let up = self.k.loopback_up(&sp.netns).await;
            rb.check(up.map_err(Error::from)).await?;
        }
        rb.commit();
        tracing::debug!(target: "netd::timing", read = ?t1, write = ?t2, netns = ?t3, attach = ?t4, total = ?t0.elapsed(), "sandbox create");
        info!(sandbox = %sandbox.name, network = %net.name, "sandbox created");
        self.emit(
            "sandbox",
            "create",
            &sandbox.id,
            &sandbox.name,
            &[("network", net.name.as_str())],
        );
        if let Some(ep) = &endpoint {
            self.emit(
                "network",
                "connect",
                &net.id,
                &net.name,
                &[
                    ("sandbox", sandbox.name.as_str()),
                    ("ip", &ep.primary_addr()),
                ],
            );
        }
        // What was just recorded and applied; no second read of the store.
        let endpoints = endpoint
            .map(|e| detail::EndpointDetail::new(net.name.clone(), sandbox.name.clone(), e))
            .into_iter()
            .collect();
        Ok(detail::detail_of(sandbox, endpoints))
    }

    /// Refuse (`Invalid`) when the namespace at `path` belongs to a
    /// sandbox other than `except`, as creating a sandbox there would.
    pub fn check_namespace_free(&self, path: &str, except: &str) -> Result<()> {
        let Some(id) = self.k.ns_id(Path::new(path)) else {
            return Ok(());
        };
        match self.store.read(|c| namespace_owner(&self.k, c, id))? {
            Some(other) if other != except => Err(namespace_taken(path, &other)),
            _ => Ok(()),
        }
    }

    pub fn list_sandboxes(&self) -> Result<Vec<detail::SandboxDetail>> {
        self.store.read(|c| {
            store::sandboxes(c)?
                .into_iter()
                .map(|s| detail::sandbox_detail(c, s))
                .collect()
        })
    }

    pub fn inspect_sandbox<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
    ) -> Result<detail::SandboxDetail> {
        let reference = reference.into();
        self.store
            .read(|c| detail::sandbox_detail(c, store::sandbox(c, reference)?))
    }

    /// Remove a sandbox: its endpoints, then its namespace if netd made it.
    /// With `force`, kernel failures are logged and the record goes anyway.
    /// An endpoint added while the sandbox is being removed makes this a
    /// conflict and the records stay (the links of the endpoints read first
    /// are gone: removing again finishes), rather than dropping the record
    /// of an attachment its caller was just told had worked.
    pub async fn remove_sandbox<'a>(
        &self,
        reference: impl Into<store::Ref<'a>>,
        force: bool,
    ) -> Result<Sandbox> {
        let (lock, sandbox) = self.lock_sandbox(reference.into()).await?;
        let eps = self.store.read(|c| {
            let mut eps = Vec::new();
            for e in store::endpoints_of_sandbox(c, &sandbox.id)? {
                eps.push((store::network_by_id(c, &e.network)?, e));
            }
            Ok(eps)
        })?;
        // Out of the other hosts' view first (refused with the cluster
        // away, nothing changed); published again if the removal fails.
        let mut rb = Rollback::new(self);
        for (net, ep) in &eps {
            let withdrawn = self.withdraw_endpoint(net, ep).await;
            rb.check(withdrawn).await?;
            if net.overlay().is_some() {
                rb.push(Undo::ClusterPublish(Box::new((
                    sandbox.clone(),
                    ep.clone(),
                ))));
            }
        }
        match self
            .remove_sandbox_records(lock, sandbox, &eps, force)
            .await
        {
            Ok(sb) => {
                rb.commit();
                Ok(sb)
            }
            Err(e) => Err(rb.fail(e).await),
        }
    }

    /// The rest of `remove_sandbox`, once its overlay endpoints are out of
    /// the cluster.
    async fn remove_sandbox_records(
        &self,
        lock: crate::lock::FileLock,
        sandbox: Sandbox,
        eps: &[(Network, Endpoint)],
        force: bool,
    ) -> Result<Sandbox> {
        let ids: Vec<Id> = eps.iter().map(|(_, e)| e.id.clone()).collect();
        for (net, ep) in eps {
            if let Some(p) = self.endpoint_plan(net, &sandbox, ep)
                && let Err(e) = self.remove_links(&p).await
            {
                if !force {
                    return Err(e);
                }
                warn!(sandbox = %sandbox.name, "forced removal: {e}");
            }
        }
        if let SandboxNet::Namespace { path, owned: true } = &sandbox.net {
            self.k.remove_etc(sandbox.name.as_str());
            if let Err(e) = self.k.delete_named(Path::new(path)) {
                if !force {
                    return Err(e.into());
                }
                warn!(sandbox = %sandbox.name, "forced removal: {e}");
            }
        }
        self.store.write(|c| {
            let now: Vec<Id> = store::endpoints_of_sandbox(c, &sandbox.id)?
                .into_iter()
                .map(|e| e.id)
                .collect();
            if now != ids {
                return Err(Error::Conflict(format!(
                    "sandbox {} gained an endpoint while being removed",
                    sandbox.name
                )));
            }
            store::delete_sandbox(c, &sandbox.id)
        })?;
        for (net, ep) in eps {
            if let Err(e) = self.unpublish(net, ep).await {
                warn!(sandbox = %sandbox.name, "withdrawing published ports: {e}");
            }
            self.release_addresses(net, ep).await;
        }
        // Only now: a sandbox of the same name made at once must not have
        // its ports withdrawn with these.
        lock.remove();
        for (net, _) in eps {
            self.emit(
                "network",
                "disconnect",
                &net.id,
                &net.name,
                &[("sandbox", sandbox.name.as_str())],
            );
        }
        info!(sandbox = %sandbox.name, "sandbox removed");
        self.emit("sandbox", "destroy", &sandbox.id, &sandbox.name, &[]);
        Ok(sandbox)
    }
}

fn namespace_taken(path: &str, other: &str) -> Error {
    Error::Invalid(format!(
        "network namespace {path} already belongs to sandbox {other}; connect that sandbox to more networks instead"
    ))
}

/// The sandbox whose namespace is `id`, compared by device and inode so
/// that two paths to one namespace are seen as one. A stat per sandbox.
fn namespace_owner<K: NamespaceOps>(
    k: &K,
    c: &rusqlite::Connection,
    id: netns::NsId,
) -> Result<Option<String>> {
    Ok(store::sandbox_netns_paths(c)?
        .into_iter()
        .find(|(_, path)| k.file_id(Path::new(path)) == Some(id))
        .map(|(name, _)| name))
}
