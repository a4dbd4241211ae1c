//! netd-cni exec'd exactly as libcni does: environment, config on stdin,
//! result (or error) on stdout; run inside a host namespace of the test's,
//! with containers as namespaces made with `ip netns add`.

use netd_tests as support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Child, Netns, ping, uplink};

struct Cni {
    host: String,
    state: std::path::PathBuf,
}

/// A daemon the plugin started on its own (for DNS): stopped by the pid it
/// wrote, when the test ends.
struct StartedDaemon(std::path::PathBuf);

impl Drop for StartedDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..100 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z "))
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

struct Out {
    code: i32,
    stdout: String,
}

impl Cni {
    fn exec(&self, env: &[(&str, &str)], stdin: &str) -> Out {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.host))
            .arg(support::cni_bin())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NETD_STATE_DIR", &self.state)
            .env("NETD_SOCKET", self.state.join("netd.sock"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run netd-cni");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    fn cmd(&self, command: &str, container: &str, netns: Option<&str>, conf: &Value) -> Out {
        let path = netns.map(|n| format!("/run/netns/{n}"));
        let mut env = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        if let Some(p) = &path {
            env.push(("CNI_NETNS", p.as_str()));
        }
        self.exec(&env, &conf.to_string())
    }
}

fn conf(version: &str, name: &str, subnet: &str) -> Value {
    json!({ "cniVersion": version, "name": name, "type": "netd-cni", "subnet": subnet, "dns": true })
}

#[test]
fn add_check_del_ports_errors_concurrency_gc() {
    let tag = format!("ndE{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let outside = Netns::new(&format!("{tag}-out"));
    uplink(&host, &outside, "10.202.20");
    let state = std::env::temp_dir().join(format!("{tag}-state"));
    let _ = std::fs::remove_dir_all(&state);
    let cni = Cni {
        host: host.name().to_string(),
        state: state.clone(),
    };
    let daemon = StartedDaemon(state.join("netd.pid"));
    let net = format!("{tag}-net");

    // VERSION.
    let v = cni.exec(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.1.0"}"#);
    assert_eq!(v.code, 0);
    let v: Value = serde_json::from_str(&v.stdout).unwrap();
    for ver in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(
            v["supportedVersions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == ver),
            "{v}"
        );
    }

    // ADD in two versions, result checked field by field.
    let c1 = Netns::new(&format!("{tag}-c1"));
    let c2 = Netns::new(&format!("{tag}-c2"));
    let mut c = conf("1.1.0", &net, "10.205.0.0/24");
    c["runtimeConfig"] =
        json!({ "portMappings": [{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }] });
    let out = cni.cmd("ADD", "c1", Some(c1.name()), &c);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["cniVersion"], "1.1.0");
    assert!(
        r["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("nd-")
    );
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(
        r["interfaces"][1]["sandbox"],
        format!("/run/netns/{}", c1.name())
    );
    assert_eq!(r["interfaces"][1]["mac"], "02:42:0a:cd:00:02");
    assert_eq!(r["ips"][0]["address"], "10.205.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.205.0.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.x results have no ip version"
    );
    assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(r["dns"]["nameservers"][0], "127.0.0.11");
    let out = cni.cmd(
        "ADD",
        "c2",
        Some(c2.name()),
        &conf("0.4.0", &net, "10.205.0.0/24"),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    let r2: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r2["cniVersion"], "0.4.0");
    assert_eq!(r2["ips"][0]["version"], "4");
    assert_eq!(r2["ips"][0]["address"], "10.205.0.3/24");

    // dns: true started a daemon, which already serves the containers' names.
    let dig = Command::new("ip")
        .args([
            "netns",
            "exec",
            c2.name(),
            "dig",
            "+short",
            "+time=2",
            "@127.0.0.11",
            "c1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).trim(),
        "10.205.0.2",
        "c1 does not resolve from c2"
    );

    // Traffic between the containers, and the published port from outside.
    assert!(ping(c1.name(), "10.205.0.3"));
    let _web: Child = support::spawn_in(
        c1.name(),
        "python3",
        &["-m", "http.server", "80", "--bind", "0.0.0.0"],
    );
    support::wait_listening(c1.name(), 80);
    let curl = Command::new("ip")
        .args([
            "netns",
            "exec",
            outside.name(),
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "3",
            "http://10.202.20.1:8080/",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "published port through netd-cni"
    );

    // CHECK: healthy is silent; a deleted host veth is an error.
    let mut chk = conf("1.1.0", &net, "10.205.0.0/24");
    chk["prevResult"] = r.clone();
    let out = cni.cmd("CHECK", "c1", Some(c1.name()), &chk);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    host.run_ok(
        "ip",
        &["link", "del", r["interfaces"][0]["name"].as_str().unwrap()],
    );
    let out = cni.cmd("CHECK", "c1", Some(c1.name()), &chk);
    assert_ne!(out.code, 0);
    let e: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(e["msg"].as_str().unwrap().contains("missing"), "{e}");

    // Errors: malformed JSON (6), missing env (4), bad config (7), on stdout.
    let out = cni.exec(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "eth0"),
        ],
        "{nope",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["code"],
        6
    );
    let out = cni.exec(
        &[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")],
        &conf("1.1.0", &net, "10.205.0.0/24").to_string(),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["code"],
        4
    );
    let out = cni.cmd(
        "ADD",
        "c3",
        Some(c2.name()),
        &conf("1.1.0", &net, "10.99.0.0/24"),
    );
    let e: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(e["code"], 7, "an existing network with other settings: {e}");
    assert_ne!(out.code, 0);

    // DEL: twice, without CNI_NETNS, with the namespace gone, unknown container.
    let base = conf("1.1.0", &net, "10.205.0.0/24");
    assert_eq!(cni.cmd("DEL", "c1", Some(c1.name()), &base).code, 0);
    assert_eq!(cni.cmd("DEL", "c1", Some(c1.name()), &base).code, 0);
    assert_eq!(cni.cmd("DEL", "c2", None, &base).code, 0);
    assert_eq!(cni.cmd("DEL", "never-added", None, &base).code, 0);
    let c4 = Netns::new(&format!("{tag}-c4"));
    assert_eq!(cni.cmd("ADD", "c4", Some(c4.name()), &base).code, 0);
    let c4name = c4.name().to_string();
    drop(c4);
    assert_eq!(
        cni.cmd("DEL", "c4", Some(&c4name), &base).code,
        0,
        "DEL with the netns gone"
    );
    // Addresses are released: the next container gets .2 again.
    let c5 = Netns::new(&format!("{tag}-c5"));
    let out = cni.cmd("ADD", "c5", Some(c5.name()), &base);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["ips"][0]["address"],
        "10.205.0.2/24"
    );
    assert_eq!(cni.cmd("DEL", "c5", Some(c5.name()), &base).code, 0);

    // 64 concurrent ADDs: 64 distinct addresses.
    let nss: Vec<Netns> = (0..64)
        .map(|i| Netns::new(&format!("{tag}-p{i}")))
        .collect();
    let handles: Vec<_> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let (host, state, name, base) = (
                cni.host.clone(),
                state.clone(),
                ns.name().to_string(),
                base.clone(),
            );
            std::thread::spawn(move || {
                Cni { host, state }.cmd("ADD", &format!("p{i}"), Some(&name), &base)
            })
        })
        .collect();
    let mut ips = Vec::new();
    for h in handles {
        let out = h.join().unwrap();
        assert_eq!(out.code, 0, "{}", out.stdout);
        ips.push(
            serde_json::from_str::<Value>(&out.stdout).unwrap()["ips"][0]["address"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 64, "an address was handed out twice");

    // GC keeps only the listed attachments.
    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "p0", "ifname": "eth0" }, { "containerID": "p1", "ifname": "eth0" }]);
    let out = cni.exec(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")],
        &gc.to_string(),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    let links = host.output_ok("ip", &["-j", "link"]);
    let veths = serde_json::from_str::<Value>(&links)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ifname"].as_str().unwrap_or("").starts_with("nd-"))
        .count();
    assert_eq!(veths, 2, "GC left {veths} veths");
    assert!(
        ping(nss[0].name(), "10.205.0.1"),
        "a valid attachment was collected"
    );

    // STATUS.
    let out = cni.exec(&[("CNI_COMMAND", "STATUS")], &base.to_string());
    assert_eq!(out.code, 0);
    for (i, ns) in nss.iter().take(2).enumerate() {
        let _ = cni.cmd("DEL", &format!("p{i}"), Some(ns.name()), &base);
    }
    // Stop the daemon the plugin started before its state goes.
    drop(daemon);
    let _ = std::fs::remove_dir_all(&state);
}
