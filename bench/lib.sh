# Helpers shared by the bench scripts (sourced). Expects P (namespace
# prefix), TMP (scratch dir) and ROWS (result rows file) to be set.

NETAVARK=${NETAVARK:-/usr/lib/podman/netavark}
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
CNI=${CNI:-/usr/lib/cni}

# Install Debian packages that are missing.
need_pkgs() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

# Timestamps from bash itself ($EPOCHREALTIME, bash 5): a `date` process per
# reading put ~1 ms of fork and exec into every timed region.
#   t=$EPOCHREALTIME; <timed command>; elapsed "$t" >> file   # milliseconds
elapsed() { local t1=$EPOCHREALTIME; echo "scale=3; (${t1//[!0-9]/} - ${1//[!0-9]/}) / 1000" | bc; }
stats() { # stdin: one number per line -> "p50 p99"
  sort -n | awk '{a[NR]=$1} END {i50=int((NR-1)*0.5+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%.2f %.2f\n", a[i50], a[i99]}'
}
row() { # tool present op file
  local p50 p99
  read -r p50 p99 < <(stats < "$4")
  printf '%s %s %s %s %s %s\n' "$1" "$2" "$3" "$p50" "$p99" "$(wc -l < "$4")" | tee -a "$ROWS" >&2
}
print_rows() {
  printf '\n%-12s %8s %-12s %9s %9s %4s\n' tool present op "p50 ms" "p99 ms" n
  while read -r tool present op p50 p99 n; do
    printf '%-12s %8s %-12s %9s %9s %4s\n' "$tool" "$present" "$op" "$p50" "$p99" "$n"
  done < "$ROWS"
}
p50_of() { # tool present op
  awk -v t="$1" -v l="$2" -v o="$3" '$1==t && $2==l && $3==o {print $4}' "$ROWS"
}
hostns() { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; }

# Run a tool in namespace $P-NS. With SPANS set, append to that file the
# start and end (us) of the tool's own process: fork, exec, run, exit,
# which is what a runtime waits for when it execs a plugin from its own
# namespace. The nsenter, the shell and the JSON building around it are not
# the tool's: they stay out of the span (they had cost ~3 ms per call).
in_ns() { # ns cmd args...
  local ns=$1; shift
  if [ -z "${SPANS:-}" ]; then nsenter --net="/run/netns/$P-$ns" "$@"; return; fi
  nsenter --net="/run/netns/$P-$ns" bash -c \
    't0=$EPOCHREALTIME; "$@"; rc=$?; t1=$EPOCHREALTIME
     echo "${t0//[!0-9]/} ${t1//[!0-9]/}" >> "$SPANS"; exit $rc' _ "$@"
}
# The summed spans in FILE, in ms; empties the file.
spans_ms() { awk '{s += $2 - $1} END {printf "%.3f\n", s / 1000}' "$1"; : > "$1"; }

# netavark, driven with its setup/teardown JSON the way podman drives it.
# NV_NET (name), NV_BRIDGE, NV_SUBNET, NV_GW, NV_DNS (true/false) describe
# the network; it runs in namespace $P-nv with config dir $TMP/nv.
nv_opts() { # container_name ip ports_json
  cat <<JSON
{"container_id":"$(printf '%064x' "$RANDOM$RANDOM$RANDOM")","container_name":"$1",
 "networks":{"$NV_NET":{"interface_name":"eth0","static_ips":["$2"],"aliases":["$1"]}},
 "network_info":{"$NV_NET":{"dns_enabled":$NV_DNS,"driver":"bridge","id":"$(printf '%064d' 7)","internal":false,
   "ipv6_enabled":false,"name":"$NV_NET","network_interface":"$NV_BRIDGE",
   "subnets":[{"subnet":"$NV_SUBNET","gateway":"$NV_GW"}]}},
 "port_mappings":$3}
JSON
}
# NV_NS and NV_DIR (default nv, $TMP/nv): its namespace and config dir.
nv() { # setup|teardown container ip ports_json
  in_ns "${NV_NS:-nv}" "$NETAVARK" --config "${NV_DIR:-$TMP/nv}" --aardvark-binary "$AARDVARK" \
    "$1" "/run/netns/$P-$2" < <(nv_opts "$2" "$3" "$4") >/dev/null
}
# Port lists built in bash: a python start-up per call would make the
# benchmark slow (they are outside the timed spans either way).
nv_ports() { # base count container_port -> netavark port_mappings JSON
  local i out=""
  for ((i = 0; i < $2; i++)); do
    out+="${out:+,}{\"host_ip\":\"\",\"container_port\":$(( $3 + i )),\"host_port\":$(( $1 + i )),\"range\":1,\"protocol\":\"tcp\"}"
  done
  echo "[$out]"
}

# A CNI plugin exec'd the way libcni does, from namespace $P-$CNI_NS
# (default cni).
cni_exec() { # plugin command container config
  CNI_COMMAND=$2 CNI_CONTAINERID=$3 CNI_NETNS=/run/netns/$P-$3 CNI_IFNAME=eth0 CNI_PATH=$CNI \
    in_ns "${CNI_NS:-cni}" "$CNI/$1" <<<"$4"
}
# The reference chain bridge + host-local + portmap on CNI_SUBNET, bridge
# CNI_BRIDGE, leases under CNI_IPAM (default $TMP/cni-ipam).
cni_chain() { # ADD|DEL container portmappings_json
  local bridge='{"cniVersion":"1.0.0","name":"ndref","type":"bridge","bridge":"'"$CNI_BRIDGE"'","isGateway":true,"ipMasq":true,
    "ipam":{"type":"host-local","ranges":[[{"subnet":"'"$CNI_SUBNET"'"}]],"dataDir":"'"${CNI_IPAM:-$TMP/cni-ipam}"'"}}'
  if [ "$1" = ADD ]; then
    local res; res=$(cni_exec bridge ADD "$2" "$bridge")
    cni_exec portmap ADD "$2" '{"cniVersion":"1.0.0","name":"ndref","type":"portmap","capabilities":{"portMappings":true},
      "runtimeConfig":{"portMappings":'"$3"'},"prevResult":'"$res"'}' >/dev/null
  else
    cni_exec portmap DEL "$2" '{"cniVersion":"1.0.0","name":"ndref","type":"portmap","capabilities":{"portMappings":true},
      "runtimeConfig":{"portMappings":'"$3"'}}' >/dev/null
    cni_exec bridge DEL "$2" "$bridge" >/dev/null
  fi
}
cni_ports() { # base count container_port -> CNI portMappings JSON
  local i out=""
  for ((i = 0; i < $2; i++)); do
    out+="${out:+,}{\"hostPort\":$(( $1 + i )),\"containerPort\":$(( $3 + i )),\"protocol\":\"tcp\"}"
  done
  echo "[$out]"
}

# Stop a process by the pid in FILE, if it is still the command NAME.
stop_pidfile() { # file name
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
