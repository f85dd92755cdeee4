//! Entries to changes in two steps: decoded without the GIL (mutations
//! parsed and validated, rows merged, digests hashed, values decoded into
//! views of the batch's bytes), then made Python objects with it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cassandra_commitlog::cdc::BatchEntry;
use cassandra_commitlog::mutation::{
    Change as RustChange, CollectionKind, Context, Decoded, Decoder, DeletionTime, Element, FieldName, Merged,
    Mutation, PartitionUpdate, Row,
};
use cassandra_commitlog::schema::{SYSTEM_KEYSPACES, Schema};
use cassandra_commitlog::value::{Value, ValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{self, Classes};

/// A change, decoded, not yet a Python object. Its key columns, columns
/// and replaced collections are ranges of its batch's shared lists (three
/// allocations a batch, not three a change).
pub struct Pre<'b> {
    kind: &'static str,
    keyspace: &'b str,
    table: &'b str,
    is_static: bool,
    key: Range<usize>,
    /// How many of the key's first columns are the partition key.
    partition_len: usize,
    columns: Range<usize>,
    replaced: Range<usize>,
    liveness: Option<cassandra_commitlog::mutation::Liveness>,
    range: Option<Box<RangePre<'b>>>,
    deletion: Option<DeletionTime>,
    timestamp: Option<i64>,
    ttl: Option<i32>,
    digest: [u8; 32],
    update: usize,
    change: usize,
}

/// A range deletion's bounds, and the table's clustering columns with
/// their order.
struct RangePre<'b> {
    start: (Vec<Option<Value<'b>>>, bool),
    end: (Vec<Option<Value<'b>>>, bool),
    clustering: Vec<(&'b str, &'static str)>,
}

/// An entry's place in its batch: its changes and whether it decoded.
pub struct PreEntry {
    changes: Range<usize>,
    pub error: Option<String>,
    pub segment_id: i64,
    pub position: u64,
}

/// A batch's entries decoded into changes.
#[derive(Default)]
pub struct PreBatch<'b> {
    pub entries: Vec<PreEntry>,
    changes: Vec<Pre<'b>>,
    key: Vec<(&'b str, Option<Value<'b>>)>,
    columns: Vec<(&'b str, Merged<'b>)>,
    replaced: Vec<(&'b str, i64)>,
}

fn row_timestamp(row: &Row<'_>) -> Option<i64> {
    row.liveness()
        .map(|l| l.timestamp)
        .or_else(|| {
            let mut max = None;
            for c in row.columns() {
                for cell in c.cells() {
                    max = max.max(Some(cell.timestamp()));
                }
            }
            max
        })
        .or_else(|| row.deletion().map(|d| d.time.timestamp))
}

fn row_ttl(row: &Row<'_>) -> Option<i32> {
    row.liveness()
        .and_then(|l| l.expiry.map(|(ttl, _)| ttl))
        .or_else(|| row.columns().find_map(|c| c.cells().find_map(|cell| cell.expiry().map(|(ttl, _)| ttl))))
}

fn order(c: &cassandra_commitlog::schema::Column) -> &'static str {
    match c.kind {
        cassandra_commitlog::schema::ColumnKind::Clustering(cassandra_commitlog::schema::Order::Desc) => "desc",
        _ => "asc",
    }
}

impl<'b> PreBatch<'b> {
    /// The partition key's columns pushed; their range.
    fn push_partition_key(&mut self, u: &PartitionUpdate<'b>) -> Result<Range<usize>, ValueError> {
        let from = self.key.len();
        for kv in u.partition_key() {
            let (c, v) = kv?;
            self.key.push((c.name.as_str(), Some(v)));
        }
        Ok(from..self.key.len())
    }

    /// One partition update's changes.
    fn update(&mut self, u: &PartitionUpdate<'b>, update: usize) -> Result<(), ValueError> {
        let table = u.table();
        let digest = u.digest().hex();
        for (change, c) in u.changes().enumerate() {
            let base = |kind| Pre {
                kind,
                keyspace: &table.keyspace,
                table: &table.name,
                is_static: false,
                key: 0..0,
                partition_len: 0,
                columns: 0..0,
                replaced: 0..0,
                liveness: None,
                range: None,
                deletion: None,
                timestamp: None,
                ttl: None,
                digest,
                update,
                change,
            };
            let pre = match c {
                RustChange::Row { kind, row } => {
                    let key = row.primary_key()?;
                    let mut p = base(kind.name());
                    p.is_static = row.is_static();
                    let from = self.key.len();
                    self.key.extend(key.partition.iter().map(|(c, v)| (c.name.as_str(), Some(*v))));
                    p.partition_len = self.key.len() - from;
                    self.key.extend(key.clustering.iter().map(|(c, v)| (c.name.as_str(), *v)));
                    p.key = from..self.key.len();
                    let (columns, replaced) = (self.columns.len(), self.replaced.len());
                    for col in row.columns() {
                        if col.cells().any(|cell| cell.is_dropped()) {
                            continue; // data of a dropped column
                        }
                        let merged = col.merged()?;
                        if let Some(d) = col.complex_deletion() {
                            self.replaced.push((col.name(), d.timestamp));
                        }
                        self.columns.push((col.name(), merged));
                    }
                    p.columns = columns..self.columns.len();
                    p.replaced = replaced..self.replaced.len();
                    p.deletion = row.deletion().map(|d| d.time);
                    p.liveness = row.liveness();
                    p.timestamp = row_timestamp(&row);
                    p.ttl = row_ttl(&row);
                    p
                }
                RustChange::PartitionDelete(d) => {
                    let mut p = base("delete_partition");
                    p.key = self.push_partition_key(u)?;
                    p.partition_len = p.key.len();
                    (p.deletion, p.timestamp) = (Some(d), Some(d.timestamp));
                    p
                }
                RustChange::RangeDelete(rt) => {
                    let mut p = base("delete_range");
                    p.key = self.push_partition_key(u)?;
                    p.partition_len = p.key.len();
                    let bound =
                        |b: cassandra_commitlog::mutation::Bound<'b>| -> Result<Vec<Option<Value<'b>>>, ValueError> {
                            b.clustering().map(|(_, v)| v.transpose()).collect()
                        };
                    let (s, e) = (rt.start(), rt.end());
                    p.range = Some(Box::new(RangePre {
                        start: (bound(s)?, s.inclusive()),
                        end: (bound(e)?, e.inclusive()),
                        clustering: table.clustering().map(|c| (c.name.as_str(), order(c))).collect(),
                    }));
                    p.deletion = rt.deletion();
                    p.timestamp = p.deletion.map(|d| d.timestamp);
                    p
                }
                _ => continue,
            };
            self.changes.push(pre);
        }
        Ok(())
    }

    fn mutation(&mut self, m: &Mutation<'b>, include_system: bool) -> Result<(), ValueError> {
        for (i, u) in m.updates().enumerate() {
            if !include_system && SYSTEM_KEYSPACES.contains(&u.table().keyspace.as_str()) {
                continue;
            }
            self.update(&u, i)?;
        }
        Ok(())
    }

    /// An entry decoded (by `decoded`, from its decoder) into changes.
    pub fn entry(&mut self, decoded: Decoded<'b>, ctx: &Context, include_system: bool) {
        let marks = (self.changes.len(), self.key.len(), self.columns.len(), self.replaced.len());
        let mut error = None;
        let result = match decoded {
            Ok(m) => self.mutation(&m, include_system),
            Err(u) => {
                // Unknown tables (Cassandra's own without a schema) are not
                // errors a consumer acts on unless it asked for system tables.
                if include_system || !u.error.is_unknown_table() {
                    error = Some(u.error.to_string());
                }
                self.mutation(&u.partial, include_system)
            }
        };
        if let Err(err) = result {
            // A value that does not decode costs its entry's changes.
            error = Some(format!("segment {} position {}: {err}", ctx.segment_id, ctx.position));
            self.changes.truncate(marks.0);
            self.key.truncate(marks.1);
            self.columns.truncate(marks.2);
            self.replaced.truncate(marks.3);
        }
        self.entries.push(PreEntry {
            changes: marks.0..self.changes.len(),
            error,
            segment_id: ctx.segment_id,
            position: ctx.position,
        });
    }
}

/// How many changes, key columns and columns a batch held: the next one's
/// lists are made that long at once (growing them, copies and fresh pages,
/// was a twentieth of decoding).
#[derive(Clone, Copy, Default)]
pub struct Sizes {
    changes: usize,
    key: usize,
    columns: usize,
}

impl PreBatch<'_> {
    /// This batch's sizes, for the next.
    pub fn sizes(&self) -> Sizes {
        Sizes { changes: self.changes.len(), key: self.key.len(), columns: self.columns.len() }
    }
}

/// The schema of a run of entries: one for all (a watcher's batch), or
/// one each (a segment read whole, whose schema may change between two).
#[derive(Clone, Copy)]
pub enum Schemas<'a> {
    One(&'a Arc<Schema>),
    Each(&'a [Arc<Schema>]),
}

impl<'a> Schemas<'a> {
    fn of(self, entry: usize) -> &'a Arc<Schema> {
        match self {
            Schemas::One(s) => s,
            Schemas::Each(all) => &all[entry],
        }
    }
}

/// Decodes entries without the GIL: each with a decoder of its own (as
/// many in `decoders` as entries), kept while its values are (they view
/// the decoder's records). `first`: the first entry's index in `schemas`.
fn decode_all<'b>(
    entries: &'b [BatchEntry],
    schemas: Schemas<'b>,
    first: usize,
    decoders: &'b mut [Decoder],
    sizes: Sizes,
    include_system: bool,
) -> PreBatch<'b> {
    let mut b = PreBatch {
        entries: Vec::with_capacity(entries.len()),
        changes: Vec::with_capacity(sizes.changes),
        key: Vec::with_capacity(sizes.key),
        columns: Vec::with_capacity(sizes.columns),
        replaced: Vec::new(),
    };
    for (i, (e, d)) in entries.iter().zip(decoders.iter_mut()).enumerate() {
        let decoded = d.decode(&e.bytes, schemas.of(first + i), e.context.clone());
        b.entry(decoded, &e.context, include_system);
    }
    b
}

/// Entries the decoding thread hands over at a time.
const CHUNK: usize = 256;

/// What decoding reuses from one batch to the next: a batch's decoders
/// freed and made again were a tenth of its time.
#[derive(Default)]
pub struct Pool {
    decoders: Vec<Decoder>,
    names: Names,
    sizes: Sizes,
}

/// Entries as Python `Change` objects, appended to `out`, with `each`
/// called after each entry's (with its decoding's outcome). The entries
/// are decoded by another thread, a chunk at a time, while this one makes
/// the objects of the chunk before; the decoding never holds the GIL.
pub fn make_changes(
    py: Python<'_>,
    pool: &mut Pool,
    entries: &[BatchEntry],
    schemas: Schemas<'_>,
    include_system: bool,
    out: &mut Vec<Py<crate::Change>>,
    mut each: impl FnMut(&PreEntry, &mut Vec<Py<crate::Change>>) -> PyResult<()>,
) -> PyResult<()> {
    let c = convert::classes(py)?;
    let Pool { decoders, names, sizes } = pool;
    // A decoder an entry: its values view the decoder's records while the
    // chunk's objects are made.
    if decoders.len() < entries.len() {
        decoders.resize_with(entries.len(), Decoder::new);
    }
    let start = *sizes;
    let done = std::thread::scope(|scope| -> PyResult<usize> {
        let (tx, mut rx) = std::sync::mpsc::sync_channel(2);
        let decoding = scope.spawn(move || {
            let mut sizes = start;
            for (i, (chunk, decoders)) in entries.chunks(CHUNK).zip(decoders.chunks_mut(CHUNK)).enumerate() {
                let pre = decode_all(chunk, schemas, i * CHUNK, decoders, sizes, include_system);
                sizes = pre.sizes();
                if tx.send(pre).is_err() {
                    break; // the objects failed to be made: nothing waits
                }
            }
            sizes
        });
        let mut at = 0;
        loop {
            let (back, got) = py.allow_threads(move || {
                let got = rx.recv();
                (rx, got)
            });
            rx = back;
            let Ok(pre) = got else { break };
            for (i, (e, entry)) in pre.entries.iter().zip(&entries[at..]).enumerate() {
                let schema = schemas.of(at + i).clone();
                let source = Arc::new(Source { bytes: entry.bytes.clone(), schema, context: entry.context.clone() });
                to_python(py, c, &pre, e, &source, names, out)?;
                each(e, out)?;
            }
            at += pre.entries.len();
        }
        *sizes =
            decoding.join().map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the decoding thread failed"))?;
        Ok(at)
    })?;
    if done != entries.len() {
        let msg = format!("{done} of {} entries decoded", entries.len());
        return Err(pyo3::exceptions::PyRuntimeError::new_err(msg));
    }
    Ok(())
}

/// What a change keeps to decode its cells when asked.
pub struct Source {
    pub bytes: Bytes,
    pub schema: Arc<Schema>,
    pub context: Context,
}

fn merged(py: Python<'_>, c: &Classes, m: &Merged<'_>) -> PyResult<PyObject> {
    Ok(match m {
        Merged::Value(v) => convert::optional(py, c, *v)?,
        Merged::Counter(n) => n.into_pyobject(py)?.into_any().unbind(),
        Merged::Collection { kind, elements, .. } => match kind {
            CollectionKind::List => {
                let list = PyList::empty(py);
                for e in elements {
                    if let Element::List(v) = e {
                        list.append(convert::value(py, c, v)?)?;
                    }
                }
                list.into_any().unbind()
            }
            CollectionKind::Set => {
                let set = pyo3::types::PySet::empty(py)?;
                let mut items = Vec::new();
                for e in elements {
                    if let Element::Set(v) = e {
                        items.push(convert::value(py, c, v)?);
                    }
                }
                for i in &items {
                    if set.add(i).is_err() {
                        return Ok(PyList::new(py, items)?.into_any().unbind());
                    }
                }
                set.into_any().unbind()
            }
            CollectionKind::Map => {
                let dict = PyDict::new(py);
                for e in elements {
                    if let Element::Map(k, v) = e {
                        dict.set_item(convert::key(py, convert::value(py, c, k)?)?, convert::value(py, c, v)?)?;
                    }
                }
                dict.into_any().unbind()
            }
            _ => {
                let dict = PyDict::new(py);
                for e in elements {
                    if let Element::Field(name, v) = e {
                        let v = convert::value(py, c, v)?;
                        match name {
                            FieldName::Name(n) => dict.set_item(*n, v)?,
                            FieldName::Index(i) => dict.set_item(*i, v)?,
                        }
                    }
                }
                dict.into_any().unbind()
            }
        },
        _ => py.None(),
    })
}

/// Python strings of the schema's names (keyspaces, tables, columns),
/// made once: a dict key made anew each time costs an allocation and a
/// hash. Looked up by the name's address (names come from the schema, so a
/// handful of addresses), checked against the text, which a different
/// name at a reused address replaces.
#[derive(Default)]
pub struct Names(HashMap<Address, (Box<str>, Py<PyString>), BuildHasherDefault<AddressHasher>>);

/// A name's address and length.
type Address = (usize, usize);

impl Names {
    fn get(&mut self, py: Python<'_>, name: &str) -> Py<PyString> {
        let at = (name.as_ptr() as usize, name.len());
        match self.0.get(&at) {
            Some((text, s)) if **text == *name => s.clone_ref(py),
            _ => {
                if self.0.len() >= 4096 {
                    self.0.clear(); // bounded: names of a schema that changed
                }
                let s = PyString::intern(py, name).unbind();
                self.0.insert(at, (name.into(), s.clone_ref(py)));
                s
            }
        }
    }
}

/// A hasher of addresses: one multiplication a word (SipHash's rounds are
/// a tenth of the lookups' time on a batch, for keys no one chooses).
#[derive(Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The changes of one of a batch's entries as Python `Change` objects.
pub fn to_python(
    py: Python<'_>,
    c: &Classes,
    b: &PreBatch<'_>,
    e: &PreEntry,
    source: &Arc<Source>,
    names: &mut Names,
    out: &mut Vec<Py<crate::Change>>,
) -> PyResult<()> {
    for p in &b.changes[e.changes.clone()] {
        let key = PyDict::new(py);
        for (name, v) in &b.key[p.key.clone()] {
            key.set_item(names.get(py, name), convert::optional(py, c, *v)?)?;
        }
        let columns = PyDict::new(py);
        for (name, m) in &b.columns[p.columns.clone()] {
            columns.set_item(names.get(py, name), merged(py, c, m)?)?;
        }
        let range = match &p.range {
            None => py.None(),
            Some(r) => {
                let bound = |(values, inclusive): &(Vec<Option<Value<'_>>>, bool)| -> PyResult<PyObject> {
                    let d = PyDict::new(py);
                    let items = values.iter().map(|v| convert::optional(py, c, *v)).collect::<PyResult<Vec<_>>>()?;
                    d.set_item("clustering", PyList::new(py, items)?)?;
                    d.set_item("inclusive", *inclusive)?;
                    Ok(d.into_any().unbind())
                };
                let d = PyDict::new(py);
                d.set_item("start", bound(&r.start)?)?;
                d.set_item("end", bound(&r.end)?)?;
                // What comparing a row with the bounds needs: the bounds are
                // in clustering order, a `desc` column's reversed.
                let names: Vec<&str> = r.clustering.iter().map(|(n, _)| *n).collect();
                let orders: Vec<&str> = r.clustering.iter().map(|(_, o)| *o).collect();
                d.set_item("columns", PyList::new(py, names)?)?;
                d.set_item("order", PyList::new(py, orders)?)?;
                d.into_any().unbind()
            }
        };
        let replaced = b.replaced[p.replaced.clone()].iter().map(|(n, ts)| (names.get(py, n), *ts)).collect();
        let change = crate::Change {
            kind: p.kind,
            keyspace: names.get(py, p.keyspace),
            table: names.get(py, p.table),
            is_static: p.is_static,
            key: key.into_any().unbind(),
            partition_len: p.partition_len,
            columns: columns.into_any().unbind(),
            replaced,
            liveness: p.liveness,
            range,
            deletion: p.deletion,
            timestamp: p.timestamp,
            ttl: p.ttl,
            digest: p.digest,
            segment_id: e.segment_id,
            position: e.position,
            source: source.clone(),
            update: p.update,
            change: p.change,
        };
        out.push(Py::new(py, change)?);
    }
    Ok(())
}
