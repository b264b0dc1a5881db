#!/usr/bin/env python3
"""The Python `ovs` IDL (PyPI `ovs`, the library ovsdbapp and OpenStack build on) against the
appliance's OVSDB server (issue 9). Run by tests/tests/ovsdb_idl.rs against the booted image,
with the venv tests/deps.sh makes:

    target/osken-venv/bin/python tests/ovsdb_idl.py tcp:127.0.0.1:PORT

Expects the first-boot configuration with two data NICs: bridge br0 with ports eth1 and eth2.
Steps (each prints PASS or FAIL; exit 1 on the first failure):
  1. get_schema over ovs.jsonrpc, an Idl with a SchemaHelper registering columns of
     Open_vSwitch, Bridge, Port, Interface and Controller; the initial contents arrive (root row,
     br0, eth1, eth2) and the switch's status columns are filled in (Interface ofport, link_state).
  2. IDL transaction: remove port eth2 (with next_cfg incremented, as ovs-vsctl does): commit
     SUCCESS, cur_cfg catches up with next_cfg, the port is gone from the IDL's replica.
  3. IDL transaction: add port eth2 back with Interface eth2, ofport_request=2, tag=10: SUCCESS,
     cur_cfg catches up, and the switch writes Interface.ofport = 2 and link_state "up" back.
  4. IDL transaction: a Controller tcp:10.0.2.2:N (QEMU user networking's address of the host)
     for br0, where this script listens with a minimal OpenFlow 1.3 peer: the switch connects and
     writes Controller.is_connected = true, which the IDL sees.
  5. A transaction the server must refuse (a second Port named eth1: Port's name index) ends
     with ERROR, and the replica is unchanged.
"""

import argparse
import socket
import struct
import sys
import threading
import time

try:
    import ovs.db.idl
    import ovs.jsonrpc
    import ovs.poller
    import ovs.stream
    import ovs.version
except ImportError as e:
    print(f"FAIL: cannot import the Python `ovs` library ({e}): tests/deps.sh installs it")
    sys.exit(1)

COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg", "ovs_version", "db_version"],
    "Bridge": ["name", "ports", "controller", "fail_mode", "datapath_id"],
    "Port": ["name", "interfaces", "tag"],
    "Interface": ["name", "type", "ofport", "ofport_request", "link_state", "admin_state",
                  "mac_in_use", "error"],
    "Controller": ["target", "is_connected", "role"],
}


class Failed(Exception):
    pass


def passed(msg):
    print(f"PASS: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Failed(msg)
    passed(msg)


def get_schema(remote, timeout):
    err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote), timeout * 1000)
    if err:
        raise Failed(f"cannot connect to {remote}: {err}")
    rpc = ovs.jsonrpc.Connection(stream)
    err, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"]))
    rpc.close()
    if err or reply.error:
        raise Failed(f"get_schema failed: {err or reply.error}")
    return reply.result


class Client:
    def __init__(self, remote, timeout):
        schema = get_schema(remote, timeout)
        passed(f"get_schema: Open_vSwitch {schema.get('version')} with {len(schema['tables'])} tables")
        helper = ovs.db.idl.SchemaHelper(schema_json=schema)
        for table, cols in COLUMNS.items():
            helper.register_columns(table, cols)
        self.idl = ovs.db.idl.Idl(remote, helper)
        self.timeout = timeout

    def run_until(self, cond, what, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        while True:
            self.idl.run()
            got = cond()
            if got:
                return got
            if time.time() > deadline:
                raise Failed(f"timed out after {timeout or self.timeout}s waiting for {what}")
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(100)
            poller.block()

    def rows(self, table):
        return list(self.idl.tables[table].rows.values())

    def root(self):
        rows = self.rows("Open_vSwitch")
        return rows[0] if len(rows) == 1 else None

    def named(self, table, name):
        return next((r for r in self.rows(table) if r.name == name), None)

    def commit(self, what, build, bump=True):
        """One IDL transaction; returns (status, next_cfg it set or None, error text)."""
        txn = ovs.db.idl.Transaction(self.idl)
        txn.add_comment(f"ovsdb_idl.py: {what}")
        root = self.root()
        if bump:
            root.verify("next_cfg")
            root.increment("next_cfg")
        build(txn)
        status = txn.commit_block()
        nxt = txn.get_increment_new_value() if bump and status == txn.SUCCESS else None
        return status, nxt, txn.get_error()

    def wait_cur_cfg(self, nxt):
        self.run_until(lambda: self.root() is not None and self.root().cur_cfg >= nxt,
                       f"cur_cfg to reach next_cfg {nxt}")


class OpenFlowPeer:
    """A minimal OpenFlow 1.3 controller: HELLO, FEATURES_REQUEST, answers ECHO_REQUEST."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.hellos = 0
        self.features_replies = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            conn.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # HELLO
            conn.sendall(struct.pack("!BBHI", 4, 5, 8, 2))  # FEATURES_REQUEST
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 8:
                    _, typ, length, xid = struct.unpack("!BBHI", buf[:8])
                    if length < 8 or len(buf) < length:
                        break
                    msg, buf = buf[:length], buf[length:]
                    if typ == 0:
                        self.hellos += 1
                    elif typ == 6:
                        self.features_replies += 1
                    elif typ == 2:  # ECHO_REQUEST -> ECHO_REPLY with the same payload
                        conn.sendall(struct.pack("!BBHI", 4, 3, length, xid) + msg[8:])
        except OSError:
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("remote", help="e.g. tcp:127.0.0.1:6640")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    print(f"ovs library {ovs.version.VERSION}, remote {args.remote}", flush=True)
    c = Client(args.remote, args.timeout)

    # 1. Initial contents and status columns.
    c.run_until(lambda: c.idl.has_ever_connected() and c.root() is not None
                and c.named("Bridge", "br0") is not None, "the initial contents (root row, br0)")
    br = c.named("Bridge", "br0")
    ports = sorted(p.name for p in br.ports)
    check({"eth1", "eth2"} <= set(ports), f"initial contents: br0 with ports {ports}")
    check(c.root().ovs_version != [], f"Open_vSwitch.ovs_version {c.root().ovs_version}")
    eth1 = c.run_until(lambda: (lambda i: i if i is not None and i.ofport == [1]
                                and i.link_state == ["up"] else None)(c.named("Interface", "eth1")),
                       "Interface eth1 ofport 1 and link_state up")
    check(True, f"status from the switch: eth1 ofport={eth1.ofport} link_state={eth1.link_state} "
                f"mac_in_use={eth1.mac_in_use}")
    c.run_until(lambda: c.named("Bridge", "br0").datapath_id != [], "Bridge.datapath_id")
    passed(f"Bridge.datapath_id {c.named('Bridge', 'br0').datapath_id}")

    # 2. Remove eth2.
    def remove(txn):
        b = c.named("Bridge", "br0")
        p = c.named("Port", "eth2")
        b.verify("ports")
        b.ports = [x for x in b.ports if x.name != "eth2"]
        p.delete()

    status, nxt, err = c.commit("del-port eth2", remove)
    check(status == ovs.db.idl.Transaction.SUCCESS, f"IDL commit del-port eth2: {status} {err}")
    c.wait_cur_cfg(nxt)
    passed(f"cur_cfg caught up with next_cfg {nxt} after del-port")
    check(c.named("Port", "eth2") is None and c.named("Interface", "eth2") is None,
          "eth2's Port and Interface rows are gone (the Interface by garbage collection)")

    # 3. Add eth2 back with a VLAN tag and ofport_request.
    def add(txn):
        b = c.named("Bridge", "br0")
        i = txn.insert(c.idl.tables["Interface"])
        i.name = "eth2"
        i.ofport_request = [2]
        p = txn.insert(c.idl.tables["Port"])
        p.name = "eth2"
        p.interfaces = [i]
        p.tag = [10]
        b.verify("ports")
        b.ports = list(b.ports) + [p]

    status, nxt, err = c.commit("add-port eth2 tag=10", add)
    check(status == ovs.db.idl.Transaction.SUCCESS, f"IDL commit add-port eth2 tag=10: {status} {err}")
    c.wait_cur_cfg(nxt)
    passed(f"cur_cfg caught up with next_cfg {nxt} after add-port")
    eth2 = c.run_until(lambda: (lambda i: i if i is not None and i.ofport == [2]
                                and i.link_state == ["up"] else None)(c.named("Interface", "eth2")),
                       "Interface eth2 ofport 2 and link_state up, written by the switch")
    check(eth2.error == [], f"status from the switch: eth2 ofport={eth2.ofport} "
                            f"link_state={eth2.link_state} error={eth2.error}")
    check(c.named("Port", "eth2").tag == [10], "Port eth2 tag 10 in the replica")

    # 4. A controller: the switch connects and reports it.
    of = OpenFlowPeer()
    target = f"tcp:10.0.2.2:{of.port}"

    def controller(txn):
        b = c.named("Bridge", "br0")
        ctl = txn.insert(c.idl.tables["Controller"])
        ctl.target = target
        b.verify("controller")
        b.controller = [ctl]

    status, nxt, err = c.commit(f"set-controller br0 {target}", controller)
    check(status == ovs.db.idl.Transaction.SUCCESS, f"IDL commit set-controller {target}: {status} {err}")
    c.wait_cur_cfg(nxt)
    ctl = c.run_until(lambda: next((x for x in c.rows("Controller")
                                    if x.target == target and x.is_connected), None),
                      f"Controller {target} is_connected true, written by the switch")
    check(of.hellos >= 1, f"Controller.is_connected {ctl.is_connected} role={ctl.role}; the "
                          f"OpenFlow peer got {of.hellos} HELLO, {of.features_replies} FEATURES_REPLY")

    # 5. A transaction the server must refuse (the IDL checks types and ranges itself, not
    # indexes): a second Port named eth1 (Port's index is its name). Nothing changes.
    before = sorted(p.name for p in c.named("Bridge", "br0").ports)

    def dup(txn):
        b = c.named("Bridge", "br0")
        i = txn.insert(c.idl.tables["Interface"])
        i.name = "dup1"
        p = txn.insert(c.idl.tables["Port"])
        p.name = "eth1"
        p.interfaces = [i]
        b.verify("ports")
        b.ports = list(b.ports) + [p]

    status, _, err = c.commit("a second Port eth1", dup, bump=False)
    check(status == ovs.db.idl.Transaction.ERROR, f"a second Port eth1 refused: {status} ({err})")
    after = sorted(p.name for p in c.named("Bridge", "br0").ports)
    check(before == after and c.named("Interface", "dup1") is None,
          f"nothing changed: br0 ports {after}")
    c.idl.close()
    print("ALL PASSED", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
