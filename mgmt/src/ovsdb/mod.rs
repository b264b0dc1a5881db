//! OVSDB (RFC 7047): a schema-driven database engine and its JSON-RPC server, `no_std` +
//! `alloc`, transport-independent (the management port's TCP connections feed it bytes).
//!
//! - [`schema`]: any database schema (types, constraints, references, root tables, indexes).
//! - [`datum`]: atoms, sets and maps in canonical form, their JSON notation.
//! - [`db`]: the database and its transactions (every RFC 7047 operation, atomic, with
//!   garbage collection, referential integrity and constraints checked at commit), the
//!   [`Journal`] that makes a commit durable before anyone hears of it.
//! - [`server`]: the JSON-RPC methods (list_dbs, get_schema, transact, cancel, monitor,
//!   monitor_cancel, lock/steal/unlock, echo) over byte streams.

pub mod datum;
pub mod db;
pub mod schema;
pub mod server;

use alloc::string::{String, ToString};
use core::fmt;

pub use datum::{Atom, Datum, Uuid};
pub use db::{ChangeSet, Database, Journal, NoJournal, Row, RowChange, Table};
pub use schema::Schema;
pub use server::{OvsdbServer, ServerStats};

/// The `Open_vSwitch` schema as Open vSwitch 3.1 ships it (`vswitch.ovsschema`).
pub const VSWITCH_SCHEMA: &str = include_str!("vswitch.ovsschema");

/// The version of [`VSWITCH_SCHEMA`] (`Open_vSwitch.db_version`).
pub fn vswitch_schema_version() -> String {
    serde_json::from_str::<serde_json::Value>(VSWITCH_SCHEMA)
        .ok()
        .and_then(|v| {
            v.get("version")
                .and_then(|v| v.as_str())
                .map(|s| s.to_string())
        })
        .unwrap_or_default()
}

/// An RFC 7047 error: its `error` string and details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsdbError {
    pub error: &'static str,
    pub details: String,
}

impl OvsdbError {
    pub fn new(error: &'static str, details: impl Into<String>) -> OvsdbError {
        OvsdbError {
            error,
            details: details.into(),
        }
    }

    pub fn syntax(details: impl Into<String>) -> OvsdbError {
        OvsdbError::new("syntax error", details)
    }

    /// `{"error": ..., "details": ...}`
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": self.error, "details": self.details})
    }
}

impl fmt::Display for OvsdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.details)
    }
}
