//! The OVSDB JSON-RPC server (RFC 7047 §4) over byte streams.
//!
//! A connection carries JSON-RPC 1.0 objects back to back with no delimiter; a small scanner
//! finds where each object ends (any byte split), serde_json parses it. Methods: `list_dbs`,
//! `get_schema`, `transact`, `cancel`, `monitor`, `monitor_cancel` (with `update`
//! notifications), `lock`/`steal`/`unlock` (with `locked`/`stolen`), `echo`.
//! `monitor_cond`, `monitor_cond_since` and the `_Server` database are refused the way
//! Open vSwitch's clients expect from an older server ("unknown method", "unknown
//! database"): ovs-vsctl, ovsdb-client and the IDLs then use `monitor`.
//!
//! Limits: a message may be at most [`MAX_MESSAGE`] bytes; a client whose unread output
//! passes [`MAX_BACKLOG`] is disconnected (a peer that never reads cannot exhaust memory);
//! above [`PAUSE_BACKLOG`] its input is not read.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value, json};

use super::OvsdbError;
use super::db::{Change, Database, Journal, TxnOutcome};

pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
pub const MAX_BACKLOG: usize = 64 * 1024 * 1024;
pub const PAUSE_BACKLOG: usize = 4 * 1024 * 1024;

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub connections: u64,
    pub opened: u64,
    pub requests: u64,
    pub transactions: u64,
    pub commits: u64,
    pub failed_transactions: u64,
    pub rpc_errors: u64,
    pub monitors: u64,
    pub updates_sent: u64,
    pub closed_for_backlog: u64,
}

#[derive(Clone, Debug)]
struct MonTable {
    /// `None`: every column.
    columns: Option<Vec<String>>,
    initial: bool,
    insert: bool,
    delete: bool,
    modify: bool,
}

#[derive(Clone, Debug)]
struct Monitor {
    id: Value,
    tables: BTreeMap<String, MonTable>,
}

#[derive(Debug)]
struct Blocked {
    id: Value,
    ops: Vec<Value>,
    deadline_ms: u64,
}

#[derive(Debug, Default)]
struct Scanner {
    pos: usize,
    depth: usize,
    in_str: bool,
    esc: bool,
}

#[derive(Debug, Default)]
struct Session {
    input: Vec<u8>,
    scan: Scanner,
    out: Vec<u8>,
    head: usize,
    closing: bool,
    monitors: Vec<Monitor>,
    locks: BTreeSet<String>,
    blocked: Vec<Blocked>,
}

impl Session {
    fn backlog(&self) -> usize {
        self.out.len() - self.head
    }

    fn send(&mut self, v: &Value) {
        if self.closing {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(v) {
            if self.head > 0 && self.head == self.out.len() {
                self.out.clear();
                self.head = 0;
            }
            self.out.extend_from_slice(&bytes);
        }
    }

    fn reply(&mut self, id: &Value, result: Value) {
        self.send(&json!({"id": id, "result": result, "error": Value::Null}));
    }

    fn error(&mut self, id: &Value, error: Value) {
        self.send(&json!({"id": id, "result": Value::Null, "error": error}));
    }

    /// The next complete JSON value in the input, if one has arrived.
    fn next_message(&mut self) -> Result<Option<Vec<u8>>, String> {
        let s = &mut self.scan;
        while s.pos < self.input.len() {
            let b = self.input[s.pos];
            s.pos += 1;
            if s.in_str {
                if s.esc {
                    s.esc = false;
                } else if b == b'\\' {
                    s.esc = true;
                } else if b == b'"' {
                    s.in_str = false;
                }
                continue;
            }
            match b {
                b'"' if s.depth > 0 => s.in_str = true,
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' if s.depth > 0 => {
                    s.depth -= 1;
                    if s.depth == 0 {
                        let msg: Vec<u8> = self.input.drain(..s.pos).collect();
                        *s = Scanner::default();
                        return Ok(Some(msg));
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' if s.depth == 0 => {}
                _ if s.depth == 0 => {
                    return Err(format!(
                        "unexpected byte 0x{b:02x} between JSON-RPC messages"
                    ));
                }
                _ => {}
            }
        }
        if s.depth == 0 {
            // Only whitespace so far.
            self.input.clear();
            s.pos = 0;
        }
        if self.input.len() > MAX_MESSAGE {
            return Err(format!("message longer than {MAX_MESSAGE} bytes"));
        }
        Ok(None)
    }
}

#[derive(Debug, Default)]
struct LockState {
    owner: Option<u32>,
    waiters: VecDeque<u32>,
}

/// The server: one database, many sessions.
pub struct OvsdbServer {
    db: Database,
    sessions: BTreeMap<u32, Session>,
    next_id: u32,
    locks: BTreeMap<String, LockState>,
    stats: ServerStats,
}

fn table_update_row(row: &super::Row, cols: &Option<Vec<String>>) -> Value {
    let mut m = Map::new();
    for (c, v) in row.columns() {
        if cols.as_ref().is_none_or(|l| l.contains(c)) {
            m.insert(c.clone(), v.to_json());
        }
    }
    Value::Object(m)
}

impl OvsdbServer {
    pub fn new(db: Database) -> OvsdbServer {
        OvsdbServer {
            db,
            sessions: BTreeMap::new(),
            next_id: 1,
            locks: BTreeMap::new(),
            stats: ServerStats::default(),
        }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The database, for loading at boot (before sessions exist).
    pub fn db_mut(&mut self) -> &mut Database {
        &mut self.db
    }

    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.sessions.len() as u64,
            monitors: self
                .sessions
                .values()
                .map(|s| s.monitors.len() as u64)
                .sum(),
            ..self.stats
        }
    }

    pub fn open(&mut self, _now_ms: u64) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.sessions.insert(id, Session::default());
        self.stats.opened += 1;
        id
    }

    pub fn can_receive(&self, conn: u32) -> bool {
        self.sessions
            .get(&conn)
            .is_some_and(|s| !s.closing && s.backlog() < PAUSE_BACKLOG)
    }

    pub fn pending(&self, conn: u32) -> &[u8] {
        match self.sessions.get(&conn) {
            Some(s) => &s.out[s.head..],
            None => &[],
        }
    }

    pub fn consume(&mut self, conn: u32, n: usize) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.head = (s.head + n).min(s.out.len());
            if s.head == s.out.len() {
                s.out.clear();
                s.head = 0;
            } else if s.head > 64 * 1024 {
                s.out.drain(..s.head);
                s.head = 0;
            }
        }
    }

    pub fn wants_close(&self, conn: u32) -> bool {
        self.sessions.get(&conn).is_none_or(|s| s.closing)
    }

    /// The connection is gone: its monitors, blocked transactions and locks go with it.
    pub fn closed(&mut self, conn: u32) {
        if let Some(s) = self.sessions.remove(&conn) {
            for l in s.locks {
                self.release_lock(&l, conn);
            }
        }
        for l in self.locks.values_mut() {
            l.waiters.retain(|w| *w != conn);
        }
    }

    /// Bytes from connection `conn`: every complete request is handled (replies queued).
    pub fn receive(&mut self, conn: u32, data: &[u8], now_ms: u64, journal: &mut dyn Journal) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.closing {
            return;
        }
        s.input.extend_from_slice(data);
        loop {
            let Some(s) = self.sessions.get_mut(&conn) else {
                return;
            };
            if s.closing {
                return;
            }
            let msg = match s.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    self.stats.rpc_errors += 1;
                    s.error(&Value::Null, OvsdbError::syntax(e).to_json());
                    s.closing = true;
                    return;
                }
            };
            match serde_json::from_slice::<Value>(&msg) {
                Ok(v) => self.handle(conn, v, now_ms, journal),
                Err(e) => {
                    self.stats.rpc_errors += 1;
                    if let Some(s) = self.sessions.get_mut(&conn) {
                        s.error(
                            &Value::Null,
                            OvsdbError::syntax(format!("JSON parse error: {e}")).to_json(),
                        );
                        s.closing = true;
                    }
                    return;
                }
            }
        }
        // (unreachable: the loop returns)
    }

    /// Timers: blocked `wait`s whose deadline passed get "timed out".
    pub fn poll(&mut self, now_ms: u64, journal: &mut dyn Journal) {
        let expired = self
            .sessions
            .values()
            .any(|s| s.blocked.iter().any(|b| b.deadline_ms <= now_ms));
        if expired {
            self.retry_blocked(now_ms, journal);
        }
        let over: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.backlog() > MAX_BACKLOG)
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            if let Some(s) = self.sessions.get_mut(&id) {
                log::warn!("ovsdb: connection {id} does not read its replies: closing");
                s.out.clear();
                s.head = 0;
                s.closing = true;
                self.stats.closed_for_backlog += 1;
            }
        }
    }

    /// A transaction from the switch itself (`params` = `[db, op...]`): the same path as a
    /// client's (journal, monitors, blocked waits). `Ok(result)` when every operation
    /// succeeded.
    pub fn transact_internal(
        &mut self,
        params: Value,
        now_ms: u64,
        journal: &mut dyn Journal,
    ) -> Result<Value, OvsdbError> {
        let ops = match params.as_array() {
            Some(a) if a.first().and_then(|d| d.as_str()) == Some(self.db.name()) => {
                a[1..].to_vec()
            }
            _ => return Err(OvsdbError::syntax("params must be [db, op...]")),
        };
        match self.run_transaction(&ops, now_ms, None, &|_| true, journal) {
            TxnOutcome::Done { result, .. } => {
                if let Some(e) = result
                    .as_array()
                    .and_then(|a| a.iter().find(|r| r.get("error").is_some()))
                {
                    return Err(OvsdbError::new("internal", format!("{}", e)));
                }
                Ok(result)
            }
            TxnOutcome::Blocked { .. } => Err(OvsdbError::new("timed out", "internal wait")),
        }
    }

    fn run_transaction(
        &mut self,
        ops: &[Value],
        now_ms: u64,
        deadline: Option<u64>,
        owns_lock: &dyn Fn(&str) -> bool,
        journal: &mut dyn Journal,
    ) -> TxnOutcome {
        self.stats.transactions += 1;
        let out = self.db.transact(ops, now_ms, deadline, owns_lock, journal);
        if let TxnOutcome::Done { result, changes } = &out {
            if changes.is_empty() {
                if result
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r.get("error").is_some()))
                {
                    self.stats.failed_transactions += 1;
                }
            } else {
                self.stats.commits += 1;
                self.notify(changes);
            }
        }
        out
    }

    fn notify(&mut self, changes: &[Change]) {
        let mut sent = 0;
        for s in self.sessions.values_mut() {
            for m in &s.monitors {
                let mut updates = Map::new();
                for c in changes {
                    let Some(mt) = m.tables.get(&c.table) else {
                        continue;
                    };
                    let upd = match (&c.old, &c.new) {
                        (None, Some(n)) if mt.insert => {
                            json!({"new": table_update_row(n, &mt.columns)})
                        }
                        (Some(o), None) if mt.delete => {
                            json!({"old": table_update_row(o, &mt.columns)})
                        }
                        (Some(o), Some(n)) if mt.modify => {
                            let mut old = Map::new();
                            for (col, v) in o.columns() {
                                if mt.columns.as_ref().is_none_or(|l| l.contains(col))
                                    && n.get(col) != Some(v)
                                {
                                    old.insert(col.clone(), v.to_json());
                                }
                            }
                            if old.is_empty() {
                                continue;
                            }
                            json!({"old": Value::Object(old), "new": table_update_row(n, &mt.columns)})
                        }
                        _ => continue,
                    };
                    let t = updates
                        .entry(c.table.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(t) = t.as_object_mut() {
                        t.insert(c.uuid.to_string(), upd);
                    }
                }
                if !updates.is_empty() {
                    let msg = json!({"id": Value::Null, "method": "update", "params": [m.id, Value::Object(updates)]});
                    if let Ok(bytes) = serde_json::to_vec(&msg)
                        && !s.closing
                    {
                        s.out.extend_from_slice(&bytes);
                        sent += 1;
                    }
                }
            }
        }
        self.stats.updates_sent += sent;
    }

    fn retry_blocked(&mut self, now_ms: u64, journal: &mut dyn Journal) {
        let ids: Vec<u32> = self.sessions.keys().copied().collect();
        for id in ids {
            let blocked = match self.sessions.get_mut(&id) {
                Some(s) if !s.blocked.is_empty() => core::mem::take(&mut s.blocked),
                _ => continue,
            };
            for b in blocked {
                self.transact_for(id, b.id, b.ops, now_ms, Some(b.deadline_ms), journal);
            }
        }
    }

    fn transact_for(
        &mut self,
        conn: u32,
        id: Value,
        ops: Vec<Value>,
        now_ms: u64,
        deadline: Option<u64>,
        journal: &mut dyn Journal,
    ) {
        let locks = self
            .sessions
            .get(&conn)
            .map(|s| s.locks.clone())
            .unwrap_or_default();
        let owns = |l: &str| locks.contains(l);
        match self.run_transaction(&ops, now_ms, deadline, &owns, journal) {
            TxnOutcome::Done { result, changes } => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.reply(&id, result);
                }
                if !changes.is_empty() {
                    self.retry_blocked(now_ms, journal);
                }
            }
            TxnOutcome::Blocked { deadline_ms } => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.blocked.push(Blocked {
                        id,
                        ops,
                        deadline_ms,
                    });
                }
            }
        }
    }

    fn handle(&mut self, conn: u32, msg: Value, now_ms: u64, journal: &mut dyn Journal) {
        self.stats.requests += 1;
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = msg.get("method").and_then(|m| m.as_str()) else {
            if msg.get("result").is_some() || msg.get("error").is_some() {
                return; // a reply (to an echo of ours): nothing to do
            }
            self.stats.rpc_errors += 1;
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.error(
                    &id,
                    OvsdbError::syntax("request without \"method\"").to_json(),
                );
            }
            return;
        };
        let params = match msg.get("params") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                self.stats.rpc_errors += 1;
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.error(
                        &id,
                        OvsdbError::syntax("\"params\" must be an array").to_json(),
                    );
                }
                return;
            }
        };
        let db_name = self.db.name().to_string();
        let check_db = |p: Option<&Value>| -> Result<(), Value> {
            match p.and_then(|d| d.as_str()) {
                Some(n) if n == db_name => Ok(()),
                Some(n) => Err(OvsdbError::new(
                    "unknown database",
                    format!("{n} is not served here"),
                )
                .to_json()),
                None => {
                    Err(OvsdbError::syntax("the first parameter must be a database name").to_json())
                }
            }
        };
        match method {
            "echo" => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.reply(&id, Value::Array(params));
                }
            }
            "list_dbs" => {
                let dbs = json!([db_name]);
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.reply(&id, dbs);
                }
            }
            "get_schema" => {
                let r = check_db(params.first());
                let schema = self.db.schema_json().clone();
                if let Some(s) = self.sessions.get_mut(&conn) {
                    match r {
                        Ok(()) => s.reply(&id, schema),
                        Err(e) => s.error(&id, e),
                    }
                }
            }
            "transact" => {
                if let Err(e) = check_db(params.first()) {
                    if let Some(s) = self.sessions.get_mut(&conn) {
                        s.error(&id, e);
                    }
                    return;
                }
                let ops = params[1..].to_vec();
                self.transact_for(conn, id, ops, now_ms, None, journal);
            }
            "cancel" => {
                let Some(target) = params.first().cloned() else {
                    return;
                };
                if let Some(s) = self.sessions.get_mut(&conn)
                    && let Some(i) = s.blocked.iter().position(|b| b.id == target)
                {
                    let b = s.blocked.remove(i);
                    s.error(&b.id, json!("canceled"));
                }
            }
            "monitor" => self.monitor(conn, id, &params),
            "monitor_cancel" => {
                let Some(s) = self.sessions.get_mut(&conn) else {
                    return;
                };
                let target = params.first().cloned().unwrap_or(Value::Null);
                match s.monitors.iter().position(|m| m.id == target) {
                    Some(i) => {
                        s.monitors.remove(i);
                        s.reply(&id, json!({}));
                    }
                    None => s.error(&id, json!("unknown monitor")),
                }
            }
            "lock" | "steal" | "unlock" => self.lock(conn, id, method, &params),
            _ => {
                // Includes monitor_cond / monitor_cond_since: the clients fall back to
                // `monitor` on exactly this answer.
                if let Some(s) = self.sessions.get_mut(&conn)
                    && !id.is_null()
                {
                    s.error(&id, json!("unknown method"));
                }
            }
        }
    }

    fn monitor(&mut self, conn: u32, id: Value, params: &[Value]) {
        let r = self.build_monitor(params);
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        match r {
            Err(e) => s.error(&id, e.to_json()),
            Ok((m, initial)) => {
                if s.monitors.iter().any(|x| x.id == m.id) {
                    s.error(&id, json!("duplicate monitor ID"));
                    return;
                }
                s.monitors.push(m);
                s.reply(&id, initial);
            }
        }
    }

    fn build_monitor(&self, params: &[Value]) -> Result<(Monitor, Value), OvsdbError> {
        match params.first().and_then(|d| d.as_str()) {
            Some(n) if n == self.db.name() => {}
            Some(n) => return Err(OvsdbError::new("unknown database", n.to_string())),
            None => return Err(OvsdbError::syntax("monitor needs a database name")),
        }
        let mon_id = params.get(1).cloned().unwrap_or(Value::Null);
        let reqs = params
            .get(2)
            .and_then(|r| r.as_object())
            .ok_or_else(|| OvsdbError::syntax("monitor needs monitor requests"))?;
        let mut tables = BTreeMap::new();
        for (t, req) in reqs {
            let ts = self
                .db
                .schema()
                .table(t)
                .ok_or_else(|| OvsdbError::new("syntax error", format!("unknown table {t}")))?;
            let list: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                v => alloc::vec![v],
            };
            let mut mt = MonTable {
                columns: Some(Vec::new()),
                initial: false,
                insert: false,
                delete: false,
                modify: false,
            };
            for r in list {
                let o = r
                    .as_object()
                    .ok_or_else(|| OvsdbError::syntax(format!("monitor request {r}")))?;
                match o.get("columns") {
                    None => mt.columns = None,
                    Some(Value::Array(cols)) => {
                        for c in cols {
                            let c = c
                                .as_str()
                                .ok_or_else(|| OvsdbError::syntax(format!("column {c}")))?;
                            if ts.column(c).is_none() && c != "_version" {
                                return Err(OvsdbError::new(
                                    "syntax error",
                                    format!("unknown column {c} in table {t}"),
                                ));
                            }
                            if let Some(l) = mt.columns.as_mut()
                                && !l.iter().any(|x| x == c)
                            {
                                l.push(c.to_string());
                            }
                        }
                    }
                    Some(v) => return Err(OvsdbError::syntax(format!("columns {v}"))),
                }
                let sel = o.get("select");
                let flag = |n: &str| {
                    sel.and_then(|s| s.get(n))
                        .map(|v| v.as_bool().unwrap_or(false))
                        .unwrap_or(true)
                };
                mt.initial |= flag("initial");
                mt.insert |= flag("insert");
                mt.delete |= flag("delete");
                mt.modify |= flag("modify");
            }
            tables.insert(t.clone(), mt);
        }
        let mut initial = Map::new();
        for (t, mt) in &tables {
            if !mt.initial {
                continue;
            }
            let Some(table) = self.db.table(t) else {
                continue;
            };
            let mut rows = Map::new();
            for (u, r) in table.rows() {
                rows.insert(
                    u.to_string(),
                    json!({"new": table_update_row(r, &mt.columns)}),
                );
            }
            if !rows.is_empty() {
                initial.insert(t.clone(), Value::Object(rows));
            }
        }
        Ok((Monitor { id: mon_id, tables }, Value::Object(initial)))
    }

    fn lock(&mut self, conn: u32, id: Value, method: &str, params: &[Value]) {
        let Some(name) = params
            .first()
            .and_then(|n| n.as_str())
            .map(|s| s.to_string())
        else {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.error(
                    &id,
                    OvsdbError::syntax("lock name must be a string").to_json(),
                );
            }
            return;
        };
        match method {
            "lock" => {
                let st = self.locks.entry(name.clone()).or_default();
                let got = match st.owner {
                    None => {
                        st.owner = Some(conn);
                        true
                    }
                    Some(o) if o == conn => true,
                    Some(_) => {
                        if !st.waiters.contains(&conn) {
                            st.waiters.push_back(conn);
                        }
                        false
                    }
                };
                if let Some(s) = self.sessions.get_mut(&conn) {
                    if got {
                        s.locks.insert(name);
                    }
                    s.reply(&id, json!({"locked": got}));
                }
            }
            "steal" => {
                let st = self.locks.entry(name.clone()).or_default();
                let previous = st.owner.replace(conn);
                st.waiters.retain(|w| *w != conn);
                if let Some(p) = previous.filter(|p| *p != conn)
                    && let Some(ps) = self.sessions.get_mut(&p)
                {
                    ps.locks.remove(&name);
                    ps.send(&json!({"id": Value::Null, "method": "stolen", "params": [name]}));
                    // The previous owner waits for the lock again, as Open vSwitch does.
                    if let Some(st) = self.locks.get_mut(&name) {
                        st.waiters.push_back(p);
                    }
                }
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.locks.insert(name);
                    s.reply(&id, json!({"locked": true}));
                }
            }
            _ => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.locks.remove(&name);
                    s.reply(&id, json!({}));
                }
                self.release_lock(&name, conn);
                if let Some(st) = self.locks.get_mut(&name) {
                    st.waiters.retain(|w| *w != conn);
                }
            }
        }
    }

    fn release_lock(&mut self, name: &str, conn: u32) {
        let Some(st) = self.locks.get_mut(name) else {
            return;
        };
        if st.owner != Some(conn) {
            return;
        }
        st.owner = None;
        while let Some(w) = st.waiters.pop_front() {
            if let Some(ws) = self.sessions.get_mut(&w) {
                st.owner = Some(w);
                ws.locks.insert(name.to_string());
                ws.send(&json!({"id": Value::Null, "method": "locked", "params": [name]}));
                break;
            }
        }
        if st.owner.is_none() && st.waiters.is_empty() {
            self.locks.remove(name);
        }
    }
}
