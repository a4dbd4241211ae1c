#!/usr/bin/env bash
# Daemon CPU time per connect+disconnect, with N sandboxes on one network
# with DNS names (every change makes the daemon recompute what each
# sandbox's embedded DNS answers). CPU time (utime+stime of the daemon, from
# /proc) rather than wall clock, so other load on the machine matters less.
# Everything lives in namespaces named ndbcpu-PID-*; the root namespace is
# never touched; only the daemon this script started is stopped, by pid.
#
# usage: bench/daemon-cpu.sh [POINTS] [OPS]   (defaults "1 50 200 500", 20)
#        NETD=/path/to/netd bench/daemon-cpu.sh   (skip the build)
set -euo pipefail

POINTS=${1:-"1 50 200 500"}
OPS=${2:-20}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NETD=${NETD:-$ROOT/target/release/netd}
P=ndbcpu-$$
TMP=$(mktemp -d /tmp/ndbcpu.XXXXXX)
DAEMON_PID=""
export NETD_SOCKET=$TMP/netd.sock

cleanup() {
  set +e
  if [ -n "$DAEMON_PID" ]; then
    "$NETD" sandbox ls --format json 2>/dev/null | python3 -c 'import json,sys; [print(s["Name"] if "Name" in s else s["name"]) for s in json.load(sys.stdin)]' 2>/dev/null |
      xargs -r -n 50 "$NETD" sandbox rm --force >/dev/null 2>&1
    kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

[ -n "${NETD_SKIP_BUILD:-}" ] || [ "$NETD" != "$ROOT/target/release/netd" ] || (cd "$ROOT" && cargo build --release -q -p netd)

ip netns add "$P-host"; ip -n "$P-host" link set lo up
nsenter --net=/run/netns/$P-host "$NETD" daemon --state-dir "$TMP/state" --run-dir "$TMP/run" \
  --dns-upstream 127.0.0.1:1 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do "$NETD" network ls >/dev/null 2>&1 && break; sleep 0.1; done
"$NETD" network create --subnet 10.186.0.0/22 "$P-big" >/dev/null
"$NETD" network create --subnet 10.185.0.0/24 "$P-side" >/dev/null
"$NETD" sandbox create --network "$P-side" "$P-mover" >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat"; }
HZ=$(getconf CLK_TCK)
have=0
printf '\n%8s %26s\n' present "daemon CPU ms per op pair"
for n in $POINTS; do
  while [ "$have" -lt "$n" ]; do
    have=$((have + 1))
    "$NETD" sandbox create --network "$P-big" --alias svc "$P-s$have" >/dev/null
  done
  sleep 0.5
  t0=$(ticks)
  for _ in $(seq "$OPS"); do
    "$NETD" network connect "$P-big" "$P-mover" >/dev/null
    "$NETD" network disconnect "$P-big" "$P-mover" >/dev/null
  done
  sleep 0.5
  t1=$(ticks)
  printf '%8s %26.1f\n' "$n" "$(echo "($t1 - $t0) * 1000 / $HZ / $OPS" | bc -l)"
done
