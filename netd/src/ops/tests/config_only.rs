//! Docker's config-only networks and `--config-from`, against the fake
//! kernel: a config-only network is a record and nothing else; a network
//! made from it is an ordinary bridge network with its settings.

use super::*;
use crate::error::Kind;
use crate::model::OPT_MTU;

/// `--config-only` with every kind of IPAM setting and an option.
fn cfg(name: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        config_only: true,
        subnet: Some("10.70.0.0/24".into()),
        gateway: Some("10.70.0.254".into()),
        ip_range: Some("10.70.0.128/25".into()),
        ipv6: true,
        subnet6: Some("fd00:70::/64".into()),
        aux_addresses: [("router".to_string(), "10.70.0.200".to_string())].into(),
        options: [(OPT_MTU.to_string(), "1400".to_string())].into(),
        labels: [("team".to_string(), "a".to_string())].into(),
        ..Default::default()
    }
}

fn from(name: &str, config: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        config_from: Some(config.into()),
        ..Default::default()
    }
}

fn setup_cfg(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.create_network(&cfg("cfg")).await.map(|_| ()) })
}

fn create_real(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&from("real", "cfg"))
            .await
            .map(|_| ())
    })
}

#[tokio::test]
async fn a_config_only_network_is_a_record_and_nothing_in_the_kernel() {
    let t = world().await;
    let (calls, kernel) = (t.k().count(), t.k().world());
    let n = t.netd.create_network(&cfg("cfg")).await.unwrap();
    assert_eq!(t.k().count(), calls, "{:?}", t.k().calls());
    assert_eq!(t.k().world(), kernel);
    assert_eq!(n.driver.name(), "null");
    assert!(n.bridge().is_none());
    let c = n.config_only().unwrap();
    assert_eq!(c.subnet.unwrap().to_string(), "10.70.0.0/24");
    assert_eq!(c.subnet6.unwrap().to_string(), "fd00:70::/64");
    assert_eq!(c.aux_addresses["router"].to_string(), "10.70.0.200");
    // Its subnet is not taken: only the network made from it takes it.
    let direct = t.network("direct", "10.70.0.0/24").await;
    t.netd.remove_network(direct.id.as_str()).await.unwrap();
    // Remove: nothing in the kernel either.
    let calls = t.k().count();
    t.netd.remove_network("cfg").await.unwrap();
    assert_eq!(t.k().count(), calls, "{:?}", t.k().calls());
    t.assert_consistent();
}

#[tokio::test]
async fn a_network_made_from_it_takes_its_settings_options_and_labels() {
    let t = world().await;
    t.netd.create_network(&cfg("cfg")).await.unwrap();
    let real = t
        .netd
        .create_network(&NetworkCreate {
            internal: true,
            ..from("real", "cfg")
        })
        .await
        .unwrap();
    assert_eq!(real.config_from.as_ref().unwrap().as_str(), "cfg");
    let b = real.bridge().unwrap();
    let v4 = b.ipv4.as_ref().unwrap();
    assert_eq!(
        (
            v4.subnet.to_string(),
            v4.gateway.to_string(),
            v4.ip_range.unwrap().to_string()
        ),
        (
            "10.70.0.0/24".into(),
            "10.70.0.254".into(),
            "10.70.0.128/25".into()
        )
    );
    assert_eq!(v4.aux_addresses["router"].to_string(), "10.70.0.200");
    assert_eq!(b.ipv6.as_ref().unwrap().subnet.to_string(), "fd00:70::/64");
    assert_eq!(b.mtu, Some(1400));
    assert!(b.internal, "an operator field of its own");
    assert_eq!(real.labels["team"], "a");
    // It is an ordinary bridge network: a sandbox gets an address of the
    // config's range.
    let s = t.sandbox("a", "real").await;
    let ip = s.endpoints[0].endpoint.ip.unwrap();
    assert!(
        "10.70.0.128/25"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip),
        "{ip}"
    );
    t.assert_consistent();
    // A second network from it would share the subnet: refused by the
    // ordinary overlap check, naming both.
    let before = t.snapshot();
    let e = t
        .netd
        .create_network(&from("again", "cfg"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(
        e.to_string().contains("10.70.0.0/24") && e.to_string().contains("real"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn create_from_it_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(setup_cfg, create_real).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn nothing_joins_a_config_only_network() {
    let t = world().await;
    t.netd.create_network(&cfg("cfg")).await.unwrap();
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("a", "n1").await;
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&sandbox("b", "cfg"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Forbidden);
    assert!(
        e.to_string().contains("configuration-only network cfg"),
        "{e}"
    );
    let e = t
        .netd
        .connect("cfg", "a", &EndpointRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Forbidden);
    assert!(
        e.to_string().contains("configuration-only network cfg"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn bad_config_requests_are_refused_naming_the_problem_and_change_nothing() {
    let t = world().await;
    t.netd.create_network(&cfg("cfg")).await.unwrap();
    t.network("n1", "10.50.0.0/24").await;
    let before = t.snapshot();
    let cases: Vec<(NetworkCreate, Kind, &str)> = vec![
        (
            from("x", "nope"),
            Kind::NotFound,
            "configuration network \"nope\" does not exist",
        ),
        (
            from("x", "n1"),
            Kind::Invalid,
            "network n1 is not a configuration network",
        ),
        (
            NetworkCreate {
                subnet: Some("10.71.0.0/24".into()),
                ..from("x", "cfg")
            },
            Kind::Forbidden,
            "user specified configurations are not supported",
        ),
        (
            NetworkCreate {
                ipv6: true,
                ..from("x", "cfg")
            },
            Kind::Forbidden,
            "--ipv6 given with --config-from cfg",
        ),
        (
            NetworkCreate {
                labels: [("k".to_string(), "v".to_string())].into(),
                ..from("x", "cfg")
            },
            Kind::Forbidden,
            "--label",
        ),
        (
            NetworkCreate {
                options: [(OPT_MTU.to_string(), "1300".to_string())].into(),
                ..from("x", "cfg")
            },
            Kind::Forbidden,
            "network driver options are not supported",
        ),
        (
            NetworkCreate {
                config_from: Some("cfg".into()),
                ..cfg("x")
            },
            Kind::Forbidden,
            "cannot depend on another configuration network",
        ),
        (
            NetworkCreate {
                internal: true,
                ..cfg("x")
            },
            Kind::Forbidden,
            "--internal",
        ),
        (
            NetworkCreate {
                gateway: Some("10.99.0.1".into()),
                ..cfg("x")
            },
            Kind::Invalid,
            "10.99.0.1",
        ),
        (cfg("cfg"), Kind::Conflict, "cfg already exists"),
        (cfg("bridge"), Kind::Forbidden, "pre-defined"),
    ];
    for (req, kind, want) in cases {
        let e = t.netd.create_network(&req).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{req:?}: {e}");
        assert!(e.to_string().contains(want), "{req:?}: {e}");
        assert_eq!(t.snapshot(), before, "{req:?}");
    }
}

#[tokio::test]
async fn a_config_network_in_use_is_not_removed_nor_pruned() {
    let t = world().await;
    t.netd.create_network(&cfg("cfg")).await.unwrap();
    let clean = t.snapshot();
    t.netd.create_network(&from("real", "cfg")).await.unwrap();
    t.sandbox("a", "real").await;
    let before = t.snapshot();
    let e = t.netd.remove_network("cfg").await.unwrap_err();
    assert_eq!(e.kind(), Kind::Forbidden);
    assert!(
        e.to_string()
            .contains("configuration network \"cfg\" is in use by network real"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
    assert!(t.netd.prune_networks(|_| true).await.unwrap().is_empty());
    assert_eq!(t.snapshot(), before);
    // Without a sandbox, prune takes the network made from it and keeps
    // the config network, in use until then.
    t.netd.remove_sandbox("a", false).await.unwrap();
    let pruned = t.netd.prune_networks(|_| true).await.unwrap();
    assert_eq!(pruned, vec!["real".to_string()]);
    assert_eq!(t.snapshot(), clean);
    t.netd.remove_network("cfg").await.unwrap();
    t.assert_consistent();
}

#[test]
fn records_without_config_fields_read_and_config_only_ones_round_trip() {
    let old = fixtures::network("old", "10.1.0.0/24");
    let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
    assert!(json.get("config_from").is_none(), "{json}");
    json.as_object_mut().unwrap().remove("config_from");
    let back: Network = serde_json::from_value(json).unwrap();
    assert_eq!(back, old);
    let v = cfg("cfg").validate().unwrap();
    let n = Network {
        driver: Driver::ConfigOnly(ConfigOnly::of(&v)),
        config_from: None,
        ..old
    };
    let s = serde_json::to_string(&n).unwrap();
    assert!(s.contains(r#""driver":"config-only""#), "{s}");
    assert_eq!(serde_json::from_str::<Network>(&s).unwrap(), n);
}
