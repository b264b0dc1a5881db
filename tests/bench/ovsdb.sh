#!/usr/bin/env bash
# OVSDB benchmark (not a timed test; issue 9): the same clients against
#   (a) the ironflow appliance in QEMU (management NIC on user networking, 6640 forwarded to
#       127.0.0.1; TCG where /dev/kvm is kvm_pvm, which emulates the guest kernel, else KVM;
#       ACCEL=tcg|kvm overrides; no config disk unless DISK=1, so the numbers are the server's),
#   (h) the hosted runner (`hosted`: the same main loop natively, its smoltcp stack on a tap),
#   (b) Debian's ovsdb-server (`ovsdb-tool create` from /usr/share/openvswitch/vswitch.ovsschema,
#       `--remote=ptcp:<free port>:127.0.0.1`, a private directory, no ovs-vswitchd),
# one after the other in the same run. Per server:
#   - vsctl_seq: $PORTS (default 1000) `ovs-vsctl --no-wait add-port br0 pN`, one process and one
#     transaction each (what a provisioning script does), transactions/s;
#   - vsctl_batch: the same $PORTS ports in invocations of 100 `-- add-port` each (one transaction
#     per invocation), ports/s;
#   - vsctl_wait (appliance only; Debian's server has no vswitchd to bump cur_cfg): $WAIT_PORTS
#     (default 100) add-ports *without* --no-wait: each returns once the switch applied it;
#   - transact_seq: $TXNS (default 300) `ovsdb-client transact` processes, each inserting one QoS
#     row (a root table: the row stays), transactions/s;
#   - transact_pipelined: $PIPE (default 2000) single-row inserts sent at once over one JSON-RPC
#     connection, all replies awaited, transactions/s;
#   - monitor latency: a monitor on QoS over one connection, $SAMPLES (default 200) inserts over
#     another, one at a time; time from sending the transact to receiving the update: median and
#     p99 in ms.
#
#   tests/bench/ovsdb.sh                # all three: appliance, hosted, ovsdb-server
#   ELF=/path/ironflow.elf tests/bench/ovsdb.sh appliance
#
# Output: `RESULT server metric value unit` lines and a summary with appliance/ovsdb-server ratios;
# logs under $OUT (a temp dir). Everything it starts is stopped on exit, by PID.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORTS="${PORTS:-1000}"
WAIT_PORTS="${WAIT_PORTS:-100}"
TXNS="${TXNS:-300}"
PIPE="${PIPE:-2000}"
SAMPLES="${SAMPLES:-200}"
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(appliance hosted ovsdb-server)
OUT="${OUT:-$(mktemp -d /tmp/ironflow-ovsdbbench-XXXXXX)}"
mkdir -p "$OUT"
QEMU_PID=""
SERVER_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
for t in ovs-vsctl ovsdb-client ovsdb-tool ovsdb-server python3 qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t is missing (tests/run installs it)"
done

cleanup() {
  set +e
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  QEMU_PID=""; SERVER_PID=""
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
result() { printf 'RESULT %s %s %s %s\n' "$1" "$2" "$3" "$4" | tee -a "$OUT/results.txt"; }
rate() { python3 -c "print(round($1 / ($3 - $2), 1))"; }

# The JSON-RPC client for the pipelined and monitor measurements (python3 stdlib only).
cat >"$OUT/rpc.py" <<'EOF'
import json, socket, statistics, sys, time, uuid

def conn(port):
    s = socket.create_connection((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

class Reader:
    def __init__(self, s):
        self.s, self.buf, self.dec = s, "", json.JSONDecoder()
    def next(self):
        while True:
            self.buf = self.buf.lstrip()
            if self.buf:
                try:
                    obj, end = self.dec.raw_decode(self.buf)
                    self.buf = self.buf[end:]
                    return obj
                except ValueError:
                    pass
            data = self.s.recv(1 << 20)
            if not data:
                raise SystemExit("connection closed")
            self.buf += data.decode()

def insert(i, tag):
    return {"method": "transact", "id": i, "params": ["Open_vSwitch", {"op": "insert",
            "table": "QoS", "row": {"type": "linux-htb",
            "external_ids": ["map", [["bench", f"{tag}-{i}"]]]}}]}

def send(s, msg):
    s.sendall(json.dumps(msg).encode())

def check(reply, what):
    if reply.get("error") is not None or any("error" in r for r in reply.get("result") or []):
        raise SystemExit(f"{what} failed: {reply}")

mode, HOST, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tag = uuid.uuid4().hex[:8]
if mode == "pipelined":
    s = conn(port); r = Reader(s)
    t0 = time.monotonic()
    s.sendall(b"".join(json.dumps(insert(i, tag)).encode() for i in range(n)))
    got = 0
    while got < n:
        m = r.next()
        if "id" in m and m.get("method") is None:
            check(m, "insert"); got += 1
    dt = time.monotonic() - t0
    print(f"{n / dt:.1f}")
elif mode == "monitor":
    mon = conn(port); mr = Reader(mon)
    send(mon, {"method": "monitor", "id": "m", "params": ["Open_vSwitch", None,
               {"QoS": {"columns": ["external_ids"]}}]})
    while True:
        m = mr.next()
        if m.get("id") == "m":
            break
    tx = conn(port); tr = Reader(tx)
    lat = []
    for i in range(n):
        t0 = time.monotonic()
        send(tx, insert(i, tag))
        while True:  # the update for this insert
            m = mr.next()
            if m.get("method") == "update" and f"{tag}-{i}" in json.dumps(m):
                break
        lat.append((time.monotonic() - t0) * 1000)
        check(tr.next(), "insert")
    lat.sort()
    print(f"{statistics.median(lat):.3f} {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.3f}")
EOF

# measure NAME HOST PORT HAS_SWITCH
measure() {
  local name="$1" host="$2" port="$3" switch="$4" db="tcp:$2:$3" t0 t1
  local vsctl=(ovs-vsctl --db="$db" --timeout=120)
  "${vsctl[@]}" --no-wait --may-exist add-br br0 || die "$name: add-br failed"
  log "$name: $PORTS sequential add-port"
  t0=$(now)
  for i in $(seq "$PORTS"); do
    "${vsctl[@]}" --no-wait add-port br0 "p$i" >>"$OUT/$name-vsctl.log" 2>&1 || die "$name: add-port p$i failed: $(tail -2 "$OUT/$name-vsctl.log")"
  done
  t1=$(now)
  result "$name" vsctl_seq_tx_per_s "$(rate "$PORTS" "$t0" "$t1")" tx/s
  local n
  n=$("${vsctl[@]}" list-ports br0 | grep -c '^p')
  [ "$n" -eq "$PORTS" ] || die "$name: $n ports after adding $PORTS"
  "${vsctl[@]}" --no-wait del-br br0 && "${vsctl[@]}" --no-wait add-br br0 || die "$name: del-br failed"
  log "$name: $PORTS add-port in batches of 100"
  t0=$(now)
  for b in $(seq 0 100 $((PORTS - 1))); do
    local args=()
    for i in $(seq $((b + 1)) $((b + 100 < PORTS ? b + 100 : PORTS))); do args+=(-- add-port br0 "q$i"); done
    "${vsctl[@]}" --no-wait "${args[@]}" >>"$OUT/$name-vsctl.log" 2>&1 || die "$name: batch at $b failed"
  done
  t1=$(now)
  result "$name" vsctl_batch_ports_per_s "$(rate "$PORTS" "$t0" "$t1")" ports/s
  n=$("${vsctl[@]}" list-ports br0 | grep -c '^q')
  [ "$n" -eq "$PORTS" ] || die "$name: $n ports after the batches"
  "${vsctl[@]}" --no-wait del-br br0 || die "$name: del-br failed"
  if [ "$switch" = 1 ]; then
    "${vsctl[@]}" add-br br0 || die "$name: add-br (waiting) failed"
    log "$name: $WAIT_PORTS add-port without --no-wait"
    t0=$(now)
    for i in $(seq "$WAIT_PORTS"); do
      "${vsctl[@]}" add-port br0 "w$i" >>"$OUT/$name-vsctl.log" 2>&1 || die "$name: add-port w$i (waiting) failed"
    done
    t1=$(now)
    result "$name" vsctl_wait_tx_per_s "$(rate "$WAIT_PORTS" "$t0" "$t1")" tx/s
    "${vsctl[@]}" --no-wait del-br br0
  fi
  log "$name: $TXNS ovsdb-client transact"
  t0=$(now)
  for i in $(seq "$TXNS"); do
    ovsdb-client transact "$db" "[\"Open_vSwitch\",{\"op\":\"insert\",\"table\":\"QoS\",\"row\":{\"type\":\"linux-htb\",\"external_ids\":[\"map\",[[\"seq\",\"$i\"]]]}}]" \
      >>"$OUT/$name-transact.log" 2>&1 || die "$name: transact $i failed"
  done
  t1=$(now)
  grep -q '"error"' "$OUT/$name-transact.log" && die "$name: a transact returned an error"
  result "$name" transact_seq_tx_per_s "$(rate "$TXNS" "$t0" "$t1")" tx/s
  local r
  r=$(python3 "$OUT/rpc.py" pipelined "$host" "$port" "$PIPE") || die "$name: pipelined inserts failed"
  result "$name" transact_pipelined_tx_per_s "$r" tx/s
  r=$(python3 "$OUT/rpc.py" monitor "$host" "$port" "$SAMPLES") || die "$name: monitor latency failed"
  result "$name" monitor_latency_median_ms "${r% *}" ms
  result "$name" monitor_latency_p99_ms "${r#* }" ms
}

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
  local port disk=()
  port=$(free_port)
  if [ "${DISK:-0}" = 1 ]; then
    truncate -s 64M "$OUT/config.img"
    disk=(-drive "file=$OUT/config.img,format=raw,if=none,id=cfgdisk,cache=writeback" -device virtio-blk-pci,drive=cfgdisk,addr=0x1e)
  fi
  qemu-system-x86_64 -name "ironflow-ovsdbbench" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 512 -smp 1 -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -kernel "$elf" -append "on_panic=exit log=info bridge=none" \
    -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$port-:6640" \
    -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev user,id=port1,restrict=on -device virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4 \
    "${disk[@]}" </dev/null >"$OUT/serial.log" 2>"$OUT/qemu.err" &
  QEMU_PID=$!
  for _ in $(seq 240); do ovsdb-client --timeout=2 list-dbs "tcp:127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.5; done
  ovsdb-client --timeout=5 list-dbs "tcp:127.0.0.1:$port" >/dev/null || die "appliance: no OVSDB: $(tail -5 "$OUT/serial.log")"
  log "appliance-$accel_name up on tcp:127.0.0.1:$port (QEMU pid $QEMU_PID)"
  measure "appliance-$accel_name" 127.0.0.1 "$port" 1
  grep -q PANIC "$OUT/serial.log" && die "appliance panicked: $(grep -A5 PANIC "$OUT/serial.log")"
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
}

run_ovsdb_server() {
  local dir="$OUT/ovsdb" port
  mkdir -p "$dir"
  ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema || die "ovsdb-tool create failed"
  port=$(free_port)
  ovsdb-server "$dir/conf.db" --remote="ptcp:$port:127.0.0.1" --unixctl="$dir/ctl" \
    --log-file="$dir/ovsdb-server.log" --pidfile="$dir/pid" 2>"$dir/err" &
  SERVER_PID=$!
  for _ in $(seq 50); do ovsdb-client --timeout=2 list-dbs "tcp:127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done
  # ovs-vsctl expects the root row, which ovs-vswitchd's startup scripts create.
  ovs-vsctl --db="tcp:127.0.0.1:$port" --no-wait init || die "ovs-vsctl init failed"
  log "ovsdb-server $(ovsdb-server --version | head -1) up on tcp:127.0.0.1:$port"
  measure ovsdb-server 127.0.0.1 "$port" 0
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
}

# The hosted runner (the appliance's main loop natively; its own smoltcp stack on a tap with
# 10.254.99.2, the host side 10.254.99.1): the same server code without TCG's emulation.
run_hosted() {
  local bin="${HOSTED_BIN:-}" tap="ovb$$"
  if [ -z "$bin" ]; then
    (cd "$ROOT" && cargo build -q --release -p hosted >&2) || die "hosted build failed"
    bin="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/ironflow-hosted"
  fi
  "$bin" --mgmt-tap "$tap" -- mgmt.ip=10.254.99.2/24 bridge=none log=info stats=0 \
    </dev/null >"$OUT/hosted.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -e "/sys/class/net/$tap" ] && break; sleep 0.05; done
  ip addr add 10.254.99.1/24 dev "$tap" && ip link set dev "$tap" up || die "hosted: cannot address $tap"
  for _ in $(seq 100); do ovsdb-client --timeout=2 list-dbs tcp:10.254.99.2:6640 >/dev/null 2>&1 && break; sleep 0.1; done
  log "hosted runner up on tcp:10.254.99.2:6640 (pid $SERVER_PID)"
  measure hosted 10.254.99.2 6640 1
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
}

for w in "${WHICH[@]}"; do
  case "$w" in
    appliance) run_appliance ;;
    hosted) run_hosted ;;
    ovsdb-server) run_ovsdb_server ;;
    *) die "unknown target $w (appliance, hosted, ovsdb-server)" ;;
  esac
done

echo
echo "summary (ratios to ovsdb-server; latency: lower is better):"
python3 - "$OUT/results.txt" <<'EOF'
import sys, collections
v = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    _, who, metric, value, unit = line.split()
    v[metric][who] = (float(value), unit)
for metric, d in v.items():
    ref = d.get("ovsdb-server")
    cells = "  ".join(f"{k}={x[0]:g} {x[1]}" for k, x in d.items())
    ratios = "  ".join(f"{k}/ovsdb-server={x[0] / ref[0]:.3f}" for k, x in d.items()
                       if ref and ref[0] and k != "ovsdb-server")
    print(f"  {metric}: {cells}  {ratios}")
EOF
log "results in $OUT/results.txt"
