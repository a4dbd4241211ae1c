#!/usr/bin/env bash
# podman drives netd-cni: two containers on a dual-stack netd-cni network
# find each other by name through 127.0.0.11 (A and AAAA) and reach each
# other over IPv4 and IPv6, and a published port answers, from the host
# namespace and from an "outside" namespace.
#
# Everything happens in namespaces of this script's own (prefix ndpod-PID):
# podman runs in a host namespace ndpod-PID-host (so the bridge, veths and
# nftables table netd-cni makes land there), with its own storage, config,
# CNI config dir and plugin dir under a temporary directory. The image is
# made locally with `podman import` from busybox-static; no registry.
# Only processes this script started (podman's containers, the netd daemon
# netd-cni started) are stopped.
#
# usage: sudo scripts/podman-e2e.sh     (prints PASS at the end, exit 0)
#        NETD_PROFILE=debug ...          (use the debug binaries)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
P=ndpod-$$
TMP=$(mktemp -d /tmp/ndpod.XXXXXX)
chmod 755 "$TMP"
NET=ndpod$$

pm() { # podman inside the host namespace, on this script's storage and config
  CONTAINERS_CONF=$TMP/containers.conf nsenter --net=/run/netns/$P-host \
    podman --root "$TMP/storage" --runroot "$TMP/runroot" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

cleanup() {
  set +e
  pm rm -f -t 0 "$P-a" "$P-b" >/dev/null 2>&1
  if [ -s "$TMP/run/netd.pid" ]; then
    pid=$(cat "$TMP/run/netd.pid")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = netd ] && kill "$pid"
  fi
  sleep 0.3
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  chattr -R -i "$TMP" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

need=()
for pkg in podman runc busybox-static containernetworking-plugins curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
# NETD_PROFILE=debug uses (and builds, if needed) the debug binaries, as
# .ci/run does right after the tests built them.
PROFILE=${NETD_PROFILE:-release}
if [ "$PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --release -q -p netd -p netd-cni)
else
  (cd "$ROOT" && cargo build -q -p netd -p netd-cni)
fi

step "plugin dir, network config, containers.conf"
mkdir -p "$TMP/cni-bin" "$TMP/net.d" "$TMP/state" "$TMP/run"
cp "$TARGET/$PROFILE/netd-cni" "$TARGET/$PROFILE/netd" "$TMP/cni-bin/"
cat > "$TMP/net.d/$NET.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$NET",
  "plugins": [
    { "type": "netd-cni", "subnet": "10.177.0.0/24", "subnet6": "fd00:177::/64", "dnsEnabled": true,
      "stateDir": "$TMP/state", "socket": "$TMP/run/netd.sock",
      "capabilities": { "portMappings": true, "aliases": true } }
  ]
}
JSON
cat "$TMP/net.d/$NET.conflist"
cat > "$TMP/containers.conf" <<TOML
[network]
network_backend = "cni"
cni_plugin_dirs = ["$TMP/cni-bin", "/usr/lib/cni"]
network_config_dir = "$TMP/net.d"
[engine]
cgroup_manager = "cgroupfs"
# runc: crun refuses hosts with hybrid cgroups (v1 + v2), which some CI
# machines have.
runtime = "runc"
events_logger = "file"
TOML

step "host and outside namespaces"
ip netns add "$P-host"; ip -n "$P-host" link set lo up
ip netns add "$P-out"; ip -n "$P-out" link set lo up
ip link add "$P-up" netns "$P-host" type veth peer name "$P-upo" netns "$P-out" 2>/dev/null ||
  ip link add ndpodup netns "$P-host" type veth peer name ndpodupo netns "$P-out"
UP=$(ip -n "$P-host" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1 | head -1)
UPO=$(ip -n "$P-out" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1 | head -1)
ip -n "$P-host" addr add 10.176.0.1/24 dev "$UP"; ip -n "$P-host" link set "$UP" up
ip -n "$P-out" addr add 10.176.0.2/24 dev "$UPO"; ip -n "$P-out" link set "$UPO" up

step "a local busybox image (podman import, no registry)"
mkdir -p "$TMP/rootfs/bin" "$TMP/rootfs/www" "$TMP/rootfs/etc"
cp /bin/busybox "$TMP/rootfs/bin/busybox"
for a in sh ping ping6 httpd nslookup wget nc cat sleep hostname ip grep; do ln -s busybox "$TMP/rootfs/bin/$a"; done
echo "hello from a" > "$TMP/rootfs/www/index.html"
tar -C "$TMP/rootfs" -c . | pm import - localhost/ndpod-busybox >/dev/null
pm images --format '{{.Repository}}:{{.Tag}} {{.Size}}'

step "podman network ls (reads netd-cni's conflist)"
pm network ls

step "two containers on $NET; a publishes 8080 -> 80"
pm run -d --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --name "$P-a" --network "$NET" --dns 127.0.0.11 -p 8080:80 localhost/ndpod-busybox \
  httpd -f -p 80 -h /www >/dev/null
pm run -d --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --name "$P-b" --network "$NET" --dns 127.0.0.11 localhost/ndpod-busybox sleep 600 >/dev/null
pm ps --format '{{.Names}} {{.Status}} {{.Ports}}'
pm exec "$P-b" ip addr show eth0

step "b pings a by name (DNS at 127.0.0.11 inside the container)"
pm exec "$P-b" nslookup "$P-a" 127.0.0.11
pm exec "$P-b" ping -4 -c 2 -W 2 "$P-a"

step "b resolves a's AAAA and reaches it over IPv6 (ping6, HTTP to [a])"
A6=$(pm exec "$P-a" ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)
echo "a's IPv6 address: $A6"
case "$A6" in fd00:177::*) ;; *) echo "a has no address of fd00:177::/64"; exit 1 ;; esac
pm exec "$P-b" nslookup -type=AAAA "$P-a" 127.0.0.11 | tee "$TMP/aaaa"
grep -q "$A6" "$TMP/aaaa"
pm exec "$P-b" ping -6 -c 2 -W 2 "$P-a"
# busybox 1.35's wget crashes on an IPv6 literal URL: nc speaks the HTTP.
got=$(pm exec "$P-b" sh -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 5 $A6 80" | tail -1)
echo "b -> [$A6]:80: $got"
[ "$got" = "hello from a" ]
got=$(nsenter --net=/run/netns/$P-host curl -s -m 5 "http://[$A6]:80/")
echo "host -> [$A6]:80: $got"
[ "$got" = "hello from a" ]

step "the published port, from the outside namespace and from the host's 127.0.0.1"
got=$(nsenter --net=/run/netns/$P-out curl -s -m 5 http://10.176.0.1:8080/)
echo "outside -> 10.176.0.1:8080: $got"
[ "$got" = "hello from a" ]
got=$(nsenter --net=/run/netns/$P-host curl -s -m 5 http://127.0.0.1:8080/)
echo "host -> 127.0.0.1:8080: $got"
[ "$got" = "hello from a" ]

step "podman rm: DEL leaves nothing"
pm rm -f -t 0 "$P-a" "$P-b" >/dev/null
# DEL returns before the kernel has deleted the veths: a process of
# netd-cni's own deletes them a few ms later.
for _ in $(seq 50); do
  left=$(ip -n "$P-host" -o link show type veth | grep -c ' nd-' || true)
  [ "$left" = 0 ] && break
  sleep 0.1
done
echo "veths left: $left"
[ "$left" = 0 ]

printf '\nPASS\n'
