//! netd's nftables adapter against the real kernel: the table applied, port
//! elements added and withdrawn, batches larger than one nftnl page, and the
//! watcher that tells someone else's removals from netd's own changes.
//!
//! Each test works in a namespace of its own: the sockets are opened on a
//! thread that has joined it (`in_ns`), so the table never lands in the
//! root namespace. These need CAP_NET_ADMIN, which is why they live here and
//! not in `netd`'s unit tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use netd::kernel::firewall::{Change, watch};
use netd::kernel::nft::Nft;
use netd::model::Proto;
use netd::plan::firewall::{FirewallPlan, PortElement};
use netd_tests::{Netns, in_ns};
use nftnl::MsgType;

fn netns(tag: &str) -> Netns {
    Netns::new(&format!("nftk{}{tag}", std::process::id()))
}

#[test]
fn apply_add_and_remove_elements_in_a_private_namespace() {
    let ns = netns("e");
    in_ns(ns.name(), || {
        let nft = Nft::open().unwrap();
        let e = PortElement {
            host_ip: None,
            proto: Proto::Tcp,
            host_port: 8080,
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            port: 80,
            direct: false,
            trusted: false,
        };
        let err = nft.elements(&[e], MsgType::Del).unwrap_err();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
        nft.apply(&FirewallPlan {
            networks: vec![],
            ports: vec![e],
            ..Default::default()
        })
        .unwrap();
        nft.elements(&[e], MsgType::Del).unwrap();
        assert!(
            nft.elements(&[e], MsgType::Del).is_err(),
            "deleting twice must fail"
        );
        nft.elements(&[e], MsgType::Add).unwrap();
        nft.elements(&[e], MsgType::Add)
            .expect("adding the same element again is not an error");
        let changed = PortElement { port: 81, ..e };
        assert!(
            nft.elements(&[changed], MsgType::Add).is_err(),
            "same key, other target"
        );
        nft.remove().unwrap();
    });
}

/// A batch larger than one nftnl page (128 KiB, ~3,000 elements) goes
/// out whole: a full apply and an element update of 20,000 ports.
#[test]
fn batches_of_any_size_in_a_private_namespace() {
    let ns = netns("b");
    in_ns(ns.name(), || {
        let nft = Nft::open().unwrap();
        let ports: Vec<PortElement> = (0..20_000u16)
            .map(|i| PortElement {
                host_ip: (i % 2 == 0).then_some(Ipv4Addr::LOCALHOST.into()),
                proto: Proto::Tcp,
                host_port: 10_000 + i,
                addr: Ipv4Addr::new(10, 0, 0, 2).into(),
                port: 80,
                direct: false,
                trusted: false,
            })
            .collect();
        nft.apply(&FirewallPlan {
            networks: vec![],
            ports: ports.clone(),
            ..Default::default()
        })
        .unwrap();
        // Deleting succeeds only if every element is there.
        nft.elements(&ports, MsgType::Del).unwrap();
        nft.elements(&ports, MsgType::Add).unwrap();
        nft.elements(&ports, MsgType::Del).unwrap();
        assert!(nft.elements(&ports[..1], MsgType::Del).is_err());
        nft.remove().unwrap();
    });
}

/// IPv6 elements in their own maps, and the routed set, next to IPv4 ones:
/// applied, withdrawn and added again, listed by `nft` as they were meant.
#[test]
fn ipv6_elements_and_routed_set_in_a_private_namespace() {
    let ns = Netns::new(&format!("fw6xnftk{}", std::process::id()));
    let name = ns.name().to_string();
    in_ns(ns.name(), move || {
        let nft = Nft::open().unwrap();
        let c6: IpAddr = "fd00:9::2".parse().unwrap();
        let v4 = PortElement {
            host_ip: None,
            proto: Proto::Tcp,
            host_port: 8080,
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            port: 80,
            direct: false,
            trusted: false,
        };
        let any6 = PortElement {
            addr: c6,
            direct: true,
            trusted: false,
            ..v4
        };
        let one6 = PortElement {
            host_ip: Some("2001:db8::1".parse::<Ipv6Addr>().unwrap().into()),
            proto: Proto::Udp,
            host_port: 5353,
            port: 53,
            ..any6
        };
        let all = [v4, any6, one6];
        nft.apply(&FirewallPlan {
            networks: vec![],
            ports: all.to_vec(),
            ..Default::default()
        })
        .unwrap();
        let list = |what: &str| {
            let out = std::process::Command::new("nft")
                .args(["list", "table", "inet", "netd"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.contains(what), "{what} missing in {name}:\n{text}");
            text
        };
        list("tcp . 8080 : fd00:9::2 . 80");
        list("2001:db8::1 . udp . 5353 : fd00:9::2 . 53");
        list("fd00:9::2 . tcp . 80");
        list("fd00:9::2 . udp . 53");
        list("tcp . 8080 : 10.0.0.2 . 80");
        nft.elements(&all, MsgType::Del).unwrap();
        assert!(nft.elements(&[one6], MsgType::Del).is_err());
        nft.elements(&all, MsgType::Add).unwrap();
        list("2001:db8::1 . udp . 5353 : fd00:9::2 . 53");
        nft.remove().unwrap();
    });
}

/// Someone else's deletion wakes the watcher, our own changes do not.
#[test]
fn watcher_sees_foreign_removals_only() {
    let ns = netns("w");
    in_ns(ns.name(), || {
        let ours = Nft::open().unwrap();
        let theirs = Nft::open().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        watch(ours.portid(), move |c| {
            if c == Change::OwnTable {
                h.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
        ours.apply(&FirewallPlan::default()).unwrap();
        ours.apply(&FirewallPlan::default()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "our own re-apply is not an outside change"
        );
        theirs.remove().unwrap();
        for _ in 0..50 {
            if hits.load(Ordering::SeqCst) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            hits.load(Ordering::SeqCst) > 0,
            "a foreign table deletion went unnoticed"
        );
    });
}
