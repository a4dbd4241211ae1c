//! The host-port probe against the real kernel: a port held by a socket
//! and an address that is not the host's are refused, what is free is not.
//! Binds in a namespace of the test's own with only `lo` (CAP_SYS_ADMIN to
//! join it), which is why this is not one of `netd`'s unit tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netd::kernel::hostport::{HostPortError, check};
use netd::model::Proto;
use netd::plan::firewall::PortElement;
use netd_tests::{Netns, in_ns};

fn el(host_ip: Option<Ipv4Addr>, proto: Proto, host_port: u16) -> PortElement {
    PortElement {
        host_ip: host_ip.map(IpAddr::V4),
        proto,
        host_port,
        addr: Ipv4Addr::new(10, 0, 0, 2).into(),
        port: 80,
        direct: false,
        trusted: false,
    }
}

/// An IPv6 element: to a container's IPv6 address.
fn el6(host_ip: Option<Ipv6Addr>, proto: Proto, host_port: u16) -> PortElement {
    PortElement {
        host_ip: host_ip.map(IpAddr::V6),
        addr: "fd00::2".parse().unwrap(),
        ..el(None, proto, host_port)
    }
}

#[test]
fn bound_ports_and_foreign_addresses_are_refused() {
    let ns = Netns::new(&format!("hp{}", std::process::id()));
    in_ns(ns.name(), || {
        let lo = Ipv4Addr::LOCALHOST;
        let tcp = std::net::TcpListener::bind((lo, 0)).unwrap();
        let t = tcp.local_addr().unwrap().port();
        let udp = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let u = udp.local_addr().unwrap().port();
        for e in [
            el(Some(lo), Proto::Tcp, t),
            el(None, Proto::Tcp, t),
            el(Some(lo), Proto::Udp, u),
            el(None, Proto::Udp, u),
        ] {
            match check(&[e]) {
                Err(HostPortError::InUse { port, proto, .. }) => {
                    assert_eq!((port, proto), (e.host_port, e.proto));
                }
                other => panic!("{e:?}: {other:?}"),
            }
        }
        // Another address, another protocol: free.
        check(&[el(Some(Ipv4Addr::new(127, 0, 0, 2)), Proto::Tcp, t)]).unwrap();
        check(&[el(Some(lo), Proto::Udp, t)]).unwrap();
        let far = Ipv4Addr::new(198, 51, 100, 2);
        let err = check(&[el(Some(far), Proto::Tcp, 7777)]).unwrap_err();
        assert!(
            matches!(err, HostPortError::NotLocal(a) if a == IpAddr::V4(far)),
            "{err}"
        );
        assert!(err.to_string().contains("198.51.100.2"), "{err}");
        drop(tcp);
        // Free once the listener is closed. Seen once in CI still held
        // right after the close: allow the kernel a moment, not more.
        let start = std::time::Instant::now();
        while let Err(e) = check(&[el(None, Proto::Tcp, t)]) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(2),
                "port {t} still held 2 s after its listener closed: {e}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
}

/// IPv6: a socket on [::1] or [::] holds the port for every IPv6 address;
/// an IPv4-only socket does not, nor does an IPv6-only one for IPv4; an
/// IPv6 address that is not the host's is refused, naming it.
#[test]
fn ipv6_probes_answer_for_ipv6_only() {
    let ns = Netns::new(&format!("fw6xhp{}", std::process::id()));
    in_ns(ns.name(), || {
        let lo6 = Ipv6Addr::LOCALHOST;
        // Bound to one IPv6 address, a socket is IPv6-only by nature.
        let v6only = std::net::TcpListener::bind((lo6, 0)).unwrap();
        let t = v6only.local_addr().unwrap().port();
        for e in [el6(Some(lo6), Proto::Tcp, t), el6(None, Proto::Tcp, t)] {
            match check(&[e]) {
                Err(HostPortError::InUse { port, .. }) => assert_eq!(port, t),
                other => panic!("{e:?}: {other:?}"),
            }
        }
        let err = check(&[el6(None, Proto::Tcp, t)]).unwrap_err();
        assert!(err.to_string().contains("(on ::)"), "{err}");
        // The IPv4 side of the same port is free, UDP is free.
        check(&[el(None, Proto::Tcp, t)]).unwrap();
        check(&[el6(None, Proto::Udp, t)]).unwrap();
        // An IPv4 listener on 0.0.0.0 does not hold the IPv6 port.
        let v4 = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let p4 = v4.local_addr().unwrap().port();
        check(&[el6(None, Proto::Tcp, p4)]).unwrap();
        assert!(check(&[el(None, Proto::Tcp, p4)]).is_err());
        // Not the host's.
        let far: Ipv6Addr = "2001:db8:999::1".parse().unwrap();
        let err = check(&[el6(Some(far), Proto::Tcp, 7777)]).unwrap_err();
        assert!(
            matches!(err, HostPortError::NotLocal(a) if a == IpAddr::V6(far)),
            "{err}"
        );
        assert!(err.to_string().contains("2001:db8:999::1"), "{err}");
    });
}
