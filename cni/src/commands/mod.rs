//! The commands that touch netd's state: each reads the configuration and
//! environment into netd's requests, calls netd's operation, and turns its
//! outcome into a result or an error code. Codes are chosen by the kind of
//! the operation's error, never by its text.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::path::Path;

use netd::Netd;
use netd::kernel::netns;
use netd_cni::{CniError, NetConf, code};

use crate::state_dir;

pub use add::add;
pub use check::check;
pub use del::del;
pub use gc::gc;
pub use status::status;

/// The code for an error of netd's, by its kind.
fn netd_error(e: netd::Error) -> CniError {
    use netd::error::Kind;
    let c = match e.kind() {
        Kind::Invalid | Kind::NotFound | Kind::Forbidden => code::INVALID_CONFIG,
        // A lock (the store's, a sandbox's, the firewall's) stayed held past
        // netd's wait: the runtime may retry.
        Kind::Busy | Kind::Unavailable => code::TRY_LATER,
        Kind::Conflict | Kind::Internal => code::GENERIC,
    };
    CniError::new(c, e.to_string())
}

async fn open(conf: &NetConf) -> Result<Netd, CniError> {
    Netd::open(&state_dir(conf)).await.map_err(netd_error)
}

/// The delegated IPAM plugin's type, if the configuration names one.
fn ipam_type(conf: &NetConf) -> Option<&str> {
    conf.ipam.as_ref().and_then(|i| i["type"].as_str())
}

/// CNI_NETNS must be a live namespace, and not the one the plugin runs in.
fn check_netns(path: &str) -> Result<(), CniError> {
    if !netns::is_netns(Path::new(path)) {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {path} is not a network namespace"),
        ));
    }
    if netns::file_id(Path::new(path)) == netns::file_id(&netns::own_netns_path()) {
        return Err(CniError::new(
            code::INVALID_ENV,
            "the plugin's netns and the netns from CNI_NETNS should not be the same",
        )
        .details(path.to_string()));
    }
    Ok(())
}
