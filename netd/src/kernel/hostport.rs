//! Whether a published port would take something from the host: its host
//! address must be one of the host's own, and no socket in the host
//! namespace may hold the port already (Docker refuses both, through the
//! proxy it binds to every published port; netd publishes with DNAT only,
//! so it asks the kernel the same question with a bind that is closed
//! again at once).
//!
//! A bind answers exactly what matters: `EADDRNOTAVAIL` when the address is
//! not local (the test `fib daddr type local` makes in the datapath), and
//! `EADDRINUSE` when a socket holds the port on that address or on every
//! address. Costs four system calls per port, in the calling thread's
//! namespace (the host's).

use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::model::Proto;
use crate::plan::firewall::PortElement;

#[derive(Debug, thiserror::Error)]
pub enum HostPortError {
    #[error("cannot publish on {0}: it is not an address of this host")]
    NotLocal(Ipv4Addr),
    #[error(
        "port {port}/{proto} is already in use on the host{}: a socket is bound to it",
        on(*.addr)
    )]
    InUse {
        addr: Option<Ipv4Addr>,
        port: u16,
        proto: Proto,
    },
    #[error("check host port {port}/{proto}: {err}")]
    Io {
        port: u16,
        proto: Proto,
        err: std::io::Error,
    },
}

fn on(addr: Option<Ipv4Addr>) -> String {
    addr.map(|a| format!(" (on {a})")).unwrap_or_default()
}

/// Check every element's host side; the first problem found.
pub fn check(elems: &[PortElement]) -> Result<(), HostPortError> {
    let sctp = sctp_loaded();
    for e in elems {
        if e.proto == Proto::Sctp && !sctp {
            // Nothing can hold an SCTP port while the module is not loaded,
            // and opening an SCTP socket would load it.
            continue;
        }
        probe(e.host_ip, e.proto, e.host_port)?;
    }
    Ok(())
}

/// Global, unlike `/proc/net/sctp`, which shows the namespace of the
/// process's main thread rather than the calling thread's.
fn sctp_loaded() -> bool {
    std::path::Path::new("/sys/module/sctp").exists()
}

fn probe(addr: Option<Ipv4Addr>, proto: Proto, port: u16) -> Result<(), HostPortError> {
    let io = |err| HostPortError::Io { port, proto, err };
    let (ty, p) = match proto {
        Proto::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        Proto::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        Proto::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    };
    // SAFETY: a plain socket call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, p) };
    if fd < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    if proto != Proto::Udp {
        // So that connections in TIME_WAIT do not count as holding the
        // port; a listener still does. Not for UDP, where two sockets with
        // SO_REUSEADDR may share a port and a holder would go unseen.
        let one: libc::c_int = 1;
        // SAFETY: an int option on our own fd.
        let r = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
    }
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr.unwrap_or(Ipv4Addr::UNSPECIFIED)).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: bind with a valid sockaddr_in of the right length.
    let r = unsafe {
        libc::bind(
            raw,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => Err(HostPortError::NotLocal(
            addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        )),
        Some(libc::EADDRINUSE) => Err(HostPortError::InUse { addr, port, proto }),
        _ => Err(io(err)),
    }
}
