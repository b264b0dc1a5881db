#!/usr/bin/env bash
# Multi-core datapath end to end (not a timed test; issue 11): h1 → h2, 64-byte UDP frames of
# FLOWS flows (distinct source ports, so multiqueue ports spread them by flow hash) for DURATION
# seconds from hosted/examples/pktgen, through, one after the other in one run:
#   appliance-smp1   the image under TCG, -smp 1: one loop forwards and manages (datapath.cores=0)
#   appliance-smpN   -smp N with datapath.cores=N-1 and N-1 queue pairs per data port
#                    (`-accel tcg,thread=multi`, `mq=on` on multi_queue taps); N from SMPS
#   ovs-Kpmd         Open vSwitch netdev, `type=afxdp` ports with `n_rxq=K` on veths with K
#                    queues, K PMD threads (`other_config:pmd-cpu-mask`), K from PMDS
# Reported per switch: offered pps (the generator's sends), delivered pps (h2 eth0 rx), and in
# the summary the ratios to appliance-smp1 and to ovs-1pmd.
#
#   sudo tests/bench/multicore.sh                       # SMPS="1 2 3" PMDS="1 2", 10 s each
#   sudo DURATION=5 SMPS="1 2" PMDS="2" tests/bench/multicore.sh
#   ELF=... PKTGEN=... sudo -E tests/bench/multicore.sh # prebuilt binaries
#
# The host here has 2 vCPUs: QEMU's vCPU threads, OVS's PMDs and the generator share them, so
# these are this machine's figures, not the design's (see docs/benchmarks.md, Multi-core
# datapath). Everything it creates is removed on exit.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-10}"
FLOWS="${FLOWS:-64}"
SMPS="${SMPS:-1 2 3}"
PMDS="${PMDS:-1 2}"
P="mc$(printf '%x' $$)"
OUT="${OUT:-$(mktemp -d /tmp/ironflow-mcbench-XXXXXX)}"
mkdir -p "$OUT"
OVS_DIR="$OUT/ovs"
TGT="${CARGO_TARGET_DIR:-$ROOT/target}"
QEMU_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, taps, veths, OVS)"
for t in ip python3 qemu-system-x86_64 ovs-vswitchd ovs-vsctl ethtool; do
  command -v "$t" >/dev/null || die "$t is missing (tests/deps.sh installs it)"
done

ELF="${ELF:-}"
if [ -z "$ELF" ]; then
  log "building the image (cargo run -p image)"
  (cd "$ROOT" && cargo run -q -p image >&2) || die "image build failed"
  ELF="$TGT/image/ironflow.elf"
fi
PKTGEN="${PKTGEN:-}"
if [ -z "$PKTGEN" ]; then
  log "building pktgen (cargo build --release -p hosted --example pktgen)"
  (cd "$ROOT" && cargo build -q --release -p hosted --example pktgen >&2) || die "pktgen build failed"
  PKTGEN="$TGT/release/examples/pktgen"
fi
[ -f "$ELF" ] && [ -x "$PKTGEN" ] || die "no ELF ($ELF) or pktgen ($PKTGEN)"

vsctl() { ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 "$@"; }
stop_ovs() {
  for d in vswitchd ovsdb; do
    local pidf="$OVS_DIR/$d.pid" pid
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf"); kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null; rm -f "$pidf"
  done
}
cleanup_hosts() {
  for n in 1 2; do
    ip netns pids "${P}h$n" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "${P}h$n" 2>/dev/null
    ip link del "${P}t$n" 2>/dev/null; ip link del "${P}v$n" 2>/dev/null
  done
  true
}
cleanup() {
  set +e
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  stop_ovs; cleanup_hosts
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() { printf 'RESULT %-20s %-22s %s\n' "$1" "$2" "$3" | tee -a "$OUT/results.txt"; }

make_ns() {
  for n in 1 2; do
    ip netns add "${P}h$n"
    ip netns exec "${P}h$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
      net.ipv4.icmp_msgs_per_sec=0 net.ipv4.icmp_msgs_burst=0
    ip -n "${P}h$n" link set lo up
  done
}
# attach IF N: IF becomes host N's eth0 with 10.0.0.N/24.
attach() {
  ip link set "$1" netns "${P}h$2"
  ip -n "${P}h$2" link set "$1" name eth0
  ip -n "${P}h$2" addr add "10.0.0.$2/24" dev eth0
  ip netns exec "${P}h$2" ethtool -K eth0 tx off rx off tso off gso off gro off >/dev/null 2>&1
  ip -n "${P}h$2" link set eth0 up
}
counter() { ip netns exec "${P}h$1" cat "/sys/class/net/eth0/statistics/$2"; }

measure() {
  local sw="$1" dst out sent r0 r1
  ip netns exec "${P}h1" ping -q -c 5 -i 0.2 -W 2 10.0.0.2 >"$OUT/$sw-ping.txt" 2>&1 \
    || log "$sw: ping h1 → h2 failed: $(tail -2 "$OUT/$sw-ping.txt")"
  dst=$(ip netns exec "${P}h2" cat /sys/class/net/eth0/address)
  r0=$(counter 2 rx_packets)
  out=$(ip netns exec "${P}h1" "$PKTGEN" --dev eth0 --dst "$dst" --secs "$DURATION" --flows "$FLOWS" 2>&1)
  sleep 1
  r1=$(counter 2 rx_packets)
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$out")
  [ -n "$sent" ] || die "$sw: pktgen: $out"
  result "$sw" offered_pps "$(python3 -c "print(round($sent / $DURATION))") ($out)"
  result "$sw" delivered_pps "$(python3 -c "print(round(($r1 - $r0) / $DURATION))") ($((r1 - r0)) frames, $FLOWS flows)"
}

run_appliance() {
  local smp="$1" sw="appliance-smp$1" q=1 cores=0 accel=(-accel tcg) mq=""
  if [ "$smp" -gt 1 ]; then
    q=$((smp - 1)); cores=$q; accel=(-accel tcg,thread=multi)
    mq=",mq=on,vectors=$((2 * q + 2))"
  fi
  make_ns
  for n in 1 2; do
    if [ "$q" -gt 1 ]; then ip tuntap add dev "${P}t$n" mode tap multi_queue; else ip tuntap add dev "${P}t$n" mode tap; fi
    ip link set "${P}t$n" up
  done
  local qs=""; [ "$q" -gt 1 ] && qs=",queues=$q"
  qemu-system-x86_64 -name "ironflow-mcbench-$P" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 256 -smp "$smp" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -kernel "$ELF" -append "on_panic=exit stats=0 datapath.cores=$cores" \
    -netdev user,id=mgmt -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev "tap,id=port1,ifname=${P}t1,script=no,downscript=no$qs" \
    -device "virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4$mq" \
    -netdev "tap,id=port2,ifname=${P}t2,script=no,downscript=no$qs" \
    -device "virtio-net-pci,netdev=port2,mac=52:54:00:00:00:02,addr=0x5$mq" \
    </dev/null >"$OUT/$sw-serial.log" 2>"$OUT/$sw-qemu.err" &
  QEMU_PID=$!
  for n in 1 2; do
    for _ in $(seq 200); do [ "$(cat "/sys/class/net/${P}t$n/carrier" 2>/dev/null)" = 1 ] && break; sleep 0.05; done
    attach "${P}t$n" "$n"
  done
  for _ in $(seq 900); do grep -q 'ironflow: ready' "$OUT/$sw-serial.log" && break; sleep 0.1; done
  grep -q 'ironflow: ready' "$OUT/$sw-serial.log" || die "$sw not ready: $(tail -5 "$OUT/$sw-serial.log")"
  sleep 2
  log "$sw ready ($(grep -o 'datapath: [0-9]* cores' "$OUT/$sw-serial.log" || echo 'one loop'))"
  measure "$sw"
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
  cleanup_hosts
}

run_ovs() {
  local k="$1" sw="ovs-${1}pmd" mask
  mask=$(printf '0x%x' $(( (1 << k) - 1 )))
  rm -rf "$OVS_DIR"; mkdir -p "$OVS_DIR"
  (
    export OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR"
    ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovsdb.pid" \
      --unixctl="$OVS_DIR/ovsdb.ctl" --log-file="$OVS_DIR/ovsdb.log" --detach --no-chdir
    vsctl --no-wait init
    vsctl --no-wait set Open_vSwitch . "other_config:pmd-cpu-mask=$mask"
    ovs-vswitchd "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/vswitchd.pid" --unixctl="$OVS_DIR/vswitchd.ctl" \
      --log-file="$OVS_DIR/vswitchd.log" --detach --no-chdir
  ) >>"$OUT/ovs-start.log" 2>&1 || die "OVS did not start: $(tail -3 "$OUT/ovs-start.log")"
  make_ns
  local cmd=(add-br "${P}br" -- set bridge "${P}br" datapath_type=netdev)
  for n in 1 2; do
    ip link add "${P}v$n" numtxqueues "$k" numrxqueues "$k" type veth peer name "${P}p$n" \
      numtxqueues "$k" numrxqueues "$k"
    ethtool -K "${P}v$n" tx off rx off tso off gso off gro off >/dev/null 2>&1
    ip link set "${P}v$n" up
    attach "${P}p$n" "$n"
    cmd+=(-- add-port "${P}br" "${P}v$n" -- set interface "${P}v$n" type=afxdp "options:n_rxq=$k")
  done
  vsctl "${cmd[@]}" || die "$sw: add-br failed"
  sleep 2
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" dpif-netdev/pmd-rxq-show >"$OUT/$sw-rxq.txt" 2>&1
  log "$sw up (pmd-cpu-mask $mask): $(grep -c 'port:' "$OUT/$sw-rxq.txt") rx queues on PMDs"
  measure "$sw"
  ovs-appctl -t "$OVS_DIR/vswitchd.ctl" dpif-netdev/pmd-stats-show >"$OUT/$sw-pmd.txt" 2>&1
  vsctl del-br "${P}br"; stop_ovs; cleanup_hosts
}

log "results in $OUT ($DURATION s each, $FLOWS flows, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
for s in $SMPS; do run_appliance "$s"; done
for k in $PMDS; do run_ovs "$k"; done

python3 - "$OUT/results.txt" <<'EOF'
import re, sys
v = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\S+)\s+(\S+)\s+([0-9.]+)", line)
    if m:
        v[(m[1], m[2])] = float(m[3])
sws = list(dict.fromkeys(k[0] for k in v))
print("\nsummary: 64-byte pps (ratio to appliance-smp1, to ovs-1pmd)")
for sw in sws:
    d = v.get((sw, "delivered_pps"))
    o = v.get((sw, "offered_pps"))
    b = v.get(("appliance-smp1", "delivered_pps"))
    w = v.get(("ovs-1pmd", "delivered_pps"))
    r = "".join(f" [{d / x:.2f} vs {n}]" for x, n in ((b, "smp1"), (w, "ovs-1pmd")) if x and d is not None)
    print(f"{sw:20} offered {o:>10.0f}  delivered {d:>10.0f}{r}")
EOF
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
