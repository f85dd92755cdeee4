//! A Debezium-compatible envelope: one record per row change, in the shape
//! the sinks of a Kafka Connect pipeline already read (`before`, `after`,
//! `source`, `op`, `ts_ms`), with the Cassandra-specific rest in a few
//! added fields.
//!
//! Each [`Record`] has a **key**, the partition key as a JSON object (the
//! Kafka record key: every change of a Cassandra partition goes to one
//! Kafka partition, in log order), and a **value**:
//!
//! ```json
//! {"before":null,
//!  "after":{"id":1,"c_text":"updated"},
//!  "source":{"version":"0.1.0","connector":"cassandra-commitlog","name":"c1","ts_ms":1795433850123,
//!            "snapshot":"false","db":"cdc_test","cluster":"c1","keyspace":"cdc_test","table":"scalars",
//!            "segment_id":1795433791762,"position":59709,"ts_us":1795433850123456,
//!            "digest":"4f0c…"},
//!  "op":"u","ts_ms":1795433850123,
//!  "scope":"row","key":{"id":1}}
//! ```
//!
//! - `op`: `c` for a row with a primary-key liveness (an `INSERT`), `u`
//!   for a row written without one (an `UPDATE`, a static row, a `DELETE`
//!   of columns: those columns are `null` in `after`), `d` for a row,
//!   partition or range deletion, `t` for a `TRUNCATE` ([`ChangeKind`] says
//!   what each statement writes). Cassandra's writes are upserts: it does
//!   not know whether an inserted row existed, so a `c` may overwrite and a
//!   `u` may create. An upsert-only store applies `c` and `u` alike (upsert
//!   the columns given) and must not fail a `c` on an existing key.
//! - `before` is always `null`: the log holds what was written, not what it
//!   replaced.
//! - `after`: for `c` and `u`, the primary key columns and the columns the
//!   write carries, each as one value ([`ColumnData::merged`]: a non-frozen
//!   collection or UDT is the elements written; with a complex deletion
//!   (an overwrite) it is the whole new value); a deleted column is `null`;
//!   dropped data is left out; a counter is its shard's count. `null` for
//!   `d` and `t`.
//! - `scope` (added): `row`, `static` (the static row: `key` is the
//!   partition key), `partition` (a partition deletion), `range` (a range
//!   deletion, with `range`: its `start` and `end` bounds and `deletion`, as
//!   the native format writes them), `table` (a truncation).
//! - `key` (added): the changed row's whole primary key (partition key for
//!   the other scopes), so that a sink can act on a deletion without
//!   reading `source`.
//! - `source`: Debezium's fields (`version`, `connector`, `name`, `ts_ms`,
//!   `snapshot`, `db`) and the commit-log ones: `cluster`, `keyspace`,
//!   `table`, `segment_id`, `position`, `ts_us` (the write timestamp in
//!   microseconds), `digest` ([`super::Digest`]: the same on every replica).
//! - `ts_ms`: the write timestamp in milliseconds, as in `source`, and not
//!   the time of reading, so that the output is reproducible.
//!
//! A `TRUNCATE` record ([`Envelope::truncation`]) has no key (it concerns
//! every partition) and `truncated` (added): the commit-log position
//! Cassandra recorded with it and `truncated_at` (milliseconds).

use super::change::ChangeKind;
use super::decode::Context;
use super::digest::Digest;
use super::view::{ColumnData, Mutation, PartitionUpdate, Row};
use super::write::ChangeWriter;
use crate::schema::Truncation;
use crate::value::write::{long, name_key, null, string};

/// Debezium's operation of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `c`: a row inserted (written with its primary-key liveness).
    Create,
    /// `u`: columns of a row (or of the static row) written.
    Update,
    /// `d`: a row, partition or range deleted.
    Delete,
    /// `t`: a table truncated.
    Truncate,
}

impl Op {
    /// `"c"`, `"u"`, `"d"` or `"t"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// What a record changed (the `scope` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// A row.
    Row,
    /// The static row of a partition.
    Static,
    /// A whole partition (a partition deletion).
    Partition,
    /// A clustering range of a partition (a range deletion).
    Range,
    /// A whole table (a truncation).
    Table,
}

impl Scope {
    /// `"row"`, `"static"`, `"partition"`, `"range"` or `"table"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Row => "row",
            Scope::Static => "static",
            Scope::Partition => "partition",
            Scope::Range => "range",
            Scope::Table => "table",
        }
    }
}

/// One record of the envelope: borrowed from the [`Envelope`]'s buffers
/// until the next record.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The operation.
    pub op: Op,
    /// What it changed.
    pub scope: Scope,
    /// Keyspace.
    pub keyspace: &'a str,
    /// Table.
    pub table: &'a str,
    /// The record key: the partition key as a JSON object (`None` for a
    /// truncation).
    pub key: Option<&'a [u8]>,
    /// What changed, as a JSON object (the value's `key` field): the whole
    /// primary key for a row, the partition key for the other scopes
    /// (`None` for a truncation). Key records by it to follow Debezium's
    /// relational convention, at the price of the order between the rows
    /// of one partition.
    pub primary_key: Option<&'a [u8]>,
    /// The envelope, one JSON object.
    pub value: &'a [u8],
    /// The partition update's digest (`None` for a truncation).
    pub digest: Option<Digest>,
    /// Segment of the entry.
    pub segment_id: i64,
    /// Commit-log position just past the entry.
    pub position: u64,
}

/// Writes Debezium-compatible records (see the [module](self) docs for the
/// mapping). Reuse one: it keeps its buffers between records.
#[derive(Debug, Default)]
pub struct Envelope {
    cluster: String,
    writer: ChangeWriter,
    key: Vec<u8>,
    value: Vec<u8>,
    scratch: Vec<u8>,
}

impl Envelope {
    /// An envelope for records of the named cluster (`source.name` and
    /// `source.cluster`).
    pub fn new(cluster: impl Into<String>) -> Envelope {
        Envelope { cluster: cluster.into(), ..Envelope::default() }
    }

    /// Calls `each` with one record per change of every partition update of
    /// the mutation, in log order. Values that do not decode are written
    /// as the native format writes them (`{"invalid", "hex"}`), so this
    /// cannot fail.
    pub fn mutation(&mut self, m: &Mutation<'_>, mut each: impl FnMut(&Record<'_>)) {
        for u in m.updates() {
            self.update(m.context(), &u, &mut each);
        }
    }

    /// Appends one line per record of the mutation, `{"key": KEY, "value":
    /// VALUE}` (what `dump --format debezium` prints).
    pub fn write_lines(&mut self, out: &mut Vec<u8>, m: &Mutation<'_>) {
        self.mutation(m, |r| line(out, r.key, r.value));
    }

    /// Calls `each` with the record of a truncation (`op` `t`).
    pub fn truncation(&mut self, t: &Truncation, mut each: impl FnMut(&Record<'_>)) {
        let (ks, table) = (t.keyspace.as_deref().unwrap_or(""), t.table.as_deref().unwrap_or(""));
        let ms = t.truncated_at.unwrap_or(0);
        let (segment_id, position) = (t.at.segment_id.unwrap_or(0), t.at.logical.unwrap_or(0));
        let mut v = std::mem::take(&mut self.value);
        v.clear();
        v.extend_from_slice(b"{\"before\":null,\"after\":null,");
        self.source(&mut v, ks, table, segment_id, position, ms * 1000, None);
        v.extend_from_slice(b",\"op\":\"t\",\"ts_ms\":");
        long(&mut v, ms);
        v.extend_from_slice(b",\"scope\":\"table\",\"truncated\":{\"table_id\":\"");
        v.extend_from_slice(t.table_id.hyphenated().to_string().as_bytes());
        v.extend_from_slice(b"\",\"segment_id\":");
        long(&mut v, t.segment_id);
        v.extend_from_slice(b",\"position\":");
        long(&mut v, t.position as i64);
        v.extend_from_slice(b",\"truncated_at\":");
        match t.truncated_at {
            Some(ms) => long(&mut v, ms),
            None => null(&mut v),
        }
        v.extend_from_slice(b"}}");
        each(&Record {
            op: Op::Truncate,
            scope: Scope::Table,
            keyspace: ks,
            table,
            key: None,
            primary_key: None,
            value: &v,
            digest: None,
            segment_id,
            position,
        });
        self.value = v;
    }

    /// Appends the line of a truncation's record.
    pub fn write_truncation(&mut self, out: &mut Vec<u8>, t: &Truncation) {
        self.truncation(t, |r| line(out, r.key, r.value));
    }

    fn update(&mut self, ctx: &Context, u: &PartitionUpdate<'_>, each: &mut impl FnMut(&Record<'_>)) {
        let table = u.table();
        let digest = u.digest();
        // The partition key, once per update.
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.push(b'{');
        self.partition_key(&mut key, u);
        key.push(b'}');
        let mut v = std::mem::take(&mut self.value);
        let emit = |each: &mut dyn FnMut(&Record<'_>), key: &[u8], full: &[u8], v: &[u8], op: Op, scope: Scope| {
            each(&Record {
                op,
                scope,
                keyspace: &table.keyspace,
                table: &table.name,
                key: Some(key),
                primary_key: Some(full),
                value: v,
                digest: Some(digest),
                segment_id: ctx.segment_id,
                position: ctx.position,
            })
        };
        if let Some(d) = u.partition_deletion() {
            v.clear();
            v.extend_from_slice(b"{\"before\":null,\"after\":null,");
            self.tail(&mut v, ctx, u, d.timestamp, digest, Op::Delete, Scope::Partition, &key);
            v.push(b'}');
            emit(each, &key, &key, &v, Op::Delete, Scope::Partition);
        }
        for row in u.all_rows() {
            let kind = row.kind();
            let (op, scope) = match (kind, row.is_static()) {
                (ChangeKind::Delete, s) => (Op::Delete, if s { Scope::Static } else { Scope::Row }),
                (ChangeKind::Insert, false) => (Op::Create, Scope::Row),
                (_, false) => (Op::Update, Scope::Row),
                (_, true) => (Op::Update, Scope::Static),
            };
            // The row's key: the partition key's pairs, then the
            // clustering's (a static row has none).
            let mut full = std::mem::take(&mut self.scratch);
            full.clear();
            full.extend_from_slice(&key[..key.len() - 1]);
            self.clustering(&mut full, &row, key.len() > 2);
            full.push(b'}');
            v.clear();
            v.extend_from_slice(b"{\"before\":null,\"after\":");
            if op == Op::Delete {
                null(&mut v);
            } else {
                // The key's columns, then what the row writes.
                v.extend_from_slice(&full[..full.len() - 1]);
                let mut any = full.len() > 2;
                for c in row.columns() {
                    if c.cells().any(|cell| cell.is_dropped()) {
                        continue;
                    }
                    if any {
                        v.push(b',');
                    }
                    any = true;
                    name_key(&mut v, c.name());
                    self.column(&mut v, &c);
                }
                v.push(b'}');
            }
            v.push(b',');
            self.tail(&mut v, ctx, u, row_timestamp(&row), digest, op, scope, &full);
            v.push(b'}');
            emit(each, &key, &full, &v, op, scope);
            self.scratch = full;
        }
        for rt in u.range_tombstones() {
            let ts = rt.deletion().map_or(0, |d| d.timestamp);
            v.clear();
            v.extend_from_slice(b"{\"before\":null,\"after\":null,");
            self.tail(&mut v, ctx, u, ts, digest, Op::Delete, Scope::Range, &key);
            v.extend_from_slice(b",\"range\":");
            v.extend_from_slice(rt.to_json().as_bytes());
            v.push(b'}');
            emit(each, &key, &key, &v, Op::Delete, Scope::Range);
        }
        self.value = v;
        self.key = key;
    }

    /// `source`, `op`, `ts_ms`, `scope`, `key`.
    #[allow(clippy::too_many_arguments)]
    fn tail(
        &mut self,
        v: &mut Vec<u8>,
        ctx: &Context,
        u: &PartitionUpdate<'_>,
        ts_us: i64,
        digest: Digest,
        op: Op,
        scope: Scope,
        key: &[u8],
    ) {
        let t = u.table();
        self.source(v, &t.keyspace, &t.name, ctx.segment_id, ctx.position, ts_us, Some(digest));
        v.extend_from_slice(b",\"op\":\"");
        v.extend_from_slice(op.as_str().as_bytes());
        v.extend_from_slice(b"\",\"ts_ms\":");
        long(v, ts_us.div_euclid(1000));
        v.extend_from_slice(b",\"scope\":\"");
        v.extend_from_slice(scope.as_str().as_bytes());
        v.extend_from_slice(b"\",\"key\":");
        v.extend_from_slice(key);
    }

    #[allow(clippy::too_many_arguments)]
    fn source(
        &self,
        v: &mut Vec<u8>,
        keyspace: &str,
        table: &str,
        segment_id: i64,
        position: u64,
        ts_us: i64,
        digest: Option<Digest>,
    ) {
        v.extend_from_slice(b"\"source\":{\"version\":\"");
        v.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        v.extend_from_slice(b"\",\"connector\":\"cassandra-commitlog\",\"name\":");
        string(v, &self.cluster);
        v.extend_from_slice(b",\"ts_ms\":");
        long(v, ts_us.div_euclid(1000));
        v.extend_from_slice(b",\"snapshot\":\"false\",\"db\":");
        string(v, keyspace);
        v.extend_from_slice(b",\"cluster\":");
        string(v, &self.cluster);
        v.extend_from_slice(b",\"keyspace\":");
        string(v, keyspace);
        v.extend_from_slice(b",\"table\":");
        string(v, table);
        v.extend_from_slice(b",\"segment_id\":");
        long(v, segment_id);
        v.extend_from_slice(b",\"position\":");
        long(v, position as i64);
        v.extend_from_slice(b",\"ts_us\":");
        long(v, ts_us);
        if let Some(d) = digest {
            v.extend_from_slice(b",\"digest\":\"");
            d.write_hex(v);
            v.push(b'"');
        }
        v.push(b'}');
    }

    /// The partition key's `"name":value` pairs (a key that does not
    /// decode ends with a `"partition_key"` pair in its invalid form).
    fn partition_key(&mut self, out: &mut Vec<u8>, u: &PartitionUpdate<'_>) {
        for (i, kv) in u.partition_key().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match kv {
                Ok((col, value)) => {
                    name_key(out, &col.name);
                    self.writer.value_json(out, Ok(value), &[]);
                }
                Err(e) => {
                    name_key(out, "partition_key");
                    self.writer.value_json(out, Err(e), u.partition_key_bytes());
                    break;
                }
            }
        }
    }

    /// The row's clustering `"name":value` pairs, after a comma when
    /// `after` is set.
    fn clustering(&mut self, out: &mut Vec<u8>, row: &Row<'_>, mut after: bool) {
        for ((col, v), raw) in row.clustering().zip(row.clustering_bytes()) {
            if after {
                out.push(b',');
            }
            after = true;
            name_key(out, &col.name);
            match v {
                Some(v) => self.writer.value_json(out, v, raw.unwrap_or_default()),
                None => null(out),
            }
        }
    }

    /// A column as one value.
    fn column(&mut self, out: &mut Vec<u8>, c: &ColumnData<'_>) {
        match c.merged().and_then(|m| m.to_json()) {
            Ok(json) => out.extend_from_slice(json.as_bytes()),
            Err(e) => {
                let raw = c.cells().next().map(|cell| cell.value_bytes()).unwrap_or_default();
                self.writer.value_json(out, Err(e), raw)
            }
        }
    }
}

/// The write timestamp of a row: its liveness, else its deletion, else its
/// newest cell or complex deletion.
fn row_timestamp(row: &Row<'_>) -> i64 {
    if let Some(l) = row.liveness() {
        return l.timestamp;
    }
    if let Some(d) = row.deletion() {
        return d.time.timestamp;
    }
    let mut ts = i64::MIN;
    for c in row.columns() {
        if let Some(d) = c.complex_deletion() {
            ts = ts.max(d.timestamp);
        }
        for cell in c.cells() {
            ts = ts.max(cell.timestamp());
        }
    }
    if ts == i64::MIN { 0 } else { ts }
}

fn line(out: &mut Vec<u8>, key: Option<&[u8]>, value: &[u8]) {
    out.extend_from_slice(b"{\"key\":");
    match key {
        Some(k) => out.extend_from_slice(k),
        None => null(out),
    }
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(value);
    out.extend_from_slice(b"}\n");
}
