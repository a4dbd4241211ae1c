//! The netfilter netlink socket that sends netd's batches.

use std::ffi::c_void;

use anyhow::{Context, Result, anyhow, bail};
use nftnl::nftnl_sys::libc;
use nftnl::{Batch, FinalizedBatch, MsgType, ProtoFamily, Table};

use super::TABLE;
use super::batch::full_batch;
use super::maps::{ElemsMsg, element_sets};
use crate::plan::firewall::{FirewallPlan, PortElement};

/// The first non-zero error in a buffer of netlink messages, as a positive errno.
fn first_error(buf: &[u8]) -> Option<i32> {
    const NLMSG_ERROR: u16 = 2;
    let mut off = 0;
    while off + 20 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if ty == NLMSG_ERROR {
            let err =
                i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
            if err != 0 {
                return Some(-err);
            }
        }
        off += (len + 3) & !3;
    }
    None
}

/// The smallest send buffer a netlink socket has (net.core.wmem_default
/// is 212,992 on every kernel we run on; a smaller one only means an early
/// raise).
const DEFAULT_SNDBUF: usize = 64 * 1024;

/// A netfilter netlink socket in the calling thread's namespace.
pub struct Nft {
    sock: mnl::Socket,
    /// What the send buffer is known to hold (the kernel's default until
    /// a large batch raised it).
    sndbuf: std::cell::Cell<usize>,
}

impl Nft {
    pub fn open() -> Result<Nft> {
        let sock =
            mnl::Socket::new(mnl::Bus::Netfilter).context("open netfilter netlink socket")?;
        let nft = Nft {
            sock,
            sndbuf: std::cell::Cell::new(DEFAULT_SNDBUF),
        };
        let fd = nft.fd();
        // SAFETY: fcntl on the socket's own fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            bail!(
                "make netfilter socket non-blocking: {}",
                std::io::Error::last_os_error()
            );
        }
        // Errors without the failed request echoed back: a refused batch of
        // large element messages would otherwise overflow the receive buffer
        // and leave stale answers for the next batch.
        let one: libc::c_int = 1;
        // SAFETY: an int option on our own fd.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_NETLINK,
                libc::NETLINK_CAP_ACK,
                &one as *const _ as *const c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            bail!(
                "set NETLINK_CAP_ACK on the netfilter socket: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(nft)
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        // SAFETY: reads the fd of the socket we own.
        unsafe { mnl::mnl_sys::mnl_socket_get_fd(self.sock.as_raw_socket()) }
    }

    /// The netlink port id: notifications caused by this socket carry it.
    pub fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// Send a batch and collect its answers. The kernel processes a batch
    /// synchronously inside sendmsg, so every ack and error is queued on the
    /// socket when send returns: read until the queue is empty (a failed batch
    /// is not acked to the end, so counting acks would wait forever).
    pub(super) fn send(&self, batch: &FinalizedBatch) -> Result<()> {
        self.send_whole(batch).context("send nftables batch")?;
        let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
        let mut first_err: Option<i32> = None;
        loop {
            match self.sock.recv_raw(&mut buf[..]) {
                Ok(n) => {
                    if let Some(e) = first_error(&buf[..n]) {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Answers were lost: the batch's outcome is unknown, so treat
                // it as failed, and keep draining so nothing stale is left.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    first_err.get_or_insert(libc::ENOBUFS);
                }
                Err(e) => return Err(e).context("receive nftables acks"),
            }
        }
        match first_err {
            Some(errno) => Err(anyhow!(std::io::Error::from_raw_os_error(errno))),
            None => Ok(()),
        }
    }

    /// Send the batch in one `sendmsg`. nftnl splits a batch into pages of
    /// 128 KiB (about 3,000 port elements); the kernel takes a batch from
    /// one message only, and a page sent on its own is a batch without its
    /// end, which it refuses with EINVAL. The message must also fit the
    /// socket's send buffer (212,992 bytes by default), so the buffer is
    /// raised to the batch's size first, as `nft` does for large rulesets.
    fn send_whole(&self, batch: &FinalizedBatch) -> std::io::Result<()> {
        let mut iov: Vec<libc::iovec> = batch
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut c_void,
                iov_len: b.len(),
            })
            .collect();
        let total: usize = iov.iter().map(|v| v.iov_len).sum();
        self.ensure_sndbuf(total)?;
        // The kernel's address: port 0.
        // SAFETY: zeroed sockaddr_nl is a valid "kernel" address.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msghdr points at `to` and `iov`, alive for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &mut to as *mut _ as *mut c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        loop {
            // SAFETY: see above; the buffers stay borrowed from `batch`.
            let n = unsafe { libc::sendmsg(self.fd(), &msg, 0) };
            if n >= 0 {
                if n as usize != total {
                    return Err(std::io::Error::other(format!(
                        "sent {n} of {total} bytes of a batch"
                    )));
                }
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Make the send buffer hold `len` bytes. Only ever grown, and only for
    /// a batch larger than the default: the hot path (a few elements) pays
    /// one comparison.
    fn ensure_sndbuf(&self, len: usize) -> std::io::Result<()> {
        // netlink refuses a message longer than sk_sndbuf - 32.
        let want = len + 4096;
        if want <= self.sndbuf.get() {
            return Ok(());
        }
        let v = libc::c_int::try_from(want).map_err(|_| {
            std::io::Error::other(format!("an nftables batch of {len} bytes is too large"))
        })?;
        // SAFETY: setsockopt with an int option on our own fd. FORCE needs
        // CAP_NET_ADMIN, which changing nftables needs anyway.
        let r = unsafe {
            libc::setsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                &v as *const _ as *const c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.sndbuf.set(want);
        Ok(())
    }

    /// Replace the table with exactly `plan`, atomically.
    pub fn apply(&self, plan: &FirewallPlan) -> Result<()> {
        self.send(&full_batch(plan))
            .context("apply table inet netd")
    }

    /// Add (`MsgType::Add`) or remove (`MsgType::Del`) port elements. Fails if
    /// the table is missing (or, for removal, an element is), so the caller
    /// can fall back to a full apply.
    pub fn elements(&self, elems: &[PortElement], op: MsgType) -> Result<()> {
        if elems.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        let sets = element_sets(elems);
        for s in &sets {
            batch.add(&ElemsMsg(s), op);
        }
        self.send(&batch.finalize())
            .context("update published ports")
    }

    /// Remove the table (nothing else). Gone already is fine.
    pub fn remove(&self) -> Result<()> {
        let mut batch = Batch::new();
        let table = Table::new(TABLE, ProtoFamily::Inet);
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        self.send(&batch.finalize())
            .context("remove table inet netd")
    }
}
