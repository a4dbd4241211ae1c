//! DEL: take the attachment away, and give the delegated lease back.

use netd::ops::attachment::Detached;
use netd_cni::{CniError, Env, NetConf, sandbox_name};

use super::{ipam_type, netd_error, open};
use crate::{ipam, reap, socket};

pub async fn del(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let netd_side = del_netd(conf, e).await;
    // The delegated plugin releases its lease whatever happened on netd's
    // side (a DEL after a failed ADD, or twice, must still free it).
    if let Some(kind) = ipam_type(conf) {
        ipam::exec(stdin, kind, "DEL", e)?;
    }
    netd_side
}

async fn del_netd(conf: &NetConf, e: &Env) -> Result<(), CniError> {
    // The links go after DEL has returned (see reap.rs).
    let netd = open(conf).await?.defer_link_removal();
    let name = sandbox_name(&e.container);
    let detached = netd
        .detach(&conf.name, &name, &e.ifname, e.netns.as_deref())
        .await;
    if let Ok(Detached::OtherNamespace { netns }) = &detached {
        eprintln!(
            "netd-cni: sandbox {name} is in {netns}, not {}: nothing to delete",
            e.netns.as_deref().unwrap_or("?")
        );
        return Ok(());
    }
    // Only a running daemon needs to forget the names, or to stop proxying
    // ports on [::1] (never start one for a DEL), and only when a sandbox
    // of this name was there.
    let tell = conf.dns() || crate::dns::proxied(conf);
    let dns = (tell && !matches!(detached, Ok(Detached::NoSandbox))).then(|| socket(conf));
    // An endpoint's ifb (its egress limit's, see shape.rs) is not deleted
    // by the kernel with the veth: it goes beside it, if it is there.
    let links: Vec<String> = netd
        .take_deferred_links()
        .into_iter()
        .flat_map(|veth| {
            let ifb = netd::model::ifb_of(&veth);
            std::iter::once(veth).chain(ifb)
        })
        .collect();
    reap::spawn(&links, dns.as_deref(), netd.firewall_socket().ok());
    detached.map(|_| ()).map_err(netd_error)
}
