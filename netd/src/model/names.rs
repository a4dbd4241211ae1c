//! Names and identifiers: of networks and sandboxes, of interfaces, and the
//! ids and link-name prefixes netd derives from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Invalid, cut, invalid};

/// Names of networks and sandboxes: what Docker accepts for container names,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 characters. Sandbox names become
/// file names under `/run/netns`, so slashes and dots-only names must never pass.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if s.is_empty() || s.len() > 64 || !ok_first || !ok_rest {
            let s = cut(&s);
            return invalid(format!(
                "invalid name {s:?}: use 1-64 characters [a-zA-Z0-9_.-], starting with a letter or digit"
            ));
        }
        Ok(Name(s))
    }
}

impl FromStr for Name {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Name::try_from(s.to_string())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linux interface name: 1-15 bytes, no '/', no whitespace, not "." or "..".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
// Open to the model: an endpoint derives its link names from its id, valid by construction.
pub struct IfName(pub(super) String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        if s.is_empty()
            || s.len() > 15
            || s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return invalid(format!(
                "invalid interface name {s:?}: 1-15 characters, no '/', ':' or spaces"
            ));
        }
        Ok(IfName(s))
    }
}

impl FromStr for IfName {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        IfName::try_from(s.to_string())
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 64-hex-digit identifier, like Docker's; the first 12 are the short id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// A fresh random id.
    pub fn random() -> Id {
        let mut buf = [0u8; 32];
        // getrandom(2) never fails for 32 bytes once the pool is initialised;
        // fall back to time+pid entropy rather than panic if it somehow does.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n != buf.len() as isize {
            let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u128;
            let seed = t ^ (std::process::id() as u128) << 64;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ i as u8;
            }
        }
        Id(buf.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn from_stored(s: String) -> Id {
        Id(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Host-side veths are named `nd-` + 12 hex digits of the endpoint id.
pub const HOST_VETH_PREFIX: &str = "nd-";
/// A retired sandbox-side interface, waiting for its pair to be deleted, is
/// `ndr` + the same 12 hex digits.
pub const RETIRED_PREFIX: &str = "ndr";
/// The ifb device that shapes what an endpoint sends (the CNI plugin's
/// `bandwidth` egress limit) is `ndi` + the same 12 hex digits as its host
/// veth, so that it is traced to its endpoint, and found orphaned with it.
pub const IFB_PREFIX: &str = "ndi";

/// The ifb name that goes with the host veth `host_veth` (`nd-` + 12 hex
/// digits); `None` for any other name.
pub fn ifb_of(host_veth: &str) -> Option<String> {
    let hex = host_veth.strip_prefix(HOST_VETH_PREFIX)?;
    is_id_prefix(hex).then(|| format!("{IFB_PREFIX}{hex}"))
}

/// Whether `name` has the exact shape of one of netd's ifb names (not
/// merely its prefix: a link of someone else's that happens to start with
/// `ndi` is never taken for one).
pub fn is_ifb_name(name: &str) -> bool {
    name.strip_prefix(IFB_PREFIX).is_some_and(is_id_prefix)
}

/// 12 lowercase hex digits: the start of an id, as link names carry it.
fn is_id_prefix(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Bridges netd names itself are `netd-` + 10 hex digits of the network id
/// (`netd0` for the default network).
pub const BRIDGE_PREFIX: &str = "netd-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("web-1".parse::<Name>().is_ok());
        assert!("a.b_c".parse::<Name>().is_ok());
        for bad in ["", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_ifb_is_named_after_its_host_veth() {
        assert_eq!(
            ifb_of("nd-0123456789ab").as_deref(),
            Some("ndi0123456789ab")
        );
        assert!(ifb_of("nd-0123456789ab").unwrap().len() <= 15);
        for other in [
            "eth0",
            "nd-0123",
            "nd-0123456789AB",
            "netd-0123456789",
            "ndr0123456789ab",
        ] {
            assert_eq!(ifb_of(other), None, "{other}");
        }
        assert!(is_ifb_name("ndi0123456789ab"));
        for other in [
            "ndi",
            "ndis0",
            "ndi0123456789abc",
            "ndi0123456789aX",
            "nd-0123456789ab",
        ] {
            assert!(!is_ifb_name(other), "{other}");
        }
    }
}
