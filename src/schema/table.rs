//! Tables, their columns and dropped columns, and the schema that finds a
//! table by the id every partition update carries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::types::{CqlType, UserType};

/// Clustering order of a clustering column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// Ascending (the default).
    Asc,
    /// Descending (`CLUSTERING ORDER BY (c DESC)`).
    Desc,
}

/// What a column is in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ColumnKind {
    /// Part of the partition key.
    PartitionKey,
    /// A clustering column.
    Clustering(Order),
    /// A static column.
    Static,
    /// A regular column.
    Regular,
}

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Name (as stored: case kept for quoted names, lower case otherwise).
    pub name: String,
    /// Type.
    pub ty: CqlType,
    /// Role in the table.
    pub kind: ColumnKind,
    /// When a column of this name was last dropped (microseconds), if it
    /// was dropped and added again: its cells written at or before then
    /// are dropped data.
    pub dropped_at: Option<i64>,
}

/// A column that was dropped: mutations written before the drop still carry it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DroppedColumn {
    /// Name.
    pub name: String,
    /// Type it had.
    pub ty: CqlType,
    /// Drop time, in microseconds (the `USING TIMESTAMP` of the `DROP`).
    pub dropped_at: i64,
    /// Whether it was a static column.
    pub is_static: bool,
}

/// Where a column name of a partition update's header points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnRef {
    /// A current column (index in `Table::columns`).
    Current(u16),
    /// A dropped column no longer in the table (index in `Table::dropped`).
    Dropped(u16),
}

/// A table: columns, primary key, id and dropped columns.
#[derive(Clone, Debug)]
pub struct Table {
    /// Keyspace.
    pub keyspace: String,
    /// Name.
    pub name: String,
    /// Table id (`system_schema.tables.id`, `WITH ID = ...`).
    pub id: Uuid,
    /// Current columns in declaration order.
    pub columns: Vec<Column>,
    /// Columns dropped from the table.
    pub dropped: Vec<DroppedColumn>,
    partition_key: Vec<u16>,
    clustering: Vec<u16>,
    by_name: HashMap<Box<[u8]>, ColumnRef>,
    /// Each current column's name as a JSON object key (`"name":`), then
    /// each dropped one's: written once here instead of escaped for every
    /// cell of the change format.
    json_keys: Vec<JsonKey>,
    /// The keyspace and table names as JSON strings.
    json_names: [Box<[u8]>; 2],
}

/// A table as the saved state of a schema tracker holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct TableRepr {
    keyspace: String,
    name: String,
    id: Uuid,
    columns: Vec<Column>,
    dropped: Vec<DroppedColumn>,
    partition_key: Vec<u16>,
    clustering: Vec<u16>,
}

impl serde::Serialize for Table {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TableRepr {
            keyspace: self.keyspace.clone(),
            name: self.name.clone(),
            id: self.id,
            columns: self.columns.clone(),
            dropped: self.dropped.clone(),
            partition_key: self.partition_key.clone(),
            clustering: self.clustering.clone(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Table {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Table, D::Error> {
        use serde::de::Error;
        let r = TableRepr::deserialize(d)?;
        let n = r.columns.len();
        if r.partition_key.is_empty() || r.partition_key.iter().chain(&r.clustering).any(|&i| i as usize >= n) {
            return Err(D::Error::custom("table key positions out of range"));
        }
        let mut t = Table {
            keyspace: r.keyspace,
            name: r.name,
            id: r.id,
            columns: r.columns,
            dropped: r.dropped,
            partition_key: r.partition_key,
            clustering: r.clustering,
            by_name: HashMap::new(),
            json_keys: Vec::new(),
            json_names: Default::default(),
        };
        t.index().map_err(D::Error::custom)?;
        Ok(t)
    }
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.keyspace == other.keyspace
            && self.name == other.name
            && self.id == other.id
            && self.columns == other.columns
            && self.dropped == other.dropped
    }
}

/// Why a table or schema could not be built as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Two columns share a name.
    #[error("table {table}: column {column:?} is declared twice")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A primary key names a column the table does not have.
    #[error("table {table}: primary key column {column:?} is not declared")]
    UnknownKeyColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// No partition key.
    #[error("table {table}: no partition key")]
    NoPartitionKey {
        /// The table.
        table: String,
    },
    /// More columns than a mutation can address.
    #[error("table {table}: {count} columns (at most 65535)")]
    TooManyColumns {
        /// The table.
        table: String,
        /// How many.
        count: usize,
    },
    /// No such table to amend.
    #[error("no table {keyspace}.{table}")]
    NoSuchTable {
        /// Keyspace.
        keyspace: String,
        /// Table.
        table: String,
    },
    /// No such column to drop.
    #[error("table {table}: no column {column:?} to drop")]
    NoSuchColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
}

impl Table {
    /// Starts a table definition.
    pub fn builder(keyspace: impl Into<String>, name: impl Into<String>) -> TableBuilder {
        TableBuilder {
            keyspace: keyspace.into(),
            name: name.into(),
            id: Uuid::nil(),
            columns: Vec::new(),
            partition_key: Vec::new(),
            clustering: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// Partition key columns, in key order.
    pub fn partition_key(&self) -> impl ExactSizeIterator<Item = &Column> + '_ {
        self.partition_key.iter().map(|&i| &self.columns[i as usize])
    }

    /// Clustering columns, in clustering order.
    pub fn clustering(&self) -> impl ExactSizeIterator<Item = &Column> + '_ {
        self.clustering.iter().map(|&i| &self.columns[i as usize])
    }

    /// Number of clustering columns.
    pub fn clustering_len(&self) -> usize {
        self.clustering.len()
    }

    /// The `i`-th clustering column.
    pub fn clustering_column(&self, i: usize) -> Option<&Column> {
        self.clustering.get(i).map(|&c| &self.columns[c as usize])
    }

    /// The `i`-th partition key column.
    pub fn partition_key_column(&self, i: usize) -> Option<&Column> {
        self.partition_key.get(i).map(|&c| &self.columns[c as usize])
    }

    /// Number of partition key columns.
    pub fn partition_key_len(&self) -> usize {
        self.partition_key.len()
    }

    /// A current column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        match self.by_name.get(name.as_bytes()) {
            Some(ColumnRef::Current(i)) => Some(&self.columns[*i as usize]),
            _ => None,
        }
    }

    /// A column's `"name":` for the change format: `name` as a JSON key,
    /// from the keys rendered when the table was indexed (`name` is checked
    /// against it, so a name changed through the public fields since is
    /// rendered afresh).
    #[inline]
    pub(crate) fn write_json_key(&self, col: ColumnRef, name: &str, out: &mut Vec<u8>) {
        let i = match col {
            ColumnRef::Current(i) => i as usize,
            ColumnRef::Dropped(i) => self.columns.len() + i as usize,
        };
        match self.json_keys.get(i) {
            Some(k) if k.is_of(name.as_bytes()) => k.write(out),
            _ => crate::value::write::name_key(out, name),
        }
    }

    /// The keyspace name as a JSON string, rendered when the table was
    /// indexed (checked as for [`write_json_key`](Self::write_json_key)).
    pub(crate) fn write_json_keyspace(&self, out: &mut Vec<u8>) {
        write_json_name(&self.json_names[0], &self.keyspace, out);
    }

    /// The table name as a JSON string, as the keyspace's.
    pub(crate) fn write_json_table_name(&self, out: &mut Vec<u8>) {
        write_json_name(&self.json_names[1], &self.name, out);
    }

    /// The `i`th partition key column.
    pub(crate) fn partition_key_ref(&self, i: usize) -> Option<ColumnRef> {
        self.partition_key.get(i).map(|&c| ColumnRef::Current(c))
    }

    /// The `i`th clustering column.
    pub(crate) fn clustering_ref(&self, i: usize) -> Option<ColumnRef> {
        self.clustering.get(i).map(|&c| ColumnRef::Current(c))
    }

    /// A column name of a mutation header: a current column, or a dropped one.
    pub(crate) fn resolve(&self, name: &[u8]) -> Option<ColumnRef> {
        self.by_name.get(name).copied()
    }

    /// Records that `name` was dropped at `dropped_at` (microseconds), as
    /// `ALTER TABLE ... DROP name USING TIMESTAMP dropped_at` does.
    pub fn drop_column(&mut self, name: &str, dropped_at: i64) -> Result<(), TableError> {
        let i = self
            .columns
            .iter()
            .position(|c| c.name == name && matches!(c.kind, ColumnKind::Regular | ColumnKind::Static));
        let Some(i) = i else {
            return Err(TableError::NoSuchColumn { table: self.name.clone(), column: name.to_owned() });
        };
        let c = self.columns.remove(i);
        // Key columns are never dropped, but they may be declared after this one.
        for p in self.partition_key.iter_mut().chain(self.clustering.iter_mut()) {
            if *p as usize > i {
                *p -= 1;
            }
        }
        self.dropped.retain(|d| d.name != name);
        self.dropped.push(DroppedColumn {
            name: c.name,
            ty: c.ty,
            dropped_at,
            is_static: c.kind == ColumnKind::Static,
        });
        self.index()
    }

    /// Adds a dropped column (one the schema text no longer shows).
    pub fn add_dropped_column(&mut self, dropped: DroppedColumn) -> Result<(), TableError> {
        self.dropped.retain(|d| d.name != dropped.name);
        self.dropped.push(dropped);
        self.index()
    }

    /// Adds a regular or static column (`ALTER TABLE ... ADD`).
    pub fn add_column(&mut self, name: impl Into<String>, ty: CqlType, is_static: bool) -> Result<(), TableError> {
        let name = name.into();
        if self.columns.iter().any(|c| c.name == name) {
            return Err(TableError::DuplicateColumn { table: self.name.clone(), column: name });
        }
        let kind = if is_static { ColumnKind::Static } else { ColumnKind::Regular };
        self.columns.push(Column { name, ty, kind, dropped_at: None });
        self.index()
    }

    /// Rebuilds the name index and the re-added columns' drop times after a
    /// change (key positions are kept by the change itself).
    fn index(&mut self) -> Result<(), TableError> {
        if self.columns.len() + self.dropped.len() > u16::MAX as usize {
            return Err(TableError::TooManyColumns {
                table: self.name.clone(),
                count: self.columns.len() + self.dropped.len(),
            });
        }
        for c in &mut self.columns {
            c.dropped_at = self.dropped.iter().filter(|d| d.name == c.name).map(|d| d.dropped_at).max();
        }
        let mut by_name = HashMap::new();
        for (i, d) in self.dropped.iter().enumerate() {
            by_name.insert(d.name.as_bytes().into(), ColumnRef::Dropped(i as u16));
        }
        // A current column shadows a dropped one of the same name (re-added).
        for (i, c) in self.columns.iter().enumerate() {
            by_name.insert(c.name.as_bytes().into(), ColumnRef::Current(i as u16));
        }
        self.by_name = by_name;
        self.json_names = [json_string(&self.keyspace), json_string(&self.name)];
        self.json_keys = self
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.dropped.iter().map(|d| d.name.as_str()))
            .map(JsonKey::new)
            .collect();
        Ok(())
    }
}

/// Builds a [`Table`] in code.
///
/// ```
/// use cassandra_commitlog::schema::{CqlType, Order, Table};
///
/// let table = Table::builder("Keyspace1", "Standard1")
///     .id("6c622920-f980-11e4-b8a0-e7d448d5e26d".parse().unwrap())
///     .partition_key("key", CqlType::Ascii)
///     .clustering("col", CqlType::Ascii, Order::Asc)
///     .regular("val", CqlType::Blob)
///     .build()
///     .unwrap();
/// assert_eq!(table.clustering_len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct TableBuilder {
    keyspace: String,
    name: String,
    id: Uuid,
    columns: Vec<(String, CqlType, ColumnKind)>,
    partition_key: Vec<String>,
    clustering: Vec<String>,
    dropped: Vec<DroppedColumn>,
}

impl TableBuilder {
    /// Sets the table id.
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Adds a partition key column (in key order).
    pub fn partition_key(mut self, name: impl Into<String>, ty: CqlType) -> Self {
        let name = name.into();
        self.partition_key.push(name.clone());
        self.columns.push((name, ty, ColumnKind::PartitionKey));
        self
    }

    /// Adds a clustering column (in clustering order).
    pub fn clustering(mut self, name: impl Into<String>, ty: CqlType, order: Order) -> Self {
        let name = name.into();
        self.clustering.push(name.clone());
        self.columns.push((name, ty, ColumnKind::Clustering(order)));
        self
    }

    /// Adds a regular column.
    pub fn regular(mut self, name: impl Into<String>, ty: CqlType) -> Self {
        self.columns.push((name.into(), ty, ColumnKind::Regular));
        self
    }

    /// Adds a static column.
    pub fn static_column(mut self, name: impl Into<String>, ty: CqlType) -> Self {
        self.columns.push((name.into(), ty, ColumnKind::Static));
        self
    }

    /// Adds a dropped column.
    pub fn dropped(mut self, dropped: DroppedColumn) -> Self {
        self.dropped.push(dropped);
        self
    }

    /// Checks and builds the table.
    pub fn build(self) -> Result<Table, TableError> {
        let mut columns: Vec<Column> = Vec::with_capacity(self.columns.len());
        for (name, ty, kind) in self.columns {
            if columns.iter().any(|c| c.name == name) {
                return Err(TableError::DuplicateColumn { table: self.name, column: name });
            }
            columns.push(Column { name, ty, kind, dropped_at: None });
        }
        let position = |name: &String| {
            columns
                .iter()
                .position(|c| &c.name == name)
                .map(|i| i as u16)
                .ok_or_else(|| TableError::UnknownKeyColumn { table: self.name.clone(), column: name.clone() })
        };
        let partition_key = self.partition_key.iter().map(position).collect::<Result<Vec<_>, _>>()?;
        let clustering = self.clustering.iter().map(position).collect::<Result<Vec<_>, _>>()?;
        if partition_key.is_empty() {
            return Err(TableError::NoPartitionKey { table: self.name });
        }
        let mut table = Table {
            keyspace: self.keyspace,
            name: self.name,
            id: self.id,
            columns,
            dropped: self.dropped,
            partition_key,
            clustering,
            by_name: HashMap::new(),
            json_keys: Vec::new(),
            json_names: Default::default(),
        };
        table.index()?;
        Ok(table)
    }
}

/// Hashes table ids (random or time-based UUIDs, never chosen to collide)
/// by folding their two halves: SipHash's protection buys nothing here.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

type IdMap = HashMap<Uuid, u32, std::hash::BuildHasherDefault<IdHasher>>;

/// A number no other schema state has had: decoders key their caches on it.
fn next_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Keyspaces, user types and tables, found by table id.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Changes with every change to the schema (see `next_stamp`).
    stamp: u64,
    /// The version a schema tracker gave this state (0 otherwise).
    version: u64,
    keyspaces: Vec<String>,
    types: Vec<Arc<UserType>>,
    tables: Vec<Table>,
    /// Parallel to `tables`: dropped tables kept for their older mutations.
    retired: Vec<bool>,
    by_id: IdMap,
}

impl Default for Schema {
    fn default() -> Self {
        Schema {
            stamp: next_stamp(),
            version: 0,
            keyspaces: Vec::new(),
            types: Vec::new(),
            tables: Vec::new(),
            retired: Vec::new(),
            by_id: IdMap::default(),
        }
    }
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Identifies this state of the schema: any change gives a new stamp.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Which state of a schema that follows the log this is: the
    /// [`SchemaTracker`](super::SchemaTracker) numbers every change from 1;
    /// a schema loaded from CQL or built in code is version 0.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Adds a keyspace name.
    pub fn add_keyspace(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.keyspaces.contains(&name) {
            self.keyspaces.push(name);
        }
    }

    /// Keyspace names, in the order added.
    pub fn keyspaces(&self) -> &[String] {
        &self.keyspaces
    }

    /// Adds (or replaces, by keyspace and name) a user type.
    pub fn add_type(&mut self, ty: UserType) -> Arc<UserType> {
        let ty = Arc::new(ty);
        self.types.retain(|t| !(t.keyspace == ty.keyspace && t.name == ty.name));
        self.types.push(ty.clone());
        ty
    }

    /// A user type by keyspace and name.
    pub fn user_type(&self, keyspace: &str, name: &str) -> Option<&Arc<UserType>> {
        self.types.iter().find(|t| t.keyspace == keyspace && t.name == name)
    }

    /// Adds a table. A table of the same keyspace and name is replaced only
    /// when it has the same id; tables of other ids (a table dropped and
    /// created again) are all kept, since segments hold mutations of both.
    /// A table with the nil id (CQL without `WITH ID`) has no id yet: it is
    /// not found by id until [`set_table_id`](Self::set_table_id) gives it one.
    pub fn add_table(&mut self, table: Table) {
        self.stamp = next_stamp();
        let same = if table.id.is_nil() {
            self.tables.iter().position(|t| t.id.is_nil() && t.keyspace == table.keyspace && t.name == table.name)
        } else {
            self.by_id.get(&table.id).map(|&i| i as usize)
        };
        if let Some(i) = same {
            self.tables[i] = table;
            self.retired[i] = false;
            return;
        }
        if !table.id.is_nil() {
            self.by_id.insert(table.id, self.tables.len() as u32);
        }
        self.tables.push(table);
        self.retired.push(false);
    }

    /// Keeps a dropped table: found by its id (its older mutations still
    /// decode), not by its name, not among [`tables`](Self::tables).
    pub(crate) fn add_retired_table(&mut self, table: Table) {
        if self.by_id.contains_key(&table.id) {
            return;
        }
        self.add_table(table);
        *self.retired.last_mut().expect("just added") = true;
    }

    /// Whether the table of this id was dropped (it is kept for the
    /// mutations written before the drop).
    pub fn is_retired(&self, id: &Uuid) -> bool {
        self.by_id.get(id).is_some_and(|&i| self.retired[i as usize])
    }

    /// Tables that were dropped, kept for the mutations written before.
    pub fn retired_tables(&self) -> impl Iterator<Item = &Table> + '_ {
        self.tables.iter().zip(&self.retired).filter(|(_, r)| **r).map(|(t, _)| t)
    }

    /// Every user type.
    pub fn user_types(&self) -> impl ExactSizeIterator<Item = &Arc<UserType>> + '_ {
        self.types.iter()
    }

    /// The table a partition update's id names.
    pub fn table_by_id(&self, id: &Uuid) -> Option<&Table> {
        self.by_id.get(id).map(|&i| &self.tables[i as usize])
    }

    pub(crate) fn table_index(&self, id: &Uuid) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn table_at(&self, index: u32) -> &Table {
        &self.tables[index as usize]
    }

    /// The most recently added table of that keyspace and name (not a
    /// dropped one).
    pub fn table(&self, keyspace: &str, name: &str) -> Option<&Table> {
        self.live_index(keyspace, name).map(|i| &self.tables[i])
    }

    fn live_index(&self, keyspace: &str, name: &str) -> Option<usize> {
        self.tables.iter().zip(&self.retired).rposition(|(t, r)| !r && t.keyspace == keyspace && t.name == name)
    }

    /// Every table but the dropped ones.
    pub fn tables(&self) -> impl Iterator<Item = &Table> + '_ {
        self.tables.iter().zip(&self.retired).filter(|(_, r)| !**r).map(|(t, _)| t)
    }

    /// Amends a table in place (drop or add a column, add a dropped column);
    /// the table keeps its id. Use [`set_table_id`](Self::set_table_id) to change it.
    pub fn amend_table<T>(
        &mut self,
        keyspace: &str,
        name: &str,
        change: impl FnOnce(&mut Table) -> Result<T, TableError>,
    ) -> Result<T, TableError> {
        let i = self
            .live_index(keyspace, name)
            .ok_or_else(|| TableError::NoSuchTable { keyspace: keyspace.to_owned(), table: name.to_owned() })?;
        let id = self.tables[i].id;
        self.stamp = next_stamp();
        let out = change(&mut self.tables[i])?;
        self.tables[i].id = id;
        Ok(out)
    }

    /// Gives a table a new id (for example the id a replayed capture forces).
    pub fn set_table_id(&mut self, keyspace: &str, name: &str, id: Uuid) -> Result<(), TableError> {
        let i = self
            .live_index(keyspace, name)
            .ok_or_else(|| TableError::NoSuchTable { keyspace: keyspace.to_owned(), table: name.to_owned() })?;
        let old = self.tables[i].id;
        self.stamp = next_stamp();
        if self.by_id.get(&old) == Some(&(i as u32)) {
            self.by_id.remove(&old);
        }
        self.tables[i].id = id;
        self.by_id.insert(id, i as u32);
        Ok(())
    }
}

/// `name` as a JSON string: `rendered` when it is still the name's
/// rendering (a name changed through the public fields since is rendered
/// afresh).
fn write_json_name(rendered: &[u8], name: &str, out: &mut Vec<u8>) {
    if frames(rendered, 1, 1, name.as_bytes()) {
        out.extend_from_slice(rendered);
    } else {
        crate::value::write::string(out, name);
    }
}

/// Whether `framed` is `name` with `open` bytes before it and `close`
/// after (a rendering that needed no escaping: then it is still the
/// rendering of that name).
#[inline]
fn frames(framed: &[u8], open: usize, close: usize, name: &[u8]) -> bool {
    framed.len() == open + name.len() + close && &framed[open..framed.len() - close] == name
}

/// A name as a JSON string.
fn json_string(name: &str) -> Box<[u8]> {
    let mut k = Vec::with_capacity(name.len() + 2);
    crate::value::write::string(&mut k, name);
    k.into_boxed_slice()
}

/// A column name as the change format writes it (`"name":`), with what
/// tells cheaply whether a name is still the one it was rendered from.
#[derive(Clone, Debug)]
struct JsonKey {
    text: Box<[u8]>,
    /// Keys up to 32 bytes, padded to a fixed size: appended whole, then
    /// cut to length (no call to `memcpy` for a dozen bytes).
    short: Option<[u8; 32]>,
    /// The name's length and its [`windows`].
    name_len: usize,
    name_windows: Option<(u64, u64)>,
}

impl JsonKey {
    fn new(name: &str) -> JsonKey {
        let mut text = Vec::with_capacity(name.len() + 3);
        crate::value::write::name_key(&mut text, name);
        let short = (text.len() <= 32).then(|| {
            let mut s = [0u8; 32];
            s[..text.len()].copy_from_slice(&text);
            s
        });
        JsonKey { text: text.into_boxed_slice(), short, name_len: name.len(), name_windows: windows(name.as_bytes()) }
    }

    /// Whether `name` is the name this key was rendered from.
    #[inline]
    fn is_of(&self, name: &[u8]) -> bool {
        if name.len() != self.name_len {
            return false;
        }
        match self.name_windows {
            Some(w) => windows(name) == Some(w),
            // Longer names: the key without its quotes and colon is the
            // name when it needed no escaping.
            None => frames(&self.text, 1, 2, name),
        }
    }

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        match &self.short {
            Some(s) => {
                let at = out.len();
                out.extend_from_slice(s);
                out.truncate(at + self.text.len());
            }
            None => out.extend_from_slice(&self.text),
        }
    }
}

/// Up to 16 bytes as two words that, with the length, determine them all
/// (overlapping windows from each end: every byte covered, compared without
/// a call); `None` for longer names.
#[inline]
fn windows(b: &[u8]) -> Option<(u64, u64)> {
    let n = b.len();
    let w4 = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes")) as u64;
    let w8 = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    match n {
        0 => Some((0, 0)),
        1..=3 => Some((b[0] as u64 | (b[n / 2] as u64) << 8 | (b[n - 1] as u64) << 16, 0)),
        4..=7 => Some((w4(0), w4(n - 4))),
        8..=16 => Some((w8(0), w8(n - 8))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rendered key recognizes exactly its own name: every length up to
    /// 40 bytes, against the same name with any one byte changed (plain
    /// and escaped names), and is written as the escaper writes it.
    #[test]
    fn a_json_key_is_of_its_name_and_no_other() {
        for len in 0..=40usize {
            for base in [b'a', b'"'] {
                let name: Vec<u8> = (0..len).map(|i| if i % 5 == 3 { base } else { b'a' + (i % 26) as u8 }).collect();
                let name = String::from_utf8(name).unwrap();
                let key = JsonKey::new(&name);
                assert!(key.is_of(name.as_bytes()) || name.contains('"'), "{name:?}");
                let (mut written, mut escaped) = (Vec::new(), Vec::new());
                key.write(&mut written);
                crate::value::write::name_key(&mut escaped, &name);
                assert_eq!(written, escaped);
                for at in 0..len {
                    let mut other = name.clone().into_bytes();
                    other[at] ^= 0x01;
                    assert!(!key.is_of(&other), "{name:?} at {at}");
                }
                assert!(!key.is_of(format!("{name}a").as_bytes()));
            }
        }
    }
}
