//! Overlay networks through the Docker API, and where they are refused:
//! a daemon that is not in a cluster, Docker's swarm-only fields.

use std::time::Duration;

use netd_tests::cluster::Cluster;
use netd_tests::wait_until;

#[test]
fn docker_api_overlay_network_is_global_attachable_and_seen_on_every_host() {
    let c = Cluster::build("nova", "a", 2, true);
    let net = c.name("apinet");
    let body = format!(
        r#"{{"Name":"{net}","Driver":"overlay","Attachable":true,"Scope":"global","IPAM":{{"Config":[{{"Subnet":"10.252.7.0/24"}}]}}}}"#
    );
    let (status, out) = c
        .h(1)
        .daemon
        .api("POST", "/v1.47/networks/create", Some(&body));
    assert_eq!(status, 201, "{out}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = wait_until(Duration::from_secs(1), || {
        c.h(2)
            .daemon
            .api("GET", &format!("/v1.47/networks/{net}"), None)
            .0
            == 200
    });
    assert!(seen, "not on host 2 within 1 s\n{}", c.logs());
    let n = c.h(2).daemon.api_get(&format!("/v1.47/networks/{net}"));
    assert_eq!(n["Id"], id.as_str(), "one network, one id");
    assert_eq!(n["Driver"], "overlay");
    assert_eq!(n["Scope"], "global");
    assert_eq!(n["Attachable"], true);
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.252.7.0/24");
    // Docker's filters see it as such.
    let l = c
        .h(2)
        .daemon
        .api_get("/v1.47/networks?filters=%7B%22driver%22%3A%7B%22overlay%22%3Atrue%7D%7D");
    let names: Vec<&str> = l
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["Name"].as_str())
        .collect();
    assert_eq!(names, [net.as_str()]);
    // Swarm's routing mesh is not taken, nor a bridge's Attachable.
    for (body, want) in [
        (
            format!(r#"{{"Name":"{net}x","Driver":"overlay","Ingress":true}}"#),
            "Ingress",
        ),
        (
            format!(r#"{{"Name":"{net}y","Attachable":true}}"#),
            "Attachable",
        ),
        (
            format!(r#"{{"Name":"{net}z","Driver":"overlay","Scope":"local"}}"#),
            "Scope",
        ),
    ] {
        let (status, out) = c
            .h(1)
            .daemon
            .api("POST", "/v1.47/networks/create", Some(&body));
        assert_eq!(status, 400, "{body}: {out}");
        assert!(out.contains(want), "{body}: {out}");
    }
    let (status, _) = c
        .h(2)
        .daemon
        .api("DELETE", &format!("/v1.47/networks/{net}"), None);
    assert_eq!(status, 204);
    let gone = wait_until(Duration::from_secs(2), || {
        c.h(1)
            .daemon
            .api("GET", &format!("/v1.47/networks/{net}"), None)
            .0
            == 404
    });
    assert!(gone, "still on host 1 after its removal on host 2");
}

#[test]
fn a_daemon_outside_a_cluster_refuses_overlay_networks_and_changes_nothing() {
    let c = Cluster::build("nova", "b", 1, false);
    let before = c.h(1).cli(&["network", "ls", "-q"]);
    let out = c
        .h(1)
        .daemon
        .cli(&["network", "create", "--driver", "overlay", "lonely"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-store"), "{err}");
    assert_eq!(c.h(1).cli(&["network", "ls", "-q"]), before);
}
