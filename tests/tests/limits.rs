//! netd on a host with systemd's default soft limit of 1,024 open files:
//! the daemon raises its soft RLIMIT_NOFILE to the hard limit at start, so
//! 1,000 sandboxes with DNS (two sockets each) are served by the API and
//! by 127.0.0.11 (issue 15).

use netd_tests as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use support::{Daemon, Netns};

const SANDBOXES: usize = 1000;
/// CLI processes creating sandboxes at once: the daemon serialises the
/// work, this only hides process start-up.
const CREATORS: usize = 4;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// (soft, hard) of "Max open files" in /proc/PID/limits.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_string();
    let mut f = line.split_whitespace().skip(3);
    (
        f.next().unwrap_or("?").to_string(),
        f.next().unwrap_or("?").to_string(),
    )
}

/// `dig` until it gets an answer, for at most 10 s: `sandbox create`
/// returns before the daemon's DNS serves the new sandbox (it follows the
/// store's events, and a sync reads every sandbox: up to 1.3 s at 1,000
/// here, on a loaded machine).
fn dig_soon(ns: &str, args: &[&str]) -> support::Dig {
    let t = Instant::now();
    loop {
        let d = support::dig(ns, args);
        // Syncs asked for during one are folded into one more, and run off
        // the async workers: a sync or two after the burst, it answers. (The
        // long silences seen here before were sandboxes served while their
        // `lo` was still down, whose UDP answers never reached dig; every
        // sandbox is asked below.) The time it took is printed.
        if !d.status.starts_with("no answer") || t.elapsed() > std::time::Duration::from_secs(10) {
            if t.elapsed().as_millis() > 100 {
                eprintln!("dig {args:?} in {ns}: answered after {:.1?}", t.elapsed());
            }
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_thousand_sandboxes_with_dns_under_a_soft_limit_of_1024() {
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let hard = hard.rlim_max;
    assert!(
        hard >= 4096,
        "this test needs a hard RLIMIT_NOFILE of at least 4096 (has {hard})"
    );
    let tag = format!("rhxl{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let limit = format!("--nofile=1024:{hard}");
    let daemon = Daemon::start_wrapped(&host, &["prlimit", &limit], &[]);
    let pid = daemon.pid().expect("daemon pid");
    let (soft, hard_now) = nofile_of(pid);
    assert_eq!(
        (soft.as_str(), hard_now.as_str()),
        (hard.to_string().as_str(), hard.to_string().as_str()),
        "the daemon should have raised its soft limit; log:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("was=1024"),
        "the raise is logged:\n{}",
        daemon.log()
    );

    let net = format!("{tag}-n");
    daemon.cli_ok(&["network", "create", "--subnet", "10.61.0.0/21", &net]);
    let before = open_fds(pid);
    let names: Vec<String> = (0..SANDBOXES).map(|i| format!("{tag}-s{i}")).collect();
    let t = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CREATORS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    daemon.cli_ok(&["sandbox", "create", "--network", &net, name]);
                }
            });
        }
    });
    let took = t.elapsed();
    let after = open_fds(pid);
    eprintln!(
        "{SANDBOXES} sandboxes in {took:.1?}; daemon fds {before} -> {after} ({:.2} per sandbox)",
        (after - before) as f64 / SANDBOXES as f64
    );
    // Two DNS sockets per sandbox (UDP and TCP on 127.0.0.11:53 in its
    // namespace); anything more per sandbox would be a leak.
    assert!(
        after - before <= 2 * SANDBOXES + 16,
        "daemon fds {before} -> {after} for {SANDBOXES} sandboxes"
    );

    // The API lists them all, and DNS answers in the last one made, for
    // itself and for the first.
    let listed = daemon.cli_ok(&["sandbox", "ls", "--quiet"]);
    assert_eq!(listed.lines().count(), SANDBOXES);
    let last = names.last().expect("sandboxes");
    let first = &names[0];
    for (ns, q) in [(last, first), (last, last), (first, last)] {
        let d = dig_soon(ns, &[q.as_str()]);
        assert_eq!(d.status, "NOERROR", "dig {q} in {ns}: {}", d.text);
        assert_eq!(d.answers.len(), 1, "dig {q} in {ns}: {}", d.text);
    }
    // Every sandbox answers over UDP: made four at a time, many were
    // served by a sync while another was being made (before, a third of
    // them were served with `lo` still down and never answered).
    let t = Instant::now();
    let silent: Vec<&String> = names
        .iter()
        .filter(|ns| dig_soon(ns, &[first.as_str()]).answers.len() != 1)
        .collect();
    eprintln!("{SANDBOXES} sandboxes asked in {:.1?}", t.elapsed());
    assert!(
        silent.is_empty(),
        "{} sandboxes never answered, the first: {:?}",
        silent.len(),
        silent.first()
    );
    // Over TCP too: the second socket of each sandbox.
    let d = dig_soon(last, &["+tcp", first.as_str()]);
    assert_eq!(d.status, "NOERROR", "dig +tcp: {}", d.text);
    // One more still fits (the failure of issue 15 came at ~510).
    let extra = format!("{tag}-extra");
    daemon.cli_ok(&["sandbox", "create", "--network", &net, &extra]);
    let d = dig_soon(&extra, &[last.as_str()]);
    assert_eq!(d.status, "NOERROR", "dig in {extra}: {}", d.text);
    let t = Instant::now();
    drop(daemon);
    eprintln!("removed in {:.1?}", t.elapsed());
    assert!(!Netns::exists(first) && !Netns::exists(last));
}
