//! What the daemon does for the host it runs on: its open-file limit and
//! systemd's readiness protocol.

use tracing::{info, warn};

/// Raise the soft RLIMIT_NOFILE to the hard limit. The daemon holds two
/// sockets per sandbox served by DNS (docs/operations.md), so the usual soft
/// default of 1,024 runs out near 500 sandboxes while the hard limit (often
/// 524,288 under systemd) would allow far more. The soft limit exists for
/// programs that use `select(2)`; netd's runtime is epoll. A failure is
/// logged, never fatal: the daemon still runs with what it has.
pub fn raise_nofile_limit() {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(l) => l,
        Err(e) => return warn!("reading RLIMIT_NOFILE: {e}"),
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) => info!(
            soft = now,
            was = soft,
            hard,
            "open files limit (RLIMIT_NOFILE)"
        ),
        Err(e) => warn!(soft, hard, "raising RLIMIT_NOFILE to the hard limit: {e}"),
    }
}

/// Tell systemd (Type=notify) that the API socket serves, or that the
/// daemon is stopping. Without NOTIFY_SOCKET (not started by systemd) this
/// does nothing; a failure to notify is logged, and systemd's start timeout
/// reports it.
pub fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!("sd_notify: {e}");
    }
}
