//! STATUS: whether an ADD could work now.

use netd_cni::{CniError, NetConf, code};

use super::open;
use crate::state_dir;

/// Ready when the state dir takes writes and netd opens (store, netlink,
/// nftables); 50 otherwise.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let dir = state_dir(conf);
    let probe = dir.join(format!(".status-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            CniError::new(
                code::NOT_AVAILABLE,
                format!("state dir {} is not writable", dir.display()),
            )
            .details(e.to_string())
        })?;
    open(conf).await.map_err(|e| {
        CniError::new(code::NOT_AVAILABLE, "netd cannot open its state").details(e.to_string())
    })?;
    Ok(())
}
