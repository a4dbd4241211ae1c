#!/usr/bin/env bash
# Published-port cost: attaching a container with one published port, and
# detaching it, with 1, 1,000 and 5,000 ports already published, through
#   - netd (nftables maps: a port is a map element),
#   - netavark (Debian package `netavark`, driven with its setup/teardown JSON
#     the way podman drives it),
#   - the CNI reference chain bridge + host-local + portmap (Debian package
#     `containernetworking-plugins`), exec'd the way libcni does.
# Each tool runs in a host namespace of its own, so its firewall rules land
# there; containers are namespaces of their own. Nothing touches the root
# namespace. Needs root, iproute2, nftables, iptables, python3.
#
# usage: bench/ports.sh [SAMPLES]   (default 10 per point)
# NDPORTS_LEVELS (default "1 1000 5000") sets netd's levels; the references
# get NDPORTS_REF_LEVELS (default "1 1000"): netavark 1.4 and portmap write one
# iptables rule per port, and filling them with 5,000 ports took longer than
# this bench's budget (netavark: ~20 s per 100-port container beyond 3,000).
set -euo pipefail

SAMPLES=${1:-10}
read -ra LEVELS <<< "${NDPORTS_LEVELS:-1 1000 5000}"
read -ra REF_LEVELS <<< "${NDPORTS_REF_LEVELS:-1 1000}"
REF_SAMPLES=${NDPORTS_REF_SAMPLES:-$SAMPLES}
PER=100                      # ports per pre-populated container
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=ndports-$$
TMP=$(mktemp -d /tmp/ndports.XXXXXX)
NETD=$ROOT/target/release/netd
NETAVARK=/usr/lib/podman/netavark
CNI=/usr/lib/cni
DAEMON_PID=""

cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for pkg in netavark containernetworking-plugins iptables nftables; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; }
done
[ -x "$NETD" ] || (cd "$ROOT" && cargo build --release -q -p netd)

now_ms() { date +%s%N; }
elapsed() { echo "scale=3; ($(now_ms) - $1) / 1000000" | bc; }
stats() { # stdin: one number per line -> "p50 p99"
  sort -n | awk '{a[NR]=$1} END {i50=int((NR-1)*0.5+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%.2f %.2f\n", a[i50], a[i99]}'
}
ROWS=$TMP/rows
: > "$ROWS"
row() { # tool present op file
  read -r p50 p99 < <(stats < "$4")
  printf '%s %s %s %s %s %s\n' "$1" "$2" "$3" "$p50" "$p99" "$(wc -l < "$4")" | tee -a "$ROWS" >&2
}
hostns() { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; }

# ---------------------------------------------------------------- netd
bench_netd() {
  hostns netd
  export NETD_SOCKET=$TMP/netd.sock
  nsenter --net=/run/netns/$P-netd "$NETD" daemon --state-dir "$TMP/netd-state" --run-dir "$TMP/netd-run" 2>"$TMP/netd.log" &
  DAEMON_PID=$!
  for _ in $(seq 100); do "$NETD" network ls >/dev/null 2>&1 && break; sleep 0.1; done
  "$NETD" network create --subnet 10.197.0.0/16 "$P-n" >/dev/null
  local present=0 c=0
  for level in "${LEVELS[@]}"; do
    while [ $present -lt "$level" ]; do
      local n=$(( level - present < PER ? level - present : PER )) base=$(( 20000 + present ))
      if [ "$n" -eq 1 ]; then spec="$base:80"; else spec="$base-$((base + n - 1)):1000-$((1000 + n - 1))"; fi
      "$NETD" sandbox create --network "$P-n" -p "$spec" "$P-nc$c" >/dev/null
      present=$(( present + n )); c=$(( c + 1 ))
    done
    : > "$TMP/add"; : > "$TMP/del"
    # Like the references, the container's namespace exists before the
    # clock starts (the runtime made it): netd adopts it with --netns.
    for s in $(seq "$SAMPLES"); do
      ip netns add "$P-probe"
      local t; t=$(now_ms)
      "$NETD" sandbox create --network "$P-n" --netns "/run/netns/$P-probe" -p 9000:80 "$P-probe" >/dev/null
      elapsed "$t" >> "$TMP/add"
      t=$(now_ms)
      "$NETD" sandbox rm "$P-probe" >/dev/null
      elapsed "$t" >> "$TMP/del"
      ip netns del "$P-probe"
    done
    row netd "$level" attach+port "$TMP/add"; row netd "$level" detach "$TMP/del"
  done
  for i in $(seq 0 $(( c - 1 ))); do "$NETD" sandbox rm "$P-nc$i" >/dev/null; done
  kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
}

# ---------------------------------------------------------------- netavark
nv_opts() { # name ip ports_json
  cat <<EOF
{"container_id":"$(printf '%064x' "$RANDOM$RANDOM")","container_name":"$1",
 "networks":{"ndports":{"interface_name":"eth0","static_ips":["$2"]}},
 "network_info":{"ndports":{"dns_enabled":false,"driver":"bridge","id":"$(printf '%064d' 7)","internal":false,
   "ipv6_enabled":false,"name":"ndports","network_interface":"ndpbr0",
   "subnets":[{"subnet":"10.191.0.0/16","gateway":"10.191.0.1"}]}},
 "port_mappings":$3}
EOF
}
nv() { # setup|teardown name ip ports
  nsenter --net=/run/netns/$P-nv "$NETAVARK" --config "$TMP/nv" "$1" "/run/netns/$P-$2" < <(nv_opts "$2" "$3" "$4") >/dev/null
}
ports_json() { # base count cport
  python3 -c "import json,sys; b,n,c=map(int,sys.argv[1:]); print(json.dumps([{'host_ip':'','container_port':c+i,'host_port':b+i,'range':1,'protocol':'tcp'} for i in range(n)]))" "$1" "$2" "$3"
}
bench_netavark() {
  hostns nv; mkdir -p "$TMP/nv"
  local present=0 c=0
  for level in "${REF_LEVELS[@]}"; do
    while [ $present -lt "$level" ]; do
      local n=$(( level - present < PER ? level - present : PER ))
      ip netns add "$P-v$c"
      nv setup "v$c" "10.191.$(( c / 250 + 1 )).$(( c % 250 + 2 ))" "$(ports_json $(( 20000 + present )) "$n" 1000)"
      present=$(( present + n )); c=$(( c + 1 ))
    done
    : > "$TMP/add"; : > "$TMP/del"
    local one; one=$(ports_json 9000 1 80)
    for s in $(seq "$REF_SAMPLES"); do
      ip netns add "$P-vprobe"
      local t; t=$(now_ms)
      nv setup vprobe 10.191.200.2 "$one"
      elapsed "$t" >> "$TMP/add"
      t=$(now_ms)
      nv teardown vprobe 10.191.200.2 "$one"
      elapsed "$t" >> "$TMP/del"
      ip netns del "$P-vprobe"
    done
    row netavark "$level" attach+port "$TMP/add"; row netavark "$level" detach "$TMP/del"
  done
}

# ---------------------------------------------------------------- CNI reference chain
cni_exec() { # plugin command container config
  local ns=/run/netns/$P-$3
  CNI_COMMAND=$2 CNI_CONTAINERID=$3 CNI_NETNS=$ns CNI_IFNAME=eth0 CNI_PATH=$CNI \
    nsenter --net=/run/netns/$P-cni "$CNI/$1" <<<"$4"
}
cni_chain() { # ADD|DEL container portmappings_json
  local bridge='{"cniVersion":"1.0.0","name":"ndports","type":"bridge","bridge":"ndpcni0","isGateway":true,"ipMasq":true,
    "ipam":{"type":"host-local","ranges":[[{"subnet":"10.190.0.0/16"}]],"dataDir":"'"$TMP"'/cni-ipam"}}'
  if [ "$1" = ADD ]; then
    local res; res=$(cni_exec bridge ADD "$2" "$bridge")
    cni_exec portmap ADD "$2" '{"cniVersion":"1.0.0","name":"ndports","type":"portmap","capabilities":{"portMappings":true},
      "runtimeConfig":{"portMappings":'"$3"'},"prevResult":'"$res"'}' >/dev/null
  else
    cni_exec portmap DEL "$2" '{"cniVersion":"1.0.0","name":"ndports","type":"portmap","capabilities":{"portMappings":true},
      "runtimeConfig":{"portMappings":'"$3"'}}' >/dev/null
    cni_exec bridge DEL "$2" "$bridge" >/dev/null
  fi
}
cni_ports() { python3 -c "import json,sys; b,n,c=map(int,sys.argv[1:]); print(json.dumps([{'hostPort':b+i,'containerPort':c+i,'protocol':'tcp'} for i in range(n)]))" "$1" "$2" "$3"; }
bench_cni() {
  hostns cni
  local present=0 c=0
  for level in "${REF_LEVELS[@]}"; do
    while [ $present -lt "$level" ]; do
      local n=$(( level - present < PER ? level - present : PER ))
      ip netns add "$P-k$c"
      cni_chain ADD "k$c" "$(cni_ports $(( 20000 + present )) "$n" 1000)"
      present=$(( present + n )); c=$(( c + 1 ))
    done
    : > "$TMP/add"; : > "$TMP/del"
    local one; one=$(cni_ports 9000 1 80)
    for s in $(seq "$REF_SAMPLES"); do
      ip netns add "$P-kprobe"
      local t; t=$(now_ms)
      cni_chain ADD kprobe "$one"
      elapsed "$t" >> "$TMP/add"
      t=$(now_ms)
      cni_chain DEL kprobe "$one"
      elapsed "$t" >> "$TMP/del"
      ip netns del "$P-kprobe"
    done
    row cni-portmap "$level" attach+port "$TMP/add"; row cni-portmap "$level" detach "$TMP/del"
  done
}

start=$(date +%s)
bench_netd
bench_netavark
bench_cni

printf '\n%-12s %8s %-12s %9s %9s %4s\n' tool present op "p50 ms" "p99 ms" n
while read -r tool present op p50 p99 n; do
  printf '%-12s %8s %-12s %9s %9s %4s\n' "$tool" "$present" "$op" "$p50" "$p99" "$n"
done < "$ROWS"
echo
echo "ratios (reference p50 / netd p50, at the same number of ports present):"
for level in "${REF_LEVELS[@]}"; do
  for ref in netavark cni-portmap; do
    for op in attach+port detach; do
      n=$(awk -v l="$level" -v o="$op" '$1=="netd" && $2==l && $3==o {print $4}' "$ROWS")
      r=$(awk -v l="$level" -v t="$ref" -v o="$op" '$1==t && $2==l && $3==o {print $4}' "$ROWS")
      [ -n "$r" ] && [ -n "$n" ] && printf '  %5s ports: %-12s %-12s %6.1fx\n' "$level" "$ref" "$op" "$(echo "$r / $n" | bc -l)"
    done
  done
done
first=$(awk '$1=="netd" && $2==1 && $3=="attach+port" {print $4}' "$ROWS")
last=$(awk '$1=="netd" && $2==5000 && $3=="attach+port" {print $4}' "$ROWS")
[ -n "$last" ] && printf '  netd flatness: attach+port at 5000 ports / at 1 port = %.2f\n' "$(echo "$last / $first" | bc -l)"
echo "took $(( $(date +%s) - start )) s"
