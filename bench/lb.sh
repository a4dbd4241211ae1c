#!/usr/bin/env bash
# netd-lb against nginx and haproxy as HTTP load balancers, side by side in
# one run: the same three backends, the same client, the same core count.
#
#   sudo bench/lb.sh                 # 10 s per measurement, 3 rounds
#   sudo DURATION=20 ROUNDS=5 bench/lb.sh
#   sudo NETD_LB=/path/netd-lb NETD=/path/netd bench/lb.sh   # skip the builds
#
# Environment:
#   DURATION     seconds of load per measurement               (default 10)
#   ROUNDS       measurements per balancer, interleaved; the   (default 3)
#                table shows the round with the median req/s
#   CONNECTIONS  concurrent client connections (wrk -c)        (default 50)
#   LB_THREADS   worker threads/processes of every balancer    (default 1)
#   LB_CPUS      CPUs the balancer under test is pinned to     (default 0)
#   LOAD_CPUS    CPUs of wrk and the backends                  (default: the rest)
#   TOOLS        which balancers to run           (default "netd-lb nginx haproxy");
#                also netd-lb-h2c: netd-lb with --h2c, which runs
#                pingora's HTTP proxy instead of netd-lb's own HTTP/1.1 path;
#                and netd-lb-base: the netd-lb binary in NETD_LB_BASE (another
#                build, e.g. main's, to compare against in the same run)
#   NETD_BASE_BIN  a release dir of another build (e.g. the commit before's
#                  target/release): sets NETD_LB_BASE to its netd-lb and runs
#                  netd-lb-base just before netd-lb in every round, the rows
#                  labelled "before" and "after". The base balancer discovers
#                  its backends through this build's daemon.
#
# Setup: `netd daemon` in a host namespace ndFb<pid>-host, a bridge network
# 10.196.200.0/24 with three sandboxes carrying the alias `web`; in each, an
# nginx serving `return 200 "<name>\n"` on :8000 (one worker, no access log).
# The balancers run in the host namespace, one at a time, each pinned to
# LB_CPUS with LB_THREADS workers, all keeping connections to the backends
# alive and adding X-Forwarded-For:
#   netd-lb   --network net --alias web --port 8000 (release build; API
#             discovery, round-robin, TCP health checks every 1 s)
#   nginx     upstream of the three addresses, keepalive 64, round-robin
#   haproxy   mode http, balance roundrobin, http-reuse always, check inter 1s
# wrk (1 thread, CONNECTIONS connections, pinned to LOAD_CPUS) runs in the
# host namespace against 127.0.0.1; a direct row measures one backend
# without a balancer. Latency percentiles are wrk's (--latency). "CPU us/req"
# is the balancer's user+system time (all its processes) during the
# measurement over the requests served: on a shared, noisy machine it moves
# less than req/s does.
#
# Sandbox rule: everything lives in namespaces ndFb<pid>-*; nothing touches
# the root namespace, no traffic leaves the run's namespaces. On any exit the
# processes started here are killed by pid and the namespaces removed.
#
# Needs root, iproute2, util-linux (nsenter, taskset), wrk, nginx, haproxy
# (Debian packages; installed with apt-get when missing), cargo.
set -euo pipefail
export LC_ALL=C

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
LB_THREADS=${LB_THREADS:-1}
NCPU=$(nproc)
LB_CPUS=${LB_CPUS:-0}
if [[ -z "${LOAD_CPUS:-}" ]]; then
    if ((NCPU > 1)); then LOAD_CPUS="1-$((NCPU - 1))"; else LOAD_CPUS=0; fi
fi
read -ra TOOLS <<<"${TOOLS:-netd-lb nginx haproxy}"
if [[ -n "${NETD_BASE_BIN:-}" ]]; then
    NETD_LB_BASE=${NETD_LB_BASE:-$NETD_BASE_BIN/netd-lb}
    [[ -x $NETD_LB_BASE ]] || { echo "bench/lb.sh: no netd-lb at $NETD_LB_BASE" >&2; exit 1; }
    t=()
    for x in "${TOOLS[@]}"; do
        [[ $x == netd-lb-base ]] && continue
        [[ $x == netd-lb ]] && t+=(netd-lb-base)
        t+=("$x")
    done
    TOOLS=("${t[@]}")
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
P="ndFb$$"
HOST="$P-host"
DIR=$(mktemp -d "/tmp/netd-lb-bench.XXXXXX")
SOCK="$DIR/netd.sock"
PIDS=()

[[ $EUID -eq 0 ]] || { echo "bench/lb.sh: run as root (it creates namespaces)" >&2; exit 1; }

missing=()
for t in wrk:wrk nginx:nginx-light haproxy:haproxy nsenter:util-linux taskset:util-linux; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
fi

# netd-lb is measured in a release build; the daemon only answers the
# balancer's discovery, so its debug build is enough.
if [[ -z "${NETD_LB:-}" ]]; then
    echo "building netd-lb (release)..." >&2
    (cd "$ROOT" && cargo build --release -q -p netd-lb)
fi
if [[ -z "${NETD:-}" ]]; then
    (cd "$ROOT" && cargo build -q -p netd)
fi
# Where cargo put them: CARGO_TARGET_DIR when set, else <workspace>/target.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NETD=${NETD:-$TARGET/debug/netd}
NETD_LB=${NETD_LB:-$TARGET/release/netd-lb}

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [[ -S "$SOCK" ]]; then
        ids=$("$NETD" --socket "$SOCK" sandbox ls --quiet 2>/dev/null)
        [[ -n "$ids" ]] && "$NETD" --socket "$SOCK" sandbox rm --force $ids >/dev/null 2>&1
        "$NETD" --socket "$SOCK" network rm net >/dev/null 2>&1
    fi
    [[ -n "${DAEMON:-}" ]] && { kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; }
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# Foreground only: a shell function run with & is a subshell whose pid is
# not the process's; background processes are started with `nsenter ... &`
# directly (nsenter and taskset exec), so $! is the process itself.
inhost() { nsenter --net="/run/netns/$HOST" "$@"; }
HOSTNS=(nsenter --net="/run/netns/$HOST")
netd() { "$NETD" --socket "$SOCK" "$@"; }

wait_port() { # ns addr:port
    for _ in $(seq 200); do
        if nsenter --net="/run/netns/$1" bash -c "exec 3<>/dev/tcp/${2%:*}/${2#*:}" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing answers on $2 in $1" >&2
    return 1
}

# ---- the world -------------------------------------------------------------
ip netns add "$HOST"
ip -n "$HOST" link set lo up
"${HOSTNS[@]}" "$NETD" --socket "$SOCK" daemon --state-dir "$DIR/state" --run-dir "$DIR/run" \
    2>"$DIR/daemon.log" &
DAEMON=$!
for _ in $(seq 200); do netd network ls >/dev/null 2>&1 && break; sleep 0.05; done
netd network create --subnet 10.196.200.0/24 net >/dev/null

IPS=()
for i in 1 2 3; do
    name="$P-b$i"
    netd sandbox create --network net --alias web "$name" >/dev/null
    ip=$(netd network inspect net | python3 -c '
import json, sys
v = json.load(sys.stdin)
v = v[0] if isinstance(v, list) else v
print(next(e["ip"] for e in v["endpoints"] if e["sandbox_name"] == sys.argv[1]))' "$name")
    IPS+=("$ip")
    mkdir -p "$DIR/b$i"
    cat >"$DIR/b$i/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $DIR/b$i/nginx.pid;
error_log $DIR/b$i/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $DIR/b$i/tmp;
    proxy_temp_path $DIR/b$i/tmp;
    fastcgi_temp_path $DIR/b$i/tmp;
    uwsgi_temp_path $DIR/b$i/tmp;
    scgi_temp_path $DIR/b$i/tmp;
    keepalive_requests 100000;
    server {
        listen 8000 reuseport;
        location / { default_type text/plain; return 200 "$name\n"; }
    }
}
EOF
    nsenter --net="/run/netns/$name" taskset -c "$LOAD_CPUS" \
        nginx -e "$DIR/b$i/error.log" -c "$DIR/b$i/nginx.conf" -p "$DIR/b$i" &
    PIDS+=($!)
done
for ip in "${IPS[@]}"; do wait_port "$HOST" "$ip:8000"; done

# ---- the balancers -----------------------------------------------------------
mkdir -p "$DIR/nginx-lb"
cat >"$DIR/nginx-lb/nginx.conf" <<EOF
worker_processes $LB_THREADS;
daemon off;
pid $DIR/nginx-lb/nginx.pid;
error_log $DIR/nginx-lb/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $DIR/nginx-lb/tmp;
    proxy_temp_path $DIR/nginx-lb/tmp;
    fastcgi_temp_path $DIR/nginx-lb/tmp;
    uwsgi_temp_path $DIR/nginx-lb/tmp;
    scgi_temp_path $DIR/nginx-lb/tmp;
    keepalive_requests 100000;
    upstream web {
        server ${IPS[0]}:8000;
        server ${IPS[1]}:8000;
        server ${IPS[2]}:8000;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:8082;
        location / {
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
cat >"$DIR/haproxy.cfg" <<EOF
global
    nbthread $LB_THREADS
    # haproxy raises RLIMIT_NOFILE to ~2x maxconn: stay under common hard limits
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:8083
    default_backend be
backend be
    balance roundrobin
    server b1 ${IPS[0]}:8000 check inter 1s
    server b2 ${IPS[1]}:8000 check inter 1s
    server b3 ${IPS[2]}:8000 check inter 1s
EOF

LB_PID=""
start_lb() { # tool -> sets LB_PID and LB_ADDR
    case $1 in
    netd-lb | netd-lb-h2c | netd-lb-base)
        LB_ADDR=127.0.0.1:8081
        extra=()
        [[ $1 == netd-lb-h2c ]] && extra=(--h2c)
        bin=$NETD_LB
        [[ $1 == netd-lb-base ]] && bin=${NETD_LB_BASE:?netd-lb-base needs NETD_LB_BASE}
        RUST_LOG=warn "${HOSTNS[@]}" taskset -c "$LB_CPUS" "$bin" --listen "$LB_ADDR" --network net \
            --alias web --port 8000 --socket "$SOCK" --threads "$LB_THREADS" "${extra[@]}" \
            2>"$DIR/$1.log" &
        ;;
    nginx)
        LB_ADDR=127.0.0.1:8082
        "${HOSTNS[@]}" taskset -c "$LB_CPUS" nginx -e "$DIR/nginx-lb/error.log" \
            -c "$DIR/nginx-lb/nginx.conf" -p "$DIR/nginx-lb" &
        ;;
    haproxy)
        LB_ADDR=127.0.0.1:8083
        "${HOSTNS[@]}" taskset -c "$LB_CPUS" haproxy -db -f "$DIR/haproxy.cfg" 2>"$DIR/haproxy.log" &
        ;;
    direct)
        LB_ADDR=${IPS[0]}:8000
        LB_PID=""
        return
        ;;
    esac
    LB_PID=$!
    PIDS+=("$LB_PID")
    wait_port "$HOST" "$LB_ADDR"
    # every backend answers through it
    for _ in $(seq 100); do
        seen=$(for _ in 1 2 3 4 5 6; do inhost curl -s "http://$LB_ADDR/"; done | sort -u | wc -l)
        [[ $seen -ge 3 ]] && return 0
        sleep 0.1
    done
    echo "$1 does not reach all three backends" >&2
    return 1
}

stop_lb() {
    [[ -n "$LB_PID" ]] || return 0
    kill "$LB_PID" 2>/dev/null || true
    wait "$LB_PID" 2>/dev/null || true
    LB_PID=""
}

to_ms() { # wrk latency (123.45us, 1.23ms, 1.02s) -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid -> user+system ticks of it and its children (nginx workers)
    local t=0 p v
    [[ -n "$1" ]] || { echo 0; return; }
    for p in "$1" $(pgrep -P "$1"); do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

measure() { # addr -> "rps p50 p99 errors cpu_us_per_request"
    inhost taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d2s "http://$1/" >/dev/null 2>&1 || true
    t0=$(cpu_ticks "$LB_PID")
    out=$(inhost taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://$1/")
    t1=$(cpu_ticks "$LB_PID")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    if [[ -n "$LB_PID" ]]; then
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="${reqs:-0}" \
            'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    else
        cpu=-
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/^ *Non-2xx/ {t += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) t += $i} END {print t + 0}' <<<"$out")
    echo "$rps $p50 $p99 $errs $cpu"
}

echo "netd-lb bench: ${DURATION}s x $ROUNDS rounds, $CONNECTIONS connections, balancers on CPU $LB_CPUS with $LB_THREADS worker(s), wrk and backends on CPU $LOAD_CPUS ($NCPU CPUs)" >&2
declare -A RESULTS
for r in $(seq "$ROUNDS"); do
    for tool in "${TOOLS[@]}" direct; do
        start_lb "$tool"
        res=$(measure "$LB_ADDR")
        stop_lb
        RESULTS[$tool]+="$res"$'\n'
        echo "  round $r $tool: $res" >&2
    done
done

median_row() { # tool -> the round with the median req/s
    local rows=${RESULTS[$1]:-}
    sort -n -k1,1 <<<"${rows%$'\n'}" | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'
}

ref=$(median_row nginx 2>/dev/null | awk '{print $1}')
AFTER="" BEFORE=base
if [[ -n "${NETD_BASE_BIN:-}" ]]; then AFTER="after " BEFORE=before; fi
printf '\n| %-22s | %10s | %9s | %9s | %6s | %12s | %10s |\n' "proxy" "req/s" "p50 ms" "p99 ms" "errors" "vs nginx" "CPU us/req"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------" "------------" "-----------" "-----------" "--------" "--------------" "------------"
for tool in "${TOOLS[@]}" direct; do
    read -r rps p50 p99 errs cpu <<<"$(median_row "$tool")"
    label=$tool
    case $tool in
    netd-lb) label="netd-lb ${AFTER}$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo)" ;;
    netd-lb-h2c) label="netd-lb h2c (pingora)" ;;
    netd-lb-base) label="netd-lb $BEFORE" ;;
    nginx) label="nginx $(nginx -v 2>&1 | sed 's|.*/||')" ;;
    haproxy) label="haproxy $(haproxy -v | head -1 | awk '{print $3}')" ;;
    direct) label="direct (1 backend)" ;;
    esac
    ratio=$(awk -v a="$rps" -v b="${ref:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    printf '| %-22s | %10.0f | %9.3f | %9.3f | %6s | %12s | %10s |\n' "$label" "$rps" "$p50" "$p99" "$errs" "$ratio" "$cpu"
done
if [[ -n "${NETD_BASE_BIN:-}" ]]; then
    a=$(median_row netd-lb 2>/dev/null | awk '{print $1}')
    b=$(median_row netd-lb-base 2>/dev/null | awk '{print $1}')
    awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { if (a > 0 && b > 0) printf "\nnetd-lb after / before req/s: %.2f\n", a / b }'
fi
