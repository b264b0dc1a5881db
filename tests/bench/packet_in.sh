#!/usr/bin/env bash
# Packet-in benchmark (not a timed test): how many packet-ins per second a controller receives
# when every frame of a UDP flood hits `priority=100,udp,actions=controller`, from
#   (a) the ironflow appliance in QEMU (one tap data port moved into a namespace as h1's eth0; the
#       management NIC on user networking with 6653 forwarded to 127.0.0.1; TCG where /dev/kvm is
#       kvm_pvm, which emulates the guest kernel, else KVM; ACCEL=tcg|kvm overrides), and
#   (b) Open vSwitch (Debian's ovs-vswitchd with a `netdev` (userspace) bridge, run from a private
#       directory with its own database, pidfiles and unixctl sockets; its port is a veth pair
#       whose other end is h1's eth0; OpenFlow on ptcp:<free port>:127.0.0.1),
# one after the other in the same run. Per switch:
#   - the flow is added with `ovs-ofctl -O OpenFlow13 add-flow <target> priority=100,udp,actions=controller`;
#   - a small Python OpenFlow 1.3 client connects to the passive port, sends HELLO and
#     SET_CONFIG(miss_send_len=0xffff) (a passive connection gets no packet-ins before that, in OVS
#     and in the appliance), waits for a BARRIER reply, answers echo requests and counts the
#     PACKET_IN messages by parsing the stream (no per-message printing);
#   - h1 sends 60-byte (64 with FCS) Ethernet/IPv4/UDP frames for DURATION seconds (default 10) as
#     fast as one Python AF_PACKET sender can (the sender of tests/bench/forwarding.sh);
#   - the client keeps counting until no packet-in arrived for 3 s (at most DURATION + 90 s in all).
# Reported: frames sent (the sender's successful sends; h1 eth0 tx_packets and tx_dropped: a tap
# whose reader, QEMU, falls behind drops in tx_dropped), frames the switch received (port 1 rx_packets from
# `ovs-ofctl dump-ports`), frames that matched the flow (its n_packets), packet-ins received by the
# controller, per second of flood and per second between the first and the last one, and the
# fraction of received (and of matched) frames that arrived as packet-ins. For the appliance also its own counters
# from the console stats lines (`packet_ins=` made by the pipeline, `packet_ins_sent`,
# `packet_ins_backlogged`), so that queue drops (the queue holds 256) = made - sent - backlogged.
# For OVS, the frames its datapath read (`dpif-netdev/pmd-stats-show` "packets received"; the
# veth's rx counter that dump-ports reports also counts frames the kernel dropped because OVS did
# not read its socket in time); its `coverage/show` lines about packet-ins and upcalls go to $OUT.
#
#   sudo tests/bench/packet_in.sh
#   DURATION=5 ELF=/path/ironflow.elf sudo -E tests/bench/packet_in.sh appliance
#
# Output: `RESULT switch metric value` lines and a summary with the appliance/OVS ratios; logs under
# $OUT (a temp dir). Everything it creates (namespace, tap, veth, QEMU, OVS daemons, the client) is
# stopped or removed on exit, by PID or by name.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-10}"
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(appliance ovs)
P="pi$(printf '%x' $$)"
OUT="${OUT:-$(mktemp -d /tmp/ironflow-pibench-XXXXXX)}"
mkdir -p "$OUT"
NS="${P}h1"
QEMU_PID=""
CLIENT_PID=""
OVS_DIR="$OUT/ovs"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespace, tap, veth)"
for t in ip ovs-ofctl python3 qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t is missing (tests/run installs it)"
done

cleanup() {
  set +e
  [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null && wait "$CLIENT_PID" 2>/dev/null
  CLIENT_PID=""
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  QEMU_PID=""
  stop_ovs
  cleanup_hosts
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

cleanup_hosts() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  for l in "${P}t1" "${P}v1"; do ip link del "$l" 2>/dev/null; done
  true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
result() { printf 'RESULT %s %s %s\n' "$1" "$2" "$3" | tee -a "$OUT/results.txt"; }

make_namespace() {
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# Moves interface $1 (root namespace) into h1's namespace as eth0 with 10.0.0.1/24.
attach_h1() {
  ip link set "$1" netns "$NS"
  ip -n "$NS" link set "$1" name eth0
  ip -n "$NS" addr add 10.0.0.1/24 dev eth0
  ip -n "$NS" link set eth0 up
}

# The sender of tests/bench/forwarding.sh: DURATION seconds of 60-byte UDP frames to MAC $2.
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

# OpenFlow 1.3 client: HELLO, SET_CONFIG(miss_send_len=0xffff), BARRIER; then counts PACKET_INs
# (and answers ECHO_REQUESTs) until none came for IDLE s after the first, or MAXTIME s in all.
# Writes "ready" to READYFILE after the barrier reply; prints one JSON line at the end.
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
reasons = {}
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
            if ver >= 4:
                reasons[buf[off + 14]] = reasons.get(buf[off + 14], 0) + 1
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
                  "echoes": echoes, "other": other, "reasons": reasons}))
'

ofctl() { ovs-ofctl -O OpenFlow13 --timeout=30 "$@"; }
# rx_packets of port 1 from `ovs-ofctl dump-ports TARGET 1`
port1_rx() { ofctl dump-ports "$1" 1 | grep -o 'rx pkts=[0-9]*' | head -1 | cut -d= -f2; }
flow_packets() { ofctl dump-flows "$1" udp | grep -o 'n_packets=[0-9]*' | head -1 | cut -d= -f2; }
h1_tx() { ip netns exec "$NS" cat /sys/class/net/eth0/statistics/tx_packets; }
h1_txdrop() { ip netns exec "$NS" cat /sys/class/net/eth0/statistics/tx_dropped; }
# Last console stats lines of the appliance: `packet_ins=` (made) and the agent's counters.
appliance_counters() {
  local stats mgmt
  stats=$(grep 'stats: port1' "$OUT/serial.log" | tail -1 | tr -d '\r')
  mgmt=$(grep 'mgmt: rx=' "$OUT/serial.log" | tail -1 | tr -d '\r')
  printf '%s %s %s\n' "$(grep -o ' packet_ins=[0-9]*' <<<"$stats" | cut -d= -f2)" \
    "$(grep -o 'packet_ins_sent: [0-9]*' <<<"$mgmt" | cut -d' ' -f2)" \
    "$(grep -o 'packet_ins_backlogged: [0-9]*' <<<"$mgmt" | cut -d' ' -f2)"
}

# measure NAME TARGET
measure() {
  local name="$1" target="$2"
  ofctl add-flow "$target" "priority=100,udp,actions=controller" || die "$name: add-flow failed"
  ofctl dump-flows "$target" >"$OUT/$name-flows-before.txt"
  rm -f "$OUT/$name.ready"
  python3 -c "$CLIENT_PY" 127.0.0.1 "${target##*:}" "$OUT/$name.ready" $((DURATION + 90)) 3 \
    >"$OUT/$name-client.json" 2>"$OUT/$name-client.err" &
  CLIENT_PID=$!
  for _ in $(seq 300); do [ -f "$OUT/$name.ready" ] && break; kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
  [ -f "$OUT/$name.ready" ] || die "$name: client not ready: $(cat "$OUT/$name-client.err")"
  sleep 1
  [ -n "$QEMU_PID" ] && sleep 1.5         # the console stats line before the flood (stats=1)
  local tx0 rx0 fp0 c0 tx1 rx1 fp1 c1 sent td0 td1
  td0=$(h1_txdrop); tx0=$(h1_tx); rx0=$(port1_rx "$target"); fp0=$(flow_packets "$target")
  [ -n "$QEMU_PID" ] && c0=$(appliance_counters)
  log "$name: flood for ${DURATION}s (switch port 1 rx before: $rx0)"
  sent=$(ip netns exec "$NS" python3 -c "$SENDER_PY" "$DURATION" 52:54:00:00:00:02)
  tx1=$(h1_tx); td1=$(h1_txdrop)
  wait "$CLIENT_PID"; CLIENT_PID=""
  [ -n "$QEMU_PID" ] && sleep 1.5
  rx1=$(port1_rx "$target"); fp1=$(flow_packets "$target")
  [ -n "$QEMU_PID" ] && c1=$(appliance_counters)
  ofctl dump-flows "$target" >"$OUT/$name-flows-after.txt"
  local js pins span
  js=$(cat "$OUT/$name-client.json")
  [ -n "$js" ] || die "$name: client failed: $(cat "$OUT/$name-client.err")"
  pins=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["packet_ins"])' "$js")
  span=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["span_s"])' "$js")
  local frames=$((rx1 - rx0)) matched=$((fp1 - fp0))
  result "$name" sender_sends "${sent%% *} (send errors ${sent##* }; h1 eth0 tx_packets $((tx1 - tx0)), tx_dropped $((td1 - td0)))"
  result "$name" offered_pps "$(( ${sent%% *} / DURATION ))"
  result "$name" switch_rx_frames "$frames"
  result "$name" switch_rx_pps "$(( frames / DURATION ))"
  result "$name" flow_n_packets "$matched"
  result "$name" packet_ins_received "$pins"
  result "$name" packet_ins_per_s "$(python3 -c "print(round($pins / $DURATION))")"
  result "$name" packet_ins_per_s_first_to_last "$(python3 -c "print(round($pins / $span) if $span > 0 else 0)") (span ${span} s)"
  result "$name" delivered_fraction_of_rx "$(python3 -c "print(f'{$pins / $frames:.4f}' if $frames else '-')")"
  result "$name" delivered_fraction_of_matched "$(python3 -c "print(f'{$pins / $matched:.4f}' if $matched else '-')")"
  result "$name" client "$js"
  if [ -n "$QEMU_PID" ]; then
    local m0 s0 b0 m1 s1 b1
    read -r m0 s0 b0 <<<"$c0"; read -r m1 s1 b1 <<<"$c1"
    if [ -n "${m1:-}" ] && [ -n "${s1:-}" ]; then
      local made=$((m1 - m0)) sentc=$((s1 - s0)) backl=$((${b1:-0} - ${b0:-0}))
      result "$name" appliance_packet_ins_made "$made"
      result "$name" appliance_packet_ins_sent "$sentc"
      result "$name" appliance_packet_ins_backlogged "$backl"
      result "$name" appliance_queue_drops "$((made - sentc - backl)) (made - sent - backlogged)"
    else
      log "$name: no console counters (c0='$c0' c1='$c1')"
    fi
  fi
}

# --- (a) the appliance -------------------------------------------------------------------------

run_appliance() {
  local elf="${ELF:-}"
  if [ -z "$elf" ]; then
    log "building the image (cargo run -p image)"
    (cd "$ROOT" && cargo run -q -p image -- --out "$OUT/image" >&2) || die "image build failed"
    elf="$OUT/image/ironflow.elf"
  fi
  [ -f "$elf" ] || die "no ELF at $elf"
  local accel_name="${ACCEL:-}"
  if [ -z "$accel_name" ]; then
    if [ -e /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then accel_name=tcg; else accel_name=kvm; fi
  fi
  local accel=(-accel tcg)
  [ "$accel_name" = kvm ] && accel=(-accel kvm -cpu host,-arch-capabilities)
  make_namespace
  ip tuntap add dev "${P}t1" mode tap
  ip link set "${P}t1" up
  local port
  port=$(free_port)
  qemu-system-x86_64 -name "ironflow-pibench-$P" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 512 -smp 1 -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -kernel "$elf" -append "on_panic=exit log=info stats=1" \
    -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$port-:6653" \
    -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev tap,id=port1,ifname="${P}t1",script=no,downscript=no \
    -device virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4 \
    </dev/null >"$OUT/serial.log" 2>"$OUT/qemu.err" &
  QEMU_PID=$!
  for _ in $(seq 200); do [ "$(cat "/sys/class/net/${P}t1/carrier" 2>/dev/null)" = 1 ] && break; sleep 0.05; done
  attach_h1 "${P}t1"
  local target="tcp:127.0.0.1:$port"
  for _ in $(seq 240); do ofctl --timeout=2 show "$target" >/dev/null 2>&1 && break; sleep 0.5; done
  ofctl show "$target" >/dev/null || die "appliance: no OpenFlow on $target: $(tail -5 "$OUT/serial.log")"
  log "appliance-$accel_name up on $target (QEMU pid $QEMU_PID)"
  measure "appliance-$accel_name" "$target"
  grep -q PANIC "$OUT/serial.log" && die "appliance panicked: $(grep -A5 PANIC "$OUT/serial.log")"
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
  cleanup_hosts
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

# ethtool -K IF tx off, without ethtool (as tests/bench/forwarding.sh: OVS's userspace datapath
# does not complete partial checksums).
TXCSUM_OFF_PY='
import array, fcntl, socket, struct, sys
val = array.array("I", [0x17, 0])
ifr = struct.pack("16sP", sys.argv[1].encode(), val.buffer_info()[0])
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, ifr)
'

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
  make_namespace
  ip link add "${P}v1" type veth peer name "${P}p1"
  ip link set "${P}v1" up
  python3 -c "$TXCSUM_OFF_PY" "${P}v1"
  attach_h1 "${P}p1"
  ip netns exec "$NS" python3 -c "$TXCSUM_OFF_PY" eth0
  local port
  port=$(free_port)
  vsctl add-br "${P}br" -- set bridge "${P}br" datapath_type=netdev \
    -- add-port "${P}br" "${P}v1" -- set interface "${P}v1" ofport_request=1 \
    -- set-controller "${P}br" "ptcp:$port:127.0.0.1"
  local target="tcp:127.0.0.1:$port"
  for _ in $(seq 100); do ofctl --timeout=2 show "$target" >/dev/null 2>&1 && break; sleep 0.1; done
  log "ovs (netdev bridge ${P}br) up on $target"
  measure ovs "$target"
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" coverage/show >"$OUT/ovs-coverage.txt" 2>&1
  grep -Ei 'packet_in|pin|upcall|async|rconn|ofconn|drop' "$OUT/ovs-coverage.txt" >"$OUT/ovs-coverage-pin.txt"
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" dpif-netdev/pmd-stats-show >"$OUT/ovs-pmd.txt" 2>&1
  # Frames OVS's datapath actually read from the veth (the port's rx_packets is the kernel's count;
  # what the main thread did not read in time was dropped by the kernel socket).
  result ovs datapath_packets_read "$(grep -o 'packets received: [0-9]*' "$OUT/ovs-pmd.txt" | awk '{s += $3} END {print s + 0}') (dpif-netdev/pmd-stats-show, since start)"
  vsctl del-br "${P}br"
  stop_ovs
  cleanup_hosts
}

log "results in $OUT (prefix $P, ${DURATION}s flood, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
for w in "${WHICH[@]}"; do
  case "$w" in
    appliance) run_appliance ;;
    ovs) run_ovs ;;
    *) die "unknown switch $w (appliance, ovs)" ;;
  esac
done

log "summary (appliance / ovs)"
python3 - "$OUT/results.txt" <<'EOF'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\S+) (\S+) ([0-9.]+)", line)
    if m:
        rows.setdefault(m[2], {})["ovs" if m[1] == "ovs" else "appliance"] = float(m[3])
print(f"{'metric':32} {'appliance':>12} {'ovs':>12} {'ratio':>8}")
for metric in ("offered_pps", "switch_rx_pps", "packet_ins_per_s", "packet_ins_per_s_first_to_last",
               "delivered_fraction_of_rx", "delivered_fraction_of_matched"):
    v = rows.get(metric, {})
    a, o = v.get("appliance"), v.get("ovs")
    ratio = f"{a / o:.3f}" if a is not None and o else "-"
    fa = f"{a:g}" if a is not None else "-"
    fo = f"{o:g}" if o is not None else "-"
    print(f"{metric:32} {fa:>12} {fo:>12} {ratio:>8}")
EOF
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
log "logs and results in $OUT"
