//! `netd daemon --firewalld`: a real firewalld (Debian's, extracted by
//! scripts/setup.sh, never installed) with a D-Bus daemon of the test's
//! own, both run inside the test's host namespace, so firewalld's nftables
//! table lands there and nowhere else. firewalld rejects forwarded traffic
//! from interfaces it has in no zone; with the flag netd's bridge is in
//! the zone, and back within a second after `firewall-cmd --reload` and
//! after firewalld restarts. Without the flag container egress is
//! rejected (so the test can fail).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netd_tests as support;
use support::{Child, Daemon, Netns, TempDir, greeter, tcp_read};

/// Where scripts/setup.sh extracts the firewalld package.
fn firewalld_root() -> PathBuf {
    let root = std::env::var_os("NETD_TEST_FIREWALLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/netd-tests/firewalld"));
    assert!(
        root.join("usr/sbin/firewalld").exists(),
        "no firewalld under {}: run scripts/setup.sh",
        root.display()
    );
    root
}

/// A host namespace running its own D-Bus daemon and firewalld, an
/// outside namespace on an uplink, and netd's daemon in the host.
/// Fields drop in order: the processes before their namespaces.
struct Fw {
    daemon: Option<Daemon>,
    firewalld: Option<Child>,
    _bus: Child,
    outside: Netns,
    host: Netns,
    dir: TempDir,
    bus_addr: String,
    tag: String,
    host4: String,
    out4: String,
    n: u8,
}

/// The private bus: a unix socket under the test's dir, everything allowed
/// (only this test's processes can reach it).
fn bus_config(dir: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        dir.display()
    )
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    assert!(support::wait_until(within, &mut ok), "{what}");
}

impl Fw {
    /// docs/security.md's example: a zone of the operator's own, target
    /// ACCEPT, made permanent and loaded.
    fn new_accept_zone(&self, zone: &str) {
        for args in [
            vec!["--permanent".to_string(), format!("--new-zone={zone}")],
            vec![
                "--permanent".to_string(),
                format!("--zone={zone}"),
                "--set-target=ACCEPT".to_string(),
            ],
            vec!["--reload".to_string()],
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(
                self.firewall_cmd(&args).trim(),
                "success",
                "firewall-cmd {args:?}"
            );
        }
    }

    fn new(tag: &str, n: u8) -> Fw {
        let tag = format!("nfw{}{tag}", std::process::id());
        let dir = TempDir::new(&format!("netd-test-{tag}"));
        let host = Netns::new(&format!("{tag}-host"));
        let outside = Netns::new(&format!("{tag}-out"));
        let p4 = format!("10.233.{n}");
        support::uplink(&host, &outside, &p4);
        host.run_ok(
            "ip",
            &["route", "add", "default", "via", &format!("{p4}.2")],
        );

        std::fs::write(dir.0.join("bus.conf"), bus_config(&dir.0)).expect("bus config");
        let bus = Child(
            Command::new("nsenter")
                .arg(format!("--net={}", host.path()))
                .args(["dbus-daemon", "--nofork", "--nopidfile", "--config-file"])
                .arg(dir.0.join("bus.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dbus-daemon"),
        );
        let sock = dir.0.join("bus.sock");
        wait_for(
            "the test's dbus-daemon listens",
            Duration::from_secs(10),
            || std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        );
        let bus_addr = format!("unix:path={}", sock.display());
        let mut f = Fw {
            daemon: None,
            firewalld: None,
            _bus: bus,
            outside,
            host,
            dir,
            bus_addr,
            tag,
            host4: format!("{p4}.1"),
            out4: format!("{p4}.2"),
            n,
        };
        // firewalld's own system config (/etc/firewalld) is a copy in the
        // test's dir; its defaults are the package's, read only.
        let etc = f.dir.0.join("etc-firewalld");
        support::run_ok(
            "cp",
            &[
                "-a",
                &format!("{}/etc/firewalld", firewalld_root().display()),
                etc.to_str().expect("utf-8"),
            ],
        );
        let conf = std::fs::read_to_string(etc.join("firewalld.conf")).expect("firewalld.conf");
        assert!(
            conf.lines().any(|l| l.trim() == "FirewallBackend=nftables"),
            "firewalld must use its nftables backend"
        );
        f.start_firewalld();
        f
    }

    fn start_firewalld(&mut self) {
        let root = firewalld_root();
        let log = std::fs::File::create(self.dir.0.join("firewalld.log")).expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.host.path()))
            .arg(root.join("usr/sbin/firewalld"))
            .args(["--nofork", "--nopid", "--log-target", "console"])
            .arg("--system-config")
            .arg(self.dir.0.join("etc-firewalld"))
            .arg("--default-config")
            .arg(root.join("usr/lib/firewalld"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn firewalld");
        self.firewalld = Some(Child(child));
        wait_for("firewalld runs", Duration::from_secs(30), || {
            self.firewall_cmd(&["--state"]).trim() == "running"
        });
    }

    /// `firewall-cmd ARGS` against the test's firewalld: its stdout.
    fn firewall_cmd(&self, args: &[&str]) -> String {
        let out = Command::new(firewalld_root().join("usr/bin/firewall-cmd"))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr)
            .output()
            .expect("run firewall-cmd");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn zone(&self, zone: &str) -> Vec<String> {
        self.firewall_cmd(&["--zone", zone, "--list-interfaces"])
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn start_netd(&mut self, extra: &[&str]) {
        self.daemon = Some(Daemon::start_env(
            &self.host,
            &[("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr)],
            extra,
        ));
    }

    fn netd(&self) -> &Daemon {
        self.daemon.as_ref().expect("netd started")
    }

    /// A network with sandbox `a` publishing 8080 to a greeter on its 80,
    /// sandbox `b`, and a greeter outside on 9999: (bridge, a, b, servers).
    fn containers(&self) -> (String, String, String, [Child; 2]) {
        self.containers_with(&[])
    }

    /// [`Fw::containers`] on a network created with `extra` options.
    fn containers_with(&self, extra: &[&str]) -> (String, String, String, [Child; 2]) {
        let (net, a, b) = (
            format!("{}-net", self.tag),
            format!("{}-a", self.tag),
            format!("{}-b", self.tag),
        );
        let d = self.netd();
        let subnet = format!("10.234.{}.0/24", self.n);
        let mut args = vec!["network", "create", "--subnet", &subnet];
        args.extend_from_slice(extra);
        args.push(&net);
        d.cli_ok(&args);
        d.cli_ok(&["sandbox", "create", "--network", &net, "-p", "8080:80", &a]);
        d.cli_ok(&["sandbox", "create", "--network", &net, &b]);
        let bridge = self
            .host
            .links("netd-")
            .pop()
            .expect("the network's bridge");
        let servers = [
            greeter(&a, 80, "a"),
            greeter(self.outside.name(), 9999, "outside"),
        ];
        (bridge, a, b, servers)
    }

    fn egress(&self, a: &str) -> bool {
        tcp_read(a, &format!("{}:9999", self.out4)).as_deref() == Some("outside")
    }

    fn published(&self) -> bool {
        tcp_read(self.outside.name(), &format!("{}:8080", self.host4)).as_deref() == Some("a")
    }

    fn a_addr(&self, a: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&support::run_ok(
            "ip",
            &["-n", a, "-4", "-j", "addr", "show", "eth0"],
        ))
        .expect("ip -j");
        v[0]["addr_info"][0]["local"]
            .as_str()
            .expect("IPv4")
            .to_string()
    }

    fn failure(&self) -> String {
        format!(
            "netd:\n{}\nfirewalld:\n{}",
            self.netd().log(),
            std::fs::read_to_string(self.dir.0.join("firewalld.log")).unwrap_or_default()
        )
    }
}

#[test]
fn without_the_flag_firewalld_rejects_container_egress() {
    let mut f = Fw::new("off", 1);
    f.start_netd(&[]);
    let (bridge, a, _b, _servers) = f.containers();
    assert!(
        !f.egress(&a),
        "firewalld must reject egress from a bridge in no zone:\n{}",
        f.failure()
    );
    assert!(f.zone("trusted").is_empty(), "nobody put {bridge} anywhere");
    // firewalld accepts DNAT'd traffic (`ct status dnat accept`) in any zone.
    assert!(f.published(), "the published port:\n{}", f.failure());
}

#[test]
fn a_zone_of_the_operators_own_and_a_missing_one() {
    let mut f = Fw::new("own", 3);
    // docs/security.md's example, in the test's own firewalld config.
    f.new_accept_zone("netd");
    // A zone firewalld does not have: refused, said so, nothing else done.
    f.start_netd(&["--firewalld", "nope"]);
    let said = "firewalld refused bridge netd0 in zone nope: firewalld has no such zone: nope";
    wait_for("the refusal logged", Duration::from_secs(5), || {
        f.netd().log().contains(said)
    });
    assert!(f.zone("netd").is_empty() && f.zone("trusted").is_empty());
    f.daemon = None;

    f.start_netd(&["--firewalld", "netd"]);
    let (bridge, a, _b, _servers) = f.containers();
    wait_for("the bridge in zone netd", Duration::from_secs(5), || {
        f.zone("netd").contains(&bridge)
    });
    assert!(f.egress(&a), "egress through zone netd:\n{}", f.failure());
    assert!(f.zone("trusted").is_empty());
}

#[test]
fn bridges_stay_in_the_zone_across_reloads_and_restarts() {
    let mut f = Fw::new("on", 2);
    f.start_netd(&["--firewalld", "auto"]);
    let (bridge, a, b, _servers) = f.containers();
    wait_for("the bridge in zone trusted", Duration::from_secs(5), || {
        f.zone("trusted").contains(&bridge)
    });
    assert!(f.egress(&a), "egress through firewalld:\n{}", f.failure());
    assert!(f.published(), "the published port:\n{}", f.failure());
    let a4 = f.a_addr(&a);
    assert_eq!(tcp_read(&b, &format!("{a4}:80")).as_deref(), Some("a"));

    // A reload drops every runtime interface; netd's comes back at once.
    // firewall-cmd returns once the reload is done; the bridge is taken
    // out by it and put back on the signal it sends.
    let called = Instant::now();
    assert_eq!(f.firewall_cmd(&["--reload"]).trim(), "success");
    let took = called.elapsed();
    let back = support::time_until(Duration::from_secs(3), || f.egress(&a));
    eprintln!("egress back {back:?} after firewall-cmd --reload returned (it took {took:?})");
    assert!(
        back.is_some_and(|t| t <= Duration::from_secs(1)),
        "egress not back within 1 s of the reload ({back:?}):\n{}",
        f.failure()
    );
    assert!(f.zone("trusted").contains(&bridge));
    assert!(f.published());

    // firewalld restarts (its name leaves the bus and comes back).
    drop(f.firewalld.take());
    f.start_firewalld();
    let back = support::time_until(Duration::from_secs(5), || f.egress(&a));
    eprintln!("egress back {back:?} after the restarted firewalld answered");
    assert!(
        back.is_some(),
        "egress after a firewalld restart:\n{}",
        f.failure()
    );

    // A network another netd process makes (as the CNI plugin does:
    // straight into the store and the kernel, no API call) goes in too.
    let state = f.netd().state_dir();
    let other = format!("{}-o", f.tag);
    let req = netd::model::NetworkCreate {
        name: other.clone(),
        subnet: Some(format!("10.235.{}.0/24", f.n)),
        ..Default::default()
    };
    let made = Instant::now();
    let net = support::in_ns(f.host.name(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let n = netd::ops::Netd::open(&state).await.expect("open the store");
            n.create_network(&req).await.expect("create the network")
        })
    });
    let other_bridge = net.bridge().expect("a bridge").bridge.to_string();
    wait_for(
        "another process's network in the zone",
        Duration::from_secs(4),
        || f.zone("trusted").contains(&other_bridge),
    );
    eprintln!(
        "another process's network in the zone after {:?}",
        made.elapsed()
    );
    f.netd().cli_ok(&["network", "rm", &other]);

    // The network goes: so does its bridge from the zone.
    f.netd().cli_ok(&["sandbox", "rm", &a]);
    f.netd().cli_ok(&["sandbox", "rm", &b]);
    f.netd()
        .cli_ok(&["network", "rm", &format!("{}-net", f.tag)]);
    wait_for("the bridge out of the zone", Duration::from_secs(5), || {
        !f.zone("trusted").contains(&bridge)
    });
    assert!(
        f.zone("trusted").contains(&"netd0".to_string()),
        "the predefined bridge stays"
    );
}

#[test]
fn a_routed_network_needs_the_documented_policy() {
    let mut f = Fw::new("routed", 4);
    // docs/security.md: a zone of the operator's, netd's bridges in it.
    f.new_accept_zone("netd");
    f.start_netd(&["--firewalld", "netd"]);
    let (bridge, a, _b, _servers) =
        f.containers_with(&["-o", "com.docker.network.bridge.gateway_mode_ipv4=routed"]);
    wait_for("the bridge in zone netd", Duration::from_secs(5), || {
        f.zone("netd").contains(&bridge)
    });
    f.outside.run_ok(
        "ip",
        &[
            "route",
            "add",
            &format!("10.234.{}.0/24", f.n),
            "via",
            &f.host4,
        ],
    );
    let direct = format!("{}:80", f.a_addr(&a));
    assert!(f.egress(&a), "egress:\n{}", f.failure());
    // Not DNAT'd: from the uplink's zone into zone netd, which no policy
    // allows yet.
    assert_eq!(
        tcp_read(f.outside.name(), &direct),
        None,
        "firewalld let routed traffic into zone netd without a policy"
    );
    // docs/security.md's policy.
    for args in [
        &["--permanent", "--new-policy=netd-routed"][..],
        &[
            "--permanent",
            "--policy=netd-routed",
            "--add-ingress-zone=ANY",
        ],
        &[
            "--permanent",
            "--policy=netd-routed",
            "--add-egress-zone=netd",
        ],
        &["--permanent", "--policy=netd-routed", "--set-target=ACCEPT"],
        &["--reload"],
    ] {
        assert_eq!(
            f.firewall_cmd(args).trim(),
            "success",
            "firewall-cmd {args:?}"
        );
    }
    let reached = support::time_until(Duration::from_secs(3), || {
        tcp_read(f.outside.name(), &direct).as_deref() == Some("a")
    });
    assert!(
        reached.is_some(),
        "the published container port at its own address, with the policy:\n{}",
        f.failure()
    );
    assert!(f.zone("netd").contains(&bridge));
}
