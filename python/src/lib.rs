//! `cassandra_commitlog._native`: the crate as Python objects (PyO3). The
//! package `cassandra_commitlog` re-exports it with its pure-Python types
//! (`Date`, `Time`, `Duration`) and stubs.

mod changes;
mod convert;
mod error;
mod types;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use cassandra_commitlog::cdc::{
    self, ArchiveTo, BatchEntry, Checkpoint, CheckpointFile, DeleteFiles, Position, SegmentFiles, WatchOptions,
};
use cassandra_commitlog::mutation::{CellPath, Change as RustChange, Context, Decoder};
use cassandra_commitlog::schema::{Release, Schema, SchemaEvent, SchemaTracker};
use cassandra_commitlog::segment::{Item, Loss as RustLoss, ReadOptions, Segment};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use changes::Source;

/// One change: a row written or deleted, a partition or a range deleted.
#[pyclass(module = "cassandra_commitlog", frozen)]
pub struct Change {
    /// `insert`, `update`, `delete` (a row), `delete_partition` or `delete_range`.
    #[pyo3(get)]
    kind: &'static str,
    /// The table's keyspace.
    #[pyo3(get)]
    keyspace: Py<pyo3::types::PyString>,
    /// The table's name.
    #[pyo3(get)]
    table: Py<pyo3::types::PyString>,
    /// The static row (`key` then holds the partition key only).
    #[pyo3(get)]
    is_static: bool,
    /// The primary key of a row change; the partition key otherwise.
    #[pyo3(get)]
    key: PyObject,
    partition_len: usize,
    /// Each column written: its value (a non-frozen collection: the
    /// elements written; `None`: deleted or null).
    #[pyo3(get)]
    columns: PyObject,
    replaced: Vec<(Py<pyo3::types::PyString>, i64)>,
    liveness: Option<cassandra_commitlog::mutation::Liveness>,
    /// A range deletion's bounds: `{"start": {"clustering": [...], "inclusive": bool}, "end": ...}`.
    #[pyo3(get)]
    range: PyObject,
    deletion: Option<cassandra_commitlog::mutation::DeletionTime>,
    /// The write's timestamp (microseconds), where it has one.
    #[pyo3(get)]
    timestamp: Option<i64>,
    /// The row's (or its first expiring cell's) TTL in seconds.
    #[pyo3(get)]
    ttl: Option<i32>,
    digest: [u8; 32],
    /// The id of the segment holding the entry.
    #[pyo3(get)]
    segment_id: i64,
    /// The entry's commit-log position (the logical offset just past it).
    #[pyo3(get)]
    position: u64,
    source: Arc<Source>,
    update: usize,
    change: usize,
}

#[pymethods]
impl Change {
    /// The partition key (the first columns of `key`).
    #[getter]
    fn partition_key(&self, py: Python<'_>) -> PyResult<PyObject> {
        let d = PyDict::new(py);
        for (k, v) in self.key.bind(py).downcast::<PyDict>()?.iter().take(self.partition_len) {
            d.set_item(k, v)?;
        }
        Ok(d.into_any().unbind())
    }

    /// The partition update's digest (32 hex digits): the same on every replica.
    #[getter]
    fn digest(&self) -> &str {
        std::str::from_utf8(&self.digest).unwrap_or_default()
    }
    /// Non-frozen collections the write replaced whole (not only added
    /// to): column -> the timestamp of the deletion that cleared them.
    #[getter]
    fn replaced(&self, py: Python<'_>) -> PyResult<PyObject> {
        let d = PyDict::new(py);
        for (name, ts) in &self.replaced {
            d.set_item(name, ts)?;
        }
        Ok(d.into_any().unbind())
    }

    /// The row marker an `INSERT` writes: `{"timestamp", "ttl", "expires_at"}`, or None.
    #[getter]
    fn liveness(&self, py: Python<'_>) -> PyResult<PyObject> {
        let Some(l) = self.liveness else { return Ok(py.None()) };
        let d = PyDict::new(py);
        d.set_item("timestamp", l.timestamp)?;
        d.set_item("ttl", l.expiry.map(|(t, _)| t))?;
        d.set_item("expires_at", l.expiry.map(|(_, at)| at))?;
        Ok(d.into_any().unbind())
    }

    /// A deletion's `{"timestamp", "local_deletion_time"}`, or None.
    #[getter]
    fn deletion(&self, py: Python<'_>) -> PyResult<PyObject> {
        let Some(del) = self.deletion else { return Ok(py.None()) };
        let d = PyDict::new(py);
        d.set_item("timestamp", del.timestamp)?;
        d.set_item("local_deletion_time", del.local_deletion_time)?;
        Ok(d.into_any().unbind())
    }

    /// Every cell of the change, as written: column, path, value,
    /// timestamp, TTL, expiry, tombstone, dropped.
    #[getter]
    fn cells(&self, py: Python<'_>) -> PyResult<PyObject> {
        let c = convert::classes(py)?;
        let mut decoder = Decoder::new();
        let s = &self.source;
        let m = match decoder.decode(&s.bytes, &s.schema, s.context.clone()) {
            Ok(m) => m,
            Err(u) => u.partial,
        };
        let list = PyList::empty(py);
        let Some(u) = m.updates().nth(self.update) else { return Ok(list.into_any().unbind()) };
        let Some(RustChange::Row { row, .. }) = u.changes().nth(self.change) else {
            return Ok(list.into_any().unbind());
        };
        for col in row.columns() {
            for cell in col.cells() {
                let path = match cell.path().transpose().map_err(convert::err)? {
                    None => py.None(),
                    Some(CellPath::ListElement(id)) => convert::uuid(py, c, id.as_u128())?,
                    Some(CellPath::SetElement(v)) | Some(CellPath::MapKey(v)) => convert::value(py, c, &v)?,
                    Some(CellPath::Field { index, name }) => match name {
                        Some(n) => n.into_pyobject(py)?.into_any().unbind(),
                        None => index.into_pyobject(py)?.into_any().unbind(),
                    },
                };
                let counter = cell.counter().transpose().map_err(convert::err)?;
                let value = match &counter {
                    Some(ctx) => ctx.total().into_pyobject(py)?.into_any().unbind(),
                    None => convert::optional(py, c, cell.value().transpose().map_err(convert::err)?)?,
                };
                let (ttl, expires_at) = cell.expiry().map_or((None, None), |(t, at)| (Some(t), Some(at)));
                let shards = match counter {
                    None => py.None(),
                    Some(ctx) => {
                        let list = PyList::empty(py);
                        for s in ctx.shards() {
                            let id = convert::uuid(py, c, s.counter_id.as_u128())?;
                            list.append(PyTuple::new(
                                py,
                                [
                                    id,
                                    s.clock.into_pyobject(py)?.into_any().unbind(),
                                    s.count.into_pyobject(py)?.into_any().unbind(),
                                ],
                            )?)?;
                        }
                        list.into_any().unbind()
                    }
                };
                let cell = Cell {
                    column: col.name().to_owned(),
                    path,
                    value,
                    timestamp: cell.timestamp(),
                    ttl,
                    expires_at,
                    tombstone: cell.is_tombstone(),
                    local_deletion_time: cell.local_deletion_time(),
                    dropped: cell.is_dropped(),
                    shards,
                };
                list.append(Py::new(py, cell)?)?;
            }
        }
        Ok(list.into_any().unbind())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Change({} {}.{} key={} at {}/{})",
            self.kind,
            self.keyspace,
            self.table,
            self.key.bind(py).repr()?,
            self.segment_id,
            self.position
        ))
    }
}

/// One cell of a change.
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct Cell {
    column: String,
    /// A collection element's path (list: its time-based id; set: the
    /// element; map: the key; UDT: the field name), else None.
    path: PyObject,
    value: PyObject,
    timestamp: i64,
    ttl: Option<i32>,
    /// Expiry, seconds since the epoch.
    expires_at: Option<i64>,
    tombstone: bool,
    local_deletion_time: Option<i64>,
    /// A cell of a dropped column.
    dropped: bool,
    /// A counter cell's shards: `(counter_id, clock, count)`, else None.
    shards: PyObject,
}

#[pymethods]
impl Cell {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Cell({} path={} value={} ts={}{})",
            self.column,
            self.path.bind(py).repr()?,
            self.value.bind(py).repr()?,
            self.timestamp,
            if self.tombstone { " tombstone" } else { "" }
        ))
    }
}

/// Data that could not be read: an entry, the rest of a section, a section.
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct Loss {
    segment_id: i64,
    /// First logical position lost.
    start: u64,
    /// Logical position just past the loss.
    end: u64,
    /// What was found.
    detail: String,
    /// File offset of the section's sync marker.
    section_offset: u64,
    /// A notice of damage read around (nothing lost).
    repaired: bool,
}

#[pymethods]
impl Loss {
    fn __repr__(&self) -> String {
        format!("Loss(segment {} {}..{}: {})", self.segment_id, self.start, self.end, self.detail)
    }
}

fn loss(l: &RustLoss) -> Loss {
    Loss {
        segment_id: l.segment_id,
        start: l.start,
        end: l.end,
        detail: l.kind.to_string(),
        section_offset: l.section_file_offset,
        repaired: l.kind.is_repaired(),
    }
}

/// The schema changed (a DDL in the log).
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct SchemaChange {
    keyspace: String,
    version: u64,
    created: Vec<String>,
    altered: Vec<String>,
    dropped: Vec<String>,
    types: Vec<String>,
    segment_id: Option<i64>,
    position: Option<u64>,
}

/// A `TRUNCATE`: a sink clears its copy of the table.
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct Truncation {
    keyspace: Option<String>,
    table: Option<String>,
    table_id: String,
    /// The commit-log position Cassandra recorded with it.
    truncated_segment_id: i64,
    truncated_position: u32,
    /// Milliseconds since the epoch.
    truncated_at: Option<i64>,
    segment_id: Option<i64>,
    position: Option<u64>,
}

/// A schema mutation that could not be applied (decoding goes on).
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct SchemaNotApplied {
    error: String,
}

fn schema_event(py: Python<'_>, e: &SchemaEvent) -> PyResult<PyObject> {
    Ok(match e {
        SchemaEvent::Changed(c) => {
            let names = |v: &Vec<(String, _)>| v.iter().map(|(n, _)| n.clone()).collect();
            Py::new(
                py,
                SchemaChange {
                    keyspace: c.keyspace.clone(),
                    version: c.version,
                    created: names(&c.created),
                    altered: names(&c.altered),
                    dropped: names(&c.dropped),
                    types: c.types.clone(),
                    segment_id: c.at.segment_id,
                    position: c.at.logical,
                },
            )?
            .into_any()
        }
        SchemaEvent::Truncated(t) => Py::new(
            py,
            Truncation {
                keyspace: t.keyspace.clone(),
                table: t.table.clone(),
                table_id: t.table_id.to_string(),
                truncated_segment_id: t.segment_id,
                truncated_position: t.position,
                truncated_at: t.truncated_at,
                segment_id: t.at.segment_id,
                position: t.at.logical,
            },
        )?
        .into_any(),
        SchemaEvent::NotApplied(err) => Py::new(py, SchemaNotApplied { error: err.to_string() })?.into_any(),
        _ => py.None(),
    })
}

/// Keys of encrypted segments: alias -> AES key bytes.
fn read_options(keys: Option<&Bound<'_, PyDict>>) -> PyResult<ReadOptions> {
    let mut opts = ReadOptions::new();
    if let Some(keys) = keys {
        for (alias, key) in keys.iter() {
            opts = opts.key(alias.extract::<String>()?, key.extract::<Vec<u8>>()?);
        }
    }
    Ok(opts)
}

fn parse_schema(text: Option<&str>) -> PyResult<Option<Schema>> {
    text.map(|t| Schema::parse(t).map_err(|e| PyValueError::new_err(format!("schema: {e}")))).transpose()
}

/// One entry of a segment: its changes, and what its decoding found.
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct Entry {
    segment_id: i64,
    position: u64,
    changes: Vec<Py<Change>>,
    schema_events: Vec<PyObject>,
    /// Why (part of) the entry did not decode, if it did not.
    error: Option<String>,
}

/// What `read_segment` found.
#[pyclass(module = "cassandra_commitlog", frozen, get_all)]
pub struct SegmentRead {
    segment_id: i64,
    entries: Vec<Py<Entry>>,
    losses: Vec<Py<Loss>>,
    /// How the walk ended: `clean`, `truncated` or `corrupt`.
    tail: String,
    tail_detail: String,
}

/// Reads one segment whole: its entries decoded into changes (the schema
/// from the log, as the watcher follows it, started from `schema` if given),
/// and what was lost.
#[pyfunction]
#[pyo3(signature = (path, keys=None, schema=None, include_system=false))]
fn read_segment(
    py: Python<'_>,
    path: PathBuf,
    keys: Option<&Bound<'_, PyDict>>,
    schema: Option<&str>,
    include_system: bool,
) -> PyResult<SegmentRead> {
    let opts = read_options(keys)?;
    let bootstrap = parse_schema(schema)?;
    let (segment_id, walked, losses, tail, observed) = py.allow_threads(|| {
        let seg = Segment::open(&path).map_err(error::segment)?;
        let release = Release::from_descriptor_version(seg.descriptor().version).unwrap_or(Release::Cassandra4);
        let mut tracker = match &bootstrap {
            Some(b) => SchemaTracker::with_bootstrap(release, b),
            None => SchemaTracker::new(release),
        };
        let mut reader = seg.reader(&opts).map_err(error::segment)?;
        let file: Arc<std::path::Path> = Arc::from(path.as_path());
        let (mut walked, mut losses) = (Vec::new(), Vec::new());
        while let Some(item) = reader.next().map_err(error::segment)? {
            match item {
                Item::Entry(e) => {
                    let context = Context::of_entry(&e, seg.descriptor(), Some(file.clone()));
                    walked.push(BatchEntry { bytes: seg.entry_bytes(&e), context });
                }
                Item::Loss(l) => losses.push(l),
                Item::Section(_) => {}
            }
        }
        let tail = reader.summary().tail;
        // The schema entry by entry: it may change between two.
        let mut schema_decoder = Decoder::new();
        let observed: (Vec<Vec<SchemaEvent>>, Vec<Arc<Schema>>) = walked
            .iter()
            .map(|e| {
                let events = tracker.observe(&mut schema_decoder, &e.bytes, e.context.clone());
                (events, tracker.schema().clone())
            })
            .unzip();
        Ok::<_, PyErr>((seg.id(), walked, losses, tail, observed))
    })?;
    let (events, schemas) = observed;
    let mut entries = Vec::with_capacity(walked.len());
    let mut pool = changes::Pool::default();
    let _paused = GcPause::new(py)?;
    let mut changes = Vec::new();
    let mut next = events.iter();
    let schemas_of = changes::Schemas::Each(&schemas);
    changes::make_changes(py, &mut pool, &walked, schemas_of, include_system, &mut changes, |e, changes| {
        let Some(events) = next.next() else { return Ok(()) };
        let entry = Entry {
            segment_id: e.segment_id,
            position: e.position,
            changes: std::mem::take(changes),
            schema_events: events.iter().map(|ev| schema_event(py, ev)).collect::<PyResult<Vec<_>>>()?,
            error: e.error.clone(),
        };
        entries.push(Py::new(py, entry)?);
        Ok(())
    })?;
    Ok(SegmentRead {
        segment_id,
        entries,
        losses: losses.iter().map(|l| Py::new(py, loss(l))).collect::<PyResult<_>>()?,
        tail: tail.map_or("clean", |t| t.class_name()).to_owned(),
        tail_detail: tail.map(|t| t.to_string()).unwrap_or_default(),
    })
}

/// A batch of changes: the newly durable part of one segment.
#[pyclass(module = "cassandra_commitlog")]
pub struct Batch {
    #[pyo3(get)]
    segment_id: i64,
    /// Consumed before this batch: `(segment_id, position)`.
    #[pyo3(get)]
    start: (i64, u64),
    /// Consumed with this batch.
    #[pyo3(get)]
    end: (i64, u64),
    /// The batch finishes its segment.
    #[pyo3(get)]
    completed: bool,
    /// The batch's changes (iterating the batch gives them too).
    #[pyo3(get)]
    changes: Vec<Py<Change>>,
    /// Schema changes and truncations the batch's last entry made.
    #[pyo3(get)]
    schema_events: Vec<PyObject>,
    /// Data lost to damage in the batch's range.
    #[pyo3(get)]
    losses: Vec<Py<Loss>>,
    /// Entries that did not decode, and why.
    #[pyo3(get)]
    errors: Vec<String>,
    checkpoint: Checkpoint,
    watcher: Py<Watcher>,
    acked: bool,
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        self.changes.len()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        Ok(PyList::new(py, slf.changes.iter().map(|c| c.clone_ref(py)))?.call_method0("__iter__")?.unbind())
    }

    /// Saves the checkpoint (durably, with the schema state) and
    /// acknowledges the batch: its segment may then be cleaned up.
    fn ack(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.acked {
            return Ok(());
        }
        let w = self.watcher.borrow(py);
        let checkpoint = self.checkpoint.clone();
        if let Some(file) = &w.checkpoints {
            py.allow_threads(|| file.save(&checkpoint)).map_err(error::checkpoint)?;
        }
        if let Some(inner) = w.inner.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            inner.ack(checkpoint.position);
        }
        self.acked = true;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Batch(segment {} {:?}..{:?}, {} changes)", self.segment_id, self.start, self.end, self.changes.len())
    }
}

macro_rules! event_class {
    ($name:ident, $doc:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        #[doc = $doc]
        #[pyclass(module = "cassandra_commitlog", frozen, get_all)]
        pub struct $name { $($field: $ty),* }

        #[pymethods]
        impl $name {
            fn __repr__(&self) -> String {
                let mut s = format!("{}(", stringify!($name));
                $( s.push_str(&format!("{}={:?} ", stringify!($field), self.$field)); )*
                s.truncate(s.trim_end().len());
                s.push(')');
                s
            }
        }
    };
}

event_class!(LostSegment, "A segment holding CDC data vanished before it was finished (deleted by Cassandra: `cdc_block_writes: false`).", {
    segment_id: i64, from_position: u64, to_position: Option<u64>,
});
event_class!(Damaged, "A segment is damaged where its data was durable, or unreadable: not read further, its files kept.", {
    segment_id: i64, position: u64, detail: String,
});
event_class!(Abandoned, "A segment a crash left unfinished was read to its end and is finished.", {
    segment_id: i64, idx_offset: u64, read_to: u64,
});
event_class!(IdxMismatch, "A completed segment ends elsewhere than its idx says (a replay writes the physical length).", {
    segment_id: i64, idx_offset: u64, end: u64, file_len: u64, cause: String,
});
event_class!(IdxBackwards, "An idx offset went backwards: ignored.", {
    segment_id: i64, previous: u64, found: u64,
});
event_class!(IdxMalformed, "An idx file not in Cassandra's format: ignored until it is.", {
    detail: String,
});
event_class!(Cleaned, "A finished, acknowledged segment was cleaned up.", {
    segment_id: i64,
});
event_class!(CleanupFailed, "The cleanup hook failed; it is tried again later.", {
    segment_id: i64, error: String,
});

/// Follows a `cdc_raw` directory: iterate it for batches (and events).
#[pyclass(module = "cassandra_commitlog")]
pub struct Watcher {
    /// Behind a lock: the watcher is used by one thread at a time.
    inner: std::sync::Mutex<Option<cdc::Watcher>>,
    checkpoints: Option<CheckpointFile>,
    include_system: bool,
    idle_timeout: Option<StdDuration>,
    last_data: std::time::Instant,
    /// What decoding a batch needs and the next one reuses.
    pool: std::sync::Mutex<changes::Pool>,
}

/// A number of seconds given as `name`: a ValueError when negative,
/// infinite or NaN.
fn seconds(name: &str, secs: Option<f64>) -> PyResult<Option<StdDuration>> {
    secs.map(|s| StdDuration::try_from_secs_f64(s).map_err(|e| PyValueError::new_err(format!("{name}={s}: {e}"))))
        .transpose()
}

/// The options with the cleanup hook a Python value names.
fn with_cleanup(opts: WatchOptions, cleanup: &Bound<'_, PyAny>) -> PyResult<WatchOptions> {
    if let Ok(s) = cleanup.extract::<String>() {
        if s == "delete" {
            return Ok(opts.cleanup(DeleteFiles));
        }
        if let Some(dir) = s.strip_prefix("archive:") {
            return Ok(opts.cleanup(ArchiveTo::new(dir)));
        }
        return Err(PyValueError::new_err(format!("cleanup: 'delete', 'archive:DIR' or a callable, not {s:?}")));
    }
    if cleanup.is_callable() {
        let f = cleanup.clone().unbind();
        return Ok(opts.cleanup(move |files: &SegmentFiles| {
            Python::with_gil(|py| {
                f.call1(py, (files.log.clone(), files.idx.clone()))
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
        }));
    }
    Err(PyTypeError::new_err("cleanup: 'delete', 'archive:DIR' or a callable(log_path, idx_path)"))
}

#[pymethods]
impl Watcher {
    #[new]
    #[pyo3(signature = (cdc_raw, checkpoint=None, schema_from_log=true, schema=None, keys=None, cleanup=None,
                        idle_timeout=None, abandoned_after=10.0, include_system=false, max_batch=4096))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cdc_raw: PathBuf,
        checkpoint: Option<PathBuf>,
        schema_from_log: bool,
        schema: Option<&str>,
        keys: Option<&Bound<'_, PyDict>>,
        cleanup: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<f64>,
        abandoned_after: Option<f64>,
        include_system: bool,
        max_batch: usize,
    ) -> PyResult<Watcher> {
        let schema = parse_schema(schema)?;
        let (idle_timeout, abandoned_after) =
            (seconds("idle_timeout", idle_timeout)?, seconds("abandoned_after", abandoned_after)?);
        let checkpoints = checkpoint.map(CheckpointFile::new);
        let start = match &checkpoints {
            Some(f) => f.load().map_err(error::checkpoint)?,
            None => None,
        };
        let mut opts = match (schema_from_log, schema) {
            (true, Some(s)) => WatchOptions::schema_from_log(&cdc_raw).bootstrap_schema(s),
            (true, None) => WatchOptions::schema_from_log(&cdc_raw),
            (false, Some(s)) => WatchOptions::new(&cdc_raw, s),
            (false, None) => return Err(PyValueError::new_err("schema_from_log=False needs a schema")),
        };
        opts =
            opts.start(start).read_options(read_options(keys)?).max_batch(max_batch).abandoned_after(abandoned_after);
        if let Some(c) = cleanup {
            opts = with_cleanup(opts, c)?;
        }
        let inner = cdc::Watcher::new(opts).map_err(error::cdc)?;
        Ok(Watcher {
            inner: std::sync::Mutex::new(Some(inner)),
            checkpoints,
            include_system,
            idle_timeout,
            last_data: std::time::Instant::now(),
            pool: Default::default(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next batch or event; `StopIteration` once `idle_timeout` passes
    /// with nothing new.
    fn __next__(slf: Bound<'_, Self>) -> PyResult<Option<PyObject>> {
        let py = slf.py();
        loop {
            let event = {
                let this = slf.borrow();
                let lock = &this.inner;
                // Reading, decompressing, checking CRCs: without the GIL, a
                // fifth of a second at a time (signals are looked at between).
                // No longer than the idle time left.
                let mut wait = StdDuration::from_millis(200);
                if let Some(idle) = this.idle_timeout {
                    wait = wait.min(idle.saturating_sub(this.last_data.elapsed()));
                }
                let got = py.allow_threads(|| {
                    let mut inner = lock.lock().unwrap_or_else(|p| p.into_inner());
                    inner.as_mut().map(|w| w.next_event_within(wait))
                });
                got.ok_or_else(|| PyValueError::new_err("the watcher is closed"))?.map_err(error::cdc)?
            };
            py.check_signals()?;
            let Some(event) = event else {
                let this = slf.borrow();
                if this.idle_timeout.is_some_and(|idle| this.last_data.elapsed() >= idle) {
                    return Ok(None);
                }
                continue;
            };
            slf.borrow_mut().last_data = std::time::Instant::now();
            return Ok(Some(match event {
                cdc::Event::Batch(b) => batch(py, &slf, b)?,
                cdc::Event::Lost { segment_id, from, to } => {
                    Py::new(py, LostSegment { segment_id, from_position: from, to_position: to })?.into_any()
                }
                cdc::Event::Damaged { segment_id, position, detail } => {
                    Py::new(py, Damaged { segment_id, position, detail: format!("{detail:?}") })?.into_any()
                }
                cdc::Event::Abandoned { segment_id, idx_offset, read_to } => {
                    Py::new(py, Abandoned { segment_id, idx_offset, read_to })?.into_any()
                }
                cdc::Event::IdxMismatch { segment_id, idx_offset, end, file_len, cause } => {
                    Py::new(py, IdxMismatch { segment_id, idx_offset, end, file_len, cause: format!("{cause:?}") })?
                        .into_any()
                }
                cdc::Event::IdxBackwards { segment_id, previous, found } => {
                    Py::new(py, IdxBackwards { segment_id, previous, found })?.into_any()
                }
                cdc::Event::IdxMalformed(e) => Py::new(py, IdxMalformed { detail: e.to_string() })?.into_any(),
                cdc::Event::Cleaned { segment_id } => Py::new(py, Cleaned { segment_id })?.into_any(),
                cdc::Event::CleanupFailed { segment_id, error } => {
                    Py::new(py, CleanupFailed { segment_id, error: error.to_string() })?.into_any()
                }
                _ => continue,
            }));
        }
    }

    /// Consumed and durable positions, lag, segments awaiting cleanup,
    /// damaged, abandoned, and the segment the abandonment rule holds back.
    fn metrics(&self, py: Python<'_>) -> PyResult<PyObject> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let m = inner.as_ref().ok_or_else(|| PyValueError::new_err("the watcher is closed"))?.metrics();
        let d = PyDict::new(py);
        let pos = |p: Option<Position>| p.map(|p| (p.segment_id, p.offset));
        d.set_item("consumed", pos(m.consumed))?;
        d.set_item("durable", pos(m.durable))?;
        d.set_item("lag_bytes", m.lag_bytes)?;
        d.set_item("lag_segments", m.lag_segments)?;
        d.set_item("awaiting_cleanup", m.awaiting_cleanup)?;
        d.set_item("kept", m.kept)?;
        d.set_item("damaged_segments", m.damaged_segments)?;
        d.set_item("abandoned_segments", m.abandoned_segments)?;
        d.set_item("held_back", m.held_back.map(|h| h.segment_id))?;
        Ok(d.into_any().unbind())
    }

    /// Stops watching (files are closed; batches already given stay valid).
    fn close(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The cyclic garbage collector paused while a batch's objects are made
/// (enabled again after, if it was).
struct GcPause<'py> {
    gc: Option<Bound<'py, PyModule>>,
}

impl<'py> GcPause<'py> {
    fn new(py: Python<'py>) -> PyResult<GcPause<'py>> {
        let gc = py.import("gc")?;
        if gc.call_method0("isenabled")?.extract::<bool>()? {
            gc.call_method0("disable")?;
            return Ok(GcPause { gc: Some(gc) });
        }
        Ok(GcPause { gc: None })
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if let Some(gc) = &self.gc {
            let _ = gc.call_method0("enable");
        }
    }
}

/// A Rust batch as a Python `Batch`: decoded without the GIL, then made
/// Python objects.
fn batch(py: Python<'_>, watcher: &Bound<'_, Watcher>, b: cdc::Batch) -> PyResult<PyObject> {
    let include_system = watcher.borrow().include_system;
    let schema = b.schema().clone();
    // The decoders and names of the previous batch, reused.
    let mut pool = std::mem::take(&mut *watcher.borrow().pool.lock().unwrap_or_else(|p| p.into_inner()));
    let mut changes = Vec::with_capacity(b.entries.len());
    let mut errors = Vec::new();
    {
        // A batch makes thousands of containers at once: the cyclic garbage
        // collector, run every 700 of them, would walk them over and over.
        let _paused = GcPause::new(py)?;
        let schemas = changes::Schemas::One(&schema);
        changes::make_changes(py, &mut pool, &b.entries, schemas, include_system, &mut changes, |e, _| {
            errors.extend(e.error.clone());
            Ok(())
        })?;
    }
    *watcher.borrow().pool.lock().unwrap_or_else(|p| p.into_inner()) = pool;
    let schema_events = b.schema_events.iter().map(|e| schema_event(py, e)).collect::<PyResult<Vec<_>>>()?;
    let batch = Batch {
        segment_id: b.segment_id,
        start: (b.from.segment_id, b.from.offset),
        end: (b.to.segment_id, b.to.offset),
        completed: b.completed,
        changes,
        schema_events,
        losses: b.losses.iter().map(|l| Py::new(py, loss(l))).collect::<PyResult<_>>()?,
        errors,
        checkpoint: b.checkpoint(),
        watcher: watcher.clone().unbind(),
        acked: false,
    };
    Ok(Py::new(py, batch)?.into_any())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CommitLogError", py.get_type::<error::CommitLogError>())?;
    m.add_function(wrap_pyfunction!(read_segment, m)?)?;
    m.add_class::<Watcher>()?;
    m.add_class::<Batch>()?;
    m.add_class::<Change>()?;
    m.add_class::<Cell>()?;
    m.add_class::<Loss>()?;
    m.add_class::<Entry>()?;
    m.add_class::<SegmentRead>()?;
    m.add_class::<SchemaChange>()?;
    m.add_class::<Truncation>()?;
    m.add_class::<SchemaNotApplied>()?;
    m.add_class::<LostSegment>()?;
    m.add_class::<Damaged>()?;
    m.add_class::<Abandoned>()?;
    m.add_class::<IdxMismatch>()?;
    m.add_class::<IdxBackwards>()?;
    m.add_class::<IdxMalformed>()?;
    m.add_class::<Cleaned>()?;
    m.add_class::<CleanupFailed>()?;
    m.add_class::<types::Date>()?;
    m.add_class::<types::Time>()?;
    m.add_class::<types::Duration>()?;
    let _ = PyTuple::empty(py);
    Ok(())
}
