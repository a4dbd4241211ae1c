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

/// One message of a netlink batch.
pub struct Message<'a> {
    pub ty: u16,
    /// The netlink port id of whoever caused it.
    pub pid: u32,
    /// What follows the 16-byte header.
    pub body: &'a [u8],
}

/// The messages of a batch, in order; a truncated or malformed one ends it.
/// (netlink-packet-core parses whole typed messages; the watchers look at
/// two fields and one attribute, on every notification of a busy host.)
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let head = buf.get(off..off + 16)?;
        let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len < 16 || off + len > buf.len() {
            return None;
        }
        let m = Message {
            ty: u16::from_ne_bytes([head[4], head[5]]),
            pid: u32::from_ne_bytes([head[12], head[13], head[14], head[15]]),
            body: &buf[off + 16..off + len],
        };
        off += (len + 3) & !3;
        Some(m)
    })
}

/// The first attribute of type `want` among netlink attributes `attrs`,
/// as a string's bytes (up to its NUL).
pub fn string_attr(attrs: &[u8], want: u16) -> Option<&[u8]> {
    let mut a = 0;
    while a + 4 <= attrs.len() {
        let alen = u16::from_ne_bytes([attrs[a], attrs[a + 1]]) as usize;
        let atype = u16::from_ne_bytes([attrs[a + 2], attrs[a + 3]]) & 0x3fff;
        if alen < 4 || a + alen > attrs.len() {
            return None;
        }
        if atype == want {
            return attrs[a + 4..a + alen].split(|b| *b == 0).next();
        }
        a += (alen + 3) & !3;
    }
    None
}
