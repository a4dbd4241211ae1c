//! Stand-ins for the services netd-lb talks to, for tests that run
//! without a netd daemon: a DNS responder with AAAA records on `[::1]`,
//! and netd's API socket serving a fixed member list.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{RData, Record, RecordType};

/// Run `f` on a thread that has joined namespace `ns` and keeps running
/// there (unlike `in_ns`, which waits for `f`).
pub fn spawn_in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a valid namespace fd; only this thread moves.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A DNS responder on `[::1]` in namespace `ns`: AAAA for NAME answers
/// every address (rotated), any other question about NAME is NODATA,
/// anything else NXDOMAIN. Counts the questions by type.
pub struct Dns6 {
    pub port: u16,
    asked: Arc<Mutex<HashMap<RecordType, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns6 {
    pub fn start(ns: &str, name: &str, addrs: Vec<Ipv6Addr>) -> Dns6 {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&asked), Arc::clone(&stop));
        let thread = spawn_in_ns(ns, move || {
            let sock = UdpSocket::bind("[::1]:0").expect("bind [::1]");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            tx.send(sock.local_addr().unwrap().port()).unwrap();
            let mut turn = 0usize;
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(q) = req.queries.first() else {
                    continue;
                };
                *a.lock().unwrap().entry(q.query_type()).or_insert(0) += 1;
                let mut resp =
                    Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
                resp.metadata = Metadata::response_from_request(&req.metadata);
                resp.queries = req.queries.clone();
                let ours = q.name().to_ascii().eq_ignore_ascii_case(&fqdn);
                if !ours {
                    resp.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
                } else if q.query_type() == RecordType::AAAA {
                    turn += 1;
                    for i in 0..addrs.len() {
                        let ip = addrs[(turn + i) % addrs.len()];
                        resp.answers.push(Record::from_rdata(
                            q.name().clone(),
                            5,
                            RData::AAAA(AAAA(ip)),
                        ));
                    }
                }
                let _ = sock.send_to(&resp.to_vec().unwrap(), peer);
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("responder up");
        Dns6 {
            port,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    pub fn asked(&self, t: RecordType) -> usize {
        self.asked.lock().unwrap().get(&t).copied().unwrap_or(0)
    }
}

impl Drop for Dns6 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stand-in for netd's API socket at DIR/netd.sock: `members` (JSON) as
/// the answer to `GET /netd/networks/NETWORK/members/ALIAS`, an event
/// stream that stays open and quiet, 404 for anything else.
pub struct FakeNetd {
    pub socket: PathBuf,
    /// Member lists served so far.
    pub lists: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNetd {
    pub fn start(dir: &Path, network: &str, alias: &str, members: &serde_json::Value) -> FakeNetd {
        let socket = dir.join("netd.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let members_path = format!("/netd/networks/{network}/members/{alias}");
        let body = members.to_string();
        let lists = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (Arc::clone(&lists), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (body, l, s) = (body.clone(), Arc::clone(&l), Arc::clone(&s));
                let members_path = members_path.clone();
                std::thread::spawn(move || {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if c.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("");
                    if path == "/netd/events" {
                        let _ = c.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\
                              Transfer-Encoding: chunked\r\n\r\n",
                        );
                        while !s.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    } else if path == members_path {
                        l.fetch_add(1, Ordering::Relaxed);
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    } else {
                        let msg = r#"{"message":"not found"}"#;
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                                msg.len()
                            )
                            .as_bytes(),
                        );
                    }
                });
            }
        });
        FakeNetd {
            socket,
            lists,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeNetd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
