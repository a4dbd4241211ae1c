#!/usr/bin/env bash
# DNS queries per second and latency from inside a sandbox, 200 names:
# netd's server at 127.0.0.11 side by side with dnsmasq serving the same 200
# names from a hosts file in the same namespace (127.0.0.12), measured with
# dnsperf (Debian package `dnsperf`) in one run. Everything lives in
# namespaces of its own (prefix ndbdns-PID); nothing touches the root namespace.
#
# usage: bench/dns.sh [SECONDS]   (default 10 per server)
set -euo pipefail

SECS=${1:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=ndbdns-$$
TMP=$(mktemp -d /tmp/ndbdns.XXXXXX)
NETD=$ROOT/target/release/netd
DAEMON_PID="" DNSMASQ_PID=""
export NETD_SOCKET=$TMP/netd.sock

cleanup() {
  set +e
  [ -n "$DNSMASQ_PID" ] && kill "$DNSMASQ_PID" 2>/dev/null && wait "$DNSMASQ_PID" 2>/dev/null
  "$NETD" sandbox rm --force "$P-client" >/dev/null 2>&1
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for pkg in dnsperf dnsmasq-base; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; }
done
[ -x "$NETD" ] || (cd "$ROOT" && cargo build --release -q -p netd)

ip netns add "$P-host"; ip -n "$P-host" link set lo up
nsenter --net=/run/netns/$P-host "$NETD" daemon --state-dir "$TMP/state" --run-dir "$TMP/run" \
  --dns-upstream 127.0.0.1:1 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do "$NETD" network ls >/dev/null 2>&1 && break; sleep 0.1; done
"$NETD" network create --subnet 10.187.0.0/24 "$P-net" >/dev/null

# 200 names: aliases of the client sandbox itself (every name one address).
args=()
: > "$TMP/hosts"; : > "$TMP/queries"
for i in $(seq 1 200); do
  args+=(--alias "svc$i")
  echo "10.187.0.2 svc$i" >> "$TMP/hosts"
  echo "svc$i A" >> "$TMP/queries"
done
"$NETD" sandbox create --network "$P-net" "${args[@]}" "$P-client" >/dev/null

ip -n "$P-client" addr add 127.0.0.12/8 dev lo 2>/dev/null || true
nsenter --net=/run/netns/$P-client dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$TMP/hosts" \
  --listen-address=127.0.0.12 --bind-interfaces --port=53 --cache-size=1000 --pid-file= 2>/dev/null &
DNSMASQ_PID=$!
sleep 0.5

run() { # server -> "qps avg_ms stddev_ms lost"
  nsenter --net=/run/netns/$P-client dnsperf -s "$1" -d "$TMP/queries" -l "$SECS" -c 20 -Q 200000 -q 200 2>/dev/null |
    awk '/Queries per second/ {q=$4} /Average Latency/ {a=$4*1000} /Latency StdDev/ {s=$4*1000} /Queries lost/ {l=$3}
         END {printf "%.0f %.3f %.3f %s\n", q, a, s, l}'
}

read -r q1 a1 s1 l1 < <(run 127.0.0.11)
read -r q2 a2 s2 l2 < <(run 127.0.0.12)
printf '\n%-22s %10s %12s %12s %8s\n' server "qps" "avg ms" "stddev ms" lost
printf '%-22s %10s %12s %12s %8s\n' "netd (127.0.0.11)" "$q1" "$a1" "$s1" "$l1"
printf '%-22s %10s %12s %12s %8s\n' "dnsmasq (127.0.0.12)" "$q2" "$a2" "$s2" "$l2"
printf '\nnetd / dnsmasq throughput: %.2f\n' "$(echo "$q1 / $q2" | bc -l)"
