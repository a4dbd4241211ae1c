//! The fake's VXLAN side, which the operations' tests only call through.

use std::net::Ipv4Addr;

use super::*;
use crate::model::Mac;

fn bridge(name: &str) -> BridgePlan {
    BridgePlan {
        name: name.into(),
        address: Some("10.77.0.1/24".parse().unwrap()),
        address6: None,
        mtu: None,
        forward: true,
        mac: None,
        vxlan: None,
    }
}

fn vxlan(name: &str, vni: u32) -> VxlanPlan {
    VxlanPlan {
        name: name.into(),
        vni,
        bridge: "nd-ov".into(),
        mtu: 1450,
    }
}

fn peer(last: u8) -> OverlayPeer {
    OverlayPeer {
        mac: Mac([2, 0x42, 10, 77, 0, last]),
        vtep: Ipv4Addr::new(192, 168, 77, 2),
        addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 77, 0, last))],
    }
}

#[tokio::test]
async fn a_vxlan_device_is_a_port_of_its_bridge_with_its_peers() {
    let k = FakeKernel::new(Path::new("/nonexistent"));
    let b = k.apply_bridge(&bridge("nd-ov")).await.unwrap();
    k.apply_vxlan(&vxlan("netdvx-1", 42), b).await.unwrap();
    k.sync_peers("netdvx-1", &[peer(3), peer(2)]).await.unwrap();
    let w = k.world();
    assert_eq!(w.links["netdvx-1"].kind, "vxlan");
    assert_eq!(w.links["netdvx-1"].controller.as_deref(), Some("nd-ov"));
    assert_eq!(w.vxlans["netdvx-1"].peers, vec![peer(2), peer(3)]);
    // Applied again: nothing changes.
    k.apply_vxlan(&vxlan("netdvx-1", 42), b).await.unwrap();
    k.sync_peers("netdvx-1", &[peer(2), peer(3)]).await.unwrap();
    assert_eq!(k.world(), w);
    // Another VNI: made again, without the old peers.
    k.apply_vxlan(&vxlan("netdvx-1", 43), b).await.unwrap();
    assert_eq!(k.world().vxlans["netdvx-1"].vni, 43);
    assert!(k.world().vxlans["netdvx-1"].peers.is_empty());
    k.delete_host_link("netdvx-1").await.unwrap();
    assert!(k.world().vxlans.is_empty());
    assert!(k.sync_peers("netdvx-1", &[]).await.is_err());
}

#[tokio::test]
async fn a_foreign_link_is_refused_and_faults_are_injected() {
    let k = FakeKernel::new(Path::new("/nonexistent"));
    let b = k.apply_bridge(&bridge("nd-ov")).await.unwrap();
    k.add_foreign_link("netdvx-1", "veth");
    let e = k.apply_vxlan(&vxlan("netdvx-1", 42), b).await.unwrap_err();
    assert!(e.is_taken(), "{e}");
    k.fail_after(0);
    let e = k.apply_vxlan(&vxlan("netdvx-2", 42), b).await.unwrap_err();
    assert!(!e.is_taken(), "{e}");
    assert!(!k.world().links.contains_key("netdvx-2"));
    k.apply_vxlan(&vxlan("netdvx-2", 42), b).await.unwrap();
    k.fail_after(0);
    assert!(k.sync_peers("netdvx-2", &[peer(2)]).await.is_err());
    assert!(k.world().vxlans["netdvx-2"].peers.is_empty());
}
