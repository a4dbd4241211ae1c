//! GC: forget the attachments of this network the runtime no longer lists.

use netd_cni::{CniError, Env, NetConf, code, sandbox_name, valid_attachments};
use std::collections::BTreeSet;

use netd::kernel::Netlink;
use netd::model::is_ifb_name;
use serde_json::Value;

use super::{ipam_type, netd_error, open};
use crate::{ipam, socket};

/// GC of netd's side, then of the delegated IPAM plugin's (the same list:
/// it frees the leases of attachments that are gone), also when netd's
/// side failed part-way; an invalid list stops both before anything.
pub async fn gc(conf: &NetConf, raw: &Value, e: &Env, stdin: &[u8]) -> Result<(), CniError> {
    valid_attachments(raw)?;
    let netd_side = gc_netd(conf, raw).await;
    if let Some(kind) = ipam_type(conf) {
        ipam::gc(stdin, kind, e)?;
    }
    netd_side
}

/// Remove every attachment of this network that the runtime no longer
/// lists; keep going past failures and report them at the end.
async fn gc_netd(conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    let valid: Vec<(String, String)> = valid_attachments(raw)?
        .into_iter()
        .map(|(c, i)| (sandbox_name(&c), i))
        .collect();
    // Links go after their records, so a daemon watching links never takes
    // one of these deletions for someone else's and puts the link back.
    let netd = open(conf).await?.defer_link_removal();
    let report = netd
        .gc_attachments(&conf.name, &valid)
        .await
        .map_err(netd_error)?;
    for (sandbox, ifname) in &report.removed {
        eprintln!("netd-cni: GC removed {sandbox}/{ifname} from {}", conf.name);
    }
    let mut failures = report.failures;
    if let Err(e) = sweep_ifbs(&netd).await {
        failures.push(format!("ifbs: {e}"));
    }
    // The daemon serves each sandbox's DNS from sockets in its namespace:
    // without a sync, those of the sandboxes removed here (and with them
    // their namespaces) stayed open until the next change on the host
    // (bench/soak.sh found it). Only a running daemon is asked.
    if conf.dns() && !report.removed.is_empty() {
        crate::dns::dns_sync(&socket(conf)).await;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(
            CniError::new(code::GENERIC, "GC could not remove every stale attachment")
                .details(failures.join("; ")),
        )
    }
}

/// Delete every ifb (an egress limit's, see shape.rs) whose endpoint is
/// gone, of any network: the veths went just now with their endpoints,
/// and the kernel never deletes an ifb with its veth; an earlier DEL's
/// reaper may also have died before it. Links first, records second (as
/// the daemon's reconcile): an ADD records its endpoint before it makes
/// the ifb, so one listed here that no record owns is an orphan.
async fn sweep_ifbs(netd: &netd::Netd) -> anyhow::Result<()> {
    let host = Netlink::current()?;
    let ifbs: Vec<String> = host
        .links()
        .await?
        .into_iter()
        .map(|l| l.name)
        .filter(|n| is_ifb_name(n))
        .collect();
    if ifbs.is_empty() {
        return Ok(());
    }
    let live: BTreeSet<String> = netd
        .list_sandboxes()?
        .iter()
        .flat_map(|s| s.endpoints.iter().map(|e| e.endpoint.ifb().to_string()))
        .collect();
    let mut failed = Vec::new();
    for ifb in ifbs.iter().filter(|i| !live.contains(*i)) {
        match host.delete_link(ifb).await {
            Ok(()) => eprintln!("netd-cni: GC removed {ifb}, whose endpoint is gone"),
            Err(e) => failed.push(format!("{ifb}: {e:#}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}
