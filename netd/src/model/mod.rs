//! The model: networks, sandboxes, endpoints and port mappings.
//!
//! Pure types with validation. Nothing here touches the kernel or the disk;
//! every request is checked here first so that bad input is refused before
//! anything changes.

mod names;
mod network;
mod ports;
mod requests;
mod sandbox;

#[cfg(test)]
pub mod fixtures;

pub use names::{BRIDGE_PREFIX, HOST_VETH_PREFIX, Id, IfName, Name, RETIRED_PREFIX};
pub use network::{BridgeConfig, Driver, Network};
#[doc(hidden)]
pub use ports::fuzz_port_spec;
pub use ports::{PortMapping, PortRange, Proto};
pub use requests::{
    EndpointRequest, KNOWN_OPTIONS, MAX_ALIASES, MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS,
    MAX_PORTS, NetworkCreate, OPT_BRIDGE_NAME, OPT_ICC, OPT_MASQUERADE, OPT_MTU, SandboxCreate,
    ValidNetworkCreate,
};
pub use sandbox::{Endpoint, Mac, Sandbox, SandboxNet};

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

/// RFC 3339 timestamp of now, UTC, second precision.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
