#!/usr/bin/env bash
# netd in two minutes: build, run the daemon, and show what a container host
# gets from it: names at 127.0.0.11, an alias whose answers rotate, a port
# published to the outside world, and netd-lb spreading requests over the
# members of the alias. Then everything is removed again.
#
#   scripts/demo.sh                       # from a root shell, or a user with sudo
#   NETD_PROFILE=debug scripts/demo.sh    # use (or build) the debug binaries
#   DEMO_PREFIX=mydemo scripts/demo.sh    # other namespace names (default netd-demo)
#
# Everything happens inside network namespaces this script creates, all
# named PREFIX-*: the daemon and netd-lb run in PREFIX-host (its bridge,
# veths, sysctls and nftables table live there), PREFIX-out plays another
# machine joined to it by a veth pair, and each sandbox gets a namespace of
# its own. The root namespace's links, routes and firewall are never
# touched. On any exit (success, error, Ctrl-C) the trap removes what this
# run created, and nothing else: processes by pid, namespaces by name.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=${NETD_PROFILE:-release}
P=${DEMO_PREFIX:-netd-demo}
HOST_NS=$P-host
OUT_NS=$P-out
NET=demo
SUBNET=10.199.0.0/24
# The host namespace's "uplink" to PREFIX-out: a /30 of its own.
UP_HOST=10.198.255.1
UP_OUT=10.198.255.2
WEBS=("$P-web1" "$P-web2" "$P-web3")
CLIENT=$P-client

if [ -t 1 ]; then B=$'\033[1m' R=$'\033[0m'; else B="" R=""; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
show() { printf '$ %s\n' "$*"; "$@"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

case "$PROFILE" in release | debug) ;; *) die "NETD_PROFILE must be release or debug" ;; esac
case "$P" in *[!a-zA-Z0-9-]* | "") die "DEMO_PREFIX may only have letters, digits and -" ;; esac

CARGO_FLAGS=(--quiet -p netd -p netd-lb)
[ "$PROFILE" = release ] && CARGO_FLAGS+=(--release)
build() {
    step "Installing dependencies (scripts/setup.sh)"
    "$REPO/scripts/setup.sh"
    step "Building netd and netd-lb (cargo build ${CARGO_FLAGS[*]})"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup, then run this again"
    (cd "$REPO" && cargo build "${CARGO_FLAGS[@]}")
}

# From a root shell everything runs as root; from a user shell the build
# runs as the user (cargo's cache is theirs) and the rest under sudo.
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "run as root (netd creates namespaces, bridges and veths)"
    build
    exec sudo --preserve-env=PATH,CARGO_TARGET_DIR,NETD_PROFILE,DEMO_PREFIX DEMO_BUILT=1 "$0" "$@"
fi
[ "${DEMO_BUILT:-0}" = 1 ] || build

# ---- cleanup: only what this run created, processes by pid -----------------
TMP=""
PIDS=()           # web servers and netd-lb, by pid
DAEMON_PID=""
NAMESPACES=()     # namespaces this script made itself (host, out)
SANDBOXES=()      # sandboxes we asked netd to create (netd names their netns after them)
NETWORK_CREATED=0

stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    # Its status is that of a process killed by a signal: not our failure.
    wait "$1" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        [ "${#SANDBOXES[@]}" -gt 0 ] && "$NETD" sandbox rm --force "${SANDBOXES[@]}" >/dev/null 2>&1
        [ "$NETWORK_CREATED" -eq 1 ] && "$NETD" network rm "$NET" >/dev/null 2>&1
        stop_pid "$DAEMON_PID"
    fi
    # If the daemon could not remove a sandbox, its namespace is still ours.
    for s in "${SANDBOXES[@]}"; do
        [ -e "/run/netns/$s" ] && ip netns delete "$s" 2>/dev/null
    done
    # Deleting the host namespace takes its bridges, veths and nftables table with it.
    for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns" 2>/dev/null; done
    [ -n "$TMP" ] && rm -rf "$TMP"
    if [ "$rc" -ne 0 ]; then
        printf '\ndemo: failed (exit %s); everything it created has been removed\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the binaries --------------------------------------------------------
BIN="${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE"
NETD="$BIN/netd"
NETD_LB="$BIN/netd-lb"
[ -x "$NETD" ] && [ -x "$NETD_LB" ] || die "the build produced no $NETD or $NETD_LB"
netd() { "$NETD" "$@"; }
# nsenter (not `ip netns exec`) keeps our mount namespace, so the sandbox
# namespaces the daemon mounts under /run/netns are visible to us too; and
# it execs its command, so $! of `nsenter ... &` is the process itself
# (started through a shell function, $! would be a subshell, and killing it
# would leave the process running).
in_host() { nsenter --net="/run/netns/$HOST_NS" "$@"; }

# ---- 2. a host namespace, an "outside" machine, and the daemon ------------
step "Starting netd daemon inside namespace $HOST_NS"
for ns in "$HOST_NS" "$OUT_NS" "${WEBS[@]}" "$CLIENT"; do
    [ -e "/run/netns/$ns" ] && die "network namespace $ns already exists (left from an earlier run?); remove it with: ip netns delete $ns"
done
for ns in "$HOST_NS" "$OUT_NS"; do
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
done
# The veth pair is made inside the host namespace, so the root namespace
# never holds either end.
ip -n "$HOST_NS" link add uplink0 type veth peer name eth0 netns "$OUT_NS"
ip -n "$HOST_NS" addr add "$UP_HOST/30" dev uplink0
ip -n "$HOST_NS" link set uplink0 up
ip -n "$OUT_NS" addr add "$UP_OUT/30" dev eth0
ip -n "$OUT_NS" link set eth0 up

TMP=$(mktemp -d /tmp/netd-demo.XXXXXX)
export NETD_SOCKET="$TMP/run/netd.sock"
nsenter --net="/run/netns/$HOST_NS" "$NETD" daemon --state-dir "$TMP/state" --run-dir "$TMP/run" >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
    [ -S "$NETD_SOCKET" ] && "$NETD" network ls >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TMP/daemon.log" >&2; die "the daemon exited"; }
    sleep 0.1
done
[ -S "$NETD_SOCKET" ] || { cat "$TMP/daemon.log" >&2; die "the daemon did not open $NETD_SOCKET"; }
echo "daemon pid $DAEMON_PID, NETD_SOCKET=$NETD_SOCKET"
grep -h "open files limit" "$TMP/daemon.log" | sed 's/^.*INFO /  /' || true

# ---- 3. a network, three web servers behind one alias, a client -----------
step "Creating network $NET ($SUBNET): three sandboxes with the alias web, one client"
NETWORK_CREATED=1
show netd network create --subnet "$SUBNET" "$NET"
SANDBOXES+=("${WEBS[0]}")
show netd sandbox create --network "$NET" --alias web -p 8080:8000 "${WEBS[0]}"
for s in "${WEBS[@]:1}"; do
    SANDBOXES+=("$s")
    show netd sandbox create --network "$NET" --alias web "$s"
done
SANDBOXES+=("$CLIENT")
show netd sandbox create --network "$NET" "$CLIENT"
echo
show netd sandbox ls

# Each web sandbox serves its own name on :8000.
for s in "${WEBS[@]}"; do
    mkdir -p "$TMP/www/$s"
    echo "hello from $s" >"$TMP/www/$s/index.html"
    nsenter --net="/run/netns/$s" python3 -m http.server 8000 --bind 0.0.0.0 --directory "$TMP/www/$s" \
        >"$TMP/$s.log" 2>&1 &
    PIDS+=($!)
done
for s in "${WEBS[@]}"; do
    for _ in $(seq 50); do
        nsenter --net="/run/netns/$s" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8000' 2>/dev/null && break
        sleep 0.1
    done
done

# ---- 4. names at 127.0.0.11 -------------------------------------------------
step "Names: the client asks netd's DNS at 127.0.0.11 for two sandboxes"
for s in "${WEBS[0]}" "${WEBS[1]}"; do
    show netd sandbox exec "$CLIENT" -- dig +short @127.0.0.11 "$s"
done

step "An alias: web has three members, and the first answer rotates"
for _ in 1 2 3; do
    printf '$ netd sandbox exec %s -- dig +short @127.0.0.11 web\n' "$CLIENT"
    netd sandbox exec "$CLIENT" -- dig +short @127.0.0.11 web | paste -sd' '
done

# ---- 5. a published port, from outside ---------------------------------------
step "A published port: ${WEBS[0]} publishes 8080 -> 8000; $OUT_NS (another machine) asks $UP_HOST:8080"
printf '$ curl http://%s:8080/   (in %s)\n' "$UP_HOST" "$OUT_NS"
nsenter --net="/run/netns/$OUT_NS" curl -sS --max-time 5 "http://$UP_HOST:8080/"

# ---- 6. netd-lb over the alias -------------------------------------------------
step "netd-lb on 127.0.0.1:8081 over the members of web, 9 requests"
nsenter --net="/run/netns/$HOST_NS" "$NETD_LB" --listen 127.0.0.1:8081 --network "$NET" --alias web --port 8000 \
    --socket "$NETD_SOCKET" --health-interval 200ms >"$TMP/lb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    in_host curl -s --max-time 1 -o /dev/null http://127.0.0.1:8081/ && break
    sleep 0.1
done
printf '$ for i in $(seq 9); do curl -s http://127.0.0.1:8081/; done | sort | uniq -c\n'
for _ in $(seq 9); do in_host curl -sS --max-time 5 http://127.0.0.1:8081/; done | sort | uniq -c

# ---- 7. tear down -------------------------------------------------------------
step "Removing everything"
STARTED=("${PIDS[@]}" "$DAEMON_PID")
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()
show netd sandbox rm "${SANDBOXES[@]}"
SANDBOXES=()
show netd network rm "$NET"
NETWORK_CREATED=0
stop_pid "$DAEMON_PID"
DAEMON_PID=""
echo "daemon stopped"
for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns"; done
NAMESPACES=()
left=$(ip netns list | grep -c "^$P-" || true)
alive=0
for pid in "${STARTED[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
echo "namespaces named $P-* left: $left; processes it started still running: $alive"

step "Done: names, an alias, a published port and a load balancer, all from netd"
echo "Next: docs/getting-started.md, docs/operations.md (install with systemd), docs/lb.md"
