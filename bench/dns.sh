#!/usr/bin/env bash
# DNS throughput and latency from inside one sandbox, 200 names (A records):
#
#   netd-dns   127.0.0.11   the engine (dns/examples/serve.rs: its runtime in
#                           the "host" namespace, its sockets in the sandbox's)
#   dnsmasq    127.0.0.12   the same 200 names from a hosts file
#   aardvark   10.187.255.1 aardvark-dns (podman's), driven as netavark does:
#                           a config dir with one network file, `-p 53 run`;
#                           it answers by the asker's source address, so
#                           dnsperf asks from the "container" 10.187.255.2
#
# all in the same namespace, measured with dnsperf in one run:
#   1. throughput: 20 clients, 200 queries in flight, SECONDS each;
#   2. latency: dnsperf -v at a fixed 10,000 queries/s for SECONDS/2 each,
#      every answer's latency sorted for p50/p99 (dnsperf 2.10 only reports
#      mean and stddev itself).
# Servers take turns, ROUNDS times (default 3), and the table shows each
# one's median over the rounds, so that load from elsewhere on a shared
# machine weighs on all of them alike.
# Everything lives in namespaces named ndbdns-PID-*; the root namespace is
# never touched. Only processes this script started are killed, by pid.
#
# usage: bench/dns.sh [SECONDS]   (default 10; ROUNDS=N in the environment)
#   NETD_BASE_BIN=DIR   also serve with another build's engine (DIR/examples/serve,
#                       e.g. target/release of the commit before) at 127.0.0.11
#                       of a second sandbox namespace with the same names: its
#                       row is "before", this build's "after", in the same turns.
set -euo pipefail

SECS=${1:-10}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVE=${SERVE:-$TARGET/release/examples/serve}
BASE=${NETD_BASE_BIN:-}
if [ -n "$BASE" ] && [ ! -x "$BASE/examples/serve" ]; then
  echo "NETD_BASE_BIN=$BASE has no examples/serve (cargo build --release -p netd-dns --example serve)" >&2
  exit 1
fi
P=ndbdns-$$
TMP=$(mktemp -d /tmp/ndbdns.XXXXXX)
chmod 755 "$TMP"
PIDS=()
CLIENT=10.187.255.2

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  # aardvark-dns daemonises itself and writes its pid here.
  if [ -s "$TMP/aardvark/aardvark.pid" ]; then
    apid=$(cat "$TMP/aardvark/aardvark.pid")
    kill "$apid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

need() { dpkg -s "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }; }
need dnsperf
need dnsmasq-base
need aardvark-dns || echo "aardvark-dns not installable: measured without it" >&2
AARDVARK=/usr/lib/podman/aardvark-dns

if [ "$SERVE" = "$TARGET/release/examples/serve" ]; then
  echo "building dns/examples/serve.rs (release)..." >&2
  (cd "$ROOT" && cargo build --release -q -p netd-dns --example serve)
fi

ip netns add "$P-host"; ip -n "$P-host" link set lo up
ip netns add "$P-sb"; ip -n "$P-sb" link set lo up
ip -n "$P-sb" addr add 10.187.255.1/32 dev lo
ip -n "$P-sb" addr add "$CLIENT/32" dev lo
# The base build's engine answers at 127.0.0.11 too: in a sandbox of its own.
[ -z "$BASE" ] || { ip netns add "$P-sbb"; ip -n "$P-sbb" link set lo up; }

# 200 names, one address each; the same names as a hosts file, as
# aardvark's network file, and as dnsperf's queries.
mkdir -p "$TMP/aardvark"
: > "$TMP/hosts"; : > "$TMP/queries"
echo "10.187.255.1" > "$TMP/aardvark/benchnet"
echo "c0ffee00000000000000000000000000000000000000000000000000000000ff $CLIENT  client" >> "$TMP/aardvark/benchnet"
for i in $(seq 1 200); do
  ip="10.187.$((i / 250)).$((i % 250 + 2))"
  echo "$ip svc$i" >> "$TMP/hosts"
  printf '%064x %s  svc%s\n' "$i" "$ip" "$i" >> "$TMP/aardvark/benchnet"
  echo "svc$i A" >> "$TMP/queries"
done

wait_ready() { # file
  for _ in $(seq 100); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start: $(cat "$1")" >&2; exit 1
}

nsenter --net=/run/netns/$P-host "$SERVE" --netns /run/netns/$P-sb --hosts "$TMP/hosts" --no-forward \
  >"$TMP/serve.out" 2>"$TMP/serve.err" &
PIDS+=($!)
wait_ready "$TMP/serve.out"
if [ -n "$BASE" ]; then
  nsenter --net=/run/netns/$P-host "$BASE/examples/serve" --netns /run/netns/$P-sbb --hosts "$TMP/hosts" \
    --no-forward >"$TMP/serve-base.out" 2>"$TMP/serve-base.err" &
  PIDS+=($!)
  wait_ready "$TMP/serve-base.out"
fi

nsenter --net=/run/netns/$P-sb dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$TMP/hosts" \
  --listen-address=127.0.0.12 --bind-interfaces --port=53 --cache-size=1000 --local-ttl=5 \
  --pid-file= 2>"$TMP/dnsmasq.err" &
PIDS+=($!)

HAVE_AARDVARK=0
if [ -x "$AARDVARK" ]; then
  if nsenter --net=/run/netns/$P-sb "$AARDVARK" --config "$TMP/aardvark" -p 53 run >"$TMP/aardvark.out" 2>&1; then
    HAVE_AARDVARK=1
  else
    echo "aardvark-dns did not start: $(cat "$TMP/aardvark.out")" >&2
  fi
fi

dig_ok() { # server [source [namespace]]
  local src=()
  [ -n "${2:-}" ] && src=(-b "$2")
  nsenter --net=/run/netns/$P-${3:-sb} dig +short +tries=1 +time=1 "${src[@]}" @"$1" svc7 | grep -q 10.187.0.9
}
for _ in $(seq 50); do dig_ok 127.0.0.12 && break; sleep 0.1; done
dig_ok 127.0.0.11 || { echo "netd-dns does not answer" >&2; exit 1; }
dig_ok 127.0.0.12 || { echo "dnsmasq does not answer" >&2; exit 1; }
[ -z "$BASE" ] || dig_ok 127.0.0.11 "" sbb || { echo "the base build's netd-dns does not answer" >&2; exit 1; }
if [ "$HAVE_AARDVARK" = 1 ]; then
  for _ in $(seq 50); do dig_ok 10.187.255.1 "$CLIENT" && break; sleep 0.1; done
  dig_ok 10.187.255.1 "$CLIENT" || { echo "aardvark-dns does not answer" >&2; HAVE_AARDVARK=0; }
fi

# Servers by key: address, source address and namespace of the asker.
declare -A NAME=([nd]="netd-dns (127.0.0.11)" [dnsmasq]="dnsmasq (127.0.0.12)" [aardvark]="aardvark-dns")
declare -A ADDR=([nd]=127.0.0.11 [dnsmasq]=127.0.0.12 [aardvark]=10.187.255.1 [base]=127.0.0.11)
declare -A SRC=([nd]=127.0.0.1 [dnsmasq]=127.0.0.1 [aardvark]=$CLIENT [base]=127.0.0.1)
declare -A NS=([nd]=sb [dnsmasq]=sb [aardvark]=sb [base]=sbb)
servers=(nd dnsmasq)
if [ -n "$BASE" ]; then
  NAME[nd]="netd-dns after"
  NAME[base]="netd-dns before"
  servers=(base nd dnsmasq)
fi
[ "$HAVE_AARDVARK" = 1 ] && servers+=(aardvark)

throughput() { # server -> "qps avg_ms lost"
  nsenter --net=/run/netns/$P-${NS[$1]} dnsperf -s "${ADDR[$1]}" -a "${SRC[$1]}" -d "$TMP/queries" -l "$SECS" -c 20 -q 200 2>/dev/null |
    awk '/Queries per second/ {q=$4} /Average Latency/ {a=$4*1000} /Queries lost/ {l=$3}
         END {printf "%.0f %.3f %s\n", q, a, l}'
}

latency() { # server -> "p50_ms p99_ms"
  nsenter --net=/run/netns/$P-${NS[$1]} dnsperf -v -s "${ADDR[$1]}" -a "${SRC[$1]}" -d "$TMP/queries" -l $(( (SECS + 1) / 2 )) \
    -c 20 -q 200 -Q 10000 2>/dev/null |
    tee "$TMP/lat.raw" | awk '$1 == ">" && $2 == "NOERROR" {print $NF}' | sort -g > "$TMP/lat"
  awk '{v[NR]=$1} END {if (NR == 0) {print "- -"; exit}
       i = int(NR * 0.50); if (i < 1) i = 1; j = int(NR * 0.99); if (j < 1) j = 1
       printf "%.3f %.3f\n", v[i] * 1000, v[j] * 1000}' "$TMP/lat"
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }

declare -A RES
for r in $(seq 1 "$ROUNDS"); do
  for s in "${servers[@]}"; do
    echo "round $r/$ROUNDS: ${NAME[$s]}..." >&2
    read -r q a l < <(throughput "$s")
    read -r p50 p99 < <(latency "$s")
    RES[$s]+="$q $a $l $p50 $p99"$'\n'
    printf '  %s qps, %s ms avg, p50 %s ms, p99 %s ms at 10k/s\n' "$q" "$a" "$p50" "$p99" >&2
  done
done

declare -A QPS
printf '\n%-24s %10s %12s %8s %12s %12s\n' "server (median of $ROUNDS)" "qps" "avg ms" lost "p50 ms@10k" "p99 ms@10k"
for s in "${servers[@]}"; do
  col() { printf '%s' "${RES[$s]}" | awk -v c="$1" 'NF {print $c}' | median; }
  QPS[$s]=$(col 1)
  printf '%-24s %10s %12s %8s %12s %12s\n' "${NAME[$s]}" "${QPS[$s]}" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
done
printf '\nnetd-dns / dnsmasq throughput: %.2f\n' "$(echo "${QPS[nd]} / ${QPS[dnsmasq]}" | bc -l)"
[ -z "$BASE" ] || printf 'netd-dns after / before throughput: %.2f\n' "$(echo "${QPS[nd]} / ${QPS[base]}" | bc -l)"
if [ "$HAVE_AARDVARK" = 1 ]; then
  printf 'netd-dns / aardvark-dns throughput: %.2f\n' "$(echo "${QPS[nd]} / ${QPS[aardvark]}" | bc -l)"
else
  echo "aardvark-dns: not measured"
fi
