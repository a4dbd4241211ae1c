//! Request smuggling: a table of raw requests with ambiguous or broken
//! framing (CL.TE, TE.CL, TE.TE obfuscations, bad chunk sizes, bare LF and
//! CR, NUL in extensions, ...) sent to a real netd-lb in a test namespace,
//! in front of a real backend (support/recorder.py) that logs every request
//! it reads. netd-lb must either refuse a case (4xx/501, closing) or forward
//! exactly one well-framed request, and the backend must never read a
//! second, smuggled one: after every case a probe request on a new client
//! connection (likely on the same pooled member connection) must come back
//! as itself.
//!
//! `lbs_smuggling_compared_with_nginx_and_haproxy` runs the same table
//! through nginx and haproxy too and prints a markdown table (docs/lb.md).
//! It needs the Debian packages nginx(-light) and haproxy, so it is opt-in:
//! `cargo test -p netd-lb --test smuggle -- --ignored --nocapture`.
//! Needs root (namespaces) and python3.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

const LISTEN: &str = "127.0.0.1:8080";
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// What netd-lb must do with a case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Refuse(u16),
    Forward,
}
use Want::*;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    want: Want,
}

fn case(name: &'static str, bytes: impl AsRef<[u8]>, want: Want) -> Case {
    Case {
        name,
        bytes: bytes.as_ref().to_vec(),
        want,
    }
}

/// `head` (the request line and fields, without the empty line) and `body`.
fn msg(head: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{head}\r\n\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn cases() -> Vec<Case> {
    let s = SMUGGLED;
    let n = s.len();
    // A chunked body that ends before the smuggled request...
    let zero_then = format!("0\r\n\r\n{s}");
    let zl = zero_then.len();
    // ...and one that carries it as chunk data.
    let carried = format!("{n:x}\r\n{s}\r\n0\r\n\r\n");
    let post = "POST /case HTTP/1.1\r\nHost: a";
    vec![
        case(
            "baseline: Content-Length",
            msg(&format!("{post}\r\nContent-Length: 5"), b"hello"),
            Forward,
        ),
        case(
            "baseline: chunked",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            Forward,
        ),
        case("no Host", msg("GET /case HTTP/1.1", b""), Refuse(400)),
        case(
            "two Host lines",
            msg("GET /case HTTP/1.1\r\nHost: a\r\nHost: b", b""),
            Refuse(400),
        ),
        case(
            "CL.TE: CL covers a smuggled request after 0-chunk",
            msg(
                &format!("{post}\r\nContent-Length: {zl}\r\nTransfer-Encoding: chunked"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.CL: chunk carries a request, CL: 4",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4"),
                carried.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: `Transfer-Encoding: xchunked` + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding: xchunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: `Transfer-Encoding : chunked` + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding : chunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: `Transfer-Encoding:\\tchunked` + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding:\tchunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: `Transfer-Encoding:\\x0bchunked` (VT) + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: TE obs-folded + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: duplicated `chunked` lines",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: chunked + `Transfer-Encoding: identity` + CL",
            msg(
                &format!(
                    "{post}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {zl}"
                ),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE.TE: `chunked, identity` + CL",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "TE: gzip, chunked (unknown coding)",
            msg(
                &format!("{post}\r\nTransfer-Encoding: gzip, chunked"),
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(501),
        ),
        case(
            "TE: CHUNKED (case-insensitive, valid)",
            msg(
                &format!("{post}\r\nTransfer-Encoding: CHUNKED"),
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            Forward,
        ),
        case(
            "`Transfer_Encoding: chunked` + CL (another field)",
            msg(
                &format!("{post}\r\nTransfer_Encoding: chunked\r\nContent-Length: {zl}"),
                zero_then.as_bytes(),
            ),
            Forward,
        ),
        case(
            "space before the first field line",
            msg(
                &format!(
                    "POST /case HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\nContent-Length: {zl}"
                ),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "HTTP/1.0 with TE + CL",
            msg(
                &format!(
                    "POST /case HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: {zl}"
                ),
                zero_then.as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "two different Content-Length",
            msg(
                &format!("{post}\r\nContent-Length: 5\r\nContent-Length: {}", n + 5),
                format!("hello{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "Content-Length: +5",
            msg(&format!("{post}\r\nContent-Length: +5"), b"hello"),
            Refuse(400),
        ),
        case(
            "`Content-Length : 5` (space before colon)",
            msg(&format!("{post}\r\nContent-Length : 5"), b"hello"),
            Refuse(400),
        ),
        case(
            "chunk size `+5`",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"+5\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "chunk size `0x5`",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"0x5\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "chunk size ` 5` (leading space)",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b" 5\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "chunk size `5 ` (trailing space)",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"5 \r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "chunk size with 19 leading zeros",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"00000000000000000005\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "chunk size 2^64-1",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("ffffffffffffffff\r\nhello\r\n0\r\n\r\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "chunk size 2^32+5 (5 in 32 bits)",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("100000005\r\nhello\r\n0\r\n\r\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "LF-only line ends in the head",
            b"POST /case HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello",
            Forward,
        ),
        case(
            "LF-only line ends in chunks",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("5\nhello\n0\n\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "bare CR after chunk data",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("5\r\nhello\r0\r\n\r\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "NUL in a chunk extension",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            ),
            Refuse(400),
        ),
        case(
            "LF inside a chunk extension",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("5;a\nb\r\nhello\r\n0\r\n\r\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "valid chunk extensions and trailer",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"5;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            ),
            Forward,
        ),
        case(
            "obs-fold in a trailer",
            msg(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                format!("5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n{s}").as_bytes(),
            ),
            Refuse(400),
        ),
        case(
            "bare CR in a field value",
            msg(&format!("{post}\r\nX: a\rb\r\nContent-Length: 5"), b"hello"),
            Refuse(400),
        ),
        case(
            "NUL in a field value",
            msg(
                &format!("{post}\r\nX: a\x00b\r\nContent-Length: 5"),
                b"hello",
            ),
            Refuse(400),
        ),
        case(
            "two spaces in the request line",
            msg("GET  /case HTTP/1.1\r\nHost: a", b""),
            Refuse(400),
        ),
        case(
            "`Connection: Content-Length` (hop-by-hop framing)",
            msg(
                &format!("{post}\r\nConnection: Content-Length\r\nContent-Length: {n}"),
                s.as_bytes(),
            ),
            Forward,
        ),
        case(
            "GET with a Content-Length body that is a request",
            msg(
                &format!("GET /case HTTP/1.1\r\nHost: a\r\nContent-Length: {n}"),
                s.as_bytes(),
            ),
            Forward,
        ),
        case(
            "request line over 64 KiB",
            msg(
                &format!("GET /case?{} HTTP/1.1\r\nHost: a", "q".repeat(70_000)),
                b"",
            ),
            Refuse(414),
        ),
        case(
            "head over 64 KiB",
            msg(
                &format!("GET /case HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(70_000)),
                b"",
            ),
            Refuse(431),
        ),
        case(
            "absolute-form target, other Host",
            msg("GET http://t.example/case HTTP/1.1\r\nHost: other", b""),
            Forward,
        ),
    ]
}

/// What a proxy did with one case.
#[derive(Debug)]
struct Seen {
    /// Statuses of the responses that came back, in order.
    statuses: Vec<u16>,
    closed: bool,
    /// Targets the backend read (or `ERROR ...`) for the case...
    backend: Vec<String>,
    /// ...and the probe request after it: its status and body.
    probe: Result<(u16, String), String>,
    probe_backend: Vec<String>,
}

impl Seen {
    /// The backend read a request the client got no answer for, or the
    /// next client's request was answered with another's response. (Bytes
    /// after a body that the proxy itself read as a second request, and
    /// answered, are pipelining, not smuggling.)
    fn smuggled(&self) -> bool {
        self.backend.len() > self.statuses.len()
            || self.probe_backend != ["/probe"]
            || self.probe.as_ref().is_ok_and(|(_, b)| b != "seen:/probe\n")
    }

    /// A table cell.
    fn cell(&self) -> String {
        let answer = match &self.statuses[..] {
            [] if self.closed => "closed, no answer".to_string(),
            [] => "no answer (waits)".to_string(),
            s => s.iter().map(u16::to_string).collect::<Vec<_>>().join(" + "),
        };
        let mut c = if self.backend.is_empty() {
            answer
        } else {
            format!("{answer}; backend read {}", self.backend.join(", "))
        };
        if self.statuses.len() > 1 {
            c.push_str(" (read the rest as a 2nd request)");
        }
        if self.smuggled() {
            c.push_str(" **SMUGGLED**");
        }
        c
    }
}

/// Statuses of the response heads in `data` (each head starts a line).
fn statuses(data: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    for (i, w) in data.windows(12).enumerate() {
        if (i == 0 || data[i - 1] == b'\n')
            && w.starts_with(b"HTTP/1.")
            && w[8] == b' '
            && let Some(s) = std::str::from_utf8(&w[9..12])
                .ok()
                .and_then(|s| s.parse().ok())
        {
            out.push(s);
        }
    }
    out
}

/// Send `bytes` on a new connection; what comes back until the peer
/// closes, or 300 ms pass quietly after a response (3 s before one).
fn exchange(addr: &str, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect to the proxy");
    s.write_all(bytes).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let start = Instant::now();
    loop {
        let quiet = if got.is_empty() {
            Duration::from_secs(3)
        } else {
            Duration::from_millis(300)
        };
        s.set_read_timeout(Some(quiet)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
        if start.elapsed() > Duration::from_secs(10) {
            return (got, false);
        }
    }
}

/// Lines the backend logged since `from` (byte offset); the new offset.
fn backend_since(log: &Path, from: usize) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines = text[from.min(text.len())..]
        .lines()
        .map(|l| {
            // "<conn> <method> <target> <len>" -> target; "<conn> ERROR ..." whole.
            let mut w = l.split(' ');
            let _conn = w.next();
            match w.next() {
                Some("ERROR") => l.to_string(),
                _ => w.next().unwrap_or("").to_string(),
            }
        })
        .collect();
    (lines, text.len())
}

fn run_case(ns: &str, addr: &str, log: &Path, c: &Case) -> Seen {
    let (addr, bytes) = (addr.to_string(), c.bytes.clone());
    let mark = backend_since(log, 0).1;
    let (got, closed) = in_ns(ns, {
        let addr = addr.clone();
        move || exchange(&addr, &bytes)
    });
    std::thread::sleep(Duration::from_millis(100));
    let (backend, mark) = backend_since(log, mark);
    let probe = in_ns(ns, move || {
        http_get(&addr, "/probe", &[])
            .map(|r| (r.status, r.body))
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(100));
    let (probe_backend, _) = backend_since(log, mark);
    Seen {
        statuses: statuses(&got),
        closed,
        backend,
        probe,
        probe_backend,
    }
}

/// The world: one sandbox with the recorder as the only `web` member, and
/// netd-lb in front of it.
fn world(tag: &str, octet: u8) -> (World, PathBuf, String) {
    let w = World::new(tag, octet);
    let ip = w.sandbox("rec", &["web"]);
    let log = w.record("rec", 8000);
    (w, log, ip)
}

fn start_lb(w: &World) -> Lb {
    let lb = Lb::start(
        w,
        LISTEN,
        &[
            "--listen",
            LISTEN,
            "--network",
            "net",
            "--alias",
            "web",
            "--port",
            "8000",
        ],
    );
    let ok = (0..100).any(|_| {
        if lb.get("/ready").is_ok_and(|r| r.status == 200) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(
        ok,
        "netd-lb does not reach the recorder:\n{}",
        lb.log_text()
    );
    lb
}

/// netd-lb's verdict on every case, asserted; the cells for the table.
fn check_netd_lb(w: &World, lb: &Lb, log: &Path) -> Vec<String> {
    let mut cells = Vec::new();
    let mut wrong = Vec::new();
    for c in cases() {
        let t = Instant::now();
        let seen = run_case(w.host_ns(), &lb.listen, log, &c);
        eprintln!("{}: {:?} in {:?}", c.name, seen.statuses, t.elapsed());
        let ok = match c.want {
            Refuse(s) => seen.statuses == [s] && seen.closed && seen.backend.is_empty(),
            Forward => {
                seen.statuses == [200]
                    && seen.backend.len() == 1
                    && seen.backend[0].ends_with("/case")
            }
        } && seen
            .probe
            .as_ref()
            .is_ok_and(|(s, b)| *s == 200 && b == "seen:/probe\n")
            && seen.probe_backend == ["/probe"]
            && !seen.smuggled()
            && !seen.backend.iter().any(|t| t.contains("smuggled"));
        if !ok {
            wrong.push(format!("{}: wanted {:?}, got {seen:?}", c.name, c.want));
        }
        cells.push(seen.cell());
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}\n--- backend log ---\n{}",
        wrong.len(),
        cases().len(),
        wrong.join("\n"),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    cells
}

#[test]
fn lbs_smuggling_suite_gets_one_request_or_a_refusal() {
    let (w, log, _) = world("lbs", 61);
    let lb = start_lb(&w);
    check_netd_lb(&w, &lb, &log);
}

/// nginx and haproxy in the host namespace in front of the same recorder,
/// each keeping member connections alive (so a smuggled request would land
/// before the next client's).
#[test]
#[ignore = "needs nginx and haproxy (Debian packages): run with --ignored"]
fn lbs_smuggling_compared_with_nginx_and_haproxy() {
    let (w, log, ip) = world("lbc", 62);
    let lb = start_lb(&w);
    let ours = check_netd_lb(&w, &lb, &log);
    drop(lb);

    let dir = w.dir().to_path_buf();
    let conf = dir.join("nginx.conf");
    std::fs::create_dir_all(dir.join("nginx")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx/nginx.pid;\n\
             error_log {d}/nginx/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/nginx;\n\
             proxy_temp_path {d}/nginx;\n  fastcgi_temp_path {d}/nginx;\n\
             uwsgi_temp_path {d}/nginx;\n  scgi_temp_path {d}/nginx;\n\
             upstream web {{ server {ip}:8000; keepalive 8; }}\n\
             server {{ listen 127.0.0.1:8082;\n  location / {{ proxy_pass http://web;\n\
             proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let hap = dir.join("haproxy.cfg");
    std::fs::write(
        &hap,
        format!(
            "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n\
             timeout server 5s\n  http-reuse always\nfrontend fe\n\
             bind 127.0.0.1:8083\n  default_backend be\nbackend be\n\
             server r {ip}:8000\n"
        ),
    )
    .unwrap();
    let mut columns = Vec::new();
    for (name, addr, args) in [
        (
            "nginx",
            "127.0.0.1:8082",
            vec![
                "nginx".to_string(),
                "-e".into(),
                dir.join("nginx/error.log").display().to_string(),
                "-c".into(),
                conf.display().to_string(),
                "-p".into(),
                dir.join("nginx").display().to_string(),
            ],
        ),
        (
            "haproxy",
            "127.0.0.1:8083",
            vec![
                "haproxy".into(),
                "-db".into(),
                "-f".into(),
                hap.display().to_string(),
            ],
        ),
    ] {
        let argv: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let _p = spawn_in(w.host_ns(), &args[0], &argv);
        assert!(
            wait_connectable(w.host_ns(), addr, Duration::from_secs(10)),
            "{name} does not listen on {addr}"
        );
        let cells: Vec<String> = cases()
            .iter()
            .map(|c| run_case(w.host_ns(), addr, &log, c).cell())
            .collect();
        columns.push((name, cells));
    }
    println!("| case | netd-lb | nginx | haproxy |");
    println!("|---|---|---|---|");
    for (i, c) in cases().iter().enumerate() {
        println!(
            "| {} | {} | {} | {} |",
            c.name, ours[i], columns[0].1[i], columns[1].1[i]
        );
    }
}
