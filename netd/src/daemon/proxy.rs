//! The userland proxy for ports published on `[::1]`.
//!
//! The kernel cannot publish on `[::1]` with NAT: bridge netfilter turns the
//! reply back into `::1` while it is still on the bridge, and the IPv6 input
//! path drops a packet for `::1` that did not arrive on `lo` (IPv6 has no
//! `route_localnet`; docs/datapath.md#ipv6). So those mappings get no map
//! element; the daemon listens on `[::1]:HOSTPORT` itself and forwards to
//! the container's IPv6 address, as Docker's docker-proxy does: TCP
//! connection by connection, UDP with one upstream socket per client
//! address, dropped after [`UDP_IDLE`] without traffic.
//!
//! The listeners follow the store ([`Proxy::sync`]): at start, after every
//! change made through the API, on the hand-off other processes send
//! (`POST /netd/dns/sync`), and every [`RESYNC_EVERY`] as a safety net for a
//! hand-off that never came. The container sees connections from the
//! bridge's IPv6 gateway address.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use crate::model::Proto;
use crate::ops::Netd;
use crate::plan::firewall as fwplan;
use crate::store;

/// How long a UDP flow lives without a datagram either way (docker-proxy
/// keeps 90 s; conntrack forgets an unreplied UDP flow after 30 s).
pub const UDP_IDLE: Duration = Duration::from_secs(60);

/// UDP flows per port at once; datagrams from further clients are dropped
/// until one goes idle. Each flow holds a socket and a 64 KiB buffer.
const MAX_FLOWS: usize = 512;

/// How long a connection to the container may take before the client's
/// connection is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Each direction's copy buffer of a TCP connection.
const COPY_BUF: usize = 32 * 1024;

/// The periodic re-read of the store: only a missed hand-off (a CNI DEL
/// whose reaper died) waits for it.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// One listener: its protocol and port on `[::1]`.
type Key = (Proto, u16);

pub struct Proxy {
    served: tokio::sync::Mutex<HashMap<Key, Served>>,
    udp_idle: Duration,
}

struct Served {
    target: SocketAddr,
    /// The listener's task; its connections and flows are its own, so
    /// aborting it closes the port and everything forwarded through it.
    task: JoinHandle<()>,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy::new(UDP_IDLE)
    }
}

impl Proxy {
    pub fn new(udp_idle: Duration) -> Proxy {
        Proxy {
            served: Default::default(),
            udp_idle,
        }
    }

    /// Serve exactly the `[::1]` ports the store has.
    pub async fn sync(&self, netd: &Arc<Netd>) {
        // The read may wait on the store's lock (a CNI plugin writing):
        // never on an async worker, which also serves DNS and the API.
        let n = Arc::clone(netd);
        let read =
            tokio::task::spawn_blocking(move || n.store().read(store::published_on_loopback6));
        let rows = match read.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return warn!("proxy: reading published ports: {e}"),
            Err(e) => return warn!("proxy: reading published ports: {e}"),
        };
        let want = rows
            .iter()
            .flat_map(|(n, ep)| fwplan::port_elements(n, ep))
            .filter(fwplan::proxied)
            .map(|e| ((e.proto, e.host_port), SocketAddr::new(e.addr, e.port)))
            .collect();
        self.apply(want).await;
    }

    /// Make the listeners exactly `want` (port on `[::1]` to container
    /// address): stop the ones gone or pointing elsewhere, then bind the
    /// new ones. A bind that fails is logged and tried again on the next
    /// sync; the attach probed the port, so only a socket bound since then
    /// can hold it.
    async fn apply(&self, want: HashMap<Key, SocketAddr>) {
        let mut served = self.served.lock().await;
        let stale: Vec<Key> = served
            .iter()
            .filter(|(k, s)| want.get(k) != Some(&s.target))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(s) = served.remove(&k) {
                s.task.abort();
                // Awaited so that the socket is closed before the port is
                // bound again, or reported free.
                let _ = s.task.await;
                info!(port = k.1, proto = %k.0, to = %s.target, "proxy: stopped [::1] port");
            }
        }
        for (k, target) in want {
            if served.contains_key(&k) {
                continue;
            }
            let at = SocketAddr::from((Ipv6Addr::LOCALHOST, k.1));
            match listen(k.0, at, target, self.udp_idle).await {
                Ok((_, task)) => {
                    info!(port = k.1, proto = %k.0, to = %target, "proxy: serving [::1] port");
                    served.insert(k, Served { target, task });
                }
                Err(e) => warn!("proxy: cannot serve [::1]:{}/{}: {e}", k.1, k.0),
            }
        }
    }

    /// Re-read the store now and then (see [`RESYNC_EVERY`]).
    pub fn follow(self: &Arc<Self>, netd: Arc<Netd>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESYNC_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                me.sync(&netd).await;
            }
        });
    }
}

/// Bind `at` and forward what arrives to `target`; the address bound (for
/// port 0) and the task serving it.
async fn listen(
    proto: Proto,
    at: SocketAddr,
    target: SocketAddr,
    udp_idle: Duration,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    match proto {
        Proto::Tcp => {
            let sock = if at.is_ipv6() {
                TcpSocket::new_v6()?
            } else {
                TcpSocket::new_v4()?
            };
            // As any server: connections of a previous daemon left in
            // TIME_WAIT must not keep a restarted one from binding.
            sock.set_reuseaddr(true)?;
            sock.bind(at)?;
            let l = sock.listen(1024)?;
            Ok((l.local_addr()?, tokio::spawn(serve_tcp(l, target))))
        }
        Proto::Udp => {
            let s = UdpSocket::bind(at).await?;
            Ok((
                s.local_addr()?,
                tokio::spawn(serve_udp(s, target, udp_idle)),
            ))
        }
        // Refused when the spec is parsed.
        Proto::Sctp => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sctp is not proxied",
        )),
    }
}

async fn serve_tcp(l: TcpListener, target: SocketAddr) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((c, _)) => {
                    conns.spawn(forward_tcp(c, target));
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    warn!("proxy: accept on {:?}: {e}", l.local_addr());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn forward_tcp(mut client: TcpStream, target: SocketAddr) {
    let up = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    // Nothing listening in the container: the client's connection is
    // closed, as docker-proxy does.
    let Ok(Ok(mut up)) = up else { return };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    // Half-closes are passed on: each direction ends on its own. Buffers
    // of 32 KiB, as docker-proxy's: tokio's default 8 KiB cost more than
    // half the throughput in bench/proxy.sh.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, COPY_BUF, COPY_BUF).await;
}

/// One client's flow: its socket to the container, and when it last saw a
/// datagram either way (milliseconds since the listener started).
struct Flow {
    up: Arc<UdpSocket>,
    seen: Arc<AtomicU64>,
}

async fn serve_udp(sock: UdpSocket, target: SocketAddr, idle: Duration) {
    let sock = Arc::new(sock);
    let epoch = Instant::now();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    // Each flow's reply task ends with its client's address once idle.
    let mut tasks: JoinSet<SocketAddr> = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, client)) = r else { continue };
                if !flows.contains_key(&client) {
                    if flows.len() >= MAX_FLOWS {
                        continue;
                    }
                    let Ok(up) = upstream(target).await else { continue };
                    let flow = Flow { up: Arc::new(up), seen: Arc::new(AtomicU64::new(0)) };
                    tasks.spawn(udp_replies(
                        Arc::clone(&sock),
                        Arc::clone(&flow.up),
                        client,
                        Arc::clone(&flow.seen),
                        epoch,
                        idle,
                    ));
                    flows.insert(client, flow);
                }
                if let Some(f) = flows.get(&client) {
                    f.seen.store(millis(epoch), Ordering::Relaxed);
                    let _ = f.up.send(&buf[..n]).await;
                }
            }
            Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(client) = r {
                    flows.remove(&client);
                }
            }
        }
    }
}

/// A socket connected to the container: it receives only the container's
/// replies, so each is sent back to this flow's client.
async fn upstream(target: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if target.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any).await?;
    s.connect(target).await?;
    Ok(s)
}

async fn udp_replies(
    sock: Arc<UdpSocket>,
    up: Arc<UdpSocket>,
    client: SocketAddr,
    seen: Arc<AtomicU64>,
    epoch: Instant,
    idle: Duration,
) -> SocketAddr {
    let idle_ms = idle.as_millis() as u64;
    let mut buf = vec![0u8; 65536];
    loop {
        let quiet = millis(epoch).saturating_sub(seen.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            return client;
        }
        match tokio::time::timeout(Duration::from_millis(idle_ms - quiet), up.recv(&mut buf)).await
        {
            Ok(Ok(n)) => {
                seen.store(millis(epoch), Ordering::Relaxed);
                let _ = sock.send_to(&buf[..n], client).await;
            }
            // The container refused (ICMP port unreachable): end the flow;
            // the client's next datagram opens a new one.
            Ok(Err(_)) => return client,
            Err(_) => {}
        }
    }
}

fn millis(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;

    /// A TCP server on [::1] that sends back what it reads, then closes.
    async fn tcp_echo() -> SocketAddr {
        let l = TcpListener::bind((LO, 0)).await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = c.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        at
    }

    /// A UDP server on [::1] that answers each datagram with the sender's
    /// port.
    async fn udp_who() -> SocketAddr {
        let s = UdpSocket::bind((LO, 0)).await.unwrap();
        let at = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let (_, from) = s.recv_from(&mut buf).await.unwrap();
                s.send_to(from.port().to_string().as_bytes(), from)
                    .await
                    .unwrap();
            }
        });
        at
    }

    #[tokio::test]
    async fn tcp_is_forwarded_both_ways_with_half_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = tcp_echo().await;
        let (at, task) = listen(Proto::Tcp, (LO, 0).into(), echo, UDP_IDLE)
            .await
            .unwrap();
        let mut c = TcpStream::connect(at).await.unwrap();
        let big = vec![7u8; 1 << 20];
        c.write_all(&big).await.unwrap();
        // The echo server writes back until it sees our end: only a
        // passed-on half-close lets read_to_end finish.
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, big);
        task.abort();
        let _ = task.await;
        // The port is free again once the task is gone.
        std::net::TcpListener::bind(at).unwrap();
    }

    #[tokio::test]
    async fn tcp_to_nothing_closes_the_client() {
        use tokio::io::AsyncReadExt;
        // A port nothing listens on.
        let dead = std::net::TcpListener::bind((LO, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let (at, _task) = listen(Proto::Tcp, (LO, 0).into(), dead, UDP_IDLE)
            .await
            .unwrap();
        let mut c = TcpStream::connect(at).await.unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed, not left open");
        assert!(matches!(n, Ok(0) | Err(_)));
    }

    #[tokio::test]
    async fn udp_flows_per_client_and_idle_ones_end() {
        let who = udp_who().await;
        let idle = Duration::from_millis(300);
        let (at, _task) = listen(Proto::Udp, (LO, 0).into(), who, idle).await.unwrap();
        let ask = |c: Arc<UdpSocket>| async move {
            c.send_to(b"?", at).await.unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = tokio::time::timeout(Duration::from_secs(2), c.recv_from(&mut buf))
                .await
                .expect("an answer through the proxy")
                .unwrap();
            assert_eq!(from, at, "the answer comes from the published port");
            String::from_utf8_lossy(&buf[..n]).to_string()
        };
        let a = Arc::new(UdpSocket::bind((LO, 0)).await.unwrap());
        let b = Arc::new(UdpSocket::bind((LO, 0)).await.unwrap());
        let a1 = ask(Arc::clone(&a)).await;
        assert_eq!(ask(Arc::clone(&a)).await, a1, "one flow per client");
        assert_ne!(
            ask(Arc::clone(&b)).await,
            a1,
            "another client, another flow"
        );
        tokio::time::sleep(idle * 3).await;
        assert_ne!(ask(a).await, a1, "an idle flow ends; the next is new");
    }

    #[tokio::test]
    async fn apply_moves_listeners_to_the_new_target_and_frees_ports() {
        let (one, two) = (tcp_echo().await, tcp_echo().await);
        // A free port on [::1], for the proxy to take.
        let port = std::net::TcpListener::bind((LO, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Proxy::default();
        let key = (Proto::Tcp, port);
        p.apply([(key, one)].into()).await;
        assert!(std::net::TcpListener::bind((LO, port)).is_err(), "served");
        p.apply([(key, two)].into()).await;
        assert_eq!(p.served.lock().await[&key].target, two);
        p.apply(HashMap::new()).await;
        assert!(p.served.lock().await.is_empty());
        std::net::TcpListener::bind((LO, port)).expect("freed");
    }
}
