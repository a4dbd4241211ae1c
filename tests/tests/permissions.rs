//! What another local user can do to netd: nothing. The state is root's
//! alone (dirs 0700, files 0600), every lock netd takes is a file only root
//! can open, and a lock held too long (by root's own processes: nobody
//! else can) ends in a clear "busy" error instead of a hang.

use netd_tests as support;

use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, Netns};

/// As `nobody`, with no supplementary groups.
const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

fn as_nobody(args: &[&str]) -> Output {
    Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .args(args)
        .output()
        .expect("run setpriv")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// The harness's daemon dir: state, run dir and socket below it.
fn daemon_dir(host: &Netns) -> PathBuf {
    std::env::temp_dir().join(format!("netd-test-{}-{}", host.name(), std::process::id()))
}

/// The namespace lock of the daemon in `host`.
fn namespace_lock(host: &Netns) -> PathBuf {
    let ino = std::fs::metadata(host.path()).unwrap().ino();
    PathBuf::from(format!("/run/netd-netns/net-{ino}.lock"))
}

fn assert_private(dir: &Path, host: &Netns, sandbox: &str, when: &str) {
    let state = dir.join("state");
    let run = dir.join("run");
    assert_eq!(mode(&state), 0o700, "{when}: state dir");
    assert_eq!(mode(&state.join("locks")), 0o700, "{when}: locks dir");
    for f in [
        "netd.db",
        "netd.db-wal",
        "netd.db-shm",
        "daemon.lock",
        "firewall.lock",
    ] {
        assert_eq!(mode(&state.join(f)), 0o600, "{when}: {f}");
    }
    assert_eq!(
        mode(&state.join(format!("locks/sandbox-{sandbox}.lock"))),
        0o600,
        "{when}: sandbox lock"
    );
    assert_eq!(mode(&run), 0o711, "{when}: run dir");
    assert_eq!(mode(&run.join("netd.pid")), 0o600, "{when}: pid file");
    assert_eq!(mode(&dir.join("netd.sock")), 0o660, "{when}: socket");
    assert_eq!(mode(Path::new("/run/netd-netns")), 0o700, "{when}");
    assert_eq!(mode(&namespace_lock(host)), 0o600, "{when}: namespace lock");
}

/// `nobody` can neither read the database nor open (so neither lock) any
/// file netd locks, whatever the lock; the modes are 0700/0600 (0711 for
/// the run dir, 0660 for the socket), and a restart tightens a state and run
/// dir left loose.
#[test]
fn cc_state_and_locks_are_root_only() {
    let pid = std::process::id();
    let host = Netns::new(&format!("cc{pid}perm-host"));
    let mut daemon = Daemon::start(&host);
    let dir = daemon_dir(&host);
    assert!(daemon.socket().starts_with(&dir), "harness layout changed");
    let (net, sb) = (format!("cc{pid}perm-net"), format!("cc{pid}perm-s"));
    daemon.cli_ok(&["network", "create", "--subnet", "10.201.150.0/24", &net]);
    daemon.cli_ok(&["sandbox", "create", "--network", &net, &sb]);
    assert_private(&dir, &host, &sb, "fresh");

    let state = dir.join("state");
    let db = state.join("netd.db");
    let out = as_nobody(&["cat", db.to_str().unwrap()]);
    assert!(!out.status.success(), "nobody read the database");
    let locks = [
        state.join("daemon.lock"),
        state.join("firewall.lock"),
        state.join("netd.db-shm"),
        state.join(format!("locks/sandbox-{sb}.lock")),
        namespace_lock(&host),
    ];
    for l in &locks {
        for how in ["-s", "-x"] {
            let out = as_nobody(&["flock", how, "-n", l.to_str().unwrap(), "true"]);
            assert!(
                !out.status.success(),
                "nobody took flock {how} on {}",
                l.display()
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
                "{}: {}",
                l.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Nor can it make a lock file a daemon would look for.
    let out = as_nobody(&["touch", "/run/netd-netns/net-1.lock"]);
    assert!(!out.status.success(), "nobody wrote in /run/netd-netns");

    // Loosen everything as an older netd (or a umask) left it; a restart
    // tightens it all again.
    daemon.kill9();
    for (p, m) in [
        (state.clone(), 0o755),
        (state.join("locks"), 0o755),
        (db.clone(), 0o644),
        (state.join("firewall.lock"), 0o644),
        (state.join("daemon.lock"), 0o644),
        (dir.join("run"), 0o777),
        (dir.join("run/netd.pid"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    daemon.restart();
    assert_private(&dir, &host, &sb, "after a restart on loose files");
}

/// `nobody` binding, in the daemon's namespace, the abstract socket name a
/// daemon used as its namespace lock no longer keeps one from starting;
/// a second daemon in that namespace is still refused.
#[test]
fn cc_another_user_cannot_keep_the_daemon_down() {
    let pid = std::process::id();
    let host = Netns::new(&format!("cc{pid}down-host"));
    let mut holder = Command::new("nsenter")
        .arg(format!("--net={}", host.path()))
        .args(NOBODY)
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket,time\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.bind('\\0netd-daemon')\n\
             s.listen()\n\
             print('bound', flush=True)\n\
             time.sleep(120)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the holder");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _holder = support::Child(holder);
    assert_eq!(line.trim(), "bound", "nobody could not bind @netd-daemon");
    // Panics unless the daemon comes up and answers.
    let daemon = Daemon::start(&host);
    daemon.cli_ok(&["network", "ls"]);
    let other = support::TempDir::new(&format!("cc{pid}down-other"));
    let out = Command::new("nsenter")
        .arg(format!("--net={}", host.path()))
        .arg(support::netd_bin())
        .arg("--socket")
        .arg(other.0.join("s.sock"))
        .args(["daemon", "--state-dir"])
        .arg(other.0.join("state"))
        .arg("--run-dir")
        .arg(other.0.join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second daemon in one namespace");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("another netd daemon is already running in this network namespace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `netd ARGS`, given up on after 90 s (a hang is a failure, not a stuck test).
fn cli_bounded(d: &Daemon, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg("90")
        .arg(support::netd_bin())
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .unwrap();
    (out, start.elapsed())
}

/// An exclusive `flock` on `path`, taken by this (root) process as any
/// stuck root process could, until dropped.
fn hold(path: &Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: flock on an fd we own, released when it is closed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0, "lock {}", path.display());
    f
}

/// A lock held past netd's wait (30 s) is a 503-class "busy" error naming
/// the file, and the operation changes nothing: the sandbox lock for a
/// connect (503 on the API), the firewall lock for a network create (the
/// CLI's error), both at once.
#[test]
fn cc_a_lock_held_too_long_is_a_busy_error_naming_it() {
    let host = Netns::new(&format!("cc{}busy-host", std::process::id()));
    let daemon = Daemon::start(&host);
    let state = daemon_dir(&host).join("state");
    let pid = std::process::id();
    let (m0, m1, m2, sb) = (
        format!("cc{pid}busy-m0"),
        format!("cc{pid}busy-m1"),
        format!("cc{pid}busy-m2"),
        format!("cc{pid}busy-s"),
    );
    daemon.cli_ok(&["network", "create", "--subnet", "10.201.153.0/24", &m0]);
    daemon.cli_ok(&["network", "create", "--subnet", "10.201.151.0/24", &m1]);
    daemon.cli_ok(&["sandbox", "create", "--network", &m0, &sb]);
    let before = daemon.cli_json(&["sandbox", "inspect", &sb]);

    let sandbox_lock = state.join(format!("locks/sandbox-{sb}.lock"));
    let firewall_lock = state.join("firewall.lock");
    let _h1 = hold(&sandbox_lock);
    let _h2 = hold(&firewall_lock);
    let (connect, create) = std::thread::scope(|sc| {
        let c = sc.spawn(|| {
            let start = Instant::now();
            let (code, body) = daemon.api(
                "POST",
                &format!("/netd/networks/{m1}/connect"),
                Some(&format!(r#"{{"sandbox":"{sb}"}}"#)),
            );
            (code, body, start.elapsed())
        });
        let n = sc.spawn(|| {
            cli_bounded(
                &daemon,
                &["network", "create", "--subnet", "10.201.152.0/24", &m2],
            )
        });
        (c.join().unwrap(), n.join().unwrap())
    });
    let (code, body, took) = connect;
    assert_eq!(code, 503, "connect with its sandbox locked: {body}");
    assert!(
        body.contains(&format!("sandbox {sb} is busy"))
            && body.contains(&sandbox_lock.display().to_string()),
        "{body}"
    );
    assert!(took >= Duration::from_secs(29), "gave up early: {took:?}");
    let ((out, took), lock) = (create, &firewall_lock);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "hung on {}", lock.display());
    assert!(!out.status.success(), "went through {}", lock.display());
    assert!(
        err.contains("the firewall is busy") && err.contains(&lock.display().to_string()),
        "{err}"
    );
    assert!(took >= Duration::from_secs(29), "gave up early: {took:?}");
    // Nothing changed.
    assert_eq!(daemon.cli_json(&["sandbox", "inspect", &sb]), before);
    assert!(
        !daemon
            .cli_ok(&["network", "ls", "--format", "json"])
            .contains(&format!("\"{m2}\"")),
        "{m2} was left"
    );
}

/// The database's write lock held past SQLite's busy timeout (30 s) is a
/// 503 naming the database, not a 500, and the create changes nothing.
#[test]
fn cc_a_database_locked_too_long_is_a_busy_error_naming_it() {
    let host = Netns::new(&format!("cc{}dblk-host", std::process::id()));
    let daemon = Daemon::start(&host);
    let db = daemon_dir(&host).join("state/netd.db");
    // A root process (nobody else can open it now) in a write transaction.
    let mut holder = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys,time\n\
             c=sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(120)",
            db.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let holder = support::Child(holder);
    assert_eq!(line.trim(), "locked");
    let name = format!("cc{}dblk-n", std::process::id());
    let start = Instant::now();
    let (code, body) = daemon.api(
        "POST",
        "/netd/networks",
        Some(&format!(
            r#"{{"name":"{name}","subnet":"10.201.154.0/24"}}"#
        )),
    );
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&db.display().to_string()) && body.contains("locked"),
        "{body}"
    );
    assert!(start.elapsed() >= Duration::from_secs(29));
    drop(holder);
    assert!(
        !daemon
            .cli_ok(&["network", "ls", "--format", "json"])
            .contains(&format!("\"{name}\"")),
        "{name} was left"
    );
}
