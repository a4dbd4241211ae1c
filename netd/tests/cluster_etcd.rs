//! The cluster store against a real etcd (Debian's etcd-server): each test
//! starts its own on free loopback ports and a temp data dir, killed by pid
//! when the test ends, panics included.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netd::cluster::etcd::Etcd;
use netd::cluster::{Claimed, ClusterConfig, ClusterEndpoint, ClusterError, ClusterStore};
use netd::model::{
    BridgeConfig, Driver, Id, Ipv4Config, Ipv6Config, Mac, Network, OverlayConfig, Vni,
};

struct EtcdServer {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl EtcdServer {
    fn start() -> EtcdServer {
        let dir = std::env::temp_dir().join(format!(
            "netd-etcd-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut s = EtcdServer {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        s.run();
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn run(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (apt install etcd-server)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cfg(server: &EtcdServer, host: &str, n: u8) -> ClusterConfig {
    ClusterConfig {
        endpoints: vec![server.url()],
        advertise: Ipv4Addr::new(192, 0, 2, n),
        host: host.into(),
        ttl: Duration::from_secs(2),
        tls: None,
    }
}

async fn client(server: &EtcdServer, host: &str, n: u8) -> Arc<Etcd> {
    // etcd answers a moment after its port opens (leader election).
    let start = Instant::now();
    loop {
        match Etcd::connect(cfg(server, host, n)).await {
            Ok(c) => return c,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("connect: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}

fn overlay(name: &str, subnet: &str) -> Network {
    overlay6(name, subnet, None)
}

fn overlay6(name: &str, subnet: &str, subnet6: Option<&str>) -> Network {
    let subnet: ipnet::Ipv4Net = subnet.parse().expect("valid");
    Network {
        id: Id::random(),
        name: name.parse().expect("valid"),
        driver: Driver::Overlay(OverlayConfig {
            // Set by create_network.
            vni: Vni::try_from(1).expect("valid"),
            bridge: BridgeConfig {
                ipv4: Some(Ipv4Config {
                    subnet,
                    gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
                    ip_range: None,
                    masquerade: true,
                    aux_addresses: Default::default(),
                }),
                ipv6: subnet6.map(|s| {
                    let subnet: ipnet::Ipv6Net = s.parse().expect("valid");
                    Ipv6Config {
                        subnet,
                        gateway: std::net::Ipv6Addr::from(u128::from(subnet.network()) + 1),
                        ip_range: None,
                        masquerade: true,
                        aux_addresses: Default::default(),
                    }
                }),
                bridge: format!("netdov-{name}").parse().expect("valid"),
                mtu: None,
                internal: false,
                icc: true,
            },
        }),
        options: Default::default(),
        labels: Default::default(),
        dns_servers: Vec::new(),
        created: "2026-01-01T00:00:00Z".into(),
        config_from: None,
    }
}

fn endpoint(net: &Network, host: &str, ip: Claimed) -> ClusterEndpoint {
    ClusterEndpoint {
        network: net.id.clone(),
        host: host.into(),
        vtep: Ipv4Addr::new(192, 0, 2, 9),
        endpoint: Id::random(),
        sandbox: Id::random(),
        sandbox_name: "s1".parse().expect("valid"),
        aliases: vec!["web".into()],
        ip: ip.ip,
        ip6: ip.ip6,
        mac: Mac([2, 0, 0, 0, 0, 7]),
    }
}

/// Waits until the view satisfies `f`, up to `within`.
async fn wait_view(
    c: &Etcd,
    within: Duration,
    f: impl Fn(&netd::cluster::ClusterView) -> bool,
) -> bool {
    let mut rx = c.view();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f(&rx.borrow_and_update()) {
            return true;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return f(&rx.borrow());
        }
    }
}

#[tokio::test]
async fn networks_appear_everywhere_and_names_are_unique() {
    let server = EtcdServer::start();
    let a = client(&server, "a", 1).await;
    let b = client(&server, "b", 2).await;
    let net = a
        .create_network(overlay("ov1", "10.77.0.0/24"))
        .await
        .unwrap();
    assert_eq!(net.overlay().unwrap().vni.get(), 4096);
    let t = Instant::now();
    assert!(
        wait_view(&b, Duration::from_secs(1), |v| v
            .networks
            .keys()
            .any(|n| n.as_str() == "ov1"))
        .await
    );
    eprintln!("seen by b after {:?}", t.elapsed());
    let err = b
        .create_network(overlay("ov1", "10.78.0.0/24"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::Conflict(m) if m == "network ov1 already exists in the cluster"),
        "{err}"
    );
    let other = b
        .create_network(overlay("ov2", "10.78.0.0/24"))
        .await
        .unwrap();
    assert_eq!(other.overlay().unwrap().vni.get(), 4097);
    let v = b.view().borrow().clone();
    assert!(v.connected);
    assert_eq!(
        v.hosts.keys().cloned().collect::<Vec<_>>(),
        vec!["a".to_string(), "b".to_string()]
    );
}

#[tokio::test]
async fn concurrent_claims_are_distinct_and_release_reuses_the_lowest() {
    let server = EtcdServer::start();
    let cs = [
        client(&server, "a", 1).await,
        client(&server, "b", 2).await,
        client(&server, "c", 3).await,
    ];
    let net = overlay6("ov", "10.80.0.0/24", Some("fd00:80::/64"));
    let net = cs[0].create_network(net).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..18 {
        let c = cs[i % 3].clone();
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            c.claim(&net, Claimed::default()).await
        }));
    }
    let mut v4 = std::collections::BTreeSet::new();
    let mut v6 = std::collections::BTreeSet::new();
    for t in tasks {
        let c = t.await.unwrap().unwrap();
        v4.insert(c.ip.unwrap());
        v6.insert(c.ip6.unwrap());
    }
    assert_eq!((v4.len(), v6.len()), (18, 18));
    // .1 is the gateway: .2 ..= .19.
    assert_eq!(v4.first(), Some(&"10.80.0.2".parse().unwrap()));
    assert_eq!(v4.last(), Some(&"10.80.0.19".parse().unwrap()));
    let five = Claimed {
        ip: Some("10.80.0.5".parse().unwrap()),
        ip6: None,
    };
    // Held by whichever host: a's own or another's; release frees only
    // the holder's, so release from every host.
    for c in &cs {
        c.release(&net, five).await.unwrap();
    }
    let again = cs[1].claim(&net, Claimed::default()).await.unwrap();
    assert_eq!(again.ip, five.ip);
    let taken = cs[2].claim(&net, five).await.unwrap_err();
    assert!(
        matches!(&taken, ClusterError::Conflict(m) if m == "address 10.80.0.5 is already in use on this network"),
        "{taken}"
    );
    // Its own address again (a restarted host): fine.
    assert_eq!(cs[1].claim(&net, again).await.unwrap(), again);
}

#[tokio::test]
async fn removal_waits_for_endpoints() {
    let server = EtcdServer::start();
    let a = client(&server, "a", 1).await;
    let b = client(&server, "b", 2).await;
    let net = a
        .create_network(overlay("ov", "10.81.0.0/24"))
        .await
        .unwrap();
    let got = b.claim(&net, Claimed::default()).await.unwrap();
    let ep = endpoint(&net, "b", got);
    b.publish(&ep).await.unwrap();
    assert!(wait_view(&a, Duration::from_secs(1), |v| v.endpoints.len() == 1).await);
    let err = a.remove_network(&net).await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::Conflict(m) if m.contains("hosts b")),
        "{err}"
    );
    b.withdraw(&net.id, &ep.endpoint).await.unwrap();
    assert!(a.remove_network(&net).await.is_err(), "the address is held");
    b.release(&net, got).await.unwrap();
    a.remove_network(&net).await.unwrap();
    assert!(wait_view(&b, Duration::from_secs(1), |v| v.networks.is_empty()).await);
    // Its VNI is free again.
    let again = a
        .create_network(overlay("ov", "10.81.0.0/24"))
        .await
        .unwrap();
    assert_eq!(again.overlay().unwrap().vni.get(), 4096);
}

#[tokio::test]
async fn a_silent_host_leaves_the_view_within_its_ttl() {
    let server = EtcdServer::start();
    let a = client(&server, "a", 1).await;
    let b = client(&server, "b", 2).await;
    let net = a
        .create_network(overlay("ov", "10.82.0.0/24"))
        .await
        .unwrap();
    let got = b.claim(&net, Claimed::default()).await.unwrap();
    b.publish(&endpoint(&net, "b", got)).await.unwrap();
    assert!(wait_view(&a, Duration::from_secs(1), |v| v.endpoints.len() == 1).await);
    b.stop_renewing();
    let t = Instant::now();
    assert!(
        wait_view(&a, Duration::from_secs(4), |v| !v.hosts.contains_key("b")
            && v.endpoints.is_empty())
        .await
    );
    eprintln!("b gone from a's view after {:?}", t.elapsed());
    // Its address went with its lease.
    let next = a.claim(&net, Claimed::default()).await.unwrap();
    assert_eq!(next.ip, got.ip);
}

#[tokio::test]
async fn etcd_away_then_back() {
    let mut server = EtcdServer::start();
    let a = client(&server, "a", 1).await;
    let b = client(&server, "b", 2).await;
    let net = a
        .create_network(overlay("ov", "10.83.0.0/24"))
        .await
        .unwrap();
    let got = a.claim(&net, Claimed::default()).await.unwrap();
    server.stop();
    let t = Instant::now();
    let err = a.claim(&net, Claimed::default()).await.unwrap_err();
    assert!(matches!(err, ClusterError::Unavailable { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    eprintln!("unavailable after {:?}: {err}", t.elapsed());
    assert!(wait_view(&a, Duration::from_secs(5), |v| !v.connected).await);
    // Away past the TTL: the leases run out on etcd's side once it is back
    // (etcd 3.4 restores them with a fresh TTL), so both paths are covered
    // by the renewal putting records back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.run();
    let b2 = b.clone();
    let net2 = net.clone();
    let start = Instant::now();
    let ep = loop {
        match b2.claim(&net2, Claimed::default()).await {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("after restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_ne!(ep.ip, got.ip, "a's address is still a's");
    b.publish(&endpoint(&net, "b", ep)).await.unwrap();
    assert!(
        wait_view(&a, Duration::from_secs(5), |v| v.connected
            && v.endpoints.len() == 1
            && v.hosts.len() == 2)
        .await,
        "{:?}",
        a.view().borrow()
    );
}

#[tokio::test]
async fn a_lost_lease_is_replaced_and_the_records_put_back() {
    let server = EtcdServer::start();
    let a = client(&server, "a", 1).await;
    let b = client(&server, "b", 2).await;
    let net = a
        .create_network(overlay("ov", "10.84.0.0/24"))
        .await
        .unwrap();
    let got = a.claim(&net, Claimed::default()).await.unwrap();
    a.publish(&endpoint(&net, "a", got)).await.unwrap();
    // What etcd does to a lease it has not heard of for its TTL.
    let mut raw = etcd_client::Client::connect([server.url()], None)
        .await
        .unwrap();
    let r = raw.get("/netd/hosts/a", None).await.unwrap();
    let lease = r.kvs()[0].lease();
    raw.lease_revoke(lease).await.unwrap();
    assert!(wait_view(&b, Duration::from_secs(1), |v| v.endpoints.is_empty()).await);
    let t = Instant::now();
    assert!(
        wait_view(&b, Duration::from_secs(3), |v| v.hosts.contains_key("a")
            && v.endpoints.len() == 1)
        .await
    );
    eprintln!("a's records back after {:?}", t.elapsed());
    let r = raw
        .get(
            format!("/netd/ipam/{}/{}", net.id.as_str(), got.ip.unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"a");
    assert_ne!(r.kvs()[0].lease(), lease);
    // Held again: b cannot take it.
    assert!(b.claim(&net, got).await.is_err());
}

#[tokio::test]
async fn connecting_to_no_etcd_is_unavailable_in_seconds() {
    let port = free_port();
    let cfg = ClusterConfig {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        advertise: Ipv4Addr::new(192, 0, 2, 1),
        host: "a".into(),
        ttl: Duration::from_secs(2),
        tls: None,
    };
    let t = Instant::now();
    let Err(err) = Etcd::connect(cfg).await else {
        panic!("connected to nothing")
    };
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(
        matches!(&err, ClusterError::Unavailable { endpoints, .. } if endpoints.contains(&port.to_string())),
        "{err}"
    );
}
