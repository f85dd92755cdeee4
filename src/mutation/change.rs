//! What a sync tool asks of a partition update first: what kind of change
//! each row is, its whole primary key as typed values, and each column as
//! one value (a non-frozen collection or UDT put together from its element
//! cells).
//!
//! See [`Change`] for the classification.

use super::decode::{DeletionTime, Liveness};
use super::view::{Cell, CellPath, ColumnData, PartitionUpdate, RangeTombstone, Row};
use crate::schema::{Column, CqlType};
use crate::value::{Value, ValueError};

/// What a row of an update does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// An `INSERT`: the row marker is written (an upsert of the columns carried).
    Insert,
    /// An `UPDATE` of columns (set, increment, append, put, remove, delete).
    Update,
    /// A row deletion.
    Delete,
}

impl ChangeKind {
    /// `"insert"`, `"update"` or `"delete"`.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// One change of a partition update, in the order of the update (the
/// partition deletion first, then rows and range deletions).
///
/// The classification follows what Cassandra writes for each statement
/// (checked against the corpus's `expected.jsonl` in `tests/change.rs`):
///
/// | statement | what the log holds | [`Change`] |
/// |---|---|---|
/// | `INSERT` | a row with a primary-key liveness (the row marker) and cells | `Row` of kind [`ChangeKind::Insert`] |
/// | `INSERT` of the partition key and static columns only | the static row, which never carries a row marker | `Row` (static) of kind [`ChangeKind::Update`] |
/// | `UPDATE ... SET` (also counters, collection appends, puts and element removals) | a row of cells, no row marker | `Row` of kind [`ChangeKind::Update`] |
/// | `DELETE c1, c2 FROM ... WHERE <row>`, `DELETE m[k] FROM ...` | a row of tombstone cells or complex deletions | `Row` of kind [`ChangeKind::Update`] (the columns become null) |
/// | `DELETE FROM ... WHERE <full primary key>` | a row deletion | `Row` of kind [`ChangeKind::Delete`] |
/// | `DELETE FROM ... WHERE <partition key>` (and a full key on a table without clustering columns) | a partition deletion | [`Change::PartitionDelete`] |
/// | `DELETE FROM ... WHERE <partition key> AND <clustering range or prefix>` | a range tombstone | [`Change::RangeDelete`] |
///
/// Cassandra's writes are upserts: an `Insert` of an existing row overwrites
/// the columns it carries, an `Update` of a missing row creates it (without a
/// row marker: the row lives while a column does). A row deletion written
/// together with a newer row marker (a `DELETE` and an `INSERT` in one
/// batch) is an `Insert`.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Change<'d> {
    /// The whole partition deleted (everything at or before the timestamp).
    PartitionDelete(DeletionTime),
    /// A row: inserted, updated or deleted (the static row too).
    Row {
        /// What the row does.
        kind: ChangeKind,
        /// The row.
        row: Row<'d>,
    },
    /// The rows of a clustering range deleted.
    RangeDelete(RangeTombstone<'d>),
}

impl<'d> Row<'d> {
    /// What kind of change the row is (see the table on [`Change`]).
    pub fn kind(&self) -> ChangeKind {
        let marker = self.liveness().map(|l: Liveness| l.timestamp);
        match self.deletion() {
            Some(d) if marker.is_none_or(|t| t <= d.time.timestamp) && !self.has_live_cells_after(d.time.timestamp) => {
                ChangeKind::Delete
            }
            _ if marker.is_some() => ChangeKind::Insert,
            _ => ChangeKind::Update,
        }
    }

    fn has_live_cells_after(&self, ts: i64) -> bool {
        self.columns().any(|c| c.cells().any(|cell| !cell.is_tombstone() && cell.timestamp() > ts))
    }

    /// The row's whole primary key: partition key and clustering values,
    /// typed, in key order (a clustering value may be null in a static row
    /// or a compact table).
    pub fn primary_key(&self) -> Result<PrimaryKey<'d>, ValueError> {
        let partition = self.update().partition_key().collect::<Result<Vec<_>, _>>()?;
        let mut clustering = Vec::with_capacity(self.clustering().len());
        for (col, v) in self.clustering() {
            clustering.push((col, v.transpose()?));
        }
        Ok(PrimaryKey { partition, clustering })
    }
}

impl<'d> PartitionUpdate<'d> {
    /// The partition key as typed values (a [`PrimaryKey`] with no
    /// clustering): the key of a partition or range deletion.
    pub fn key(&self) -> Result<PrimaryKey<'d>, ValueError> {
        Ok(PrimaryKey { partition: self.partition_key().collect::<Result<Vec<_>, _>>()?, clustering: Vec::new() })
    }

    /// The changes of the update, in order: the partition deletion, then
    /// rows (the static row first) and range deletions as written.
    pub fn changes(&self) -> impl Iterator<Item = Change<'d>> + 'd {
        let deletion = self.partition_deletion().map(Change::PartitionDelete);
        let rows = self.all_rows().map(|row| Change::Row { kind: row.kind(), row });
        deletion.into_iter().chain(rows).chain(self.range_tombstones().map(Change::RangeDelete))
    }
}

/// A row's primary key, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimaryKey<'d> {
    /// Partition key columns and values, in key order.
    pub partition: Vec<(&'d Column, Value<'d>)>,
    /// Clustering columns and values, in clustering order (`None`: null).
    pub clustering: Vec<(&'d Column, Option<Value<'d>>)>,
}

impl PrimaryKey<'_> {
    /// The key as one JSON object, column name to value, partition key
    /// columns first (exact for every type).
    pub fn to_json(&self) -> Result<String, ValueError> {
        let mut out = b"{".to_vec();
        let mut writer = super::ChangeWriter::new();
        let all = self
            .partition
            .iter()
            .map(|(c, v)| (c, Some(v)))
            .chain(self.clustering.iter().map(|(c, v)| (c, v.as_ref())));
        for (i, (col, v)) in all.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            crate::value::write::string(&mut out, &col.name);
            out.push(b':');
            match v {
                Some(v) => writer.write_value(&mut out, v)?,
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(String::from_utf8(out).expect("JSON is UTF-8"))
    }
}

/// One element of a non-frozen collection or UDT, from its cell.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Element<'d> {
    /// A list element (lists keep the order of their cells' time-based paths).
    List(Value<'d>),
    /// A set element.
    Set(Value<'d>),
    /// A map entry.
    Map(Value<'d>, Value<'d>),
    /// A UDT field: its name (the index when the schema does not know the
    /// field) and value.
    Field(FieldName<'d>, Value<'d>),
}

/// A UDT field's name, or its index when the type has no such field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldName<'d> {
    /// The name.
    Name(&'d str),
    /// The index.
    Index(i16),
}

/// A column of a row as one value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Merged<'d> {
    /// A simple column: its value, `None` when the cell is a tombstone
    /// (the column deleted or set to null) or its value is empty.
    Value(Option<Value<'d>>),
    /// A counter: this write's total across its shards (an increment).
    Counter(i64),
    /// A non-frozen collection or UDT: the live elements this write
    /// carries, in cell order. `complete` when the write replaced the
    /// whole column (it carries a complex deletion: `SET c = ...`,
    /// `INSERT`, `DELETE c`), so that the elements are the new value; else
    /// the elements were added to it (`c = c + ...`, `c[k] = v`) and
    /// [`ColumnData::cells`] has the removed ones as tombstones.
    Collection {
        /// A list, set, map or UDT (what the elements are, even when none
        /// are written).
        kind: CollectionKind,
        /// Whether the elements are the column's whole new value.
        complete: bool,
        /// The live elements written.
        elements: Vec<Element<'d>>,
    },
}

/// What a non-frozen column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectionKind {
    /// `list<T>`: written as a JSON array.
    List,
    /// `set<T>`: written as a JSON array.
    Set,
    /// `map<K, V>`: written as a JSON object.
    Map,
    /// A user-defined type: written as a JSON object.
    Udt,
}

impl<'d> ColumnData<'d> {
    /// The column as one value (see [`Merged`]); element deletions and TTLs
    /// stay available through [`cells`](Self::cells).
    pub fn merged(&self) -> Result<Merged<'d>, ValueError> {
        if !self.is_complex() {
            let Some(cell) = self.cells().next() else { return Ok(Merged::Value(None)) };
            if let Some(ctx) = cell.counter() {
                return Ok(Merged::Counter(ctx?.total()));
            }
            return Ok(Merged::Value(match cell.value().transpose()? {
                Some(Value::Empty) | None => None,
                Some(v) => Some(v),
            }));
        }
        let mut elements = Vec::new();
        for cell in self.cells().filter(|c| !c.is_tombstone()) {
            elements.push(element(&cell)?);
        }
        let kind = match self.ty() {
            CqlType::List { .. } => CollectionKind::List,
            CqlType::Set { .. } => CollectionKind::Set,
            CqlType::Map { .. } => CollectionKind::Map,
            _ => CollectionKind::Udt,
        };
        Ok(Merged::Collection { kind, complete: self.complex_deletion().is_some(), elements })
    }
}

fn element<'d>(cell: &Cell<'d>) -> Result<Element<'d>, ValueError> {
    let path = cell.path().ok_or(ValueError::Truncated { ty: "cell path", at: 0 })??;
    let value = || -> Result<Value<'d>, ValueError> { cell.value().unwrap_or(Ok(Value::Empty)) };
    Ok(match path {
        CellPath::ListElement(_) => Element::List(value()?),
        CellPath::SetElement(v) => Element::Set(v),
        CellPath::MapKey(k) => Element::Map(k, value()?),
        CellPath::Field { index, name } => {
            Element::Field(name.map_or(FieldName::Index(index), FieldName::Name), value()?)
        }
    })
}

impl Merged<'_> {
    /// The value as JSON, exact for every type: a list or set as an array, a
    /// map or UDT as an object (map keys as the change format writes
    /// them), a counter increment as a number, `null` for no value.
    pub fn to_json(&self) -> Result<String, ValueError> {
        let mut out = Vec::new();
        let mut writer = super::ChangeWriter::new();
        match self {
            Merged::Value(None) => out.extend_from_slice(b"null"),
            Merged::Value(Some(v)) => writer.write_value(&mut out, v)?,
            Merged::Counter(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Merged::Collection { kind, elements, .. } => {
                let object = matches!(kind, CollectionKind::Map | CollectionKind::Udt);
                out.push(if object { b'{' } else { b'[' });
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match e {
                        Element::List(v) | Element::Set(v) => writer.write_value(&mut out, v)?,
                        Element::Map(k, v) => {
                            writer.write_key(&mut out, k)?;
                            out.push(b':');
                            writer.write_value(&mut out, v)?;
                        }
                        Element::Field(name, v) => {
                            match name {
                                FieldName::Name(n) => crate::value::write::string(&mut out, n),
                                FieldName::Index(i) => crate::value::write::string(&mut out, &i.to_string()),
                            }
                            out.push(b':');
                            writer.write_value(&mut out, v)?;
                        }
                    }
                }
                out.push(if object { b'}' } else { b']' });
            }
        }
        Ok(String::from_utf8(out).expect("JSON is UTF-8"))
    }
}
