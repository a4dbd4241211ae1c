#!/usr/bin/env bash
# Overlay networks across hosts (issue 13): what crossing hosts costs.
#
#   sudo bench/overlay.sh                     # builds netd (release)
#   sudo NETD=/path/to/netd bench/overlay.sh  # this binary, no build
#   sudo SAMPLES=20 BUDGET=60 bench/overlay.sh
#
# The world is the one of tests/src/cluster.rs: an underlay bridge in a
# namespace novb<pid>-u (198.51.100.0/24), three host namespaces
# novb<pid>-h1..h3 on it, an etcd on the underlay (198.51.100.254:2379,
# data dir under a temp dir), one `netd daemon --cluster-store ...` per host.
# Rows (a markdown table on stdout; progress on stderr):
#
#   ping            avg rtt of 50 pings (-i 0.02) between two sandboxes:
#                   on two hosts over the overlay, and on one host's bridge
#   TCP             iperf3 -t 5, one stream, the same two pairs
#   create->ready   `sandbox create` on host 1 until its name resolves at
#                   127.0.0.11 in host 2's sandbox and it answers that
#                   sandbox's ping: p50/p99 over SAMPLES (default 50), fewer
#                   when BUDGET seconds (default 150) run out (n says how many)
#   etcd/attach     etcd requests per `sandbox create` on the overlay: the
#                   delta of etcd's unary gRPC calls (grpc_server_handled_total)
#                   and of its mvcc range/put/txn/delete counters over
#                   ATTACHES creates (default 20), less the same counters over
#                   an idle stretch as long (lease keep-alives, watches)
#   docker          Docker's overlay (Debian docker.io: two dockerd in host
#                   namespaces, a swarm, an attachable overlay): ping and TCP
#                   as above; where it cannot run, one line saying why.
#                   DOCKER=0 leaves it out; ONLY=docker measures only it
#
# Everything runs in namespaces named novb<pid>-*; the root namespace is
# never touched. On any exit the daemons, etcd and iperf3 are stopped by pid
# and every namespace of this run is deleted.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAMPLES=${SAMPLES:-50}
BUDGET=${BUDGET:-150}
ATTACHES=${ATTACHES:-20}
P="novb$$"
UL=198.51.100
ETCD="http://$UL.254:2379"
TMP=$(mktemp -d /tmp/novb.XXXXXX)
# Pids of what this run started, one a line: a file, because some are
# started inside $(...) subshells, whose variables the parent never sees.
track() { echo "$1" >>"$TMP/pids"; }

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (namespaces, bridges, VXLAN devices)"
for t in etcd iperf3 dig python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/setup.sh installs it)"
done

cleanup() {
    set +e
    local pid sock
    for sock in "$TMP"/d*/sock; do
        [ -S "$sock" ] && timeout 20 docker -H "unix://$sock" rm -f "$P-k1" "$P-k2" >/dev/null 2>&1
    done
    local pids; pids=$(tac "$TMP/pids" 2>/dev/null)
    for pid in $pids; do kill "$pid" 2>/dev/null; done
    for pid in $pids; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    # containerd's shims outlive dockerd (they are meant to): ours are the
    # ones whose socket address is under this run's $TMP.
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $TMP/"); do kill -9 "$pid" 2>/dev/null; done
    local ns
    for ns in $(ls /run/netns 2>/dev/null | grep "^$P-"); do ip netns del "$ns"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
if [ -z "${NETD:-}" ]; then
    note "building netd (cargo build --release -p netd)"
    (cd "$REPO" && cargo build --release -p netd --quiet)
    NETD="$TARGET/release/netd"
fi
[ -x "$NETD" ] || die "no netd binary at $NETD"

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$P-$ns" "$@"; }
cli() { local h=$1; shift; "$NETD" --socket "$TMP/h$h/netd.sock" "$@"; }
# A sandbox's first address, from `sandbox inspect`.
sandbox_ip() { cli "$1" sandbox inspect "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["endpoints"][0]["ip"])'; }
# The avg of `ping -c 50` from network namespace path $1 to $2, in ms.
ping_avg() { nsenter --net="$1" ping -q -c 50 -i 0.02 "$2" | awk -F/ '/^rtt/ {print $5}'; }
# Gbit/s of `iperf3 -t 5` from namespace path $1 to the server in $2 at $3.
iperf() {
    nsenter --net="$2" iperf3 -s -1 -B "$3" >/dev/null 2>&1 &
    local srv=$!
    track "$srv"
    for _ in $(seq 50); do nsenter --net="$2" ss -Htln | grep -q ":5201 " && break; sleep 0.1; done
    nsenter --net="$1" iperf3 -c "$3" -t 5 -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
    wait "$srv" 2>/dev/null || true
}
# Sum of the etcd metric lines matching $1 (an awk regex on the line).
etcd_metric() {
    in_ns u curl -s -m 5 "$ETCD/metrics" | awk -v re="$1" '$0 !~ /^#/ && $0 ~ re {s += $NF} END {printf "%d\n", s}'
}
COUNTERS=('^grpc_server_handled_total.*grpc_type="unary"' '^etcd_debugging_mvcc_range_total'
    '^etcd_debugging_mvcc_put_total' '^etcd_debugging_mvcc_txn_total' '^etcd_debugging_mvcc_delete_total')
counters() { local c; for c in "${COUNTERS[@]}"; do printf '%s ' "$(etcd_metric "$c")"; done; echo; }

# --- Docker's overlay: two dockerd (Debian docker.io) in host namespaces
# dh1/dh2 on the same underlay (.11, .12), each in a private mount
# namespace with its data and exec roots under $TMP and without iptables;
# a swarm of the two, an attachable overlay, a container on each (an image
# imported from busybox, only `sleep`: no registry is reachable); ping and
# iperf3 run in the containers' network namespaces from here.
# Prints "PING TCP" or "why: ...".
dk() { local h=$1; shift; timeout 60 docker -H "unix://$TMP/d$h/sock" "$@"; }
docker_overlay() {
    command -v dockerd >/dev/null 2>&1 || { echo "why: no dockerd (Debian docker.io is not installed)"; return; }
    command -v docker >/dev/null 2>&1 || { echo "why: no docker CLI"; return; }
    command -v busybox >/dev/null 2>&1 || { echo "why: no busybox to make an image from"; return; }
    local h
    for h in 1 2; do
        ip netns add "$P-dh$h"
        in_ns "dh$h" ip link set lo up
        ip link add ul0 netns "$P-dh$h" type veth peer name "uld$h" netns "$P-u"
        in_ns u ip link set "uld$h" master ulbr up
        in_ns "dh$h" ip addr add "$UL.1$h/24" dev ul0
        in_ns "dh$h" ip link set ul0 up
        mkdir -p "$TMP/d$h"
        nsenter --net="/run/netns/$P-dh$h" unshare -m --propagation private dockerd --data-root "$TMP/d$h/data" \
            --exec-root "$TMP/d$h/exec" --pidfile "$TMP/d$h/pid" -H "unix://$TMP/d$h/sock" \
            --bridge none --iptables=false --ip6tables=false >"$TMP/d$h/log" 2>&1 &
        track "$!"
    done
    for h in 1 2; do
        for _ in $(seq 150); do dk "$h" info >/dev/null 2>&1 && break; sleep 0.2; done
        dk "$h" info >/dev/null 2>&1 || { echo "why: dockerd did not start: $(tail -1 "$TMP/d$h/log")"; return; }
    done
    dk 1 swarm init --advertise-addr "$UL.11" --listen-addr "$UL.11:2377" >/dev/null 2>&1 ||
        { echo "why: swarm init failed: $(tail -1 "$TMP/d1/log")"; return; }
    dk 2 swarm join --token "$(dk 1 swarm join-token -q worker)" --advertise-addr "$UL.12" "$UL.11:2377" >/dev/null 2>&1 ||
        { echo "why: swarm join failed: $(tail -1 "$TMP/d2/log")"; return; }
    dk 1 network create -d overlay --attachable --subnet 10.253.0.0/24 novbov >/dev/null
    mkdir -p "$TMP/rootfs/bin"
    cp "$(command -v busybox)" "$TMP/rootfs/bin/busybox"
    ln -sf busybox "$TMP/rootfs/bin/sleep"
    for h in 1 2; do
        tar -C "$TMP/rootfs" -c . | dk "$h" import - novbusy >/dev/null
        dk "$h" run -d --name "$P-k$h" --network novbov novbusy /bin/sleep 3600 >/dev/null 2>&1 ||
            { echo "why: a container on the overlay failed on host $h: $(tail -1 "$TMP/d$h/log")"; return; }
    done
    local p1 p2 ip2
    p1=$(dk 1 inspect -f '{{.State.Pid}}' "$P-k1")
    p2=$(dk 2 inspect -f '{{.State.Pid}}' "$P-k2")
    ip2=$(dk 2 inspect -f '{{(index .NetworkSettings.Networks "novbov").IPAddress}}' "$P-k2")
    for _ in $(seq 50); do nsenter --net="/proc/$p1/ns/net" ping -c 1 -W 1 "$ip2" >/dev/null 2>&1 && break; sleep 0.2; done
    echo "$(ping_avg "/proc/$p1/ns/net" "$ip2") $(iperf "/proc/$p1/ns/net" "/proc/$p2/ns/net" "$ip2")"
}
# --- the world
note "world: underlay, etcd, three hosts ($P-*)"
ip netns add "$P-u"
in_ns u ip link set lo up
in_ns u ip link add ulbr type bridge
in_ns u ip link set ulbr up
in_ns u ip addr add "$UL.254/24" dev ulbr
mkdir -p "$TMP/etcd"
nsenter --net="/run/netns/$P-u" etcd --name novb --data-dir "$TMP/etcd/data" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster novb=http://127.0.0.1:2380 --logger zap --log-outputs stderr \
    2>"$TMP/etcd/log" &
track "$!"
for _ in $(seq 200); do in_ns u curl -s -m 1 "$ETCD/health" | grep -q '"health":"true"' && break; sleep 0.1; done
in_ns u curl -s -m 1 "$ETCD/health" | grep -q '"health":"true"' || die "etcd did not come up: $(tail -3 "$TMP/etcd/log")"

# ONLY=docker: Docker's overlay alone (the rows netd needs a cluster for are left out).
if [ "${ONLY:-}" = docker ]; then
    note "Docker only: two dockerd in namespaces, a swarm, an attachable overlay"
    echo "docker: $(docker_overlay)"
    exit 0
fi

for h in 1 2 3; do
    ip netns add "$P-h$h"
    in_ns "h$h" ip link set lo up
    ip link add ul0 netns "$P-h$h" type veth peer name "ulh$h" netns "$P-u"
    in_ns u ip link set "ulh$h" master ulbr up
    in_ns "h$h" ip addr add "$UL.$h/24" dev ul0
    in_ns "h$h" ip link set ul0 up
    mkdir -p "$TMP/h$h"
    nsenter --net="/run/netns/$P-h$h" "$NETD" --socket "$TMP/h$h/netd.sock" daemon \
        --state-dir "$TMP/h$h/state" --run-dir "$TMP/h$h/run" \
        --cluster-store "etcd://$UL.254:2379" --cluster-advertise "$UL.$h" --cluster-host "h$h" \
        2>"$TMP/h$h/log" &
    track "$!"
done
for h in 1 2 3; do
    for _ in $(seq 200); do cli "$h" network ls >/dev/null 2>&1 && break; sleep 0.1; done
    cli "$h" network ls >/dev/null 2>&1 || die "daemon on h$h did not come up: $(tail -3 "$TMP/h$h/log")"
done

cli 1 network create --driver overlay --subnet 10.251.0.0/24 "$P-ov" >/dev/null
cli 1 network create --subnet 10.252.0.0/24 "$P-br" >/dev/null
for _ in $(seq 50); do cli 2 network inspect "$P-ov" >/dev/null 2>&1 && break; sleep 0.1; done
cli 1 sandbox create --network "$P-ov" "$P-a" >/dev/null
cli 2 sandbox create --network "$P-ov" "$P-b" >/dev/null
cli 1 sandbox create --network "$P-br" "$P-c" >/dev/null
cli 1 sandbox create --network "$P-br" "$P-d" >/dev/null
IP_B=$(sandbox_ip 2 "$P-b")
IP_D=$(sandbox_ip 1 "$P-d")
for _ in $(seq 50); do ip netns exec "$P-a" ping -c 1 -W 1 "$IP_B" >/dev/null 2>&1 && break; sleep 0.1; done

# --- datapath
note "ping and iperf3: overlay (h1 -> h2) and bridge (h1 -> h1)"
PING_OV=$(ping_avg "/run/netns/$P-a" "$IP_B")
PING_BR=$(ping_avg "/run/netns/$P-c" "$IP_D")
TCP_OV=$(iperf "/run/netns/$P-a" "/run/netns/$P-b" "$IP_B")
TCP_BR=$(iperf "/run/netns/$P-c" "/run/netns/$P-d" "$IP_D")

# --- create on host 1 until host 2's sandbox resolves and pings it
note "create -> ready: up to $SAMPLES samples in ${BUDGET}s"
: >"$TMP/ready"
deadline=$((SECONDS + BUDGET))
timeouts=0
for ((i = 0; i < SAMPLES && SECONDS < deadline; i++)); do
    s="$P-t$i"
    t0=$EPOCHREALTIME
    cli 1 sandbox create --network "$P-ov" "$s" >/dev/null
    ok=0
    for _ in $(seq 1000); do
        ip=$(ip netns exec "$P-b" dig @127.0.0.11 +short +tries=1 +time=1 "$s" 2>/dev/null | head -1)
        if [ -n "$ip" ] && ip netns exec "$P-b" ping -c 1 -W 1 "$ip" >/dev/null 2>&1; then ok=1; break; fi
        [ "$(echo "${EPOCHREALTIME//[!0-9]/} - ${t0//[!0-9]/} > 10000000" | bc)" = 1 ] && break
    done
    t1=$EPOCHREALTIME
    if [ "$ok" = 1 ]; then
        echo "scale=3; (${t1//[!0-9]/} - ${t0//[!0-9]/}) / 1000" | bc >>"$TMP/ready"
    else
        timeouts=$((timeouts + 1))
    fi
    cli 1 sandbox rm "$s" >/dev/null
done
read -r R50 R99 < <(sort -n "$TMP/ready" | awk '{a[NR]=$1} END {if (NR == 0) {print "- -"; exit}
    i50=int((NR-1)*0.5+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%.1f %.1f\n", a[i50], a[i99]}')
RN=$(wc -l <"$TMP/ready")

# --- etcd requests per attach
note "etcd requests: $ATTACHES creates, then as long idle"
read -ra C0 < <(counters)
t0=$SECONDS
for ((i = 0; i < ATTACHES; i++)); do cli 3 sandbox create --network "$P-ov" "$P-e$i" >/dev/null; done
read -ra C1 < <(counters)
sleep $((SECONDS - t0 > 0 ? SECONDS - t0 : 1))
read -ra C2 < <(counters)
PER=()
for k in 0 1 2 3 4; do
    PER+=("$(echo "scale=2; ((${C1[$k]} - ${C0[$k]}) - (${C2[$k]} - ${C1[$k]})) / $ATTACHES" | bc)")
done

if [ "${DOCKER:-1}" = 0 ]; then
    DK="why: not measured (DOCKER=0)"
else
    note "Docker: two dockerd in namespaces, a swarm, an attachable overlay"
    DK=$(docker_overlay)
fi

if [ "${DK#why: }" != "$DK" ]; then
    DK_PING="-"
    DK_TCP="-"
    DK_NOTE="Docker's overlay was not measured: ${DK#why: }"
else
    read -r DK_PING DK_TCP <<<"$DK"
    DK_NOTE="Docker: docker.io $(dockerd --version | awk '{print $3}' | tr -d ,) swarm of two dockerd, attachable overlay, one container per host."
fi

cat <<EOF

| measure | netd overlay, two hosts | netd bridge, one host | Docker overlay, two hosts |
|---|---|---|---|
| ping avg rtt, 50 pings (ms) | $PING_OV | $PING_BR | $DK_PING |
| TCP, iperf3 -t 5, 1 stream (Gbit/s) | $TCP_OV | $TCP_BR | $DK_TCP |

| create on h1 -> resolves and answers ping on h2 | p50 ms | p99 ms | n | timeouts (10 s) |
|---|---|---|---|---|
| netd overlay | $R50 | $R99 | $RN | $timeouts |

| etcd per attach (over $ATTACHES, idle subtracted) | unary gRPC | mvcc range | mvcc put | mvcc txn | mvcc delete |
|---|---|---|---|---|---|
| netd overlay | ${PER[0]} | ${PER[1]} | ${PER[2]} | ${PER[3]} | ${PER[4]} |

$DK_NOTE
EOF
