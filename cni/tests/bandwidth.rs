//! The `bandwidth` capability, measured with real traffic: a tbf on the
//! host veth limits what enters the container; an ifb per container (named
//! `ndi` + its host veth's 12 hex digits) limits what leaves it. The ifb is
//! made, read back by CHECK, and deleted by DEL, by a failed ADD and by GC.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Netns, World, conf};

/// tbf counts frames: of a full one (1514 bytes on a 1500 MTU), TCP with
/// timestamps carries 1448 bytes of data.
fn payload(rate: f64) -> f64 {
    rate * 1448.0 / 1514.0
}

fn assert_within_10(what: &str, got: f64, rate: f64) {
    let want = payload(rate);
    eprintln!(
        "bandwidth: {what}: {got:.0} bit/s of data with a limit of {rate:.0} ({want:.0} of data in full frames)"
    );
    assert!(
        (got - want).abs() <= want * 0.10,
        "{what}: {got:.0} bit/s is not within 10% of {want:.0}"
    );
}

fn host_veth(r: &Value) -> String {
    r["interfaces"][0]["name"].as_str().unwrap().to_string()
}

/// The ifb netd names after the host veth `nd-` + 12 hex.
fn ifb_of(hv: &str) -> String {
    format!("ndi{}", hv.strip_prefix("nd-").unwrap())
}

fn ifbs(w: &World) -> Vec<String> {
    w.host.links("ndi")
}

/// The ifbs but `keep` left once DEL's reaper has had time (it deletes
/// them beside the veths, a few ms after DEL returned).
fn ifbs_after_reaping(w: &World, keep: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v: Vec<String> = ifbs(w)
            .into_iter()
            .filter(|l| !keep.contains(&l.as_str()))
            .collect();
        if v.is_empty() || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gateway(r: &Value) -> String {
    r["ips"][0]["gateway"].as_str().unwrap().to_string()
}

/// iperf3 from `ns` to the server at `server` for 4 s (the first left
/// out: TCP's slow start and the bucket's first burst are not the limit):
/// the data rate the receiving side saw, in bits per second. `reverse`:
/// the server sends.
fn iperf(ns: &Netns, server: &str, reverse: bool) -> f64 {
    let mut args = vec!["-c", server, "-t", "4", "-O", "1", "-J"];
    if reverse {
        args.push("-R");
    }
    let out: Value = serde_json::from_str(&ns.run_ok("iperf3", &args)).expect("iperf3 -J");
    out["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no received rate in {out}"))
}

/// An iperf3 server in the test's host namespace, on the network's gateway
/// address: the host side of every container's veth.
fn server(w: &World, gw: &str) -> support::Child {
    let s = support::spawn_in(&w.host, "iperf3", &["-s", "-B", gw, "-p", "5201"]);
    support::wait_listening(&w.host, 5201);
    s
}

fn limited(base: &Value, bw: Value) -> Value {
    let mut c = base.clone();
    c["capabilities"] = json!({ "bandwidth": true });
    c["runtimeConfig"] = json!({ "bandwidth": bw });
    c
}

/// The ingress limit, measured: a timed download into the limited
/// container from another one lands within 10% of the rate; DEL takes the
/// qdisc with the veth.
#[test]
fn bandwidth_limits_what_enters_the_container_measured() {
    let w = World::new("ccxbw");
    let (lim, srv) = (w.container("lim"), w.container("srv"));
    let base = conf("1.1.0", "bwnet", "10.222.0.0/24");
    let files = support::TempDir::new(&format!("{}-files", w.tag));
    let size: usize = 4_000_000;
    std::fs::write(files.0.join("blob"), vec![7u8; size]).unwrap();
    let rs = w.add("bwsrv", &srv, &base);
    let srv_ip = rs["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let _server = support::spawn_in(
        &srv,
        "python3",
        &[
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
            "--directory",
            files.0.to_str().unwrap(),
        ],
    );
    support::wait_listening(&srv, 80);

    let rate: f64 = 8_000_000.0;
    let limited = limited(
        &base,
        json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000 }),
    );
    let r = w.add("bwlim", &lim, &limited);
    let hv = host_veth(&r);
    let qdisc = w.host.run_ok("tc", &["qdisc", "show", "dev", &hv]);
    assert!(qdisc.contains("tbf") && qdisc.contains("8Mbit"), "{qdisc}");
    assert!(
        ifbs(&w).is_empty(),
        "no egress limit, no ifb: {:?}",
        ifbs(&w)
    );
    let url = format!("{srv_ip}/blob");
    let out = lim.run_ok(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "30",
            "-w",
            "%{size_download} %{time_starttransfer} %{time_total}",
            &format!("http://{url}"),
        ],
    );
    let mut it = out.split_whitespace();
    let bytes: f64 = it.next().unwrap().parse().unwrap();
    let first: f64 = it.next().unwrap().parse().unwrap();
    let last: f64 = it.next().unwrap().parse().unwrap();
    assert_eq!(bytes as usize, size, "{out}");
    // From the first byte: the connection's setup is not the link's.
    assert_within_10("ingress (curl)", bytes * 8.0 / (last - first), rate);
    w.cmd("DEL", "bwlim", Some(&lim), "eth0", &limited).silent();
    w.cmd("DEL", "bwsrv", Some(&srv), "eth0", &base).silent();
}

/// The egress limit, measured: an upload from the limited container to a
/// server on the host side lands within 10% of the rate, through the ifb
/// named after the host veth; bad limits are refused with nothing made; a
/// retried ADD and CHECK see the same ifb; DEL deletes it.
#[test]
fn bandwidth_limits_what_leaves_the_container_measured() {
    let w = World::new("negrbwe");
    let lim = w.container("lim");
    let base = conf("1.1.0", "bwenet", "10.225.0.0/24");

    for (bw, want) in [
        (
            json!({ "egressRate": 8_000_000 }),
            "egressRate and egressBurst",
        ),
        (
            json!({ "egressBurst": 256_000 }),
            "egressRate and egressBurst",
        ),
        (
            json!({ "egressRate": 8_000_000, "egressBurst": 8_000 }),
            "egressBurst 8000 bits is less than a frame",
        ),
    ] {
        let e = w
            .cmd(
                "ADD",
                "bwe",
                Some(&lim),
                "eth0",
                &limited(&base, bw.clone()),
            )
            .error();
        assert_eq!(e["code"], 7, "{bw}: {e}");
        assert!(e["msg"].as_str().unwrap().contains(want), "{bw}: {e}");
        assert!(lim.link("eth0").is_none(), "{bw}: an interface was made");
        assert!(
            w.veths().is_empty() && ifbs(&w).is_empty(),
            "{bw}: links were made"
        );
    }

    let rate: f64 = 8_000_000.0;
    let cf = limited(
        &base,
        json!({ "egressRate": 8_000_000, "egressBurst": 256_000 }),
    );
    let r = w.add("bwe", &lim, &cf);
    let hv = host_veth(&r);
    let ifb = ifb_of(&hv);
    assert_eq!(ifbs(&w), vec![ifb.clone()]);
    assert!(ifb.len() <= 15);
    let qdisc = w.host.run_ok("tc", &["qdisc", "show", "dev", &ifb]);
    assert!(qdisc.contains("tbf") && qdisc.contains("8Mbit"), "{qdisc}");
    // No ingress limit: the veth's own root is not shaped.
    let veth_qdisc = w.host.run_ok("tc", &["qdisc", "show", "dev", &hv]);
    assert!(!veth_qdisc.contains("tbf"), "{veth_qdisc}");

    let filters = w
        .host
        .run_ok("tc", &["filter", "show", "dev", &hv, "parent", "ffff:"]);
    assert_eq!(
        filters.matches("Redirect to device").count(),
        1,
        "{filters}"
    );

    let mut chk = cf.clone();
    chk["prevResult"] = r.clone();
    w.cmd("CHECK", "bwe", Some(&lim), "eth0", &chk).silent();

    let _server = server(&w, &gateway(&r));
    assert_within_10("egress (iperf3)", iperf(&lim, &gateway(&r), false), rate);

    // CHECK notices a lost limit, naming the device.
    w.host.run_ok("tc", &["qdisc", "del", "dev", &ifb, "root"]);
    let e = w.cmd("CHECK", "bwe", Some(&lim), "eth0", &chk).error();
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains(&ifb) && msg.contains("egress"), "{e}");

    w.cmd("DEL", "bwe", Some(&lim), "eth0", &cf).silent();
    assert!(lim.link("eth0").is_none());
    assert!(ifbs_after_reaping(&w, &[]).is_empty(), "{:?}", ifbs(&w));
    assert!(w.veths_after_reaping(0).is_empty(), "{:?}", w.veths());
    // DEL again (the runtime may): nothing left to do, no error.
    w.cmd("DEL", "bwe", Some(&lim), "eth0", &cf).silent();
}

/// Both limits at once, each measured in its own direction (different
/// rates, so neither passes for the other).
#[test]
fn bandwidth_limits_both_ways_at_once_measured() {
    let w = World::new("negrbw2");
    let lim = w.container("lim");
    let base = conf("1.1.0", "bw2net", "10.226.0.0/24");
    let cf = limited(
        &base,
        json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000,
                "egressRate": 4_000_000, "egressBurst": 128_000 }),
    );
    let r = w.add("bw2", &lim, &cf);
    let gw = gateway(&r);
    let ifb = ifb_of(&host_veth(&r));
    let _server = server(&w, &gw);
    assert_within_10(
        "egress with ingress (iperf3)",
        iperf(&lim, &gw, false),
        4_000_000.0,
    );
    assert_within_10(
        "ingress with egress (iperf3 -R)",
        iperf(&lim, &gw, true),
        8_000_000.0,
    );
    let mut chk = cf.clone();
    chk["prevResult"] = r;
    w.cmd("CHECK", "bw2", Some(&lim), "eth0", &chk).silent();
    assert_eq!(ifbs(&w), vec![ifb]);
    w.cmd("DEL", "bw2", Some(&lim), "eth0", &cf).silent();
    assert!(ifbs_after_reaping(&w, &[]).is_empty(), "{:?}", ifbs(&w));
}

/// An ADD that fails after making the ifb (here `tc` refuses the redirect)
/// leaves nothing behind; GC deletes the ifb of a collected attachment and
/// any ifb whose endpoint is gone, and nobody else's link.
#[test]
fn bandwidth_ifb_goes_with_a_failed_add_and_with_gc() {
    let w = World::new("negrbwgc");
    let (a, b) = (w.container("a"), w.container("b"));
    let base = conf("1.1.0", "bwgcnet", "10.227.0.0/24");
    let cf = limited(
        &base,
        json!({ "egressRate": 8_000_000, "egressBurst": 256_000 }),
    );

    // A `tc` that fails the redirect, and only it, first on the PATH.
    let bin = support::TempDir::new(&format!("{}-bin", w.tag));
    let real = support::run_ok("sh", &["-c", "command -v tc"]);
    let fake = bin.0.join("tc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *redirect*) echo 'no redirect today' >&2; exit 2;; esac\nexec {} \"$@\"\n",
            real.trim()
        ),
    )
    .unwrap();
    support::run_ok("chmod", &["+x", fake.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        bin.0.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let netns = a.path();
    let e = w
        .exec(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "bwa"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/usr/lib/cni"),
                ("CNI_NETNS", &netns),
                ("PATH", &path),
            ],
            &cf.to_string(),
        )
        .error();
    assert_eq!(e["code"], 999, "{e}");
    assert!(
        e["details"]
            .as_str()
            .unwrap_or("")
            .contains("no redirect today"),
        "{e}"
    );
    assert!(a.link("eth0").is_none(), "the failed ADD left eth0");
    assert!(ifbs(&w).is_empty(), "the failed ADD left {:?}", ifbs(&w));
    assert!(w.veths().is_empty(), "the failed ADD left {:?}", w.veths());
    assert!(w.endpoints().is_empty());

    // The runtime retries the ADD: it works, with one ifb and one redirect.
    let ra = w.add("bwa", &a, &cf);
    let hva = host_veth(&ra);
    assert_eq!(ifbs(&w), vec![ifb_of(&hva)]);
    let filters = w
        .host
        .run_ok("tc", &["filter", "show", "dev", &hva, "parent", "ffff:"]);
    assert_eq!(
        filters.matches("Redirect to device").count(),
        1,
        "{filters}"
    );
    // GC: `a` is collected with its ifb, `b` kept with its; an ifb whose
    // endpoint is gone (a reaper that died) goes, someone else's link stays.
    let rb = w.add("bwb", &b, &cf);
    let (ifa, ifb) = (ifb_of(&hva), ifb_of(&host_veth(&rb)));
    for (name, kind) in [("ndi0123456789ab", "ifb"), ("ndiother", "ifb")] {
        w.host
            .run_ok("ip", &["link", "add", "name", name, "type", kind]);
    }
    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "bwb", "ifname": "eth0" }]);
    w.exec(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")],
        &gc.to_string(),
    )
    .silent();
    let mut left = ifbs(&w);
    left.sort();
    assert_eq!(
        left,
        vec![ifb, "ndiother".to_string()],
        "{ifa} or the orphan stayed"
    );
    w.cmd("DEL", "bwb", Some(&b), "eth0", &cf).silent();
    assert_eq!(ifbs_after_reaping(&w, &["ndiother"]), Vec::<String>::new());
}

/// netd's own removal of a CNI-made sandbox (`netd sandbox rm` through the
/// daemon the ADD started) deletes its ifb too, not only CNI DEL: the
/// endpoint's record says it has one.
#[test]
fn bandwidth_ifb_goes_when_the_daemon_removes_the_sandbox() {
    let w = World::new("negrbwrm");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let a = w.container("a");
    let mut base = conf("1.1.0", "bwrmnet", "10.227.8.0/24");
    base["dnsEnabled"] = json!(true);
    let cf = limited(
        &base,
        json!({ "egressRate": 8_000_000, "egressBurst": 256_000 }),
    );
    let r = w.add("bwrm", &a, &cf);
    let ifb = ifb_of(&host_veth(&r));
    assert_eq!(ifbs(&w), vec![ifb.clone()]);
    let out = std::process::Command::new(netd_tests::netd_bin())
        .arg("--socket")
        .arg(w.state.0.join("run/netd.sock"))
        .args(["sandbox", "rm", "bwrm"])
        .output()
        .expect("run netd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.veths().is_empty(), "{:?}", w.veths());
    assert!(ifbs(&w).is_empty(), "{:?}", ifbs(&w));
}
