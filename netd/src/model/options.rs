//! The driver options `network create` takes (Docker's names), and their
//! checks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{IfName, Invalid, cut, invalid};

/// Option keys accepted on `network create`.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// Docker's name for NAT66 (`nat`, the default) or routed IPv6 (`routed`).
pub const OPT_GATEWAY_MODE_V6: &str = "com.docker.network.bridge.gateway_mode_ipv6";
/// The same for IPv4: `routed` is no masquerade.
pub const OPT_GATEWAY_MODE_V4: &str = "com.docker.network.bridge.gateway_mode_ipv4";
/// The host address a published port without one is bound to.
pub const OPT_HOST_BINDING_V4: &str = "com.docker.network.bridge.host_binding_ipv4";
/// Docker's "no IPv4 address on the bridge": the gateway address is
/// someone else's (a router or an interface the user puts on the bridge).
pub const OPT_INHIBIT_V4: &str = "com.docker.network.bridge.inhibit_ipv4";
/// The sandbox interface names' prefix (`eth` gives eth0, eth1...).
pub const OPT_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";
/// Docker's host interfaces from which containers' published ports are
/// reached at the containers' own addresses (`if1:if2`).
pub const OPT_TRUSTED_IFACES: &str = "com.docker.network.bridge.trusted_host_interfaces";
/// Accept rules for the bridge in other tables' forward chains (`auto`, or
/// `FAMILY/TABLE/CHAIN,...`); parsed by `plan::forward`.
pub const OPT_FORWARD_ACCEPT: &str = "netd.forward_accept";
pub const KNOWN_OPTIONS: &[&str] = &[
    OPT_BRIDGE_NAME,
    OPT_MTU,
    OPT_MASQUERADE,
    OPT_ICC,
    OPT_GATEWAY_MODE_V6,
    OPT_GATEWAY_MODE_V4,
    OPT_HOST_BINDING_V4,
    OPT_INHIBIT_V4,
    OPT_IFACE_PREFIX,
    OPT_TRUSTED_IFACES,
    OPT_FORWARD_ACCEPT,
];

/// A gateway mode option: true for NAT (the default), false for routed.
/// Docker 28's `nat-unprotected` and `isolated` are refused naming them.
pub(super) fn nat_mode(options: &BTreeMap<String, String>, key: &str) -> Result<bool, Invalid> {
    match options.get(key).map(String::as_str) {
        None | Some("nat") => Ok(true),
        Some("routed") => Ok(false),
        Some(v) => invalid(format!("invalid {key} {v:?}: expected nat or routed")),
    }
}

/// The options netd applies at endpoint time rather than at create,
/// checked once here so that reading them later cannot fail.
pub(super) fn check_late_options(options: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if let Some(v) = options.get(OPT_HOST_BINDING_V4)
        && v.parse::<Ipv4Addr>().is_err()
    {
        return invalid(format!(
            "invalid {OPT_HOST_BINDING_V4} {v:?}: expected an IPv4 address"
        ));
    }
    if let Some(p) = options.get(OPT_IFACE_PREFIX) {
        // The longest name it makes, eth + up to 4 digits (a bridge takes
        // at most 1023 ports, a sandbox fewer networks), must be a name.
        let ok = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && format!("{p}9999").parse::<IfName>().is_ok();
        if !ok {
            return invalid(format!(
                "invalid {OPT_IFACE_PREFIX} {:?}: expected 1-11 letters, digits, '-' or '_'",
                cut(p)
            ));
        }
    }
    bool_option_default(options, OPT_INHIBIT_V4, false)?;
    if let Some(v) = options.get(OPT_TRUSTED_IFACES) {
        check_trusted(v)?;
    }
    Ok(())
}

/// The most host interfaces `trusted_host_interfaces` may name: each is a
/// rule per family in the forward chain.
pub const MAX_TRUSTED_IFACES: usize = 16;

/// `if1:if2`, as Docker writes it; empty is none.
fn check_trusted(v: &str) -> Result<(), Invalid> {
    if v.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = v.split(':').collect();
    if names.len() > MAX_TRUSTED_IFACES {
        return invalid(format!(
            "invalid {OPT_TRUSTED_IFACES}: {} interfaces, at most {MAX_TRUSTED_IFACES}",
            names.len()
        ));
    }
    for n in names {
        if n.parse::<IfName>().is_err() {
            return invalid(format!(
                "invalid {OPT_TRUSTED_IFACES}: {:?} is not an interface name (1-15 characters, no '/', ':' or whitespace; names separated by ':')",
                cut(n)
            ));
        }
    }
    Ok(())
}

/// The host interfaces whose packets reach containers' published ports at
/// the containers' own addresses. Checked at create, so nothing bad is
/// left to skip here.
pub fn trusted_interfaces(options: &BTreeMap<String, String>) -> Vec<String> {
    match options.get(OPT_TRUSTED_IFACES) {
        Some(v) if !v.is_empty() => v
            .split(':')
            .filter(|n| n.parse::<IfName>().is_ok())
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// `inhibit_ipv4`: the bridge gets no IPv4 address. Checked at create
/// (`check_late_options`), so a bad value here reads as the default.
pub fn inhibit_ipv4(options: &BTreeMap<String, String>) -> bool {
    bool_option_default(options, OPT_INHIBIT_V4, false).unwrap_or(false)
}

fn bool_option_default(
    options: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, Invalid> {
    if options.contains_key(key) {
        bool_option(options, key)
    } else {
        Ok(default)
    }
}

pub(super) fn bool_option(options: &BTreeMap<String, String>, key: &str) -> Result<bool, Invalid> {
    match options.get(key).map(String::as_str) {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => invalid(format!("invalid {key} {v:?}: expected true or false")),
    }
}
