//! Stage 3: the schema a mutation is decoded against: CQL types, user
//! types, tables with their keys, clustering order, static and dropped
//! columns, found by the table id every partition update carries.
//!
//! Let the log supply it: a [`SchemaTracker`] knows Cassandra's own
//! keyspaces ([`Schema::system`]) and applies the `system_schema` mutations
//! every DDL statement writes, in log order, so that each mutation decodes
//! with the schema in force when it was written; `TRUNCATE` comes out as a
//! [`Truncation`]. Or load it from CQL (`DESCRIBE KEYSPACE ... WITH
//! INTERNALS` prints the table ids and dropped columns the decoder needs),
//! or build it in code:
//!
//! ```
//! use cassandra_commitlog::schema::Schema;
//!
//! let schema = Schema::parse(
//!     "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'};
//!      CREATE TABLE ks.t (id int PRIMARY KEY, v text) WITH ID = 3a3b9380-e732-11f1-a7c5-e72bb5e4b197;
//!      ALTER TABLE ks.t DROP v USING TIMESTAMP 1700000000000000;",
//! )
//! .unwrap();
//! let t = schema.table("ks", "t").unwrap();
//! assert_eq!(t.id.to_string(), "3a3b9380-e732-11f1-a7c5-e72bb5e4b197");
//! assert_eq!(t.dropped[0].name, "v");
//! ```

mod parse;
mod rows;
mod system;
mod table;
mod tracker;
mod types;

pub use parse::{SchemaError, quote_identifier};
pub use system::{Release, SYSTEM_KEYSPACES, SYSTEM_SCHEMA_TABLES, system_table_id};
pub(crate) use table::ColumnRef;
pub use table::{Column, ColumnKind, DroppedColumn, Order, Schema, Table, TableBuilder, TableError};
pub use tracker::{SchemaApplyError, SchemaChange, SchemaEvent, SchemaTracker, StateError, Tracked, Truncation};
pub use types::{CqlType, MAX_TYPE_DEPTH, UserType};
pub use uuid::Uuid;
