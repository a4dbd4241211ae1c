//! Listening to the kernel's netlink notifications: a socket joined to one
//! multicast group in the calling thread's namespace, read on a thread of
//! its own that sleeps in `recv` while nothing changes. The link watcher
//! and the nftables watcher differ only in what they look for.

use anyhow::{Context, Result};
use netlink_sys::Socket;

/// What a listener is told.
pub enum Notice<'a> {
    /// One datagram: a batch of netlink messages.
    Batch(&'a [u8]),
    /// The socket overran and notifications were lost.
    Overrun,
    /// The socket failed; nothing more will come.
    Stopped(std::io::Error),
}

/// Join `group` of netlink `protocol` and call `on_notice` for every batch,
/// on a thread named `thread`. `rcvbuf` asks for a receive buffer beyond
/// the system's maximum (SO_RCVBUFFORCE, root only); failing that, the
/// default is used and overruns are reported as such.
pub fn listen(
    protocol: isize,
    group: u32,
    rcvbuf: Option<usize>,
    thread: &str,
    mut on_notice: impl FnMut(Notice<'_>) + Send + 'static,
) -> Result<()> {
    let mut sock = Socket::new(protocol).context("open a netlink notification socket")?;
    // An unbound netlink socket gets no multicast delivery.
    sock.bind_auto()
        .context("bind the netlink notification socket")?;
    sock.add_membership(group)
        .with_context(|| format!("join netlink notification group {group}"))?;
    if let Some(size) = rcvbuf {
        force_rcvbuf(&sock, size);
    }
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut buf = Vec::with_capacity(1 << 16);
            loop {
                buf.clear();
                match sock.recv(&mut buf, 0) {
                    Ok(_) => on_notice(Notice::Batch(&buf)),
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => on_notice(Notice::Overrun),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        on_notice(Notice::Stopped(e));
                        return;
                    }
                }
            }
        })
        .with_context(|| format!("start {thread}"))?;
    Ok(())
}

/// netlink-sys sets SO_RCVBUF, which the system's rmem_max caps; a burst
/// of notifications (a table of 20,000 ports rebuilt) needs more. Best
/// effort: the default works too, with overruns reported.
fn force_rcvbuf(sock: &Socket, size: usize) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket we own, with a c_int option value.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        tracing::warn!(
            "could not enlarge the notification socket's buffer: {}",
            std::io::Error::last_os_error()
        );
    }
}
