#!/usr/bin/env bash
# ADD+DEL cost of one container with one published port and DNS, with 1, 50
# and 200 containers already attached (each with a port of its own), through
#   - netd-cni (dns: true, portMappings), exec'd the way libcni does,
#   - netd-cni6: the same on a dual-stack network (`subnet6`: an IPv6
#     address and default route too); its ADD+DEL is compared with
#     netd-cni's, level by level (the goal: at most 1.2x),
#   - the CNI reference chain bridge + host-local + portmap (Debian package
#     `containernetworking-plugins`; it has no DNS),
#   - netavark setup/teardown with dns_enabled (it starts aardvark-dns), the
#     JSON podman gives it (Debian packages `netavark`, `aardvark-dns`).
# Each tool runs in a host namespace of its own per level (so 1, 50 and 200
# containers are present at once, each level with its own links, firewall
# rules, store and DNS server); containers are namespaces of their own, made
# before the clock starts (the runtime makes them). Samples take turns over
# tools and levels, so that load from elsewhere weighs on all alike: the
# flatness ratio compares levels measured in the same minutes, not one level
# after another (before 2026-11-29 the levels ran in turn and this shared
# VM's minute-to-minute swings moved the ratio by +-0.1). Nothing touches
# the root namespace; only processes this script started (or its tools
# started) are stopped, by pid.
#
# What is timed: the tools' own processes (fork, exec, run, exit: what a
# runtime waits for), summed over the execs of one ADD or DEL (two for the
# reference chain); not the nsenter, shell and JSON building around them
# (see in_ns in lib.sh). Before 2026-11-29 those were counted, ~3 ms per
# exec for every tool.
#
# usage: bench/cni.sh [SAMPLES]   (default 20 per point; LEVELS="1 50 200")
#   TOOLS="netd-cni netd-cni6 cni-ref netavark"   which tools to run (default all)
#   PLUGIN=PATH         this build's netd-cni (netd beside it): skip the build
#   NETD_BASE_BIN=DIR   also run another build of netd-cni (DIR/netd-cni, which
#                       starts DIR/netd, e.g. target/release of the commit
#                       before): its rows are "before", this build's "after",
#                       taking turns with the other tools sample by sample.
set -euo pipefail

SAMPLES=${1:-20}
read -ra LEVELS <<< "${LEVELS:-1 50 200}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
P=ndbcni-$$
TMP=$(mktemp -d /tmp/ndbcni.XXXXXX)
ROWS=$TMP/rows
: > "$ROWS"
: > "$TMP/spans"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
NV_NET=ndbcni NV_BRIDGE=ndbnv0 NV_SUBNET=10.181.0.0/16 NV_GW=10.181.0.1 NV_DNS=true
CNI_BRIDGE=ndbref0 CNI_SUBNET=10.182.0.0/16
PREBUILT=${PLUGIN:+1}
PLUGIN=${PLUGIN:-$TARGET/release/netd-cni}
BASE=${NETD_BASE_BIN:-}
read -ra TOOLS <<< "${TOOLS:-netd-cni netd-cni6 cni-ref netavark}"
# This build's rows: "netd-cni", or "after" beside a base build's "before".
ND=netd-cni
if [ -n "$BASE" ]; then
  [ -x "$BASE/netd-cni" ] && [ -x "$BASE/netd" ] || { echo "NETD_BASE_BIN=$BASE has no netd-cni and netd" >&2; exit 1; }
  ND=after
  t=()
  for x in "${TOOLS[@]}"; do if [ "$x" = netd-cni ]; then t+=(before after); else t+=("$x"); fi; done
  TOOLS=("${t[@]}")
fi

cleanup() {
  set +e
  for l in "${LEVELS[@]}"; do
    stop_pidfile "$TMP/nd-run$l/netd.pid" netd
    stop_pidfile "$TMP/ndb-run$l/netd.pid" netd
    stop_pidfile "$TMP/nd6-run$l/netd.pid" netd
    stop_pidfile "$TMP/nv$l/aardvark-dns/aardvark.pid" aardvark-dns
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

need_pkgs netavark aardvark-dns containernetworking-plugins iptables nftables
[ -n "$PREBUILT" ] || (cd "$ROOT" && cargo build --release -q -p netd -p netd-cni)

# ---------------------------------------------------------------- netd-cni
# Each build in a host namespace of its own per level: nd (this build), nd6
# (this build on a dual-stack network) and ndb (NETD_BASE_BIN's), with
# their own state and run dirs.
netd_cni() { # plugin tag ADD|DEL container ports_json   (level in $L; EXTRA: more keys)
  local plugin=$1 tag=$2
  shift 2
  local conf='{"cniVersion":"1.0.0","name":"ndbcni","type":"netd-cni","subnet":"10.180.0.0/16",'"${EXTRA:-}"'"dns":true,
    "capabilities":{"portMappings":true,"aliases":true},
    "runtimeConfig":{"portMappings":'"$3"',"aliases":{"ndbcni":["'"$2"'"]}}}'
  CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$P-$2 CNI_IFNAME=eth0 CNI_PATH=$CNI \
    NETD_STATE_DIR=$TMP/$tag-state$L NETD_SOCKET=$TMP/$tag-run$L/netd.sock \
    in_ns "$tag$L" "$plugin" <<<"$conf" >/dev/null
}

# Every tool gets every level populated with one-port containers, then
# each sample times ADD and DEL of a probe container on each level of each
# tool in turn.
declare -A ADD_FN=([netd-cni]=nd_add [after]=nd_add [before]=base_add [netd-cni6]=nd6_add [cni-ref]=ref_add [netavark]=nv_add)
declare -A DEL_FN=([netd-cni]=nd_del [after]=nd_del [before]=base_del [netd-cni6]=nd6_del [cni-ref]=ref_del [netavark]=nv_del)
declare -A PRE=([netd-cni]=d [after]=d [before]=b [netd-cni6]=s [cni-ref]=r [netavark]=v)
has_tool() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
at_level() { # level: the namespaces and dirs of that level's instances
  L=$1 CNI_NS=cni$1 CNI_IPAM=$TMP/cni-ipam$1 NV_NS=nv$1 NV_DIR=$TMP/nv$1
}
run_all() {
  for level in "${LEVELS[@]}"; do
    at_level "$level"
    hostns "nd$L"; hostns "$CNI_NS"; hostns "$NV_NS"; mkdir -p "$NV_DIR"
    [ -z "$BASE" ] || hostns "ndb$L"
    if has_tool netd-cni6; then hostns "nd6$L"; fi
    for ((i = 0; i < level; i++)); do
      for t in "${TOOLS[@]}"; do
        ip netns add "$P-${PRE[$t]}$L-$i"
        "${ADD_FN[$t]}" "${PRE[$t]}$L-$i" "$i" "$(( 20000 + i ))"
      done
    done
    for t in "${TOOLS[@]}"; do : > "$TMP/$t.$L.add"; : > "$TMP/$t.$L.del"; done
  done
  for _ in $(seq "$SAMPLES"); do
    for level in "${LEVELS[@]}"; do
      at_level "$level"
      for t in "${TOOLS[@]}"; do
        local probe=${PRE[$t]}$L-probe
        ip netns add "$P-$probe"
        SPANS=$TMP/spans "${ADD_FN[$t]}" "$probe" 60000 9000
        spans_ms "$TMP/spans" >> "$TMP/$t.$L.add"
        SPANS=$TMP/spans "${DEL_FN[$t]}" "$probe" 60000 9000
        spans_ms "$TMP/spans" >> "$TMP/$t.$L.del"
        ip netns del "$P-$probe"
      done
    done
  done
  for level in "${LEVELS[@]}"; do
    for t in "${TOOLS[@]}"; do
      local f=$TMP/$t.$level
      paste -d' ' "$f.add" "$f.del" | awk '{print $1 + $2}' > "$f.both"
      row "$t" "$level" ADD "$f.add"; row "$t" "$level" DEL "$f.del"
      row "$t" "$level" ADD+DEL "$f.both"
    done
  done
}

nd_add() { netd_cni "$PLUGIN" nd ADD "$1" "$(cni_ports "$3" 1 80)"; }
nd_del() { netd_cni "$PLUGIN" nd DEL "$1" "$(cni_ports "$3" 1 80)"; }
DUAL='"subnet6":"fd00:180::/64",'
nd6_add() { EXTRA=$DUAL netd_cni "$PLUGIN" nd6 ADD "$1" "$(cni_ports "$3" 1 80)"; }
nd6_del() { EXTRA=$DUAL netd_cni "$PLUGIN" nd6 DEL "$1" "$(cni_ports "$3" 1 80)"; }
base_add() { netd_cni "$BASE/netd-cni" ndb ADD "$1" "$(cni_ports "$3" 1 80)"; }
base_del() { netd_cni "$BASE/netd-cni" ndb DEL "$1" "$(cni_ports "$3" 1 80)"; }
ref_add() { cni_chain ADD "$1" "$(cni_ports "$3" 1 80)"; }
ref_del() { cni_chain DEL "$1" "$(cni_ports "$3" 1 80)"; }
nv_ip() { [ "$1" = 60000 ] && echo 10.181.250.2 || echo "10.181.$(( $1 / 250 + 1 )).$(( $1 % 250 + 2 ))"; }
nv_add() { nv setup "$1" "$(nv_ip "$2")" "$(nv_ports "$3" 1 80)"; }
nv_del() { nv teardown "$1" "$(nv_ip "$2")" "$(nv_ports "$3" 1 80)"; }

start=$(date +%s)
# The first ADD with dns starts netd's daemon (and netavark's first setup
# starts aardvark-dns) of each level: population, not part of any sample.
run_all

print_rows | sort -s -k2,2n | awk 'NR == 1 || $1 != "tool"'
echo
if has_tool "$ND"; then
  echo "ADD+DEL p50, reference / $ND:"
  for level in "${LEVELS[@]}"; do
    n=$(p50_of "$ND" "$level" ADD+DEL)
    for ref in before netavark cni-ref; do
      has_tool "$ref" || continue
      r=$(p50_of "$ref" "$level" ADD+DEL)
      prec=1
      [ "$ref" = before ] && prec=2
      printf '  %4s present: %-9s %6.*fx\n' "$level" "$ref" "$prec" "$(echo "$r / $n" | bc -l)"
    done
  done
  for t in before "$ND"; do
    has_tool "$t" || continue
    first=$(p50_of "$t" "${LEVELS[0]}" ADD+DEL)
    last=$(p50_of "$t" "${LEVELS[-1]}" ADD+DEL)
    printf '  %s flatness: ADD+DEL at %s present / at %s = %.2f\n' "$t" "${LEVELS[-1]}" "${LEVELS[0]}" "$(echo "$last / $first" | bc -l)"
  done
fi
if has_tool netd-cni6 && has_tool "$ND"; then
  echo "ADD+DEL p50, dual-stack (netd-cni6) / IPv4 ($ND), goal <= 1.2:"
  for level in "${LEVELS[@]}"; do
    printf '  %4s present: %.2f\n' "$level" \
      "$(echo "$(p50_of netd-cni6 "$level" ADD+DEL) / $(p50_of "$ND" "$level" ADD+DEL)" | bc -l)"
  done
fi
echo "took $(( $(date +%s) - start )) s"
