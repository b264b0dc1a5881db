#!/usr/bin/env bash
# Forwarding benchmark (not a timed test): h1 → h2 through
#   (a) the ironflow appliance in QEMU (two tap data ports moved into namespaces, as the tests),
#       once per accelerator in $ACCELS (default "kvm tcg": on machines whose /dev/kvm is kvm_pvm,
#       "kvm" runs the guest kernel through PVM's instruction emulator, see docs/benchmarks.md),
#   (b) Open vSwitch with the userspace `netdev` datapath (Debian's ovs-vswitchd, run from a private
#       directory with its own database, pidfiles and unixctl sockets; ports are veth pairs whose
#       other ends are in the namespaces),
#   (c) a Linux bridge over the same kind of veth pairs,
#   (d) `hosted`: the hosted runner (`ironflow-hosted`, the appliance's main loop natively) on the
#       same veth pairs, once per port kind in $HOSTED_KINDS (default "xdp packet": AF_XDP in
#       copy mode, AF_PACKET; OVS's netdev datapath reads veths with AF_PACKET),
# one after the other in the same run. Per switch it measures:
#   - rtt:   ping -c 50 -i 0.02 (average and max, ms);
#   - udp64: 64-byte frames (60 + FCS: Ethernet/IPv4/UDP with 18 bytes of payload) sent for
#            DURATION seconds as fast as one Python AF_PACKET sender can from h1 to h2's MAC;
#            counted on the hosts' interfaces (h1 eth0 tx, h2 eth0 rx): delivered packets/s;
#   - tcp:   iperf3 -c 10.0.0.2 -t DURATION (one TCP stream), receiver Mbit/s and retransmits.
# For OVS and the hosted runner it also reads the switch process's CPU time (user + system, all
# threads, /proc/PID/stat) during the 64-byte flood: `udp64.cpu_share` and
# `udp64.pps_per_cpu_s` (delivered frames per CPU-second of the switch: the per-core rate).
# For the appliance it also reads its counters (`s` on the serial console) before and after each
# measurement: packets forwarded and device notifications (kicks, each one a VM exit) per packet;
# with perf, the KVM exits of its vCPU thread that reach the host (port I/O, MMIO, userspace).
#
#   sudo tests/bench/forwarding.sh                  # all three, 10 s each
#   sudo DURATION=5 tests/bench/forwarding.sh appliance
#   ELF=/path/ironflow.elf sudo -E tests/bench/forwarding.sh
#
# Output: one line per measurement (`RESULT switch metric value unit`) and a summary table with the
# ratios to the Linux bridge; logs and the appliance's serial console under $OUT (a temp dir).
# Everything it creates (namespaces, taps, veths, bridges, QEMU, OVS processes) is removed on exit.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-10}"
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(appliance ovs bridge)
ACCELS="${ACCELS:-kvm tcg}"
P="bf$(printf '%x' $$)"                    # unique prefix for every name we create
OUT="${OUT:-$(mktemp -d /tmp/ironflow-bench-XXXXXX)}"
mkdir -p "$OUT"
NS1="${P}h1"
NS2="${P}h2"
QEMU_PID=""
HOSTED_PID=""
SWITCH_PID=""                                # the process whose CPU time udp64 reports
HOSTED_KINDS="${HOSTED_KINDS:-xdp packet}"
OVS_DIR="$OUT/ovs"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, taps, veths, bridges)"
for t in ip ping iperf3 python3 qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t is missing (tests/run installs it)"
done

cleanup() {
  set +e
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  QEMU_PID=""
  [ -n "$HOSTED_PID" ] && kill "$HOSTED_PID" 2>/dev/null && wait "$HOSTED_PID" 2>/dev/null
  HOSTED_PID=""
  stop_ovs
  for n in "$NS1" "$NS2"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  for l in "${P}t1" "${P}t2" "${P}v1" "${P}v2" "${P}br"; do ip link del "$l" 2>/dev/null; done
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

# --- hosts -------------------------------------------------------------------------------------

make_namespaces() {
  for n in 1 2; do
    local ns="${P}h$n"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
}

# Moves interface $1 (root namespace) into host $2's namespace as eth0 with 10.0.0.$2/24.
attach_host() {
  local ifname="$1" n="$2" ns="${P}h$2"
  ip link set "$ifname" netns "$ns"
  ip -n "$ns" link set "$ifname" name eth0
  ip -n "$ns" addr add "10.0.0.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# veth pairs: ${P}vN in the root namespace, eth0 in host N's. Transmit checksum offload (and with
# it TSO/GSO) is turned off on both ends, as Open vSwitch's own userspace-datapath tests do: OVS
# reads the frames with AF_PACKET and does not complete partial checksums, so TCP through it fails
# otherwise. The appliance's taps carry no offloads either (the guest negotiates none), so all
# three switches see the same MTU-sized, fully checksummed frames.
veth_hosts() {
  for n in 1 2; do
    ip link add "${P}v$n" type veth peer name "${P}p$n"
    ip link set "${P}v$n" up
    tx_csum_off "${P}v$n"
    attach_host "${P}p$n" "$n"
    ip netns exec "${P}h$n" python3 -c "$TXCSUM_OFF_PY" eth0
  done
}

# ethtool -K IF tx off, without ethtool: ETHTOOL_STXCSUM through SIOCETHTOOL.
TXCSUM_OFF_PY='
import array, fcntl, socket, struct, sys
val = array.array("I", [0x17, 0])                   # struct ethtool_value {ETHTOOL_STXCSUM, 0}
ifr = struct.pack("16sP", sys.argv[1].encode(), val.buffer_info()[0])
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, ifr)   # SIOCETHTOOL
'
tx_csum_off() { python3 -c "$TXCSUM_OFF_PY" "$1"; }

counter() { ip netns exec "${P}h$1" cat "/sys/class/net/eth0/statistics/$2"; }

# --- measurements ------------------------------------------------------------------------------

SENDER_PY='
import socket, struct, sys, time
dur, dst = float(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
src = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
payload = b"ironflow-bench-64b"                      # 18 bytes: frame = 14+20+8+18 = 60 (+FCS = 64)
udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                 bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
c = sum(struct.unpack("!10H", ip)); c = (c & 0xffff) + (c >> 16); c = (c & 0xffff) + (c >> 16)
ip = ip[:10] + struct.pack("!H", ~c & 0xffff) + ip[12:]
frame = dst + src + b"\x08\x00" + ip + udp
assert len(frame) == 60
n, errs, end = 0, 0, time.monotonic() + dur
send = s.send
while time.monotonic() < end:
    for _ in range(256):
        try:
            send(frame)
        except OSError:
            errs += 1
    n += 256
print(n - errs, errs)
'

# Appliance helpers (no-ops for the others).
stats_line() {
  [ -n "$QEMU_PID" ] || { echo ""; return; }
  local before
  before=$(grep -c 'stats: port1' "$OUT/serial.log")
  printf s >"$OUT/serial.in"
  for _ in $(seq 400); do
    [ "$(grep -c 'stats: port1' "$OUT/serial.log")" -gt "$before" ] && break
    sleep 0.05
  done
  grep 'stats: port1' "$OUT/serial.log" | sed -n "$((before + 1))p" | tr -d '\r'
}
# Sum of a field over the ports of a stats line: field_sum LINE NAME
field_sum() { grep -o " $2=[0-9]*" <<<"$1" | cut -d= -f2 | awk '{s += $1} END {print s + 0}'; }
# KVM exits of the appliance's vCPU thread that reach the host hypervisor (L1 under nested KVM):
# port I/O (the UART), MMIO (kicks, config reads) and returns to QEMU's userspace, with perf.
start_exit_count() {
  EXITS_PID=""
  VCPU0=$(vcpu_stats)
  [ -n "$QEMU_PID" ] && command -v perf >/dev/null || return 0
  local vcpu
  vcpu=$(grep -l 'CPU 0/KVM' /proc/"$QEMU_PID"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
  [ -n "$vcpu" ] || return 0
  perf stat -x, -e kvm:kvm_pio,kvm:kvm_mmio,kvm:kvm_userspace_exit -t "$vcpu" -o "$OUT/perf.txt" &
  EXITS_PID=$!
}
# KVM's own vCPU counters through QEMU's monitor (`info stats vcpu`): "exits insn_emulation".
MON_PY='
import socket, sys, re
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(2)
def cmd(c):
    s.sendall((c + "\n").encode()); buf = b""
    while not buf.rstrip().endswith(b"(qemu)"):
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return buf.decode(errors="replace")
cmd("")
out = cmd("info stats vcpu")
get = lambda k: (re.search(r"\b" + k + r" \(cumulative\): (\d+)", out) or [0, 0])[1]
print(get("exits"), get("insn_emulation"))
'
vcpu_stats() {
  if [ -n "$QEMU_PID" ] && [ -S "$OUT/mon" ] && [ "${ACCEL_NOW:-}" = kvm ]; then
    python3 -c "$MON_PY" "$OUT/mon" 2>/dev/null || echo "0 0"
  else
    echo "0 0"
  fi
}

# Sets EXITS (not in a subshell: it waits for perf).
stop_exit_count() {
  EXITS=""
  if [ -n "${EXITS_PID:-}" ]; then
    kill -INT "$EXITS_PID"; wait "$EXITS_PID" 2>/dev/null
    EXITS=$(awk -F, '/kvm:/ {printf "%s %s ", $3, $1}' "$OUT/perf.txt")
    rm -f "$OUT/perf.txt"
  fi
  local x0 e0 x1 e1
  read -r x0 e0 <<<"$VCPU0"
  read -r x1 e1 <<<"$(vcpu_stats)"
  [ "$x1" = 0 ] || EXITS+="| info stats vcpu: exits $((x1 - x0)) insn_emulation $((e1 - e0))"
}

# utime + stime of $SWITCH_PID (all threads), in clock ticks; empty without one.
cpu_ticks() {
  [ -n "$SWITCH_PID" ] && [ -r "/proc/$SWITCH_PID/stat" ] || return 0
  sed 's/.*) //' "/proc/$SWITCH_PID/stat" | awk '{print $12 + $13}'
}

result() { printf 'RESULT %-13s %-22s %s\n' "$1" "$2" "$3" | tee -a "$OUT/results.txt"; }

# Per-measurement appliance accounting: packets forwarded (sum of port rx), kicks and KVM exits.
appliance_delta() {
  local sw="$1" what="$2" s0="$3" s1="$4" exits="$5"
  [ -n "$s1" ] || return 0
  local rx0 rx1 k0 k1 pk kicks
  rx0=$(field_sum "$s0" rx); rx1=$(field_sum "$s1" rx)
  k0=$(field_sum "$s0" kicks); k1=$(field_sum "$s1" kicks)
  pk=$((rx1 - rx0)); kicks=$((k1 - k0))
  result "$sw" "$what.forwarded" "$pk packets"
  result "$sw" "$what.kicks_per_pkt" "$(awk -v k="$kicks" -v p="$pk" 'BEGIN {printf "%.3f", k / (p > 0 ? p : 1)}') ($kicks kicks)"
  [ -z "$exits" ] || result "$sw" "$what.vcpu_exits" "$exits"
}

measure() {
  local sw="$1" dstmac s0 s1 exits
  log "$sw: rtt"
  local ping_out
  ping_out=$(ip netns exec "$NS1" ping -n -q -c 50 -i 0.02 -W 1 10.0.0.2 | tail -2)
  result "$sw" rtt "$(grep -o 'rtt.*' <<<"$ping_out" | sed 's/rtt min\/avg\/max\/mdev = //') min/avg/max/mdev; $(head -1 <<<"$ping_out" | grep -o '[0-9]* received')"
  dstmac=$(ip netns exec "$NS2" cat /sys/class/net/eth0/address)

  log "$sw: udp64 for ${DURATION}s"
  local tx0 rx0 tx1 rx1 drop0 drop1 sent c0 c1 t0 t1
  s0=$(stats_line); start_exit_count
  tx0=$(counter 1 tx_packets); drop0=$(counter 1 tx_dropped); rx0=$(counter 2 rx_packets)
  c0=$(cpu_ticks); t0=$(date +%s.%N)
  sent=$(ip netns exec "$NS1" python3 -c "$SENDER_PY" "$DURATION" "$dstmac")
  sleep 1
  tx1=$(counter 1 tx_packets); drop1=$(counter 1 tx_dropped); rx1=$(counter 2 rx_packets)
  c1=$(cpu_ticks); t1=$(date +%s.%N)
  stop_exit_count; exits="$EXITS"; s1=$(stats_line)
  result "$sw" udp64.offered_pps "$(( ${sent%% *} / DURATION )) (sender's sends $sent; h1 eth0 tx $((tx1 - tx0)), tx_dropped $((drop1 - drop0)))"
  result "$sw" udp64.delivered_pps "$(( (rx1 - rx0) / DURATION ))"
  if [ -n "$c0" ] && [ -n "$c1" ]; then
    local hz
    hz=$(getconf CLK_TCK)
    result "$sw" udp64.cpu_share "$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.3f", (b - a) / hz / (t1 - t0)}') (CPU-seconds of the switch per second, all threads)"
    result "$sw" udp64.pps_per_cpu_s "$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="$((rx1 - rx0))" 'BEGIN {c = (b - a) / hz; printf "%.0f", n / (c > 0 ? c : 1e-9)}') (delivered frames per CPU-second of the switch)"
  fi
  appliance_delta "$sw" udp64 "$s0" "$s1" "$exits"

  log "$sw: iperf3 tcp for ${DURATION}s"
  ip netns exec "$NS2" iperf3 -s -1 -B 10.0.0.2 >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 50); do ip netns exec "$NS2" ss -ltnH | grep -q '10.0.0.2:5201' && break; sleep 0.1; done
  s0=$(stats_line); start_exit_count
  ip netns exec "$NS1" timeout $((DURATION + 30)) iperf3 -c 10.0.0.2 -t "$DURATION" -J --connect-timeout 5000 >"$OUT/iperf3-$sw.json"
  stop_exit_count; exits="$EXITS"; s1=$(stats_line)
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
  result "$sw" tcp "$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
e = j.get("end", {})
r, s = e.get("sum_received", {}), e.get("sum_sent", {})
bps, nbytes, retr = r.get("bits_per_second", 0), r.get("bytes", 0), s.get("retransmits", "?")
print("%.2f Mbit/s (%d bytes, %s retransmits)" % (bps / 1e6, nbytes, retr))
' "$OUT/iperf3-$sw.json")"
  appliance_delta "$sw" tcp "$s0" "$s1" "$exits"
}

# --- (a) the appliance -------------------------------------------------------------------------

run_appliance() {
  local accel_name="$1" elf="${ELF:-}"
  if [ -z "$elf" ]; then
    log "building the image (cargo run -p image)"
    (cd "$ROOT" && cargo run -q -p image >&2) || die "image build failed"
    elf="${CARGO_TARGET_DIR:-$ROOT/target}/image/ironflow.elf"
  fi
  [ -f "$elf" ] || die "no ELF at $elf"
  make_namespaces
  for n in 1 2; do
    ip tuntap add dev "${P}t$n" mode tap
    ip link set "${P}t$n" up
  done
  rm -f "$OUT/serial.in" "$OUT/serial.log" "$OUT/mon"
  ACCEL_NOW="$accel_name"
  mkfifo "$OUT/serial.in"
  local accel=(-accel kvm -cpu host,-arch-capabilities)
  if [ "$accel_name" = tcg ]; then
    accel=(-accel tcg)
  elif [ ! -w /dev/kvm ]; then
    log "no usable /dev/kvm: skipping the appliance under KVM"
    cleanup_hosts
    return
  fi
  # The same machine as ironflow_qemu builds: management NIC first (user networking), then ports.
  qemu-system-x86_64 -name "ironflow-bench-$P,debug-threads=on" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 128 -smp 1 -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -monitor "unix:$OUT/mon,server=on,wait=off" -kernel "$elf" -append "on_panic=exit ${CMDLINE:-}" \
    -netdev user,id=mgmt -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev tap,id=port1,ifname="${P}t1",script=no,downscript=no \
    -device virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4 \
    -netdev tap,id=port2,ifname="${P}t2",script=no,downscript=no \
    -device virtio-net-pci,netdev=port2,mac=52:54:00:00:00:02,addr=0x5 \
    <>"$OUT/serial.in" >"$OUT/serial.log" 2>"$OUT/qemu.err" &
  QEMU_PID=$!
  for n in 1 2; do
    for _ in $(seq 200); do [ "$(cat /sys/class/net/${P}t$n/carrier 2>/dev/null)" = 1 ] && break; sleep 0.05; done
    attach_host "${P}t$n" "$n"
  done
  for _ in $(seq 600); do grep -q 'ironflow: ready' "$OUT/serial.log" && break; sleep 0.1; done
  grep -q 'ironflow: ready' "$OUT/serial.log" || die "appliance not ready: $(tail -5 "$OUT/serial.log")"
  log "appliance-$accel_name ready (QEMU pid $QEMU_PID, $(grep -o 'ready.*' "$OUT/serial.log"))"
  measure "appliance-$accel_name"
  stats_line >>"$OUT/results.txt"
  cp "$OUT/serial.log" "$OUT/serial-$accel_name.log"
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
  cleanup_hosts
}

cleanup_hosts() {
  for n in "$NS1" "$NS2"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$n" 2>/dev/null; done
  for l in "${P}t1" "${P}t2" "${P}v1" "${P}v2" "${P}br"; do ip link del "$l" 2>/dev/null; done
  true
}

# --- (b) Open vSwitch, userspace datapath ------------------------------------------------------

vsctl() { ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 "$@"; }

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

run_ovs() {
  command -v ovs-vswitchd >/dev/null || { log "ovs-vswitchd missing: skipping OVS"; return; }
  mkdir -p "$OVS_DIR"
  # Private run/db/log/conf directories: nothing of the machine's own Open vSwitch is touched.
  export OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR"
  ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovsdb.pid" \
    --unixctl="$OVS_DIR/ovsdb.ctl" --log-file="$OVS_DIR/ovsdb.log" --detach --no-chdir
  vsctl --no-wait init
  ovs-vswitchd "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/vswitchd.pid" --unixctl="$OVS_DIR/vswitchd.ctl" \
    --log-file="$OVS_DIR/vswitchd.log" --detach --no-chdir
  make_namespaces
  veth_hosts
  vsctl add-br "${P}br" -- set bridge "${P}br" datapath_type=netdev \
    -- add-port "${P}br" "${P}v1" -- add-port "${P}br" "${P}v2"
  ip link set "${P}br" up 2>/dev/null
  sleep 1
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" dpif/show >"$OUT/ovs-dpif.txt" 2>&1
  SWITCH_PID=$(cat "$OVS_DIR/vswitchd.pid")
  measure ovs
  SWITCH_PID=""
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" dpif-netdev/pmd-stats-show >>"$OUT/ovs-dpif.txt" 2>&1
  vsctl del-br "${P}br"
  stop_ovs
  cleanup_hosts
}

# --- (d) the hosted runner ---------------------------------------------------------------------

run_hosted() {
  local kind="$1" bin="${HOSTED_BIN:-}"
  if [ -z "$bin" ]; then
    log "building the hosted runner (cargo build --release -p hosted)"
    (cd "$ROOT" && cargo build -q --release -p hosted >&2) || die "hosted build failed"
    bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/ironflow-hosted"
  fi
  [ -x "$bin" ] || die "no hosted runner at $bin"
  make_namespaces
  veth_hosts
  # Busy polling, as OVS's PMD threads and the appliance do (HOSTED_ARGS adds options).
  "$bin" --port "${P}v1" --port "${P}v2" --port-kind "$kind" --busy-poll ${HOSTED_ARGS:-} \
    -- stats=0 >"$OUT/hosted-$kind.log" 2>&1 </dev/null &
  HOSTED_PID=$!
  for _ in $(seq 100); do grep -q 'ironflow: ready' "$OUT/hosted-$kind.log" && break; sleep 0.1; done
  grep -q 'ironflow: ready' "$OUT/hosted-$kind.log" || die "hosted runner not ready: $(tail -5 "$OUT/hosted-$kind.log")"
  log "hosted-$kind ready (pid $HOSTED_PID)"
  sleep 0.5
  SWITCH_PID=$HOSTED_PID
  measure "hosted-$kind"
  SWITCH_PID=""
  kill "$HOSTED_PID" 2>/dev/null; wait "$HOSTED_PID" 2>/dev/null; HOSTED_PID=""
  cleanup_hosts
}

# --- (c) Linux bridge --------------------------------------------------------------------------

run_bridge() {
  make_namespaces
  veth_hosts
  ip link add "${P}br" type bridge
  ip link set "${P}v1" master "${P}br"
  ip link set "${P}v2" master "${P}br"
  ip link set "${P}br" up
  sleep 1
  measure bridge
  cleanup_hosts
}

log "results in $OUT (prefix $P, ${DURATION}s per measurement, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
for w in "${WHICH[@]}"; do
  case "$w" in
    appliance) for a in $ACCELS; do run_appliance "$a"; done ;;
    ovs) run_ovs ;;
    bridge) run_bridge ;;
    hosted) for k in $HOSTED_KINDS; do run_hosted "$k"; done ;;
    *) die "unknown switch $w (appliance, ovs, bridge, hosted)" ;;
  esac
done

# Summary with ratios to the Linux bridge (when measured).
python3 - "$OUT/results.txt" <<'EOF'
import re, sys
vals = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\S+)\s+(\S+)\s+([0-9.]+)", line)
    if m:
        vals[(m[1], m[2])] = float(m[3])
sws = []
for k in vals:
    if k[0] not in sws:
        sws.append(k[0])
print("\nsummary (ratio to the Linux bridge in brackets, to OVS netdev after x)")
print(f"{'':24}" + "".join(f"{s:>30}" for s in sws))
for metric, unit in (("udp64.delivered_pps", "pps"), ("udp64.pps_per_cpu_s", "pps"), ("tcp", "Mbit/s")):
    row = f"{metric + ' (' + unit + ')':24}"
    base = vals.get(("bridge", metric))
    ovs = vals.get(("ovs", metric))
    for s in sws:
        v = vals.get((s, metric))
        cell = "-" if v is None else (f"{v:.0f}" if unit == "pps" else f"{v:.2f}")
        if v is not None and base:
            cell += f" [{v / base:.3f}]"
        if v is not None and ovs and s != "ovs":
            cell += f" x{v / ovs:.2f}"
        row += f"{cell:>30}"
    print(row)
EOF
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
