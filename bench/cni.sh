#!/usr/bin/env bash
# ADD+DEL cost of one container with one published port and DNS, with 1, 50
# and 200 containers already attached (each with a port of its own), through
#   - netd-cni (dns: true, portMappings), exec'd the way libcni does,
#   - the CNI reference chain bridge + host-local + portmap (Debian package
#     `containernetworking-plugins`; it has no DNS),
#   - netavark setup/teardown with dns_enabled (it starts aardvark-dns), the
#     JSON podman gives it (Debian packages `netavark`, `aardvark-dns`).
# Each tool runs in a host namespace of its own, so its links and firewall
# rules land there; containers are namespaces of their own, made before the
# clock starts (the runtime makes them). Nothing touches the root namespace;
# only processes this script started (or its tools started) are stopped, by
# pid.
#
# What is timed: the tools' own processes (fork, exec, run, exit: what a
# runtime waits for), summed over the execs of one ADD or DEL (two for the
# reference chain); not the nsenter, shell and JSON building around them
# (see in_ns in lib.sh). Before 2026-11-29 those were counted, ~3 ms per
# exec for every tool.
#
# usage: bench/cni.sh [SAMPLES]   (default 20 per point; LEVELS="1 50 200")
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
PLUGIN=$TARGET/release/netd-cni

cleanup() {
  set +e
  stop_pidfile "$TMP/netd-run/netd.pid" netd
  stop_pidfile "$TMP/nv/aardvark-dns/aardvark.pid" aardvark-dns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

need_pkgs netavark aardvark-dns containernetworking-plugins iptables nftables
(cd "$ROOT" && cargo build --release -q -p netd -p netd-cni)

# ---------------------------------------------------------------- netd-cni
netd_cni() { # ADD|DEL container ports_json
  local conf='{"cniVersion":"1.0.0","name":"ndbcni","type":"netd-cni","subnet":"10.180.0.0/16","dns":true,
    "capabilities":{"portMappings":true,"aliases":true},
    "runtimeConfig":{"portMappings":'"$3"',"aliases":{"ndbcni":["'"$2"'"]}}}'
  CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$P-$2 CNI_IFNAME=eth0 CNI_PATH=$CNI \
    NETD_STATE_DIR=$TMP/netd-state NETD_SOCKET=$TMP/netd-run/netd.sock \
    in_ns nd "$PLUGIN" <<<"$conf" >/dev/null
}

# All tools over all levels: populate each with one-port containers up to
# the level, then time ADD and DEL of a probe container, the tools taking
# turns sample by sample so that load from elsewhere weighs on all alike.
TOOLS=(netd-cni cni-ref netavark)
declare -A ADD_FN=([netd-cni]=nd_add [cni-ref]=ref_add [netavark]=nv_add)
declare -A DEL_FN=([netd-cni]=nd_del [cni-ref]=ref_del [netavark]=nv_del)
declare -A PRE=([netd-cni]=d [cni-ref]=r [netavark]=v)
run_all() {
  local present=0
  for level in "${LEVELS[@]}"; do
    while [ $present -lt "$level" ]; do
      for t in "${TOOLS[@]}"; do
        ip netns add "$P-${PRE[$t]}$present"
        "${ADD_FN[$t]}" "${PRE[$t]}$present" "$present" "$(( 20000 + present ))"
      done
      present=$(( present + 1 ))
    done
    for t in "${TOOLS[@]}"; do : > "$TMP/$t.add"; : > "$TMP/$t.del"; done
    for _ in $(seq "$SAMPLES"); do
      for t in "${TOOLS[@]}"; do
        local probe=${PRE[$t]}probe
        ip netns add "$P-$probe"
        SPANS=$TMP/spans "${ADD_FN[$t]}" "$probe" 60000 9000
        spans_ms "$TMP/spans" >> "$TMP/$t.add"
        SPANS=$TMP/spans "${DEL_FN[$t]}" "$probe" 60000 9000
        spans_ms "$TMP/spans" >> "$TMP/$t.del"
        ip netns del "$P-$probe"
      done
    done
    for t in "${TOOLS[@]}"; do
      paste -d' ' "$TMP/$t.add" "$TMP/$t.del" | awk '{print $1 + $2}' > "$TMP/$t.both"
      row "$t" "$level" ADD "$TMP/$t.add"; row "$t" "$level" DEL "$TMP/$t.del"
      row "$t" "$level" ADD+DEL "$TMP/$t.both"
    done
  done
}

nd_add() { netd_cni ADD "$1" "$(cni_ports "$3" 1 80)"; }
nd_del() { netd_cni DEL "$1" "$(cni_ports "$3" 1 80)"; }
ref_add() { cni_chain ADD "$1" "$(cni_ports "$3" 1 80)"; }
ref_del() { cni_chain DEL "$1" "$(cni_ports "$3" 1 80)"; }
nv_ip() { [ "$1" = 60000 ] && echo 10.181.250.2 || echo "10.181.$(( $1 / 250 + 1 )).$(( $1 % 250 + 2 ))"; }
nv_add() { nv setup "$1" "$(nv_ip "$2")" "$(nv_ports "$3" 1 80)"; }
nv_del() { nv teardown "$1" "$(nv_ip "$2")" "$(nv_ports "$3" 1 80)"; }

start=$(date +%s)
hostns nd; hostns cni; hostns nv; mkdir -p "$TMP/nv"
# The first ADD with dns starts netd's daemon (and netavark's first setup
# starts aardvark-dns): population, not part of any sample.
run_all

print_rows | sort -s -k2,2n | awk 'NR == 1 || $1 != "tool"'
echo
echo "ADD+DEL p50, reference / netd-cni:"
for level in "${LEVELS[@]}"; do
  n=$(p50_of netd-cni "$level" ADD+DEL)
  for ref in netavark cni-ref; do
    r=$(p50_of "$ref" "$level" ADD+DEL)
    printf '  %4s present: %-9s %6.1fx\n' "$level" "$ref" "$(echo "$r / $n" | bc -l)"
  done
done
first=$(p50_of netd-cni "${LEVELS[0]}" ADD+DEL)
last=$(p50_of netd-cni "${LEVELS[-1]}" ADD+DEL)
printf '  netd-cni flatness: ADD+DEL at %s present / at %s = %.2f\n' "${LEVELS[-1]}" "${LEVELS[0]}" "$(echo "$last / $first" | bc -l)"
echo "took $(( $(date +%s) - start )) s"
