#!/usr/bin/env bash
# netd in two minutes: install, build, run the daemon, put two sandboxes on a
# network, ping one from the other, and clean everything up.
#
#   sudo scripts/demo.sh
#
# Everything happens inside network namespaces this script creates: the
# daemon runs in `netd-demo-host` (its bridges, veths, sysctls and nftables
# table live there), and each sandbox gets a namespace of its own. The root
# namespace's links, routes and firewall are never touched. On any exit
# (success, error, Ctrl-C) the trap removes what the script created, and
# nothing else.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOST_NS=netd-demo-host
NET=demo-net
SUBNET=10.199.0.0/24
SB_A=netd-demo-a
SB_B=netd-demo-b

if [ -t 1 ]; then B=$'\033[1m' R=$'\033[0m'; else B="" R=""; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
show() { printf '$ %s\n' "$*"; "$@"; }
netd() { "$NETD" "$@"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 (netd creates namespaces, bridges and veths)"

# ---- cleanup: only what this run created, processes by pid -----------------
TMP=""
DAEMON_PID=""
HOST_NS_CREATED=0
SANDBOXES=()      # sandboxes we asked netd to create (netd names their netns after them)
NETWORK_CREATED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        for s in "${SANDBOXES[@]}"; do
            "$NETD" sandbox rm "$s" >/dev/null 2>&1
        done
        [ "$NETWORK_CREATED" -eq 1 ] && "$NETD" network rm "$NET" >/dev/null 2>&1
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    # If the daemon could not remove a sandbox, its namespace is still ours.
    for s in "${SANDBOXES[@]}"; do
        [ -e "/run/netns/$s" ] && ip netns delete "$s" 2>/dev/null
    done
    # Deleting the host namespace takes its bridges, veths and nftables table with it.
    [ "$HOST_NS_CREATED" -eq 1 ] && ip netns delete "$HOST_NS" 2>/dev/null
    [ -n "$TMP" ] && rm -rf "$TMP"
    if [ "$rc" -ne 0 ]; then
        printf '\ndemo: failed (exit %s); everything it created has been removed\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. dependencies and build ---------------------------------------------
step "Installing dependencies (scripts/setup.sh)"
"$REPO/scripts/setup.sh"

step "Building netd (cargo build --release -p netd)"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup, then run this again"
(cd "$REPO" && cargo build --release -p netd --quiet)
NETD="$REPO/target/release/netd"
[ -x "$NETD" ] || die "build produced no $NETD"

# ---- 2. a host namespace and the daemon ------------------------------------
step "Starting netd daemon inside namespace $HOST_NS"
for ns in "$HOST_NS" "$SB_A" "$SB_B"; do
    [ -e "/run/netns/$ns" ] && die "network namespace $ns already exists (left from an earlier run?); remove it with: ip netns delete $ns"
done
ip netns add "$HOST_NS"
HOST_NS_CREATED=1
ip -n "$HOST_NS" link set lo up

TMP=$(mktemp -d /tmp/netd-demo.XXXXXX)
export NETD_SOCKET="$TMP/run/netd.sock"
# nsenter (not `ip netns exec`) keeps our mount namespace, so the sandbox
# namespaces the daemon mounts under /run/netns are visible to us too.
nsenter --net="/run/netns/$HOST_NS" "$NETD" daemon \
    --state-dir "$TMP/state" --run-dir "$TMP/run" >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
    [ -S "$NETD_SOCKET" ] && "$NETD" network ls >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TMP/daemon.log" >&2; die "the daemon exited"; }
    sleep 0.1
done
[ -S "$NETD_SOCKET" ] || { cat "$TMP/daemon.log" >&2; die "the daemon did not open $NETD_SOCKET"; }
echo "daemon pid $DAEMON_PID, NETD_SOCKET=$NETD_SOCKET"

# ---- 3. a network and two sandboxes ----------------------------------------
step "Creating network $NET ($SUBNET) and two sandboxes"
NETWORK_CREATED=1
show netd network create --subnet "$SUBNET" "$NET"
for s in "$SB_A" "$SB_B"; do
    SANDBOXES+=("$s")
    show netd sandbox create --network "$NET" "$s"
done

step "What netd knows"
show netd network ls
echo
show netd sandbox ls
echo
show netd network inspect "$NET"

# ---- 4. traffic ---------------------------------------------------------------
B_IP=$("$NETD" sandbox inspect "$SB_B" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["endpoints"][0]["ip"])')
step "Pinging $SB_B ($B_IP) from $SB_A"
show netd sandbox exec "$SB_A" -- ip -br addr
show netd sandbox exec "$SB_A" -- ping -c 3 -W 2 "$B_IP"

# ---- 5. tear down -------------------------------------------------------------
step "Removing everything"
show netd sandbox rm "$SB_A" "$SB_B"
SANDBOXES=()
show netd network rm "$NET"
NETWORK_CREATED=0
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
echo "daemon stopped"
ip netns delete "$HOST_NS"
HOST_NS_CREATED=0

step "Done: netd created a bridge, two veth pairs and two namespaces, and traffic flowed between them"
echo "Next: docs/getting-started.md, docs/cli.md, docs/api.md"
