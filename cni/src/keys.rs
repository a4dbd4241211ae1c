//! Every key of a configuration accounted for: netd's own and the spec's
//! are read, the reference `bridge` plugin's are honoured where netd's
//! datapath already does what the value asks and refused (code 2, naming
//! the key) where it does not, and anything else is refused too. A key that
//! is accepted and silently ignored gives a user wrong behaviour without an
//! error (SPEC: a plugin "may generate an error if called with unknown
//! fields"; CONVENTIONS: it is expected to when it cannot act on them).

use serde_json::{Map, Value};

use crate::error::{CniError, code};

/// The keys `NetConf` reads, and those the runtime adds (SPEC "Deriving
/// execution configuration"). `args` is the runtime's optional metadata,
/// which CONVENTIONS lets plugins ignore; its `cni.ips` is read.
const READ: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "subnet",
    "gateway",
    "ipRange",
    "ipv4",
    "ipv6",
    "subnet6",
    "gateway6",
    "ipRange6",
    "ipMasq6",
    "forwardAccept",
    "bridge",
    "mtu",
    "internal",
    "dns",
    "dnsEnabled",
    "isolate",
    "ipMasq",
    "stateDir",
    "socket",
    "runtimeConfig",
    "prevResult",
    "ipam",
    "capabilities",
    "args",
    "cni.dev/valid-attachments",
];

/// The capabilities netd-cni acts on (CONVENTIONS): a configuration may
/// declare these, and `runtimeConfig` may carry them.
pub const CAPABILITIES: &[&str] = &[
    "portMappings",
    "aliases",
    "ips",
    "mac",
    "ipRanges",
    "dns",
    "bandwidth",
];

/// What netd's datapath does for a key of the reference bridge plugin: the
/// one value it matches, and why another cannot be had.
struct BridgeKey {
    key: &'static str,
    honoured: Value,
    why: &'static str,
}

fn bridge_keys() -> [BridgeKey; 12] {
    use serde_json::json;
    let k = |key, honoured, why| BridgeKey { key, honoured, why };
    [
        k(
            "isGateway",
            json!(true),
            "netd's bridge always holds the network's gateway address",
        ),
        k(
            "forceAddress",
            json!(false),
            "netd never re-addresses an existing bridge: a network with other settings is refused",
        ),
        k(
            "hairpinMode",
            json!(true),
            "netd's bridge ports always hairpin (published ports reach their own container)",
        ),
        k(
            "promiscMode",
            json!(false),
            "netd does not put its bridges in promiscuous mode",
        ),
        k("vlan", json!(0), "netd's bridges do no VLAN filtering"),
        k(
            "vlanTrunk",
            json!([]),
            "netd's bridges do no VLAN filtering",
        ),
        k(
            "preserveDefaultVlan",
            json!(true),
            "netd's bridges do no VLAN filtering: every port keeps the default VLAN",
        ),
        k(
            "enabledad",
            json!(false),
            "netd adds container addresses without duplicate address detection (netd's IPAM hands out each address once)",
        ),
        k(
            "macspoofchk",
            json!(false),
            "netd has no MAC spoof check on its veths",
        ),
        k(
            "disableContainerInterface",
            json!(false),
            "netd always brings the container interface up",
        ),
        k(
            "portIsolation",
            json!(false),
            "netd isolates containers with its firewall, not bridge port isolation: use \"isolate\": true",
        ),
        k(
            "ipMasqBackend",
            json!("nftables"),
            "netd's firewall (masquerade included) is nftables",
        ),
    ]
}

fn unsupported(key: &str, v: &Value, why: &str) -> CniError {
    CniError::new(
        code::UNSUPPORTED_FIELD,
        format!("unsupported field {key}: {v}: {why}"),
    )
}

/// Whether `v` asks for what `honoured` is, compared as the bridge plugin
/// reads it (`vlan` 0 is no VLAN; a type it would not decode is code 7).
fn same(key: &str, v: &Value, honoured: &Value) -> Result<bool, CniError> {
    let typed = match honoured {
        Value::Bool(_) => v.is_boolean(),
        Value::Number(_) => v.is_u64(),
        Value::Array(_) => v.is_array(),
        Value::String(_) => v.is_string(),
        _ => false,
    };
    if !typed {
        return Err(type_error(key, v));
    }
    Ok(v == honoured)
}

fn type_error(key: &str, v: &Value) -> CniError {
    CniError::new(
        code::INVALID_CONFIG,
        format!("invalid network configuration: {key} {v} is not of the bridge plugin's type"),
    )
}

/// Check every key of the configuration object (see the module's comment).
pub fn audit(obj: &Map<String, Value>) -> Result<(), CniError> {
    let internal = obj.get("internal") == Some(&Value::Bool(true));
    let bridge = bridge_keys();
    for (key, v) in obj {
        if READ.contains(&key.as_str()) {
            continue;
        }
        if key == "isDefaultGateway" {
            // netd routes a container's default route through the gateway,
            // except on an internal network, which has none.
            let Value::Bool(b) = v else {
                return Err(type_error(key, v));
            };
            if *b == internal {
                let why = if internal {
                    "an internal network gives no default route"
                } else {
                    "netd always routes a container's default route through the gateway (set \"internal\": true for none)"
                };
                return Err(unsupported(key, v, why));
            }
            continue;
        }
        if let Some(b) = bridge.iter().find(|b| b.key == key) {
            if !same(key, v, &b.honoured)? {
                return Err(unsupported(key, v, b.why));
            }
            continue;
        }
        return Err(unsupported(key, v, "netd-cni does not know this key"));
    }
    audit_capabilities(obj)
}

/// Declared capabilities and what the runtime passed in `runtimeConfig`
/// must be ones netd-cni acts on: a runtime passes a capability only when
/// it is declared, so declaring one netd cannot honour is refused at once.
fn audit_capabilities(obj: &Map<String, Value>) -> Result<(), CniError> {
    let why = |area: &str| {
        format!(
            "netd-cni does not support this {area}; it supports {}",
            CAPABILITIES.join(", ")
        )
    };
    if let Some(Value::Object(caps)) = obj.get("capabilities") {
        for (cap, on) in caps {
            if on == &Value::Bool(true) && !CAPABILITIES.contains(&cap.as_str()) {
                return Err(unsupported(
                    &format!("capabilities.{cap}"),
                    on,
                    &why("capability"),
                ));
            }
        }
    }
    if let Some(Value::Object(rc)) = obj.get("runtimeConfig") {
        for (cap, v) in rc {
            if !CAPABILITIES.contains(&cap.as_str()) {
                return Err(unsupported(
                    &format!("runtimeConfig.{cap}"),
                    v,
                    &why("capability"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(v: Value) -> Result<(), CniError> {
        let mut o = json!({ "cniVersion": "1.1.0", "name": "n", "type": "netd-cni" });
        for (k, x) in v.as_object().unwrap() {
            o[k] = x.clone();
        }
        audit(o.as_object().unwrap())
    }

    #[test]
    fn bridge_keys_are_honoured_when_netd_does_that_and_refused_naming_the_key_else() {
        for ok in [
            json!({ "isGateway": true }),
            json!({ "isDefaultGateway": true }),
            json!({ "isDefaultGateway": false, "internal": true }),
            json!({ "hairpinMode": true, "promiscMode": false, "vlan": 0, "vlanTrunk": [] }),
            json!({ "enabledad": false, "macspoofchk": false, "portIsolation": false }),
            json!({ "forceAddress": false, "preserveDefaultVlan": true, "ipMasqBackend": "nftables" }),
            json!({ "disableContainerInterface": false }),
            json!({ "capabilities": { "portMappings": true, "aliases": true, "infinibandGUID": false } }),
            json!({ "args": { "cni": { "labels": [] } } }),
        ] {
            check(ok.clone()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, key) in [
            (json!({ "isGateway": false }), "isGateway"),
            (json!({ "isDefaultGateway": false }), "isDefaultGateway"),
            (
                json!({ "isDefaultGateway": true, "internal": true }),
                "isDefaultGateway",
            ),
            (json!({ "hairpinMode": false }), "hairpinMode"),
            (json!({ "promiscMode": true }), "promiscMode"),
            (json!({ "vlan": 100 }), "vlan"),
            (json!({ "vlanTrunk": [{ "id": 5 }] }), "vlanTrunk"),
            (json!({ "enabledad": true }), "enabledad"),
            (json!({ "macspoofchk": true }), "macspoofchk"),
            (json!({ "portIsolation": true }), "portIsolation"),
            (json!({ "forceAddress": true }), "forceAddress"),
            (json!({ "ipMasqBackend": "iptables" }), "ipMasqBackend"),
            (json!({ "frobnicate": 1 }), "frobnicate"),
            (
                json!({ "capabilities": { "infinibandGUID": true } }),
                "capabilities.infinibandGUID",
            ),
            (
                json!({ "runtimeConfig": { "cgroupPath": "/x" } }),
                "runtimeConfig.cgroupPath",
            ),
        ] {
            let e = check(bad.clone()).unwrap_err();
            assert_eq!(e.code, code::UNSUPPORTED_FIELD, "{bad}: {e}");
            assert!(
                e.msg.starts_with(&format!("unsupported field {key}: ")),
                "{bad}: {e}"
            );
        }
        let e = check(json!({ "hairpinMode": "yes" })).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG, "{e}");
    }
}
