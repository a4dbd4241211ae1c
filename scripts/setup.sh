#!/usr/bin/env bash
# Install what netd needs to build, run and be tested on Debian 12 (bookworm).
#
#   sudo scripts/setup.sh
#
# Idempotent and quiet: packages that are already installed are skipped (and
# `apt-get update` only runs when something is missing); it prints one line
# per thing it changes and a summary. apt's output goes to a log file that is
# shown only if a step fails.
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo --preserve-env=PATH,RUSTUP_HOME,CARGO_HOME "$0" "$@"
    fi
    die "run as root (apt-get needs it)"
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script is for Debian 12"

# Build: nftnl-sys/mnl-sys link libnftnl/libmnl through pkg-config; cmake is
# needed by zlib-ng (pulled in by the load balancer's dependencies);
# protobuf-compiler (protoc) by the etcd client's gRPC code generation, which
# also imports protobuf's well-known types (google/protobuf/descriptor.proto):
# those are in libprotobuf-dev, only a recommendation of protobuf-compiler,
# which --no-install-recommends leaves out.
BUILD_PKGS=(build-essential pkg-config cmake libnftnl-dev libmnl-dev protobuf-compiler libprotobuf-dev)
# Run and test: ip, nft, ping, dig, ps/pgrep, curl, python3.
# dnsmasq-base: the binary only (no service that would start in the root namespace),
# used as the upstream resolver in the DNS tests.
# containernetworking-plugins: the reference CNI plugins (/usr/lib/cni/tuning)
# that netd-cni's chain test runs after it.
# systemd: for `systemd-analyze verify` of the units in dist/systemd (tests/install.rs).
# A no-op on a host booted with systemd; in a container its maintainer scripts
# start nothing (deb-systemd-invoke only acts when systemd is PID 1).
# etcd-server: the cluster store the overlay tests start on their underlay
# (they run the binary themselves; on a host booted with systemd the package
# also starts its own etcd.service on localhost, which the tests never use);
# etcd-client: etcdctl, which the overlay tests use to read and write etcd's
# keys (only a suggestion of etcd-server, so not installed with it).
# iperf3: the throughput rows of bench/overlay.sh and the CNI bandwidth tests.
TOOL_PKGS=(iproute2 nftables iputils-ping dnsutils procps curl python3 dnsmasq-base containernetworking-plugins systemd etcd-server etcd-client iperf3)

APT_LOG=$(mktemp /tmp/netd-setup-apt.XXXXXX.log)
trap 'rm -f "$APT_LOG"' EXIT
export DEBIAN_FRONTEND=noninteractive

apt_quiet() {
    if ! "$@" >>"$APT_LOG" 2>&1; then
        tail -n 30 "$APT_LOG" >&2
        die "failed: $*"
    fi
}

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${BUILD_PKGS[@]}" "${TOOL_PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done

updated=0
apt_update() {
    if [ "$updated" -eq 0 ]; then
        apt_quiet apt-get -q update
        updated=1
    fi
}

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_update
    apt_quiet apt-get -q install -y --no-install-recommends "${missing[@]}"
fi

# The docker CLI is only used to show that the stock client works against
# netd's socket; the daemon (dockerd) is never needed. Many images ship the
# CLI already; otherwise take Debian's package (docker-cli where it exists,
# docker.io on bookworm).
if ! command -v docker >/dev/null 2>&1; then
    apt_update
    pkg=""
    for candidate in docker-cli docker.io; do
        if apt-cache show "$candidate" >/dev/null 2>&1; then
            pkg=$candidate
            break
        fi
    done
    [ -n "$pkg" ] || die "no docker CLI package (docker-cli or docker.io) in the apt sources"
    log "installing $pkg (for the docker CLI)"
    apt_quiet apt-get -q install -y --no-install-recommends "$pkg"
fi

# firewalld, for tests/tests/firewalld.rs (`netd daemon --firewalld`). Its
# Python libraries are installed; the firewalld package itself is only
# extracted under $FIREWALLD_DIR, never installed: on a host booted with
# systemd its postinst would enable and start firewalld in the root
# namespace and take over the host's firewall. The test runs the extracted
# daemon itself, inside a network namespace of its own, on a D-Bus daemon
# of its own, with a copy of etc/firewalld in its temp dir.
# Its Depends, less gir1.2-nm-1.0 (NetworkManager's bindings: firewalld
# runs without them) and polkitd (without polkit firewalld allows root).
FIREWALLD_DIR=${NETD_TEST_FIREWALLD:-/opt/netd-tests/firewalld}
FIREWALLD_PKGS=(dbus python3-firewall python3-nftables python3-dbus python3-gi gir1.2-glib-2.0)
fw_missing=()
for p in "${FIREWALLD_PKGS[@]}"; do
    installed "$p" || fw_missing+=("$p")
done
if [ "${#fw_missing[@]}" -gt 0 ]; then
    log "installing ${fw_missing[*]} (firewalld's libraries, for the firewalld test)"
    apt_update
    apt_quiet apt-get -q install -y --no-install-recommends "${fw_missing[@]}"
fi
if [ ! -x "$FIREWALLD_DIR/usr/sbin/firewalld" ]; then
    log "extracting firewalld (not installing it) into $FIREWALLD_DIR"
    apt_update
    dl=$(mktemp -d /tmp/netd-setup-firewalld.XXXXXX)
    # apt-get download writes to the current directory, as the _apt user
    # when it can: make it able to.
    chmod 0755 "$dl"
    (cd "$dl" && apt_quiet apt-get -q download firewalld)
    mkdir -p "$FIREWALLD_DIR"
    dpkg-deb -x "$dl"/firewalld_*.deb "$FIREWALLD_DIR" || die "dpkg-deb -x firewalld failed"
    rm -rf "$dl"
fi
grep -qx 'FirewallBackend=nftables' "$FIREWALLD_DIR/etc/firewalld/firewalld.conf" ||
    die "$FIREWALLD_DIR/etc/firewalld/firewalld.conf: expected FirewallBackend=nftables"

# Rust: CI and most machines have a rustup toolchain; make sure the lint
# components .ci/run uses are there.
if command -v rustup >/dev/null 2>&1; then
    have=$(rustup component list --installed 2>/dev/null || true)
    for comp in rustfmt clippy; do
        if ! grep -q "^${comp}" <<<"$have"; then
            log "adding rustup component $comp"
            rustup component add "$comp" >>"$APT_LOG" 2>&1 || {
                tail -n 20 "$APT_LOG" >&2
                die "rustup component add $comp failed"
            }
        fi
    done
elif ! command -v cargo >/dev/null 2>&1; then
    log "warning: no Rust toolchain found; install one with rustup (https://rustup.rs), Rust 1.88 or newer"
fi

log "ok: build and test dependencies are installed"
