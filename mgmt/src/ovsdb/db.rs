//! The database and its transactions (RFC 7047 §5.2).
//!
//! A transaction runs against an overlay of the committed tables (rows it inserted, changed or
//! deleted), so an error anywhere drops the overlay and changes nothing. At commit: garbage
//! collection of unreferenced rows of non-root tables, removal of weak references to rows
//! that are gone, referential integrity of strong references, and the constraints (column
//! cardinality, maxRows, indexes) — then the [`Journal`] makes the change durable, and only
//! then does it become visible.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::OvsdbError;
use super::datum::{Atom, Datum, Uuid};
use super::schema::{AtomicType, BaseType, ColumnType, RefType, Schema, TableSchema};

/// Makes committed changes durable (the configuration disk). Called once per transaction
/// with a non-empty [`ChangeSet`], before the change is visible; an error abandons it.
pub trait Journal {
    fn commit(&mut self, changes: &ChangeSet) -> Result<(), String>;
}

/// A journal that keeps nothing (no configuration disk; tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn commit(&mut self, _changes: &ChangeSet) -> Result<(), String> {
        Ok(())
    }
}

/// One row's persisted content after a change (`None`: deleted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub table: String,
    pub uuid: Uuid,
    pub row: Option<Vec<(String, Datum)>>,
}

/// What one transaction changed, as persisted (ephemeral columns are left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub changes: Vec<RowChange>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A row: every column of its table (defaults where never set) and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub version: Uuid,
    cols: BTreeMap<String, Datum>,
}

impl Row {
    /// The value of `column` (`None` for a column the table does not have).
    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.cols.get(column)
    }

    pub fn columns(&self) -> impl Iterator<Item = (&String, &Datum)> {
        self.cols.iter()
    }

    fn new_default(ts: &TableSchema) -> Row {
        Row {
            version: Uuid::default(),
            cols: ts
                .columns
                .values()
                .map(|c| (c.name.clone(), Datum::default_for(&c.ty)))
                .collect(),
        }
    }

    /// The row as JSON (`columns`: those only; `None`: all, with `_uuid` and `_version`).
    pub fn to_json(&self, uuid: &Uuid, columns: Option<&[String]>) -> Value {
        let mut m = Map::new();
        match columns {
            Some(cols) => {
                for c in cols {
                    if let Some(v) = self.special(uuid, c).or_else(|| self.cols.get(c).cloned()) {
                        m.insert(c.clone(), v.to_json());
                    }
                }
            }
            None => {
                m.insert("_uuid".into(), Atom::Uuid(*uuid).to_json());
                m.insert("_version".into(), Atom::Uuid(self.version).to_json());
                for (c, v) in &self.cols {
                    m.insert(c.clone(), v.to_json());
                }
            }
        }
        Value::Object(m)
    }

    fn special(&self, uuid: &Uuid, col: &str) -> Option<Datum> {
        match col {
            "_uuid" => Some(Datum::Set(vec![Atom::Uuid(*uuid)])),
            "_version" => Some(Datum::Set(vec![Atom::Uuid(self.version)])),
            _ => None,
        }
    }

    fn value(&self, uuid: &Uuid, col: &str) -> Option<Datum> {
        self.special(uuid, col)
            .or_else(|| self.cols.get(col).cloned())
    }
}

/// A table's rows.
#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: BTreeMap<Uuid, Row>,
}

impl Table {
    pub fn rows(&self) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.rows.iter()
    }

    pub fn get(&self, uuid: &Uuid) -> Option<&Row> {
        self.rows.get(uuid)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A committed change of one row, for monitors.
#[derive(Clone, Debug)]
pub struct Change {
    pub table: String,
    pub uuid: Uuid,
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// How a transaction ended.
#[derive(Debug)]
pub enum TxnOutcome {
    /// The reply's `result` array, and the committed changes (empty after an error).
    Done { result: Value, changes: Vec<Change> },
    /// A `wait` is not satisfied yet: run the transaction again after a change, or answer
    /// "timed out" at `deadline_ms`.
    Blocked { deadline_ms: u64 },
}

/// A database.
pub struct Database {
    schema: Schema,
    tables: BTreeMap<String, Table>,
    generation: u64,
    rng: u64,
}

fn uuid_type() -> ColumnType {
    ColumnType {
        key: BaseType::from_json(&json!("uuid")).unwrap_or_else(|_| unreachable_base()),
        value: None,
        min: 1,
        max: 1,
    }
}

fn unreachable_base() -> BaseType {
    // `"uuid"` always parses; this keeps the code free of unwrap on a constant.
    BaseType {
        atomic: AtomicType::Uuid,
        enumeration: None,
        min_integer: None,
        max_integer: None,
        min_real: None,
        max_real: None,
        min_length: None,
        max_length: None,
        ref_table: None,
        ref_type: RefType::Strong,
    }
}

fn col_type(ts: &TableSchema, col: &str) -> Result<ColumnType, OvsdbError> {
    match col {
        "_uuid" | "_version" => Ok(uuid_type()),
        _ => ts.column(col).map(|c| c.ty.clone()).ok_or_else(|| {
            OvsdbError::new(
                "syntax error",
                format!("unknown column {col} in table {}", ts.name),
            )
        }),
    }
}

impl Database {
    /// An empty database of `schema`; UUIDs come from a generator seeded with `uuid_seed`.
    pub fn new(schema: Schema, uuid_seed: u64) -> Database {
        let tables = schema
            .tables
            .keys()
            .map(|n| (n.clone(), Table::default()))
            .collect();
        Database {
            schema,
            tables,
            generation: 0,
            rng: uuid_seed | 1,
        }
    }

    pub fn name(&self) -> &str {
        &self.schema.name
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn schema_json(&self) -> &Value {
        &self.schema.json
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Increases with every committed change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn new_uuid(&mut self) -> Uuid {
        let a = self.next_u64().to_be_bytes();
        let b = self.next_u64().to_be_bytes();
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&a);
        u[8..].copy_from_slice(&b);
        u[6] = (u[6] & 0x0f) | 0x40; // version 4
        u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
        Uuid(u)
    }

    /// Replays a persisted change (loading from disk). Unknown tables and columns are
    /// skipped and counted in the error; the rest is applied.
    pub fn apply(&mut self, cs: &ChangeSet) -> Result<(), OvsdbError> {
        let mut skipped = 0;
        for c in &cs.changes {
            let Some(ts) = self.schema.tables.get(&c.table) else {
                skipped += 1;
                continue;
            };
            let mut row = Row::new_default(ts);
            let Some(t) = self.tables.get_mut(&c.table) else {
                skipped += 1;
                continue;
            };
            match &c.row {
                None => {
                    t.rows.remove(&c.uuid);
                }
                Some(cols) => {
                    for (k, v) in cols {
                        match row.cols.get_mut(k) {
                            Some(slot) => *slot = v.clone(),
                            None => skipped += 1,
                        }
                    }
                    row.version = c.uuid;
                    t.rows.insert(c.uuid, row);
                }
            }
        }
        self.generation += 1;
        if skipped > 0 {
            return Err(OvsdbError::new(
                "syntax error",
                format!("{skipped} unknown tables or columns skipped"),
            ));
        }
        Ok(())
    }

    /// Every row with its persisted columns (a compaction snapshot).
    pub fn snapshot(&self) -> ChangeSet {
        let mut cs = ChangeSet::default();
        for (tname, t) in &self.tables {
            let Some(ts) = self.schema.tables.get(tname) else {
                continue;
            };
            for (u, r) in &t.rows {
                cs.changes.push(RowChange {
                    table: tname.clone(),
                    uuid: *u,
                    row: Some(persisted(ts, r)),
                });
            }
        }
        cs
    }

    /// Runs one transaction (`ops`: the operations, without the database name).
    /// `owns_lock` answers `assert`; `journal` makes a commit durable before it is applied.
    pub fn transact(
        &mut self,
        ops: &[Value],
        now_ms: u64,
        deadline_ms: Option<u64>,
        owns_lock: &dyn Fn(&str) -> bool,
        journal: &mut dyn Journal,
    ) -> TxnOutcome {
        // Pre-pass: the UUIDs of named inserts, so references may precede their insert.
        let mut named: BTreeMap<String, Uuid> = BTreeMap::new();
        let mut insert_uuids: Vec<Option<Uuid>> = Vec::with_capacity(ops.len());
        for op in ops {
            let mut this = None;
            if op.get("op").and_then(|o| o.as_str()) == Some("insert") {
                let given = op
                    .get("uuid")
                    .and_then(|u| u.as_str())
                    .and_then(Uuid::parse);
                let u = given.unwrap_or_else(|| self.new_uuid());
                if let Some(n) = op.get("uuid-name").and_then(|n| n.as_str()) {
                    named.entry(n.to_string()).or_insert(u);
                }
                this = Some(u);
            }
            insert_uuids.push(this);
        }
        let mut results: Vec<Value> = Vec::with_capacity(ops.len() + 1);
        let mut txn = Txn {
            db: self,
            over: BTreeMap::new(),
            named,
            defined: BTreeSet::new(),
            refs_touched: false,
            deleted_any: false,
        };
        let mut failed = false;
        let mut blocked = None;
        for (i, op) in ops.iter().enumerate() {
            match txn.execute(op, insert_uuids[i], now_ms, owns_lock) {
                Ok(r) => results.push(r),
                Err(OpError::Blocked(timeout)) => {
                    let deadline = deadline_ms.unwrap_or(now_ms.saturating_add(timeout));
                    if now_ms >= deadline {
                        results.push(OvsdbError::new("timed out", "\"wait\" timed out").to_json());
                        failed = true;
                        break;
                    }
                    blocked = Some(deadline);
                    break;
                }
                Err(OpError::Error(e)) => {
                    results.push(e.to_json());
                    failed = true;
                    break;
                }
            }
        }
        if let Some(deadline_ms) = blocked {
            return TxnOutcome::Blocked { deadline_ms };
        }
        let done = |mut results: Vec<Value>| {
            while results.len() < ops.len() {
                results.push(Value::Null);
            }
            results
        };
        if failed {
            return TxnOutcome::Done {
                result: Value::Array(done(results)),
                changes: Vec::new(),
            };
        }
        let over = match txn.finish() {
            Ok(o) => o,
            Err(e) => {
                let mut r = done(results);
                r.push(e.to_json());
                return TxnOutcome::Done {
                    result: Value::Array(r),
                    changes: Vec::new(),
                };
            }
        };
        // The changes, as monitors see them and as the journal keeps them.
        let mut changes = Vec::new();
        let mut cs = ChangeSet::default();
        for (tname, rows) in over {
            let Some(ts) = self.schema.tables.get(&tname) else {
                continue;
            };
            for (u, new) in rows {
                let old = self
                    .tables
                    .get(&tname)
                    .and_then(|t| t.rows.get(&u))
                    .cloned();
                if old.is_none() && new.is_none() {
                    continue;
                }
                if let (Some(o), Some(n)) = (&old, &new)
                    && o.cols == n.cols
                {
                    continue;
                }
                let durable = match (&old, &new) {
                    (Some(o), Some(n)) => persisted(ts, o) != persisted(ts, n),
                    _ => true,
                };
                if durable {
                    cs.changes.push(RowChange {
                        table: tname.clone(),
                        uuid: u,
                        row: new.as_ref().map(|n| persisted(ts, n)),
                    });
                }
                changes.push(Change {
                    table: tname.clone(),
                    uuid: u,
                    old,
                    new,
                });
            }
        }
        if !cs.is_empty()
            && let Err(e) = journal.commit(&cs)
        {
            let mut r = done(results);
            r.push(OvsdbError::new("I/O error", e).to_json());
            return TxnOutcome::Done {
                result: Value::Array(r),
                changes: Vec::new(),
            };
        }
        for c in &mut changes {
            let fresh = self.new_uuid();
            let t = self.tables.entry(c.table.clone()).or_default();
            match &mut c.new {
                Some(n) => {
                    if c.old.is_some() {
                        n.version = fresh;
                    }
                    t.rows.insert(c.uuid, n.clone());
                }
                None => {
                    t.rows.remove(&c.uuid);
                }
            }
        }
        if !changes.is_empty() {
            self.generation += 1;
        }
        TxnOutcome::Done {
            result: Value::Array(done(results)),
            changes,
        }
    }
}

/// The non-ephemeral columns of a row that differ from their defaults.
fn persisted(ts: &TableSchema, r: &Row) -> Vec<(String, Datum)> {
    r.cols
        .iter()
        .filter(|(c, v)| {
            ts.column(c)
                .is_some_and(|cs| !cs.ephemeral && **v != Datum::default_for(&cs.ty))
        })
        .map(|(c, v)| (c.clone(), v.clone()))
        .collect()
}

enum OpError {
    Error(OvsdbError),
    /// A `wait` that is not satisfied, with its timeout (ms).
    Blocked(u64),
}

impl From<OvsdbError> for OpError {
    fn from(e: OvsdbError) -> Self {
        OpError::Error(e)
    }
}

type Over = BTreeMap<String, BTreeMap<Uuid, Option<Row>>>;

struct Txn<'a> {
    db: &'a mut Database,
    over: Over,
    named: BTreeMap<String, Uuid>,
    /// uuid-names defined by inserts executed so far.
    defined: BTreeSet<String>,
    /// Whether reference columns may have changed (GC and integrity checks needed).
    refs_touched: bool,
    deleted_any: bool,
}

enum Cond {
    Cmp(String, &'static str, Datum),
}

fn str_field<'v>(op: &'v Value, name: &str) -> Result<&'v str, OvsdbError> {
    op.get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| OvsdbError::syntax(format!("operation needs a string \"{name}\": {op}")))
}

impl Txn<'_> {
    fn schema_of(&self, table: &str) -> Result<TableSchema, OvsdbError> {
        self.db
            .schema
            .tables
            .get(table)
            .cloned()
            .ok_or_else(|| OvsdbError::new("syntax error", format!("unknown table {table}")))
    }

    fn get(&self, table: &str, u: &Uuid) -> Option<&Row> {
        if let Some(v) = self.over.get(table).and_then(|t| t.get(u)) {
            return v.as_ref();
        }
        self.db.tables.get(table).and_then(|t| t.rows.get(u))
    }

    fn uuids(&self, table: &str) -> Vec<Uuid> {
        let mut out: BTreeSet<Uuid> = self
            .db
            .tables
            .get(table)
            .map(|t| t.rows.keys().copied().collect())
            .unwrap_or_default();
        if let Some(o) = self.over.get(table) {
            for (u, r) in o {
                if r.is_some() {
                    out.insert(*u);
                } else {
                    out.remove(u);
                }
            }
        }
        out.into_iter().collect()
    }

    fn put(&mut self, table: &str, u: Uuid, row: Option<Row>) {
        self.over
            .entry(table.to_string())
            .or_default()
            .insert(u, row);
    }

    fn named_fn(&self) -> impl Fn(&str) -> Option<Uuid> + '_ {
        |n: &str| self.named.get(n).copied()
    }

    fn parse_row(&self, ts: &TableSchema, v: &Value) -> Result<Vec<(String, Datum)>, OvsdbError> {
        let o = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax(format!("\"row\" must be an object: {v}")))?;
        let named = self.named_fn();
        let mut out = Vec::with_capacity(o.len());
        for (c, j) in o {
            let cs = ts.column(c).ok_or_else(|| {
                OvsdbError::new(
                    "syntax error",
                    format!("unknown column {c} in table {}", ts.name),
                )
            })?;
            let d = Datum::from_json(j, &cs.ty, &named)?;
            out.push((c.clone(), d));
        }
        Ok(out)
    }

    fn parse_where(&self, ts: &TableSchema, v: Option<&Value>) -> Result<Vec<Cond>, OvsdbError> {
        let Some(v) = v else {
            return Err(OvsdbError::syntax("operation needs \"where\""));
        };
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax(format!("\"where\" must be an array: {v}")))?;
        let named = self.named_fn();
        let mut out = Vec::new();
        for c in arr {
            let t = c.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
                OvsdbError::syntax(format!("condition must be [column, function, value]: {c}"))
            })?;
            let col = t[0]
                .as_str()
                .ok_or_else(|| OvsdbError::syntax(format!("{c}")))?;
            let f = match t[1].as_str() {
                Some("==") => "==",
                Some("!=") => "!=",
                Some("<") => "<",
                Some("<=") => "<=",
                Some(">") => ">",
                Some(">=") => ">=",
                Some("includes") => "includes",
                Some("excludes") => "excludes",
                _ => return Err(OvsdbError::syntax(format!("unknown function in {c}"))),
            };
            let mut ty = col_type(ts, col)?;
            if matches!(f, "includes" | "excludes" | "==" | "!=") {
                ty.min = 0;
                ty.max = u64::MAX;
            } else if !(ty.min <= 1
                && ty.max == 1
                && matches!(ty.key.atomic, AtomicType::Integer | AtomicType::Real)
                && ty.value.is_none())
            {
                return Err(OvsdbError::syntax(format!(
                    "{f} only applies to integer and real columns: {c}"
                )));
            }
            // Conditions compare values: no enum/range checks on them.
            strip_constraints(&mut ty);
            let d = Datum::from_json(&t[2], &ty, &named)?;
            out.push(Cond::Cmp(col.to_string(), f, d));
        }
        Ok(out)
    }

    fn matches(&self, u: &Uuid, row: &Row, conds: &[Cond]) -> bool {
        conds.iter().all(|Cond::Cmp(col, f, want)| {
            let Some(have) = row.value(u, col) else {
                return false;
            };
            match *f {
                "==" => have == *want,
                "!=" => have != *want,
                "includes" => have.includes(want),
                "excludes" => have.excludes(want),
                _ => {
                    let (Some(a), Some(b)) = (
                        have.atoms().first().and_then(|a| a.as_real()),
                        want.atoms().first().and_then(|a| a.as_real()),
                    ) else {
                        return false;
                    };
                    match *f {
                        "<" => a < b,
                        "<=" => a <= b,
                        ">" => a > b,
                        _ => a >= b,
                    }
                }
            }
        })
    }

    fn selected(&self, table: &str, conds: &[Cond]) -> Vec<Uuid> {
        self.uuids(table)
            .into_iter()
            .filter(|u| {
                self.get(table, u)
                    .is_some_and(|r| self.matches(u, r, conds))
            })
            .collect()
    }

    fn columns(&self, ts: &TableSchema, op: &Value) -> Result<Option<Vec<String>>, OvsdbError> {
        let Some(c) = op.get("columns") else {
            return Ok(None);
        };
        let arr = c
            .as_array()
            .ok_or_else(|| OvsdbError::syntax(format!("\"columns\" must be an array: {c}")))?;
        let mut out = Vec::new();
        for x in arr {
            let n = x
                .as_str()
                .ok_or_else(|| OvsdbError::syntax(format!("{x}")))?;
            col_type(ts, n)?;
            out.push(n.to_string());
        }
        Ok(Some(out))
    }

    fn check_mutable(ts: &TableSchema, col: &str) -> Result<(), OvsdbError> {
        if col.starts_with('_') {
            return Err(OvsdbError::new(
                "constraint violation",
                format!("cannot modify column {col}"),
            ));
        }
        if ts.column(col).is_some_and(|c| !c.mutable) {
            return Err(OvsdbError::new(
                "constraint violation",
                format!("cannot modify immutable column {col} in table {}", ts.name),
            ));
        }
        Ok(())
    }

    fn note_refs(&mut self, ts: &TableSchema, cols: impl Iterator<Item = String>) {
        for c in cols {
            if ts
                .column(&c)
                .is_some_and(|cs| cs.ty.refs().next().is_some())
            {
                self.refs_touched = true;
            }
        }
    }

    fn execute(
        &mut self,
        op: &Value,
        insert_uuid: Option<Uuid>,
        now_ms: u64,
        owns_lock: &dyn Fn(&str) -> bool,
    ) -> Result<Value, OpError> {
        let _ = now_ms;
        let kind = str_field(op, "op")?;
        match kind {
            "insert" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let u = insert_uuid.ok_or_else(|| OvsdbError::syntax("insert without uuid"))?;
                if let Some(n) = op.get("uuid-name") {
                    let n = n.as_str().ok_or_else(|| {
                        OvsdbError::syntax(format!("uuid-name must be a string: {n}"))
                    })?;
                    if !self.defined.insert(n.to_string()) {
                        return Err(OvsdbError::new(
                            "duplicate uuid-name",
                            format!("uuid-name {n} is used twice"),
                        )
                        .into());
                    }
                }
                if self.get(table, &u).is_some()
                    || self.db.tables.values().any(|t| t.rows.contains_key(&u))
                {
                    return Err(OvsdbError::new(
                        "duplicate uuid",
                        format!("row {u} already exists"),
                    )
                    .into());
                }
                let mut row = Row::new_default(&ts);
                row.version = self.db.new_uuid();
                if let Some(rj) = op.get("row") {
                    let vals = self.parse_row(&ts, rj)?;
                    for (c, d) in vals {
                        row.cols.insert(c, d);
                    }
                }
                if ts.columns.values().any(|c| c.ty.refs().next().is_some()) || !ts.is_root {
                    self.refs_touched = true;
                }
                self.put(table, u, Some(row));
                Ok(json!({"uuid": ["uuid", u.to_string()]}))
            }
            "select" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let conds = self.parse_where(&ts, op.get("where"))?;
                let cols = self.columns(&ts, op)?;
                let rows: Vec<Value> = self
                    .selected(table, &conds)
                    .iter()
                    .filter_map(|u| self.get(table, u).map(|r| r.to_json(u, cols.as_deref())))
                    .collect();
                Ok(json!({ "rows": rows }))
            }
            "update" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let conds = self.parse_where(&ts, op.get("where"))?;
                let rj = op
                    .get("row")
                    .ok_or_else(|| OvsdbError::syntax("update needs \"row\""))?;
                let vals = self.parse_row(&ts, rj)?;
                for (c, _) in &vals {
                    Self::check_mutable(&ts, c)?;
                }
                self.note_refs(&ts, vals.iter().map(|(c, _)| c.clone()));
                let sel = self.selected(table, &conds);
                for u in &sel {
                    if let Some(mut r) = self.get(table, u).cloned() {
                        for (c, d) in &vals {
                            r.cols.insert(c.clone(), d.clone());
                        }
                        self.put(table, *u, Some(r));
                    }
                }
                Ok(json!({ "count": sel.len() }))
            }
            "mutate" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let conds = self.parse_where(&ts, op.get("where"))?;
                let muts = op
                    .get("mutations")
                    .and_then(|m| m.as_array())
                    .ok_or_else(|| OvsdbError::syntax("mutate needs \"mutations\""))?;
                let mut parsed = Vec::new();
                let named = self.named_fn();
                for m in muts {
                    let t = m.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
                        OvsdbError::syntax(format!(
                            "mutation must be [column, mutator, value]: {m}"
                        ))
                    })?;
                    let col = t[0]
                        .as_str()
                        .ok_or_else(|| OvsdbError::syntax(format!("{m}")))?;
                    let cs = ts.column(col).ok_or_else(|| {
                        OvsdbError::new("syntax error", format!("unknown column {col}"))
                    })?;
                    let mutator = t[1]
                        .as_str()
                        .ok_or_else(|| OvsdbError::syntax(format!("{m}")))?;
                    let ty = &cs.ty;
                    let arg = match mutator {
                        "+=" | "-=" | "*=" | "/=" | "%=" => {
                            if ty.is_map()
                                || !matches!(ty.key.atomic, AtomicType::Integer | AtomicType::Real)
                                || (mutator == "%=" && ty.key.atomic != AtomicType::Integer)
                            {
                                return Err(OvsdbError::syntax(format!(
                                    "{mutator} does not apply to column {col}"
                                ))
                                .into());
                            }
                            let mut scalar = ty.clone();
                            strip_constraints(&mut scalar);
                            scalar.min = 1;
                            scalar.max = 1;
                            Datum::from_json(&t[2], &scalar, &named)?
                        }
                        "insert" => {
                            let mut any = ty.clone();
                            any.min = 0;
                            any.max = u64::MAX;
                            Datum::from_json(&t[2], &any, &named)?
                        }
                        "delete" => {
                            let mut any = ty.clone();
                            any.min = 0;
                            any.max = u64::MAX;
                            strip_constraints(&mut any);
                            match Datum::from_json(&t[2], &any, &named) {
                                Ok(d) => d,
                                Err(e) if ty.is_map() => {
                                    // A set of keys deletes those keys.
                                    let keys = ColumnType {
                                        key: any.key.clone(),
                                        value: None,
                                        min: 0,
                                        max: u64::MAX,
                                    };
                                    Datum::from_json(&t[2], &keys, &named).map_err(|_| e)?
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        _ => {
                            return Err(
                                OvsdbError::syntax(format!("unknown mutator {mutator}")).into()
                            );
                        }
                    };
                    Self::check_mutable(&ts, col)?;
                    parsed.push((col.to_string(), mutator.to_string(), arg));
                }
                drop(named);
                self.note_refs(&ts, parsed.iter().map(|(c, _, _)| c.clone()));
                let sel = self.selected(table, &conds);
                for u in &sel {
                    let Some(mut r) = self.get(table, u).cloned() else {
                        continue;
                    };
                    for (col, mutator, arg) in &parsed {
                        let Some(cs) = ts.column(col) else { continue };
                        let Some(cur) = r.cols.get_mut(col) else {
                            continue;
                        };
                        match mutator.as_str() {
                            "insert" => cur.insert_all(arg),
                            "delete" => cur.delete_all(arg),
                            m => arith(cur, m, arg, &cs.ty.key)?,
                        }
                    }
                    self.put(table, *u, Some(r));
                }
                Ok(json!({ "count": sel.len() }))
            }
            "delete" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let conds = self.parse_where(&ts, op.get("where"))?;
                let sel = self.selected(table, &conds);
                for u in &sel {
                    self.put(table, *u, None);
                }
                if !sel.is_empty() {
                    self.refs_touched = true;
                    self.deleted_any = true;
                }
                Ok(json!({ "count": sel.len() }))
            }
            "wait" => {
                let table = str_field(op, "table")?;
                let ts = self.schema_of(table)?;
                let conds = self.parse_where(&ts, op.get("where"))?;
                let cols = self
                    .columns(&ts, op)?
                    .ok_or_else(|| OvsdbError::syntax("wait needs \"columns\""))?;
                let until = str_field(op, "until")?;
                if until != "==" && until != "!=" {
                    return Err(OvsdbError::syntax(format!("wait: bad \"until\" {until}")).into());
                }
                let rows = op
                    .get("rows")
                    .and_then(|r| r.as_array())
                    .ok_or_else(|| OvsdbError::syntax("wait needs \"rows\""))?;
                let named = self.named_fn();
                let mut want: Vec<Vec<Datum>> = Vec::new();
                for r in rows {
                    let o = r
                        .as_object()
                        .ok_or_else(|| OvsdbError::syntax(format!("wait: row {r}")))?;
                    let mut vals = Vec::new();
                    for c in &cols {
                        let mut ty = col_type(&ts, c)?;
                        strip_constraints(&mut ty);
                        let v = o.get(c).ok_or_else(|| {
                            OvsdbError::syntax(format!("wait: row lacks column {c}"))
                        })?;
                        vals.push(Datum::from_json(v, &ty, &named)?);
                    }
                    want.push(vals);
                }
                drop(named);
                let mut have: Vec<Vec<Datum>> = self
                    .selected(table, &conds)
                    .iter()
                    .filter_map(|u| {
                        let r = self.get(table, u)?;
                        Some(cols.iter().filter_map(|c| r.value(u, c)).collect())
                    })
                    .collect();
                have.sort_by_key(|v| format!("{v:?}"));
                want.sort_by_key(|v| format!("{v:?}"));
                let equal = have == want;
                if equal == (until == "==") {
                    return Ok(json!({}));
                }
                let timeout = match op.get("timeout") {
                    None => u64::MAX / 4,
                    Some(t) => t
                        .as_u64()
                        .ok_or_else(|| OvsdbError::syntax(format!("wait: bad timeout {t}")))?,
                };
                if timeout == 0 {
                    return Err(OvsdbError::new("timed out", "\"wait\" timed out").into());
                }
                Err(OpError::Blocked(timeout))
            }
            "commit" => {
                match op.get("durable") {
                    Some(Value::Bool(_)) => {}
                    _ => {
                        return Err(OvsdbError::syntax("commit needs a boolean \"durable\"").into());
                    }
                }
                // Every commit is durable here: the journal flushes before the reply.
                Ok(json!({}))
            }
            "abort" => Err(OvsdbError::new("aborted", "aborted by request").into()),
            "comment" => {
                str_field(op, "comment")?;
                Ok(json!({}))
            }
            "assert" => {
                let lock = str_field(op, "lock")?;
                if owns_lock(lock) {
                    Ok(json!({}))
                } else {
                    Err(OvsdbError::new("not owner", format!("lock {lock} is not owned")).into())
                }
            }
            other => Err(OvsdbError::syntax(format!("unknown operation {other}")).into()),
        }
    }

    /// Commit-time work: GC, weak references, integrity, constraints. Returns the overlay.
    fn finish(mut self) -> Result<Over, OvsdbError> {
        let schema = self.db.schema.clone();
        if self.refs_touched {
            // Rows this transaction wrote may not refer to rows that do not exist, even if
            // they are about to be collected (as Open vSwitch checks before collecting).
            for (tname, rows) in &self.over {
                let Some(ts) = schema.tables.get(tname) else {
                    continue;
                };
                for r in rows.values().flatten() {
                    let mut refs = BTreeSet::new();
                    for (c, cs) in &ts.columns {
                        if let Some(d) = r.get(c) {
                            collect_refs(d, &cs.ty, RefType::Strong, &mut refs);
                        }
                    }
                    for (t, u) in &refs {
                        if self.get(t, u).is_none() {
                            return Err(OvsdbError::new(
                                "referential integrity violation",
                                format!(
                                    "table {tname} refers to row {u} that does not exist in table {t}"
                                ),
                            ));
                        }
                    }
                }
            }
            // Garbage collection to a fixed point.
            loop {
                let mut referenced: BTreeSet<(String, Uuid)> = BTreeSet::new();
                for (tname, ts) in &schema.tables {
                    let ref_cols: Vec<(&String, &ColumnType)> = ts
                        .columns
                        .iter()
                        .filter(|(_, c)| c.ty.refs().any(|(_, k, _)| k == RefType::Strong))
                        .map(|(n, c)| (n, &c.ty))
                        .collect();
                    if ref_cols.is_empty() {
                        continue;
                    }
                    for u in self.uuids(tname) {
                        let Some(r) = self.get(tname, &u) else {
                            continue;
                        };
                        for (c, ty) in &ref_cols {
                            if let Some(d) = r.get(c) {
                                collect_refs(d, ty, RefType::Strong, &mut referenced);
                            }
                        }
                    }
                }
                let mut garbage = Vec::new();
                for (tname, ts) in &schema.tables {
                    if ts.is_root {
                        continue;
                    }
                    for u in self.uuids(tname) {
                        if !referenced.contains(&(tname.clone(), u)) {
                            garbage.push((tname.clone(), u));
                        }
                    }
                }
                if garbage.is_empty() {
                    // Integrity: every strong reference names an existing row.
                    for (t, u) in &referenced {
                        if self.get(t, u).is_none() {
                            return Err(OvsdbError::new(
                                "referential integrity violation",
                                format!("reference to a row {u} that does not exist in table {t}"),
                            ));
                        }
                    }
                    break;
                }
                for (t, u) in garbage {
                    self.put(&t, u, None);
                    self.deleted_any = true;
                }
            }
        }
        if self.deleted_any {
            // Weak references to rows that are gone disappear.
            for (tname, ts) in &schema.tables {
                let weak: Vec<(&String, &ColumnType)> = ts
                    .columns
                    .iter()
                    .filter(|(_, c)| c.ty.refs().any(|(_, k, _)| k == RefType::Weak))
                    .map(|(n, c)| (n, &c.ty))
                    .collect();
                if weak.is_empty() {
                    continue;
                }
                for u in self.uuids(tname) {
                    let Some(r) = self.get(tname, &u) else {
                        continue;
                    };
                    let mut fixed = r.clone();
                    let mut changed = false;
                    for (c, ty) in &weak {
                        if let Some(d) = fixed.cols.get_mut(*c) {
                            changed |= self_drop_dangling(d, ty, &|t, x| self.get(t, x).is_some());
                        }
                    }
                    if changed {
                        self.put(tname, u, Some(fixed));
                    }
                }
            }
        }
        // Constraints on changed rows and tables.
        for (tname, rows) in &self.over {
            let Some(ts) = schema.tables.get(tname) else {
                continue;
            };
            for (u, r) in rows {
                let Some(r) = r else { continue };
                for (c, cs) in &ts.columns {
                    if let Some(d) = r.get(c) {
                        d.check_cardinality(&cs.ty, &format!("{tname} {u} column {c}"))?;
                    }
                }
            }
            let n = self.uuids(tname).len() as u64;
            if let Some(max) = ts.max_rows
                && n > max
            {
                return Err(OvsdbError::new(
                    "constraint violation",
                    format!(
                        "transaction causes \"{tname}\" table to contain {n} rows, greater than the schema-defined limit of {max} row(s)"
                    ),
                ));
            }
            for index in &ts.indexes {
                let mut seen: BTreeMap<Vec<Datum>, Uuid> = BTreeMap::new();
                for u in self.uuids(tname) {
                    let Some(r) = self.get(tname, &u) else {
                        continue;
                    };
                    let key: Vec<Datum> = index.iter().filter_map(|c| r.get(c).cloned()).collect();
                    if let Some(other) = seen.insert(key, u) {
                        return Err(OvsdbError::new(
                            "constraint violation",
                            format!(
                                "transaction causes rows {other} and {u} in table {tname} to have identical values for the index ({})",
                                index.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(self.over)
    }
}

fn strip_constraints(ty: &mut ColumnType) {
    for b in core::iter::once(&mut ty.key).chain(ty.value.as_mut()) {
        b.enumeration = None;
        b.min_integer = None;
        b.max_integer = None;
        b.min_real = None;
        b.max_real = None;
        b.min_length = None;
        b.max_length = None;
    }
}

fn collect_refs(d: &Datum, ty: &ColumnType, kind: RefType, out: &mut BTreeSet<(String, Uuid)>) {
    let key = ty
        .key
        .ref_table
        .as_ref()
        .filter(|_| ty.key.atomic == AtomicType::Uuid && ty.key.ref_type == kind);
    let val = ty.value.as_ref().and_then(|v| {
        v.ref_table
            .as_ref()
            .filter(|_| v.atomic == AtomicType::Uuid && v.ref_type == kind)
    });
    d.for_each_atom(|a, is_key| {
        let t = if is_key { key } else { val };
        if let (Some(t), Some(u)) = (t, a.as_uuid()) {
            out.insert((t.clone(), u));
        }
    });
}

/// Removes weak references to rows that do not exist; true if something was removed.
fn self_drop_dangling(
    d: &mut Datum,
    ty: &ColumnType,
    exists: &dyn Fn(&str, &Uuid) -> bool,
) -> bool {
    let weak = |b: &BaseType| {
        b.ref_table
            .clone()
            .filter(|_| b.atomic == AtomicType::Uuid && b.ref_type == RefType::Weak)
    };
    let (kt, vt) = (weak(&ty.key), ty.value.as_ref().and_then(weak));
    let ok = |t: &Option<String>, a: &Atom| match (t, a.as_uuid()) {
        (Some(t), Some(u)) => exists(t, &u),
        _ => true,
    };
    let before = d.len();
    match d {
        Datum::Set(s) => s.retain(|a| ok(&kt, a)),
        Datum::Map(m) => m.retain(|(k, v)| ok(&kt, k) && ok(&vt, v)),
    }
    d.len() != before
}

fn arith(cur: &mut Datum, m: &str, arg: &Datum, base: &BaseType) -> Result<(), OvsdbError> {
    let Datum::Set(atoms) = cur else {
        return Ok(());
    };
    let Some(a) = arg.atoms().into_iter().next() else {
        return Ok(());
    };
    for x in atoms.iter_mut() {
        let r = match (&*x, &a) {
            (Atom::Integer(v), Atom::Integer(n)) => {
                let v = *v;
                let n = *n;
                let r = match m {
                    "+=" => v.checked_add(n),
                    "-=" => v.checked_sub(n),
                    "*=" => v.checked_mul(n),
                    "/=" | "%=" if n == 0 => {
                        return Err(OvsdbError::new("domain error", "division by zero"));
                    }
                    "/=" => v.checked_div(n),
                    _ => v.checked_rem(n),
                };
                Atom::Integer(r.ok_or_else(|| OvsdbError::new("range error", "integer overflow"))?)
            }
            (Atom::Real(v), b) => {
                let n = b.as_real().unwrap_or(0.0);
                let r = match m {
                    "+=" => v + n,
                    "-=" => v - n,
                    "*=" => v * n,
                    _ if n == 0.0 => {
                        return Err(OvsdbError::new("domain error", "division by zero"));
                    }
                    _ => v / n,
                };
                if !r.is_finite() {
                    return Err(OvsdbError::new("range error", "result is not finite"));
                }
                Atom::Real(r)
            }
            _ => return Err(OvsdbError::syntax("arithmetic on a non-number")),
        };
        base.check(&r)
            .map_err(|e| OvsdbError::new("range error", e.details))?;
        *x = r;
    }
    atoms.sort();
    let n = atoms.len();
    atoms.dedup();
    if atoms.len() != n {
        return Err(OvsdbError::new(
            "constraint violation",
            "mutation produced duplicate set values",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"name":"T","version":"1.0.0","tables":{
      "Root":{"isRoot":true,"maxRows":2,"columns":{
        "name":{"type":"string"},
        "kids":{"type":{"key":{"type":"uuid","refTable":"Kid"},"min":0,"max":"unlimited"}},
        "fav":{"type":{"key":{"type":"uuid","refTable":"Kid","refType":"weak"},"min":0,"max":1}},
        "n":{"type":{"key":{"type":"integer","minInteger":0,"maxInteger":100}}},
        "fixed":{"type":"string","mutable":false},
        "tmp":{"type":"string","ephemeral":true}},"indexes":[["name"]]},
      "Kid":{"columns":{"name":{"type":"string"}}}}}"#;

    fn db() -> Database {
        Database::new(Schema::from_json(SCHEMA).unwrap(), 1)
    }

    struct Rec(Vec<ChangeSet>);
    impl Journal for Rec {
        fn commit(&mut self, c: &ChangeSet) -> Result<(), String> {
            self.0.push(c.clone());
            Ok(())
        }
    }

    fn tx(db: &mut Database, ops: Value) -> Value {
        tx_j(db, ops, &mut NoJournal)
    }

    fn tx_j(db: &mut Database, ops: Value, j: &mut dyn Journal) -> Value {
        match db.transact(ops.as_array().unwrap(), 0, None, &|_| false, j) {
            TxnOutcome::Done { result, .. } => result,
            TxnOutcome::Blocked { .. } => panic!("blocked"),
        }
    }

    fn err(r: &Value) -> Option<String> {
        r.as_array()?.iter().find_map(|x| {
            x.get("error")
                .and_then(|e| e.as_str())
                .map(|s| s.to_string())
        })
    }

    #[test]
    fn gc_weak_refs_constraints_atomicity() {
        let mut d = db();
        let r = tx(
            &mut d,
            json!([
                {"op":"insert","table":"Kid","uuid-name":"k1","row":{"name":"a"}},
                {"op":"insert","table":"Kid","uuid-name":"k2","row":{"name":"b"}},
                {"op":"insert","table":"Root","row":{"name":"r","n":1,"fixed":"x",
                  "kids":["set",[["named-uuid","k1"],["named-uuid","k2"]]],"fav":["named-uuid","k2"]}}
            ]),
        );
        assert_eq!(err(&r), None, "{r}");
        assert_eq!(d.table("Kid").unwrap().len(), 2);
        // An unreferenced Kid is collected at once.
        tx(
            &mut d,
            json!([{"op":"insert","table":"Kid","row":{"name":"orphan"}}]),
        );
        assert_eq!(d.table("Kid").unwrap().len(), 2);
        // Dropping k2 from kids collects it and clears the weak `fav`.
        let b = d
            .table("Kid")
            .unwrap()
            .rows()
            .find(|(_, r)| r.get("name").unwrap().as_str() == Some("b"))
            .unwrap()
            .0
            .to_string();
        let r = tx(
            &mut d,
            json!([{"op":"mutate","table":"Root","where":[],"mutations":[
                ["kids","delete",["set",[["uuid", b]]]]]}]),
        );
        assert_eq!(err(&r), None, "{r}");
        let root = d.table("Root").unwrap().rows().next().unwrap().1.clone();
        assert!(root.get("fav").unwrap().is_empty());
        assert_eq!(d.table("Kid").unwrap().len(), 1);
        // Strong ref to a deleted row: error, nothing changes.
        let g = d.generation();
        let r = tx(&mut d, json!([{"op":"delete","table":"Kid","where":[]}]));
        assert_eq!(
            err(&r).as_deref(),
            Some("referential integrity violation"),
            "{r}"
        );
        assert_eq!(d.generation(), g);
        // Ranges, immutable columns, indexes, maxRows, arithmetic.
        let r = tx(
            &mut d,
            json!([{"op":"mutate","table":"Root","where":[],"mutations":[["n","+=",200]]}]),
        );
        assert_eq!(err(&r).as_deref(), Some("range error"), "{r}");
        let r = tx(
            &mut d,
            json!([{"op":"update","table":"Root","where":[],"row":{"fixed":"y"}}]),
        );
        assert_eq!(err(&r).as_deref(), Some("constraint violation"), "{r}");
        let r = tx(
            &mut d,
            json!([{"op":"insert","table":"Root","row":{"name":"r"}}]),
        );
        assert_eq!(
            err(&r).as_deref(),
            Some("constraint violation"),
            "index: {r}"
        );
        let r = tx(
            &mut d,
            json!([{"op":"insert","table":"Root","row":{"name":"s"}},{"op":"insert","table":"Root","row":{"name":"t"}}]),
        );
        assert_eq!(
            err(&r).as_deref(),
            Some("constraint violation"),
            "maxRows: {r}"
        );
        assert_eq!(
            r.as_array().unwrap().len(),
            3,
            "one more element than ops: {r}"
        );
        let r = tx(
            &mut d,
            json!([{"op":"mutate","table":"Root","where":[],"mutations":[["n","*=",7]]},{"op":"select","table":"Root","where":[["n",">=",7]],"columns":["n"]}]),
        );
        assert_eq!(r[1]["rows"][0]["n"], json!(7), "{r}");
        // Failure mid-transaction: earlier ops are undone, later ones are null.
        let r = tx(
            &mut d,
            json!([{"op":"update","table":"Root","where":[],"row":{"n":9}},{"op":"abort"},{"op":"comment","comment":"x"}]),
        );
        assert_eq!(r[1]["error"], json!("aborted"));
        assert_eq!(r[2], Value::Null);
        assert_eq!(
            d.table("Root")
                .unwrap()
                .rows()
                .next()
                .unwrap()
                .1
                .get("n")
                .unwrap()
                .as_integer(),
            Some(7)
        );
    }

    #[test]
    fn journal_gets_durable_columns_and_replay_restores() {
        let mut d = db();
        let mut j = Rec(Vec::new());
        tx_j(
            &mut d,
            json!([{"op":"insert","table":"Root","row":{"name":"r","tmp":"eph"}}]),
            &mut j,
        );
        tx_j(
            &mut d,
            json!([{"op":"update","table":"Root","where":[],"row":{"tmp":"other"}}]),
            &mut j,
        );
        assert_eq!(j.0.len(), 1, "an ephemeral-only change is not journaled");
        assert!(
            j.0[0].changes[0]
                .row
                .as_ref()
                .unwrap()
                .iter()
                .all(|(c, _)| c != "tmp")
        );
        tx_j(
            &mut d,
            json!([{"op":"update","table":"Root","where":[],"row":{"n":5}}]),
            &mut j,
        );
        let mut e = db();
        for c in &j.0 {
            e.apply(c).unwrap();
        }
        let (u1, r1) = d.table("Root").unwrap().rows().next().unwrap();
        let (u2, r2) = e.table("Root").unwrap().rows().next().unwrap();
        assert_eq!((u1, r1.get("n")), (u2, r2.get("n")));
        let mut f = db();
        f.apply(&d.snapshot()).unwrap();
        assert_eq!(
            f.table("Root")
                .unwrap()
                .rows()
                .next()
                .unwrap()
                .1
                .get("name"),
            r1.get("name")
        );
        // A failing journal abandons the transaction.
        struct Fail;
        impl Journal for Fail {
            fn commit(&mut self, _: &ChangeSet) -> Result<(), String> {
                Err("disk gone".into())
            }
        }
        let r = tx_j(
            &mut d,
            json!([{"op":"update","table":"Root","where":[],"row":{"n":6}}]),
            &mut Fail,
        );
        assert_eq!(err(&r).as_deref(), Some("I/O error"));
        assert_eq!(
            d.table("Root")
                .unwrap()
                .rows()
                .next()
                .unwrap()
                .1
                .get("n")
                .unwrap()
                .as_integer(),
            Some(5)
        );
    }

    #[test]
    fn waits_block_and_time_out() {
        let mut d = db();
        let ops = json!([{"op":"wait","table":"Root","where":[],"columns":["name"],"until":"==","rows":[{"name":"x"}],"timeout":100}]);
        match d.transact(ops.as_array().unwrap(), 0, None, &|_| false, &mut NoJournal) {
            TxnOutcome::Blocked { deadline_ms } => assert_eq!(deadline_ms, 100),
            o => panic!("{o:?}"),
        }
        match d.transact(
            ops.as_array().unwrap(),
            100,
            Some(100),
            &|_| false,
            &mut NoJournal,
        ) {
            TxnOutcome::Done { result, .. } => assert_eq!(result[0]["error"], json!("timed out")),
            o => panic!("{o:?}"),
        }
        tx(
            &mut d,
            json!([{"op":"insert","table":"Root","row":{"name":"x"}}]),
        );
        match d.transact(
            ops.as_array().unwrap(),
            50,
            Some(100),
            &|_| false,
            &mut NoJournal,
        ) {
            TxnOutcome::Done { result, .. } => assert_eq!(result[0], json!({})),
            o => panic!("{o:?}"),
        }
    }
}
