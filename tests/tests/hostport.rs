//! The host-port probe against the real kernel: a port held by a socket
//! and an address that is not the host's are refused, what is free is not.
//! Binds in a namespace of the test's own with only `lo` (CAP_SYS_ADMIN to
//! join it), which is why this is not one of `netd`'s unit tests.

use std::net::Ipv4Addr;

use netd::kernel::hostport::{HostPortError, check};
use netd::model::Proto;
use netd::plan::firewall::PortElement;
use netd_tests::{Netns, in_ns};

fn el(host_ip: Option<Ipv4Addr>, proto: Proto, host_port: u16) -> PortElement {
    PortElement {
        host_ip,
        proto,
        host_port,
        addr: Ipv4Addr::new(10, 0, 0, 2),
        port: 80,
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
            matches!(err, HostPortError::NotLocal(a) if a == far),
            "{err}"
        );
        assert!(err.to_string().contains("198.51.100.2"), "{err}");
        drop(tcp);
        check(&[el(None, Proto::Tcp, t)]).unwrap();
    });
}
