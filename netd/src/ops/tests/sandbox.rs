//! Sandboxes against the fake kernel.

use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::error::Kind;

fn with_n1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_network(&net("n1", "10.50.0.0/24"))
            .await
            .map(|_| ())
    })
}

fn create_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&sandbox("s1", "n1"))
            .await
            .map(|_| ())
    })
}

fn create_s1_published(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let req = publishing("s1", "n1", &["8080:80", "9000-9001:9000-9001/udp"]);
        t.netd.create_sandbox(&req).await.map(|_| ())
    })
}

fn create_none(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        t.netd
            .create_sandbox(&sandbox("s1", "none"))
            .await
            .map(|_| ())
    })
}

fn with_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        with_n1(t).await?;
        create_s1_published(t).await
    })
}

fn remove_s1(t: &T) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { t.netd.remove_sandbox("s1", false).await.map(|_| ()) })
}

#[tokio::test]
async fn create_makes_namespace_resolver_pair_address_and_route() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let d = t.sandbox("s1", "n1").await;
    let ep = &d.endpoints[0];
    let ns = PathBuf::from(&d.netns);
    let w = t.k().world();
    assert!(w.namespaces.contains_key(&ns));
    assert!(w.resolv_confs.contains("s1"));
    assert_eq!(
        w.ifaces[&(ns.clone(), "eth0".to_string())].to_string(),
        format!("{}/24", ep.endpoint.ip.unwrap())
    );
    assert_eq!(w.default_routes[&ns].0.to_string(), "10.50.0.1");
    assert_eq!(w.links[ep.host_veth.as_str()].kind, "veth");
    t.assert_consistent();
}

#[tokio::test]
async fn create_fails_cleanly_at_every_kernel_step() {
    let (steps, failed) = every_failure_point(with_n1, create_s1).await;
    assert!(steps >= 4 && failed >= 4, "{steps} steps, {failed} failed");
}

#[tokio::test]
async fn create_with_published_ports_fails_cleanly_at_every_kernel_step() {
    let (steps, _) = every_failure_point(with_n1, create_s1_published).await;
    assert!(steps >= 5, "{steps} steps");
}

#[tokio::test]
async fn create_on_none_fails_cleanly_at_every_kernel_step() {
    every_failure_point(nothing, create_none).await;
}

#[tokio::test]
async fn remove_fails_cleanly_or_finishes_at_every_kernel_step() {
    // Removal deletes links before records: a failure leaves the records
    // (so removing again finishes), never a record without its namespace
    // refused silently. Check each point leaves a state a retry completes.
    let clean = world().await;
    with_s1(&clean).await.unwrap();
    let before = clean.k().count();
    remove_s1(&clean).await.unwrap();
    let steps = clean.k().count() - before;
    for i in 0..steps {
        let t = world().await;
        with_s1(&t).await.unwrap();
        t.k().fail_after(i);
        if remove_s1(&t).await.is_err() {
            assert!(
                t.netd.inspect_sandbox("s1").is_ok(),
                "step {i}: record kept"
            );
            remove_s1(&t).await.expect("removing again finishes");
        }
        assert!(t.netd.inspect_sandbox("s1").is_err());
        let w = t.k().world();
        assert!(w.namespaces.is_empty(), "step {i}: {:?}", w.namespaces);
        t.assert_consistent();
    }
}

#[tokio::test]
async fn a_held_host_port_is_a_conflict_before_any_kernel_change() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.k().hold_port(8080);
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&publishing("s1", "n1", &["8080:80"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(e.to_string().contains("8080"), "{e}");
    assert_eq!(t.snapshot(), before);
    assert!(!t.k().calls().iter().any(|c| c.starts_with("create_named")));
}

#[tokio::test]
async fn publishing_on_an_address_not_the_hosts_is_invalid() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.k().make_foreign("198.51.100.2".parse().unwrap());
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&publishing("s1", "n1", &["198.51.100.2:8080:80"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
    assert!(e.to_string().contains("198.51.100.2"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_host_mode_sandbox_has_no_namespace_and_takes_no_netns() {
    let t = world().await;
    let before = t.k().world();
    let d = t.sandbox("h", "host").await;
    assert!(d.endpoints.is_empty());
    assert_eq!(t.k().world(), before);
    let e = t
        .netd
        .create_sandbox(&SandboxCreate {
            netns: Some("/proc/1/ns/net".into()),
            ..sandbox("h2", "host")
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
}

#[tokio::test]
async fn a_none_sandbox_gets_lo_only_and_no_endpoint_options() {
    let t = world().await;
    let d = t.sandbox("s1", "none").await;
    let w = t.k().world();
    assert!(w.lo_up.contains(Path::new(&d.netns)));
    assert!(w.ifaces.is_empty() && d.endpoints.is_empty());
    assert!(!w.resolv_confs.contains("s1"));
    let e = t
        .netd
        .create_sandbox(&publishing("s2", "none", &["8080:80"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
}

#[tokio::test]
async fn the_daemons_own_namespace_cannot_be_adopted() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let home = t.dir().join("run/home");
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&SandboxCreate {
            netns: Some(home.display().to_string()),
            ..sandbox("s1", "n1")
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
    assert!(e.to_string().contains("netd runs in"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn an_adopted_namespace_is_used_and_left_to_its_owner() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let path = t.dir().join("engine-ns");
    t.k().add_foreign_namespace(&path);
    let req = SandboxCreate {
        netns: Some(path.display().to_string()),
        ..sandbox("s1", "n1")
    };
    t.netd.create_sandbox(&req).await.unwrap();
    assert!(
        t.k()
            .world()
            .ifaces
            .contains_key(&(path.clone(), "eth0".into()))
    );
    // A second sandbox in the same namespace is refused.
    let e = t
        .netd
        .create_sandbox(&SandboxCreate {
            name: "s2".into(),
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid);
    assert!(e.to_string().contains("belongs to sandbox s1"), "{e}");
    t.netd.remove_sandbox("s1", false).await.unwrap();
    let w = t.k().world();
    assert!(w.namespaces.contains_key(&path), "not netd's to delete");
    assert!(w.ifaces.is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn an_existing_namespace_of_the_name_is_a_conflict() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let path = crate::kernel::NamespaceOps::named_path(t.k(), "s1");
    t.k().add_foreign_namespace(&path);
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&sandbox("s1", "n1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert!(e.to_string().contains("--netns"), "{e}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_taken_sandbox_name_is_a_conflict_and_changes_nothing() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.sandbox("s1", "n1").await;
    let before = t.snapshot();
    let e = t
        .netd
        .create_sandbox(&sandbox("s1", "n1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Conflict);
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn remove_takes_pair_namespace_records_and_ports() {
    let t = world().await;
    with_s1(&t).await.unwrap();
    assert_eq!(t.k().world().table.unwrap().ports.len(), 3);
    t.netd.remove_sandbox("s1", false).await.unwrap();
    let w = t.k().world();
    assert!(w.namespaces.is_empty() && w.ifaces.is_empty() && w.resolv_confs.is_empty());
    assert!(w.table.unwrap().ports.is_empty());
    assert!(t.netd.list_sandboxes().unwrap().is_empty());
    t.assert_consistent();
}

#[tokio::test]
async fn forced_removal_drops_the_record_despite_kernel_failures() {
    let t = world().await;
    with_s1(&t).await.unwrap();
    t.k().fail_after(0);
    t.netd.remove_sandbox("s1", true).await.unwrap();
    assert!(t.netd.inspect_sandbox("s1").is_err());
    // What the failure left, reconcile removes.
    t.netd.reconcile().await.unwrap();
    t.assert_consistent();
}

#[tokio::test]
async fn the_recorded_callback_runs_after_the_namespace_and_before_the_pair() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    let seen = std::sync::Mutex::new(None);
    t.netd
        .create_sandbox_and(&sandbox("s1", "n1"), |sb| {
            let w = t.k().world();
            *seen.lock().unwrap() = Some((
                sb.name.to_string(),
                w.namespaces.len(),
                w.links.values().filter(|l| l.kind == "veth").count(),
            ));
        })
        .await
        .unwrap();
    assert_eq!(seen.into_inner().unwrap(), Some(("s1".into(), 1, 0)));
}

#[tokio::test]
async fn a_lock_file_of_a_sandbox_that_failed_to_be_created_goes() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.k().fail_after(0);
    t.netd
        .create_sandbox(&sandbox("s1", "n1"))
        .await
        .unwrap_err();
    let locks = t.dir().join("state/locks");
    let left: Vec<_> = std::fs::read_dir(&locks).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn resolver_settings_are_recorded_or_refused_changing_nothing() {
    let t = world().await;
    t.network("n1", "10.50.0.0/24").await;
    t.netd
        .create_network(&NetworkCreate {
            name: "inside".into(),
            subnet: Some("10.51.0.0/24".into()),
            internal: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let with_dns = |name: &str, network: &str| SandboxCreate {
        dns: s(&["10.0.0.53"]),
        dns_search: s(&["svc.local"]),
        dns_options: s(&["ndots:2"]),
        ..sandbox(name, network)
    };
    let d = t.netd.create_sandbox(&with_dns("s1", "n1")).await.unwrap();
    assert_eq!(
        d.sandbox.dns.servers,
        ["10.0.0.53".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(d.sandbox.dns.options_line(), ["ndots:2"]);
    assert!(t.k().world().resolv_confs.contains("s1"));
    let stored = t.netd.inspect_sandbox("s1").unwrap();
    assert_eq!(stored.sandbox.dns, d.sandbox.dns);

    let path = t.dir().join("engine-ns");
    t.k().add_foreign_namespace(&path);
    let before = t.snapshot();
    let adopted = SandboxCreate {
        netns: Some(path.display().to_string()),
        ..with_dns("s2", "n1")
    };
    for (req, names) in [
        (with_dns("s3", "host"), "need a bridge or overlay network"),
        (with_dns("s4", "none"), "need a bridge or overlay network"),
        (with_dns("s7", "inside"), "forward no names"),
        (adopted, "adopted one's"),
        (
            SandboxCreate {
                dns_options: s(&["ndots:1\nnameserver 8.8.8.8"]),
                ..sandbox("s5", "n1")
            },
            "--dns-option",
        ),
        (
            SandboxCreate {
                dns: s(&["not-an-ip"]),
                ..sandbox("s6", "n1")
            },
            "--dns \"not-an-ip\"",
        ),
    ] {
        let e = t.netd.create_sandbox(&req).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains(names), "{e}: should say {names}");
    }
    assert_eq!(t.snapshot(), before);
}
