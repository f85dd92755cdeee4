//! Writing the `system_schema` mutations DDL statements make, as Cassandra
//! 4.0's `SchemaKeyspace` writes them (`makeCreateKeyspaceMutation`,
//! `addTableToSchemaMutation`, `addAlterTableToSchemaMutation`,
//! `addDropTableToSchemaMutation`, `addTypeToSchemaMutation`,
//! `makeDropKeyspaceMutation`), and the `system.local` update a `TRUNCATE`
//! makes (`SystemKeyspace.saveTruncationRecord`).
//!
//! Every statement's mutation carries the keyspace row (CASSANDRA-5631) and
//! the rows the statement changes, each row with a primary-key liveness at
//! the statement's timestamp; deletions are row deletions at that
//! timestamp, or partition deletions for a dropped keyspace.
//!
//! ```
//! use cassandra_commitlog::builder::DdlWriter;
//! use cassandra_commitlog::schema::{CqlType, Release, SchemaTracker, Table};
//!
//! let table = Table::builder("ks", "t")
//!     .id("3a3b9380-e732-11f1-a7c5-e72bb5e4b197".parse().unwrap())
//!     .partition_key("id", CqlType::Int)
//!     .regular("v", CqlType::Text)
//!     .build()
//!     .unwrap();
//! let ddl = DdlWriter::new();
//! let mut tracker = SchemaTracker::new(Release::Cassandra4);
//! let mut decoder = cassandra_commitlog::mutation::Decoder::new();
//! for m in [ddl.create_keyspace("ks", 10), ddl.create_table(&table, 20)] {
//!     tracker.observe(&mut decoder, &m, Default::default());
//! }
//! assert_eq!(tracker.schema().table("ks", "t").unwrap().id, table.id);
//! ```

use std::collections::BTreeMap;

use uuid::Uuid;

use super::mutation::{CellKind, CellSpec, ColumnSpec, RowSpec, Unfiltered, UpdateSpec, encode_mutation};
use crate::mutation::{DeletionTime, Liveness};
use crate::schema::{ColumnKind, CqlType, Order, Release, Schema, Table, UserType};

/// Writes the schema mutations of DDL statements (see the module docs).
#[derive(Clone, Debug)]
pub struct DdlWriter {
    system: Schema,
}

impl Default for DdlWriter {
    fn default() -> Self {
        DdlWriter::new()
    }
}

/// Rows of one `system_schema` table, by clustering.
type Rows = BTreeMap<Vec<Vec<u8>>, RowSpec>;

/// A mutation being assembled: `system_schema` table -> rows.
struct Builder {
    keyspace: String,
    ts: i64,
    tables: BTreeMap<&'static str, Rows>,
    partition_deletions: Vec<&'static str>,
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A frozen `list<text>`.
fn text_list<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = (items.len() as i32).to_be_bytes().to_vec();
    for i in items {
        out.extend((i.len() as i32).to_be_bytes());
        out.extend(i.as_bytes());
    }
    out
}

/// A frozen `map<text, text>` (entries in key order).
fn text_map(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort();
    let mut out = (sorted.len() as i32).to_be_bytes().to_vec();
    for (k, v) in sorted {
        for s in [k, v] {
            out.extend((s.len() as i32).to_be_bytes());
            out.extend(s.as_bytes());
        }
    }
    out
}

impl Builder {
    fn new(keyspace: &str, ts: i64) -> Builder {
        let mut b = Builder { keyspace: keyspace.to_owned(), ts, tables: BTreeMap::new(), partition_deletions: vec![] };
        // makeCreateKeyspaceMutation: every statement rewrites the keyspace row.
        let replication =
            text_map(&[("class", "org.apache.cassandra.locator.SimpleStrategy"), ("replication_factor", "1")]);
        b.row("keyspaces", vec![], vec![("durable_writes", vec![1]), ("replication", replication)]);
        b
    }

    fn cell(&self, value: Vec<u8>) -> ColumnSpec {
        ColumnSpec::Simple(CellSpec { timestamp: self.ts, kind: CellKind::Live, path: None, value })
    }

    /// A row written as `Row.SimpleBuilder` writes one: a liveness and cells.
    fn row(&mut self, table: &'static str, clustering: Vec<Vec<u8>>, cells: Vec<(&str, Vec<u8>)>) {
        let columns = cells.into_iter().map(|(n, v)| (n.to_owned(), self.cell(v))).collect();
        let spec = RowSpec {
            clustering: clustering.iter().cloned().map(Some).collect(),
            liveness: Some(Liveness { timestamp: self.ts, expiry: None }),
            deletion: None,
            columns,
        };
        self.tables.entry(table).or_default().insert(clustering, spec);
    }

    /// A row deletion (`Row.SimpleBuilder.delete`).
    fn delete_row(&mut self, table: &'static str, clustering: Vec<Vec<u8>>) {
        let deletion = DeletionTime { timestamp: self.ts, local_deletion_time: self.ts.div_euclid(1_000_000) };
        let spec = RowSpec {
            clustering: clustering.iter().cloned().map(Some).collect(),
            liveness: None,
            deletion: Some((deletion, false)),
            columns: vec![],
        };
        self.tables.entry(table).or_default().insert(clustering, spec);
    }

    fn finish(self, system: &Schema) -> Vec<u8> {
        let deletion = DeletionTime { timestamp: self.ts, local_deletion_time: self.ts.div_euclid(1_000_000) };
        let mut specs = Vec::new();
        let mut names: Vec<&'static str> = self.tables.keys().copied().collect();
        names.extend(self.partition_deletions.iter().filter(|n| !self.tables.contains_key(*n)));
        for name in names {
            let table = system.table("system_schema", name).expect("a system_schema table");
            let rows = self.tables.get(name).map(|r| r.values().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let spec = UpdateSpec {
                table_id: table.id,
                key: text(&self.keyspace),
                deletion: self.partition_deletions.contains(&name).then_some(deletion),
                static_row: None,
                unfiltereds: rows.into_iter().map(Unfiltered::Row).collect(),
            };
            specs.push((table, spec));
        }
        let refs: Vec<_> = specs.iter().map(|(t, s)| (*t, s)).collect();
        encode_mutation(&refs, false)
    }
}

impl DdlWriter {
    /// A writer for Cassandra 4.0's `system_schema` tables.
    pub fn new() -> DdlWriter {
        DdlWriter { system: Schema::system(Release::Cassandra4) }
    }

    /// `CREATE KEYSPACE` (SimpleStrategy, replication factor 1).
    pub fn create_keyspace(&self, keyspace: &str, ts: i64) -> Vec<u8> {
        Builder::new(keyspace, ts).finish(&self.system)
    }

    /// `DROP KEYSPACE`: a partition deletion in every `system_schema` table.
    pub fn drop_keyspace(&self, keyspace: &str, ts: i64) -> Vec<u8> {
        let mut b = Builder { keyspace: keyspace.to_owned(), ts, tables: BTreeMap::new(), partition_deletions: vec![] };
        b.partition_deletions = crate::schema::SYSTEM_SCHEMA_TABLES.to_vec();
        b.finish(&self.system)
    }

    /// `CREATE TYPE`, or `ALTER TYPE` (the whole row written again).
    pub fn create_type(&self, ty: &UserType, ts: i64) -> Vec<u8> {
        let mut b = Builder::new(&ty.keyspace, ts);
        let names = ty.fields.iter().map(|(n, _)| n.as_str());
        let types: Vec<String> = ty.fields.iter().map(|(_, t)| t.to_string()).collect();
        b.row(
            "types",
            vec![text(&ty.name)],
            vec![("field_names", text_list(names)), ("field_types", text_list(types.iter().map(String::as_str)))],
        );
        b.finish(&self.system)
    }

    /// `DROP TYPE`.
    pub fn drop_type(&self, keyspace: &str, name: &str, ts: i64) -> Vec<u8> {
        let mut b = Builder::new(keyspace, ts);
        b.delete_row("types", vec![text(name)]);
        b.finish(&self.system)
    }

    fn table_row(b: &mut Builder, t: &Table) {
        let mut flags = vec!["compound"];
        if t.columns.iter().any(|c| c.ty == CqlType::Counter) {
            flags.push("counter");
        }
        b.row(
            "tables",
            vec![text(&t.name)],
            vec![("id", t.id.as_bytes().to_vec()), ("flags", text_list(flags.into_iter())), ("cdc", vec![1])],
        );
    }

    fn column_row(b: &mut Builder, t: &Table, name: &str) {
        let c = t.column(name).expect("a column of the table");
        let pk = t.partition_key().position(|k| k.name == c.name);
        let ck = t.clustering().position(|k| k.name == c.name);
        let (kind, order, pos) = match c.kind {
            ColumnKind::PartitionKey => ("partition_key", "none", pk.map_or(-1, |p| p as i32)),
            ColumnKind::Clustering(o) => {
                ("clustering", if o == Order::Desc { "desc" } else { "asc" }, ck.map_or(-1, |p| p as i32))
            }
            ColumnKind::Static => ("static", "none", -1),
            ColumnKind::Regular => ("regular", "none", -1),
        };
        b.row(
            "columns",
            vec![text(&t.name), text(&c.name)],
            vec![
                ("clustering_order", text(order)),
                ("column_name_bytes", text(&c.name)),
                ("kind", text(kind)),
                ("position", pos.to_be_bytes().to_vec()),
                ("type", text(&c.ty.to_string())),
            ],
        );
    }

    fn dropped_row(b: &mut Builder, t: &Table, d: &crate::schema::DroppedColumn) {
        b.row(
            "dropped_columns",
            vec![text(&t.name), text(&d.name)],
            vec![
                ("dropped_time", d.dropped_at.div_euclid(1000).to_be_bytes().to_vec()),
                ("kind", text(if d.is_static { "static" } else { "regular" })),
                ("type", text(&d.ty.expand_user_types().to_string())),
            ],
        );
    }

    /// `CREATE TABLE`: the table row, a row per column, and its dropped
    /// columns (a table made from another's definition may have some).
    pub fn create_table(&self, table: &Table, ts: i64) -> Vec<u8> {
        let mut b = Builder::new(&table.keyspace, ts);
        Self::table_row(&mut b, table);
        for c in &table.columns {
            Self::column_row(&mut b, table, &c.name);
        }
        for d in &table.dropped {
            Self::dropped_row(&mut b, table, d);
        }
        b.finish(&self.system)
    }

    /// `ALTER TABLE`: the table row again, rows of columns added or changed,
    /// row deletions of columns dropped, and rows of newly dropped columns.
    pub fn alter_table(&self, before: &Table, after: &Table, ts: i64) -> Vec<u8> {
        let mut b = Builder::new(&after.keyspace, ts);
        Self::table_row(&mut b, after);
        for c in &before.columns {
            if after.column(&c.name).is_none() {
                b.delete_row("columns", vec![text(&before.name), text(&c.name)]);
            }
        }
        for c in &after.columns {
            if before.column(&c.name) != Some(c) {
                Self::column_row(&mut b, after, &c.name);
            }
        }
        for d in &after.dropped {
            if !before.dropped.contains(d) {
                Self::dropped_row(&mut b, after, d);
            }
        }
        b.finish(&self.system)
    }

    /// `DROP TABLE`: row deletions of the table, its columns and its
    /// dropped columns.
    pub fn drop_table(&self, table: &Table, ts: i64) -> Vec<u8> {
        let mut b = Builder::new(&table.keyspace, ts);
        b.delete_row("tables", vec![text(&table.name)]);
        for c in &table.columns {
            b.delete_row("columns", vec![text(&table.name), text(&c.name)]);
        }
        for d in &table.dropped {
            b.delete_row("dropped_columns", vec![text(&table.name), text(&d.name)]);
        }
        b.finish(&self.system)
    }

    /// `TRUNCATE`: `UPDATE system.local SET truncated_at = truncated_at +
    /// {table_id: position + time} WHERE key = 'local'`, the position being
    /// the commit-log position (segment id, offset) Cassandra recorded.
    pub fn truncate(&self, table_id: Uuid, segment_id: i64, position: u32, truncated_at_ms: i64, ts: i64) -> Vec<u8> {
        let local = self.system.table("system", "local").expect("system.local");
        let mut value = segment_id.to_be_bytes().to_vec();
        value.extend(position.to_be_bytes());
        value.extend(truncated_at_ms.to_be_bytes());
        let cell = CellSpec { timestamp: ts, kind: CellKind::Live, path: Some(table_id.as_bytes().to_vec()), value };
        let row = RowSpec {
            clustering: vec![],
            liveness: None,
            deletion: None,
            columns: vec![("truncated_at".to_owned(), ColumnSpec::Complex { deletion: None, cells: vec![cell] })],
        };
        let spec = UpdateSpec {
            table_id: local.id,
            key: text("local"),
            deletion: None,
            static_row: None,
            unfiltereds: vec![Unfiltered::Row(row)],
        };
        encode_mutation(&[(local, &spec)], false)
    }
}
