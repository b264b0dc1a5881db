#!/usr/bin/env bash
# OVSDB power-cut soak (not a timed test; issue 9): $ROUNDS (default 200) rounds of
#   1. boot the appliance in QEMU with its configuration disk (virtio-blk, cache=writeback as the
#      runner attaches it: a write QEMU completed survives a SIGKILL of QEMU) and the management
#      NIC on user networking with 6640 forwarded to 127.0.0.1 (TCG where /dev/kvm is kvm_pvm,
#      else KVM; ACCEL=tcg|kvm overrides);
#   2. verify: the console says the database loaded (`config: loaded Open_vSwitch from the
#      configuration disk`, no `config: record skipped`, no second `first boot`, no panic), and
#      a `select` of the QoS table holds every acknowledged insert and none of the acknowledged
#      deletes (only the one transaction in flight at the cut may have gone either way);
#   3. stream transactions over one JSON-RPC connection, one at a time, each acknowledged only
#      once its reply (with no error) arrives: inserts of a QoS row (QoS is a root table, so the
#      row stays without references) marked `external_ids:t=<marker>`, and once 300 rows are live
#      every other transaction deletes a live row by marker (so the database keeps changing and
#      compaction runs); every acknowledgement is written to a journal as it arrives;
#   4. SIGKILL QEMU at a random instant (uniform in 0.1..CUT_MAX_S seconds, default 2, after
#      streaming starts), and go on with the next round.
# After the last round one more boot verifies. Exits non-zero if anything acknowledged was lost,
# an acknowledged delete came back, a load failed or reported a skipped record.
#
#   tests/bench/ovsdb_powercut.sh
#   ROUNDS=20 ELF=/path/ironflow.elf tests/bench/ovsdb_powercut.sh
#
# Output: per-round lines, `RESULT powercut metric value unit` lines; logs under $OUT (a temp dir):
# serial-<round>.log for every boot, journal-<round>.txt of every round's transactions.
# Everything it starts (QEMU, the client) is stopped on exit, by PID.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS="${ROUNDS:-200}"
CUT_MAX_S="${CUT_MAX_S:-2}"
SEED="${SEED:-$$}"
OUT="${OUT:-$(mktemp -d /tmp/ironflow-ovsdb-powercut-XXXXXX)}"
mkdir -p "$OUT"
QEMU_PID=""
STREAM_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
for t in python3 qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t is missing (tests/run installs it)"
done

cleanup() {
  set +e
  [ -n "$STREAM_PID" ] && kill "$STREAM_PID" 2>/dev/null && wait "$STREAM_PID" 2>/dev/null
  [ -n "$QEMU_PID" ] && kill -9 "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  STREAM_PID="" QEMU_PID=""
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
result() { printf 'RESULT powercut %s %s %s\n' "$1" "$2" "$3" | tee -a "$OUT/results.txt"; }

# The JSON-RPC client (python3 standard library only).
CLIENT="$OUT/powercut_client.py"
cat >"$CLIENT" <<'EOF'
import json, os, socket, sys, time

class Rpc:
    """One JSON-RPC connection to an OVSDB server; answers the server's echo requests."""
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf, self.dec, self.next_id = "", json.JSONDecoder(), 0
    def send(self, method, params):
        self.next_id += 1
        self.s.sendall(json.dumps({"method": method, "params": params, "id": self.next_id}).encode())
        return self.next_id
    def recv(self):
        while True:
            s = self.buf.lstrip()
            if s:
                try:
                    msg, end = self.dec.raw_decode(s)
                    self.buf = s[end:]
                    if msg.get("method") == "echo":
                        self.s.sendall(json.dumps({"result": msg["params"], "error": None, "id": msg["id"]}).encode())
                        continue
                    return msg
                except ValueError:
                    pass
            data = self.s.recv(1 << 20)
            if not data:
                raise EOFError("connection closed")
            self.buf = s + data.decode()
    def call(self, method, params):
        i = self.send(method, params)
        while True:
            m = self.recv()
            if m.get("id") == i:
                return m

def markers(rpc):
    r = rpc.call("transact", ["Open_vSwitch",
        {"op": "select", "table": "QoS", "where": [], "columns": ["external_ids"]},
        {"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}])
    res = r.get("result")
    if r.get("error") or not isinstance(res, list) or any("error" in x for x in res):
        raise RuntimeError(f"select failed: {r}")
    out = []
    for row in res[0]["rows"]:
        m = dict(row["external_ids"][1]).get("t")
        if m is not None:
            out.append(m)
    return out, [b["name"] for b in res[1]["rows"]]

def wait(port, secs):
    """Waits until the server answers a select."""
    deadline = time.time() + secs
    last = None
    while time.time() < deadline:
        try:
            markers(Rpc(port, 3.0))
            return 0
        except Exception as e:
            last = e
            time.sleep(0.2)
    print(f"no OVSDB answer on 127.0.0.1:{port} in {secs}s: {last}", file=sys.stderr)
    return 1

def load_model(path):
    if os.path.exists(path):
        return json.load(open(path))
    return {"live": [], "deleted": [], "acked_inserts": 0, "acked_deletes": 0, "next": 0,
            "inflight_applied": 0, "inflight_not_applied": 0}

def check(port, model_path, journal_path, round_no):
    """Compares the database with the model plus last round's journal; writes the new model.
    Prints one JSON line of what it found; exit 1 if anything acknowledged was lost."""
    model = load_model(model_path)
    live, deleted = set(model["live"]), set(model["deleted"])
    inflight = None
    if os.path.exists(journal_path):
        for line in open(journal_path):
            parts = line.split()
            if len(parts) != 3:
                continue  # a line torn by the kill of the client (never: it is not killed)
            kind, op, m = parts
            if kind == "S":
                inflight = (op, m)
            elif kind == "A":
                inflight = None
                if op == "I":
                    live.add(m); model["acked_inserts"] += 1
                else:
                    live.discard(m); deleted.add(m); model["acked_deletes"] += 1
    got, bridges = markers(Rpc(port, 30.0))
    actual = set(got)
    problems = []
    if len(got) != len(actual):
        problems.append(f"duplicate markers: {len(got) - len(actual)}")
    lost = sorted(live - actual)
    back = sorted(deleted & actual)
    extra = sorted(actual - live)
    if inflight:
        op, m = inflight
        if op == "I" and m in extra:
            extra.remove(m); live.add(m); model["inflight_applied"] += 1
        elif op == "D" and m in lost:
            lost.remove(m); live.discard(m); deleted.add(m); model["inflight_applied"] += 1
        else:
            model["inflight_not_applied"] += 1
    if lost:
        problems.append(f"{len(lost)} acknowledged inserts lost: {lost[:10]}")
    if back:
        problems.append(f"{len(back)} acknowledged deletes undone: {back[:10]}")
    if extra:
        problems.append(f"{len(extra)} rows never acknowledged nor in flight: {extra[:10]}")
    if "br0" not in bridges:
        problems.append(f"bridge br0 missing: {bridges}")
    model["live"], model["deleted"] = sorted(live), sorted(deleted)
    json.dump(model, open(model_path + ".tmp", "w"))
    os.replace(model_path + ".tmp", model_path)
    print(json.dumps({"round": round_no, "rows": len(actual), "lost": len(lost), "undone": len(back),
                      "extra": len(extra), "acked_inserts": model["acked_inserts"],
                      "acked_deletes": model["acked_deletes"], "problems": problems}))
    return 1 if problems else 0

def stream(port, model_path, journal_path, prefix):
    """Transactions one at a time until the connection dies; journals S (sent) and A (acked)."""
    model = load_model(model_path)
    live = list(model["live"])
    n = 0
    rpc = Rpc(port, 10.0)
    with open(journal_path, "a", buffering=1) as j:
        while True:
            if len(live) > 300 and n % 2 == 1:
                m = live.pop(0)
                op = ("D", m, {"op": "delete", "table": "QoS",
                               "where": [["external_ids", "includes", ["map", [["t", m]]]]]})
            else:
                m = f"{prefix}x{n}"
                op = ("I", m, {"op": "insert", "table": "QoS",
                               "row": {"type": "linux-htb", "external_ids": ["map", [["t", m]]]}})
            n += 1
            j.write(f"S {op[0]} {op[1]}\n")
            try:
                r = rpc.call("transact", ["Open_vSwitch", op[2]])
            except (OSError, EOFError):
                return 0
            res = r.get("result")
            ok = (r.get("error") is None and isinstance(res, list) and len(res) == 1
                  and "error" not in res[0]
                  and ("uuid" in res[0] if op[0] == "I" else res[0].get("count") == 1))
            if not ok:
                print(f"transaction not acknowledged: {op[2]} -> {r}", file=sys.stderr)
                return 2
            j.write(f"A {op[0]} {op[1]}\n")
            if op[0] == "I":
                live.append(m)

cmd = sys.argv[1]
if cmd == "wait":
    sys.exit(wait(int(sys.argv[2]), float(sys.argv[3])))
elif cmd == "check":
    sys.exit(check(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])))
elif cmd == "stream":
    sys.exit(stream(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
EOF

ELF="${ELF:-}"
if [ -z "$ELF" ]; then
  log "building the image (cargo run -p image)"
  (cd "$ROOT" && cargo run -q -p image -- --out "$OUT/image" >&2) || die "image build failed"
  ELF="$OUT/image/ironflow.elf"
fi
accel_name="${ACCEL:-}"
if [ -z "$accel_name" ]; then
  if [ -e /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then accel_name=tcg; else accel_name=kvm; fi
fi
accel=(-accel tcg)
[ "$accel_name" = kvm ] && accel=(-accel kvm -cpu host,-arch-capabilities)
DISK="$OUT/config.img"
rm -f "$DISK"
truncate -s 64M "$DISK"
MODEL="$OUT/model.json"

# boot N: starts QEMU (serial to $OUT/serial-N.log), sets PORT and QEMU_PID.
boot() {
  PORT=$(free_port)
  qemu-system-x86_64 -name "ironflow-powercut-$$" -nodefaults -display none -no-reboot -machine q35 \
    "${accel[@]}" -m 256 -smp 1 -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio -kernel "$ELF" -append "on_panic=exit log=info stats=0" \
    -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$PORT-:6640" \
    -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:01:00,addr=0x3 \
    -netdev user,id=port1,restrict=on -device virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4 \
    -drive "file=$DISK,format=raw,if=none,id=cfgdisk,cache=writeback" \
    -device virtio-blk-pci,drive=cfgdisk,addr=0x1e \
    </dev/null >"$OUT/serial-$1.log" 2>"$OUT/qemu-$1.err" &
  QEMU_PID=$!
}

LOADS_FAILED=0 LOADS=0 TORN=0 FAILED=0 SNAPSHOTS=0
# verify N: the console and the database after boot N (N > 0 loads from the disk).
verify() {
  local r="$1" serial="$OUT/serial-$1.log" why=""
  python3 "$CLIENT" wait "$PORT" 90 || why="no OVSDB answer"
  if [ "$r" -gt 0 ]; then
    LOADS=$((LOADS + 1))
    local loaded
    loaded=$(grep -a 'config: loaded Open_vSwitch from the configuration disk' "$serial")
    [ -n "$loaded" ] || why="$why; no 'config: loaded' line"
    grep -aq 'torn last write was dropped' <<<"$loaded" && TORN=$((TORN + 1))
    grep -aq 'snapshot yes' <<<"$loaded" && SNAPSHOTS=$((SNAPSHOTS + 1))
    grep -aq 'first boot' "$serial" && why="$why; a second first boot"
    grep -aqE 'record skipped|not an ironflow configuration|cannot format|configuration is kept in memory' "$serial" \
      && why="$why; $(grep -aE 'record skipped|not an ironflow|cannot format|kept in memory' "$serial" | head -3)"
    [ -n "$why" ] && LOADS_FAILED=$((LOADS_FAILED + 1))
  fi
  grep -aq PANIC "$serial" && why="$why; panic: $(grep -a -A3 PANIC "$serial" | head -4)"
  local found
  found=$(python3 "$CLIENT" check "$PORT" "$MODEL" "$OUT/journal-$((r - 1)).txt" "$r") || why="$why; $found"
  [ -n "$found" ] && echo "$found" >>"$OUT/checks.jsonl"
  if [ -n "$why" ]; then
    FAILED=$((FAILED + 1))
    log "round $r: FAILED:$why (serial log $serial)"
    return 1
  fi
  return 0
}

log "power-cut soak: $ROUNDS rounds, accel $accel_name, cut at 0.1..${CUT_MAX_S}s, seed $SEED, logs in $OUT"
T0=$(date +%s)
for r in $(seq 0 "$ROUNDS"); do
  boot "$r"
  verify "$r"
  last=$(tail -1 "$OUT/checks.jsonl" 2>/dev/null)
  [ "$r" -eq "$ROUNDS" ] && break
  : >"$OUT/journal-$r.txt"
  python3 "$CLIENT" stream "$PORT" "$MODEL" "$OUT/journal-$r.txt" "r$r" 2>>"$OUT/stream.err" &
  STREAM_PID=$!
  cut=$(python3 -c "import random; random.seed($SEED * 100003 + $r); print(f'{random.uniform(0.1, $CUT_MAX_S):.3f}')")
  sleep "$cut"
  kill -9 "$QEMU_PID"
  wait "$QEMU_PID" 2>/dev/null
  QEMU_PID=""
  # The client sees the connection close (or its 10 s timeout) and exits.
  wait "$STREAM_PID"; rc=$?
  STREAM_PID=""
  [ $rc -ne 0 ] && { FAILED=$((FAILED + 1)); log "round $r: the client failed (rc $rc): $(tail -2 "$OUT/stream.err")"; }
  acks=$(grep -c '^A' "$OUT/journal-$r.txt")
  printf 'round %d: cut after %ss, %d acknowledged; after boot: %s\n' "$r" "$cut" "$acks" "$last"
done
T1=$(date +%s)

python3 - "$OUT" "$ROUNDS" "$LOADS" "$LOADS_FAILED" "$TORN" "$SNAPSHOTS" "$FAILED" "$((T1 - T0))" <<'EOF' | tee -a "$OUT/results.txt"
import json, sys
out, rounds, loads, loads_failed, torn, snaps, failed, wall = sys.argv[1], *map(int, sys.argv[2:])
checks = [json.loads(l) for l in open(f"{out}/checks.jsonl")]
model = json.load(open(f"{out}/model.json"))
last = checks[-1]
lost = sum(c["lost"] for c in checks)
undone = sum(c["undone"] for c in checks)
extra = sum(c["extra"] for c in checks)
for k, v, u in [("rounds", rounds, "cuts"), ("acknowledged_transactions", model["acked_inserts"] + model["acked_deletes"], "tx"),
                ("acknowledged_inserts", model["acked_inserts"], "tx"), ("acknowledged_deletes", model["acked_deletes"], "tx"),
                ("lost", lost, "tx"), ("deletes_undone", undone, "tx"), ("unexpected_rows", extra, "rows"),
                ("inflight_applied", model["inflight_applied"], "tx"), ("inflight_not_applied", model["inflight_not_applied"], "tx"),
                ("loads", loads, "boots"), ("loads_failed", loads_failed, "boots"),
                ("torn_tails_dropped", torn, "boots"), ("loads_from_snapshot", snaps, "boots"),
                ("rows_at_end", last["rows"], "rows"), ("failed_checks", failed, "rounds"), ("wall_time", wall, "s")]:
    print(f"RESULT powercut {k} {v} {u}")
EOF
log "logs and results in $OUT"
[ "$FAILED" -eq 0 ] || die "$FAILED rounds failed (see above)"
log "PASS: $ROUNDS power cuts, nothing acknowledged lost, every load clean"
