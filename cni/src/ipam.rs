//! Delegated IPAM: when the configuration has an `ipam` section, its
//! plugin (host-local, static, dhcp...) chooses the address the way the
//! reference plugins delegate, and netd reserves exactly that address in
//! its own store, so both agree on who holds what.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use netd_cni::{CniError, Env, code};
use serde_json::Value;

/// What the IPAM plugin gave: the container's address with its prefix,
/// and the gateway if it named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
}

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

/// The IPv4 lease in an IPAM result (the first IPv4 entry of `ips`).
pub fn lease(result: &Value) -> Result<Lease, CniError> {
    let bad = |m: String| CniError::new(code::GENERIC, m).details(result.to_string());
    let ip = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|ip| {
            let address = ip["address"].as_str()?.parse::<Ipv4Net>().ok()?;
            let gateway = ip["gateway"].as_str().and_then(|g| g.parse().ok());
            Some(Lease { address, gateway })
        })
        .ok_or_else(|| bad("the ipam plugin returned no IPv4 address".into()))?;
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_takes_the_first_ipv4_address() {
        let r = json!({"cniVersion":"1.0.0","ips":[
            {"address":"fd00::5/64"},
            {"address":"10.9.0.5/24","gateway":"10.9.0.1"}]});
        assert_eq!(
            lease(&r).unwrap(),
            Lease {
                address: "10.9.0.5/24".parse().unwrap(),
                gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
            }
        );
        assert!(lease(&json!({"ips": []})).is_err());
    }
}
