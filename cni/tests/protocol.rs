//! The CNI protocol, spoken by the built `netd-cni` exactly as libcni execs
//! it: VERSION, ADD in every version (result checked field by field against
//! the kernel), CHECK, DEL, STATUS, and errors on stdout with their codes.

mod support;

use serde_json::{Value, json};
use support::{LEGACY_VERSIONS, TempDir, VERSIONS, World, conf};

#[test]
fn version_answers_every_supported_version() {
    let w = World::new("ver");
    let all: Vec<&str> = LEGACY_VERSIONS.iter().chain(VERSIONS).copied().collect();
    for asked in ["1.1.0", "0.4.0", "0.2.0"] {
        let v = w
            .exec(
                &[("CNI_COMMAND", "VERSION")],
                &json!({ "cniVersion": asked }).to_string(),
            )
            .ok();
        assert_eq!(v["cniVersion"], asked, "VERSION echoes the version asked");
        assert_eq!(v["supportedVersions"], json!(all));
    }
    // No configuration at all (some runtimes send nothing): still an answer.
    let v = w.exec(&[("CNI_COMMAND", "VERSION")], "").ok();
    assert_eq!(v["supportedVersions"], json!(all));
}

#[test]
fn add_in_every_version_result_matches_the_kernel() {
    let w = World::new("add");
    let net = "addnet";
    let mut added = Vec::new();
    for (i, version) in VERSIONS.iter().enumerate() {
        let c = w.container(&format!("c{i}"));
        let id = format!("ctr{i}");
        let r = w.add(&id, &c, &conf(version, net, "10.210.0.0/24"));
        let ip = format!("10.210.0.{}", i + 2);

        assert_eq!(r["cniVersion"], *version);
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["cniVersion", "dns", "interfaces", "ips", "routes"],
            "{r}"
        );
        // interfaces[0]: the host veth, as the host namespace has it.
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 2, "{r}");
        let hv = ifs[0]["name"].as_str().unwrap();
        assert!(hv.starts_with("nd-"), "{r}");
        assert!(
            ifs[0].get("sandbox").is_none(),
            "a host interface has no sandbox"
        );
        let host_link = w.host.link(hv).expect("the host veth exists");
        assert_eq!(ifs[0]["mac"], host_link["address"]);
        // interfaces[1]: the container interface, as its namespace has it.
        assert_eq!(ifs[1]["name"], "eth0");
        assert_eq!(ifs[1]["sandbox"], c.path());
        let mac = ip
            .split('.')
            .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(ifs[1]["mac"], format!("02:42:{mac}"));
        let eth0 = c.link("eth0").expect("eth0 exists in the container");
        assert_eq!(ifs[1]["mac"], eth0["address"]);
        assert!(eth0["flags"].as_array().unwrap().contains(&json!("UP")));
        // `mtu` on interfaces is 1.1.0's.
        if *version == "1.1.0" {
            assert_eq!(ifs[1]["mtu"], eth0["mtu"]);
            assert_eq!(ifs[0]["mtu"], host_link["mtu"]);
        } else {
            assert!(ifs[0].get("mtu").is_none() && ifs[1].get("mtu").is_none());
        }
        // ips: the address, its gateway, the index of eth0; "version" for 0.x only.
        let ips = r["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 1);
        assert_eq!(ips[0]["address"], format!("{ip}/24"));
        assert_eq!(ips[0]["gateway"], "10.210.0.1");
        assert_eq!(ips[0]["interface"], 1);
        if version.starts_with("0.") {
            assert_eq!(ips[0]["version"], "4", "{r}");
        } else {
            assert!(ips[0].get("version").is_none(), "{r}");
        }
        assert_eq!(c.addresses("eth0"), vec![format!("{ip}/24")]);
        // routes: the default route via the gateway, which the namespace has.
        assert_eq!(
            r["routes"],
            json!([{ "dst": "0.0.0.0/0", "gw": "10.210.0.1" }])
        );
        assert_eq!(c.default_gateway().as_deref(), Some("10.210.0.1"));
        // dns: empty unless the configuration asks for netd's DNS.
        assert_eq!(r["dns"], json!({}));
        // lo is up.
        let lo = c.link("lo").unwrap();
        assert!(lo["flags"].as_array().unwrap().contains(&json!("UP")));
        // And the container reaches its gateway.
        assert!(c.ping("10.210.0.1"), "{version}: no traffic to the gateway");
        added.push((id, c, version));
    }
    for (id, c, version) in &added {
        w.cmd(
            "DEL",
            id,
            Some(c),
            "eth0",
            &conf(version, net, "10.210.0.0/24"),
        )
        .silent();
    }
    let left = w.veths_after_reaping(0);
    assert!(left.is_empty(), "DEL left {left:?}");
    assert!(w.endpoints().is_empty(), "DEL left endpoints in the store");
}

#[test]
fn dns_names_and_capabilities_are_recorded() {
    let w = World::new("dns");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let c = w.container("c");
    let mut cf = conf("1.1.0", "dnsnet", "10.211.0.0/24");
    cf["dns"] = json!(true);
    cf["runtimeConfig"] = json!({
        "aliases": { "dnsnet": ["web", "api"], "othernet": ["nope"] },
        "ips": ["10.211.0.77/24"],
        "mac": "02:00:00:00:00:aa",
    });
    let r = w
        .cmd_args(
            "ADD",
            "dnsctr",
            Some(&c.path()),
            "eth0",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            &cf,
        )
        .ok();
    assert_eq!(r["dns"], json!({ "nameservers": ["127.0.0.11"] }));
    assert_eq!(r["ips"][0]["address"], "10.211.0.77/24");
    assert_eq!(r["interfaces"][1]["mac"], "02:00:00:00:00:aa");
    assert_eq!(c.addresses("eth0"), vec!["10.211.0.77/24"]);
    assert_eq!(c.link("eth0").unwrap()["address"], "02:00:00:00:00:aa");
    // What netd's DNS serves: the sandbox (named after the container id)
    // and its aliases on this network, the pod name among them.
    let sbs = w.sandboxes();
    assert_eq!(sbs.len(), 1);
    assert_eq!(sbs[0].name.as_str(), "dnsctr");
    let eps = w.endpoints();
    assert_eq!(eps[0].aliases, vec!["web", "api", "web-0"]);

    // The daemon the first ADD started already answers, from a second
    // container (configured with the key engines use), the moment ADD
    // returns; and forgets the names right after DEL.
    let c2 = w.container("c2");
    let mut cf2 = conf("1.1.0", "dnsnet", "10.211.0.0/24");
    cf2["dnsEnabled"] = json!(true);
    let r2 = w.add("dnsctr2", &c2, &cf2);
    let ip2 = r2["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let dig_in = |from: &support::Netns, name: &str| {
        from.run_ok(
            "dig",
            &["+short", "+tries=1", "+time=2", "@127.0.0.11", name],
        )
        .trim()
        .to_string()
    };
    let dig = |name: &str| dig_in(&c2, name);
    for name in ["web", "api", "web-0", "dnsctr", "dnsctr.dnsnet"] {
        assert_eq!(dig(name), "10.211.0.77", "{name} from another container");
    }
    // The container served before sees the newcomer at once too (its
    // records are added to the shared table in place).
    for name in ["dnsctr2", "dnsctr2.dnsnet"] {
        assert_eq!(dig_in(&c, name), ip2, "{name} from the first container");
    }
    w.cmd("DEL", "dnsctr", Some(&c), "eth0", &cf).silent();
    // DEL hands the daemon's sync to its reaper: the names go within ms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !dig("web").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(dig("web"), "", "a deleted container's alias still resolves");
    w.cmd("DEL", "dnsctr2", Some(&c2), "eth0", &cf2).silent();
    assert!(w.endpoints().is_empty());
}

#[test]
fn check_is_silent_when_healthy_and_names_what_broke() {
    let w = World::new("chk");
    let c = w.container("c");
    let base = conf("1.1.0", "chknet", "10.212.0.0/24");
    let r = w.add("chkctr", &c, &base);
    let mut chk = base.clone();
    chk["prevResult"] = r.clone();
    // Healthy: exit 0, nothing on stdout. Also right after ADD, in 0.4.0.
    w.cmd("CHECK", "chkctr", Some(&c), "eth0", &chk).silent();
    let mut old = chk.clone();
    old["cniVersion"] = json!("0.4.0");
    old["prevResult"]["cniVersion"] = json!("0.4.0");
    old["prevResult"]["ips"][0]["version"] = json!("4");
    w.cmd("CHECK", "chkctr", Some(&c), "eth0", &old).silent();
    // CHECK is not in 0.3.x.
    let mut v031 = chk.clone();
    v031["cniVersion"] = json!("0.3.1");
    assert_eq!(
        w.cmd("CHECK", "chkctr", Some(&c), "eth0", &v031).error()["code"],
        1
    );
    // No prevResult: a configuration error.
    assert_eq!(
        w.cmd("CHECK", "chkctr", Some(&c), "eth0", &base).error()["code"],
        7
    );
    // A container the plugin never saw: 3.
    assert_eq!(
        w.cmd("CHECK", "nobody", Some(&c), "eth0", &chk).error()["code"],
        3
    );
    // prevResult claims an address the store did not reserve.
    let mut wrong = chk.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("10.212.0.99/24");
    let e = w.cmd("CHECK", "chkctr", Some(&c), "eth0", &wrong).error();
    assert!(e["msg"].as_str().unwrap().contains("not reserved"), "{e}");
    // The default route removed inside the container.
    c.run_ok("ip", &["route", "del", "default"]);
    let e = w.cmd("CHECK", "chkctr", Some(&c), "eth0", &chk).error();
    assert!(e["msg"].as_str().unwrap().contains("default route"), "{e}");
    c.run_ok("ip", &["route", "add", "default", "via", "10.212.0.1"]);
    w.cmd("CHECK", "chkctr", Some(&c), "eth0", &chk).silent();
    // The address removed inside the container.
    c.run_ok("ip", &["addr", "del", "10.212.0.2/24", "dev", "eth0"]);
    let e = w.cmd("CHECK", "chkctr", Some(&c), "eth0", &chk).error();
    assert!(e["msg"].as_str().unwrap().contains("lacks address"), "{e}");
    c.run_ok("ip", &["addr", "add", "10.212.0.2/24", "dev", "eth0"]);
    // The host veth deleted (which takes eth0 with it).
    let hv = r["interfaces"][0]["name"].as_str().unwrap();
    w.host.run_ok("ip", &["link", "del", hv]);
    let e = w.cmd("CHECK", "chkctr", Some(&c), "eth0", &chk).error();
    assert_eq!(e["code"], 999);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains(&format!("{hv} is missing")),
        "{e}"
    );
    // DEL still cleans up after the damage.
    w.cmd("DEL", "chkctr", Some(&c), "eth0", &base).silent();
    assert!(w.endpoints().is_empty());
}

#[test]
fn errors_are_json_on_stdout_with_spec_codes() {
    let w = World::new("err");
    let c = w.container("c");
    let good = conf("1.1.0", "errnet", "10.213.0.0/24");
    let add_env = |netns: &str| -> Vec<(&str, String)> {
        vec![
            ("CNI_COMMAND", "ADD".into()),
            ("CNI_CONTAINERID", "errctr".into()),
            ("CNI_NETNS", netns.to_string()),
            ("CNI_IFNAME", "eth0".into()),
            ("CNI_PATH", "/usr/lib/cni".into()),
        ]
    };
    let exec = |env: &[(&str, String)], stdin: &str| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        w.exec(&env, stdin)
    };
    let full = add_env(&c.path());

    // 6: stdin that is not JSON.
    let e = exec(&full, "{nope").error();
    assert_eq!(e["code"], 6, "{e}");
    assert_eq!(e["cniVersion"], "1.1.0");

    // 4: missing environment variables, every one named.
    let partial: Vec<(&str, String)> = full
        .iter()
        .filter(|(k, _)| *k != "CNI_CONTAINERID" && *k != "CNI_NETNS")
        .cloned()
        .collect();
    let e = exec(&partial, &good.to_string()).error();
    assert_eq!(e["code"], 4, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("CNI_CONTAINERID") && msg.contains("CNI_NETNS"),
        "{e}"
    );
    // 4: an unknown command, an invalid container id, a path that is no netns.
    let e = exec(&full[1..], &good.to_string()).error();
    assert_eq!(e["code"], 4, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("CNI_COMMAND"), "{e}");
    let mut frob = full.clone();
    frob[0].1 = "FROB".into();
    assert_eq!(exec(&frob, &good.to_string()).error()["code"], 4);
    let mut bad_id = full.clone();
    bad_id[1].1 = "bad/id".into();
    assert_eq!(exec(&bad_id, &good.to_string()).error()["code"], 4);
    let e = exec(&add_env("/tmp"), &good.to_string()).error();
    assert_eq!(e["code"], 4, "{e}");

    // 7: configurations netd refuses.
    let mut no_name = good.clone();
    no_name.as_object_mut().unwrap().remove("name");
    assert_eq!(exec(&full, &no_name.to_string()).error()["code"], 7);
    let e = exec(&full, &conf("1.1.0", "errnet", "10.213.0.0/33").to_string()).error();
    assert_eq!(e["code"], 7, "{e}");
    let mut bad_mtu = good.clone();
    bad_mtu["mtu"] = json!("big");
    assert_eq!(exec(&full, &bad_mtu.to_string()).error()["code"], 7);
    let mut bad_port = good.clone();
    bad_port["runtimeConfig"] =
        json!({ "portMappings": [{ "hostPort": 8080, "containerPort": 0 }] });
    assert_eq!(exec(&full, &bad_port.to_string()).error()["code"], 7);
    // 1: a version this plugin does not speak, in the error's own version.
    let e = exec(&full, &conf("0.5.0", "errnet", "10.213.0.0/24").to_string()).error();
    assert_eq!(e["code"], 1, "{e}");
    assert!(
        e["details"].as_str().unwrap().contains("0.1.0 0.2.0 0.3.0"),
        "{e}"
    );
    assert_eq!(e["cniVersion"], "1.1.0");
    // 7: an ipam section without a plugin type, or a type that is a path.
    for bad in [
        json!({ "subnet": "10.1.0.0/24" }),
        json!({ "type": "../../bin/sh" }),
    ] {
        let mut ipam = good.clone();
        ipam["ipam"] = bad;
        let e = exec(&full, &ipam.to_string()).error();
        assert_eq!(e["code"], 7, "{e}");
        assert!(e["msg"].as_str().unwrap().contains("ipam"), "{e}");
    }
    // None of these left anything behind.
    assert!(w.veths().is_empty());
    assert!(w.sandboxes().is_empty());

    // An existing network with other settings: 7, and the first one is intact.
    let r = exec(&full, &good.to_string()).ok();
    assert_eq!(r["ips"][0]["address"], "10.213.0.2/24");
    let c2 = w.container("c2");
    let e = w
        .cmd(
            "ADD",
            "errctr2",
            Some(&c2),
            "eth0",
            &conf("1.1.0", "errnet", "10.99.0.0/24"),
        )
        .error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["details"].as_str().unwrap().contains("subnet"), "{e}");
    let mut masq = good.clone();
    masq["ipMasq"] = json!(false);
    assert_eq!(
        w.cmd("ADD", "errctr2", Some(&c2), "eth0", &masq).error()["code"],
        7
    );
    assert!(c2.link("eth0").is_none(), "a refused ADD left eth0");
    // CNI_IFNAME already taken in the container (the same container id: for
    // another one the namespace is taken, see shared_netns.rs): an error,
    // nothing changed.
    let e = w.cmd("ADD", "errctr", Some(&c), "eth0", &good).error();
    assert!(e["msg"].as_str().unwrap().contains("already exists"), "{e}");
    assert_eq!(w.veths().len(), 1);
    // A static address outside the subnet: refused, and a failure part-way
    // (the network this ADD created) is undone.
    let c3 = w.container("c3");
    let mut outside = conf("1.1.0", "errnet2", "10.214.0.0/24");
    outside["runtimeConfig"] = json!({ "ips": ["10.99.0.5/24"] });
    assert_eq!(
        w.cmd("ADD", "errctr4", Some(&c3), "eth0", &outside).error()["code"],
        7
    );
    assert!(c3.link("eth0").is_none());
    assert!(
        w.host.links("netd-").len() == 1,
        "the refused ADD left its bridge: {:?}",
        w.host.links("netd-")
    );
    w.cmd("DEL", "errctr", Some(&c), "eth0", &good).silent();
}

/// DEL returns before the kernel has deleted the veth pair (that waits for
/// an RCU grace period), but nothing of the attachment is usable or in the
/// way when it returns: the interface name is free, its routes are gone,
/// the same container can be added again at once; the pair is gone shortly
/// after.
#[test]
fn del_frees_everything_at_once_and_the_pair_goes_soon_after() {
    let w = World::new("reap");
    let base = conf("1.0.0", "reapnet", "10.219.0.0/24");
    let keep = w.container("keep");
    w.add("keep", &keep, &base);
    let c = w.container("c");
    let first = w.add("r1", &c, &base);
    let old_host = first["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert!(c.ping("10.219.0.2"));

    w.cmd("DEL", "r1", Some(&c), "eth0", &base).silent();
    assert!(c.link("eth0").is_none(), "eth0 is still there after DEL");
    assert_eq!(c.default_gateway(), None, "the default route outlived DEL");
    // Retired, the old sandbox side cannot carry anything even before it goes.
    for l in c.links("ndr") {
        let flags = c.link(&l).unwrap()["flags"].clone();
        assert!(
            !flags.as_array().unwrap().contains(&json!("UP")),
            "{l} is up"
        );
    }

    // The same container, the same interface name, at once.
    let again = w.add("r1", &c, &base);
    assert_eq!(again["ips"][0]["address"], "10.219.0.3/24");
    assert!(c.ping("10.219.0.2"), "no traffic after DEL and ADD again");

    // The old pair is deleted by then or shortly after; the others stay.
    let left = w.veths_after_reaping(2);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&old_host), "{old_host} was never deleted");
    assert!(c.links("ndr").is_empty(), "a retired interface stayed");
    w.cmd("DEL", "r1", Some(&c), "eth0", &base).silent();
    w.cmd("DEL", "keep", Some(&keep), "eth0", &base).silent();
    assert!(w.veths_after_reaping(0).is_empty());
}

#[test]
fn del_is_idempotent_and_always_releases_the_address() {
    let w = World::new("del");
    let base = conf("1.0.0", "delnet", "10.215.0.0/24");
    let c1 = w.container("c1");
    let c2 = w.container("c2");
    assert_eq!(
        w.add("d1", &c1, &base)["ips"][0]["address"],
        "10.215.0.2/24"
    );
    assert_eq!(
        w.add("d2", &c2, &base)["ips"][0]["address"],
        "10.215.0.3/24"
    );

    // Twice, with the namespace.
    w.cmd("DEL", "d1", Some(&c1), "eth0", &base).silent();
    w.cmd("DEL", "d1", Some(&c1), "eth0", &base).silent();
    assert!(c1.link("eth0").is_none());
    // Without CNI_NETNS.
    w.cmd("DEL", "d2", None, "eth0", &base).silent();
    assert!(c2.link("eth0").is_none(), "DEL without CNI_NETNS left eth0");
    // A container never added, and a prevResult-carrying DEL.
    w.cmd("DEL", "never-added", None, "eth0", &base).silent();
    // With the namespace gone.
    let c3 = w.container("c3");
    let r = w.add("d3", &c3, &base);
    let path = c3.path();
    drop(c3);
    let mut with_prev = base.clone();
    with_prev["prevResult"] = r;
    w.cmd_args("DEL", "d3", Some(&path), "eth0", "", &with_prev)
        .silent();
    w.cmd_args("DEL", "d3", Some(&path), "eth0", "", &with_prev)
        .silent();
    // Nothing is left, and every address was released: .2 again.
    let left = w.veths_after_reaping(0);
    assert!(left.is_empty(), "{left:?}");
    assert!(w.endpoints().is_empty());
    assert!(w.sandboxes().is_empty());
    let c4 = w.container("c4");
    assert_eq!(
        w.add("d4", &c4, &base)["ips"][0]["address"],
        "10.215.0.2/24"
    );
    w.cmd("DEL", "d4", Some(&c4), "eth0", &base).silent();
}

#[test]
fn status_is_ready_unless_the_state_dir_is_unwritable() {
    let w = World::new("sts");
    let c = conf("1.1.0", "stsnet", "10.216.0.0/24");
    w.exec(&[("CNI_COMMAND", "STATUS")], &c.to_string())
        .silent();
    // STATUS is 1.1.0's.
    let e = w
        .exec(
            &[("CNI_COMMAND", "STATUS")],
            &conf("1.0.0", "stsnet", "10.216.0.0/24").to_string(),
        )
        .error();
    assert_eq!(e["code"], 1);
    // A state dir that cannot be created (its parent is a file): 50.
    let tmp = TempDir::new(&format!("{}-blocked", w.tag));
    let file = tmp.0.join("file");
    std::fs::write(&file, b"x").unwrap();
    let mut blocked = c.clone();
    blocked["stateDir"] = json!(file.join("state"));
    let e = w
        .exec(&[("CNI_COMMAND", "STATUS")], &blocked.to_string())
        .error();
    assert_eq!(e["code"], 50, "{e}");
    // And ADD then fails cleanly too.
    let ctr = w.container("c");
    let out = w.cmd("ADD", "s1", Some(&ctr), "eth0", &blocked);
    let e: Value = out.error();
    assert_ne!(e["code"], 0);
    assert!(ctr.link("eth0").is_none());
}

#[test]
fn a_container_id_is_one_namespace_at_a_time() {
    let w = World::new("own");
    let base = conf("1.1.0", "ownnet", "10.217.0.0/24");
    let c1 = w.container("c1");
    w.add("same", &c1, &base);
    // The namespace goes without a DEL; the runtime reuses the id.
    drop(c1);
    let c2 = w.container("c2");
    let r = w.add("same", &c2, &base);
    assert_eq!(
        r["ips"][0]["address"], "10.217.0.2/24",
        "the stale one is freed"
    );
    assert_eq!(w.endpoints().len(), 1);
    // While c2 lives, the id cannot be attached from another namespace...
    let c3 = w.container("c3");
    let e = w.cmd("ADD", "same", Some(&c3), "eth0", &base).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(c3.link("eth0").is_none());
    // ...and a DEL naming another namespace leaves c2 alone.
    w.cmd("DEL", "same", Some(&c3), "eth0", &base).silent();
    assert!(c2.link("eth0").is_some());
    assert!(c2.ping("10.217.0.1"));
    w.cmd("DEL", "same", Some(&c2), "eth0", &base).silent();
    assert!(w.endpoints().is_empty());
    assert!(w.veths_after_reaping(0).is_empty());
}

/// Container ids and network names are matched exactly: one that happens to
/// be a prefix of another sandbox's or network's id never acts on it (a DEL
/// of an unknown container must not remove someone else's network).
#[test]
fn ids_that_prefix_other_ids_never_act_on_them() {
    let w = World::new("pfx");
    let base = conf("1.0.0", "pfxnet", "10.219.0.0/24");
    let c1 = w.container("c1");
    w.add("p1", &c1, &base);
    let sandbox_id = w.sandboxes()[0].id.to_string();
    let prefix = &sandbox_id[..4];

    // DEL of an unknown container whose id is a prefix of p1's sandbox id.
    w.cmd("DEL", prefix, None, "eth0", &base).silent();
    assert_eq!(w.endpoints().len(), 1, "a DEL of another id removed p1");
    assert!(c1.link("eth0").is_some(), "p1 lost its interface");

    // ADD of such a container gets a sandbox of its own.
    let c2 = w.container("c2");
    assert_eq!(
        w.add(prefix, &c2, &base)["ips"][0]["address"],
        "10.219.0.3/24"
    );
    assert_eq!(w.endpoints().len(), 2);
    w.cmd("DEL", prefix, Some(&c2), "eth0", &base).silent();
    assert_eq!(w.endpoints().len(), 1);

    // A network named like a prefix of pfxnet's id is another network.
    let net_id = w.endpoints()[0].network.to_string();
    let other = conf("1.0.0", &net_id[..4], "10.220.0.0/24");
    let c3 = w.container("c3");
    assert_eq!(
        w.add("p3", &c3, &other)["ips"][0]["address"],
        "10.220.0.2/24"
    );
    w.cmd("DEL", "p3", Some(&c3), "eth0", &other).silent();
    w.cmd("DEL", "p1", Some(&c1), "eth0", &base).silent();
    assert!(w.endpoints().is_empty());
}
