#!/usr/bin/env bash
# Hosted runner against Open vSwitch (not a timed test; issue 12): the hosted runner
# (`ironflow-hosted`, the appliance's main loop natively) and Open vSwitch 3.1 (Debian's
# ovs-vswitchd, `datapath_type=netdev`, run from a private directory with its own database,
# pidfiles and unixctl sockets) on the same veth/netns hosts, one after the other in one run,
# with the image under TCG from the existing scripts in the same table for reference.
#
# Switches (FWD_SWITCHES, PIN_SWITCHES pick and order them):
#   hosted-xdp-busy, hosted-xdp       the runner with AF_XDP ports (copy mode on veth), with and
#                                     without --busy-poll (without: an idle pass waits in poll(2));
#   hosted-packet-busy, hosted-packet the runner with AF_PACKET ports, the same two ways;
#   ovs-afxdp                         OVS, `type=afxdp` ports (AF_XDP, read by a PMD thread);
#   ovs-system                        OVS, plain ("system") ports on the netdev bridge (AF_PACKET,
#                                     read by the main thread).
# AF_XDP is compared with AF_XDP and AF_PACKET with AF_PACKET.
#
# Sections (arguments, default all four, in this order):
#   forwarding  h1 → h2 through each of FWD_SWITCHES (two veth ports; the hosts' ends with
#               checksum offload, TSO, GSO, GRO off and IPv6 off, as the tests wire them):
#               - rtt: ping -c 20 -i 0.05 (also teaches the switch both MACs);
#               - udp64: 64-byte frames (60 + FCS, Ethernet/IPv4/UDP, 18 bytes of payload) for
#                 DURATION s from hosted/examples/pktgen (sendmmsg + PACKET_QDISC_BYPASS, as fast
#                 as one core can) in h1 to h2's MAC; offered = the generator's sends, delivered =
#                 h2 eth0 rx_packets; the switch's CPU time (utime + stime of every thread,
#                 /proc/PID/task/*/stat) over the flood gives cpu_share (CPU-seconds per second)
#                 and pps_per_cpu_s (delivered frames per CPU-second of the switch: the per-core
#                 rate); the busiest thread's share is reported too (OVS: the PMD or main thread);
#               - tcp: iperf3 -c 10.0.0.2 -t DURATION (one stream), receiver Mbit/s, retransmits.
#               The hosts send no ICMP errors (net.ipv4.icmp_msgs_per_sec=0 in their namespaces):
#               h2's receive work runs in the softirq of whoever transmits to it, the switch, and
#               should be IPv4/UDP receive only, not a route lookup for a port unreachable per frame.
# Placement (2 shared vCPUs here): the switch on CPU SWITCH_CPU (default 1: the runner under
# taskset; OVS's PMD thread with pmd-cpu-mask, and ovs-vswitchd under taskset), the generator on
# GEN_CPU (default 0); SWITCH_CPU= GEN_CPU= leaves both to the scheduler, which often puts them
# on the same CPU (the runner then forwarded less than half as much).
#   openflow    tests/bench/openflow.sh hosted ovs (REPEAT runs of `ovs-ofctl add-flows` of 10k
#               and 100k flows, `ovs-ofctl ping`, `ovs-ofctl benchmark`); the runner's management
#               is its own smoltcp stack on a root-namespace tap reached directly (10.0.2.15),
#               OVS listens on ptcp:127.0.0.1. With `tcg` also the appliance under TCG, same run.
#               Then the echo round trip timed in a Python client (ovs-ofctl ping prints 0.1 ms
#               steps): ECHO_COUNT (2000) OpenFlow 1.3 echo requests with 64 bytes of payload, one
#               at a time, against each of ECHO_SWITCHES (hosted-xdp hosted-xdp-busy ovs-afxdp):
#               average, median, 99th percentile, max in microseconds.
#   packet_in   each of PIN_SWITCHES with one veth port (h1) and the flow
#               `priority=100,udp,actions=controller`; the OpenFlow 1.3 client of
#               tests/bench/packet_in.sh (HELLO, SET_CONFIG miss_send_len=0xffff, BARRIER, then
#               counts PACKET_INs until none came for 3 s); pktgen floods for DURATION s at
#               PIN_PPS frames/s (0 = as fast as it can). Reported: offered, frames the switch
#               received and matched, packet-ins received, and where the rest went: the runner's
#               counters (packet-ins made by the pipeline, sent, backlogged, queue drops = made -
#               sent - backlogged, from its console stats lines), OVS's coverage counters
#               (packet_in_overflow: its async-message queue; rconn_overflow / rconn_discarded:
#               the connection's queue) and its datapath's reads (pmd-stats-show).
#   tcg         the image under TCG, for reference: tests/bench/forwarding.sh appliance
#               (ACCELS=tcg; its sender is the Python one, ~200 kpps, above what TCG forwards) and
#               tests/bench/packet_in.sh appliance (ACCEL=tcg); with `openflow` also
#               openflow.sh's appliance run (ACCEL=tcg) in the same openflow.sh invocation.
#
#   sudo tests/bench/hosted.sh                            # everything, ~10 min at DURATION=10
#   sudo DURATION=3 REPEAT=1 tests/bench/hosted.sh forwarding
#   sudo FWD_SWITCHES="hosted-xdp-busy ovs-afxdp" tests/bench/hosted.sh forwarding packet_in
#   HOSTED_BIN=... PKTGEN=... ELF=... sudo -E tests/bench/hosted.sh   # prebuilt binaries
#
# Builds (unless given) the runner and pktgen (`cargo build --release -p hosted --bin
# ironflow-hosted --example pktgen`) and, for `tcg`, the image (`cargo run -p image -- --out`),
# into CARGO_TARGET_DIR. Output: `RESULT section:switch metric value ...` lines and a summary
# with the ratios hosted/OVS (same port type); logs under $OUT (a temp dir). Everything it
# creates (namespaces, veths, the tap, the runner, OVS daemons, generators, iperf3, the client)
# is stopped by PID or removed by name on exit; the sub-scripts clean up after themselves.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-10}"
REPEAT="${REPEAT:-3}"
PIN_PPS="${PIN_PPS:-0}"
SWITCH_CPU="${SWITCH_CPU-1}"                 # the switch's datapath thread(s) on this CPU ("" = unpinned)
GEN_CPU="${GEN_CPU-0}"                       # the generator on this one
FWD_SWITCHES="${FWD_SWITCHES:-hosted-xdp-busy hosted-xdp hosted-packet-busy hosted-packet ovs-afxdp ovs-system}"
ECHO_SWITCHES="${ECHO_SWITCHES:-hosted-xdp hosted-xdp-busy ovs-afxdp}"
ECHO_COUNT="${ECHO_COUNT:-2000}"
PIN_SWITCHES="${PIN_SWITCHES:-hosted-xdp-busy hosted-packet-busy ovs-afxdp ovs-system}"
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(forwarding openflow packet_in tcg)
P="hb$(printf '%x' $$)"                      # unique prefix for every name we create
OUT="${OUT:-$(mktemp -d /tmp/ironflow-hostedbench-XXXXXX)}"
mkdir -p "$OUT"
OVS_DIR="$OUT/ovs"
HOSTED_PID=""
SWITCH_PID=""
GEN_PID=""
SRV_PID=""
CLIENT_PID=""
TGT="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, veths, tap, OVS)"
for t in ip ping iperf3 python3 ethtool ovs-vswitchd ovs-ofctl ovs-vsctl; do
  command -v "$t" >/dev/null || die "$t is missing (tests/deps.sh installs it)"
done

kill_pid() {  # kill_pid VAR: stops the process whose PID is in $VAR and clears it
  local pid="${!1}"
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  printf -v "$1" '%s' ""
}

cleanup() {
  set +e
  kill_pid CLIENT_PID; kill_pid GEN_PID; kill_pid SRV_PID; kill_pid HOSTED_PID
  stop_ovs
  cleanup_hosts
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

cleanup_hosts() {
  for n in 1 2; do
    ip netns pids "${P}h$n" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "${P}h$n" 2>/dev/null
  done
  for l in "${P}v1" "${P}v2" "${P}m"; do ip link del "$l" 2>/dev/null; done
  true
}

result() {  # result SECTION:SWITCH METRIC VALUE...
  local who="$1" metric="$2"; shift 2
  printf 'RESULT %-24s %-30s %s\n' "$who" "$metric" "$*" | tee -a "$OUT/results.txt"
}

# --- binaries ----------------------------------------------------------------------------------

BIN="${HOSTED_BIN:-}"
PKTGEN="${PKTGEN:-}"
if [ -z "$BIN" ] || [ -z "$PKTGEN" ]; then
  log "building the hosted runner and pktgen (cargo build --release -p hosted)"
  (cd "$ROOT" && cargo build -q --release -p hosted --bin ironflow-hosted --example pktgen >&2) \
    || die "hosted build failed"
  BIN="${BIN:-$TGT/release/ironflow-hosted}"
  PKTGEN="${PKTGEN:-$TGT/release/examples/pktgen}"
fi
[ -x "$BIN" ] || die "no hosted runner at $BIN"
[ -x "$PKTGEN" ] || die "no pktgen at $PKTGEN"

# --- hosts ------------------------------------------------------------------------------------

offloads_off() {  # offloads_off [NS] DEV
  if [ $# = 2 ]; then
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1
  else
    ethtool -K "$1" tx off rx off tso off gso off gro off >/dev/null 2>&1
  fi
  true
}

# make_hosts N: veth ${P}vK in the root namespace (the switch's port K), its peer eth0 in
# namespace ${P}hK with 10.0.0.K/24, for K = 1..N; IPv6 off on both ends, offloads off.
make_hosts() {
  for n in $(seq "$1"); do
    local ns="${P}h$n" v="${P}v$n"
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    # No ICMP errors (port unreachable for the flood): the switch's transmit pays for the receiving
    # host's stack, and that should be IPv4/UDP receive only, not route lookups for ICMP replies.
    ip netns exec "$ns" sysctl -qw net.ipv4.icmp_msgs_per_sec=0 net.ipv4.icmp_msgs_burst=0
    ip link add "$v" type veth peer name eth0 netns "$ns"
    sysctl -qw "net.ipv6.conf.$v.disable_ipv6=1"
    ip link set "$v" address "52:54:00:00:00:0$n"
    offloads_off "$v"
    offloads_off "$ns" eth0
    ip link set "$v" up
    ip -n "$ns" addr add "10.0.0.$n/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
}

counter() { ip netns exec "${P}h$1" cat "/sys/class/net/eth0/statistics/$2"; }
mac_of() { ip netns exec "${P}h$1" cat /sys/class/net/eth0/address; }

# --- switches ---------------------------------------------------------------------------------

vsctl() { ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 "$@"; }
appctl() { ovs-appctl -t "$OVS_DIR/vswitchd.ctl" "$@"; }

stop_ovs() {
  for d in vswitchd ovsdb; do
    local pidf="$OVS_DIR/$d.pid"
    if [ -f "$pidf" ]; then
      local pid
      pid=$(cat "$pidf")
      kill "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
      rm -f "$pidf"
    fi
  done
}

# start_switch NAME NPORTS WITH_OPENFLOW: sets SWITCH_PID and TARGET (the OpenFlow target, when
# WITH_OPENFLOW=1).
start_switch() {
  local name="$1" nports="$2" of="$3" n
  TARGET=""
  case "$name" in
    hosted-*)
      local kind busy="" args=()
      kind=${name#hosted-}; kind=${kind%-busy}
      [ "$name" != "${name%-busy}" ] && busy=--busy-poll
      for n in $(seq "$nports"); do args+=(--port "${P}v$n"); done
      local settings=(stats=0)
      if [ "$of" = 1 ]; then
        ip tuntap add dev "${P}m" mode tap
        ip addr add 10.0.2.2/24 dev "${P}m"
        ip link set "${P}m" up
        args+=(--mgmt-tap "${P}m")
        settings=(mgmt.ip=10.0.2.15/24 stats=1)
        TARGET="tcp:10.0.2.15:6653"
      fi
      rm -f "$OUT/$name.in"; mkfifo "$OUT/$name.in"
      ${SWITCH_CPU:+taskset -c "$SWITCH_CPU"} "$BIN" "${args[@]}" --port-kind "$kind" $busy ${HOSTED_ARGS:-} -- "${settings[@]}" \
        <>"$OUT/$name.in" >"$OUT/$name.log" 2>&1 &
      HOSTED_PID=$!
      for _ in $(seq 100); do grep -q 'ironflow: ready' "$OUT/$name.log" && break; sleep 0.1; done
      grep -q 'ironflow: ready' "$OUT/$name.log" || die "$name not ready: $(tail -5 "$OUT/$name.log")"
      SWITCH_PID=$HOSTED_PID
      ;;
    ovs-afxdp|ovs-system)
      rm -rf "$OVS_DIR"; mkdir -p "$OVS_DIR"
      (
        export OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR"
        ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
        ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovsdb.pid" \
          --unixctl="$OVS_DIR/ovsdb.ctl" --log-file="$OVS_DIR/ovsdb.log" --detach --no-chdir
        vsctl --no-wait init
        [ -z "$SWITCH_CPU" ] || vsctl --no-wait set Open_vSwitch . "other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << SWITCH_CPU)))"
        ${SWITCH_CPU:+taskset -c "$SWITCH_CPU"} ovs-vswitchd "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/vswitchd.pid" --unixctl="$OVS_DIR/vswitchd.ctl" \
          --log-file="$OVS_DIR/vswitchd.log" --detach --no-chdir
      ) >>"$OUT/ovs-start.log" 2>&1 || die "OVS did not start: $(tail -3 "$OUT/ovs-start.log")"
      local cmd=(add-br "${P}br" -- set bridge "${P}br" datapath_type=netdev)
      for n in $(seq "$nports"); do
        cmd+=(-- add-port "${P}br" "${P}v$n" -- set interface "${P}v$n" ofport_request="$n")
        [ "$name" = ovs-afxdp ] && cmd+=(type=afxdp)
      done
      if [ "$of" = 1 ]; then
        local port
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        cmd+=(-- set-controller "${P}br" "ptcp:$port:127.0.0.1")
        TARGET="tcp:127.0.0.1:$port"
      fi
      vsctl "${cmd[@]}" || die "$name: ovs-vsctl add-br failed"
      ip link set "${P}br" up 2>/dev/null
      for n in $(seq "$nports"); do
        local err
        err=$(vsctl get interface "${P}v$n" error 2>&1)
        [ "$err" = "[]" ] || die "$name: interface ${P}v$n: $err (see $OVS_DIR/vswitchd.log)"
      done
      SWITCH_PID=$(cat "$OVS_DIR/vswitchd.pid")
      ;;
    *) die "unknown switch $name" ;;
  esac
  if [ -n "$TARGET" ]; then
    for _ in $(seq 100); do ovs-ofctl -O OpenFlow13 --timeout=2 show "$TARGET" >/dev/null 2>&1 && break; sleep 0.2; done
    ovs-ofctl -O OpenFlow13 --timeout=5 show "$TARGET" >/dev/null || die "$name: no OpenFlow on $TARGET"
  fi
  sleep 1
  log "$name up (pid $SWITCH_PID${TARGET:+, OpenFlow $TARGET})"
}

stop_switch() {
  local name="$1"
  case "$name" in
    hosted-*) kill_pid HOSTED_PID ;;
    ovs-*)
      appctl dpif/show >"$OUT/$SECTION-$name-dpif.txt" 2>&1
      appctl dpif-netdev/pmd-stats-show >>"$OUT/$SECTION-$name-dpif.txt" 2>&1
      appctl coverage/show >"$OUT/$SECTION-$name-coverage.txt" 2>&1
      vsctl del-br "${P}br"
      stop_ovs
      cp "$OVS_DIR/vswitchd.log" "$OUT/$SECTION-$name-vswitchd.log" 2>/dev/null
      ;;
  esac
  SWITCH_PID=""
  cleanup_hosts
}

# Per-thread CPU ticks of SWITCH_PID: "tid comm utime stime" lines.
thread_ticks() {
  local f
  for f in /proc/"$SWITCH_PID"/task/*/stat; do
    sed 's/^\([0-9]*\) (\(.*\)) /\1 \2 /' "$f" 2>/dev/null | awk '{gsub(/ /, "_", $2); print $1, $2, $14, $15}'
  done
}

# hosted console: `s` prints the ports' stats line
hosted_stats() {
  [ -n "$HOSTED_PID" ] || return 0
  local log="$OUT/$1.log" before
  before=$(grep -c 'stats: port1' "$log")
  printf s >"$OUT/$1.in"
  for _ in $(seq 40); do [ "$(grep -c 'stats: port1' "$log")" -gt "$before" ] && break; sleep 0.05; done
  grep 'stats: port1' "$log" | tail -1
}

# Receive drops of port 1 as the switch counts them (the runner: `drop=` of its stats line, the
# socket's drops; OVS: the interface's rx_dropped statistic).
port1_drops() {
  local v
  if [ "$1" != "${1#hosted}" ]; then
    v=$(grep -o 'port1 [^|]*' "$OUT/fwd-$1-stats-$2.txt" | grep -o ' drop=[0-9]*' | cut -d= -f2)
  else
    vsctl get interface "${P}v1" statistics >"$OUT/fwd-$1-ovs-stats-$2.txt" 2>&1
    v=$(grep -o '[{ ]rx_dropped=[0-9]*' "$OUT/fwd-$1-ovs-stats-$2.txt" | cut -d= -f2)
  fi
  echo "${v:-0}"
}

# --- forwarding -------------------------------------------------------------------------------

forward_one() {
  local sw="$1" who="fwd:$1"
  make_hosts 2
  start_switch "$sw" 2 0
  local ping_out
  ping_out=$(ip netns exec "${P}h1" ping -n -q -c 20 -i 0.05 -W 1 10.0.0.2 | tail -2)
  result "$who" rtt "$(grep -o 'rtt.*' <<<"$ping_out" | sed 's/rtt min\/avg\/max\/mdev = //') min/avg/max/mdev ms; $(head -1 <<<"$ping_out" | grep -o '[0-9]* received')"
  local dst; dst=$(mac_of 2)
  [ "$sw" = "${sw#hosted}" ] || hosted_stats "$sw" >"$OUT/fwd-$sw-stats-before.txt"
  local d0; d0=$(port1_drops "$sw" before)

  log "$sw: udp64 for ${DURATION}s"
  local tx0 td0 rx0 tx1 td1 rx1 c0 c1 t0 t1 gen
  tx0=$(counter 1 tx_packets); td0=$(counter 1 tx_dropped); rx0=$(counter 2 rx_packets)
  thread_ticks >"$OUT/fwd-$sw-threads0.txt"; t0=$(date +%s.%N)
  gen=$(ip netns exec "${P}h1" "$PKTGEN" --dev eth0 --dst "$dst" --secs "$DURATION" ${GEN_CPU:+--cpu "$GEN_CPU"})
  thread_ticks >"$OUT/fwd-$sw-threads1.txt"; t1=$(date +%s.%N)
  sleep 0.5
  tx1=$(counter 1 tx_packets); td1=$(counter 1 tx_dropped); rx1=$(counter 2 rx_packets)
  [ "$sw" = "${sw#hosted}" ] || hosted_stats "$sw" >"$OUT/fwd-$sw-stats-after.txt"
  local d1; d1=$(port1_drops "$sw" after)
  local sent secs
  sent=$(grep -o 'sent=[0-9]*' <<<"$gen" | cut -d= -f2); secs=$(grep -o 'secs=[0-9.]*' <<<"$gen" | cut -d= -f2)
  [ -n "$sent" ] || die "$sw: pktgen failed: $gen"
  local delivered=$((rx1 - rx0))
  result "$who" udp64.offered_pps "$(awk -v n="$sent" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') (pktgen $gen; h1 eth0 tx $((tx1 - tx0)), tx_dropped $((td1 - td0)))"
  result "$who" udp64.delivered_pps "$(awk -v n="$delivered" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') ($delivered frames at h2)"
  python3 - "$OUT/fwd-$sw-threads0.txt" "$OUT/fwd-$sw-threads1.txt" "$(getconf CLK_TCK)" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$delivered" >"$OUT/fwd-$sw-cpu.txt" <<'EOF'
import sys
def load(p):
    d = {}
    for line in open(p):
        tid, comm, ut, st = line.split()
        d[tid] = (comm, int(ut), int(st))
    return d
a, b, hz, wall, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
per = []
for t, (comm, ut, st) in b.items():
    _, ut0, st0 = a.get(t, (None, 0, 0))
    per.append(((ut - ut0 + st - st0) / hz, (ut - ut0) / hz, (st - st0) / hz, comm))
per.sort()
total = sum(x[0] for x in per)
user = sum(x[1] for x in per)
top = per[-1] if per else (0.0, 0.0, 0.0, "-")
print(f"{total / wall:.3f} {n / total if total > 0 else 0:.0f} {top[0] / wall:.3f} {top[3]} "
      f"{user / wall:.3f} {(total - user) / wall:.3f} {n / user if user > 0 else 0:.0f}")
for s, u, k, c in reversed(per):
    if s > 0:
        print(f"# {c} {s:.2f} CPU-s (user {u:.2f}, system {k:.2f})", file=sys.stderr)
EOF
  local share ppc top tcomm ushare sshare ppu
  read -r share ppc top tcomm ushare sshare ppu <"$OUT/fwd-$sw-cpu.txt"
  result "$who" udp64.lost "$((tx1 - tx0 - delivered)) (h1 eth0 tx - h2 eth0 rx: dropped at or in the switch; the switch's port 1 receive drops $((d1 - d0)))"
  result "$who" udp64.cpu_share "$share (CPU-seconds of the switch per second, all threads: user $ushare, system $sshare; busiest thread $tcomm $top)"
  result "$who" udp64.pps_per_cpu_s "$ppc (delivered frames per CPU-second of the switch)"
  result "$who" udp64.pps_per_user_cpu_s "$ppu (delivered frames per CPU-second of the switch in user mode: its own work without the kernel's port I/O)"

  log "$sw: iperf3 tcp for ${DURATION}s"
  ip netns exec "${P}h2" iperf3 -s -1 -B 10.0.0.2 >/dev/null 2>&1 &
  SRV_PID=$!
  for _ in $(seq 50); do ip netns exec "${P}h2" ss -ltnH | grep -q '10.0.0.2:5201' && break; sleep 0.1; done
  ip netns exec "${P}h1" timeout $((DURATION + 30)) iperf3 -c 10.0.0.2 -t "$DURATION" -J --connect-timeout 5000 >"$OUT/fwd-$sw-iperf3.json"
  kill_pid SRV_PID
  result "$who" tcp "$(python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    j = {}
e = j.get("end", {})
r, s = e.get("sum_received", {}), e.get("sum_sent", {})
bps, nbytes, retr = r.get("bits_per_second", 0), r.get("bytes", 0), s.get("retransmits", "?")
print("%.2f Mbit/s (%d bytes, %s retransmits)" % (bps / 1e6, nbytes, retr))
' "$OUT/fwd-$sw-iperf3.json")"
  stop_switch "$sw"
}

# --- packet-in --------------------------------------------------------------------------------

# The client of tests/bench/packet_in.sh (OpenFlow 1.3: HELLO, SET_CONFIG(miss_send_len=0xffff),
# BARRIER; counts PACKET_INs and answers ECHO_REQUESTs until none came for IDLE s after the first,
# or MAXTIME s in all; "ready" to READYFILE after the barrier reply; one JSON line at the end).
CLIENT_PY='
import json, select, socket, struct, sys, time
host, port, readyfile, maxtime, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
s = socket.create_connection((host, port), timeout=30)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
V = 4
def msg(t, xid, body=b""):
    return struct.pack("!BBHI", V, t, 8 + len(body), xid) + body
s.sendall(msg(0, 1) + msg(9, 2, struct.pack("!HH", 0, 0xffff)) + msg(20, 3))
buf = bytearray()
pins = pin_bytes = echoes = other = 0
first = last = None
ready = False
start = time.monotonic()
s.setblocking(False)
while True:
    t = time.monotonic()
    if t - start > maxtime:
        break
    if first is not None and t - last > idle:
        break
    r, _, _ = select.select([s], [], [], 0.2)
    if not r:
        continue
    try:
        d = s.recv(1 << 20)
    except BlockingIOError:
        continue
    if not d:
        break
    buf += d
    off = 0
    while len(buf) - off >= 8:
        ver, typ, length, xid = struct.unpack_from("!BBHI", buf, off)
        if length < 8:
            raise SystemExit("bad OpenFlow length")
        if len(buf) - off < length:
            break
        if typ == 10:
            pins += 1
            pin_bytes += length
            now = time.monotonic()
            if first is None:
                first = now
            last = now
        elif typ == 2:
            s.setblocking(True)
            s.sendall(struct.pack("!BBHI", ver, 3, length, xid) + bytes(buf[off + 8:off + length]))
            s.setblocking(False)
            echoes += 1
        elif typ == 21 and not ready:
            ready = True
            open(readyfile, "w").write("ready\n")
        elif typ == 1:
            raise SystemExit("OpenFlow error: " + bytes(buf[off:off + length]).hex())
        else:
            other += 1
        off += length
    del buf[:off]
print(json.dumps({"packet_ins": pins, "bytes": pin_bytes, "span_s": (last - first) if first else 0.0,
                  "echoes": echoes, "other": other}))
'

ofctl() { ovs-ofctl -O OpenFlow13 --timeout=30 "$@"; }
port1_rx() { ofctl dump-ports "$1" 1 | grep -o 'rx pkts=[0-9]*' | head -1 | cut -d= -f2; }
flow_packets() { ofctl dump-flows "$1" udp | grep -o 'n_packets=[0-9]*' | head -1 | cut -d= -f2; }
# The runner's last console stats lines: packet-ins made by the pipeline, sent, backlogged.
hosted_pin_counters() {
  local stats mgmt
  stats=$(grep 'stats: port1' "$OUT/$1.log" | tail -1)
  mgmt=$(grep 'mgmt: rx=' "$OUT/$1.log" | tail -1)
  printf '%s %s %s\n' "$(grep -o ' packet_ins=[0-9]*' <<<"$stats" | cut -d= -f2)" \
    "$(grep -o 'packet_ins_sent: [0-9]*' <<<"$mgmt" | cut -d' ' -f2)" \
    "$(grep -o 'packet_ins_backlogged: [0-9]*' <<<"$mgmt" | cut -d' ' -f2)"
}
coverage() { grep -E "^$2 " "$1" 2>/dev/null | awk '{print $NF}' | head -1; }

packet_in_one() {
  local sw="$1" who="pin:$1"
  make_hosts 1
  start_switch "$sw" 1 1
  local target="$TARGET" host port
  host=${target#tcp:}; port=${host##*:}; host=${host%:*}
  ofctl add-flow "$target" "priority=100,udp,actions=controller" || die "$sw: add-flow failed"
  rm -f "$OUT/pin-$sw.ready"
  python3 -c "$CLIENT_PY" "$host" "$port" "$OUT/pin-$sw.ready" $((DURATION + 90)) 3 \
    >"$OUT/pin-$sw-client.json" 2>"$OUT/pin-$sw-client.err" &
  CLIENT_PID=$!
  for _ in $(seq 300); do [ -f "$OUT/pin-$sw.ready" ] && break; kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
  [ -f "$OUT/pin-$sw.ready" ] || die "$sw: client not ready: $(cat "$OUT/pin-$sw-client.err")"
  sleep 1.5                                  # a console stats line (stats=1) before the flood
  local tx0 td0 rx0 fp0 c0="" tx1 td1 rx1 fp1 c1="" gen
  tx0=$(counter 1 tx_packets); td0=$(counter 1 tx_dropped); rx0=$(port1_rx "$target"); fp0=$(flow_packets "$target")
  [ -n "$HOSTED_PID" ] && c0=$(hosted_pin_counters "$sw")
  log "$sw: packet-in flood for ${DURATION}s at ${PIN_PPS} pps (0 = unlimited)"
  gen=$(ip netns exec "${P}h1" "$PKTGEN" --dev eth0 --dst 52:54:00:00:00:02 --secs "$DURATION" --pps "$PIN_PPS" ${GEN_CPU:+--cpu "$GEN_CPU"})
  tx1=$(counter 1 tx_packets); td1=$(counter 1 tx_dropped)
  wait "$CLIENT_PID"; CLIENT_PID=""
  [ -n "$HOSTED_PID" ] && sleep 1.5
  rx1=$(port1_rx "$target"); fp1=$(flow_packets "$target")
  [ -n "$HOSTED_PID" ] && c1=$(hosted_pin_counters "$sw")
  local js pins span sent secs
  js=$(cat "$OUT/pin-$sw-client.json")
  [ -n "$js" ] || die "$sw: client failed: $(cat "$OUT/pin-$sw-client.err")"
  pins=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["packet_ins"])' "$js")
  span=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["span_s"])' "$js")
  sent=$(grep -o 'sent=[0-9]*' <<<"$gen" | cut -d= -f2); secs=$(grep -o 'secs=[0-9.]*' <<<"$gen" | cut -d= -f2)
  local frames=$((rx1 - rx0)) matched=$((fp1 - fp0))
  result "$who" offered_pps "$(awk -v n="$sent" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') (pktgen $gen; h1 eth0 tx $((tx1 - tx0)), tx_dropped $((td1 - td0)))"
  result "$who" switch_rx_pps "$(awk -v n="$frames" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') ($frames frames, port 1 rx)"
  result "$who" flow_n_packets "$matched"
  result "$who" packet_ins_received "$pins"
  result "$who" packet_ins_per_s "$(awk -v n="$pins" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')"
  result "$who" packet_ins_per_s_first_to_last "$(awk -v n="$pins" -v s="$span" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}') (span $span s)"
  result "$who" delivered_fraction_of_matched "$(awk -v p="$pins" -v m="$matched" 'BEGIN {if (m) printf "%.4f", p / m; else print "-"}')"
  if [ -n "$HOSTED_PID" ]; then
    local m0 s0 b0 m1 s1 b1
    read -r m0 s0 b0 <<<"$c0"; read -r m1 s1 b1 <<<"$c1"
    if [ -n "${m1:-}" ] && [ -n "${s1:-}" ]; then
      local made=$((m1 - ${m0:-0})) sentc=$((s1 - ${s0:-0})) backl=$((${b1:-0} - ${b0:-0}))
      result "$who" made_by_pipeline "$made"
      result "$who" sent_by_agent "$sentc"
      result "$who" backlogged "$backl"
      result "$who" counted_drops "$((made - sentc - backl)) (queue drops: made - sent - backlogged)"
      result "$who" uncounted_loss "$((matched - pins - (made - sentc - backl) - backl)) (matched - received - counted drops - backlogged)"
    else
      log "$sw: no console counters (c0='$c0' c1='$c1')"
    fi
  else
    appctl coverage/show >"$OUT/pin-$sw-coverage.txt" 2>&1
    appctl dpif-netdev/pmd-stats-show >"$OUT/pin-$sw-pmd.txt" 2>&1
    local ovf ro rd
    ovf=$(coverage "$OUT/pin-$sw-coverage.txt" packet_in_overflow); ro=$(coverage "$OUT/pin-$sw-coverage.txt" rconn_overflow)
    rd=$(coverage "$OUT/pin-$sw-coverage.txt" rconn_discarded)
    result "$who" datapath_packets_read "$(grep -o 'packets received: [0-9]*' "$OUT/pin-$sw-pmd.txt" | awk '{s += $3} END {print s + 0}') (pmd-stats-show, since start)"
    result "$who" counted_drops "$(( ${ovf:-0} + ${ro:-0} + ${rd:-0} )) (coverage: packet_in_overflow ${ovf:-0}, rconn_overflow ${ro:-0}, rconn_discarded ${rd:-0})"
    result "$who" uncounted_loss "$((matched - pins - ${ovf:-0} - ${ro:-0} - ${rd:-0})) (matched - received - counted drops)"
  fi
  stop_switch "$sw"
}

# --- echo round trip -------------------------------------------------------------------------

# OpenFlow 1.3 echo round trips, one at a time, timed in the client (ovs-ofctl ping prints 0.1 ms
# steps, and OVS answers in less): HELLO, then COUNT ECHO_REQUESTs with 64 bytes of payload, each
# sent when the previous reply arrived. Prints "avg p50 p99 max" in microseconds.
ECHO_PY='
import socket, struct, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(struct.pack("!BBHI", 4, 0, 8, 1))
buf = bytearray()
def message():
    global buf
    while True:
        if len(buf) >= 8:
            ver, typ, length, xid = struct.unpack_from("!BBHI", buf, 0)
            if len(buf) >= length:
                m = bytes(buf[:length]); del buf[:length]
                return typ, xid, m
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed")
        buf += d
while message()[0] != 0:
    pass
payload = bytes(range(64))
times = []
for i in range(count + 20):
    xid = 100 + i
    t0 = time.perf_counter_ns()
    s.sendall(struct.pack("!BBHI", 4, 2, 8 + len(payload), xid) + payload)
    while True:
        typ, rx, m = message()
        if typ == 3 and rx == xid:
            break
        if typ == 2:
            s.sendall(struct.pack("!BBHI", 4, 3, len(m), rx) + m[8:])
    if i >= 20:                                   # the first 20 warm up
        times.append((time.perf_counter_ns() - t0) / 1000)
times.sort()
print("%.1f %.1f %.1f %.1f" % (sum(times) / len(times), times[len(times) // 2], times[len(times) * 99 // 100], times[-1]))
'

echo_one() {
  local sw="$1" who="echo:$1"
  make_hosts 1
  start_switch "$sw" 1 1
  local host port out
  host=${TARGET#tcp:}; port=${host##*:}; host=${host%:*}
  out=$(python3 -c "$ECHO_PY" "$host" "$port" "$ECHO_COUNT" 2>&1) || die "$sw: echo client failed: $out"
  local avg p50 p99 max
  read -r avg p50 p99 max <<<"$out"
  result "$who" echo_rtt_avg_us "$avg ($ECHO_COUNT round trips, 64-byte payload, one at a time)"
  result "$who" echo_rtt_p50_us "$p50"
  result "$who" echo_rtt_p99_us "$p99"
  result "$who" echo_rtt_max_us "$max"
  stop_switch "$sw"
}

# --- sub-scripts ------------------------------------------------------------------------------

ELF_PATH="${ELF:-}"
need_elf() {
  [ -n "$ELF_PATH" ] && return 0
  log "building the image (cargo run -p image -- --out $OUT/image)"
  (cd "$ROOT" && cargo run -q -p image -- --out "$OUT/image" --elf-only >&2) || die "image build failed"
  ELF_PATH="$OUT/image/ironflow.elf"
}

# sub SECTION SCRIPT ARGS...: runs tests/bench/SCRIPT with OUT=$OUT/SECTION and copies its
# RESULT lines as section:switch.
sub() {
  local section="$1" script="$2"; shift 2
  mkdir -p "$OUT/$section"
  log "$section: tests/bench/$script $* (log $OUT/$section.log)"
  OUT="$OUT/$section" "$ROOT/tests/bench/$script" "$@" >"$OUT/$section.log" 2>&1 \
    || log "$section: $script failed: $(tail -3 "$OUT/$section.log")"
  [ -f "$OUT/$section/results.txt" ] || return 0
  sed -E "s/^RESULT +([^ ]+) +([^ ]+) +/\\1 \\2 /" "$OUT/$section/results.txt" | grep -v '^stats:' |
    while read -r who metric rest; do result "$section:$who" "$metric" "$rest"; done
}

log "results in $OUT (prefix $P, ${DURATION}s per measurement, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
has() { local w; for w in "${WHICH[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
for w in "${WHICH[@]}"; do
  case "$w" in
    forwarding|openflow|packet_in|tcg) ;;
    *) die "unknown section $w (forwarding, openflow, packet_in, tcg)" ;;
  esac
done
if has forwarding; then
  SECTION=fwd
  for sw in $FWD_SWITCHES; do forward_one "$sw"; done
fi
if has openflow; then
  of_which=(hosted ovs)
  if has tcg; then need_elf; of_which+=(appliance); fi
  SECTION=of
  REPEAT="$REPEAT" HOSTED_BIN="$BIN" ELF="$ELF_PATH" ACCEL=tcg sub of openflow.sh "${of_which[@]}"
  SECTION=echo
  for sw in $ECHO_SWITCHES; do echo_one "$sw"; done
fi
if has packet_in; then
  SECTION=pin
  for sw in $PIN_SWITCHES; do packet_in_one "$sw"; done
fi
if has tcg; then
  need_elf
  SECTION=tcg
  DURATION="$DURATION" ACCELS=tcg ELF="$ELF_PATH" sub fwdtcg forwarding.sh appliance
  DURATION="$DURATION" ACCEL=tcg ELF="$ELF_PATH" sub pintcg packet_in.sh appliance
fi

# Summary: one table per section, ratios hosted / OVS on the same port type.
python3 - "$OUT/results.txt" <<'EOF'
import re, sys
vals, order = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\S+):(\S+)\s+(\S+)\s+(-?[0-9.]+)", line)
    if not m:
        continue
    sec, sw, metric, v = m[1], m[2], m[3], float(m[4])
    vals[(sec, sw, metric)] = v
    order.setdefault(sec, [])
    if sw not in order[sec]:
        order[sec].append(sw)
def base(sw):
    if sw.startswith("hosted-xdp"):
        return "ovs-afxdp"
    if sw.startswith("hosted-packet"):
        return "ovs-system"
    if sw == "hosted":
        return "ovs"
    return None
def table(title, secs, metrics, refsec=None):
    sws = []
    for s in secs:
        sws += [(s, w) for w in order.get(s, [])]
    if not sws:
        return
    print(f"\n{title} (hosted / OVS on the same port type in brackets)")
    print(f"{'':34}" + "".join(f"{w:>24}" for _, w in sws))
    for metric, fmt in metrics:
        row = f"{metric:34}"
        for s, w in sws:
            v = vals.get((s, w, metric))
            cell = "-" if v is None else format(v, fmt)
            b = base(w)
            o = vals.get((s, b, metric)) if b else None
            if v is not None and o:
                cell += f" [{v / o:.2f}]"
            row += f"{cell:>24}"
        print(row)
table("forwarding", ["fwd", "fwdtcg"], [("udp64.offered_pps", ".0f"), ("udp64.delivered_pps", ".0f"),
      ("udp64.cpu_share", ".2f"), ("udp64.pps_per_cpu_s", ".0f"), ("tcp", ".1f")])
table("openflow", ["of"], [("flow_mods_per_s_100000_best", ".0f"), ("flow_mods_per_s_100000_median", ".0f"),
      ("flow_mods_per_s_10000_best", ".0f"), ("echo_rtt_avg_ms", ".3f"), ("echo_rtt_max_ms", ".3f"),
      ("echo_requests_per_s", ".0f")])
table("echo round trip, us", ["echo"], [("echo_rtt_avg_us", ".1f"), ("echo_rtt_p50_us", ".1f"),
      ("echo_rtt_p99_us", ".1f"), ("echo_rtt_max_us", ".1f")])
table("packet-in", ["pin", "pintcg"], [("offered_pps", ".0f"), ("switch_rx_pps", ".0f"), ("flow_n_packets", ".0f"),
      ("packet_ins_received", ".0f"), ("packet_ins_per_s", ".0f"), ("delivered_fraction_of_matched", ".3f"),
      ("counted_drops", ".0f"), ("uncounted_loss", ".0f"), ("appliance_queue_drops", ".0f")])
EOF
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
log "logs and results in $OUT"
