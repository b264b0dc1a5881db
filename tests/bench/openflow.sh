#!/usr/bin/env bash
# OpenFlow management benchmark (not a timed test): the same ovs-ofctl commands against
#   (a) the ironflow appliance in QEMU (management NIC on user networking, 6653 forwarded to
#       127.0.0.1; TCG where /dev/kvm is kvm_pvm, which emulates the guest kernel, else KVM;
#       ACCEL=tcg|kvm overrides), and
#   (b) Open vSwitch (Debian's ovs-vswitchd with a `netdev` (userspace) bridge, run from a private
#       directory with its own database, pidfiles and unixctl sockets, listening on
#       ptcp:<free port>:127.0.0.1),
#   (c) `hosted`: the hosted runner (`ironflow-hosted`, the appliance's main loop natively): its
#       management port is a tap (${P}m) in the root namespace with 10.0.2.2/24, the runner's
#       own smoltcp stack answers on 10.0.2.15:6653 (no proxy); one veth data port,
# one after the other in the same run. Per switch:
#   - flow-mods/s: `ovs-ofctl -O OpenFlow13 add-flows <target> <file>` of a 10,000- and a
#     100,000-flow file (`priority=10,ip,nw_src=10.X.Y.Z,actions=drop`; ovs-ofctl ends with a
#     barrier, so the time covers every flow being in the table), checked with dump-aggregate,
#     then del-flows; each file $REPEAT times (default 3), best and median;
#   - echo round trip: `ovs-ofctl ping <target> 64` (10 echo requests with 64 bytes of payload,
#     one at a time), average and max ms;
#   - echo throughput: `ovs-ofctl benchmark <target> 64 $BENCH_COUNT` (that many echo requests,
#     each with 64 bytes of payload, 50 outstanding at a time), requests/s.
#     (ovs-ofctl's `benchmark` measures echo request/reply rate, not packet-ins: those are
#     tests/bench/packet_in.sh.)
#
#   sudo tests/bench/openflow.sh
#   REPEAT=1 ELF=/path/ironflow.elf sudo -E tests/bench/openflow.sh appliance
#
# Output: `RESULT switch metric value unit` lines and a summary with the appliance/OVS ratios; logs
# under $OUT (a temp dir). Everything it starts (QEMU, OVS daemons) is stopped on exit, by PID.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REPEAT="${REPEAT:-3}"
BENCH_COUNT="${BENCH_COUNT:-20000}"
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(appliance ovs)
P="of$(printf '%x' $$)"
OUT="${OUT:-$(mktemp -d /tmp/ironflow-ofbench-XXXXXX)}"
mkdir -p "$OUT"
QEMU_PID=""
HOSTED_PID=""
OVS_DIR="$OUT/ovs"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
for t in ovs-ofctl python3 qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t is missing (tests/run installs it)"
done

cleanup() {
  set +e
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  QEMU_PID=""
  [ -n "$HOSTED_PID" ] && kill "$HOSTED_PID" 2>/dev/null && wait "$HOSTED_PID" 2>/dev/null
  HOSTED_PID=""
  ip link del "${P}m" 2>/dev/null
  ip link del "${P}v1" 2>/dev/null
  stop_ovs
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# $1 flows -> $OUT/flows-$1.txt
flow_file() {
  local n="$1" f="$OUT/flows-$1.txt"
  [ -f "$f" ] || python3 - "$n" >"$f" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"priority=10,ip,nw_src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},actions=drop")
EOF
  echo "$f"
}

now() { date +%s.%N; }
result() { printf 'RESULT %s %s %s %s\n' "$1" "$2" "$3" "$4" | tee -a "$OUT/results.txt"; }

# measure NAME TARGET
measure() {
  local name="$1" target="$2" ofctl=(ovs-ofctl -O OpenFlow13 --timeout=600)
  "${ofctl[@]}" del-flows "$target" ip || die "$name: del-flows failed"
  for n in 10000 100000; do
    local f times=() t0 t1 count
    f=$(flow_file "$n")
    for _ in $(seq "$REPEAT"); do
      t0=$(now)
      "${ofctl[@]}" add-flows "$target" "$f" >"$OUT/$name-add.log" 2>&1 || { cat "$OUT/$name-add.log" >&2; die "$name: add-flows $n failed"; }
      t1=$(now)
      count=$("${ofctl[@]}" dump-aggregate "$target" | grep -o 'flow_count=[0-9]*' | cut -d= -f2)
      [ "${count:-0}" -ge "$n" ] || die "$name: flow_count=$count after adding $n flows"
      times+=("$(python3 -c "print(f'{$t1 - $t0:.3f}')")")
      "${ofctl[@]}" del-flows "$target" ip || die "$name: del-flows failed"
    done
    local best median
    best=$(printf '%s\n' "${times[@]}" | sort -g | head -1)
    median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (${#times[@]} + 1) / 2 ))p")
    log "$name add-flows $n: ${times[*]} s"
    result "$name" "add_flows_${n}_best_s" "$best" s
    result "$name" "flow_mods_per_s_${n}_best" "$(python3 -c "print(round($n / $best))")" flow_mods/s
    result "$name" "flow_mods_per_s_${n}_median" "$(python3 -c "print(round($n / $median))")" flow_mods/s
  done
  local ping
  ping=$("${ofctl[@]}" ping "$target" 64 2>&1) || { echo "$ping" >&2; die "$name: ping failed"; }
  echo "$ping" >"$OUT/$name-ping.txt"
  result "$name" echo_rtt_avg_ms "$(grep -o 'time=[0-9.]*' <<<"$ping" | cut -d= -f2 | awk '{s+=$1; n++} END {printf "%.3f", s/n}')" ms
  result "$name" echo_rtt_max_ms "$(grep -o 'time=[0-9.]*' <<<"$ping" | cut -d= -f2 | sort -g | tail -1)" ms
  local bench
  bench=$("${ofctl[@]}" benchmark "$target" 64 "$BENCH_COUNT" 2>&1) || { echo "$bench" >&2; die "$name: benchmark failed"; }
  echo "$bench" >"$OUT/$name-benchmark.txt"
  result "$name" echo_requests_per_s "$(grep -o '([0-9.]* packets/s)' <<<"$bench" | tr -dc '0-9.')" req/s
}

# --- (a) the appliance -------------------------------------------------------------------------

run_appliance() {
  local elf="${ELF:-}"
  if [ -z "$elf" ]; then
    log "building the image (cargo run -p image)"
    (cd "$ROOT" && cargo run -q -p image -- --out "$OUT/image" >&2) || die "image build failed"
    elf="$OUT/image/ironflow.elf"
  fi
  local accel_name="${ACCEL:-}"
  if [ -z "$accel_name" ]; then
    if [ -e /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then accel_name=tcg; else accel_name=kvm; fi
  fi
  local accel=(-accel tcg)
  [ "$accel_name" = kvm ] && accel=(-accel kvm -cpu host,-arch-capabilities)
  local port
  port=$(free_port)
  qemu-system-x86_64 -name "ironflow-ofbench-$P" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 512 -smp 1 -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -kernel "$elf" -append "on_panic=exit log=info" \
    -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$port-:6653" \
    -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev user,id=port1,restrict=on -device virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4 \
    </dev/null >"$OUT/serial.log" 2>"$OUT/qemu.err" &
  QEMU_PID=$!
  local target="tcp:127.0.0.1:$port"
  for _ in $(seq 240); do ovs-ofctl -O OpenFlow13 --timeout=2 show "$target" >/dev/null 2>&1 && break; sleep 0.5; done
  ovs-ofctl -O OpenFlow13 --timeout=5 show "$target" >/dev/null || die "appliance: no OpenFlow on $target: $(tail -5 "$OUT/serial.log")"
  log "appliance-$accel_name up on $target (QEMU pid $QEMU_PID)"
  measure "appliance-$accel_name" "$target"
  grep -q PANIC "$OUT/serial.log" && die "appliance panicked: $(grep -A5 PANIC "$OUT/serial.log")"
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
}

# --- (c) the hosted runner --------------------------------------------------------------------

run_hosted() {
  local bin="${HOSTED_BIN:-}"
  if [ -z "$bin" ]; then
    log "building the hosted runner (cargo build --release -p hosted)"
    (cd "$ROOT" && cargo build -q --release -p hosted >&2) || die "hosted build failed"
    bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/ironflow-hosted"
  fi
  [ -x "$bin" ] || die "no hosted runner at $bin"
  [ "$(id -u)" = 0 ] || die "hosted: needs root (tap, veth)"
  ip link add "${P}v1" type veth peer name "${P}p1"
  ip link set "${P}v1" up; ip link set "${P}p1" up
  ip tuntap add dev "${P}m" mode tap
  ip addr add 10.0.2.2/24 dev "${P}m"
  ip link set "${P}m" up
  "$bin" --port "${P}v1" --port-kind "${HOSTED_KIND:-auto}" --mgmt-tap "${P}m" ${HOSTED_ARGS:-} \
    -- mgmt.ip=10.0.2.15/24 stats=0 >"$OUT/hosted.log" 2>&1 </dev/null &
  HOSTED_PID=$!
  local target="tcp:10.0.2.15:6653"
  for _ in $(seq 100); do ovs-ofctl -O OpenFlow13 --timeout=2 show "$target" >/dev/null 2>&1 && break; sleep 0.2; done
  ovs-ofctl -O OpenFlow13 --timeout=5 show "$target" >/dev/null || die "hosted: no OpenFlow on $target: $(tail -5 "$OUT/hosted.log")"
  log "hosted up on $target (pid $HOSTED_PID)"
  measure hosted "$target"
  kill "$HOSTED_PID"; wait "$HOSTED_PID" 2>/dev/null; HOSTED_PID=""
  ip link del "${P}m" 2>/dev/null; ip link del "${P}v1" 2>/dev/null
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
  local port
  port=$(free_port)
  vsctl add-br "${P}br" -- set bridge "${P}br" datapath_type=netdev \
    -- set-controller "${P}br" "ptcp:$port:127.0.0.1"
  local target="tcp:127.0.0.1:$port"
  for _ in $(seq 100); do ovs-ofctl -O OpenFlow13 --timeout=2 show "$target" >/dev/null 2>&1 && break; sleep 0.1; done
  log "ovs (netdev bridge ${P}br) up on $target"
  measure ovs "$target"
  vsctl del-br "${P}br"
  stop_ovs
}

for w in "${WHICH[@]}"; do
  case "$w" in
    appliance) run_appliance ;;
    ovs) run_ovs ;;
    hosted) run_hosted ;;
    *) die "unknown switch $w (appliance, ovs, hosted)" ;;
  esac
done

log "summary (ratio to OVS in brackets)"
python3 - "$OUT/results.txt" <<'EOF'
import sys
rows, sws = {}, []
for line in open(sys.argv[1]):
    _, sw, metric, value, unit = line.split()
    rows.setdefault(metric, {})[sw] = float(value)
    if sw not in sws:
        sws.append(sw)
print(f"{'metric':34}" + "".join(f"{s:>26}" for s in sws))
for metric, v in rows.items():
    o = v.get("ovs")
    row = f"{metric:34}"
    for s in sws:
        x = v.get(s)
        cell = "-" if x is None else f"{x:g}"
        if x is not None and o and s != "ovs":
            cell += f" [{x / o:.3f}]"
        row += f"{cell:>26}"
    print(row)
EOF
log "logs and results in $OUT"
