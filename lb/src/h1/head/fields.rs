//! Header facts and checks shared by request and response heads: framing,
//! Connection options, hop-by-hop names, Host and target syntax.

use httparse::{Header, Status};

use super::{HeadError, MAX_CONN_TOKENS};

/// Connection header facts, and the header names it lists (hop-by-hop).
#[derive(Default)]
pub(super) struct ConnTokens<'a> {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    pub(super) names: [&'a [u8]; MAX_CONN_TOKENS],
    pub(super) n: usize,
}

impl<'a> ConnTokens<'a> {
    pub(super) fn add(&mut self, value: &'a [u8]) -> Result<(), HeadError> {
        for t in value.split(|&b| b == b',') {
            let t = t.trim_ascii();
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !t.is_empty() && !self.lists(t) {
                // A name we could not remember would be passed on.
                if self.n == MAX_CONN_TOKENS {
                    return Err(HeadError::TooManyConnectionOptions);
                }
                self.names[self.n] = t;
                self.n += 1;
            }
        }
        Ok(())
    }

    pub(super) fn lists(&self, name: &[u8]) -> bool {
        self.names[..self.n]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

pub(super) fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// Hop-by-hop headers that are never passed on as they are.
pub(super) fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| is(name, h))
}

pub(super) fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// httparse's verdict on a head: its length once complete.
pub(super) fn head_len(r: httparse::Result<usize>) -> Result<Option<usize>, HeadError> {
    match r {
        Ok(Status::Complete(n)) => Ok(Some(n)),
        Ok(Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(e) => Err(HeadError::Parse(e)),
    }
}

/// The headers that frame a message's body and its connection: the same
/// in requests and responses.
#[derive(Default)]
pub(super) struct Framing<'a> {
    pub(super) conn: ConnTokens<'a>,
    pub(super) length: Option<u64>,
    pub(super) te: bool,
    /// The last transfer coding is chunked.
    pub(super) chunked: bool,
    /// Codings listed, over all Transfer-Encoding lines.
    pub(super) codings: u32,
    /// Some coding is not chunked.
    pub(super) other_coding: bool,
}

impl<'a> Framing<'a> {
    /// Take in `h` if it is one of them.
    pub(super) fn take(&mut self, h: &Header<'a>) -> Result<bool, HeadError> {
        let n = h.name;
        if is(n, "connection") || is(n, "proxy-connection") {
            self.conn.add(h.value)?;
        } else if is(n, "content-length") {
            merge_length(&mut self.length, h.value)?;
        } else if is(n, "transfer-encoding") {
            self.te = true;
            // Several lines are one list (RFC 9110 5.3); empty elements
            // are allowed and ignored (RFC 9110 5.6.1).
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.is_empty() {
                    continue;
                }
                self.codings += 1;
                self.chunked = t.eq_ignore_ascii_case(b"chunked");
                if !self.chunked {
                    self.other_coding = true;
                }
            }
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Content-Length headers: all must agree.
pub(super) fn merge_length(acc: &mut Option<u64>, v: &[u8]) -> Result<(), HeadError> {
    let n = parse_length(v).ok_or(HeadError::BadLength)?;
    match acc {
        Some(prev) if *prev != n => Err(HeadError::BadLength),
        _ => {
            *acc = Some(n);
            Ok(())
        }
    }
}

/// A Host value: `uri-host [":" port]` (RFC 3986 reg-name, IPv4 or an
/// IP-literal in brackets), or empty.
pub(super) fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.iter().rposition(|&b| b == b':') {
        // A colon inside brackets is the IPv6 literal's own.
        Some(i) if !v[i..].contains(&b']') => (&v[..i], Some(&v[i + 1..])),
        _ => (v, None),
    };
    if !port.is_none_or(|p| p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    if let Some(lit) = host.strip_prefix(b"[") {
        let Some(lit) = lit.strip_suffix(b"]") else {
            return false;
        };
        return !lit.is_empty()
            && lit
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b":.-_~!$&'()*+,;=".contains(&b));
    }
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
}

/// Bytes a request-target may have (RFC 3986 URI characters, all visible
/// ASCII; httparse lets obs-text through too).
pub(super) fn valid_target(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

/// A header value usable as text (what `HeaderValue::to_str` accepts).
pub(super) fn visible(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (32..127).contains(&b))
}

/// Write `name: v1, v2, ..., ` for every non-empty value of `name`;
/// whether any was written.
pub(super) fn write_previous(out: &mut Vec<u8>, headers: &[Header<'_>], name: &str) -> bool {
    let mut any = false;
    for h in headers.iter().filter(|h| is(h.name, name)) {
        let v = h.value.trim_ascii();
        if v.is_empty() || !visible(v) {
            continue;
        }
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
        any = true;
    }
    any
}

pub(super) fn has_host(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|h| is(h.name, "host"))
}

/// The authority of an absolute-form target (`http://host:port/path`).
pub(super) fn authority(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let a = &rest[..end];
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    (!a.is_empty()).then_some(a)
}

/// The path of a target, without query (absolute-form reduced to it).
pub(super) fn origin_path(target: &str) -> &str {
    let p = match authority(target) {
        Some(_) => {
            let rest = target.split_once("://").map_or(target, |(_, r)| r);
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        None => target,
    };
    p.split(['?', '#']).next().unwrap_or(p)
}
