//! netd-cni in a chain, run the way libcni runs a conflist: each plugin's
//! configuration gets the list's `name` and `cniVersion`, the runtime
//! config of the capabilities it declares, and the previous plugin's result
//! as `prevResult`; ADD and CHECK in order, DEL in reverse. The second
//! plugin is the reference `tuning` (Debian's containernetworking-plugins).

mod support;

use serde_json::{Value, json};
use support::{Netns, Out, World};

const TUNING: &str = "/usr/lib/cni/tuning";

/// A minimal libcni: one conflist, one attachment.
struct Chain<'a> {
    w: &'a World,
    list: Value,
    runtime: Value,
}

impl Chain<'_> {
    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut c = plugin.clone();
        c["name"] = self.list["name"].clone();
        c["cniVersion"] = self.list["cniVersion"].clone();
        if let Some(caps) = plugin["capabilities"].as_object() {
            let mut rc = serde_json::Map::new();
            for (k, on) in caps {
                if on.as_bool() == Some(true)
                    && let Some(v) = self.runtime.get(k)
                {
                    rc.insert(k.clone(), v.clone());
                }
            }
            if !rc.is_empty() {
                c["runtimeConfig"] = Value::Object(rc);
            }
        }
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        c
    }

    fn exec(&self, command: &str, id: &str, ns: &Netns, plugin: &Value, conf: &Value) -> Out {
        let bin = match plugin["type"].as_str().unwrap() {
            "netd-cni" => support::PLUGIN.to_string(),
            other => format!("/usr/lib/cni/{other}"),
        };
        let path = ns.path();
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        self.w.exec_plugin(&bin, &env, &conf.to_string())
    }

    fn plugins(&self) -> Vec<Value> {
        self.list["plugins"].as_array().unwrap().clone()
    }

    fn add(&self, id: &str, ns: &Netns) -> Value {
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let conf = self.plugin_conf(&p, prev.as_ref());
            prev = Some(self.exec("ADD", id, ns, &p, &conf).ok());
        }
        prev.unwrap()
    }

    fn check(&self, id: &str, ns: &Netns, result: &Value) -> Vec<Out> {
        self.plugins()
            .iter()
            .map(|p| self.exec("CHECK", id, ns, p, &self.plugin_conf(p, Some(result))))
            .collect()
    }

    fn del(&self, id: &str, ns: &Netns, result: &Value) {
        for p in self.plugins().iter().rev() {
            self.exec("DEL", id, ns, p, &self.plugin_conf(p, Some(result)))
                .silent();
        }
    }
}

#[test]
fn chained_with_the_reference_tuning_plugin() {
    assert!(
        std::path::Path::new(TUNING).exists(),
        "{TUNING} is missing: apt-get install containernetworking-plugins"
    );
    let w = World::new("chn");
    let c = w.container("c");
    let data = w.state.0.join("tuning");
    let chain = Chain {
        w: &w,
        // tuning 1.1.1 speaks up to 1.0.0.
        list: json!({
            "cniVersion": "1.0.0",
            "name": "chainnet",
            "plugins": [
                { "type": "netd-cni", "subnet": "10.233.0.0/24",
                  "capabilities": { "portMappings": true, "mac": true } },
                { "type": "tuning", "dataDir": data, "mtu": 1400,
                  "mac": "02:11:22:33:44:55",
                  "sysctl": { "net.ipv4.conf.eth0.arp_notify": "1" } }
            ]
        }),
        runtime: json!({ "portMappings": [{ "hostPort": 8090, "containerPort": 80, "protocol": "tcp" }] }),
    };
    let id = format!("{}-ctr", w.tag);
    let r = chain.add(&id, &c);

    // tuning passed netd-cni's result on, with its own change to the MAC.
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["ips"][0]["address"], "10.233.0.2/24");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["interfaces"][1]["mac"], "02:11:22:33:44:55");
    let eth0 = c.link("eth0").unwrap();
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], "02:11:22:33:44:55");
    assert_eq!(
        c.run_ok("sysctl", &["-n", "net.ipv4.conf.eth0.arp_notify"])
            .trim(),
        "1"
    );
    assert!(c.ping("10.233.0.1"));
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(maps.contains("8090"), "portMappings went through: {maps}");

    // CHECK of the whole chain against the final result: both silent.
    for out in chain.check(&id, &c, &r) {
        out.silent();
    }
    // Break what netd-cni made: its CHECK fails, clearly.
    c.run_ok("ip", &["addr", "flush", "dev", "eth0"]);
    let outs = chain.check(&id, &c, &r);
    let e = outs[0].error();
    assert!(e["msg"].as_str().unwrap().contains("lacks address"), "{e}");

    // DEL in reverse: tuning restores, netd-cni removes and releases.
    chain.del(&id, &c, &r);
    assert!(c.link("eth0").is_none());
    assert!(w.endpoints().is_empty());
    let maps = w.host.run_ok("nft", &["list", "table", "inet", "netd"]);
    assert!(!maps.contains("8090"), "{maps}");
    // And again, as runtimes retry.
    chain.del(&id, &c, &r);
}
