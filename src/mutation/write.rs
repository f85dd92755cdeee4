//! The change format written directly into a byte buffer: the same bytes
//! as the `Serialize` implementations (`json.rs`, `value/json.rs`) give
//! through `serde_json`, at a fraction of the cost: no serializer state
//! machine, strings escaped by scanning eight bytes at a time, integers by
//! `itoa` and floats by `zmij` (the crates `serde_json` itself formats
//! numbers with), timestamps and uuids formatted in place, nothing
//! allocated per mutation once the buffer has grown.
//!
//! ```
//! use cassandra_commitlog::mutation::{ChangeWriter, Context, Decoder};
//! use cassandra_commitlog::schema::Schema;
//! use cassandra_commitlog::segment::{ReadOptions, Segment};
//!
//! let schema = Schema::parse(&std::fs::read_to_string("testdata/cdc_schema.cql")?)?;
//! let segment = Segment::open("testdata/cdc_raw/CommitLog-7-2000.log")?;
//! let mut reader = segment.reader(&ReadOptions::new())?;
//! let (mut decoder, mut writer, mut out) = (Decoder::new(), ChangeWriter::new(), Vec::new());
//! while let Some(entry) = reader.next_entry()? {
//!     let ctx = Context::of_entry(&entry, segment.descriptor(), None);
//!     let decoded = decoder.decode(entry.mutation, &schema, ctx);
//!     writer.write_line(&mut out, &decoded);
//! }
//! assert!(out.ends_with(b"}\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::decode::{Decoded, DeletionTime, Liveness};
use super::error::MutationError;
use super::view::{Bound, Cell, CellPath, ColumnData, Mutation, PartitionUpdate, Row};
use crate::schema::{ColumnRef, Table};
use crate::value::write::{boolean, hex, int, key, long, name_key, null, plain_string, string, uuid};
use crate::value::{Value, ValueError, ValueWriter};

/// Writes the change format (see the README) into byte buffers, exactly as
/// `serde_json::to_writer` writes the `Serialize` forms, faster. Reuse one
/// writer: it keeps scratch space between calls.
#[derive(Debug, Default)]
pub struct ChangeWriter {
    values: ValueWriter,
    /// The last timestamp written and its digits: a row's cells mostly
    /// share their write's timestamp.
    last_ts: Option<(i64, [u8; 20], u8)>,
    /// The last segment id's opening of a line.
    segment_prefix: Option<(i64, Vec<u8>)>,
}

impl ChangeWriter {
    /// A writer.
    pub fn new() -> ChangeWriter {
        ChangeWriter::default()
    }

    /// Appends one line of the change format: the entry's object (or, for
    /// a mutation that did not decode, the object with its `"error"`), and
    /// a newline.
    pub fn write_line(&mut self, out: &mut Vec<u8>, decoded: &Decoded<'_>) {
        match decoded {
            Ok(m) => self.entry(out, m, None),
            Err(u) => self.entry(out, &u.partial, Some(&u.error)),
        }
        out.push(b'\n');
    }

    /// Appends the object of a decoded mutation (no newline): the bytes
    /// `serde_json::to_writer` gives for [`Mutation`]'s `Serialize`.
    pub fn write_mutation(&mut self, out: &mut Vec<u8>, m: &Mutation<'_>) {
        self.entry(out, m, None);
    }
    /// Appends a value's JSON: the bytes of its `Serialize` through
    /// `serde_json`, for a value whose elements all decode
    /// ([`Value::validate`]); `Err` (and nothing written) otherwise.
    pub fn write_value(&mut self, out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), ValueError> {
        self.values.write_value(out, v)
    }

    /// Appends a value as an object key, as the change format writes map
    /// keys: its JSON when that is a string, else its JSON text as a string.
    pub fn write_key(&mut self, out: &mut Vec<u8>, k: &Value<'_>) -> Result<(), ValueError> {
        self.values.write_key(out, k)
    }

    fn entry(&mut self, out: &mut Vec<u8>, m: &Mutation<'_>, failure: Option<&MutationError>) {
        let failed_table = failure.and_then(|f| f.table_id).and_then(|id| m.schema.table_by_id(&id));
        // `{"segment_id":ID,"position":`, the same for a segment's entries.
        let id = m.segment_id();
        match &self.segment_prefix {
            Some((last, prefix)) if *last == id => out.extend_from_slice(prefix),
            _ => {
                let mut prefix = b"{\"segment_id\":".to_vec();
                long(&mut prefix, id);
                prefix.extend_from_slice(b",\"position\":");
                out.extend_from_slice(&prefix);
                self.segment_prefix = Some((id, prefix));
            }
        }
        int(out, m.position());
        out.extend_from_slice(b",\"keyspace\":");
        // The keyspace of the first update's table (`Mutation::keyspace`).
        match m.updates().next().map(|u| u.table()).or(failed_table) {
            Some(t) => t.write_json_keyspace(out),
            None => null(out),
        }
        out.extend_from_slice(b",\"updates\":[");
        let mut first = true;
        for u in m.updates() {
            if !first {
                out.push(b',');
            }
            first = false;
            self.update(out, &u);
        }
        if let Some(f) = failure {
            if !first {
                out.push(b',');
            }
            out.push(b'{');
            if let Some(t) = failed_table {
                key(out, "table");
                string(out, &t.name);
                out.push(b',');
            }
            key(out, "table_id");
            match f.table_id {
                Some(id) => uuid(out, &id),
                None => null(out),
            }
            out.push(b',');
            key(out, "raw_hex");
            hex(out, m.bytes(), false);
            out.push(b'}');
        }
        out.push(b']');
        if let Some(f) = failure {
            out.extend_from_slice(b",\"error\":");
            string(out, &f.error.to_string());
        }
        out.push(b'}');
    }

    fn update(&mut self, out: &mut Vec<u8>, u: &PartitionUpdate<'_>) {
        out.extend_from_slice(b"{\"table\":");
        u.table().write_json_table_name(out);
        out.extend_from_slice(b",\"table_id\":");
        uuid(out, &u.table_id());
        out.extend_from_slice(b",\"digest\":\"");
        u.digest().write_hex(out);
        out.extend_from_slice(b"\",\"partition_key\":");
        // Written as it goes; a component that does not decode replaces the
        // whole key with its invalid form, as the serde path does.
        let at = out.len();
        out.push(b'{');
        let mut failed = None;
        for (i, kv) in u.partition_key().enumerate() {
            match kv {
                Ok((col, v)) => {
                    if i > 0 {
                        out.push(b',');
                    }
                    column_key(out, u.table(), u.table().partition_key_ref(i), &col.name);
                    self.value_json(out, Ok(v), &[]);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => out.push(b'}'),
            Some(e) => {
                out.truncate(at);
                self.value_json(out, Err(e), u.partition_key_bytes());
            }
        }
        // Constant runs are appended whole (fewer length updates).
        match u.partition_deletion() {
            None => out.extend_from_slice(b",\"partition_deletion\":null,\"rows\":["),
            d => {
                out.extend_from_slice(b",\"partition_deletion\":");
                deletion(out, d, None);
                out.extend_from_slice(b",\"rows\":[");
            }
        }
        for (i, r) in u.all_rows().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.row(out, &r);
        }
        out.extend_from_slice(b"],\"range_tombstones\":[");
        for (i, rt) in u.range_tombstones().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"start\":");
            self.bound(out, &rt.start());
            out.extend_from_slice(b",\"end\":");
            self.bound(out, &rt.end());
            out.extend_from_slice(b",\"deletion\":");
            deletion(out, rt.deletion(), None);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }

    fn bound(&mut self, out: &mut Vec<u8>, b: &Bound<'_>) {
        out.extend_from_slice(b"{\"clustering\":[");
        for (i, ((_, v), raw)) in b.clustering().zip(b.clustering_bytes()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match v {
                Some(v) => self.value_json(out, v, raw.unwrap_or_default()),
                None => null(out),
            }
        }
        out.extend_from_slice(b"],\"inclusive\":");
        boolean(out, b.inclusive());
        out.push(b'}');
    }

    fn row(&mut self, out: &mut Vec<u8>, r: &Row<'_>) {
        out.extend_from_slice(if r.is_static() {
            b"{\"static\":true,\"clustering\":{"
        } else {
            b"{\"static\":false,\"clustering\":{"
        });
        for (i, ((col, v), raw)) in r.clustering().zip(r.clustering_bytes()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            column_key(out, r.table(), r.table().clustering_ref(i), &col.name);
            match v {
                Some(v) => self.value_json(out, v, raw.unwrap_or_default()),
                None => null(out),
            }
        }
        match r.liveness() {
            Some(l) => {
                out.extend_from_slice(b"},\"liveness\":{\"timestamp\":");
                self.liveness(out, l);
            }
            None => out.extend_from_slice(b"},\"liveness\":null"),
        }
        match r.deletion() {
            Some(d) => {
                out.extend_from_slice(b",\"deletion\":");
                deletion(out, Some(d.time), Some(d.shadowable));
                out.extend_from_slice(b",\"cells\":{");
            }
            None => out.extend_from_slice(b",\"deletion\":null,\"cells\":{"),
        }
        for (i, c) in r.columns().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            c.write_json_key(out);
            self.column(out, &c);
        }
        out.extend_from_slice(b"}}");
    }

    fn column(&mut self, out: &mut Vec<u8>, c: &ColumnData<'_>) {
        if !c.is_complex() {
            match c.cells().next() {
                Some(cell) => self.cell(out, &cell, false),
                None => null(out),
            }
            return;
        }
        out.extend_from_slice(b"{\"deletion\":");
        deletion(out, c.complex_deletion(), None);
        out.extend_from_slice(b",\"cells\":[");
        for (i, cell) in c.cells().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.cell(out, &cell, true);
        }
        out.extend_from_slice(b"]}");
    }

    #[inline(always)]
    fn cell(&mut self, out: &mut Vec<u8>, c: &Cell<'_>, with_path: bool) {
        if with_path && let Some(path) = c.path() {
            out.push(b'{');
            key(out, "path");
            let raw = c.path_bytes().unwrap_or_default();
            match path {
                Ok(CellPath::ListElement(u)) => uuid(out, &u),
                Ok(CellPath::SetElement(v) | CellPath::MapKey(v)) => self.value_json(out, Ok(v), raw),
                Ok(CellPath::Field { name: Some(n), .. }) => string(out, n),
                Ok(CellPath::Field { index, name: None }) => int(out, index),
                Err(e) => self.value_json(out, Err(e), raw),
            }
            out.extend_from_slice(b",\"timestamp\":");
        } else {
            out.extend_from_slice(b"{\"timestamp\":");
        }
        self.timestamp(out, c.timestamp());
        if let Some(ldt) = c.local_deletion_time() {
            out.extend_from_slice(b",\"tombstone\":true,\"local_deletion_time\":");
            long(out, ldt);
        } else if let Some(ctx) = c.counter() {
            out.extend_from_slice(b",\"value\":");
            match ctx {
                Ok(ctx) => {
                    long(out, ctx.total());
                    out.extend_from_slice(b",\"shards\":[");
                    for (i, s) in ctx.shards().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"{\"counter_id\":");
                        uuid(out, &s.counter_id);
                        out.extend_from_slice(b",\"clock\":");
                        long(out, s.clock);
                        out.extend_from_slice(b",\"count\":");
                        long(out, s.count);
                        out.extend_from_slice(b",\"kind\":");
                        plain_string(out, s.kind.name());
                        out.push(b'}');
                    }
                    out.push(b']');
                }
                Err(e) => self.value_json(out, Err(e), c.value_bytes()),
            }
        } else if let Some(v) = c.value() {
            if matches!(v, Ok(Value::Empty)) {
                out.extend_from_slice(b",\"value\":null,\"empty\":true");
            } else {
                out.extend_from_slice(b",\"value\":");
                self.value_json(out, v, c.value_bytes());
            }
        }
        if let Some((ttl, expires_at)) = c.expiry() {
            out.extend_from_slice(b",\"ttl\":");
            int(out, ttl);
            out.extend_from_slice(b",\"expires_at\":");
            long(out, expires_at);
        }
        if c.is_dropped() {
            out.extend_from_slice(b",\"dropped\":true");
        }
        out.push(b'}');
    }

    /// A value, or `{"invalid": why, "hex": bytes}` when its bytes are not
    /// a value of its type (as `ValueJson` writes it).
    pub(crate) fn value_json(&mut self, out: &mut Vec<u8>, v: Result<Value<'_>, ValueError>, raw: &[u8]) {
        let err = match v {
            Ok(v) => {
                let at = out.len();
                match self.values.value(out, &v) {
                    Ok(()) => return,
                    Err(e) => {
                        out.truncate(at);
                        e
                    }
                }
            }
            Err(e) => e,
        };
        out.extend_from_slice(b"{\"invalid\":");
        string(out, &err.to_string());
        out.extend_from_slice(b",\"hex\":");
        hex(out, raw, true);
        out.push(b'}');
    }
}

/// A key column's name as a JSON key, rendered once per table.
fn column_key(out: &mut Vec<u8>, table: &Table, col: Option<ColumnRef>, name: &str) {
    match col {
        Some(col) => table.write_json_key(col, name, out),
        None => name_key(out, name),
    }
}

fn deletion(out: &mut Vec<u8>, d: Option<DeletionTime>, shadowable: Option<bool>) {
    let Some(d) = d else { return null(out) };
    out.extend_from_slice(b"{\"timestamp\":");
    long(out, d.timestamp);
    out.extend_from_slice(b",\"local_deletion_time\":");
    long(out, d.local_deletion_time);
    if let Some(s) = shadowable {
        out.extend_from_slice(b",\"shadowable\":");
        boolean(out, s);
    }
    out.push(b'}');
}

impl ChangeWriter {
    /// A timestamp, as [`long`] writes it; the last one's digits are
    /// copied instead of computed again.
    #[inline]
    fn timestamp(&mut self, out: &mut Vec<u8>, v: i64) {
        if let Some((last, digits, len)) = &self.last_ts
            && *last == v
        {
            // All twenty bytes, then cut: a copy of fixed length is a few
            // moves, one of the digits' own length a call.
            let at = out.len();
            out.extend_from_slice(digits);
            out.truncate(at + *len as usize);
            return;
        }
        let at = out.len();
        long(out, v);
        let text = &out[at..];
        let mut digits = [0u8; 20];
        digits[..text.len()].copy_from_slice(text);
        self.last_ts = Some((v, digits, text.len() as u8));
    }

    /// A liveness object after its `{"timestamp":`.
    fn liveness(&mut self, out: &mut Vec<u8>, l: Liveness) {
        self.timestamp(out, l.timestamp);
        if let Some((ttl, expires_at)) = l.expiry {
            out.extend_from_slice(b",\"ttl\":");
            int(out, ttl);
            out.extend_from_slice(b",\"expires_at\":");
            long(out, expires_at);
        }
        out.push(b'}');
    }
}
