//! Views over a decoded mutation: partition updates, rows, columns, cells,
//! range tombstones. Everything borrows the mutation bytes, the decoder's
//! records and the schema; values are decoded when asked for.

use uuid::Uuid;

use super::decode::{
    CELL_HAS_EMPTY_VALUE, CELL_IS_DELETED, CELL_IS_EXPIRING, CellRec, ColRec, Context, DeletionTime, Liveness,
    MarkerRec, Records, RowRec, RtRec, UpdateRec, column_type,
};
use super::digest::Digest;
use crate::schema::{Column, ColumnRef, CqlType, Schema, Table, UserType};
use crate::value::{CounterContext, Value, ValueError};

/// A decoded mutation: one or more partition updates of one keyspace and
/// one partition key.
#[derive(Clone, Copy)]
pub struct Mutation<'d> {
    pub(crate) bytes: &'d [u8],
    pub(crate) rec: &'d Records,
    pub(crate) schema: &'d Schema,
    pub(crate) ctx: &'d Context,
}

impl std::fmt::Debug for Mutation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutation")
            .field("segment_id", &self.ctx.segment_id)
            .field("position", &self.ctx.position)
            .field("updates", &self.rec.updates.len())
            .finish()
    }
}

impl<'d> Mutation<'d> {
    /// Where the mutation is.
    #[inline]
    pub fn context(&self) -> &'d Context {
        self.ctx
    }

    /// Segment id.
    #[inline]
    pub fn segment_id(&self) -> i64 {
        self.ctx.segment_id
    }

    /// Commit-log position (the logical offset just past the entry).
    #[inline]
    pub fn position(&self) -> u64 {
        self.ctx.position
    }

    /// The serialized mutation.
    #[inline]
    pub fn bytes(&self) -> &'d [u8] {
        self.bytes
    }

    /// The schema it was decoded with ([`Schema::version`] says which state
    /// of a schema that follows the log).
    #[inline]
    pub fn schema(&self) -> &'d Schema {
        self.schema
    }

    /// The keyspace of its tables (`None` when no update was decoded).
    #[inline]
    pub fn keyspace(&self) -> Option<&'d str> {
        self.updates().next().map(|u| u.table().keyspace.as_str())
    }

    /// The table id of the first partition update.
    #[inline]
    pub(crate) fn first_table_id(&self) -> Option<Uuid> {
        self.rec.updates.first().map(|u| u.table_id)
    }

    /// The partition updates (one per table).
    #[inline]
    pub fn updates(&self) -> impl ExactSizeIterator<Item = PartitionUpdate<'d>> + use<'d> {
        let m = *self;
        self.rec.updates.iter().map(move |rec| PartitionUpdate { m, rec })
    }
}

/// The changes of one mutation to one table's partition.
#[derive(Clone, Copy)]
pub struct PartitionUpdate<'d> {
    m: Mutation<'d>,
    rec: &'d UpdateRec,
}

impl<'d> PartitionUpdate<'d> {
    /// The table.
    #[inline]
    pub fn table(&self) -> &'d Table {
        self.m.schema.table_at(self.rec.table)
    }

    /// The table id as written.
    #[inline]
    pub fn table_id(&self) -> Uuid {
        self.rec.table_id
    }

    /// The serialized partition key (format spec §9.4).
    #[inline]
    pub fn partition_key_bytes(&self) -> &'d [u8] {
        self.rec.key.get(self.m.bytes)
    }

    /// The partition key's columns and values, in key order (decoded as
    /// the iterator goes; a composite key's framing error ends it).
    #[inline]
    pub fn partition_key(&self) -> PartitionKey<'d> {
        PartitionKey { table: self.table(), key: self.partition_key_bytes(), index: 0, at: 0, failed: false }
    }

    /// The partition deletion, if any.
    #[inline]
    pub fn partition_deletion(&self) -> Option<DeletionTime> {
        self.rec.deletion
    }

    /// Every row: the static row first when there is one.
    #[inline]
    pub fn all_rows(&self) -> impl ExactSizeIterator<Item = Row<'d>> + 'd {
        let (m, table, update) = (self.m, self.table(), self.rec);
        self.m.rec.rows[self.rec.rows.idx()].iter().map(move |rec| Row { m, rec, table, update })
    }

    /// The static row, if the update has one.
    #[inline]
    pub fn static_row(&self) -> Option<Row<'d>> {
        self.all_rows().next().filter(Row::is_static)
    }

    /// The rows with a clustering (every row but the static one).
    #[inline]
    pub fn rows(&self) -> impl Iterator<Item = Row<'d>> + 'd {
        self.all_rows().filter(|r| !r.is_static())
    }

    /// The range tombstone markers exactly as written (bounds and
    /// boundaries); [`range_tombstones`](Self::range_tombstones) pairs them.
    #[inline]
    pub fn markers(&self) -> impl ExactSizeIterator<Item = Marker<'d>> + 'd {
        let (m, table) = (self.m, self.table());
        self.m.rec.markers[self.rec.markers.idx()].iter().map(move |rec| Marker { m, rec, table })
    }

    /// The update's bytes as logged (table id to end of partition), and
    /// whether a LIVE deletion time is among them.
    #[inline]
    pub(crate) fn serialized(&self) -> (&'d [u8], bool) {
        (self.rec.bytes.get(self.m.bytes), self.rec.live_written)
    }

    /// The content digest: the same on every replica that logged this
    /// write, whatever the segment, position, codec or encryption; another
    /// for any other content (see [`Digest`] for what it covers, and what
    /// it means for counters).
    #[inline]
    pub fn digest(&self) -> Digest {
        super::digest::digest(self)
    }

    /// The range tombstones, in clustering order.
    #[inline]
    pub fn range_tombstones(&self) -> impl ExactSizeIterator<Item = RangeTombstone<'d>> + 'd {
        let (m, table) = (self.m, self.table());
        self.m.rec.rts[self.rec.rts.idx()].iter().map(move |rec| RangeTombstone { m, rec, table })
    }
}

/// The columns and values of a partition key (format spec §9.4).
#[derive(Clone)]
pub struct PartitionKey<'d> {
    table: &'d Table,
    key: &'d [u8],
    index: usize,
    at: usize,
    failed: bool,
}

impl<'d> Iterator for PartitionKey<'d> {
    type Item = Result<(&'d Column, Value<'d>), ValueError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let col = self.table.partition_key_column(self.index)?;
        self.index += 1;
        if self.table.partition_key_len() == 1 {
            return Some(Value::decode(&col.ty, self.key).map(|v| (col, v)));
        }
        // Composite: u16 length, bytes, end-of-component byte, per column.
        let at = self.at;
        let value = self.key.get(at..at + 2).and_then(|len| {
            let len = u16::from_be_bytes([len[0], len[1]]) as usize;
            self.key.get(at + 2 + len)?;
            self.key.get(at + 2..at + 2 + len)
        });
        let Some(v) = value else {
            self.failed = true;
            return Some(Err(ValueError::Truncated { ty: "partition key", at }));
        };
        self.at = at + 3 + v.len();
        if self.index == self.table.partition_key_len() && self.at != self.key.len() {
            self.failed = true;
            return Some(Err(ValueError::Trailing { ty: "partition key", len: self.key.len() - self.at }));
        }
        Some(Value::decode(&col.ty, v).map(|v| (col, v)))
    }
}

/// Clustering values of a row or a bound: `None` for a null value.
fn clustering_values<'d>(
    m: Mutation<'d>,
    table: &'d Table,
    range: super::decode::Range,
) -> impl ExactSizeIterator<Item = (&'d Column, Option<Result<Value<'d>, ValueError>>)> + 'd {
    m.rec.clustering[range.idx()].iter().enumerate().map(move |(i, span)| {
        let col = table.clustering_column(i).expect("decoded within clustering_len");
        (col, span.map(|s| Value::decode(&col.ty, s.get(m.bytes))))
    })
}

/// The bytes of a row's or a bound's clustering values (`None` for a null value).
fn clustering_bytes<'d>(
    m: Mutation<'d>,
    range: super::decode::Range,
) -> impl ExactSizeIterator<Item = Option<&'d [u8]>> + 'd {
    m.rec.clustering[range.idx()].iter().map(move |s| s.map(|s| s.get(m.bytes)))
}

/// A row deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowDeletion {
    /// When.
    pub time: DeletionTime,
    /// Whether it is shadowable (materialized views): ignored where the
    /// row's liveness is newer.
    pub shadowable: bool,
}

/// A row: static, or identified by its clustering.
#[derive(Clone, Copy)]
pub struct Row<'d> {
    m: Mutation<'d>,
    rec: &'d RowRec,
    table: &'d Table,
    update: &'d UpdateRec,
}

impl<'d> Row<'d> {
    /// The partition update the row belongs to (its partition key, table).
    #[inline]
    pub fn update(&self) -> PartitionUpdate<'d> {
        PartitionUpdate { m: self.m, rec: self.update }
    }

    /// The table.
    #[inline]
    pub fn table(&self) -> &'d Table {
        self.table
    }

    /// Whether this is the partition's static row.
    #[inline]
    pub fn is_static(&self) -> bool {
        self.rec.is_static
    }

    /// Place among the partition's rows and markers, in stream order (1 for
    /// the first; 0 for the static row).
    #[inline]
    pub fn index(&self) -> u32 {
        self.rec.seq
    }

    /// Clustering columns and values (`None` for a null value); empty for
    /// the static row and for tables without clustering columns.
    #[inline]
    pub fn clustering(
        &self,
    ) -> impl ExactSizeIterator<Item = (&'d Column, Option<Result<Value<'d>, ValueError>>)> + 'd {
        clustering_values(self.m, self.table, self.rec.clustering)
    }

    /// The clustering values' bytes (`None` for a null value).
    #[inline]
    pub fn clustering_bytes(&self) -> impl ExactSizeIterator<Item = Option<&'d [u8]>> + 'd {
        clustering_bytes(self.m, self.rec.clustering)
    }

    /// Primary-key liveness (`INSERT` writes it, `UPDATE` does not).
    #[inline]
    pub fn liveness(&self) -> Option<Liveness> {
        self.rec.liveness
    }

    /// The row deletion, if any.
    #[inline]
    pub fn deletion(&self) -> Option<RowDeletion> {
        self.rec.deletion.map(|time| RowDeletion { time, shadowable: self.rec.shadowable })
    }

    /// The columns the row carries, in the mutation's column order.
    #[inline]
    pub fn columns(&self) -> impl ExactSizeIterator<Item = ColumnData<'d>> + 'd {
        let (m, table) = (self.m, self.table);
        self.m.rec.cols[self.rec.cols.idx()].iter().map(move |rec| ColumnData { m, rec, table })
    }

    /// Number of cells (simple cells, and each element cell of complex columns).
    #[inline]
    pub fn cell_count(&self) -> usize {
        self.columns().map(|c| c.cells().len()).sum()
    }
}

/// A column of a row: one cell, or for a non-frozen collection or UDT its
/// element cells and complex deletion.
#[derive(Clone, Copy)]
pub struct ColumnData<'d> {
    m: Mutation<'d>,
    rec: &'d ColRec,
    table: &'d Table,
}

impl<'d> ColumnData<'d> {
    /// Appends the column's name as a JSON key (`"name":`).
    #[inline]
    pub(crate) fn write_json_key(&self, out: &mut Vec<u8>) {
        self.table.write_json_key(self.rec.col, self.name(), out);
    }

    /// The column's name.
    #[inline]
    pub fn name(&self) -> &'d str {
        match self.rec.col {
            ColumnRef::Current(i) => &self.table.columns[i as usize].name,
            ColumnRef::Dropped(i) => &self.table.dropped[i as usize].name,
        }
    }

    /// The column's type.
    #[inline]
    pub fn ty(&self) -> &'d CqlType {
        column_type(self.table, self.rec.col)
    }

    /// The column, when it is a current column of the table.
    #[inline]
    pub fn column(&self) -> Option<&'d Column> {
        match self.rec.col {
            ColumnRef::Current(i) => Some(&self.table.columns[i as usize]),
            ColumnRef::Dropped(_) => None,
        }
    }

    /// When the column was dropped (microseconds), if it was: cells written
    /// at or before then are dropped data.
    #[inline]
    pub fn dropped_at(&self) -> Option<i64> {
        match self.rec.col {
            ColumnRef::Current(i) => self.table.columns[i as usize].dropped_at,
            ColumnRef::Dropped(i) => Some(self.table.dropped[i as usize].dropped_at),
        }
    }

    /// Whether this is a non-frozen collection or UDT (several cells).
    #[inline]
    pub fn is_complex(&self) -> bool {
        self.rec.complex
    }

    /// The complex deletion of a non-frozen collection or UDT (overwriting
    /// or deleting the whole column).
    #[inline]
    pub fn complex_deletion(&self) -> Option<DeletionTime> {
        self.rec.deletion
    }

    /// The cells.
    #[inline]
    pub fn cells(&self) -> impl ExactSizeIterator<Item = Cell<'d>> + 'd {
        let this = *self;
        self.m.rec.cells[self.rec.cells.idx()].iter().map(move |rec| Cell { col: this, rec })
    }
}

/// Where an element cell of a non-frozen collection or UDT sits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CellPath<'d> {
    /// A list element's time-based id (list order is the order of these ids).
    ListElement(Uuid),
    /// A set element (the cell has no value).
    SetElement(Value<'d>),
    /// A map key.
    MapKey(Value<'d>),
    /// A UDT field: its index, and its name when the schema has it.
    Field {
        /// Index in the type.
        index: i16,
        /// Name, if the type (as the schema knows it) has that field.
        name: Option<&'d str>,
    },
}

/// One cell.
#[derive(Clone, Copy)]
pub struct Cell<'d> {
    col: ColumnData<'d>,
    rec: &'d CellRec,
}

impl<'d> Cell<'d> {
    #[inline]
    pub(crate) fn rec(&self) -> &'d CellRec {
        self.rec
    }

    /// The column the cell belongs to.
    #[inline]
    pub fn column(&self) -> ColumnData<'d> {
        self.col
    }

    /// Write timestamp (microseconds).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.rec.timestamp
    }

    /// Whether the cell is a tombstone (a deleted value or element).
    #[inline]
    pub fn is_tombstone(&self) -> bool {
        self.rec.flags & CELL_IS_DELETED != 0
    }

    /// TTL in seconds and expiry time (seconds since the epoch), if expiring.
    #[inline]
    pub fn expiry(&self) -> Option<(i32, i64)> {
        (self.rec.flags & CELL_IS_EXPIRING != 0 && !self.is_tombstone()).then_some((self.rec.ttl, self.rec.ldt))
    }

    /// The local deletion time of a tombstone (seconds since the epoch).
    #[inline]
    pub fn local_deletion_time(&self) -> Option<i64> {
        self.is_tombstone().then_some(self.rec.ldt)
    }

    /// Whether the cell is dropped data: its column is no longer in the
    /// table, or was dropped after the cell was written.
    #[inline]
    pub fn is_dropped(&self) -> bool {
        match self.col.rec.col {
            ColumnRef::Current(i) => {
                self.col.table.columns[i as usize].dropped_at.is_some_and(|t| self.rec.timestamp <= t)
            }
            ColumnRef::Dropped(_) => true,
        }
    }

    /// The value's bytes (empty for tombstones and set elements).
    #[inline]
    pub fn value_bytes(&self) -> &'d [u8] {
        self.rec.value.get(self.col.m.bytes)
    }

    /// Whether the cell carries no value bytes.
    #[inline]
    pub fn has_empty_value(&self) -> bool {
        self.rec.flags & CELL_HAS_EMPTY_VALUE != 0 || self.rec.value.len == 0
    }

    /// The path's bytes (element cells of complex columns only).
    #[inline]
    pub fn path_bytes(&self) -> Option<&'d [u8]> {
        self.col.is_complex().then(|| self.rec.path.get(self.col.m.bytes))
    }

    /// The type of the value this cell holds: the column type for simple
    /// cells, the element, map value or field type for element cells
    /// (`None` for set elements, which carry no value, and unknown fields).
    #[inline]
    pub fn value_type(&self) -> Option<&'d CqlType> {
        let ty = self.col.ty();
        if !self.col.is_complex() {
            return Some(ty);
        }
        match ty {
            CqlType::List { elem, .. } => Some(elem),
            CqlType::Set { .. } => None,
            CqlType::Map { value, .. } => Some(value),
            CqlType::Udt { def, .. } => udt_field(def, self.udt_index()?).map(|(_, t)| t),
            _ => None,
        }
    }

    #[inline]
    fn udt_index(&self) -> Option<i16> {
        let p = self.path_bytes()?;
        Some(i16::from_be_bytes(p.try_into().ok()?))
    }

    /// The cell's value.
    ///
    /// `None` exactly when the cell carries no value:
    /// - a tombstone ([`is_tombstone`](Self::is_tombstone)): the column, or
    ///   this element, was deleted or set to `null` (its timestamp and
    ///   [`local_deletion_time`](Self::local_deletion_time) say when);
    /// - a set element: the element is the cell's [`path`](Self::path)
    ///   ([`CellPath::SetElement`]), the value is always empty.
    ///
    /// `Some(Err(_))` when the bytes do not decode as the column's type (or
    /// name a UDT field the schema does not know). A zero-length value of a
    /// type for which that is no value (an `int` written as an empty blob)
    /// is [`Value::Empty`], not `None`. For counters, read
    /// [`counter`](Self::counter) instead; for a column as one value,
    /// [`ColumnData::merged`].
    #[inline]
    pub fn value(&self) -> Option<Result<Value<'d>, ValueError>> {
        if self.is_tombstone() {
            return None;
        }
        if !self.col.is_complex() {
            // A simple column's cell holds a value of the column's type.
            return Some(Value::decode(self.col.ty(), self.value_bytes()));
        }
        let ty = match (self.value_type(), self.col.ty()) {
            (Some(t), _) => t,
            (None, CqlType::Udt { def, .. }) => {
                let index = self.udt_index().unwrap_or(-1);
                return Some(Err(ValueError::NoSuchField { ty: def.name.clone(), index }));
            }
            (None, _) => return None,
        };
        Some(Value::decode(ty, self.value_bytes()))
    }

    /// The counter context of a counter cell.
    #[inline]
    pub fn counter(&self) -> Option<Result<CounterContext<'d>, ValueError>> {
        (matches!(self.col.ty(), CqlType::Counter) && !self.is_tombstone())
            .then(|| CounterContext::parse(self.value_bytes()))
    }

    /// The element cell's path, decoded.
    #[inline]
    pub fn path(&self) -> Option<Result<CellPath<'d>, ValueError>> {
        let p = self.path_bytes()?;
        Some(match self.col.ty() {
            CqlType::List { .. } => p
                .try_into()
                .map(|b| CellPath::ListElement(Uuid::from_bytes(b)))
                .map_err(|_| ValueError::Length { ty: "list cell path", expected: "16", found: p.len() }),
            CqlType::Set { elem, .. } => Value::decode(elem, p).map(CellPath::SetElement),
            CqlType::Map { key, .. } => Value::decode(key, p).map(CellPath::MapKey),
            CqlType::Udt { def, .. } => match self.udt_index() {
                Some(index) => Ok(CellPath::Field { index, name: udt_field(def, index).map(|(n, _)| n.as_str()) }),
                None => Err(ValueError::Length { ty: "UDT cell path", expected: "2", found: p.len() }),
            },
            _ => Err(ValueError::Length { ty: "cell path", expected: "none", found: p.len() }),
        })
    }
}

/// The field of a UDT an element cell's path index names, if the type has it.
fn udt_field(def: &UserType, index: i16) -> Option<&(String, CqlType)> {
    def.fields.get(usize::try_from(index).ok()?)
}

/// One side of a range tombstone.
#[derive(Clone, Copy)]
pub struct Bound<'d> {
    m: Mutation<'d>,
    table: &'d Table,
    values: super::decode::Range,
    inclusive: bool,
}

impl<'d> Bound<'d> {
    /// The clustering prefix (shorter than the clustering: a prefix; empty:
    /// unbounded).
    #[inline]
    pub fn clustering(
        &self,
    ) -> impl ExactSizeIterator<Item = (&'d Column, Option<Result<Value<'d>, ValueError>>)> + 'd {
        clustering_values(self.m, self.table, self.values)
    }

    /// The prefix values' bytes.
    #[inline]
    pub fn clustering_bytes(&self) -> impl ExactSizeIterator<Item = Option<&'d [u8]>> + 'd {
        clustering_bytes(self.m, self.values)
    }

    /// Whether the bound includes rows equal to its prefix.
    #[inline]
    pub fn inclusive(&self) -> bool {
        self.inclusive
    }
}

/// A range tombstone: every row between its bounds (in clustering order),
/// written at or before its deletion's timestamp, is deleted.
#[derive(Clone, Copy)]
pub struct RangeTombstone<'d> {
    m: Mutation<'d>,
    rec: &'d RtRec,
    table: &'d Table,
}

impl<'d> RangeTombstone<'d> {
    /// The start, in clustering order (on a DESC column it holds the larger value).
    #[inline]
    pub fn start(&self) -> Bound<'d> {
        Bound { m: self.m, table: self.table, values: self.rec.start.values, inclusive: self.rec.start.inclusive }
    }

    /// The end, in clustering order.
    #[inline]
    pub fn end(&self) -> Bound<'d> {
        Bound { m: self.m, table: self.table, values: self.rec.end.values, inclusive: self.rec.end.inclusive }
    }

    /// The deletion (`None` only for Cassandra's LIVE, which a valid marker never has).
    #[inline]
    pub fn deletion(&self) -> Option<DeletionTime> {
        self.rec.deletion
    }
}

/// A range tombstone marker as written: a bound (one side of a range) or a
/// boundary (one range closing where the next opens).
#[derive(Clone, Copy)]
pub struct Marker<'d> {
    m: Mutation<'d>,
    rec: &'d MarkerRec,
    table: &'d Table,
}

impl<'d> Marker<'d> {
    /// Bound kind ordinal (format spec §8.5): 0 exclusive end, 1 inclusive
    /// start, 2 exclusive end + inclusive start, 5 inclusive end + exclusive
    /// start, 6 inclusive end, 7 exclusive start.
    #[inline]
    pub fn kind(&self) -> u8 {
        self.rec.kind
    }

    /// Place among the partition's rows and markers, in stream order.
    #[inline]
    pub fn index(&self) -> u32 {
        self.rec.seq
    }

    /// The clustering prefix.
    #[inline]
    pub fn clustering(&self) -> Bound<'d> {
        let inclusive = matches!(self.rec.kind, 1 | 2 | 6);
        Bound { m: self.m, table: self.table, values: self.rec.values, inclusive }
    }

    /// The deletion (a boundary's end deletion).
    #[inline]
    pub fn deletion(&self) -> Option<DeletionTime> {
        self.rec.deletion
    }

    /// A boundary's start deletion.
    #[inline]
    pub fn start_deletion(&self) -> Option<DeletionTime> {
        self.rec.start_deletion
    }
}
