//! netd's API as its clients see it: the wire types that do not need the
//! `netd` crate, and one client over the daemon's Unix socket (hyper's
//! HTTP/1 client connection), used by the CLI, netd-cni's DNS hand-off,
//! netd-lb's discovery and the tests.
//!
//! Responses that are netd's own types (`NetworkDetail`, `SandboxDetail`…)
//! are read with the generic [`Client::call`] into `netd`'s types.

pub mod blocking;
mod client;
mod types;

pub use client::{Client, Error, Events};
pub use http::{Method, StatusCode};
pub use types::*;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What stays as it is in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` escaped for use as one path segment (`/netd/networks/{seg}`).
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("my net/x"), "my%20net%2Fx");
        assert_eq!(seg("web-1_a.b~"), "web-1_a.b~");
        assert_eq!(seg("é"), "%C3%A9");
    }
}
