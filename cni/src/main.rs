//! `netd-cni`: the CNI plugin. Exec'd by a container runtime with the
//! command in `CNI_COMMAND`, the configuration on stdin; answers on stdout,
//! logs on stderr. The protocol is its own (parsing, results, error codes,
//! the delegated IPAM plugin, the DNS hand-off); every decision about
//! networks, sandboxes and endpoints is netd's (`netd::ops`), made in the
//! namespace the plugin runs in: attaching never waits for a daemon.

mod commands;
mod dns;
mod ipam;
mod ports;
mod reap;
mod shape;

use std::io::Write;
use std::path::PathBuf;

use netd::daemon::cni_report::CniReport;
use netd::daemon::metrics::Outcome;
use netd::ops::{DEFAULT_RUN_DIR, DEFAULT_STATE_DIR};
use netd_cni::{CniError, Command, Env, NetConf, SUPPORTED, code, command_allowed};
use serde_json::{Value, json};

fn var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

pub(crate) fn state_dir(conf: &NetConf) -> PathBuf {
    conf.state_dir
        .clone()
        .or_else(|| var("NETD_STATE_DIR"))
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
        .into()
}

pub(crate) fn socket(conf: &NetConf) -> PathBuf {
    socket_of(conf.socket.as_deref())
}

/// The daemon's API socket: the configuration's `socket`, else
/// `NETD_SOCKET`, else the default.
fn socket_of(configured: Option<&str>) -> PathBuf {
    configured
        .map(str::to_string)
        .or_else(|| var("NETD_SOCKET"))
        .unwrap_or_else(|| format!("{DEFAULT_RUN_DIR}/netd.sock"))
        .into()
}

fn main() {
    let started = std::time::Instant::now();
    reap::run_if_asked();
    // netd's own warnings (forced removals, firewall rebuilds) go to stderr,
    // which runtimes log; NETD_LOG=debug shows more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();

    let read = if var("CNI_COMMAND").is_none() {
        // For a human running the binary, as the reference plugins print;
        // the error result below still says what is missing (code 4).
        eprintln!("CNI netd-cni plugin v{}", env!("CARGO_PKG_VERSION"));
        eprintln!("CNI protocol versions supported: {}", SUPPORTED.join(", "));
        Ok(Vec::new())
    } else {
        netd_cni::read_config(std::io::stdin().lock())
    };
    let stdin = read.as_deref().unwrap_or_default();
    let raw = serde_json::from_slice::<Value>(stdin).unwrap_or_default();
    let asked = raw["cniVersion"].as_str().map(str::to_string);
    let out = match &read {
        Ok(stdin) => run(stdin, asked.as_deref()),
        Err(e) => Err(e.clone()),
    };
    report(&raw, &out, started.elapsed());
    let mut stdout = std::io::stdout();
    match out {
        Ok(Some(v)) => {
            let _ = writeln!(stdout, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            // Errors are written in the configuration's version when this
            // plugin speaks it, else in the newest.
            let version = asked
                .as_deref()
                .filter(|v| SUPPORTED.contains(v))
                .unwrap_or("1.1.0");
            eprintln!("netd-cni: {e}");
            let _ = writeln!(stdout, "{}", e.to_json(version));
            let _ = stdout.flush();
            std::process::exit(1);
        }
    }
}

/// Tell a running daemon this command ran, for its `/metrics` (see
/// `netd::daemon::cni_report`). Never waits; never fails the command.
fn report(raw: &Value, out: &Result<Option<Value>, CniError>, took: std::time::Duration) {
    let Some(command) = var("CNI_COMMAND") else {
        return;
    };
    let outcome = match out {
        Ok(_) => Outcome::Ok,
        Err(e) => outcome_of(e.code),
    };
    let Some(r) = CniReport::of(&command, outcome, took) else {
        return;
    };
    // Read from the raw JSON: a refused configuration is reported too.
    r.send(&socket_of(raw["socket"].as_str()));
}

/// The outcome a CNI error code counts under, as the API's statuses do.
fn outcome_of(code: u32) -> Outcome {
    match code {
        code::INCOMPATIBLE_VERSION
        | code::UNSUPPORTED_FIELD
        | code::INVALID_ENV
        | code::DECODE
        | code::INVALID_CONFIG => Outcome::Invalid,
        code::UNKNOWN_CONTAINER => Outcome::NotFound,
        code::TRY_LATER => Outcome::Busy,
        _ => Outcome::Error,
    }
}

fn run(stdin: &[u8], asked: Option<&str>) -> Result<Option<Value>, CniError> {
    // Undecodable input is reported before the environment is (both come
    // before anything else); VERSION needs no configuration.
    if var("CNI_COMMAND").is_some_and(|c| c != "VERSION") {
        netd_cni::decode(stdin)?;
    }
    let env = Env::from(var)?;
    if env.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": asked.unwrap_or("1.1.0"),
            "supportedVersions": SUPPORTED,
        })));
    }
    let conf = match env.command {
        Command::Del => NetConf::parse_for_del(stdin)?,
        _ => NetConf::parse(stdin)?,
    };
    command_allowed(env.command, &conf.cni_version)?;
    if env.command == Command::Add {
        // DEL cleans up whatever it is given.
        netd_cni::prev_result_allowed(&conf.cni_version, conf.prev_result.is_some())?;
    }
    let raw: Value = serde_json::from_slice(stdin).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CniError::new(code::GENERIC, "cannot start a runtime").details(e.to_string())
        })?;
    rt.block_on(async {
        match env.command {
            Command::Add => commands::add(&conf, &env, stdin).await.map(Some),
            Command::Del => commands::del(&conf, &env, stdin).await.map(|_| None),
            Command::Check => commands::check(&conf, &env, stdin).await.map(|_| None),
            Command::Gc => commands::gc(&conf, &raw, &env, stdin).await.map(|_| None),
            Command::Status => commands::status(&conf).await.map(|_| None),
            Command::Version => unreachable!("answered above"),
        }
    })
}
