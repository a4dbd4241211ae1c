#!/usr/bin/env bash
# A port published on [::1] (served by the daemon's userland proxy,
# netd/src/daemon/proxy.rs) against the same container port reached over
# NAT, from the host namespace to one container:
#   proxy6     [::1]:8001             the userland proxy
#   dnat6      [2001:db8:77::1]:8002  DNAT (pub_addr6), from the host itself
#   dnat4-lo   127.0.0.1:8003         DNAT, IPv4 localhost publishing
#   direct6    [fd00:77::2]:80        no NAT: the container's own address
# Throughput: MIB MiB sent per connection, 3 connections, the median.
# Connect: CONNS connections opened, half-closed and answered in turn
# (one round trip to the container each), p50 and p99.
# Client and server are python3, so the numbers are a ratio between paths,
# not the kernel's ceiling. Everything runs in namespaces of this script's
# own; nothing touches the root namespace. Needs root, iproute2, python3.
#
# usage: bench/proxy.sh [MIB] [CONNS]   (default 1024 MiB, 300 connections)
# NETD_BIN overrides the netd binary (default target/release/netd);
# NDPROXY_PREFIX (default ndproxy) starts every namespace's name.
set -euo pipefail

MIB=${1:-1024}
CONNS=${2:-300}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=${NDPROXY_PREFIX:-ndproxy}-$$
TMP=$(mktemp -d /tmp/ndproxy.XXXXXX)
NETD=${NETD_BIN:-$ROOT/target/release/netd}
DAEMON_PID=""
SERVER_PID=""
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

[ -x "$NETD" ] || (cd "$ROOT" && cargo build --release -q -p netd)

hostns h
H=$P-h
# A host IPv6 address to publish on (a veth pair inside the namespace: the
# dummy driver is not always there).
ip -n "$H" link add up0 type veth peer name up1
ip -n "$H" addr add 2001:db8:77::1/64 dev up0 nodad
ip -n "$H" link set up0 up
ip -n "$H" link set up1 up
export NETD_SOCKET=$TMP/netd.sock
nsenter --net="/run/netns/$H" "$NETD" daemon --state-dir "$TMP/state" --run-dir "$TMP/run" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do "$NETD" network ls >/dev/null 2>&1 && break; sleep 0.1; done
"$NETD" network create --ipv6 --subnet 10.77.0.0/24 --subnet fd00:77::/64 "$P-n" >/dev/null
"$NETD" sandbox create --network "$P-n" -p '[::1]:8001:80' -p '[2001:db8:77::1]:8002:80' \
  -p '127.0.0.1:8003:80' "$P-c" >/dev/null

# The server: reads each connection to its end, answers the byte count.
cat > "$TMP/server.py" <<'EOF'
import socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 80)); s.listen(128)
def one(c):
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        n += len(b)
    c.sendall(str(n).encode()); c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
EOF
cat > "$TMP/client.py" <<'EOF'
import socket, statistics, sys, time
host, port, mib, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
addr = (host, port)
buf = b"\0" * (1 << 20)
def xfer():
    s = socket.create_connection(addr)
    t = time.perf_counter()
    for _ in range(mib):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    n = int(s.recv(64))
    dt = time.perf_counter() - t
    s.close()
    assert n == mib << 20, (n, mib)
    return mib / dt
tput = statistics.median(xfer() for _ in range(3))
lat = []
for _ in range(conns):
    t = time.perf_counter()
    s = socket.create_connection(addr)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(64) == b"0"
    s.close()
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"{tput:10.0f} {lat[len(lat) // 2]:10.3f} {lat[min(len(lat) - 1, len(lat) * 99 // 100)]:10.3f}")
EOF
nsenter --net="/run/netns/$P-c" python3 "$TMP/server.py" &
SERVER_PID=$!
for _ in $(seq 100); do
  ip netns exec "$P-c" ss -Htln | grep -q ':80 ' && break; sleep 0.1
done

t0=$EPOCHREALTIME
printf '%-10s %-24s %10s %10s %10s\n' path address MiB/s conn_p50 conn_p99
for row in "proxy6 ::1 8001" "dnat6 2001:db8:77::1 8002" "dnat4-lo 127.0.0.1 8003" "direct6 fd00:77::2 80"; do
  read -r name addr port <<< "$row"
  out=$(nsenter --net="/run/netns/$H" python3 "$TMP/client.py" "$addr" "$port" "$MIB" "$CONNS")
  printf '%-10s %-24s %s\n' "$name" "$addr:$port" "$out"
done
echo "took $(elapsed "$t0" | cut -d. -f1) ms; $MIB MiB x3 and $CONNS connections per path"
