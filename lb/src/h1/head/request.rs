//! Request heads: checked, then rewritten for the member (hop-by-hop
//! headers dropped, framing restated, forwarding headers added).

use httparse::{EMPTY_HEADER, Header};

use super::fields::{
    Framing, authority, has_host, head_len, hop_by_hop, is, origin_path, valid_host, valid_target,
    write_previous,
};
use super::{Body, Client, HeadError, MAX_HEADERS, MAX_REQUEST_HEADERS, ReqHead, write_num};
use crate::config::HashKey;

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
