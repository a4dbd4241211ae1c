//! Request heads: what is forwarded, what is refused.

use super::*;
use crate::config::HashKey;
pub(super) fn req(raw: &str, ip: Option<&str>) -> (ReqHead, String) {
    let mut out = Vec::new();
    let mut key = Vec::new();
    let client = ip.map(|i| Client::new(i.parse().unwrap()));
    let h = parse_request(raw.as_bytes(), client.as_ref(), None, &mut key, &mut out)
        .unwrap()
        .expect("complete");
    (h, String::from_utf8(out).unwrap())
}

/// Header values of `name` in a rewritten head.
pub(super) fn values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
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

#[test]
fn numbers() {
    for n in [0, 7, 10, 200, 1_048_576, u64::MAX] {
        let mut out = Vec::new();
        write_num(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}
