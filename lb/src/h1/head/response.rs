//! Response heads: a member's, checked and rewritten for the client, and
//! netd-lb's own bodiless answers.

use std::io::Write;

use httparse::{EMPTY_HEADER, Header};

use super::fields::{Framing, head_len, hop_by_hop, is};
use super::{Body, HeadError, MAX_HEADERS, MAX_RESPONSE_HEADERS, ReqHead, RespHead, write_num};

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
