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
# netd runs twice: on an IPv4 network (`netd`) and on a dual-stack one
# (`netd-dual`: every port is published on both families, so two map
# elements per port).
#
# usage: bench/ports.sh [SAMPLES]   (default 10 per point)
# NDPORTS_ONLY_NETD=1 skips the references (netd and netd-dual only);
# NDPORTS_PREFIX (default ndports) starts every namespace's name.
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
P=${NDPORTS_PREFIX:-ndports}-$$
TMP=$(mktemp -d /tmp/ndports.XXXXXX)
NETD=$ROOT/target/release/netd
DAEMON_PID=""
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
NV_NET=ndports NV_BRIDGE=ndpbr0 NV_SUBNET=10.191.0.0/16 NV_GW=10.191.0.1 NV_DNS=false
CNI_BRIDGE=ndpcni0 CNI_SUBNET=10.190.0.0/16

cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -z "${NDPORTS_ONLY_NETD:-}" ]; then
  need_pkgs netavark containernetworking-plugins iptables nftables
fi
[ -x "$NETD" ] || (cd "$ROOT" && cargo build --release -q -p netd)

ROWS=$TMP/rows
: > "$ROWS"

# ---------------------------------------------------------------- netd
#   $1 tool name in the table   $2... `network create` arguments
bench_netd() {
  local tool=$1; shift
  hostns "$tool"
  export NETD_SOCKET=$TMP/$tool.sock
  nsenter --net="/run/netns/$P-$tool" "$NETD" daemon --state-dir "$TMP/$tool-state" --run-dir "$TMP/$tool-run" 2>"$TMP/$tool.log" &
  DAEMON_PID=$!
  for _ in $(seq 100); do "$NETD" network ls >/dev/null 2>&1 && break; sleep 0.1; done
  "$NETD" network create "$@" "$P-n" >/dev/null
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
      local t=$EPOCHREALTIME
      "$NETD" sandbox create --network "$P-n" --netns "/run/netns/$P-probe" -p 9000:80 "$P-probe" >/dev/null
      elapsed "$t" >> "$TMP/add"
      t=$EPOCHREALTIME
      "$NETD" sandbox rm "$P-probe" >/dev/null
      elapsed "$t" >> "$TMP/del"
      ip netns del "$P-probe"
    done
    row "$tool" "$level" attach+port "$TMP/add"; row "$tool" "$level" detach "$TMP/del"
  done
  for i in $(seq 0 $(( c - 1 ))); do "$NETD" sandbox rm "$P-nc$i" >/dev/null; done
  kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
}

# ---------------------------------------------------------------- netavark
# One reference tool over REF_LEVELS: containers of PER ports each up to the
# level, then a probe container with one port attached and detached.
#   $1 tool name   $2 container prefix
#   $3 add function (container index ports_json)   $4 del function (same)
#   $5 port list function (base count container_port)
bench_ref() {
  local tool=$1 pre=$2 add=$3 del=$4 ports=$5 present=0 c=0
  for level in "${REF_LEVELS[@]}"; do
    while [ $present -lt "$level" ]; do
      local n=$(( level - present < PER ? level - present : PER ))
      ip netns add "$P-$pre$c"
      "$add" "$pre$c" "$c" "$("$ports" $(( 20000 + present )) "$n" 1000)"
      present=$(( present + n )); c=$(( c + 1 ))
    done
    : > "$TMP/add"; : > "$TMP/del"
    local one; one=$("$ports" 9000 1 80)
    for _ in $(seq "$REF_SAMPLES"); do
      ip netns add "$P-${pre}probe"
      local t=$EPOCHREALTIME
      "$add" "${pre}probe" probe "$one"
      elapsed "$t" >> "$TMP/add"
      t=$EPOCHREALTIME
      "$del" "${pre}probe" probe "$one"
      elapsed "$t" >> "$TMP/del"
      ip netns del "$P-${pre}probe"
    done
    row "$tool" "$level" attach+port "$TMP/add"; row "$tool" "$level" detach "$TMP/del"
  done
}

# netavark: static addresses, as podman's IPAM would give them.
nv_ip() { [ "$1" = probe ] && echo 10.191.200.2 || echo "10.191.$(( $1 / 250 + 1 )).$(( $1 % 250 + 2 ))"; }
nv_add() { nv setup "$1" "$(nv_ip "$2")" "$3"; }
nv_del() { nv teardown "$1" "$(nv_ip "$2")" "$3"; }
bench_netavark() {
  hostns nv; mkdir -p "$TMP/nv"
  bench_ref netavark v nv_add nv_del nv_ports
}

# ---------------------------------------------------------------- CNI reference chain
ref_add() { cni_chain ADD "$1" "$3"; }
ref_del() { cni_chain DEL "$1" "$3"; }
bench_cni() {
  hostns cni
  bench_ref cni-portmap k ref_add ref_del cni_ports
}

start=$(date +%s)
bench_netd netd --subnet 10.197.0.0/16
bench_netd netd-dual --ipv6 --subnet 10.196.0.0/16 --subnet fd00:196::/64
if [ -z "${NDPORTS_ONLY_NETD:-}" ]; then
  bench_netavark
  bench_cni
fi

print_rows
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
for tool in netd netd-dual; do
  first=$(awk -v t="$tool" '$1==t && $2==1 && $3=="attach+port" {print $4}' "$ROWS")
  last=$(awk -v t="$tool" '$1==t && $2==5000 && $3=="attach+port" {print $4}' "$ROWS")
  [ -n "$last" ] && printf '  %s flatness: attach+port at 5000 ports / at 1 port = %.2f\n' "$tool" "$(echo "$last / $first" | bc -l)"
done
d=$(awk '$1=="netd-dual" && $2==5000 && $3=="attach+port" {print $4}' "$ROWS")
v=$(awk '$1=="netd" && $2==5000 && $3=="attach+port" {print $4}' "$ROWS")
[ -n "$d" ] && [ -n "$v" ] && printf '  dual-stack / IPv4 attach+port at 5000 ports = %.2f\n' "$(echo "$d / $v" | bc -l)"
echo "took $(( $(date +%s) - start )) s"
