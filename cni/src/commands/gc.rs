//! GC: forget the attachments of this network the runtime no longer lists.

use netd_cni::{CniError, Env, NetConf, code, sandbox_name, valid_attachments};
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
    // The daemon serves each sandbox's DNS from sockets in its namespace:
    // without a sync, those of the sandboxes removed here (and with them
    // their namespaces) stayed open until the next change on the host
    // (bench/soak.sh found it). Only a running daemon is asked.
    if conf.dns() && !report.removed.is_empty() {
        crate::dns::dns_sync(&socket(conf)).await;
    }
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(
            CniError::new(code::GENERIC, "GC could not remove every stale attachment")
                .details(report.failures.join("; ")),
        )
    }
}
