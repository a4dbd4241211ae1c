//! scripts/install.sh staged into a temporary DESTDIR (never the host's /):
//! the layout it promises in docs/operations.md, units that
//! `systemd-analyze verify` accepts, bad arguments refused with nothing
//! written, and `--uninstall` taking back what it put there.

use netd_tests as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::TempDir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// scripts/install.sh ARGS with the built binaries (no cargo run inside).
fn install(args: &[&str]) -> Output {
    let bins = support::netd_bin();
    // Built before their directory is handed over.
    let _ = (support::cni_bin(), support::lb_bin());
    let from = bins.parent().expect("bin dir");
    Command::new(repo().join("scripts/install.sh"))
        .arg("--no-build")
        .arg("--from")
        .arg(from)
        .args(args)
        .env_remove("DESTDIR")
        .output()
        .expect("run install.sh")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "install.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

#[test]
fn install_stages_the_layout_and_uninstall_takes_it_back() {
    let dest = TempDir::new(&format!("rhxi{}-dest", std::process::id()));
    let d = dest.0.to_str().expect("utf-8 temp dir");
    ok(&install(&["--destdir", d, "--prefix", "/usr"]));
    let files = tree(&dest.0);
    let want = [
        "etc/cni/net.d/10-netd.conflist",
        "etc/systemd/system/netd-lb@.service",
        "etc/systemd/system/netd.service",
        "etc/tmpfiles.d/netd.conf",
        "opt/cni/bin/netd",
        "opt/cni/bin/netd-cni",
        "usr/bin/netd",
        "usr/bin/netd-lb",
        "usr/share/doc/netd/10-netd.conflist",
        "usr/share/doc/netd/cni.md",
        "usr/share/doc/netd/getting-started.md",
        "usr/share/doc/netd/lb-example.toml",
        "usr/share/doc/netd/lb.md",
        "usr/share/doc/netd/operations.md",
    ];
    assert_eq!(files, want, "staged tree");
    assert!(dest.0.join("etc/netd/lb").is_dir());
    for b in ["usr/bin/netd", "usr/bin/netd-lb", "opt/cni/bin/netd-cni"] {
        assert_eq!(mode(&dest.0.join(b)), 0o755, "{b}");
    }
    // The plugin's netd (for DNS) is the installed one, by its final path.
    assert_eq!(
        std::fs::read_link(dest.0.join("opt/cni/bin/netd")).expect("symlink"),
        Path::new("/usr/bin/netd")
    );
    // Units name the prefix's binaries, never the staging dir.
    let unit = std::fs::read_to_string(dest.0.join("etc/systemd/system/netd.service"))
        .expect("netd.service");
    assert!(unit.contains("ExecStart=/usr/bin/netd daemon"), "{unit}");
    assert!(unit.contains("Type=notify") && unit.contains("LimitNOFILE="));
    assert!(!unit.contains(d), "{unit}");
    let conflist: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dest.0.join("etc/cni/net.d/10-netd.conflist")).expect("conflist"),
    )
    .expect("the sample conflist is JSON");
    assert_eq!(conflist["plugins"][0]["type"], "netd-cni");

    verify_units(&dest.0);

    // An operator's conflist survives both a second install and uninstall.
    let conf = dest.0.join("etc/cni/net.d/10-netd.conflist");
    std::fs::write(&conf, "{\"edited\": true}").expect("edit conflist");
    ok(&install(&["--destdir", d, "--prefix", "/usr"]));
    ok(&install(&[
        "--destdir",
        d,
        "--prefix",
        "/usr",
        "--uninstall",
    ]));
    assert_eq!(tree(&dest.0), ["etc/cni/net.d/10-netd.conflist"]);
    assert_eq!(
        std::fs::read_to_string(&conf).expect("kept"),
        "{\"edited\": true}"
    );
}

/// `systemd-analyze verify` on the staged units. It checks that ExecStart
/// is executable, so they are verified as copies whose binaries point at
/// the staged ones. systemd is a package scripts/setup.sh installs.
fn verify_units(dest: &Path) {
    let check = TempDir::new(&format!("rhxi{}-units", std::process::id()));
    let bin = format!("{}/usr/bin/", dest.display());
    for u in ["netd.service", "netd-lb@.service"] {
        let text = std::fs::read_to_string(dest.join("etc/systemd/system").join(u))
            .expect("staged unit")
            .replace("/usr/bin/", &bin);
        std::fs::write(check.0.join(u), text).expect("write unit copy");
    }
    // A template is verified through an instance.
    std::os::unix::fs::symlink(
        check.0.join("netd-lb@.service"),
        check.0.join("netd-lb@web.service"),
    )
    .expect("instance link");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(check.0.join("netd.service"))
        .arg(check.0.join("netd-lb@web.service"))
        .output()
        .expect("systemd-analyze (package systemd; scripts/setup.sh installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_and_nothing_is_written() {
    let dest = TempDir::new(&format!("rhxi{}-bad", std::process::id()));
    let d = dest.0.to_str().expect("utf-8 temp dir");
    for args in [
        vec!["--destdir", d, "--prefix", "usr"],
        vec!["--destdir", d, "--bogus"],
        vec!["--destdir", d, "--prefix"],
        vec!["--destdir", d, "--from", "/nonexistent"],
        vec!["--destdir", d, "--prefix", "/usr/my bin"],
    ] {
        // `install` passes its own --from first: a second one is the one that counts.
        let out = install(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("install: error: "), "{args:?}: {err}");
        assert!(
            tree(&dest.0).is_empty(),
            "{args:?} wrote {:?}",
            tree(&dest.0)
        );
    }
}
