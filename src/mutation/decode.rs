//! Decoding a serialized mutation (format spec §8) into records kept in a
//! reusable [`Decoder`]: byte ranges into the mutation, never copies.

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use super::error::{DecodeError, MutationError};
use super::view::Mutation;
use super::vint::read_unsigned_vint;
use crate::location::Location;
use crate::schema::{ColumnRef, CqlType, Schema, Table};
use crate::segment::{Descriptor, Entry};

/// `TIMESTAMP_EPOCH` of `SerializationHeader` (2015-09-22, microseconds).
pub const TIMESTAMP_EPOCH: i64 = 1_442_880_000_000_000;
/// `DELETION_TIME_EPOCH` (the same instant, seconds).
pub const DELETION_TIME_EPOCH: u32 = 1_442_880_000;

// Partition flags (§8.2).
const IS_EMPTY: u8 = 0x01;
const HAS_PARTITION_DELETION: u8 = 0x04;
const HAS_STATIC_ROW: u8 = 0x08;
const HAS_ROW_ESTIMATE: u8 = 0x10;
// Unfiltered flags (§8.5).
const END_OF_PARTITION: u8 = 0x01;
const IS_MARKER: u8 = 0x02;
const HAS_TIMESTAMP: u8 = 0x04;
const HAS_TTL: u8 = 0x08;
const HAS_DELETION: u8 = 0x10;
const HAS_ALL_COLUMNS: u8 = 0x20;
const HAS_COMPLEX_DELETION: u8 = 0x40;
const EXTENSION_FLAG: u8 = 0x80;
const IS_STATIC: u8 = 0x01;
const HAS_SHADOWABLE_DELETION: u8 = 0x02;
// Cell flags (§8.8).
pub(crate) const CELL_IS_DELETED: u8 = 0x01;
pub(crate) const CELL_IS_EXPIRING: u8 = 0x02;
pub(crate) const CELL_HAS_EMPTY_VALUE: u8 = 0x04;
const CELL_USE_ROW_TIMESTAMP: u8 = 0x08;
const CELL_USE_ROW_TTL: u8 = 0x10;

/// Where a mutation came from; carried into its views and errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The segment file, when known.
    pub file: Option<Arc<Path>>,
    /// Segment id.
    pub segment_id: i64,
    /// Commit-log position of the entry (the logical offset just past it).
    pub position: u64,
    /// File offset of the entry (plain segments only).
    pub file_offset: Option<u64>,
    /// Local deletion times are unsigned (descriptor 8, messaging 13, §8.9).
    pub unsigned_deletion_times: bool,
}

impl Context {
    /// The context of an entry read from a segment with this descriptor.
    pub fn of_entry(entry: &Entry<'_>, descriptor: &Descriptor, file: Option<Arc<Path>>) -> Context {
        Context {
            file,
            segment_id: entry.segment_id,
            position: entry.position,
            file_offset: entry.file_offset,
            unsigned_deletion_times: descriptor.unsigned_deletion_times(),
        }
    }

    /// The location of the entry.
    pub fn location(&self) -> Location {
        let mut loc = Location::file(self.file.clone()).with_segment(self.segment_id).at_logical(self.position);
        loc.file_offset = self.file_offset;
        loc
    }

    /// "No deletion time" in this context's interpretation.
    pub fn no_deletion_time(&self) -> i64 {
        if self.unsigned_deletion_times { u32::MAX as i64 } else { i32::MAX as i64 }
    }
}

/// A deletion: when it was made (microseconds) and the server time it was
/// applied (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeletionTime {
    /// `markedForDeleteAt`: everything at or before this timestamp is deleted.
    pub timestamp: i64,
    /// `localDeletionTime`, in seconds since the epoch.
    pub local_deletion_time: i64,
}

/// A row's primary-key liveness (the row marker an `INSERT` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Liveness {
    /// Write timestamp (microseconds).
    pub timestamp: i64,
    /// TTL in seconds and expiry time (seconds since the epoch), if expiring.
    pub expiry: Option<(i32, i64)>,
}

/// A byte range within the mutation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    #[inline]
    pub(crate) fn get(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start as usize..(self.start + self.len) as usize]
    }
}

/// A range of records in one of the arenas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Range {
    pub start: u32,
    pub end: u32,
}

impl Range {
    pub(crate) fn idx(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct CellRec {
    pub flags: u8,
    pub timestamp: i64,
    pub ldt: i64,
    pub ttl: i32,
    pub path: Span,
    pub value: Span,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ColRec {
    pub col: ColumnRef,
    pub complex: bool,
    pub deletion: Option<DeletionTime>,
    pub cells: Range,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RowRec {
    /// Place among the partition's rows and markers (0 for the static row).
    pub seq: u32,
    pub is_static: bool,
    pub clustering: Range,
    pub liveness: Option<Liveness>,
    pub deletion: Option<DeletionTime>,
    pub shadowable: bool,
    pub cols: Range,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct BoundRec {
    pub values: Range,
    pub inclusive: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RtRec {
    pub start: BoundRec,
    pub end: BoundRec,
    pub deletion: Option<DeletionTime>,
}

/// A range tombstone marker as written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MarkerRec {
    pub seq: u32,
    pub kind: u8,
    pub values: Range,
    pub deletion: Option<DeletionTime>,
    pub start_deletion: Option<DeletionTime>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct UpdateRec {
    pub table: u32,
    pub table_id: Uuid,
    /// The update's serialized bytes, table id to end of partition.
    pub bytes: Span,
    /// A LIVE deletion time (`markedForDeleteAt == i64::MIN`) is among
    /// them: its local deletion time is written differently by 5.0.
    pub live_written: bool,
    pub key: Span,
    pub deletion: Option<DeletionTime>,
    pub rows: Range,
    pub rts: Range,
    pub markers: Range,
}

/// The decoded records of one mutation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Records {
    pub updates: Vec<UpdateRec>,
    pub rows: Vec<RowRec>,
    pub cols: Vec<ColRec>,
    pub cells: Vec<CellRec>,
    /// Clustering values: `None` is null, an empty span an empty value.
    pub clustering: Vec<Option<Span>>,
    pub rts: Vec<RtRec>,
    pub markers: Vec<MarkerRec>,
}

impl Records {
    fn clear(&mut self) {
        self.updates.clear();
        self.rows.clear();
        self.cols.clear();
        self.cells.clear();
        self.clustering.clear();
        self.rts.clear();
        self.markers.clear();
    }
}

/// Decodes mutations, reusing its buffers from one to the next: after the
/// first few entries, decoding allocates nothing.
///
/// ```no_run
/// use cassandra_commitlog::mutation::{Context, Decoder};
/// use cassandra_commitlog::schema::Schema;
/// use cassandra_commitlog::segment::{ReadOptions, Segment};
///
/// let schema = Schema::parse(&std::fs::read_to_string("schema.cql")?)?;
/// let segment = Segment::open("cdc_raw/CommitLog-7-1795433791762.log")?;
/// let mut reader = segment.reader(&ReadOptions::new())?;
/// let mut decoder = Decoder::new();
/// while let Some(entry) = reader.next_entry()? {
///     let ctx = Context::of_entry(&entry, segment.descriptor(), None);
///     match decoder.decode(entry.mutation, &schema, ctx) {
///         Ok(m) => {
///             for update in m.updates() {
///                 println!("{} rows in {}", update.rows().count(), update.table().name);
///             }
///         }
///         Err(e) if e.error.is_unknown_table() => {} // a system table
///         Err(e) => eprintln!("{}", e.error),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Decoder {
    rec: Records,
    ctx: Context,
    hdr: Vec<HdrCol>,
    present: Vec<u32>,
    headers: HeaderCache,
}

/// A header column, resolved, with what decoding its cells needs.
#[derive(Clone, Copy, Debug)]
struct HdrCol {
    col: ColumnRef,
    /// Value length of a fixed-length type, 0 for length-prefixed values.
    fixed: u32,
    /// A non-frozen collection or UDT.
    complex: bool,
}

impl HdrCol {
    fn new(table: &Table, col: ColumnRef) -> HdrCol {
        let ty = column_type(table, col);
        HdrCol { col, fixed: ty.fixed_len().map_or(0, |n| n as u32), complex: ty.is_multi_cell() }
    }
}

/// Header column lists already resolved: Cassandra writes the same few
/// lists over and over, and resolving names is most of a header's cost.
#[derive(Default)]
struct HeaderCache {
    /// The schema state the entries were resolved against.
    stamp: u64,
    /// (table index, the list's bytes, its columns)
    entries: Vec<(u32, Vec<u8>, Vec<HdrCol>)>,
    /// Next entry to replace once full.
    next: usize,
}

/// How many header lists the cache keeps.
const HEADER_CACHE_LEN: usize = 32;

/// What [`Decoder::decode`] gives: the mutation, or (boxed, the rare path)
/// what could be decoded of it and why the rest could not.
pub type Decoded<'d> = Result<Mutation<'d>, Box<Undecodable<'d>>>;

/// A mutation that failed to decode: the updates decoded before the failure,
/// and the error.
pub struct Undecodable<'d> {
    /// The updates that decoded; their bytes are the whole mutation's.
    pub partial: Mutation<'d>,
    /// Where and why decoding failed.
    pub error: MutationError,
}

impl std::fmt::Debug for Undecodable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecodable").field("error", &self.error).finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder with empty buffers.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one serialized mutation against `schema`.
    pub fn decode<'d>(&'d mut self, bytes: &'d [u8], schema: &'d Schema, ctx: Context) -> Decoded<'d> {
        self.rec.clear();
        self.ctx = ctx;
        if self.headers.stamp != schema.stamp() {
            self.headers.entries.clear();
            self.headers.stamp = schema.stamp();
        }
        let mut p = Parser {
            b: bytes,
            pos: 0,
            schema,
            rec: &mut self.rec,
            hdr: &mut self.hdr,
            present: &mut self.present,
            headers: &mut self.headers,
            unsigned: self.ctx.unsigned_deletion_times,
            no_ldt: self.ctx.no_deletion_time(),
            min_ts: TIMESTAMP_EPOCH,
            min_ldt: DELETION_TIME_EPOCH,
            min_ttl: 0,
            table_id: None,
            live_written: false,
        };
        let result = p.mutation();
        let table_id = p.table_id;
        let m = Mutation { bytes, rec: &self.rec, schema, ctx: &self.ctx };
        match result {
            Ok(()) => Ok(m),
            Err(error) => Err(Box::new(Undecodable {
                partial: m,
                error: MutationError { loc: self.ctx.location(), table_id, error },
            })),
        }
    }

    /// A copy of the last decode's records, sized to fit, to keep in an
    /// owned mutation (the decoder keeps its buffers for the next one).
    pub(crate) fn copy_records(&self) -> (Records, Context) {
        (self.rec.clone(), self.ctx.clone())
    }
}

/// What the cells of a row inherit from its liveness.
#[derive(Clone, Copy)]
struct RowTimes {
    timestamp: i64,
    ttl: i32,
    ldt: i64,
}

struct Parser<'a, 'r> {
    b: &'a [u8],
    pos: usize,
    schema: &'a Schema,
    rec: &'r mut Records,
    hdr: &'r mut Vec<HdrCol>,
    present: &'r mut Vec<u32>,
    headers: &'r mut HeaderCache,
    unsigned: bool,
    no_ldt: i64,
    min_ts: i64,
    min_ldt: u32,
    min_ttl: u32,
    table_id: Option<Uuid>,
    /// The current update's bytes hold a LIVE deletion time.
    live_written: bool,
}

type R<T> = Result<T, DecodeError>;

impl Parser<'_, '_> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn truncated(&self, what: &'static str, needed: u64) -> DecodeError {
        DecodeError::Truncated { offset: self.pos as u32, what, needed, available: self.left() as u64 }
    }

    fn invalid(&self, at: usize, what: &'static str, found: u64) -> DecodeError {
        DecodeError::Invalid { offset: at as u32, what, found }
    }

    #[inline]
    fn u8(&mut self, what: &'static str) -> R<u8> {
        let b = *self.b.get(self.pos).ok_or_else(|| self.truncated(what, 1))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> R<Span> {
        if n > self.left() {
            return Err(self.truncated(what, n as u64));
        }
        let span = Span { start: self.pos as u32, len: n as u32 };
        self.pos += n;
        Ok(span)
    }

    #[inline]
    fn uvint(&mut self, what: &'static str) -> R<u64> {
        match read_unsigned_vint(&self.b[self.pos..]) {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None => {
                let needed = self.b.get(self.pos).map_or(1, |f| 1 + f.leading_ones() as u64);
                Err(self.truncated(what, needed))
            }
        }
    }

    /// A uvint length and that many bytes.
    #[inline]
    fn vbytes(&mut self, what: &'static str) -> R<Span> {
        let at = self.pos;
        let len = self.uvint(what)?;
        if len > self.left() as u64 {
            self.pos = at;
            return Err(self.truncated(what, len));
        }
        self.take(len as usize, what)
    }

    /// A count of things each taking at least `min_each` bytes: capped by
    /// what is left, so that no count read from disk can run away.
    fn count(&mut self, what: &'static str, min_each: usize) -> R<usize> {
        let at = self.pos;
        let n = self.uvint(what)?;
        if n > (self.left() / min_each.max(1)) as u64 {
            return Err(self.invalid(at, what, n));
        }
        Ok(n as usize)
    }

    #[inline]
    fn timestamp(&mut self) -> R<i64> {
        Ok((self.uvint("timestamp")? as i64).wrapping_add(self.min_ts))
    }

    #[inline]
    fn ldt(&mut self) -> R<i64> {
        let raw = (self.uvint("local deletion time")? as u32).wrapping_add(self.min_ldt);
        Ok(if self.unsigned { raw as i64 } else { raw as i32 as i64 })
    }

    #[inline]
    fn ttl(&mut self) -> R<i32> {
        Ok((self.uvint("ttl")? as u32).wrapping_add(self.min_ttl) as i32)
    }

    /// A deletion time; `None` for Cassandra's LIVE (`markedForDeleteAt ==
    /// i64::MIN`, format spec §8.4).
    fn deletion(&mut self) -> R<Option<DeletionTime>> {
        let timestamp = self.timestamp()?;
        let local_deletion_time = self.ldt()?;
        if timestamp == i64::MIN {
            self.live_written = true;
            return Ok(None);
        }
        Ok(Some(DeletionTime { timestamp, local_deletion_time }))
    }

    fn mutation(&mut self) -> R<()> {
        let at = self.pos;
        // Each update takes at least 16 (id) + 1 (key length) + 1 (flags).
        let n = self.count("partition update count", 18)?;
        if n == 0 {
            return Err(self.invalid(at, "partition update count", 0));
        }
        for _ in 0..n {
            self.update()?;
        }
        if self.left() > 0 {
            return Err(DecodeError::Trailing { offset: self.pos as u32, len: self.left() as u32 });
        }
        Ok(())
    }

    fn update(&mut self) -> R<()> {
        let at = self.pos;
        self.live_written = false;
        let id = self.take(16, "table id")?;
        let table_id = Uuid::from_bytes(id.get(self.b).try_into().expect("16 bytes"));
        self.table_id = Some(table_id);
        let schema = self.schema;
        let index = schema.table_index(&table_id).ok_or(DecodeError::UnknownTable { offset: at as u32, table_id })?;
        let table = schema.table_at(index);
        let key = self.vbytes("partition key")?;
        let flags_at = self.pos;
        let flags = self.u8("partition flags")?;
        if flags & 0xe0 != 0 {
            return Err(self.invalid(flags_at, "partition flags", flags as u64));
        }
        let rows_start = self.rec.rows.len() as u32;
        let rts_start = self.rec.rts.len() as u32;
        let markers_start = self.rec.markers.len() as u32;
        let mut deletion = None;
        if flags & IS_EMPTY == 0 {
            self.min_ts = (self.uvint("minimum timestamp")? as i64).wrapping_add(TIMESTAMP_EPOCH);
            self.min_ldt = (self.uvint("minimum local deletion time")? as u32).wrapping_add(DELETION_TIME_EPOCH);
            self.min_ttl = self.uvint("minimum TTL")? as u32;
            self.hdr.clear();
            let statics = if flags & HAS_STATIC_ROW != 0 { self.columns(index, table)? } else { Range::default() };
            let regulars = self.columns(index, table)?;
            if flags & HAS_PARTITION_DELETION != 0 {
                deletion = self.deletion()?;
            }
            if flags & HAS_STATIC_ROW != 0 {
                let fat = self.pos;
                let rflags = self.u8("static row flags")?;
                let ext = if rflags & EXTENSION_FLAG != 0 { self.u8("extended flags")? } else { 0 };
                if rflags & (END_OF_PARTITION | IS_MARKER) != 0 || ext & IS_STATIC == 0 {
                    return Err(self.invalid(fat, "static row flags", ((rflags as u64) << 8) | ext as u64));
                }
                self.row(rflags, ext, statics, true, Range::default(), 0)?;
            }
            if flags & HAS_ROW_ESTIMATE != 0 {
                self.uvint("row estimate")?;
            }
            self.unfiltereds(table, regulars)?;
        }
        self.rec.updates.push(UpdateRec {
            table: index,
            table_id,
            bytes: Span { start: at as u32, len: (self.pos - at) as u32 },
            live_written: self.live_written,
            key,
            deletion,
            rows: Range { start: rows_start, end: self.rec.rows.len() as u32 },
            rts: Range { start: rts_start, end: self.rec.rts.len() as u32 },
            markers: Range { start: markers_start, end: self.rec.markers.len() as u32 },
        });
        Ok(())
    }

    /// A header column list: names resolved against the table (current
    /// columns first, then dropped ones).
    fn columns(&mut self, table_index: u32, table: &Table) -> R<Range> {
        let list_at = self.pos;
        let start = self.hdr.len() as u32;
        // A list met before is known by its bytes alone, without walking its
        // names: it is a count and then each name after its length, so bytes
        // that begin with a whole list are that list, and end where it ends.
        let rest = &self.b[list_at..];
        if let Some((_, list, cols)) =
            self.headers.entries.iter().find(|(t, list, _)| *t == table_index && rest.starts_with(list))
        {
            self.pos = list_at + list.len();
            self.hdr.extend_from_slice(cols);
            return Ok(Range { start, end: self.hdr.len() as u32 });
        }
        let n = self.count("column count", 1)?;
        let names_at = self.pos;
        for _ in 0..n {
            self.vbytes("column name")?;
        }
        let end = self.pos;
        self.pos = names_at;
        for _ in 0..n {
            let at = self.pos;
            let name = self.vbytes("column name")?;
            let bytes = name.get(self.b);
            let col = table.resolve(bytes).ok_or_else(|| DecodeError::UnknownColumn {
                offset: at as u32,
                keyspace: table.keyspace.clone(),
                table: table.name.clone(),
                column: String::from_utf8_lossy(bytes).into_owned(),
            })?;
            self.hdr.push(HdrCol::new(table, col));
        }
        debug_assert_eq!(self.pos, end);
        let entry = (table_index, self.b[list_at..end].to_vec(), self.hdr[start as usize..].to_vec());
        if self.headers.entries.len() < HEADER_CACHE_LEN {
            self.headers.entries.push(entry);
        } else {
            let slot = self.headers.next % HEADER_CACHE_LEN;
            self.headers.entries[slot] = entry;
            self.headers.next = slot + 1;
        }
        Ok(Range { start, end: self.hdr.len() as u32 })
    }

    fn unfiltereds(&mut self, table: &Table, regulars: Range) -> R<()> {
        let mut open: Option<(BoundRec, Option<DeletionTime>)> = None;
        let mut seq = 0u32;
        loop {
            seq += 1;
            let at = self.pos;
            let flags = self.u8("row flags")?;
            if flags & END_OF_PARTITION != 0 {
                break;
            }
            if flags & IS_MARKER != 0 {
                if flags != IS_MARKER {
                    return Err(self.invalid(at, "marker flags", flags as u64));
                }
                self.marker(table, &mut open, seq)?;
                continue;
            }
            let ext = if flags & EXTENSION_FLAG != 0 { self.u8("extended flags")? } else { 0 };
            if ext & IS_STATIC != 0 || ext & !(IS_STATIC | HAS_SHADOWABLE_DELETION) != 0 {
                return Err(self.invalid(at, "extended row flags", ext as u64));
            }
            let clustering = self.clustering(table, table.clustering_len())?;
            self.row(flags, ext, regulars, false, clustering, seq)?;
        }
        if let Some((start, deletion)) = open {
            // A range left open runs to the end of the partition.
            let top = BoundRec { values: Range::default(), inclusive: true };
            self.rec.rts.push(RtRec { start, end: top, deletion });
        }
        Ok(())
    }

    /// `count` clustering values, in batches of 32 under a header of
    /// empty/null bits (§8.7).
    fn clustering(&mut self, table: &Table, count: usize) -> R<Range> {
        let start = self.rec.clustering.len() as u32;
        let mut i = 0;
        while i < count {
            let header = self.uvint("clustering header")?;
            let batch = (count - i).min(32);
            for j in 0..batch {
                let ty = &table.clustering_column(i + j).expect("index below clustering_len").ty;
                let value = if header & (1u64 << (2 * j)) != 0 {
                    Some(Span { start: self.pos as u32, len: 0 })
                } else if header & (1u64 << (2 * j + 1)) != 0 {
                    None
                } else {
                    Some(self.value(ty, "clustering value")?)
                };
                self.rec.clustering.push(value);
            }
            i += batch;
        }
        Ok(Range { start, end: self.rec.clustering.len() as u32 })
    }

    /// A value in cell form: raw when the type has a fixed length, else
    /// length-prefixed (§9.1).
    #[inline]
    fn value(&mut self, ty: &CqlType, what: &'static str) -> R<Span> {
        match ty.fixed_len() {
            Some(n) => self.take(n, what),
            None => self.vbytes(what),
        }
    }

    fn marker(&mut self, table: &Table, open: &mut Option<(BoundRec, Option<DeletionTime>)>, seq: u32) -> R<()> {
        let at = self.pos;
        let kind = self.u8("bound kind")?;
        let size_at = self.pos;
        let size = u16::from_be_bytes(self.take(2, "bound size")?.get(self.b).try_into().expect("2 bytes")) as usize;
        if size > table.clustering_len() {
            return Err(self.invalid(size_at, "bound size", size as u64));
        }
        let values = self.clustering(table, size)?;
        // (closes with inclusive?, opens with inclusive?)
        let (end, start) = match kind {
            0 => (Some(false), None),
            1 => (None, Some(true)),
            2 => (Some(false), Some(true)),
            5 => (Some(true), Some(false)),
            6 => (Some(true), None),
            7 => (None, Some(false)),
            _ => return Err(self.invalid(at, "bound kind", kind as u64)),
        };
        let first = self.deletion()?;
        let boundary = end.is_some() && start.is_some();
        let second = if boundary { self.deletion()? } else { first };
        self.rec.markers.push(MarkerRec {
            seq,
            kind,
            values,
            deletion: first,
            start_deletion: boundary.then_some(second).flatten(),
        });
        if let Some(inclusive) = end {
            let (start_bound, deletion) = open.take().unwrap_or((
                BoundRec { values: Range { start: values.start, end: values.start }, inclusive: true },
                first,
            ));
            self.rec.rts.push(RtRec { start: start_bound, end: BoundRec { values, inclusive }, deletion });
        }
        if let Some(inclusive) = start {
            if let Some((prev, deletion)) = open.take() {
                // An open range not closed before another opens: it ends here.
                self.rec.rts.push(RtRec { start: prev, end: BoundRec { values, inclusive: !inclusive }, deletion });
            }
            *open = Some((BoundRec { values, inclusive }, second));
        }
        Ok(())
    }

    fn row(&mut self, flags: u8, ext: u8, header: Range, is_static: bool, clustering: Range, seq: u32) -> R<()> {
        let mut times = RowTimes { timestamp: i64::MIN, ttl: 0, ldt: self.no_ldt };
        let mut liveness = None;
        if flags & HAS_TIMESTAMP != 0 {
            times.timestamp = self.timestamp()?;
            let mut expiry = None;
            if flags & HAS_TTL != 0 {
                times.ttl = self.ttl()?;
                times.ldt = self.ldt()?;
                expiry = Some((times.ttl, times.ldt));
            }
            liveness = Some(Liveness { timestamp: times.timestamp, expiry });
        }
        let deletion = if flags & HAS_DELETION != 0 { self.deletion()? } else { None };
        let n = (header.end - header.start) as usize;
        let cols_start = self.rec.cols.len() as u32;
        if flags & HAS_ALL_COLUMNS != 0 {
            for i in 0..n {
                self.column(flags, header.start as usize + i, times)?;
            }
        } else if n < 64 {
            let at = self.pos;
            let missing = self.uvint("column subset")?;
            if missing >> n != 0 {
                return Err(self.invalid(at, "column subset", missing));
            }
            for i in 0..n {
                if missing & (1u64 << i) == 0 {
                    self.column(flags, header.start as usize + i, times)?;
                }
            }
        } else {
            self.large_subset(n)?;
            for k in 0..self.present.len() {
                let i = self.present[k] as usize;
                self.column(flags, header.start as usize + i, times)?;
            }
        }
        self.rec.rows.push(RowRec {
            seq,
            is_static,
            clustering,
            liveness,
            deletion,
            shadowable: ext & HAS_SHADOWABLE_DELETION != 0,
            cols: Range { start: cols_start, end: self.rec.cols.len() as u32 },
        });
        Ok(())
    }

    /// The present columns of a row whose header has 64 or more (§8.6):
    /// a count of missing columns, then either the present or the missing
    /// indexes, whichever list is shorter.
    fn large_subset(&mut self, n: usize) -> R<()> {
        self.present.clear();
        let at = self.pos;
        let missing = self.uvint("column subset")?;
        if missing > n as u64 {
            return Err(self.invalid(at, "column subset", missing));
        }
        let missing = missing as usize;
        let present = n - missing;
        let index = |p: &mut Self, prev: &mut Option<u64>| -> R<u32> {
            let at = p.pos;
            let i = p.uvint("column index")?;
            if i >= n as u64 || prev.is_some_and(|q| i <= q) {
                return Err(p.invalid(at, "column index", i));
            }
            *prev = Some(i);
            Ok(i as u32)
        };
        let mut prev = None;
        if present < n / 2 {
            for _ in 0..present {
                let i = index(self, &mut prev)?;
                self.present.push(i);
            }
        } else {
            let mut next = 0u32;
            for _ in 0..missing {
                let skip = index(self, &mut prev)?;
                self.present.extend(next..skip);
                next = skip + 1;
            }
            self.present.extend(next..n as u32);
        }
        Ok(())
    }

    #[inline(always)]
    fn column(&mut self, row_flags: u8, hdr_index: usize, times: RowTimes) -> R<()> {
        let HdrCol { col, fixed, complex } = self.hdr[hdr_index];
        let cells_start = self.rec.cells.len() as u32;
        let mut deletion = None;
        if complex {
            if row_flags & HAS_COMPLEX_DELETION != 0 {
                deletion = self.deletion()?;
            }
            let n = self.count("cell count", 1)?;
            for _ in 0..n {
                self.cell(0, true, times)?;
            }
        } else {
            self.cell(fixed, false, times)?;
        }
        self.rec.cols.push(ColRec {
            col,
            complex,
            deletion,
            cells: Range { start: cells_start, end: self.rec.cells.len() as u32 },
        });
        Ok(())
    }

    /// A cell; `fixed` is its value's length when the type has a fixed one.
    #[inline(always)]
    fn cell(&mut self, fixed: u32, complex: bool, row: RowTimes) -> R<()> {
        let at = self.pos;
        let flags = self.u8("cell flags")?;
        if flags & 0xe0 != 0 {
            return Err(self.invalid(at, "cell flags", flags as u64));
        }
        let timestamp = if flags & CELL_USE_ROW_TIMESTAMP != 0 { row.timestamp } else { self.timestamp()? };
        let (ldt, ttl) = if flags & CELL_USE_ROW_TTL != 0 {
            (row.ldt, row.ttl)
        } else {
            let ldt = if flags & (CELL_IS_DELETED | CELL_IS_EXPIRING) != 0 { self.ldt()? } else { self.no_ldt };
            let ttl = if flags & CELL_IS_EXPIRING != 0 { self.ttl()? } else { 0 };
            (ldt, ttl)
        };
        let path = if complex { self.vbytes("cell path")? } else { Span::default() };
        let value = if flags & CELL_HAS_EMPTY_VALUE != 0 {
            Span { start: self.pos as u32, len: 0 }
        } else if fixed > 0 {
            self.take(fixed as usize, "cell value")?
        } else {
            // Also every element cell: a multi-cell column's type is variable-length.
            self.vbytes("cell value")?
        };
        self.rec.cells.push(CellRec { flags, timestamp, ldt, ttl, path, value });
        Ok(())
    }
}

/// The type of a header column, current or dropped.
pub(crate) fn column_type(table: &Table, col: ColumnRef) -> &CqlType {
    match col {
        ColumnRef::Current(i) => &table.columns[i as usize].ty,
        ColumnRef::Dropped(i) => &table.dropped[i as usize].ty,
    }
}
