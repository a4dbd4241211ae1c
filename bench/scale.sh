#!/usr/bin/env bash
# Many sandboxes on several networks, under systemd's default soft limit of
# 1,024 open files (issue 15): the daemon raises its soft limit to the hard
# one at start, so SANDBOXES sandboxes with DNS are made through the API and
# each answers its own name at 127.0.0.11. Prints one table: the time per
# thousand created and the daemon's CPU time for it, the daemon's fds and
# memory, how many sandboxes answered DNS (every DIG_EVERY-th, and the
# last), and the time to remove them all.
#
# usage: bench/scale.sh                  (SANDBOXES=5000 NETWORKS=5)
#   SANDBOXES=1000 NETWORKS=1 bench/scale.sh
#   NETD=PATH        a built netd (default target/release/netd, else target/debug/netd)
#   CREATORS=4       CLI processes creating at once
#   DIG_EVERY=25     ask every N-th sandbox's name from inside it
#   SCALE_PREFIX=ndsc  namespace prefix; namespaces are PREFIX-PID-*
#   SCALE_LOG=FILE   keep the daemon's log there (NETD_LOG sets its filter,
#                    e.g. NETD_LOG=info,netd::timing=debug for the time of
#                    each create's phases and of each DNS sync)
# Not in CI (5,000 sandboxes take many minutes). Everything happens in the
# script's own namespaces; only processes it started are stopped, by pid.
set -euo pipefail
SANDBOXES=${SANDBOXES:-5000}
NETWORKS=${NETWORKS:-5}
CREATORS=${CREATORS:-4}
DIG_EVERY=${DIG_EVERY:-25}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${NETD:-}" ]; then
  NETD=$TARGET/release/netd
  [ -x "$NETD" ] || NETD=$TARGET/debug/netd
fi
[ -x "$NETD" ] || { echo "scale: no netd at $NETD (cargo build -p netd)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "scale: run as root (it makes namespaces, bridges and veths)" >&2; exit 1; }
(( NETWORKS >= 1 && NETWORKS <= 50 )) || { echo "scale: NETWORKS must be 1..50" >&2; exit 1; }
(( SANDBOXES >= NETWORKS )) || { echo "scale: fewer SANDBOXES than NETWORKS" >&2; exit 1; }
P=${SCALE_PREFIX:-ndsc}-$$
TMP=$(mktemp -d /tmp/ndscale.XXXXXX)
HOST=$P-host
export NETD_SOCKET=$TMP/netd.sock

cleanup() {
  set +e
  if [ -s "$TMP/pid" ]; then
    local pid; pid=$(cat "$TMP/pid")
    # The command name is the binary's file name (a copy of netd may be
    # called otherwise), cut to 15 characters by the kernel.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$NETD" | cut -c1-15)" ] && kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  [ -z "${SCALE_LOG:-}" ] || cp "$TMP/daemon.log" "$SCALE_LOG"
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns add "$HOST"
ip -n "$HOST" link set lo up
hard=$(ulimit -Hn)
# The daemon starts with systemd's default soft limit and raises it itself.
prlimit --nofile=1024:"$hard" nsenter --net="/run/netns/$HOST" \
  "$NETD" daemon --state-dir "$TMP/state" --run-dir "$TMP/run" --dns-upstream 127.0.0.1:1 \
  >"$TMP/daemon.log" 2>&1 &
echo $! > "$TMP/pid"
pid=$(cat "$TMP/pid")
for _ in $(seq 100); do [ -S "$NETD_SOCKET" ] && break; sleep 0.1; done
"$NETD" network ls -q >/dev/null
fds() { ls "/proc/$pid/fd" | wc -l; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
# The daemon's CPU time (user + system, all threads) in clock ticks: on a
# shared machine, wall time per thousand also counts other load; this not.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
HZ=$(getconf CLK_TCK)
base_fds=$(fds)
soft_now=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")

# /20 networks: 4,094 addresses each.
for ((n = 0; n < NETWORKS; n++)); do
  "$NETD" network create --subnet "10.$((160 + n)).0.0/20" "$P-n$n" >/dev/null
done
name() { echo "$P-s$1"; }
net_of() { echo "$P-n$(( $1 % NETWORKS ))"; }

: > "$TMP/errors"
start=$EPOCHREALTIME
marks=()
cpu_marks=()
# Made in rounds of 1,000 to time each thousand as the host fills up.
made=0
while (( made < SANDBOXES )); do
  upto=$(( made + 1000 < SANDBOXES ? made + 1000 : SANDBOXES ))
  t=$EPOCHREALTIME
  c0=$(cpu_ticks)
  jobs_=()
  for ((c = 0; c < CREATORS; c++)); do
    (
      for ((i = made + c; i < upto; i += CREATORS)); do
        "$NETD" sandbox create --network "$(net_of "$i")" "$(name "$i")" >/dev/null 2>>"$TMP/errors" \
          || echo "create $(name "$i") failed" >> "$TMP/errors"
      done
    ) &
    jobs_+=($!)
  done
  # Not a bare `wait`: that would wait for the daemon too.
  wait "${jobs_[@]}"
  marks+=("$(echo "scale=1; (${EPOCHREALTIME//[!0-9]/} - ${t//[!0-9]/}) / 1000000" | bc)")
  cpu_marks+=("$(echo "scale=1; ($(cpu_ticks) - $c0) / $HZ" | bc)")
  made=$upto
  echo "scale: $made/$SANDBOXES sandboxes, fds $(fds), rss $(rss_mib) MiB" >&2
done
create_s=$(echo "scale=1; (${EPOCHREALTIME//[!0-9]/} - ${start//[!0-9]/}) / 1000000" | bc)
fds_full=$(fds)
rss_full=$(rss_mib)
failed_creates=$(grep -c failed "$TMP/errors" || true)

# Each asked sandbox asks its own name (the name of a sandbox on its
# network) at 127.0.0.11, retrying for up to 10 s while the daemon's DNS
# catches up with the burst.
asked=0; answered=0
t=$EPOCHREALTIME
for ((i = 0; i < SANDBOXES; i++)); do
  (( i % DIG_EVERY == 0 || i == SANDBOXES - 1 )) || continue
  asked=$((asked + 1))
  want=$(ip -n "$(name "$i")" -4 -o addr show eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
  for _ in $(seq 100); do
    got=$(ip netns exec "$(name "$i")" dig +short +tries=1 +time=1 @127.0.0.11 "$(name "$i")" 2>/dev/null || true)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then answered=$((answered + 1)); break; fi
    sleep 0.1
  done
done
dig_s=$(echo "scale=1; (${EPOCHREALTIME//[!0-9]/} - ${t//[!0-9]/}) / 1000000" | bc)

t=$EPOCHREALTIME
jobs_=()
for ((c = 0; c < CREATORS; c++)); do
  (
    batch=()
    for ((i = c; i < SANDBOXES; i += CREATORS)); do
      batch+=("$(name "$i")")
      if (( ${#batch[@]} == 50 )); then "$NETD" sandbox rm "${batch[@]}" >/dev/null 2>&1 || true; batch=(); fi
    done
    (( ${#batch[@]} == 0 )) || "$NETD" sandbox rm "${batch[@]}" >/dev/null 2>&1 || true
  ) &
  jobs_+=($!)
done
wait "${jobs_[@]}"
rm_s=$(echo "scale=1; (${EPOCHREALTIME//[!0-9]/} - ${t//[!0-9]/}) / 1000000" | bc)
for ((n = 0; n < NETWORKS; n++)); do "$NETD" network rm "$P-n$n" >/dev/null; done
left=$(ip netns list | awk '{print $1}' | grep -c "^$P-s" || true)
sleep 1
fds_after=$(fds)

printf '\n%-34s %s\n' "netd" "$NETD"
printf '%-34s %s\n' "sandboxes / networks" "$SANDBOXES / $NETWORKS"
printf '%-34s %s -> %s\n' "daemon soft RLIMIT_NOFILE" "1024" "$soft_now"
printf '%-34s %s s (%s)\n' "create, total (per 1,000)" "$create_s" "${marks[*]}"
printf '%-34s %s s\n' "daemon CPU per 1,000 created" "${cpu_marks[*]}"
printf '%-34s %s\n' "failed creates" "$failed_creates"
printf '%-34s %s -> %s (%.2f per sandbox)\n' "daemon fds" "$base_fds" "$fds_full" \
  "$(echo "scale=2; ($fds_full - $base_fds) / $SANDBOXES" | bc)"
printf '%-34s %s MiB\n' "daemon RSS, all made" "$rss_full"
printf '%-34s %s of %s (%s s)\n' "answered at 127.0.0.11" "$answered" "$asked" "$dig_s"
printf '%-34s %s s\n' "remove all" "$rm_s"
printf '%-34s %s namespaces, daemon fds %s -> %s\n' "left after removal" "$left" "$base_fds" "$fds_after"
[ "$failed_creates" -eq 0 ] && [ "$answered" -eq "$asked" ] && [ "$left" -eq 0 ] \
  && [ "$fds_after" -le $((base_fds + 2)) ] && echo "scale: PASS" || { echo "scale: FAIL"; head -5 "$TMP/errors"; exit 1; }
