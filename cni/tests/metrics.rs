//! CNI commands in the daemon's `/metrics`: the plugin reports each
//! command it runs to the daemon it hands DNS to, which counts them as
//! `cni_add`, `cni_del`, ... beside the API's operations, under the outcome
//! its error code names.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{World, conf};

fn scrape(w: &World) -> String {
    netd_tests::scrape_metrics(&w.state.0.join("run/netd.sock"))
}

fn sample(text: &str, name: &str, op: &str, outcome: &str) -> u64 {
    let key = format!("{name}{{op=\"{op}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Reports arrive as datagrams the daemon reads on its own time: wait
/// until every expected count is there, then check nothing else came.
fn wait_for(w: &World, want: &[(&str, &str, u64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = scrape(w);
        let got =
            |(op, outcome, _): &(&str, &str, u64)| sample(&m, "netd_operations_total", op, outcome);
        if want.iter().all(|w| got(w) == w.2) || Instant::now() > deadline {
            for w in want {
                assert_eq!(got(w), w.2, "{}/{}:\n{m}", w.0, w.1);
            }
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cni_commands_are_counted_by_the_daemon_with_their_outcome() {
    let w = World::new("cmtx");
    let _daemon = support::StartedDaemon(w.state.0.join("run/netd.pid"));
    let mut c = conf("1.1.0", "mtxnet", "10.219.7.0/24");
    c["dnsEnabled"] = json!(true);
    let ctr = w.container("a");
    // This ADD starts the daemon, which counts it: it listens for reports
    // before it answers the plugin.
    let added = w.add("mtx-a", &ctr, &c);
    let mut checked = c.clone();
    checked["prevResult"] = added;
    w.cmd("CHECK", "mtx-a", Some(&ctr), "eth0", &checked)
        .silent();
    // Refusals count under the outcome their code names.
    let mut bad = c.clone();
    bad["subnet"] = json!("10.219.7.0/33");
    assert_eq!(
        w.cmd("ADD", "mtx-b", Some(&ctr), "eth1", &bad).error()["code"],
        7
    );
    let gone = w.container("gone");
    let unknown = w.cmd("CHECK", "mtx-none", Some(&gone), "eth0", &checked);
    assert_ne!(unknown.code, 0, "{}", unknown.stdout);
    w.cmd("DEL", "mtx-a", Some(&ctr), "eth0", &c).silent();

    let m = wait_for(
        &w,
        &[
            ("cni_add", "ok", 1),
            ("cni_add", "invalid", 1),
            ("cni_check", "ok", 1),
            ("cni_del", "ok", 1),
        ],
    );
    let failed_check = ["invalid", "not_found", "error"]
        .iter()
        .map(|o| sample(&m, "netd_operations_total", "cni_check", o))
        .sum::<u64>();
    assert_eq!(failed_check, 1, "{m}");
    assert_eq!(
        sample(&m, "netd_operation_duration_seconds_count", "cni_add", "ok"),
        1,
        "{m}"
    );
    // The API's own counts are apart: the ADD's DNS hand-off is one.
    assert!(
        sample(&m, "netd_operations_total", "dns_sync", "ok") >= 1,
        "{m}"
    );
}
