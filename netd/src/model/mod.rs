//! The model: networks, sandboxes, endpoints and port mappings.
//!
//! Pure types with validation. Nothing here touches the kernel or the disk;
//! every request is checked here first so that bad input is refused before
//! anything changes.

mod endpoint_request;
mod ifsysctl;
mod names;
mod network;
mod network_v6;
mod options;
mod ports;
mod requests;
mod resolver;
mod sandbox;
mod subnets;

#[cfg(test)]
pub mod fixtures;

pub use endpoint_request::{
    EndpointRequest, MAX_ALIASES, MAX_LINK_LOCAL, MAX_PORTS, SandboxCreate,
};
pub use ifsysctl::{
    EndpointOpts, IfSysctl, MAX_IF_SYSCTLS, OPT_ENDPOINT_IFNAME, OPT_ENDPOINT_SYSCTLS,
    check_list as check_if_sysctls,
};
pub use names::{
    BRIDGE_PREFIX, HOST_VETH_PREFIX, IFB_PREFIX, Id, IfName, Name, RETIRED_PREFIX, ifb_of,
    is_ifb_name,
};
pub use network::{
    BridgeConfig, ConfigOnly, Driver, Ipv4Config, Ipv6Config, Network, OverlayConfig, Vni,
};
pub use network_v6::{MAX_AUX_ADDRESSES, ValidIpv6};
pub use options::{
    KNOWN_OPTIONS, OPT_BRIDGE_NAME, OPT_FORWARD_ACCEPT, OPT_GATEWAY_MODE_V4, OPT_GATEWAY_MODE_V6,
    OPT_HOST_BINDING_V4, OPT_ICC, OPT_IFACE_PREFIX, OPT_INHIBIT_V4, OPT_MASQUERADE, OPT_MTU,
    OPT_TRUSTED_IFACES, inhibit_ipv4, trusted_interfaces,
};
#[doc(hidden)]
pub use ports::fuzz_port_spec;
pub use ports::{PortMapping, PortRange, Proto};
pub use requests::{MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS, NetworkCreate, ValidNetworkCreate};
pub use resolver::{MAX_RESOLVER_ITEMS, ResolvOption, Resolver, SearchDomain, parse_servers};
pub use sandbox::{Endpoint, Mac, Sandbox, SandboxNet};
pub use subnets::MAX_PREFIX6;

/// A validation failure: the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// A long value named in an error, shortened so the message stays readable.
fn cut(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// RFC 3339 timestamp of now, UTC, second precision (`2026-01-02T15:04:05Z`).
pub fn now_rfc3339() -> String {
    rfc3339_seconds(time::OffsetDateTime::now_utc())
}

fn rfc3339_seconds(t: time::OffsetDateTime) -> String {
    // Whole seconds: the well-known format then writes no fraction, and UTC as `Z`.
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        let at = |secs: i64, nanos: i128| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(secs) * 1_000_000_000 + nanos,
            )
            .unwrap()
        };
        assert_eq!(rfc3339_seconds(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(at(20_000 * 86_400 + 3_723, 999_999_999)),
            "2024-10-04T01:02:03Z"
        );
    }
}
