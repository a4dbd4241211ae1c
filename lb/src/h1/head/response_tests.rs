//! Response heads: framing for the client, refusals, local answers.

use super::request_tests::{req, values};
use super::*;
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
