//! The overlay datapath against the real kernel, with real traffic: two
//! "hosts" (namespaces) on one underlay segment, each with the overlay
//! network's bridge and VXLAN port made by netd's kernel adapters and a
//! sandbox on it. Every namespace is the test's own (`nvx<pid>…`), removed
//! on drop even when an assertion fails.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netd::cluster::ClusterEndpoint;
use netd::kernel::{Host, KernelError, LinkOps, OverlayOps, SysctlOps};
use netd::model::{
    BridgeConfig, Driver, Endpoint, Id, Ipv4Config, Ipv6Config, Mac, Network, OverlayConfig,
    Sandbox, SandboxNet, Vni,
};
use netd::plan::overlay::{self, OverlayPeer, VxlanPlan};
use netd::plan::{self, EndpointPlan};
use netd_tests::{Netns, in_ns, ping, ping6};

const VNI: u32 = 4242;

/// Run `f` against a [`Host`] opened in namespace `ns`, on a thread of its
/// own that joined it, with a current-thread runtime.
fn on_host<T, F>(ns: &str, f: impl FnOnce(Host) -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    in_ns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move { f(Host::open().expect("open the kernel")).await })
    })
}

fn network() -> Network {
    let id = format!("{:08x}{}", std::process::id(), "0".repeat(56));
    Network {
        id: Id::from_stored(id),
        name: "nvxov".parse().unwrap(),
        driver: Driver::Overlay(OverlayConfig {
            vni: Vni::try_from(VNI).unwrap(),
            bridge: BridgeConfig {
                ipv4: Some(Ipv4Config {
                    subnet: "10.77.0.0/24".parse().unwrap(),
                    gateway: "10.77.0.1".parse().unwrap(),
                    ip_range: None,
                    masquerade: true,
                    aux_addresses: Default::default(),
                }),
                ipv6: Some(Ipv6Config {
                    subnet: "fd77::/64".parse().unwrap(),
                    gateway: "fd77::1".parse().unwrap(),
                    ip_range: None,
                    masquerade: true,
                    aux_addresses: Default::default(),
                }),
                bridge: "nvxbr0".parse().unwrap(),
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

/// One host of the test: its namespace, underlay address, sandbox and the
/// endpoint of that sandbox on the overlay network.
struct Node {
    host: Netns,
    sandbox: Netns,
    vtep: Ipv4Addr,
    ep: Endpoint,
    sb: Sandbox,
}

impl Node {
    fn new(net: &Network, underlay: &Netns, n: u8) -> Node {
        let pid = std::process::id();
        let host = Netns::new(&format!("nvx{pid}h{n}"));
        let sandbox = Netns::new(&format!("nvx{pid}s{n}"));
        let vtep = Ipv4Addr::new(192, 168, 77, n);
        let port = format!("ul{n}");
        underlay.run_ok(
            "ip",
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.name(),
            ],
        );
        underlay.run_ok("ip", &["link", "set", &port, "master", "ul", "up"]);
        host.run_ok("ip", &["addr", "add", &format!("{vtep}/24"), "dev", "eth0"]);
        host.run_ok("ip", &["link", "set", "eth0", "up"]);
        let ip: Ipv4Addr = format!("10.77.0.1{n}").parse().unwrap();
        let id = |c: char| Id::from_stored(format!("{:08x}{n}", pid) + &c.to_string().repeat(55));
        let sb = Sandbox {
            id: id('a'),
            name: format!("s{n}").parse().unwrap(),
            net: SandboxNet::Namespace {
                path: sandbox.path(),
                owned: false,
            },
            isolated: false,
            dns: Default::default(),
            created: String::new(),
        };
        let ep = Endpoint {
            id: id('b'),
            network: net.id.clone(),
            sandbox: sb.id.clone(),
            ifname: "eth0".parse().unwrap(),
            ip: Some(ip),
            ip6: Some(format!("fd77::1{n}").parse().unwrap()),
            mac: Mac::for_ip(ip),
            aliases: vec![],
            ports: vec![],
            gw_priority: 0,
            link_local_ips: vec![],
            sysctls: vec![],
            egress_ifb: false,
        };
        Node {
            host,
            sandbox,
            vtep,
            ep,
            sb,
        }
    }

    fn cluster_endpoint(&self) -> ClusterEndpoint {
        ClusterEndpoint {
            network: self.ep.network.clone(),
            host: self.host.name().to_string(),
            vtep: self.vtep,
            endpoint: self.ep.id.clone(),
            sandbox: self.sb.id.clone(),
            sandbox_name: self.sb.name.clone(),
            aliases: vec![],
            ip: self.ep.ip,
            ip6: self.ep.ip6,
            mac: self.ep.mac,
        }
    }

    /// What the bridge driver does for a network and an endpoint, then the
    /// peers: all of it idempotent, so this is also "apply again".
    fn apply(&self, net: &Network, peers: Vec<OverlayPeer>) {
        let b = plan::bridge(net).unwrap();
        let e: EndpointPlan = plan::endpoint(net, &self.sb, &self.ep).unwrap();
        on_host(self.host.name(), move |k| async move {
            let state = k.apply_bridge(&b).await.unwrap();
            for (key, value) in plan::bridge_sysctls(&b) {
                k.ensure_sysctl(&key, value).unwrap();
            }
            let v = b.vxlan.as_ref().unwrap();
            k.apply_vxlan(v, state).await.unwrap();
            k.apply_endpoint(&e, state).await.unwrap();
            k.sync_peers(&v.name, &peers).await.unwrap();
        })
    }

    fn sync(&self, vxlan: &str, peers: Vec<OverlayPeer>) {
        let vxlan = vxlan.to_string();
        on_host(self.host.name(), move |k| async move {
            k.sync_peers(&vxlan, &peers).await.unwrap()
        })
    }

    /// (forwarding entries with a VTEP, permanent neighbour entries) of
    /// the VXLAN device, as `bridge` and `ip` list them.
    fn entries(&self, vxlan: &str) -> (Vec<String>, Vec<String>) {
        let fdb = self.host.run_ok("bridge", &["fdb", "show", "dev", vxlan]);
        let neigh = self
            .host
            .run_ok("ip", &["neigh", "show", "dev", vxlan, "nud", "permanent"]);
        let lines = |s: &str, f: &dyn Fn(&str) -> bool| {
            let mut v: Vec<String> = s.lines().filter(|l| f(l)).map(str::to_string).collect();
            v.sort();
            v
        };
        (
            lines(&fdb, &|l| l.contains(" dst ")),
            lines(&neigh, &|l| !l.trim().is_empty()),
        )
    }
}

/// Whether `ok` holds within `secs` seconds (the first packets wait for
/// neighbour resolution).
fn eventually(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reach_each_other(a: &Node, b: &Node) -> bool {
    let (ip, ip6) = (b.ep.ip.unwrap(), b.ep.ip6.unwrap());
    ping(a.sandbox.name(), &ip.to_string()) && ping6(a.sandbox.name(), &ip6.to_string())
}

#[test]
fn two_hosts_reach_each_other_over_vxlan() {
    let pid = std::process::id();
    let underlay = Netns::new(&format!("nvx{pid}u"));
    underlay.run_ok("ip", &["link", "add", "ul", "type", "bridge"]);
    underlay.run_ok("ip", &["link", "set", "ul", "up"]);
    let net = network();
    let (n1, n2) = (Node::new(&net, &underlay, 1), Node::new(&net, &underlay, 2));
    let all = [n1.cluster_endpoint(), n2.cluster_endpoint()];
    let peers1 = overlay::peers(&net, n1.host.name(), &all);
    let peers2 = overlay::peers(&net, n2.host.name(), &all);
    assert_eq!(peers1.len(), 1);
    let vx = overlay::vxlan(&net).unwrap().name;

    n1.apply(&net, peers1.clone());
    n2.apply(&net, peers2.clone());

    // Sandbox to sandbox across the underlay, both families, both ways.
    assert!(eventually(10, || reach_each_other(&n1, &n2)), "h1 -> h2");
    assert!(eventually(10, || reach_each_other(&n2, &n1)), "h2 -> h1");
    // Each sandbox's gateway is its own host's bridge (anycast).
    for n in [&n1, &n2] {
        assert!(ping(n.sandbox.name(), "10.77.0.1"), "{}", n.host.name());
        assert!(
            eventually(5, || ping6(n.sandbox.name(), "fd77::1")),
            "{}",
            n.host.name()
        );
    }
    let gw_mac = overlay::gateway_mac(net.bridge().unwrap()).to_string();
    for n in [&n1, &n2] {
        let br = n.host.link("nvxbr0").unwrap();
        assert_eq!(br["address"], gw_mac.as_str(), "{}", n.host.name());
        let v = device(&n.host, &vx);
        assert_eq!(v["mtu"], 1450);
        assert_eq!(v["master"], "nvxbr0");
        let data = &v["linkinfo"]["info_data"];
        assert_eq!(data["id"], VNI, "{v}");
        assert_eq!(data["port"], 4789, "{v}");
        assert_eq!(data["learning"], false, "{v}");
        assert_eq!(data["proxy"], true, "{v}");
        assert!(
            data.get("local").is_none() && data.get("group").is_none(),
            "{v}"
        );
    }

    // One forwarding entry and two neighbour entries per remote endpoint,
    // and applying everything again changes nothing.
    let before = n1.entries(&vx);
    assert_eq!((before.0.len(), before.1.len()), (1, 2), "{before:?}");
    assert!(before.0[0].contains("dst 192.168.77.2"), "{before:?}");
    n1.apply(&net, peers1.clone());
    assert_eq!(n1.entries(&vx), before);
    assert_eq!(n1.host.link("nvxbr0").unwrap()["address"], gw_mac.as_str());
    // A MAC changed behind netd's back and a port taken off: put back.
    n1.host.run_ok(
        "ip",
        &["link", "set", "nvxbr0", "address", "02:00:00:00:00:99"],
    );
    n1.host.run_ok("ip", &["link", "set", &vx, "nomaster"]);
    n1.apply(&net, peers1.clone());
    assert_eq!(n1.host.link("nvxbr0").unwrap()["address"], gw_mac.as_str());
    assert_eq!(device(&n1.host, &vx)["master"], "nvxbr0");
    assert_eq!(n1.entries(&vx), before);
    assert!(reach_each_other(&n1, &n2));

    // No peers: h1 no longer knows where h2's sandbox is.
    n1.sync(&vx, vec![]);
    assert_eq!(n1.entries(&vx), (vec![], vec![]));
    assert!(!ping(n1.sandbox.name(), "10.77.0.12"));
    n1.sync(&vx, peers1.clone());
    assert_eq!(n1.entries(&vx), before);
    assert!(eventually(10, || reach_each_other(&n1, &n2)), "restored");

    // A peer that moved to another host: its entry follows it.
    let mut moved = peers1.clone();
    moved[0].vtep = Ipv4Addr::new(192, 168, 77, 9);
    n1.sync(&vx, moved);
    let now = n1.entries(&vx);
    assert_eq!(now.0.len(), 1, "{now:?}");
    assert!(now.0[0].contains("dst 192.168.77.9"), "{now:?}");
    n1.sync(&vx, peers1);
    assert_eq!(n1.entries(&vx), before);
}

/// `ip -d -j link show` of one link.
fn device(ns: &Netns, name: &str) -> serde_json::Value {
    ns.json(&["-d", "link", "show", name])
        .as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or_else(|| panic!("no link {name} in {}", ns.name()))
}

#[test]
fn a_foreign_link_under_the_vxlan_name_is_refused() {
    let pid = std::process::id();
    let host = Netns::new(&format!("nvx{pid}f"));
    host.run_ok("ip", &["link", "add", "nvxbr1", "type", "bridge"]);
    // No dummy module everywhere: a veth is someone else's link as well.
    host.run_ok(
        "ip",
        &[
            "link",
            "add",
            "netdvx-taken",
            "type",
            "veth",
            "peer",
            "name",
            "nvxp",
        ],
    );
    let err = on_host(host.name(), |k| async move {
        let index = k.netlink().link("nvxbr1").await.unwrap().unwrap().index;
        let plan = VxlanPlan {
            name: "netdvx-taken".into(),
            vni: 7,
            bridge: "nvxbr1".into(),
            mtu: 1450,
        };
        let state = netd::kernel::BridgeState {
            index,
            created: false,
        };
        let err = k.apply_vxlan(&plan, state).await.unwrap_err();
        let peers = k.sync_peers("netdvx-taken", &[]).await.unwrap_err();
        (err, peers)
    });
    for e in [&err.0, &err.1] {
        assert!(e.is_taken(), "{e}");
        assert!(matches!(e, KernelError::NotAVxlan { .. }), "{e:?}");
    }
    // Untouched: still a veth, not on the bridge.
    let l = device(&host, "netdvx-taken");
    assert_eq!(l["linkinfo"]["info_kind"], "veth");
    assert!(l.get("master").is_none());
}
