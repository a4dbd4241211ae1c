//! Docker's auxiliary addresses: reserved on both families, never handed
//! out, whatever the order of creates and removes.

use super::*;
use crate::error::Kind;

fn with_aux(name: &str) -> NetworkCreate {
    NetworkCreate {
        ipv6: true,
        subnet6: Some("fd00:70::/64".into()),
        aux_addresses: [
            ("router", "10.70.0.2"),
            ("printer", "10.70.0.7"),
            ("router6", "fd00:70::3"),
            ("far6", "fd00:70::40"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..net(name, "10.70.0.0/24")
    }
}

#[tokio::test]
async fn an_aux_address_is_never_handed_out_across_50_creates() {
    let t = world().await;
    let n = t.netd.create_network(&with_aux("aux")).await.unwrap();
    let b = n.bridge().unwrap();
    assert_eq!(
        b.ipv4.as_ref().unwrap().aux_addresses["router"].to_string(),
        "10.70.0.2"
    );
    assert_eq!(
        b.ipv6.as_ref().unwrap().aux_addresses["router6"].to_string(),
        "fd00:70::3"
    );
    let reserved4 = ["10.70.0.2", "10.70.0.7"];
    let reserved6 = ["fd00:70::3", "fd00:70::40"];
    let mut seen = 0;
    for i in 0..50 {
        let d = t.sandbox(&format!("s{i}"), "aux").await;
        let e = &d.endpoints[0].endpoint;
        let (ip, ip6) = (e.ip.unwrap().to_string(), e.ip6.unwrap().to_string());
        assert!(!reserved4.contains(&ip.as_str()), "s{i} got {ip}");
        assert!(!reserved6.contains(&ip6.as_str()), "s{i} got {ip6}");
        seen += 1;
        // Every third goes again, so released addresses (below the aux
        // ones) are handed out anew and the walk passes them repeatedly.
        if i % 3 == 0 {
            t.netd
                .remove_sandbox(format!("s{i}").as_str(), false)
                .await
                .unwrap();
        }
    }
    assert_eq!(seen, 50);
    // Nor asked for by name.
    for (ip, ip6) in [(Some("10.70.0.7"), None), (None, Some("fd00:70::40"))] {
        let req = SandboxCreate {
            endpoint: EndpointRequest {
                ip: ip.map(|a| a.parse().unwrap()),
                ip6: ip6.map(|a| a.parse().unwrap()),
                ..Default::default()
            },
            ..sandbox("static", "aux")
        };
        let e = t.netd.create_sandbox(&req).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains("auxiliary"), "{e}");
    }
    t.assert_consistent();
}

#[tokio::test]
async fn bad_aux_addresses_are_refused_naming_them() {
    let t = world().await;
    let bad = |name: &str, ip: &str| NetworkCreate {
        aux_addresses: [(name.to_string(), ip.to_string())].into(),
        ..with_aux("bad")
    };
    for (req, want) in [
        (
            bad("x", "10.71.0.9"),
            "x=10.71.0.9 is outside subnet 10.70.0.0/24",
        ),
        (bad("x", "10.70.0.1"), "x=10.70.0.1 is the gateway"),
        (
            bad("x", "fd00:71::9"),
            "x=fd00:71::9 is outside subnet fd00:70::/64",
        ),
        (bad("x", "fd00:70::1"), "x=fd00:70::1 is the gateway"),
        (bad("x", "nonsense"), "\"nonsense\""),
        (
            NetworkCreate {
                gateway: Some("10.70.0.254".into()),
                ..bad("gw", "10.70.0.254")
            },
            "gw=10.70.0.254 is the gateway",
        ),
    ] {
        let e = t.netd.create_network(&req).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want:?}");
    }
    let no_subnet = NetworkCreate {
        name: "nosub".into(),
        aux_addresses: [("x".to_string(), "10.70.0.9".to_string())].into(),
        ..Default::default()
    };
    let e = t.netd.create_network(&no_subnet).await.unwrap_err();
    assert!(e.to_string().contains("--aux-address need --subnet"), "{e}");
}
