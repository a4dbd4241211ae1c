//! `GET /events?since=…`: the daemon keeps its recent events and replays
//! them, through the API and the stock `docker events` CLI.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netd_tests as support;
use support::{Daemon, Netns};

/// Now as a Unix time with nanoseconds, as `docker events` sends it.
fn unix_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// The names of the networks whose `create` is in a stream's lines.
fn created(body: &str) -> Vec<String> {
    body.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an event per line"))
        .filter(|e| e["Type"] == "network" && e["Action"] == "create")
        .map(|e| {
            e["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn since_replays_kept_events_then_until_ends_the_stream() {
    let tag = format!("nevt{}e", std::process::id() % 100_000);
    let host = Netns::new(&format!("{tag}-host"));
    let daemon = Daemon::start(&host);
    let (n1, n2, n3) = (format!("{tag}-1"), format!("{tag}-2"), format!("{tag}-3"));

    let before = unix_now();
    daemon.cli_ok(&["network", "create", "--subnet", "10.204.1.0/24", &n1]);
    std::thread::sleep(Duration::from_millis(50));
    let between = unix_now();
    daemon.cli_ok(&["network", "create", "--subnet", "10.204.2.0/24", &n2]);
    let now = unix_now();

    // A window in the past: exactly what it covers, then the stream ends.
    let (code, body) = daemon.api(
        "GET",
        &format!("/v1.47/events?since={before}&until={now}"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(created(&body), [n1.clone(), n2.clone()], "{body}");
    let (_, body) = daemon.api(
        "GET",
        &format!("/v1.47/events?since={between}&until={now}"),
        None,
    );
    assert_eq!(created(&body), [n2.as_str()], "{body}");
    let (_, body) = daemon.api(
        "GET",
        &format!("/v1.47/events?since={before}&until={between}"),
        None,
    );
    assert_eq!(created(&body), [n1.as_str()], "{body}");
    // netd's own shape names the same events.
    let (code, body) = daemon.api(
        "GET",
        &format!("/netd/events?since={before}&until={now}"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("\"name\":\"{n2}\"")), "{body}");
    // And `netd events` takes them as flags.
    let out = daemon.cli_ok(&["events", "--since", &between, "--until", &now]);
    let names: Vec<_> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].clone())
        .collect();
    assert_eq!(names, [serde_json::json!(n2)], "{out}");

    // Replay, then live, in one stream: n3 is made while it is open.
    let until = {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(2);
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    let stream = {
        let socket = daemon.socket();
        let path = format!(
            "/v1.47/events?since={before}&until={until}&filters=%7B%22type%22%3A%5B%22network%22%5D%7D"
        );
        std::thread::spawn(move || {
            let client = netd_api::blocking::Client::new(socket).expect("client");
            let (_, body) = client
                .raw(netd_api::Method::GET, &path, None)
                .expect("events");
            String::from_utf8_lossy(&body).into_owned()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    daemon.cli_ok(&["network", "create", "--subnet", "10.204.3.0/24", &n3]);
    let body = stream.join().unwrap();
    assert_eq!(
        created(&body),
        [n1.clone(), n2.clone(), n3.clone()],
        "{body}"
    );

    // The stock CLI: the last minute, up to now.
    let out = daemon.docker(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            format!("create {n1}"),
            format!("create {n2}"),
            format!("create {n3}")
        ],
        "{text}"
    );

    // What Docker refuses, netd refuses, naming it.
    let (code, body) = daemon.api("GET", "/v1.47/events?since=soon", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("since") && body.contains("soon"), "{body}");
    let (code, body) = daemon.api("GET", "/v1.47/events?since=200&until=100", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("cannot be after"), "{body}");
    let out = daemon.docker(&["events", "--since", "0s", "--until", "1m"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be after"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for n in [&n1, &n2, &n3] {
        daemon.cli_ok(&["network", "rm", n]);
    }
}
