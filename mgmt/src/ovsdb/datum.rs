//! OVSDB values (RFC 7047 §5.1): atoms, and datums (sets and maps of atoms) in canonical form
//! (sorted by key, no duplicates), with their JSON notation and type checks.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::OvsdbError;
use super::schema::{AtomicType, BaseType, ColumnType};

/// A row's UUID.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Uuid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let hi = (b[i] as char).to_digit(16)?;
            let lo = (b.get(i + 1).copied()? as char).to_digit(16)?;
            out[n] = (hi * 16 + lo) as u8;
            n += 1;
            i += 2;
        }
        Some(Uuid(out))
    }
}

/// One value of an atomic type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_real(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// The default atom of a type (0, 0.0, false, "", all-zero UUID).
    pub fn default_of(t: AtomicType) -> Atom {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::default()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    /// Parses an atom of type `base` from JSON; `named` resolves `["named-uuid", name]`.
    pub fn from_json(
        v: &Value,
        base: &BaseType,
        named: &dyn Fn(&str) -> Option<Uuid>,
    ) -> Result<Atom, OvsdbError> {
        let bad = || OvsdbError::syntax(format!("{v} is not a valid {}", base.atomic.name()));
        let a = match base.atomic {
            AtomicType::Integer => Atom::Integer(v.as_i64().ok_or_else(bad)?),
            AtomicType::Real => Atom::Real(v.as_f64().ok_or_else(bad)?),
            AtomicType::Boolean => Atom::Boolean(v.as_bool().ok_or_else(bad)?),
            AtomicType::String => Atom::String(v.as_str().ok_or_else(bad)?.to_string()),
            AtomicType::Uuid => {
                let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
                let s = arr[1].as_str().ok_or_else(bad)?;
                match arr[0].as_str() {
                    Some("uuid") => Atom::Uuid(Uuid::parse(s).ok_or_else(bad)?),
                    Some("named-uuid") => Atom::Uuid(named(s).ok_or_else(|| {
                        OvsdbError::new("syntax error", format!("unknown named-uuid {s}"))
                    })?),
                    _ => return Err(bad()),
                }
            }
        };
        base.check(&a)?;
        Ok(a)
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A column value: a set of atoms, or a map from atoms to atoms, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Datum {
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

impl Datum {
    pub fn empty_for(t: &ColumnType) -> Datum {
        if t.value.is_some() {
            Datum::Map(Vec::new())
        } else {
            Datum::Set(Vec::new())
        }
    }

    /// The default value of a column: empty for optional columns, the type's default atom
    /// (repeated `min` times is not possible for sets: min is 0 or 1) otherwise.
    pub fn default_for(t: &ColumnType) -> Datum {
        if t.min == 0 {
            return Datum::empty_for(t);
        }
        let k = Atom::default_of(t.key.atomic);
        match &t.value {
            Some(v) => Datum::Map(alloc::vec![(k, Atom::default_of(v.atomic))]),
            None => Datum::Set(alloc::vec![k]),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys (the atoms of a set).
    pub fn atoms(&self) -> Vec<Atom> {
        match self {
            Datum::Set(s) => s.clone(),
            Datum::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    /// Every atom, keys and values (for reference scans).
    pub fn for_each_atom(&self, mut f: impl FnMut(&Atom, bool)) {
        match self {
            Datum::Set(s) => s.iter().for_each(|a| f(a, true)),
            Datum::Map(m) => m.iter().for_each(|(k, v)| {
                f(k, true);
                f(v, false)
            }),
        }
    }

    pub fn map_iter(&self) -> impl Iterator<Item = (&Atom, &Atom)> {
        let m: &[(Atom, Atom)] = match self {
            Datum::Map(m) => m,
            Datum::Set(_) => &[],
        };
        m.iter().map(|(k, v)| (k, v))
    }

    /// The value of string key `key` in a map.
    pub fn map_get_str(&self, key: &str) -> Option<&str> {
        self.map_iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .and_then(|(_, v)| v.as_str())
    }

    fn single(&self) -> Option<&Atom> {
        match self {
            Datum::Set(s) if s.len() == 1 => s.first(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.single()?.as_str()
    }

    pub fn as_integer(&self) -> Option<i64> {
        self.single()?.as_integer()
    }

    pub fn as_bool(&self) -> Option<bool> {
        self.single()?.as_bool()
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        self.single()?.as_uuid()
    }

    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(s) if s.len() == 1 => s[0].to_json(),
            Datum::Set(s) => json!(["set", s.iter().map(|a| a.to_json()).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Parses a value of column type `t` (cardinality is not checked here: see
    /// [`Datum::check_cardinality`]; mutations parse sets of other sizes).
    pub fn from_json(
        v: &Value,
        t: &ColumnType,
        named: &dyn Fn(&str) -> Option<Uuid>,
    ) -> Result<Datum, OvsdbError> {
        let tagged = v
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_str()?, &a[1])));
        match (&t.value, tagged) {
            (Some(vt), Some(("map", pairs))) => {
                let pairs = pairs.as_array().ok_or_else(|| {
                    OvsdbError::syntax(format!("{v}: map pairs must be an array"))
                })?;
                let mut m = BTreeMap::new();
                for p in pairs {
                    let kv = p.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                        OvsdbError::syntax(format!("{p}: a map pair is [key, value]"))
                    })?;
                    let k = Atom::from_json(&kv[0], &t.key, named)?;
                    let val = Atom::from_json(&kv[1], vt, named)?;
                    if m.insert(k, val).is_some() {
                        return Err(OvsdbError::syntax(format!("{v}: map has duplicate key")));
                    }
                }
                Ok(Datum::Map(m.into_iter().collect()))
            }
            (Some(_), _) => Err(OvsdbError::syntax(format!("{v} is not a map"))),
            (None, Some(("set", atoms))) => {
                let atoms = atoms.as_array().ok_or_else(|| {
                    OvsdbError::syntax(format!("{v}: set elements must be an array"))
                })?;
                let mut s = Vec::with_capacity(atoms.len());
                for a in atoms {
                    s.push(Atom::from_json(a, &t.key, named)?);
                }
                s.sort();
                let n = s.len();
                s.dedup();
                if s.len() != n {
                    return Err(OvsdbError::syntax(format!("{v}: set has duplicate values")));
                }
                Ok(Datum::Set(s))
            }
            (None, _) => Ok(Datum::Set(alloc::vec![Atom::from_json(v, &t.key, named)?])),
        }
    }

    /// `min`/`max` of the column type.
    pub fn check_cardinality(&self, t: &ColumnType, what: &str) -> Result<(), OvsdbError> {
        let n = self.len() as u64;
        if n < t.min || n > t.max {
            return Err(OvsdbError::new(
                "constraint violation",
                format!(
                    "{what} has {n} elements but must have between {} and {}",
                    t.min,
                    if t.max == u64::MAX {
                        "unlimited".to_string()
                    } else {
                        t.max.to_string()
                    }
                ),
            ));
        }
        Ok(())
    }

    /// Set union / map insert (existing keys keep their values, as RFC 7047 says).
    pub fn insert_all(&mut self, other: &Datum) {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => {
                a.extend(b.iter().cloned());
                a.sort();
                a.dedup();
            }
            (Datum::Map(a), Datum::Map(b)) => {
                for (k, v) in b {
                    if let Err(i) = a.binary_search_by(|(x, _)| x.cmp(k)) {
                        a.insert(i, (k.clone(), v.clone()));
                    }
                }
            }
            _ => {}
        }
    }

    /// Removes: from a set the atoms of `other`; from a map, pairs of a map `other` that
    /// match key and value, or keys listed in a set `other`.
    pub fn delete_all(&mut self, other: &Datum) {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.retain(|x| !b.contains(x)),
            (Datum::Map(a), Datum::Map(b)) => a.retain(|p| !b.contains(p)),
            (Datum::Map(a), Datum::Set(b)) => a.retain(|(k, _)| !b.contains(k)),
            _ => {}
        }
    }

    /// Whether every element of `other` is in `self` (`includes`).
    pub fn includes(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => b.iter().all(|x| a.contains(x)),
            (Datum::Map(a), Datum::Map(b)) => b.iter().all(|x| a.contains(x)),
            _ => false,
        }
    }

    /// Whether no element of `other` is in `self` (`excludes`).
    pub fn excludes(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => b.iter().all(|x| !a.contains(x)),
            (Datum::Map(a), Datum::Map(b)) => b.iter().all(|x| !a.contains(x)),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::schema::ColumnType;

    fn t(j: Value) -> ColumnType {
        ColumnType::from_json(&j).unwrap()
    }

    #[test]
    fn uuid_roundtrip() {
        let u = Uuid([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        let s = u.to_string();
        assert_eq!(s, "12345678-9abc-def0-0102-030405060708");
        assert_eq!(Uuid::parse(&s), Some(u));
        assert_eq!(Uuid::parse("12345678-9abc-def0-0102-03040506070"), None);
        assert_eq!(Uuid::parse("12345678x9abc-def0-0102-030405060708"), None);
    }

    #[test]
    fn json_notation() {
        let none = |_: &str| None;
        let set = t(json!({"key": "integer", "min": 0, "max": "unlimited"}));
        let d = Datum::from_json(&json!(["set", [3, 1, 2]]), &set, &none).unwrap();
        assert_eq!(d.to_json(), json!(["set", [1, 2, 3]]));
        assert_eq!(
            Datum::from_json(&json!(5), &set, &none).unwrap().to_json(),
            json!(5)
        );
        assert!(Datum::from_json(&json!(["set", [1, 1]]), &set, &none).is_err());
        let map = t(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}));
        let m = Datum::from_json(&json!(["map", [["b", "2"], ["a", "1"]]]), &map, &none).unwrap();
        assert_eq!(m.map_get_str("a"), Some("1"));
        assert_eq!(m.to_json(), json!(["map", [["a", "1"], ["b", "2"]]]));
        assert!(Datum::from_json(&json!("x"), &map, &none).is_err());
        let e = t(json!({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}));
        assert!(Datum::from_json(&json!("c"), &e, &none).is_err());
        let r = t(json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}}));
        assert!(Datum::from_json(&json!(4096), &r, &none).is_err());
        assert!(Datum::from_json(&json!("1"), &r, &none).is_err());
    }
}
