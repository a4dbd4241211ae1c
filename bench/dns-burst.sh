#!/usr/bin/env bash
# Does DNS stay up in a sandbox while many others are created? One probe
# sandbox asks 127.0.0.11 for its own name with dig in a loop (1 s timeout,
# one try) while N sandboxes are created through the CLI as fast as it goes
# (CREATORS CLI processes at once, as tests/tests/limits.rs does).
#
#   sudo bench/dns-burst.sh                    # N=500, this build (target/debug/netd)
#   sudo N=1000 bench/dns-burst.sh
#   sudo NETD=/path/to/netd bench/dns-burst.sh # another binary as "after"
#   sudo NETD_BEFORE=/path/to/old/netd bench/dns-burst.sh
#                                              # and an older one first, as "before"
#   sudo TASKSET=0 bench/dns-burst.sh          # daemon pinned to CPU 0 (taskset -c),
#                                              # as on a loaded machine
#
# Printed per build:
#   max gap      longest time between two answers to the probe, from the
#                first create until SETTLE seconds after the last
#   creates/s    N / wall time of the creates
#   last answers how long after the last create returned the last sandbox
#                made answers its own name (what limits.rs waits for)
#
# Builds run one after the other, each with a daemon of its own in its own
# host namespace. Everything lives in namespaces named ndb-PID-*; the root
# namespace is never touched. On any exit the daemons and probes this script
# started are stopped by pid and its namespaces deleted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NETD=${NETD:-$TARGET/debug/netd}
BEFORE=${NETD_BEFORE:-}
N=${N:-500}
CREATORS=${CREATORS:-4}
SETTLE=${SETTLE:-5}
TASKSET=${TASKSET:-}
P=ndb-$$
TMP=$(mktemp -d /tmp/ndb-burst.XXXXXX)
PIDS=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  ip netns list | awk '{print $1}' | grep "^$P-" | sed 's/^/netns delete /' >"$TMP/batch"
  [ -s "$TMP/batch" ] && ip -force -batch "$TMP/batch" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

[ -x "$NETD" ] || { echo "no netd binary at $NETD (cargo build -p netd)" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "NETD_BEFORE=$BEFORE is not executable" >&2; exit 1; }

# One build: appends to $TMP/rows "label max_gap_s creates_per_s last_answers_s".
run() { # label binary
  local label=$1 bin=$2 dir=$TMP/$1 host=$P-$1-host
  mkdir -p "$dir"
  ip netns add "$host"
  ip -n "$host" link set lo up
  local sock=$dir/run/netd.sock
  local pin=()
  [ -z "$TASKSET" ] || pin=(taskset -c "$TASKSET")
  NETD_SOCKET=$sock nsenter --net="/run/netns/$host" "${pin[@]}" "$bin" daemon \
    --state-dir "$dir/state" --run-dir "$dir/run" >"$dir/daemon.log" 2>&1 &
  local daemon=$!
  PIDS+=("$daemon")
  cli() { NETD_SOCKET=$sock "$bin" "$@"; }
  for _ in $(seq 100); do
    [ -S "$sock" ] && cli network ls >/dev/null 2>&1 && break
    kill -0 "$daemon" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
    sleep 0.1
  done
  local net=$P-$1-n probe=$P-$1-probe
  cli network create --subnet 10.62.0.0/20 "$net" >/dev/null
  cli sandbox create --network "$net" "$probe" >/dev/null
  local ok=0
  for _ in $(seq 200); do
    if nsenter --net="/run/netns/$probe" dig @127.0.0.11 +short +tries=1 +time=1 "$probe" | grep -q .; then
      ok=1; break
    fi
    sleep 0.05
  done
  [ "$ok" = 1 ] || { echo "$label: the probe never answered" >&2; exit 1; }

  # The probe: one timestamp (us) per answer.
  nsenter --net="/run/netns/$probe" bash -c '
    while :; do
      if dig @127.0.0.11 +short +tries=1 +time=1 "$1" 2>/dev/null | grep -q .; then
        echo "${EPOCHREALTIME//[!0-9]/}"
      fi
    done' _ "$probe" >"$dir/answers" &
  local prober=$!
  PIDS+=("$prober")
  sleep 1

  seq 1 "$N" | sed "s/^/$P-$1-s/" >"$dir/names"
  local t0=${EPOCHREALTIME//[!0-9]/}
  NETD_SOCKET=$sock xargs -P "$CREATORS" -I{} "$bin" sandbox create --network "$net" {} \
    <"$dir/names" >/dev/null
  local t1=${EPOCHREALTIME//[!0-9]/}
  local last
  last=$(tail -n 1 "$dir/names")
  local answered=""
  for _ in $(seq 1200); do
    if nsenter --net="/run/netns/$last" dig @127.0.0.11 +short +tries=1 +time=1 "$last" | grep -q .; then
      answered=${EPOCHREALTIME//[!0-9]/}; break
    fi
    sleep 0.05
  done
  local rest=$(( SETTLE * 1000000 - (${EPOCHREALTIME//[!0-9]/} - t1) ))
  [ "$rest" -le 0 ] || sleep "$(echo "scale=3; $rest / 1000000" | bc)"
  local t2=${EPOCHREALTIME//[!0-9]/}
  kill "$prober" 2>/dev/null; wait "$prober" 2>/dev/null || true
  kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true

  local gap
  gap=$(awk -v a="$t0" -v b="$t2" 'BEGIN {prev = a; max = 0}
    $1 >= a && $1 <= b {if ($1 - prev > max) max = $1 - prev; prev = $1}
    END {if (b - prev > max) max = b - prev; printf "%.2f", max / 1e6}' "$dir/answers")
  local rate last_s
  rate=$(echo "scale=1; $N * 1000000 / ($t1 - $t0)" | bc)
  if [ -n "$answered" ]; then
    last_s=$(echo "scale=2; ($answered - $t1) / 1000000" | bc)
  else
    last_s="never"
  fi
  echo "$label $gap $rate $last_s" >>"$TMP/rows"
  echo "$label: max gap ${gap}s, ${rate} creates/s, last answers after ${last_s}s" >&2
  # Its sandboxes go now, before the next build's burst.
  { ip netns list | awk '{print $1}' | grep "^$P-$1-" | sed 's/^/netns delete /' >"$TMP/batch"; } || true
  ip -force -batch "$TMP/batch" 2>/dev/null || true
}

[ -z "$BEFORE" ] || run before "$BEFORE"
run after "$NETD"
printf '\nN=%s creates (%s CLI processes at once), probe asking its own name%s:\n' "$N" "$CREATORS" \
  "${TASKSET:+, daemon on CPU $TASKSET}"
printf '%-8s %12s %10s %16s\n' build "max gap s" creates/s "last answers s"
while read -r l g c a; do
  printf '%-8s %12s %10s %16s\n' "$l" "$g" "$c" "$a"
done <"$TMP/rows"
