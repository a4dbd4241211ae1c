#!/usr/bin/env bash
# Install netd on this host from a release build: binaries, systemd units, a
# tmpfiles.d entry for its directories, the CNI plugin and a sample conflist.
# Nothing is enabled or started; the closing lines say what to run next.
#
#   scripts/install.sh                    # build (as you), install under /usr/local (as root)
#   scripts/install.sh --uninstall        # remove what it installed; state is kept
#   DESTDIR=/tmp/stage scripts/install.sh --no-build   # stage into a directory, no root needed
#
# Options (docs/operations.md):
#   --prefix DIR     binaries in DIR/bin, docs in DIR/share/doc/netd (default /usr/local)
#   --destdir DIR    stage everything under DIR (or DESTDIR=DIR); the host is not touched
#   --from DIR       take netd, netd-lb and netd-cni from DIR (default: target/release)
#   --no-build       do not run cargo (the binaries must be in --from)
#   --unitdir DIR    systemd units (default /etc/systemd/system)
#   --cni-bin DIR    the CNI plugin (default /opt/cni/bin)
#   --cni-conf DIR   the sample conflist (default /etc/cni/net.d)
#   --uninstall      remove the files an install put there (the state dir,
#                    /var/lib/netd, and changed config files stay)
#
# Run as root, or as a user with sudo (only the copying runs under sudo).
# With a destdir, no root is needed and nothing outside it is written.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
FROM=""
BUILD=1
UNITDIR=/etc/systemd/system
CNI_BIN=/opt/cni/bin
CNI_CONF=/etc/cni/net.d
UNINSTALL=0
ARGS=("$@")

die() { printf 'install: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'install: %s\n' "$*"; }

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
absolute() { case "$2" in /*) ;; *) die "$1 must be an absolute path, got '$2'" ;; esac; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --destdir) need_value "$@"; DESTDIR=$2; shift 2 ;;
        --from) need_value "$@"; FROM=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --unitdir) need_value "$@"; UNITDIR=$2; shift 2 ;;
        --cni-bin) need_value "$@"; CNI_BIN=$2; shift 2 ;;
        --cni-conf) need_value "$@"; CNI_CONF=$2; shift 2 ;;
        --uninstall) UNINSTALL=1; BUILD=0; shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
absolute --prefix "$PREFIX"
absolute --unitdir "$UNITDIR"
absolute --cni-bin "$CNI_BIN"
absolute --cni-conf "$CNI_CONF"
if [ -n "$DESTDIR" ]; then
    absolute --destdir "$DESTDIR"
fi
# Paths with characters sed or systemd would read specially are refused
# rather than half-substituted into a unit.
for p in "$PREFIX" "$DESTDIR"; do
    case "$p" in *[[:space:]\|\\%\$]*) die "unsupported character in path '$p'" ;; esac
done

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
FROM=${FROM:-$TARGET/release}
BINS=(netd netd-lb)

# Build as the invoking user (cargo's cache is theirs), copy as root.
if [ "$BUILD" -eq 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or pass --no-build --from DIR"
    log "building release binaries (cargo build --release -p netd -p netd-lb -p netd-cni)"
    (cd "$REPO" && cargo build --release --quiet -p netd -p netd-lb -p netd-cni)
    BUILD=0
fi

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "run as root (or give --destdir to stage without root)"
    log "copying as root (sudo)"
    exec sudo "$0" "${ARGS[@]}" --no-build --from "$FROM" --prefix "$PREFIX"
fi

D=$DESTDIR
BINDIR=$PREFIX/bin
DOCDIR=$PREFIX/share/doc/netd
UNITS=(netd.service netd-lb@.service)
TMPFILES=/etc/tmpfiles.d/netd.conf
CONFLIST=$CNI_CONF/10-netd.conflist
LBDIR=/etc/netd/lb
DOCS=(operations.md lb.md cni.md getting-started.md)

# Every file an install writes, for --uninstall (config files apart).
files() {
    for b in "${BINS[@]}"; do echo "$BINDIR/$b"; done
    echo "$CNI_BIN/netd-cni"
    echo "$CNI_BIN/netd"
    for u in "${UNITS[@]}"; do echo "$UNITDIR/$u"; done
    echo "$TMPFILES"
    for d in "${DOCS[@]}"; do echo "$DOCDIR/$d"; done
    echo "$DOCDIR/lb-example.toml"
    echo "$DOCDIR/10-netd.conflist"
}

# systemctl only when installing onto this host's / and systemd runs it.
host_systemd() { [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$UNINSTALL" -eq 1 ]; then
    if host_systemd; then
        for u in netd.service; do
            if systemctl is-active --quiet "$u"; then
                die "$u is running: systemctl disable --now $u first (containers keep their networks)"
            fi
        done
    fi
    removed=0
    while read -r f; do
        if [ -e "$D$f" ] || [ -L "$D$f" ]; then
            rm -f "$D$f"
            removed=$((removed + 1))
        fi
    done < <(files)
    # The conflist is the operator's once changed: removed only as installed.
    if [ -f "$D$CONFLIST" ] && cmp -s "$D$CONFLIST" "$REPO/dist/cni/10-netd.conflist"; then
        rm -f "$D$CONFLIST"
        removed=$((removed + 1))
    elif [ -f "$D$CONFLIST" ]; then
        log "kept $CONFLIST (changed since install)"
    fi
    rmdir "$D$DOCDIR" "$D$LBDIR" "$D/etc/netd" 2>/dev/null || true
    host_systemd && systemctl daemon-reload
    log "removed $removed files; kept /var/lib/netd (state) and any /etc/netd/lb/*.toml"
    exit 0
fi

for b in "${BINS[@]}" netd-cni; do
    [ -x "$FROM/$b" ] || die "$FROM/$b not found: build with cargo build --release -p netd -p netd-lb -p netd-cni, or pass --from DIR"
done

inst() { install -D -m "$1" "$2" "$D$3"; }

for b in "${BINS[@]}"; do inst 0755 "$FROM/$b" "$BINDIR/$b"; done
# The plugin finds netd beside itself to start the DNS daemon (docs/cni.md).
inst 0755 "$FROM/netd-cni" "$CNI_BIN/netd-cni"
ln -sfn "$BINDIR/netd" "$D$CNI_BIN/netd"
for u in "${UNITS[@]}"; do
    install -d "$D$UNITDIR"
    sed "s|/usr/local/bin/|$BINDIR/|g; s|/usr/local/share/doc/netd/|$DOCDIR/|g" \
        "$REPO/dist/systemd/$u" >"$D$UNITDIR/$u"
    chmod 0644 "$D$UNITDIR/$u"
done
inst 0644 "$REPO/dist/systemd/netd.tmpfiles" "$TMPFILES"
for d in "${DOCS[@]}"; do inst 0644 "$REPO/docs/$d" "$DOCDIR/$d"; done
inst 0644 "$REPO/dist/lb/example.toml" "$DOCDIR/lb-example.toml"
inst 0644 "$REPO/dist/cni/10-netd.conflist" "$DOCDIR/10-netd.conflist"
install -d -m 0755 "$D$LBDIR"
if [ -e "$D$CONFLIST" ]; then
    log "kept the existing $CONFLIST (the sample is in $DOCDIR)"
else
    inst 0644 "$REPO/dist/cni/10-netd.conflist" "$CONFLIST"
fi

if host_systemd; then
    systemctl daemon-reload
    systemd-tmpfiles --create "$TMPFILES"
fi
log "installed netd into ${D:-/} (prefix $PREFIX)"
if [ -z "$D" ]; then
    cat <<EOF
install: next:
  systemctl enable --now netd                  # the daemon (READY once its socket serves)
  cp $DOCDIR/lb-example.toml $LBDIR/web.toml   # then edit it, and:
  systemctl enable --now netd-lb@web
EOF
fi
