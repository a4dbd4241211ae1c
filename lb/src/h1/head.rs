//! Request and response heads: parsed in place with httparse and rewritten
//! straight into the outgoing buffer (hop-by-hop headers dropped, framing
//! restated, forwarding headers added).

use std::fmt;
use std::io::Write;
use std::net::IpAddr;

use httparse::{EMPTY_HEADER, Header, Status};

use crate::config::HashKey;

/// Most header lines httparse reads in a head.
pub(super) const MAX_HEADERS: usize = 128;
/// Most header lines of a request (431 beyond) or response (502): fewer
/// than httparse reads, so that the head sent on, with the lines netd-lb
/// adds, is within a peer's limit (and our own) again.
const MAX_REQUEST_HEADERS: usize = MAX_HEADERS - 16;
const MAX_RESPONSE_HEADERS: usize = MAX_HEADERS - 4;
/// Most header names a message's Connection headers may list (each is
/// dropped when forwarding); more is refused rather than passed on.
const MAX_CONN_TOKENS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Why a head is refused. [`HeadError::status`] is the answer a client
/// gets for a request head; a member's bad response head is a 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Parse(httparse::Error),
    BadLength,
    /// Transfer-Encoding whose last coding is not chunked, or chunked
    /// twice (RFC 9112 6.3 item 4: 400 and close).
    BadTransferEncoding,
    /// A transfer coding other than chunked (RFC 9112 6.1: 501).
    UnknownCoding,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 6.1).
    LengthAndChunked,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 6.1).
    Http10TransferEncoding,
    /// An HTTP/1.1 request without Host (RFC 9112 3.2).
    MissingHost,
    /// More than one Host line (RFC 9112 3.2).
    DuplicateHost,
    /// A Host value that is not `uri-host [":" port]` (RFC 9112 3.2).
    BadHost,
    /// A request-target with bytes a URI cannot have.
    BadTarget,
    /// More header names listed in Connection than are remembered.
    TooManyConnectionOptions,
}

impl HeadError {
    /// The status a client gets for a request head refused so.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::UnknownCoding => 501,
            _ => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "too many header lines"),
            HeadError::Parse(e) => write!(f, "{e}"),
            HeadError::BadLength => write!(f, "bad Content-Length"),
            HeadError::BadTransferEncoding => {
                write!(f, "Transfer-Encoding does not end in chunked, once")
            }
            HeadError::UnknownCoding => write!(f, "transfer coding other than chunked"),
            HeadError::LengthAndChunked => {
                write!(f, "both Transfer-Encoding and Content-Length")
            }
            HeadError::Http10TransferEncoding => write!(f, "Transfer-Encoding in HTTP/1.0"),
            HeadError::MissingHost => write!(f, "HTTP/1.1 request without Host"),
            HeadError::DuplicateHost => write!(f, "more than one Host"),
            HeadError::BadHost => write!(f, "bad Host"),
            HeadError::BadTarget => write!(f, "bad request-target"),
            HeadError::TooManyConnectionOptions => write!(f, "too many Connection options"),
        }
    }
}

/// What the proxy needs to know of a request, once its head is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqHead {
    /// Bytes of the head in the input.
    pub len: usize,
    pub connect: bool,
    pub idempotent: bool,
    pub is_head: bool,
    pub http10: bool,
    /// The client connection may carry another request after this one.
    pub keep_alive: bool,
    pub body: Body,
    pub upgrade: bool,
    pub expect_continue: bool,
}

/// What the proxy needs to know of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespHead {
    pub len: usize,
    pub status: u16,
    pub body: Body,
    /// The body ends when the member closes.
    pub until_close: bool,
    /// Chunked from the member (and so to an HTTP/1.1 client).
    pub chunked: bool,
    /// The member connection can carry another request.
    pub upstream_keep: bool,
    /// The framing lets the client connection carry another request.
    pub client_keep: bool,
}

impl RespHead {
    /// 1xx but not 101: another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Connection header facts, and the header names it lists (hop-by-hop).
#[derive(Default)]
struct ConnTokens<'a> {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    names: [&'a [u8]; MAX_CONN_TOKENS],
    n: usize,
}

impl<'a> ConnTokens<'a> {
    fn add(&mut self, value: &'a [u8]) -> Result<(), HeadError> {
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

    fn lists(&self, name: &[u8]) -> bool {
        self.names[..self.n]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// Hop-by-hop headers that are never passed on as they are.
fn hop_by_hop(name: &str) -> bool {
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

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// httparse's verdict on a head: its length once complete.
fn head_len(r: httparse::Result<usize>) -> Result<Option<usize>, HeadError> {
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
struct Framing<'a> {
    conn: ConnTokens<'a>,
    length: Option<u64>,
    te: bool,
    /// The last transfer coding is chunked.
    chunked: bool,
    /// Codings listed, over all Transfer-Encoding lines.
    codings: u32,
    /// Some coding is not chunked.
    other_coding: bool,
}

impl<'a> Framing<'a> {
    /// Take in `h` if it is one of them.
    fn take(&mut self, h: &Header<'a>) -> Result<bool, HeadError> {
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
fn merge_length(acc: &mut Option<u64>, v: &[u8]) -> Result<(), HeadError> {
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
fn valid_host(v: &[u8]) -> bool {
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
fn valid_target(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

/// A header value usable as text (what `HeaderValue::to_str` accepts).
fn visible(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (32..127).contains(&b))
}

/// The client's address as text, formatted once per connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// As in X-Forwarded-For.
    text: String,
    /// `for=` value of a Forwarded element (RFC 7239): IPv6 quoted in
    /// brackets.
    node: String,
}

impl Client {
    pub fn new(ip: IpAddr) -> Client {
        Client {
            text: ip.to_string(),
            node: match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"[{v6}]\""),
            },
        }
    }
}

/// Decimal digits of `n`, without the formatting machinery.
pub fn write_num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Write `name: v1, v2, ..., ` for every non-empty value of `name`;
/// whether any was written.
fn write_previous(out: &mut Vec<u8>, headers: &[Header<'_>], name: &str) -> bool {
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

/// Parse a request head at the start of `buf`. None: incomplete. On
/// success `out` holds the head to send to a member and `key` the
/// consistent-hash key (when `hash` is given).
pub fn parse_request(
    buf: &[u8],
    client: Option<&Client>,
    hash: Option<&HashKey>,
    key: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Option<ReqHead>, HeadError> {
    let mut hs = [EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    let Some(len) = head_len(req.parse(buf))? else {
        return Ok(None);
    };
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("/");
    let http10 = req.version == Some(0);
    let headers: &[Header<'_>] = req.headers;
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(HeadError::TooLarge);
    }
    if !valid_target(path) {
        return Err(HeadError::BadTarget);
    }

    let mut framing = Framing::default();
    let mut host: Option<&[u8]> = None;
    let mut has_upgrade = false;
    let mut expect_continue = false;
    let mut has_xfp = false;
    let mut has_xfh = false;
    for h in headers {
        if framing.take(h)? {
            continue;
        }
        let n = h.name;
        if is(n, "host") {
            if host.is_some() {
                return Err(HeadError::DuplicateHost);
            }
            if !valid_host(h.value) {
                return Err(HeadError::BadHost);
            }
            host = Some(h.value);
        } else if is(n, "upgrade") {
            has_upgrade = true;
        } else if is(n, "expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if is(n, "x-forwarded-proto") {
            has_xfp = true;
        } else if is(n, "x-forwarded-host") {
            has_xfh = true;
        }
    }
    if host.is_none() && !http10 {
        return Err(HeadError::MissingHost);
    }
    let Framing {
        conn,
        length,
        te,
        chunked,
        codings,
        other_coding,
    } = framing;
    // Request framing must be beyond doubt: whatever a member could read
    // differently is refused (RFC 9112 6.1, 6.3), never passed on.
    if te {
        if http10 {
            return Err(HeadError::Http10TransferEncoding);
        }
        if !chunked || codings > 1 && !other_coding {
            return Err(HeadError::BadTransferEncoding);
        }
        if other_coding {
            return Err(HeadError::UnknownCoding);
        }
        if length.is_some() {
            return Err(HeadError::LengthAndChunked);
        }
    }
    let upgrade = conn.upgrade && has_upgrade;
    let body = if chunked {
        Body::Chunked
    } else {
        match length {
            Some(n) if n > 0 => Body::Length(n),
            _ => Body::None,
        }
    };
    // An absolute-form target's authority is the host, whatever Host says
    // (RFC 9112 3.2.2): the member gets it as Host.
    let target_authority = authority(path);
    if target_authority.is_some_and(|a| !valid_host(a.as_bytes())) {
        return Err(HeadError::BadHost);
    }
    let host = target_authority
        .map(str::as_bytes)
        .or(host)
        .filter(|h| !h.is_empty());

    key.clear();
    if let Some(k) = hash {
        let by_ip = |key: &mut Vec<u8>| {
            if let Some(c) = client {
                key.extend_from_slice(c.text.as_bytes());
            }
        };
        match k {
            HashKey::ClientIp => by_ip(key),
            HashKey::Path => key.extend_from_slice(origin_path(path).as_bytes()),
            HashKey::Header(name) => match headers.iter().find(|h| is(h.name, name)) {
                Some(h) => key.extend_from_slice(h.value),
                None => by_ip(key),
            },
        }
    }

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Host first: given by an absolute-form target, or missing from an
    // HTTP/1.0 request (a 1.1 request must have one, RFC 9112 3.2).
    if target_authority.is_some() || !has_host(headers) {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host.unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    for h in headers {
        let n = h.name;
        let drop = hop_by_hop(n)
            || is(n, "content-length")
            || (target_authority.is_some() && is(n, "host"))
            || (is(n, "upgrade") && !upgrade)
            || (client.is_some() && (is(n, "x-forwarded-for") || is(n, "forwarded")))
            // Listed in Connection: hop-by-hop, except Host, which a 1.1
            // request cannot do without.
            || (conn.lists(n.as_bytes()) && !is(n, "host"));
        if !drop {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    match body {
        Body::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {
            if let Some(n) = length {
                out.extend_from_slice(b"Content-Length: ");
                write_num(out, n);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    if let Some(c) = client {
        out.extend_from_slice(b"X-Forwarded-For: ");
        write_previous(out, headers, "x-forwarded-for");
        out.extend_from_slice(c.text.as_bytes());
        out.extend_from_slice(b"\r\nForwarded: ");
        write_previous(out, headers, "forwarded");
        out.extend_from_slice(b"for=");
        out.extend_from_slice(c.node.as_bytes());
        out.extend_from_slice(b";proto=http");
        if let Some(h) = host
            && h.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            out.extend_from_slice(b";host=\"");
            out.extend_from_slice(h);
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
    }
    if !has_xfp {
        out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
    }
    // A gateway says so in every request it forwards (RFC 9110 7.6.3).
    out.extend_from_slice(if http10 {
        b"Via: 1.0 netd-lb\r\n"
    } else {
        b"Via: 1.1 netd-lb\r\n"
    });
    if let Some(h) = host
        && !has_xfh
    {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");

    let keep_alive = if http10 {
        conn.keep_alive && !conn.close
    } else {
        !conn.close
    };
    Ok(Some(ReqHead {
        len,
        connect: method.eq_ignore_ascii_case("CONNECT"),
        idempotent: ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"].contains(&method),
        is_head: method == "HEAD",
        http10,
        keep_alive,
        body,
        upgrade,
        expect_continue,
    }))
}

fn has_host(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|h| is(h.name, "host"))
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn authority(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let a = &rest[..end];
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    (!a.is_empty()).then_some(a)
}

/// The path of a target, without query (absolute-form reduced to it).
fn origin_path(target: &str) -> &str {
    let p = match authority(target) {
        Some(_) => {
            let rest = target.split_once("://").map_or(target, |(_, r)| r);
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        None => target,
    };
    p.split(['?', '#']).next().unwrap_or(p)
}

/// Parse a response head at the start of `buf`. None: incomplete. On
/// success `out` holds the client's status line and headers, without the
/// framing and Connection headers and the final empty line
/// ([`finish_response_head`] adds those).
pub fn parse_response(
    buf: &[u8],
    req: &ReqHead,
    out: &mut Vec<u8>,
) -> Result<Option<RespHead>, HeadError> {
    let mut hs = [EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut hs);
    let Some(len) = head_len(resp.parse(buf))? else {
        return Ok(None);
    };
    let status = resp.code.unwrap_or(0);
    if status < 100 {
        // Not a status code (RFC 9110 15), and not three digits when
        // written back.
        return Err(HeadError::Parse(httparse::Error::Status));
    }
    let http10 = resp.version == Some(0);
    let headers: &[Header<'_>] = resp.headers;
    if headers.len() > MAX_RESPONSE_HEADERS {
        return Err(HeadError::TooLarge);
    }
    let mut framing = Framing::default();
    for h in headers {
        framing.take(h)?;
    }
    let Framing {
        conn,
        length,
        te,
        chunked,
        codings,
        other_coding,
    } = framing;
    if te && (http10 || other_coding || codings > 1) {
        // Faulty framing (RFC 9112 6.1), or a coding we would have to
        // pass on undecoded: the member's answer cannot be forwarded.
        return Err(if http10 {
            HeadError::Http10TransferEncoding
        } else if other_coding {
            HeadError::UnknownCoding
        } else {
            HeadError::BadTransferEncoding
        });
    }
    let no_body = req.is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let (body, until_close) = if no_body {
        (Body::None, false)
    } else if te {
        if chunked {
            (Body::Chunked, false)
        } else {
            (Body::None, true)
        }
    } else {
        match length {
            Some(0) => (Body::None, false),
            Some(n) => (Body::Length(n), false),
            None => (Body::None, true),
        }
    };
    // Both framings: a member that sends that is not trusted with
    // another request on the connection (RFC 9112 6.1).
    let upstream_keep = if http10 {
        conn.keep_alive && !conn.close
    } else {
        !conn.close
    } && !until_close
        && !(te && length.is_some());
    // An HTTP/1.0 client gets a chunked body decoded, ended by the close.
    let decoded = chunked && !no_body && req.http10;
    let client_keep = !until_close && !decoded;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    write_num(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        let n = h.name;
        let drop = hop_by_hop(n)
            || (is(n, "content-length") && te)
            || (is(n, "upgrade") && status != 101)
            || conn.lists(n.as_bytes());
        if !drop {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(Some(RespHead {
        len,
        status,
        body,
        until_close,
        chunked,
        upstream_keep,
        client_keep,
    }))
}

/// End the client's response head: framing and Connection headers.
pub fn finish_response_head(out: &mut Vec<u8>, req: &ReqHead, resp: &RespHead, keep: bool) {
    if resp.chunked && !req.http10 {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if resp.status == 101 {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if !keep {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if req.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A response of our own, without a body.
pub fn local_response(out: &mut Vec<u8>, status: u16, keep: bool) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n");
    if !keep {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str, ip: Option<&str>) -> (ReqHead, String) {
        let mut out = Vec::new();
        let mut key = Vec::new();
        let client = ip.map(|i| Client::new(i.parse().unwrap()));
        let h = parse_request(raw.as_bytes(), client.as_ref(), None, &mut key, &mut out)
            .unwrap()
            .expect("complete");
        (h, String::from_utf8(out).unwrap())
    }

    /// Header values of `name` in a rewritten head.
    fn values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
        head.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn forwarding_headers() {
        let (_, h) = req(
            "GET /x HTTP/1.1\r\nhost: web.example\r\n\r\n",
            Some("10.0.0.9"),
        );
        assert_eq!(values(&h, "x-forwarded-for"), ["10.0.0.9"]);
        assert_eq!(
            values(&h, "forwarded"),
            ["for=10.0.0.9;proto=http;host=\"web.example\""]
        );
        assert_eq!(values(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["web.example"]);

        let (_, h) = req(
            "GET / HTTP/1.1\r\nHost: \r\nx-forwarded-for: 1.2.3.4\r\nforwarded: for=1.2.3.4\r\n\r\n",
            Some("::1"),
        );
        assert_eq!(values(&h, "x-forwarded-for"), ["1.2.3.4, ::1"]);
        assert_eq!(
            values(&h, "forwarded"),
            ["for=1.2.3.4, for=\"[::1]\";proto=http"]
        );
        assert!(values(&h, "x-forwarded-host").is_empty());

        // Present ones are kept; several X-Forwarded-For lines are joined.
        let (_, h) = req(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\n\
             X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
            Some("10.0.0.1"),
        );
        assert_eq!(values(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["b"]);
        assert_eq!(
            values(&h, "x-forwarded-for"),
            ["1.1.1.1, 2.2.2.2, 10.0.0.1"]
        );
        // Absolute-form target: its authority is the host.
        let (_, h) = req(
            "GET http://h.example:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
            Some("10.0.0.1"),
        );
        assert_eq!(values(&h, "x-forwarded-host"), ["h.example:81"]);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_framing_restated() {
        let (r, h) = req(
            "POST /u HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\
             Proxy-Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n",
            None,
        );
        assert_eq!(r.body, Body::Chunked);
        assert!(!r.idempotent && !r.upgrade && r.keep_alive);
        assert!(h.starts_with("POST /u HTTP/1.1\r\n"), "{h}");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "proxy-connection",
        ] {
            assert!(values(&h, gone).is_empty(), "{gone} in {h}");
        }
        assert_eq!(values(&h, "transfer-encoding"), ["chunked"]);
        assert_eq!(values(&h, "x-kept"), ["yes"]);
        assert!(h.ends_with("\r\n\r\n"));

        // An upgrade keeps Upgrade and says so in Connection.
        let (r, h) = req(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            None,
        );
        assert!(r.upgrade);
        assert_eq!(values(&h, "upgrade"), ["websocket"]);
        assert_eq!(values(&h, "connection"), ["upgrade"]);
    }

    #[test]
    fn request_framing_and_persistence() {
        let (r, h) = req(
            "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            None,
        );
        assert_eq!(r.body, Body::Length(5));
        assert_eq!(
            r.len,
            "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n".len()
        );
        assert_eq!(values(&h, "content-length"), ["5"]);
        assert!(r.idempotent);
        // Content-Length: 0 is passed on, no body.
        let (r, h) = req(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            None,
        );
        assert_eq!(r.body, Body::None);
        assert_eq!(values(&h, "content-length"), ["0"]);
        // HTTP/1.0: closes unless asked to keep alive; sent on as 1.1.
        let (r, h) = req("GET / HTTP/1.0\r\n\r\n", None);
        assert!(r.http10 && !r.keep_alive);
        assert!(h.starts_with("GET / HTTP/1.1\r\n"));
        let (r, _) = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None);
        assert!(r.keep_alive);
        let (r, _) = req(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            None,
        );
        assert!(!r.keep_alive);
        let (r, _) = req(
            "HEAD / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            None,
        );
        assert!(r.is_head && r.expect_continue);
    }

    #[test]
    fn bad_and_partial_requests() {
        let parse = |raw: &[u8]| parse_request(raw, None, None, &mut Vec::new(), &mut Vec::new());
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Err(HeadError::Parse(_))
        ));
        assert!(matches!(
            parse(b"\x01GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Parse(_))
        ));
        for cl in ["abc", "-1", "1, 2", "99999999999999999999", ""] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(parse(raw.as_bytes()), Err(HeadError::BadLength), "{cl}");
        }
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HeadError::BadLength)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(HeadError::BadTransferEncoding)
        );
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_REQUEST_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(parse(many.as_bytes()), Err(HeadError::TooLarge));
    }

    /// Every request-head MUST of RFC 9112 (and RFC 9110's field syntax)
    /// that a parser decides: the request is refused with this status.
    #[test]
    fn rfc9112_refusals() {
        let parse = |raw: &[u8]| parse_request(raw, None, None, &mut Vec::new(), &mut Vec::new());
        let cases: &[(&[u8], u16, &str)] = &[
            // 3.2: Host
            (b"GET / HTTP/1.1\r\n\r\n", 400, "no Host"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "two Host lines"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "two Host lines"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "space in Host"),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "slash in Host"),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "userinfo in Host"),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "bad port"),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "open IP literal"),
            (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, "list in Host"),
            (b"GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad authority"),
            // 3: request line
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "two spaces"),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "space after version"),
            (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400, "non-ASCII target"),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "version"),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"),
            (b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "NUL in method"),
            // 5.1, 5.2, 2.2: field syntax
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "space before colon"),
            (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "tab before colon"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", 400, "obs-fold"),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "space before the first field"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "bare CR in value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, "NUL in value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, "DEL in value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n", 400, "NUL in name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400, "empty name"),
            // 6: framing
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "TE and CL",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
                "CL and TE",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
                "two lengths",
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400, "CL list"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, "CL sign"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\n", 400, "CL hex"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400, "CL space"),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
                "chunked not last",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                400,
                "xchunked",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
                400,
                "chunked with a parameter",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "chunked twice",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                400,
                "chunked twice in a list",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
                400,
                "identity after chunked",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
                "other coding",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "HTTP/1.0 with TE",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
                "HTTP/1.0 with TE and CL",
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400, "empty TE"),
        ];
        for (raw, status, what) in cases {
            match parse(raw) {
                Err(e) => assert_eq!(e.status(), *status, "{what}: {e}"),
                other => panic!("{what}: {other:?} for {:?}", String::from_utf8_lossy(raw)),
            }
        }
        // More names in Connection than are remembered: refused, never
        // passed on.
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\nConnection: ");
        for i in 0..=MAX_CONN_TOKENS {
            many.push_str(&format!("x-{i}, "));
        }
        many.push_str("\r\n\r\n");
        assert_eq!(
            parse(many.as_bytes()),
            Err(HeadError::TooManyConnectionOptions)
        );
        // Accepted: HTTP/1.0 without Host; an empty Host; IP literals and
        // ports; obs-text in a value; LF-only line ends (restated as CRLF);
        // leading empty lines; TE with empty list elements.
        for ok in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [fd00::1]:8080\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n",
        ] {
            let r = parse(ok);
            assert!(
                matches!(r, Ok(Some(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    #[test]
    fn forwarded_heads_carry_one_host_and_via() {
        // HTTP/1.0 without Host: sent on as 1.1, so with an (empty) Host.
        let (_, h) = req("GET / HTTP/1.0\r\n\r\n", None);
        assert_eq!(values(&h, "host"), [""]);
        assert_eq!(values(&h, "via"), ["1.0 netd-lb"]);
        // Absolute form: the target's authority is the Host.
        let (_, h) = req(
            "GET http://t.example/p HTTP/1.1\r\nHost: other\r\n\r\n",
            None,
        );
        assert_eq!(values(&h, "host"), ["t.example"]);
        assert_eq!(values(&h, "via"), ["1.1 netd-lb"]);
        // Listing Host or Content-Length in Connection removes neither:
        // the request would be unframed or invalid without them.
        let (_, h) = req(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: host, content-length\r\nContent-Length: 0\r\n\r\n",
            None,
        );
        assert_eq!(values(&h, "host"), ["a"]);
        assert_eq!(values(&h, "content-length"), ["0"]);
        // Fields listed in Connection, and every hop-by-hop one, are gone.
        let (_, h) = req(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-A, x-b\r\nConnection: X-C\r\n\
             X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n\r\n",
            None,
        );
        for gone in ["x-a", "x-b", "x-c", "connection"] {
            assert!(values(&h, gone).is_empty(), "{gone} in {h}");
        }
        assert_eq!(values(&h, "x-d"), ["4"]);
        // Every forwarded head parses again, to the same framing.
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "PUT /u HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
        ] {
            let (r, h) = req(raw, Some("10.0.0.1"));
            let (r2, h2) = req(&h, Some("10.0.0.2"));
            assert_eq!((r2.len, r2.body), (h.len(), r.body), "{raw:?} -> {h:?}");
            assert!(h2.len() > h.len());
        }
    }

    #[test]
    fn response_framing_refusals() {
        let (get, _) = req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", None);
        let parse = |raw: &[u8]| parse_response(raw, &get, &mut Vec::new());
        for (raw, what) in [
            (
                &b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                "1.0 with TE",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "gzip",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                "twice",
            ),
            (b"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", "obs-fold"),
            (b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", "space before colon"),
            (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "NUL"),
            (b"HTTP/1.1 099 Low\r\n\r\n", "status under 100"),
        ] {
            assert!(parse(raw).is_err(), "{what}");
        }
        // Both framings: chunked is read, Content-Length dropped, and the
        // member connection not reused.
        let mut out = Vec::new();
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, Body::Chunked);
        assert!(!r.upstream_keep);
        assert!(!String::from_utf8_lossy(&out).contains("Content-Length"));
    }

    #[test]
    fn hash_keys() {
        let key = |raw: &str, k: HashKey| {
            let mut key = Vec::new();
            parse_request(
                raw.as_bytes(),
                Some(&Client::new("10.1.2.3".parse().unwrap())),
                Some(&k),
                &mut key,
                &mut Vec::new(),
            )
            .unwrap()
            .unwrap();
            String::from_utf8(key).unwrap()
        };
        let raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: a\r\nX-User: u7\r\n\r\n";
        assert_eq!(key(raw, HashKey::ClientIp), "10.1.2.3");
        assert_eq!(key(raw, HashKey::Path), "/a/b");
        assert_eq!(key(raw, HashKey::Header("x-user".into())), "u7");
        assert_eq!(key(raw, HashKey::Header("x-none".into())), "10.1.2.3");
        assert_eq!(
            key(
                "GET http://h/p/q?z HTTP/1.1\r\nHost: h\r\n\r\n",
                HashKey::Path
            ),
            "/p/q"
        );
    }

    fn resp(raw: &str, r: &ReqHead) -> (RespHead, String) {
        let mut out = Vec::new();
        let h = parse_response(raw.as_bytes(), r, &mut out)
            .unwrap()
            .unwrap();
        let keep = h.client_keep && r.keep_alive;
        finish_response_head(&mut out, r, &h, keep);
        (h, String::from_utf8(out).unwrap())
    }

    #[test]
    fn responses() {
        let (get, _) = req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", None);
        let (r, h) = resp(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nabc",
            &get,
        );
        assert_eq!(
            (r.status, r.body, r.upstream_keep, r.client_keep),
            (200, Body::Length(3), true, true)
        );
        assert_eq!(h, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        // chunked to a 1.1 client stays chunked
        let (r, h) = resp(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get,
        );
        assert_eq!(r.body, Body::Chunked);
        assert_eq!(values(&h, "transfer-encoding"), ["chunked"]);
        // ...and is decoded for a 1.0 client, which is then closed
        let (get10, _) = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None);
        let (r, h) = resp(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get10,
        );
        assert!(!r.client_keep);
        assert!(values(&h, "transfer-encoding").is_empty());
        assert_eq!(values(&h, "connection"), ["close"]);
        let (_, h) = resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &get10);
        assert_eq!(values(&h, "connection"), ["keep-alive"]);
        // no framing: until the member closes, and so does the client
        let (r, h) = resp("HTTP/1.0 200 OK\r\n\r\n", &get);
        assert!(r.until_close && !r.upstream_keep && !r.client_keep);
        assert_eq!(values(&h, "connection"), ["close"]);
        // HEAD, 204 and 304 have no body whatever they say
        let (head, _) = req("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", None);
        let (r, h) = resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &head);
        assert_eq!(r.body, Body::None);
        assert_eq!(values(&h, "content-length"), ["99"]);
        for s in ["204 No Content", "304 Not Modified"] {
            let (r, _) = resp(
                &format!("HTTP/1.1 {s}\r\nTransfer-Encoding: chunked\r\n\r\n"),
                &get,
            );
            assert_eq!((r.body, r.until_close), (Body::None, false), "{s}");
        }
        // member says close
        let (r, _) = resp(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            &get,
        );
        assert!(!r.upstream_keep && r.client_keep);
        // 101 keeps the upgrade
        let (r, h) = resp(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            &get,
        );
        assert_eq!(r.status, 101);
        assert_eq!(values(&h, "upgrade"), ["websocket"]);
        assert_eq!(values(&h, "connection"), ["upgrade"]);
        // conflicting lengths are refused
        let mut out = Vec::new();
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &get,
                &mut out
            ),
            Err(HeadError::BadLength)
        );
    }

    #[test]
    fn numbers() {
        for n in [0, 7, 10, 200, 1_048_576, u64::MAX] {
            let mut out = Vec::new();
            write_num(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn local_responses() {
        let mut out = Vec::new();
        local_response(&mut out, 502, false);
        assert_eq!(
            out,
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        local_response(&mut out, 503, true);
        assert_eq!(
            out,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
