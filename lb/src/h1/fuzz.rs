//! Entry points for the fuzz targets in `fuzz/` (`lb_request_head`,
//! `lb_response_head`, `lb_chunked`): the real parsers on arbitrary bytes,
//! with the invariants the proxy relies on checked by assertions.

use std::net::IpAddr;

use super::chunked::{Chunked, MAX_CHUNK};
use super::head::{
    Body, Client, HeadError, MAX_HEADERS, finish_response_head, parse_request, parse_response,
};
use crate::config::HashKey;

/// A request head: when it parses, the head sent to a member parses again,
/// to its full length and the same framing, and nothing panics.
pub fn request_head(data: &[u8]) {
    let client = Client::new(IpAddr::from([10, 0, 0, 1]));
    let (mut key, mut out) = (Vec::new(), Vec::new());
    let hash = HashKey::Path;
    let Ok(Some(h)) = parse_request(data, Some(&client), Some(&hash), &mut key, &mut out) else {
        return;
    };
    assert!(h.len <= data.len());
    let mut again = Vec::new();
    let h2 = match parse_request(&out, None, None, &mut key, &mut again) {
        Ok(Some(h2)) => h2,
        // The lines netd-lb adds took it over its own request limit: it
        // must still be within what is read of any head.
        Err(HeadError::TooLarge) => {
            let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let r = httparse::Request::new(&mut hs).parse(&out);
            assert_eq!(r, Ok(httparse::Status::Complete(out.len())));
            return;
        }
        other => panic!(
            "forwarded head refused: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(h2.len, out.len(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(
        (h2.body, h2.upgrade, h2.connect, h2.is_head, h2.http10),
        (h.body, h.upgrade, h.connect, h.is_head, false)
    );
}

/// A response head (to a GET, a HEAD or an HTTP/1.0 GET, by the first
/// byte): when it parses, the head sent to the client parses again to the
/// same status and the framing the client is told.
pub fn response_head(data: &[u8]) {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let raw: &[u8] = match sel % 3 {
        0 => b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        1 => b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        _ => b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    let Ok(Some(req)) = parse_request(raw, None, None, &mut Vec::new(), &mut Vec::new()) else {
        unreachable!("fixed requests parse")
    };
    let mut out = Vec::new();
    let Ok(Some(r)) = parse_response(data, &req, &mut out) else {
        return;
    };
    assert!(r.len <= data.len());
    let keep = r.client_keep && req.keep_alive;
    finish_response_head(&mut out, &req, &r, keep);
    let r2 = match parse_response(&out, &req, &mut Vec::new()) {
        Ok(Some(r2)) => r2,
        // As for requests: over netd-lb's limit, within httparse's.
        Err(HeadError::TooLarge) => {
            let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let r = httparse::Response::new(&mut hs).parse(&out);
            assert_eq!(r, Ok(httparse::Status::Complete(out.len())));
            return;
        }
        other => panic!(
            "forwarded response head refused: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(r2.len, out.len());
    assert_eq!(r2.status, r.status);
    if r.chunked && req.http10 && r.body == Body::Chunked {
        // Decoded for the 1.0 client: ended by the close.
        assert!(r2.until_close && r2.body == Body::None);
    } else {
        assert_eq!((r2.body, r2.until_close), (r.body, r.until_close));
    }
}

/// A chunked body, fed in three pieces cut where the first two bytes say,
/// passed through and decoded, against [`reference`]: the same verdict,
/// the same bytes taken, the framing passed on exactly as taken, and the
/// decoded data as long as the chunk sizes add up to.
pub fn chunked(data: &[u8]) {
    let (cuts, data) = match data {
        [a, b, rest @ ..] => {
            let n = rest.len();
            let (x, y) = (*a as usize * n / 255, *b as usize * n / 255);
            ([x.min(y), x.max(y)], rest)
        }
        _ => return,
    };
    let expect = reference(data);
    for decode in [false, true] {
        let mut c = Chunked::dechunking(decode);
        let mut out = Vec::new();
        let mut taken = 0;
        let mut done = false;
        let mut failed = false;
        let mut last = 0;
        for cut in [cuts[0], cuts[1], data.len()] {
            match c.feed(&data[last..cut], &mut out) {
                Ok((n, d)) => {
                    taken += n;
                    if d {
                        done = true;
                        break;
                    }
                    assert_eq!(n, cut - last, "took less without finishing");
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            last = cut;
        }
        match &expect {
            Verdict::Bad => assert!(failed, "accepted what the reference refuses"),
            Verdict::Partial => assert!(!done, "finished what the reference does not"),
            Verdict::Complete { len, data: d, sum } => {
                assert!(done && !failed, "did not finish: failed {failed}");
                assert_eq!(taken, *len);
                assert_eq!(d.len() as u64, *sum);
                if decode {
                    assert_eq!(&out, d);
                } else {
                    assert_eq!(&out[..], &data[..taken]);
                }
            }
        }
        if !failed && !done && !decode {
            assert_eq!(out, data, "passed on other than what came");
        }
    }
}

#[derive(Debug)]
pub enum Verdict {
    Bad,
    Partial,
    Complete { len: usize, data: Vec<u8>, sum: u64 },
}

/// RFC 9112 7.1 read line by line, the slow and obvious way: the
/// reference [`chunked`] holds the streaming decoder to.
pub fn reference(buf: &[u8]) -> Verdict {
    fn tchar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
    }
    fn field(b: u8) -> bool {
        b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
    }
    fn skip_ws(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        i
    }
    fn skip_token(s: &[u8], mut i: usize) -> Option<usize> {
        let start = i;
        while i < s.len() && tchar(s[i]) {
            i += 1;
        }
        (i > start).then_some(i)
    }
    /// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`
    fn ext_ok(s: &[u8]) -> bool {
        let mut i = 0;
        while i < s.len() {
            i = skip_ws(s, i);
            if s.get(i) != Some(&b';') {
                return false;
            }
            i = skip_ws(s, i + 1);
            let Some(j) = skip_token(s, i) else {
                return false;
            };
            i = j;
            let k = skip_ws(s, i);
            if s.get(k) == Some(&b'=') {
                i = skip_ws(s, k + 1);
                if s.get(i) == Some(&b'"') {
                    i += 1;
                    loop {
                        match s.get(i) {
                            Some(b'"') => break,
                            Some(b'\\') if s.get(i + 1).is_some_and(|&b| field(b)) => i += 2,
                            Some(&b) if b != b'\\' && field(b) => i += 1,
                            _ => return false,
                        }
                    }
                    i += 1;
                } else {
                    let Some(j) = skip_token(s, i) else {
                        return false;
                    };
                    i = j;
                }
            }
        }
        true
    }
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = &buf[at..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], at + end + 2))
    }

    let mut pos = 0;
    let mut data = Vec::new();
    let mut sum = 0u64;
    loop {
        let Some((l, next)) = line(buf, pos) else {
            return Verdict::Partial;
        };
        let digits = l.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let (size, ext) = l.split_at(digits);
        if digits == 0 || digits > 16 || ext.len() > 4096 || !ext_ok(ext) {
            return Verdict::Bad;
        }
        let size = size.iter().fold(0u64, |n, &d| {
            n * 16 + (d as char).to_digit(16).unwrap_or(0) as u64
        });
        if size > MAX_CHUNK {
            return Verdict::Bad;
        }
        pos = next;
        if size == 0 {
            break;
        }
        let size = size as usize;
        if buf.len() < pos + size + 2 {
            let have = &buf[(pos + size).min(buf.len())..];
            return if b"\r\n".starts_with(have) {
                Verdict::Partial
            } else {
                Verdict::Bad
            };
        }
        data.extend_from_slice(&buf[pos..pos + size]);
        sum += size as u64;
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Verdict::Bad;
        }
        pos += size + 2;
    }
    let mut trailer = 0;
    loop {
        let Some((l, next)) = line(buf, pos) else {
            return Verdict::Partial;
        };
        pos = next;
        if l.is_empty() {
            return Verdict::Complete {
                len: pos,
                data,
                sum,
            };
        }
        trailer += l.len();
        let name = l.iter().take_while(|&&b| tchar(b)).count();
        if name == 0
            || l.get(name) != Some(&b':')
            || !l[name + 1..].iter().all(|&b| field(b))
            || trailer > 64 * 1024
        {
            return Verdict::Bad;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_checks_hold_on_known_inputs() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET http://u@h:1/p HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            request_head(raw);
        }
        // Found by the fuzzer: 112 lines, and netd-lb's own on top.
        let mut many = String::from("POST /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n");
        for i in 0..109 {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("Upgrade: ws\r\n\r\n");
        request_head(many.as_bytes());
        // Found by the fuzzer: 124 lines, and Connection: close on top.
        let mut many = String::from("\x00HTTP/1.0 200 OK\r\n");
        for i in 0..124 {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        response_head(many.as_bytes());
        for raw in [
            &b"\x00HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"[..],
            b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\x01HTTP/1.1 204 No\r\n\r\n",
            b"\x00HTTP/1.0 200 OK\r\n\r\n",
            b"\x00HTTP/1.1 101 S\r\nUpgrade: ws\r\n\r\n",
        ] {
            response_head(raw);
        }
        for raw in [
            &b"\x00\x805;a=\"b\"\r\nhello\r\n0\r\nT: 1\r\n\r\nrest"[..],
            b"\x10\x205\r\nhel",
            b"\x10\x205\nhello",
            b"\xff\xff0\r\n\r\n",
        ] {
            chunked(raw);
        }
    }
}
