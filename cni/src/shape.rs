//! The `bandwidth` capability's kernel side (see `netd_cni::bandwidth` for
//! the why): the tbf on the host veth for what enters the container, the
//! ifb and its tbf for what leaves it, read back by CHECK. The `tc` and `ip`
//! commands rather than netlink: rtnetlink has no tbf or u32 options, and
//! tc computes the rate tables the kernel wants.

use std::process::Command;

use netd::kernel::Netlink;
use netd_cni::{Bandwidth, CniError, Limit, code, ifb_add_args, redirect_args};
use serde_json::Value;

/// Put `bw` on the endpoint whose host veth is `host_veth` (MTU `mtu`),
/// making the ifb `ifb` for an egress limit. On failure the ifb is gone
/// again (the caller takes the veth, and with it its qdiscs, away).
/// Everything replaces what an earlier try made: a retried ADD is fine.
pub async fn apply(
    bw: &Bandwidth,
    host_veth: &str,
    ifb: &str,
    mtu: Option<u32>,
) -> Result<(), CniError> {
    let made = shape(bw, host_veth, ifb, mtu).await;
    if made.is_err() {
        // Also one an earlier try of this ADD made.
        remove_ifb(ifb).await;
    }
    made
}

async fn shape(
    bw: &Bandwidth,
    host_veth: &str,
    ifb: &str,
    mtu: Option<u32>,
) -> Result<(), CniError> {
    if let Some(l) = &bw.ingress {
        run("tc", &l.tc_args(host_veth))?;
    }
    match &bw.egress {
        Some(l) => egress(l, host_veth, ifb, mtu).await,
        None => Ok(()),
    }
}

/// The ifb, up, shaped, and fed by the host veth's ingress.
async fn egress(l: &Limit, host_veth: &str, ifb: &str, mtu: Option<u32>) -> Result<(), CniError> {
    let host = Netlink::current().map_err(|e| {
        CniError::new(code::GENERIC, "bandwidth: cannot open netlink").details(format!("{e:#}"))
    })?;
    match host.link(ifb).await {
        Ok(None) => run("ip", &ifb_add_args(ifb, mtu))?,
        Ok(Some(have)) if have.kind.as_deref() == Some("ifb") => {}
        // Only netd names links `ndi` + 12 hex digits; never take over
        // someone else's link of that name.
        Ok(Some(have)) => {
            return Err(CniError::new(
                code::GENERIC,
                format!(
                    "bandwidth: {ifb} exists and is a {} link, not the ifb netd makes for {host_veth}",
                    have.kind.as_deref().unwrap_or("plain")
                ),
            ));
        }
        Err(e) => {
            return Err(
                CniError::new(code::GENERIC, format!("bandwidth: look up {ifb}"))
                    .details(format!("{e:#}")),
            );
        }
    }
    run("ip", &strings(&["link", "set", "dev", ifb, "up"]))?;
    run("tc", &l.tc_args(ifb))?;
    for args in redirect_args(host_veth, ifb) {
        run("tc", &args)?;
    }
    Ok(())
}

/// Delete the ifb `ifb`; gone already is fine. Failures are logged: the
/// caller is undoing or finishing something, and GC or the daemon's
/// reconcile deletes an ifb whose endpoint is gone.
pub async fn remove_ifb(ifb: &str) {
    let deleted = match Netlink::current() {
        Ok(host) => host.delete_link(ifb).await,
        Err(e) => Err(e),
    };
    if let Err(e) = deleted {
        eprintln!("netd-cni: delete {ifb}: {e:#}");
    }
}

/// CHECK: the limits of `bw` are on the kernel's devices, with their rates.
pub fn check(bw: &Bandwidth, host_veth: &str, ifb: &str) -> Result<(), CniError> {
    if let Some(l) = &bw.ingress {
        root_tbf(host_veth, l, "ingress")?;
    }
    let Some(l) = &bw.egress else {
        return Ok(());
    };
    root_tbf(ifb, l, "egress")?;
    let filters = tc_json(&["filter", "show", "dev", host_veth, "parent", "ffff:"])?;
    if !redirects_to(&filters, ifb) {
        return Err(differs(format!(
            "bandwidth: {host_veth} does not redirect what it receives to {ifb} (egress limit)"
        )));
    }
    Ok(())
}

/// `dev`'s root qdisc is a tbf at `l`'s rate.
fn root_tbf(dev: &str, l: &Limit, dir: &str) -> Result<(), CniError> {
    let qdiscs = tc_json(&["qdisc", "show", "dev", dev])?;
    let root = qdiscs
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["root"] == true);
    // tc reports the rate in bytes per second.
    let rate = root
        .filter(|q| q["kind"] == "tbf")
        .and_then(|q| q["options"]["rate"].as_u64());
    if rate != Some(l.rate / 8) {
        return Err(differs(format!(
            "bandwidth: {dev} has no tbf of {} bit/s at its root ({dir} limit), but {}",
            l.rate,
            root.map(|q| q.to_string())
                .unwrap_or_else(|| "no qdisc".into())
        )));
    }
    Ok(())
}

/// Whether a filter of `filters` (`tc -j filter show`) redirects to `ifb`.
fn redirects_to(filters: &Value, ifb: &str) -> bool {
    filters.as_array().into_iter().flatten().any(|f| {
        f["options"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| {
                a["kind"] == "mirred" && a["mirred_action"] == "redirect" && a["to_dev"] == ifb
            })
    })
}

/// `tc -j ARGS`, parsed; a device that is gone is a difference.
fn tc_json(args: &[&str]) -> Result<Value, CniError> {
    let out = Command::new("tc")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| {
            CniError::new(code::GENERIC, "bandwidth: cannot run tc").details(e.to_string())
        })?;
    if !out.status.success() {
        return Err(differs(format!(
            "bandwidth: tc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // tc prints nothing (not `[]`) for a device with no filters.
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        CniError::new(
            code::GENERIC,
            format!("bandwidth: tc {}: {e}", args.join(" ")),
        )
    })
}

fn differs(msg: String) -> CniError {
    CniError::new(code::GENERIC, msg)
}

/// Run `cmd args`, its stderr the error's details.
fn run(cmd: &str, args: &[String]) -> Result<(), CniError> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        CniError::new(code::GENERIC, format!("bandwidth: cannot run {cmd}")).details(e.to_string())
    })?;
    if !out.status.success() {
        return Err(CniError::new(
            code::GENERIC,
            format!("bandwidth: {cmd} {} failed", args.join(" ")),
        )
        .details(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_redirect_is_found_in_tc_s_json() {
        // As `tc -j filter show dev nd-... parent ffff:` prints it.
        let filters = json!([
            { "protocol": "all", "pref": 1, "kind": "u32", "chain": 0 },
            { "protocol": "all", "pref": 1, "kind": "u32", "chain": 0,
              "options": { "fh": "800:", "ht_divisor": 1 } },
            { "protocol": "all", "pref": 1, "kind": "u32", "chain": 0,
              "options": { "fh": "800::800", "actions": [
                  { "order": 1, "kind": "mirred", "mirred_action": "redirect",
                    "direction": "egress", "to_dev": "ndi0123456789ab" } ] } }
        ]);
        assert!(redirects_to(&filters, "ndi0123456789ab"));
        assert!(!redirects_to(&filters, "ndi000000000000"));
        assert!(!redirects_to(&json!([]), "ndi0123456789ab"));
    }
}
