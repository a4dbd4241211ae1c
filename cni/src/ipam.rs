//! Delegated IPAM: when the configuration has an `ipam` section, its
//! plugin (host-local, static, dhcp...) chooses the address the way the
//! reference plugins delegate, and netd reserves exactly that address in
//! its own store, so both agree on who holds what.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use netd_cni::{CniError, Env, code};
use serde_json::Value;

/// The plugin binary: the first `CNI_PATH` directory that has it.
fn find(kind: &str, e: &Env) -> Result<PathBuf, CniError> {
    e.path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("ipam plugin {kind} not found in CNI_PATH"),
            )
            .details(e.path.clone())
        })
}

/// Exec the IPAM plugin for `command` with the same configuration and
/// parameters this plugin got. Its error result is passed on as ours.
pub fn exec(stdin: &[u8], ipam_type: &str, command: &str, e: &Env) -> Result<Value, CniError> {
    let bin = find(ipam_type, e)?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &e.container)
        .env("CNI_NETNS", e.netns.as_deref().unwrap_or(""))
        .env("CNI_IFNAME", &e.ifname)
        .env("CNI_ARGS", &e.args)
        .env("CNI_PATH", &e.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| {
            CniError::new(code::GENERIC, format!("cannot run ipam plugin {ipam_type}"))
                .details(err.to_string())
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading is reported by its status.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|err| {
        CniError::new(code::GENERIC, format!("ipam plugin {ipam_type} failed"))
            .details(err.to_string())
    })?;
    let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if !out.status.success() {
        let msg = parsed
            .as_ref()
            .and_then(|v| v["msg"].as_str())
            .unwrap_or("failed without an error result");
        let c = parsed
            .as_ref()
            .and_then(|v| v["code"].as_u64())
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(code::GENERIC);
        let details = parsed
            .as_ref()
            .and_then(|v| v["details"].as_str())
            .unwrap_or_default()
            .to_string();
        return Err(CniError::new(c, format!("ipam plugin {ipam_type}: {msg}")).details(details));
    }
    Ok(parsed.unwrap_or(Value::Null))
}

/// Pass GC on, as libcni would: only to a plugin that speaks 1.1.0 (GC is
/// 1.1.0's; an older plugin answers an unknown command with an error, and
/// has no leases to collect this way). Whether it was passed on.
pub fn gc(stdin: &[u8], ipam_type: &str, e: &Env) -> Result<bool, CniError> {
    let version = exec(stdin, ipam_type, "VERSION", e)?;
    let speaks = version["supportedVersions"]
        .as_array()
        .is_some_and(|v| v.iter().any(|x| x == "1.1.0"));
    if !speaks {
        eprintln!(
            "netd-cni: ipam plugin {ipam_type} speaks {}: it has no GC, not passed on",
            version["supportedVersions"]
        );
        return Ok(false);
    }
    exec(stdin, ipam_type, "GC", e)?;
    Ok(true)
}
