//! The daemon keeps the kernel as the store says when someone else changes
//! it: a bridge or host veth deleted by hand comes back (with traffic), a
//! sandbox namespace deleted by hand is recreated with its DNS serving
//! again; and a sandbox may not adopt the daemon's own namespace.

use netd_tests as support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, Netns};

/// Poll `f` every 50 ms for up to 5 s.
fn within_5s(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn sandbox_names(daemon: &Daemon) -> Vec<String> {
    daemon
        .api_get("/netd/sandboxes")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn wt_the_daemons_own_namespace_cannot_be_adopted() {
    let tag = format!("wtH{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let before = host.links("");
    let sandboxes = sandbox_names(&daemon);
    let own = host.path();
    let err = daemon.cli_err(&["sandbox", "create", "--netns", &own, &format!("{tag}-s")]);
    assert!(
        err.contains(&own) && err.contains("the network namespace netd runs in"),
        "{err}"
    );
    // The same namespace under another path, through the API.
    let sleeper = support::spawn_in(host.name(), "sleep", &["30"]);
    let proc_path = format!("/proc/{}/ns/net", sleeper.0.id());
    // nsenter execs sleep in place: its pid is sleep's, in the host namespace.
    let body = format!(r#"{{"name":"{tag}-t","netns":"{proc_path}"}}"#);
    let (code, text) = daemon.api("POST", "/netd/sandboxes", Some(&body));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains(&proc_path), "{text}");
    // Nothing changed: no link in the host namespace, no record.
    assert_eq!(host.links(""), before);
    assert_eq!(sandbox_names(&daemon), sandboxes);
}
