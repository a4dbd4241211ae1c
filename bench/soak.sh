#!/usr/bin/env bash
# A long soak of the CNI plugin: CYCLES ADD/DEL cycles of a container with a
# published port and DNS, exec'd the way libcni does; every KILL_EVERY-th
# ADD is killed -9 part-way (after a random 0-KILL_MS ms) and never DELeted,
# as when a runtime dies. Then GC with an empty valid-attachments list, and
# checks that nothing leaked:
#   - links in the host namespace (veths, retired ndr* pairs) beyond lo,
#     the bridge and the uplink-free baseline,
#   - elements of the nftables maps of netd's table (published ports),
#   - store rows (sandboxes, endpoints),
#   - namespaces: netd adopts CNI namespaces and must never make one again
#     (a reconcile re-creates the namespace of a sandbox it still knows),
#   - the daemon's open fds (DNS sockets of sandboxes gone must be closed).
# Every DNS_EVERY-th cycle the container's own name is asked at 127.0.0.11
# from inside it and must answer its address.
#
# usage: bench/soak.sh                 (CYCLES=10000 KILL_EVERY=50 DNS_EVERY=100)
#   CYCLES=500 bench/soak.sh           a short run first
#   PLUGIN=PATH   a built netd-cni (netd beside it); default target/release,
#                 built when missing
#   SOAK_PREFIX=NAME  namespace prefix (default ndsoak); namespaces are NAME-PID-*
# Not in CI (10,000 cycles take minutes). Nothing touches the root
# namespace; only processes this script started are stopped, by pid.
set -euo pipefail

CYCLES=${CYCLES:-10000}
KILL_EVERY=${KILL_EVERY:-50}
KILL_MS=${KILL_MS:-15}
DNS_EVERY=${DNS_EVERY:-100}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
P=${SOAK_PREFIX:-ndsoak}-$$
TMP=$(mktemp -d /tmp/ndsoak.XXXXXX)
CNI=${CNI:-/usr/lib/cni}
HOST=$P-host
NET=soak
STATE=$TMP/state
RUN=$TMP/run

[ "$(id -u)" -eq 0 ] || { echo "soak: run as root (it makes namespaces, bridges and veths)" >&2; exit 1; }

stop_pidfile() { # file name: stop the process in FILE if it is still NAME
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  stop_pidfile "$RUN/netd.pid" netd
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -z "${PLUGIN:-}" ]; then
  PLUGIN=$TARGET/release/netd-cni
  [ -x "$PLUGIN" ] && [ -x "$TARGET/release/netd" ] ||
    (cd "$ROOT" && cargo build --release -q -p netd -p netd-cni)
fi
[ -x "$PLUGIN" ] && [ -x "$(dirname "$PLUGIN")/netd" ] || { echo "soak: no $PLUGIN with netd beside it" >&2; exit 1; }

ip netns add "$HOST"
ip -n "$HOST" link set lo up

conf() { # container port
  cat <<JSON
{"cniVersion":"1.1.0","name":"$NET","type":"netd-cni","subnet":"10.187.0.0/16","dnsEnabled":true,
 "capabilities":{"portMappings":true,"aliases":true},
 "runtimeConfig":{"portMappings":[{"hostPort":$2,"containerPort":80,"protocol":"tcp"}],
                  "aliases":{"$NET":["web"]}}}
JSON
}
cni() { # command container netns port   (stdout: the result)
  CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$3 CNI_IFNAME=eth0 CNI_PATH=$CNI \
    NETD_STATE_DIR=$STATE NETD_SOCKET=$RUN/netd.sock \
    nsenter --net="/run/netns/$HOST" "$PLUGIN" <<<"$(conf "$2" "$4")"
}
netd_cli() { "$(dirname "$PLUGIN")/netd" --socket "$RUN/netd.sock" "$@"; }
daemon_fds() { local pid; pid=$(cat "$RUN/netd.pid"); ls "/proc/$pid/fd" | wc -l; }
host_links() { ip -n "$HOST" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; }
map_elements() { # elements in every map of netd's table(s) in the host namespace
  nsenter --net="/run/netns/$HOST" nft -j list ruleset |
    python3 -c 'import json,sys
n=0
for o in json.load(sys.stdin)["nftables"]:
    m=o.get("map") or o.get("set")
    if m: n+=len(m.get("elem",[]))
print(n)'
}

# Warm-up: the first ADD with DNS starts the daemon and creates the network
# and its bridge; what is there after its DEL is the baseline.
ip netns add "$P-c"
cni ADD warm "$P-c" 30000 >/dev/null
cni DEL warm "$P-c" 30000 >/dev/null
sleep 1
BASE_LINKS=$(host_links | tr '\n' ' ')
BASE_FDS=$(daemon_fds)
BASE_ELEMS=$(map_elements)

start=$(date +%s)
killed=0 dns_ok=0 failed=0
KILLED_NS=()
for ((i = 1; i <= CYCLES; i++)); do
  (( i % 1000 == 0 )) && echo "soak: $i/$CYCLES cycles, $(( $(date +%s) - start )) s, daemon fds $(daemon_fds)" >&2
  port=$(( 30001 + i % 5000 ))
  if (( i % KILL_EVERY == 0 )); then
    # A namespace of its own: netd refuses an ADD into a namespace another
    # container it knows holds, and this one is only collected by GC.
    ns=$P-k$i
    ip netns add "$ns"
    KILLED_NS+=("$ns")
    cni ADD "k$i" "$ns" $(( 40000 + i % 20000 )) >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $(( RANDOM % (KILL_MS + 1) )))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    killed=$(( killed + 1 ))
    continue
  fi
  if ! out=$(cni ADD "c$i" "$P-c" "$port" 2>"$TMP/err"); then
    failed=$(( failed + 1 ))
    echo "soak: ADD c$i failed: $out $(cat "$TMP/err")" >&2
  elif (( i % DNS_EVERY == 1 )); then
    ip=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])' <<<"$out")
    got=$(nsenter --net="/run/netns/$P-c" dig +short +tries=1 +time=2 @127.0.0.11 "c$i")
    if [ "$got" = "$ip" ]; then dns_ok=$(( dns_ok + 1 )); else
      failed=$(( failed + 1 )); echo "soak: dig c$i: '$got', want $ip" >&2; fi
  fi
  if ! cni DEL "c$i" "$P-c" "$port" >/dev/null 2>"$TMP/err"; then
    failed=$(( failed + 1 ))
    echo "soak: DEL c$i failed: $(cat "$TMP/err")" >&2
  fi
done

# What the killed ADDs left, as a runtime that restarted would see it:
# nothing of theirs is valid any more.
gc_conf='{"cniVersion":"1.1.0","name":"'$NET'","type":"netd-cni","subnet":"10.187.0.0/16","dnsEnabled":true,"cni.dev/valid-attachments":[]}'
left_before_gc=$(netd_cli sandbox ls --quiet | wc -l)
CNI_COMMAND=GC CNI_PATH=$CNI NETD_STATE_DIR=$STATE NETD_SOCKET=$RUN/netd.sock \
  nsenter --net="/run/netns/$HOST" "$PLUGIN" <<<"$gc_conf" || { echo "soak: GC failed" >&2; failed=$(( failed + 1 )); }
for ns in "${KILLED_NS[@]}"; do ip netns del "$ns"; done
ip netns del "$P-c"
# Retired veths are deleted by detached copies of the plugin, and the
# daemon's DNS follows the store shortly after: give both a moment.
for _ in $(seq 100); do
  [ "$(host_links | tr '\n' ' ')" = "$BASE_LINKS" ] && [ "$(daemon_fds)" -le "$BASE_FDS" ] && break
  sleep 0.1
done
took=$(( $(date +%s) - start ))

links=$(comm -13 <(tr ' ' '\n' <<<"$BASE_LINKS" | sed '/^$/d') <(host_links) | wc -l)
retired=$(host_links | grep -c '^ndr' || true)
elems=$(( $(map_elements) - BASE_ELEMS ))
rows=$(( $(netd_cli sandbox ls --quiet | wc -l) + $(netd_cli network inspect "$NET" | python3 -c 'import json,sys; print(sum(len(n.get("endpoints") or []) for n in json.load(sys.stdin)))') ))
nsleft=$(ip netns list | awk '{print $1}' | grep "^$P-" | grep -vc "^$HOST\$" || true)
fds=$(daemon_fds)
verdict=PASS
(( links + retired + elems + rows + nsleft == 0 && fds <= BASE_FDS && failed == 0 )) || verdict=FAIL
echo "soak: $CYCLES cycles ($killed ADDs killed -9, $left_before_gc sandboxes left for GC, $dns_ok DNS answers, $failed failures) in ${took} s; leaked: links $links, retired veths $retired, map elements $elems, store rows $rows, namespaces $nsleft, daemon fds $(( fds - BASE_FDS )) ($BASE_FDS -> $fds): $verdict"
[ "$verdict" = PASS ]
