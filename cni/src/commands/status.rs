//! STATUS: whether an ADD could work now, and if not, whether the
//! containers already attached are affected.

use netd_cni::{CniError, NetConf, code};

use crate::state_dir;

/// Ready when the state dir takes writes and netd opens (store, netlink,
/// nftables). Otherwise, as SPEC 1.1 splits them: 50 when netd's state is
/// what fails (no ADD can be recorded, but what the kernel has keeps
/// working), 51 when the kernel side fails (netlink or nf_tables cannot
/// be opened): no ADD either, and netd's firewall (published ports,
/// masquerade, isolation) cannot be kept, so existing containers may have
/// limited connectivity.
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
    netd::Netd::open(&dir).await.map_err(|e| {
        let c = unavailable(&e);
        let msg = if c == code::LIMITED_CONNECTIVITY {
            "netd cannot reach the kernel (netlink or nf_tables): existing containers' published ports and masquerade cannot be kept"
        } else {
            "netd cannot open its state"
        };
        CniError::new(c, msg).details(e.to_string())
    })?;
    Ok(())
}

/// The STATUS code for a failure to open netd, by its kind.
fn unavailable(e: &netd::Error) -> u32 {
    match e {
        netd::Error::Kernel(_) => code::LIMITED_CONNECTIVITY,
        _ => code::NOT_AVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_failures_are_limited_connectivity_state_failures_not_available() {
        assert_eq!(
            unavailable(&netd::Error::Kernel(netd::kernel::KernelError::failed(
                "nf_tables"
            ))),
            code::LIMITED_CONNECTIVITY
        );
        assert_eq!(
            unavailable(&netd::Error::Store("locked".into())),
            code::NOT_AVAILABLE
        );
        assert_eq!(
            unavailable(&netd::Error::Busy("lock".into())),
            code::NOT_AVAILABLE
        );
    }
}
