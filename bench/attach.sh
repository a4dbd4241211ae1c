#!/usr/bin/env bash
# Attach/detach latency through the CLI, with 1, 100 and 1000 sandboxes
# already on the network.
#
#   sudo bench/attach.sh                      # points 1 100 1000, 30 samples each
#   sudo SAMPLES=50 POINTS="1 100" bench/attach.sh
#   sudo NETD=/path/to/netd bench/attach.sh   # skip the build, use this binary
#   sudo LIB_BIN=/path/to/examples/attach_latency ...   # and this example
#   sudo NETD_BASE_BIN=/work/before/target/release bench/attach.sh
#                                             # and another build, side by side
#   sudo NETD_BASE_BIN=$PWD/target/release NETWORK_ARGS="--ipv6 --subnet fd00:198::/64" \
#        LABELS="ipv4 dual" LIBRARY=0 bench/attach.sh
#                                             # one build, an IPv4 network (base) beside
#                                             # a dual-stack one (this), side by side
#
# Two builds in one run: with NETD_BASE_BIN=DIR (the release dir of another
# build, e.g. the commit before: DIR/netd, and DIR/examples/attach_latency
# for the library part), that build gets a world of its own (daemon in
# ndbench-<pid>-bhost, its sandboxes named ndbench-<pid>-b*), populated to
# the same points. Every sample then runs the five operations on the base
# build and on this one in turn, so load from elsewhere weighs on both
# alike; rows are labelled "before" (base) and "after" (this build). The
# library-call examples cannot take turns within a run: base first, then
# this build's, one after the other.
#
# What is timed (wall clock around one `netd` CLI process, so each number
# includes process start-up and the HTTP round trip to the daemon):
#   create      netd sandbox create --network N S   (new netns + veth + address + route)
#   rm          netd sandbox rm S                    (veth and netns removed)
#   connect     netd network connect N P             (P: an existing sandbox, not on N)
#   disconnect  netd network disconnect N P
#   inspect     netd sandbox inspect P               (baseline: CLI + API round trip, no kernel work)
#
# Each sample is: create S, rm S, connect P, disconnect P, inspect P, so
# every operation sees exactly PRESENT other sandboxes on the network.
# Percentiles are nearest-rank; with 30 samples p99 is the slowest sample.
#
# Library calls: if netd/examples/attach_latency.rs exists (and LIBRARY is not
# 0), the same points are also measured in-process by that example, which
# calls the netd library's operations directly (no CLI process, no daemon, no
# HTTP), in a second namespace ndbench-<pid>-lib, after the CLI part's
# sandboxes are gone. That example names its sandbox
# namespaces ndlat-<its pid>-<n>; this script removes them too on any exit.
#
# Everything runs in namespaces this script creates (prefix ndbench-<pid>):
# the daemon in ndbench-<pid>-host, each sandbox in its own namespace. The
# root namespace is never touched. On any exit, Ctrl-C included, the daemon
# is stopped (by pid) and every namespace this run created is deleted.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAMPLES=${SAMPLES:-30}
POINTS=${POINTS:-"1 100 1000"}
WARMUP=${WARMUP:-3}
LIBRARY=${LIBRARY:-auto}    # auto: measure library calls when the example exists; 0: never
SUBNET=10.198.0.0/16
PREFIX="ndbench-$$"
HOST_NS="$PREFIX-host"
NET="$PREFIX-net"

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (netd creates namespaces, bridges and veths)"
for p in $POINTS; do [[ "$p" =~ ^[0-9]+$ && "$p" -ge 1 ]] || die "POINTS must be positive integers, got '$p'"; done
[[ "$SAMPLES" =~ ^[0-9]+$ && "$SAMPLES" -ge 1 ]] || die "SAMPLES must be a positive integer"

# Where cargo puts the builds: CARGO_TARGET_DIR when set, else <repo>/target.
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
if [ -z "${NETD:-}" ]; then
    note "building netd (cargo build --release -p netd)"
    (cd "$REPO" && cargo build --release -p netd --quiet)
    NETD="$TARGET/release/netd"
fi
[ -x "$NETD" ] || die "no netd binary at $NETD"
LIB_BIN=${LIB_BIN:-}
[ "$LIBRARY" != 0 ] || LIB_BIN=""
if [ "$LIBRARY" != 0 ] && [ -n "$LIB_BIN" ]; then
    [ -x "$LIB_BIN" ] || die "no example binary at $LIB_BIN"
elif [ "$LIBRARY" != 0 ] && [ -f "$REPO/netd/examples/attach_latency.rs" ]; then
    note "building the library-call example (cargo build --release -p netd --example attach_latency)"
    (cd "$REPO" && cargo build --release -p netd --example attach_latency --quiet)
    LIB_BIN="$TARGET/release/examples/attach_latency"
elif [ "$LIBRARY" != 0 ]; then
    note "no netd/examples/attach_latency.rs: skipping the library-call measurement"
fi

# The builds measured, by key: "cur" is this one; "base" NETD_BASE_BIN's.
# Per build: its netd and example, its host namespace, the prefix of its
# sandbox names (netd names a sandbox's namespace after it, and namespace
# names are global) and its label in the tables.
BASE=${NETD_BASE_BIN:-}
BUILDS=(cur)
declare -A BIN=([cur]=$NETD) LIB=([cur]=$LIB_BIN) HOSTNS=([cur]=$HOST_NS) SP=([cur]="$PREFIX-") LABEL=([cur]="")
if [ -n "$BASE" ]; then
    [ -x "$BASE/netd" ] || die "NETD_BASE_BIN=$BASE has no netd"
    BUILDS=(base cur)
    BIN[base]=$BASE/netd
    HOSTNS[base]="$PREFIX-bhost"
    SP[base]="$PREFIX-b"
    read -r -a labels <<<"${LABELS:-before after}"
    LABEL=([base]=${labels[0]:-before} [cur]=${labels[1]:-after})
    LIB[base]=""
    if [ -n "$LIB_BIN" ] && [ -x "$BASE/examples/attach_latency" ]; then
        LIB[base]=$BASE/examples/attach_latency
    elif [ -n "$LIB_BIN" ]; then
        note "no $BASE/examples/attach_latency: the library-call part runs this build only"
    fi
fi

# ---- cleanup ---------------------------------------------------------------------
TMP=$(mktemp -d /tmp/ndbench.XXXXXX)
CREATED="$TMP/created"    # every sandbox name we asked netd for: netd names the netns after it
: >"$CREATED"
declare -A DAEMON_PID=()
HOST_NS_CREATED=()
LIB_PID=""
LIB_NS="$PREFIX-lib"
LIB_NS_CREATED=0

# The CLI part's world: its daemon (by pid), its sandbox namespaces, its host
# namespace. The state dir is thrown away, so there is no record to keep
# consistent: deleting the namespaces is the quickest complete cleanup.
# Sandbox namespaces take their veth ends with them; the host namespace takes
# the bridge, the host veths and the nftables table. Safe to call twice.
cleanup_cli_world() {
    local pid
    for pid in "${DAEMON_PID[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
    DAEMON_PID=()
    local n
    n=$(while read -r s; do
        if [ -e "/run/netns/$s" ]; then echo "netns delete $s"; fi
    done <"$CREATED" | tee "$TMP/batch" | wc -l)
    if [ "$n" -gt 0 ]; then
        note "cleanup: deleting $n sandbox namespaces"
        ip -force -batch "$TMP/batch" 2>/dev/null || true
    fi
    : >"$CREATED"
    for n in "${HOST_NS_CREATED[@]}"; do ip netns delete "$n" 2>/dev/null || true; done
    HOST_NS_CREATED=()
}

# The library-call part's world: the example process (by pid), the sandbox
# namespaces it names ndlat-<pid>-<n>, its state dir, and its namespace.
cleanup_lib_world() {
    if [ -n "$LIB_PID" ]; then
        if kill -0 "$LIB_PID" 2>/dev/null; then
            kill -TERM "$LIB_PID" 2>/dev/null
            wait "$LIB_PID" 2>/dev/null || true
        fi
        local f
        : >"$TMP/libbatch"
        for f in /run/netns/ndlat-"$LIB_PID"-*; do
            if [ -e "$f" ]; then echo "netns delete ${f#/run/netns/}" >>"$TMP/libbatch"; fi
        done
        if [ -s "$TMP/libbatch" ]; then ip -force -batch "$TMP/libbatch" 2>/dev/null || true; fi
        rm -rf "${TMPDIR:-/tmp}/ndlat-$LIB_PID"
        LIB_PID=""
    fi
    if [ "$LIB_NS_CREATED" -eq 1 ]; then
        ip netns delete "$LIB_NS" 2>/dev/null || true
        LIB_NS_CREATED=0
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    cleanup_cli_world
    cleanup_lib_world
    rm -rf "$TMP"
    [ "$rc" -ne 0 ] && note "stopped (exit $rc); everything this run created has been removed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- daemon -------------------------------------------------------------------------
# One daemon per build, each in its host namespace with its own state and
# run dirs ($TMP/state, $TMP/run for this build, as before; $TMP/base/* for
# the base build).
declare -A SOCK=()
for B in "${BUILDS[@]}"; do
    ns=${HOSTNS[$B]}
    dir=$TMP
    [ "$B" = cur ] || dir=$TMP/$B
    [ -e "/run/netns/$ns" ] && die "namespace $ns already exists"
    ip netns add "$ns"
    HOST_NS_CREATED+=("$ns")
    ip -n "$ns" link set lo up
    SOCK[$B]="$dir/run/netd.sock"
    mkdir -p "$dir"
    NETD_SOCKET=${SOCK[$B]} nsenter --net="/run/netns/$ns" "${BIN[$B]}" daemon \
        --state-dir "$dir/state" --run-dir "$dir/run" >"$dir/daemon.log" 2>&1 &
    DAEMON_PID[$B]=$!
    for _ in $(seq 100); do
        [ -S "${SOCK[$B]}" ] && NETD_SOCKET=${SOCK[$B]} "${BIN[$B]}" network ls >/dev/null 2>&1 && break
        kill -0 "${DAEMON_PID[$B]}" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "the daemon exited"; }
        sleep 0.1
    done
    [ -S "${SOCK[$B]}" ] || die "the daemon did not open its socket"
done

# The CLI of build $B, talking to that build's daemon.
netd() { NETD_SOCKET=${SOCK[$B]} "${BIN[$B]}" "$@"; }
new_sandbox() { # name [args...]: create, recording the name first so cleanup knows it
    local name=$1
    shift
    echo "$name" >>"$CREATED"
    netd sandbox create "$@" "$name" >/dev/null
}

# The probe joins and leaves the network; it starts on it (so it is a
# sandbox with a namespace) and is disconnected before measuring.
# NETWORK_ARGS (BASE_NETWORK_ARGS for the base build): more `network
# create` flags, e.g. a dual-stack network for this build only.
declare -A NETARGS=([cur]="${NETWORK_ARGS:-}" [base]="${BASE_NETWORK_ARGS:-}")
for B in "${BUILDS[@]}"; do
    # shellcheck disable=SC2086 # the flags are words on purpose
    netd network create --subnet "$SUBNET" ${NETARGS[$B]} "$NET" >/dev/null
    new_sandbox "${SP[$B]}probe" --network "$NET"
    netd network disconnect "$NET" "${SP[$B]}probe"
done

# ---- measurement ----------------------------------------------------------------
now_us() { local t=${EPOCHREALTIME//[!0-9]/}; echo "$((10#$t))"; }
timed() { # file cmd...: run cmd, append its wall time in microseconds to file
    local f=$1 t0 t1
    shift
    t0=${EPOCHREALTIME//[!0-9]/}
    "$@" >/dev/null
    t1=${EPOCHREALTIME//[!0-9]/}
    echo $((10#$t1 - 10#$t0)) >>"$f"
}
pct() { # file percent -> milliseconds, nearest rank
    sort -n "$1" | awk -v p="$2" '{v[NR]=$1} END {i=int((p/100)*NR); if (i<(p/100)*NR) i++; if (i<1) i=1; printf "%.1f", v[i]/1000}'
}

present=0
seq_no=0
START=$(now_us)
ROWS="$TMP/rows"
: >"$ROWS"
for target in $(tr ' ' '\n' <<<"$POINTS" | sort -n | uniq); do
    for B in "${BUILDS[@]}"; do
        have=$present
        if [ "$have" -lt "$target" ]; then
            note "populating${LABEL[$B]:+ ${LABEL[$B]}}: $have -> $target sandboxes on $NET"
            t0=$(now_us)
            while [ "$have" -lt "$target" ]; do
                have=$((have + 1))
                new_sandbox "${SP[$B]}p$have" --network "$NET"
            done
            note "populated $target in $((($(now_us) - t0) / 1000))ms"
        fi
        have=$(netd network inspect "$NET" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["endpoints"]))')
        [ "$have" -eq "$target" ] || die "expected $target endpoints on $NET, netd reports $have"
    done
    present=$target

    note "measuring with $present present: $SAMPLES samples (+$WARMUP warm-up)"
    for B in "${BUILDS[@]}"; do
        for op in create rm connect disconnect inspect; do : >"$TMP/$B.$present.$op"; done
    done
    for i in $(seq $((WARMUP + SAMPLES))); do
        # Two builds take turns, the first of each sample alternating.
        order=("${BUILDS[@]}")
        if [ $((i % 2)) -eq 0 ] && [ ${#BUILDS[@]} -eq 2 ]; then order=("${BUILDS[1]}" "${BUILDS[0]}"); fi
        for B in "${order[@]}"; do
            seq_no=$((seq_no + 1))
            s="${SP[$B]}m$seq_no"
            probe="${SP[$B]}probe"
            echo "$s" >>"$CREATED"
            if [ "$i" -le "$WARMUP" ]; then d="$TMP/$B.warmup"; else d="$TMP/$B.$present"; fi
            timed "$d.create" netd sandbox create --network "$NET" "$s"
            timed "$d.rm" netd sandbox rm "$s"
            timed "$d.connect" netd network connect "$NET" "$probe"
            timed "$d.disconnect" netd network disconnect "$NET" "$probe"
            timed "$d.inspect" netd sandbox inspect "$probe"
        done
    done
    for op in create rm connect disconnect inspect; do
        for B in "${BUILDS[@]}"; do
            f="$TMP/$B.$present.$op"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$present" "$op" "$(pct "$f" 50)" "$(pct "$f" 99)" "$(wc -l <"$f")" "${LABEL[$B]}" >>"$ROWS"
        done
    done
done
CLI_S=$((($(now_us) - START) / 1000000))

# The CLI part is done: stop its daemon and drop its sandboxes before the
# library run, so the two do not share the machine.
# The builds' examples run one after the other, each in a fresh namespace.
declare -A LIB_S=()
if [ -n "$LIB_BIN" ]; then
    note "CLI part done in ${CLI_S}s; removing its sandboxes before the library-call run"
    cleanup_cli_world
    for B in "${BUILDS[@]}"; do
        [ -n "${LIB[$B]}" ] || continue
        [ -e "/run/netns/$LIB_NS" ] && die "namespace $LIB_NS already exists"
        ip netns add "$LIB_NS"
        LIB_NS_CREATED=1
        ip -n "$LIB_NS" link set lo up
        note "measuring library calls${LABEL[$B]:+ (${LABEL[$B]})} (points $POINTS, $SAMPLES samples)"
        t0=$(now_us)
        nsenter --net="/run/netns/$LIB_NS" "${LIB[$B]}" "$(tr ' ' ',' <<<"$POINTS")" "$SAMPLES" >"$TMP/$B.lib.out" 2>"$TMP/lib.err" &
        LIB_PID=$!
        wait "$LIB_PID" || { cat "$TMP/lib.err" >&2; die "the library-call example failed"; }
        LIB_S[$B]=$((($(now_us) - t0) / 1000000))
        cleanup_lib_world
    done
fi
TOTAL_S=$((($(now_us) - START) / 1000000))

printf '\nThrough the CLI (one netd process per operation, daemon over the API socket):\n'
if [ -z "$BASE" ]; then
    printf '%-8s  %-10s  %8s  %8s  %4s\n' present op "p50 ms" "p99 ms" n
    while IFS=$'\t' read -r p o a b n _; do
        printf '%-8s  %-10s  %8s  %8s  %4s\n' "$p" "$o" "$a" "$b" "$n"
    done <"$ROWS"
else
    printf '%-8s  %-10s  %-6s  %8s  %8s  %4s\n' present op build "p50 ms" "p99 ms" n
    while IFS=$'\t' read -r p o a b n l; do
        printf '%-8s  %-10s  %-6s  %8s  %8s  %4s\n' "$p" "$o" "$l" "$a" "$b" "$n"
    done <"$ROWS"
fi
for B in "${BUILDS[@]}"; do
    [ -s "$TMP/$B.lib.out" ] || continue
    printf '\nLibrary calls%s (netd/examples/attach_latency: the same operations in-process, no CLI, no daemon; %ss):\n' \
        "${LABEL[$B]:+, ${LABEL[$B]}}" "${LIB_S[$B]}"
    cat "$TMP/$B.lib.out"
done
for B in "${BUILDS[@]}"; do
    printf '\n%snetd %s, %s CPUs, kernel %s' "${LABEL[$B]:+${LABEL[$B]}: }" \
        "$("${BIN[$B]}" --version | awk '{print $2}')" "$(nproc)" "$(uname -r)"
done
printf '; CLI part %ss, total %ss (population + measurement)\n' "$CLI_S" "$TOTAL_S"
