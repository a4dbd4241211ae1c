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
//!
//! An IPv6 element without a host address is probed on `[::]` with
//! `IPV6_V6ONLY`, so it answers for IPv6 only, as the element publishes: a
//! dual-stack listener on `[::]` still counts, since it holds both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd};

use crate::model::Proto;
use crate::plan::firewall::PortElement;

#[derive(Debug, thiserror::Error)]
pub enum HostPortError {
    #[error("cannot publish on {0}: it is not an address of this host")]
    NotLocal(IpAddr),
    #[error(
        "port {port}/{proto} is already in use on the host{}: a socket is bound to it",
        on(*.addr)
    )]
    InUse {
        addr: Option<IpAddr>,
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

fn on(addr: Option<IpAddr>) -> String {
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
        // The element's family decides what "every address" means.
        let addr = e.host_ip.unwrap_or(match e.addr {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        });
        probe(addr, e.proto, e.host_port)?;
    }
    Ok(())
}

/// Global, unlike `/proc/net/sctp`, which shows the namespace of the
/// process's main thread rather than the calling thread's.
fn sctp_loaded() -> bool {
    std::path::Path::new("/sys/module/sctp").exists()
}

fn set_int(fd: libc::c_int, level: libc::c_int, opt: libc::c_int) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: an int option on our own fd.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn probe(addr: IpAddr, proto: Proto, port: u16) -> Result<(), HostPortError> {
    let io = |err| HostPortError::Io { port, proto, err };
    let (ty, p) = match proto {
        Proto::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        Proto::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        Proto::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    };
    let family = match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: a plain socket call; the fd is owned below.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, p) };
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
        set_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR).map_err(io)?;
    }
    let r = match addr {
        IpAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: bind with a valid sockaddr_in of the right length.
            unsafe {
                libc::bind(
                    raw,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            }
        }
        IpAddr::V6(a) => {
            // [::] would otherwise also bind every IPv4 address (with
            // bindv6only=0) and see IPv4 holders that this element does
            // not touch.
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).map_err(io)?;
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: bind with a valid sockaddr_in6 of the right length.
            unsafe {
                libc::bind(
                    raw,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as u32,
                )
            }
        }
    };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => Err(HostPortError::NotLocal(addr)),
        Some(libc::EADDRINUSE) => Err(HostPortError::InUse {
            addr: Some(addr).filter(|a| !a.is_unspecified() || a.is_ipv6()),
            port,
            proto,
        }),
        _ => Err(io(err)),
    }
}
