//! Database schemas (RFC 7047 §3.2): tables, columns and their types, loaded from the JSON
//! schema of any database.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

use super::OvsdbError;
use super::datum::{Atom, Datum};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    pub fn from_name(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefType {
    Strong,
    Weak,
}

/// A key or value type with its constraints.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    pub enumeration: Option<Vec<Atom>>,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    pub min_real: Option<f64>,
    pub max_real: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub ref_table: Option<String>,
    pub ref_type: RefType,
}

fn syntax(what: &str, v: &Value) -> OvsdbError {
    OvsdbError::syntax(format!("schema: {what}: {v}"))
}

impl BaseType {
    fn simple(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
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

    pub fn from_json(v: &Value) -> Result<BaseType, OvsdbError> {
        if let Some(s) = v.as_str() {
            return AtomicType::from_name(s)
                .map(BaseType::simple)
                .ok_or_else(|| syntax("unknown atomic type", v));
        }
        let o = v.as_object().ok_or_else(|| syntax("base type", v))?;
        let atomic = o
            .get("type")
            .and_then(|t| t.as_str())
            .and_then(AtomicType::from_name)
            .ok_or_else(|| syntax("base type needs a valid \"type\"", v))?;
        let mut b = BaseType::simple(atomic);
        b.min_integer = o.get("minInteger").and_then(|x| x.as_i64());
        b.max_integer = o.get("maxInteger").and_then(|x| x.as_i64());
        b.min_real = o.get("minReal").and_then(|x| x.as_f64());
        b.max_real = o.get("maxReal").and_then(|x| x.as_f64());
        b.min_length = o.get("minLength").and_then(|x| x.as_u64());
        b.max_length = o.get("maxLength").and_then(|x| x.as_u64());
        b.ref_table = o
            .get("refTable")
            .and_then(|x| x.as_str())
            .map(|s| s.to_string());
        b.ref_type = match o.get("refType").and_then(|x| x.as_str()) {
            None | Some("strong") => RefType::Strong,
            Some("weak") => RefType::Weak,
            Some(_) => return Err(syntax("refType", v)),
        };
        if let Some(e) = o.get("enum") {
            let plain = BaseType::simple(atomic);
            let t = ColumnType {
                key: plain,
                value: None,
                min: 0,
                max: u64::MAX,
            };
            let d = Datum::from_json(e, &t, &|_| None)?;
            b.enumeration = Some(d.atoms());
        }
        Ok(b)
    }

    /// Constraints of this base type on one atom.
    pub fn check(&self, a: &Atom) -> Result<(), OvsdbError> {
        if let Some(e) = &self.enumeration
            && !e.contains(a)
        {
            return Err(OvsdbError::new(
                "constraint violation",
                format!("{} is not one of the allowed values", a.to_json()),
            ));
        }
        match a {
            Atom::Integer(i) => {
                if self.min_integer.is_some_and(|m| *i < m)
                    || self.max_integer.is_some_and(|m| *i > m)
                {
                    return Err(OvsdbError::new(
                        "constraint violation",
                        format!(
                            "{i} is not in the valid range {}..{}",
                            self.min_integer.unwrap_or(i64::MIN),
                            self.max_integer.unwrap_or(i64::MAX)
                        ),
                    ));
                }
            }
            Atom::Real(r) => {
                if self.min_real.is_some_and(|m| *r < m) || self.max_real.is_some_and(|m| *r > m) {
                    return Err(OvsdbError::new(
                        "constraint violation",
                        format!("{r} is out of the valid range"),
                    ));
                }
            }
            Atom::String(s) => {
                let n = s.chars().count() as u64;
                if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m)
                {
                    return Err(OvsdbError::new(
                        "constraint violation",
                        format!("\"{s}\" length {n} is out of the valid range"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A column's type: key, optional value (a map), cardinality.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: u64,
    /// `u64::MAX` = unlimited.
    pub max: u64,
}

impl ColumnType {
    pub fn from_json(v: &Value) -> Result<ColumnType, OvsdbError> {
        if v.is_string() {
            return Ok(ColumnType {
                key: BaseType::from_json(v)?,
                value: None,
                min: 1,
                max: 1,
            });
        }
        let o = v.as_object().ok_or_else(|| syntax("column type", v))?;
        let key = BaseType::from_json(o.get("key").ok_or_else(|| syntax("type without key", v))?)?;
        let value = o.get("value").map(BaseType::from_json).transpose()?;
        let min = match o.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .filter(|m| *m <= 1)
                .ok_or_else(|| syntax("min", v))?,
        };
        let max = match o.get("max") {
            None => 1,
            Some(Value::String(s)) if s == "unlimited" => u64::MAX,
            Some(m) => m
                .as_u64()
                .filter(|m| *m >= 1)
                .ok_or_else(|| syntax("max", v))?,
        };
        if min > max {
            return Err(syntax("min > max", v));
        }
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// The base types that are references: (table, strong?) for key and value.
    pub fn refs(&self) -> impl Iterator<Item = (&str, RefType, bool)> {
        let k = self
            .key
            .ref_table
            .as_deref()
            .filter(|_| self.key.atomic == AtomicType::Uuid)
            .map(|t| (t, self.key.ref_type, true));
        let v = self.value.as_ref().and_then(|b| {
            b.ref_table
                .as_deref()
                .filter(|_| b.atomic == AtomicType::Uuid)
                .map(|t| (t, b.ref_type, false))
        });
        k.into_iter().chain(v)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub columns: BTreeMap<String, ColumnSchema>,
    pub is_root: bool,
    pub max_rows: Option<u64>,
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.get(name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
    pub json: Value,
}

impl Schema {
    /// Loads a schema (RFC 7047 §3.2) from its JSON text.
    pub fn from_json(text: &str) -> Result<Schema, OvsdbError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| OvsdbError::syntax(format!("schema is not JSON: {e}")))?;
        Schema::from_value(json)
    }

    pub fn from_value(json: Value) -> Result<Schema, OvsdbError> {
        let o = json.as_object().ok_or_else(|| syntax("schema", &json))?;
        let name = o
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| syntax("schema name", &json))?
            .to_string();
        let version = o
            .get("version")
            .and_then(|n| n.as_str())
            .unwrap_or("0.0.0")
            .to_string();
        let tables_j = o
            .get("tables")
            .and_then(|t| t.as_object())
            .ok_or_else(|| syntax("schema tables", &json))?;
        let mut tables = BTreeMap::new();
        for (tname, tj) in tables_j {
            let to = tj.as_object().ok_or_else(|| syntax("table", tj))?;
            let cols_j = to
                .get("columns")
                .and_then(|c| c.as_object())
                .ok_or_else(|| syntax("table columns", tj))?;
            let mut columns = BTreeMap::new();
            for (cname, cj) in cols_j {
                if cname.starts_with('_') {
                    return Err(syntax("column names may not start with _", cj));
                }
                let ty = ColumnType::from_json(
                    cj.get("type").ok_or_else(|| syntax("column type", cj))?,
                )?;
                columns.insert(
                    cname.clone(),
                    ColumnSchema {
                        name: cname.clone(),
                        ty,
                        ephemeral: cj
                            .get("ephemeral")
                            .and_then(|e| e.as_bool())
                            .unwrap_or(false),
                        mutable: cj.get("mutable").and_then(|e| e.as_bool()).unwrap_or(true),
                    },
                );
            }
            let mut indexes = Vec::new();
            if let Some(ix) = to.get("indexes").and_then(|i| i.as_array()) {
                for i in ix {
                    let cols: Option<Vec<String>> = i.as_array().map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(|s| s.to_string()))
                            .collect()
                    });
                    let cols = cols
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| syntax("index", i))?;
                    for c in &cols {
                        if !columns.contains_key(c) {
                            return Err(syntax("index names an unknown column", i));
                        }
                    }
                    indexes.push(cols);
                }
            }
            tables.insert(
                tname.clone(),
                TableSchema {
                    name: tname.clone(),
                    columns,
                    is_root: to.get("isRoot").and_then(|r| r.as_bool()).unwrap_or(false),
                    max_rows: to.get("maxRows").and_then(|m| m.as_u64()),
                    indexes,
                },
            );
        }
        // RFC 7047 §3.2: a schema where no table says isRoot predates it: every table is root.
        if !tables.values().any(|t| t.is_root) {
            for t in tables.values_mut() {
                t.is_root = true;
            }
        }
        // References must name tables of this schema.
        for t in tables.values() {
            for c in t.columns.values() {
                for (rt, _, _) in c.ty.refs() {
                    if !tables.contains_key(rt) {
                        return Err(OvsdbError::syntax(format!(
                            "schema: {}.{} refers to unknown table {rt}",
                            t.name, c.name
                        )));
                    }
                }
            }
        }
        Ok(Schema {
            name,
            version,
            tables,
            json,
        })
    }

    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}
