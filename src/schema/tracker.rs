//! The schema as the log amends it: see [`SchemaTracker`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse::parse_type;
use super::rows::{SchemaRows, SeedRow};
use super::system::{Release, SYSTEM_SCHEMA_TABLES, system_table_id};
use super::table::{ColumnKind, DroppedColumn, Order, Schema, Table};
use super::types::{CqlType, UserType};
use crate::location::Location;
use crate::mutation::{Context, Decoded, Decoder, Mutation, MutationError};

/// The timestamp of rows seeded from a bootstrap schema or from the
/// built-in definitions of replicated system keyspaces: older than any
/// real write, so that every write and deletion the log carries wins.
const SEED_TIMESTAMP: i64 = i64::MIN + 1;

/// Keyspaces Cassandra never reads back from `system_schema` (they are
/// defined in code): their tables are built in.
const LOCAL_KEYSPACES: [&str; 2] = ["system", "system_schema"];

/// A change of the schema at a log position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaChange {
    /// The new schema's version ([`Schema::version`]).
    pub version: u64,
    /// The keyspace the DDL changed.
    pub keyspace: String,
    /// Tables (and views) created: name and id.
    pub created: Vec<(String, Uuid)>,
    /// Tables whose columns or dropped columns changed.
    pub altered: Vec<(String, Uuid)>,
    /// Tables dropped (kept for the mutations written before).
    pub dropped: Vec<(String, Uuid)>,
    /// User types created, changed or dropped.
    pub types: Vec<String>,
    /// The entry that made the change.
    pub at: Location,
}

/// A `TRUNCATE`: Cassandra's truncation record, from `system.local`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The truncated table's id.
    pub table_id: Uuid,
    /// Its keyspace, when the schema knows the id.
    pub keyspace: Option<String>,
    /// Its name, when the schema knows the id.
    pub table: Option<String>,
    /// The commit-log position recorded with the truncation (segment id
    /// and position): Cassandra's replay skips this table's mutations at
    /// or before it.
    pub segment_id: i64,
    /// See `segment_id`.
    pub position: u32,
    /// When the table was truncated (milliseconds since the epoch; `None`
    /// in records of releases that did not write it).
    pub truncated_at: Option<i64>,
    /// The `system.local` entry that recorded it.
    pub at: Location,
}

/// Why a `system_schema` mutation could not be applied, or a table not be
/// rebuilt from its rows. Decoding goes on with the last schema that could
/// be built; the table keeps its previous definition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaApplyError {
    /// The schema mutation did not decode (damage, or a column a newer
    /// Cassandra added to a `system_schema` table).
    #[error("{}: schema mutation not applied: {}", .0.loc, .0.error)]
    Undecodable(Box<MutationError>),
    /// A row lacks a value the schema needs, or holds one of the wrong form.
    #[error("{at}: {keyspace}.{table}: system_schema.{schema_table} row {row:?}: {what}")]
    BadRow {
        /// The entry that made the change.
        at: Location,
        /// Keyspace.
        keyspace: String,
        /// Table (or type) the row describes.
        table: String,
        /// The `system_schema` table.
        schema_table: &'static str,
        /// The row's clustering, as text.
        row: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A type that does not parse or names a user type the keyspace lacks.
    #[error("{at}: {keyspace}.{table}: type {type_text:?} of {column:?}: {reason}")]
    BadType {
        /// The entry that made the change.
        at: Location,
        /// Keyspace.
        keyspace: String,
        /// Table or user type.
        table: String,
        /// Column or field.
        column: String,
        /// The type as stored.
        type_text: String,
        /// Why it does not resolve.
        reason: super::SchemaError,
    },
    /// A table whose columns do not make a table (no partition key: the
    /// log holds only part of its definition, or it is being dropped).
    #[error("{at}: {keyspace}.{table}: {reason}")]
    Incomplete {
        /// The entry that made the change.
        at: Location,
        /// Keyspace.
        keyspace: String,
        /// Table.
        table: String,
        /// What is missing.
        reason: super::TableError,
    },
}

/// What the log did besides data, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaEvent {
    /// The schema changed: mutations after this one decode with the new one.
    Changed(SchemaChange),
    /// A table was truncated: a sink should clear its copy of the table
    /// (data before this point is no longer in Cassandra).
    Truncated(Truncation),
    /// A schema mutation or table could not be applied.
    NotApplied(SchemaApplyError),
}

/// One entry decoded by a tracker: the mutation (decoded with the schema in
/// force before the entry) and what the entry changed.
#[derive(Debug)]
pub struct Tracked<'d> {
    /// The decoded mutation.
    pub decoded: Decoded<'d>,
    /// Schema changes, truncations and failures the entry caused.
    pub events: Vec<SchemaEvent>,
}

/// A keyspace read back from the rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Built {
    types: Vec<Arc<UserType>>,
    tables: Vec<Table>,
}

/// A schema that follows the log.
///
/// Every DDL statement writes `system_schema` mutations into the commit log,
/// in log order with the data; every `TRUNCATE` writes `system.local`'s
/// `truncated_at`. A [`SchemaTracker`] applies them as it meets them, by
/// Cassandra's own rules (the rows of `system_schema` reconciled by
/// timestamp, deletions included, then the keyspace read back from them as
/// `SchemaKeyspace.fetchKeyspace` does), so that every mutation decodes with
/// the schema that was in force when it was written, with no schema file
/// kept by hand and no connection to the cluster.
///
/// ```
/// use cassandra_commitlog::mutation::Decoder;
/// use cassandra_commitlog::schema::{Release, SchemaTracker};
/// use cassandra_commitlog::segment::{ReadOptions, Segment};
///
/// let segment = Segment::open("testdata/cdc_raw/CommitLog-7-2000.log")?;
/// let mut reader = segment.reader(&ReadOptions::new())?;
/// let mut tracker = SchemaTracker::new(Release::Cassandra4);
/// let mut decoder = Decoder::new();
/// while let Some(entry) = reader.next_entry()? {
///     let ctx = cassandra_commitlog::mutation::Context::of_entry(&entry, segment.descriptor(), None);
///     let tracked = tracker.decode(&mut decoder, entry.mutation, ctx);
///     if let Ok(m) = &tracked.decoded {
///         let _ = m.keyspace(); // decoded with the schema in force at this position
///     }
///     for event in &tracked.events {
///         println!("{event:?}"); // schema changes, truncations, what could not be applied
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SchemaTracker {
    current: Arc<Schema>,
    /// A schema built by the last entry, in force from the next one.
    next: Option<Arc<Schema>>,
    state: Inner,
}

/// Everything but the schema in force (borrowed by decoded mutations).
#[derive(Clone, Debug)]
struct Inner {
    release: Release,
    /// Cassandra's local system keyspaces, built in.
    local: Schema,
    rows: SchemaRows,
    built: BTreeMap<String, Built>,
    retired: Vec<Table>,
    version: u64,
    /// Counts every change to the rows (a schema change or not).
    generation: u64,
    /// Ids of `system_schema`'s tables, with their names.
    schema_ids: Vec<(Uuid, &'static str)>,
    local_id: Uuid,
}

/// The saved state of a tracker (see [`SchemaTracker::save`]).
#[derive(Serialize, Deserialize)]
struct State {
    format: u32,
    release: String,
    version: u64,
    rows: SchemaRows,
    retired: Vec<Table>,
    /// The keyspaces as built: a table whose rows did not make a table
    /// keeps its previous definition, which the rows alone do not hold.
    built: BTreeMap<String, Built>,
}

const STATE_FORMAT: u32 = 2;

/// Why a saved tracker state could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not a tracker state of this format.
    #[error("not a schema tracker state: {0}")]
    Format(#[from] serde_json::Error),
    /// A state of another format version or release name.
    #[error("schema tracker state: unknown {what} {found:?}")]
    Unknown {
        /// Which field.
        what: &'static str,
        /// What was found.
        found: String,
    },
}

fn release_name(r: Release) -> &'static str {
    match r {
        Release::Cassandra3 => "3",
        Release::Cassandra4 => "4",
        Release::Cassandra5 => "5",
    }
}

impl SchemaTracker {
    /// A tracker that knows only Cassandra's own keyspaces (their tables
    /// for this release family): every other table comes from the log.
    pub fn new(release: Release) -> SchemaTracker {
        let system = Schema::system(release);
        let mut local = Schema::new();
        let mut replicated = Schema::new();
        for ks in system.keyspaces() {
            if LOCAL_KEYSPACES.contains(&ks.as_str()) {
                local.add_keyspace(ks.clone());
            } else {
                replicated.add_keyspace(ks.clone());
            }
        }
        for t in system.tables() {
            if LOCAL_KEYSPACES.contains(&t.keyspace.as_str()) {
                local.add_table(t.clone());
            } else {
                replicated.add_table(t.clone());
            }
        }
        let mut state = Inner {
            release,
            local,
            rows: SchemaRows::default(),
            built: BTreeMap::new(),
            retired: Vec::new(),
            version: 0,
            generation: 0,
            schema_ids: SYSTEM_SCHEMA_TABLES.iter().map(|t| (system_table_id("system_schema", t), *t)).collect(),
            local_id: system_table_id("system", "local"),
        };
        // The replicated system keyspaces are in system_schema like any other:
        // their built-in definitions are rows the log may amend.
        state.seed(&replicated);
        let current = Arc::new(state.rebuild_all());
        SchemaTracker { current, next: None, state }
    }

    /// A tracker that starts from `bootstrap` (a schema loaded from CQL, for
    /// logs whose DDL is long gone): its keyspaces, types and tables become
    /// rows older than any write, which the log's DDL amends as Cassandra
    /// would. Where the log holds the whole history, the result is the
    /// log's alone.
    pub fn with_bootstrap(release: Release, bootstrap: &Schema) -> SchemaTracker {
        let mut t = SchemaTracker::new(release);
        let mut user = Schema::new();
        for ks in bootstrap.keyspaces().iter().filter(|k| !LOCAL_KEYSPACES.contains(&k.as_str())) {
            user.add_keyspace(ks.clone());
        }
        for ty in bootstrap.user_types() {
            if !LOCAL_KEYSPACES.contains(&ty.keyspace.as_str()) {
                user.add_type((**ty).clone());
            }
        }
        for table in bootstrap.tables().filter(|t| !LOCAL_KEYSPACES.contains(&t.keyspace.as_str())) {
            if !table.id.is_nil() {
                user.add_keyspace(table.keyspace.clone());
                user.add_table(table.clone());
            }
        }
        t.state.seed(&user);
        t.current = Arc::new(t.state.rebuild_all());
        t
    }

    /// The release family whose system tables the tracker knows.
    pub fn release(&self) -> Release {
        self.state.release
    }

    /// Changes every time a schema mutation is applied (whether or not it
    /// changes the schema): a saved state is current while this is unchanged.
    pub fn generation(&self) -> u64 {
        self.state.generation
    }

    /// The schema in force (after every entry observed so far).
    pub fn schema(&self) -> &Arc<Schema> {
        self.next.as_ref().unwrap_or(&self.current)
    }

    /// Decodes one entry with the schema in force, then applies what it
    /// changes: the returned events say what, and the next entry decodes
    /// with the new schema.
    #[inline]
    pub fn decode<'d>(&'d mut self, decoder: &'d mut Decoder, bytes: &'d [u8], ctx: Context) -> Tracked<'d> {
        if self.next.is_some() {
            self.promote();
        }
        let schema: &'d Schema = &self.current;
        let decoded = decoder.decode(bytes, schema, ctx);
        let (m, error) = match &decoded {
            Ok(m) => (*m, None),
            Err(u) => (u.partial, Some(&u.error)),
        };
        // The decoded records hold the first table id: no second look at the bytes.
        let first = m.first_table_id().or(error.and_then(|e| e.table_id));
        let mut events = Vec::new();
        if first.is_some_and(|id| self.state.is_watched(&id)) {
            self.next = self.state.apply_cold(schema, &m, error, &mut events);
        }
        Tracked { decoded, events }
    }

    /// The schema the last entry built comes into force.
    #[cold]
    fn promote(&mut self) {
        if let Some(next) = self.next.take() {
            self.current = next;
        }
    }

    /// Applies one entry without keeping its decoded form: only entries of
    /// `system_schema` and `system.local` are decoded (the first table id
    /// says which), so this costs next to nothing on data. Returns what the
    /// entry changed; [`schema`](Self::schema) is then the new schema.
    pub fn observe(&mut self, decoder: &mut Decoder, bytes: &[u8], ctx: Context) -> Vec<SchemaEvent> {
        let mut events = Vec::new();
        let Some(first) = peek_table_id(bytes) else { return events };
        if !self.state.is_watched(&first) {
            return events;
        }
        if let Some(next) = self.next.take() {
            self.current = next;
        }
        let current = self.current.clone();
        let decoded = decoder.decode(bytes, &current, ctx);
        let (m, error) = match &decoded {
            Ok(m) => (*m, None),
            Err(u) => (u.partial, Some(&u.error)),
        };
        if let Some(next) = self.state.apply(&current, &m, error, &mut events) {
            self.current = next;
        }
        events
    }

    /// The tracker's state, to save beside a checkpoint: the rows of
    /// `system_schema` it has applied, the dropped tables it keeps and its
    /// version (JSON). [`restore`](Self::restore) gives the same tracker back.
    pub fn save(&self) -> Vec<u8> {
        let s = &self.state;
        let state = State {
            format: STATE_FORMAT,
            release: release_name(s.release).to_owned(),
            version: s.version,
            rows: s.rows.clone(),
            retired: s.retired.clone(),
            built: s.built.clone(),
        };
        serde_json::to_vec(&state).expect("a tracker state serializes")
    }

    /// A tracker from a state [`save`](Self::save) wrote.
    pub fn restore(bytes: &[u8]) -> Result<SchemaTracker, StateError> {
        let state: State = serde_json::from_slice(bytes)?;
        if state.format != STATE_FORMAT {
            return Err(StateError::Unknown { what: "format", found: state.format.to_string() });
        }
        let release = [Release::Cassandra3, Release::Cassandra4, Release::Cassandra5]
            .into_iter()
            .find(|r| release_name(*r) == state.release)
            .ok_or_else(|| StateError::Unknown { what: "release", found: state.release.clone() })?;
        let mut t = SchemaTracker::new(release);
        t.state.rows = state.rows;
        t.state.retired = state.retired;
        t.state.version = state.version;
        t.state.built = state.built;
        t.current = Arc::new(t.state.assemble());
        t.next = None;
        Ok(t)
    }
}

impl Inner {
    /// Whether a table id is one whose mutations the tracker applies.
    /// Cassandra's own tables have name-based (version 3) ids and other
    /// tables time-based or random ones, so that one byte turns nearly
    /// every data mutation away.
    #[inline]
    fn is_watched(&self, id: &Uuid) -> bool {
        if id.as_bytes()[6] >> 4 != 3 {
            return false;
        }
        let id = id.as_u128();
        id == self.local_id.as_u128() || self.schema_ids.iter().any(|(i, _)| i.as_u128() == id)
    }

    /// [`apply`](Self::apply), kept out of the decoding loop.
    #[cold]
    #[inline(never)]
    fn apply_cold(
        &mut self,
        before: &Schema,
        m: &Mutation<'_>,
        error: Option<&MutationError>,
        events: &mut Vec<SchemaEvent>,
    ) -> Option<Arc<Schema>> {
        self.apply(before, m, error, events)
    }

    /// Applies a decoded system mutation; a new schema when it changed.
    fn apply(
        &mut self,
        before: &Schema,
        m: &Mutation<'_>,
        error: Option<&MutationError>,
        events: &mut Vec<SchemaEvent>,
    ) -> Option<Arc<Schema>> {
        let at = m.context().location();
        if let Some(e) = error
            && e.table_id.is_some_and(|id| self.is_watched(&id))
        {
            events.push(SchemaEvent::NotApplied(SchemaApplyError::Undecodable(Box::new(e.clone()))));
        }
        let mut touched = BTreeSet::new();
        for u in m.updates() {
            let id = u.table_id();
            if id == self.local_id {
                truncations(before, &u, &at, events);
            } else if let Some(&(_, name)) = self.schema_ids.iter().find(|(i, _)| *i == id) {
                touched.insert(self.rows.apply(name, &u));
            }
        }
        if touched.is_empty() {
            return None;
        }
        self.generation += 1;
        for ks in &touched {
            self.rebuild(ks, &at, events);
        }
        let mut after = self.assemble();
        let changes: Vec<SchemaChange> = touched
            .iter()
            .map(|ks| diff(before, &after, ks, self.version + 1, &at))
            .filter(|c| !(c.created.is_empty() && c.altered.is_empty() && c.dropped.is_empty() && c.types.is_empty()))
            .collect();
        // Rows that change nothing the decoder uses (table options, the
        // rows Cassandra writes for its own keyspaces at startup) make no
        // new version.
        if changes.is_empty() {
            return None;
        }
        self.version += 1;
        after.set_version(self.version);
        events.extend(changes.into_iter().map(SchemaEvent::Changed));
        Some(Arc::new(after))
    }

    /// Writes a schema's keyspaces, types and tables as seed rows.
    fn seed(&mut self, schema: &Schema) {
        let text = |s: &str| s.as_bytes().to_vec();
        let ts = SEED_TIMESTAMP;
        for ks in schema.keyspaces() {
            let row = SeedRow { clustering: vec![], cells: vec![("durable_writes", vec![1])] };
            self.rows.seed("keyspaces", ks, row, ts);
        }
        for ty in schema.user_types() {
            let names = ty.fields.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            let types = ty.fields.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>();
            let row = SeedRow {
                clustering: vec![text(&ty.name)],
                cells: vec![("field_names", text_list(&names)), ("field_types", text_list(&types))],
            };
            self.rows.seed("types", &ty.keyspace, row, ts);
        }
        for t in schema.tables() {
            let row = SeedRow { clustering: vec![text(&t.name)], cells: vec![("id", t.id.as_bytes().to_vec())] };
            self.rows.seed("tables", &t.keyspace, row, ts);
            let positions = t
                .partition_key()
                .enumerate()
                .chain(t.clustering().enumerate())
                .map(|(i, c)| (c.name.as_str(), i as i32))
                .collect::<BTreeMap<_, _>>();
            for c in &t.columns {
                let (kind, order) = match c.kind {
                    ColumnKind::PartitionKey => ("partition_key", "none"),
                    ColumnKind::Clustering(Order::Asc) => ("clustering", "asc"),
                    ColumnKind::Clustering(Order::Desc) => ("clustering", "desc"),
                    ColumnKind::Static => ("static", "none"),
                    ColumnKind::Regular => ("regular", "none"),
                };
                let position = positions.get(c.name.as_str()).copied().unwrap_or(-1);
                let row = SeedRow {
                    clustering: vec![text(&t.name), text(&c.name)],
                    cells: vec![
                        ("clustering_order", text(order)),
                        ("column_name_bytes", text(&c.name)),
                        ("kind", text(kind)),
                        ("position", position.to_be_bytes().to_vec()),
                        ("type", text(&c.ty.to_string())),
                    ],
                };
                self.rows.seed("columns", &t.keyspace, row, ts);
            }
            for d in &t.dropped {
                let row = SeedRow {
                    clustering: vec![text(&t.name), text(&d.name)],
                    cells: vec![
                        ("dropped_time", (d.dropped_at.div_euclid(1000)).to_be_bytes().to_vec()),
                        ("kind", text(if d.is_static { "static" } else { "regular" })),
                        ("type", text(&d.ty.expand_user_types().to_string())),
                    ],
                };
                self.rows.seed("dropped_columns", &t.keyspace, row, ts);
            }
        }
    }

    /// Rebuilds every keyspace from the rows; the schema they make.
    fn rebuild_all(&mut self) -> Schema {
        let at = Location::default();
        let mut ignored = Vec::new();
        for ks in self.rows.keyspaces() {
            self.rebuild(&ks, &at, &mut ignored);
        }
        self.assemble()
    }

    /// Reads keyspace `ks` back from the rows, as `fetchKeyspace` does.
    /// Tables that no longer exist, or exist under another id, are retired.
    fn rebuild(&mut self, ks: &str, at: &Location, events: &mut Vec<SchemaEvent>) {
        if LOCAL_KEYSPACES.contains(&ks) {
            return;
        }
        let previous = self.built.remove(ks).unwrap_or_default();
        let mut built = read_keyspace(&self.rows, ks, at, events);
        // A table that could not be rebuilt keeps its previous definition.
        let failed: BTreeSet<String> = events
            .iter()
            .filter_map(|e| match e {
                SchemaEvent::NotApplied(
                    SchemaApplyError::BadRow { keyspace, table, .. }
                    | SchemaApplyError::BadType { keyspace, table, .. }
                    | SchemaApplyError::Incomplete { keyspace, table, .. },
                ) if keyspace == ks => Some(table.clone()),
                _ => None,
            })
            .collect();
        for old in &previous.tables {
            let present = built.tables.iter().any(|t| t.id == old.id);
            if !present && failed.contains(&old.name) && !built.tables.iter().any(|t| t.name == old.name) {
                built.tables.push(old.clone());
            } else if !present && !self.retired.iter().any(|r| r.id == old.id) {
                self.retired.push(old.clone());
            }
        }
        for old in &previous.types {
            if failed.contains(&old.name) && !built.types.iter().any(|t| t.name == old.name) {
                built.types.push(old.clone());
            }
        }
        let live: BTreeSet<Uuid> = built.tables.iter().map(|t| t.id).collect();
        self.retired.retain(|r| !live.contains(&r.id));
        if built.tables.is_empty() && built.types.is_empty() && self.rows.live_rows("keyspaces", ks).next().is_none() {
            return;
        }
        self.built.insert(ks.to_owned(), built);
    }

    fn assemble(&self) -> Schema {
        let mut s = self.local.clone();
        for (ks, built) in &self.built {
            s.add_keyspace(ks.clone());
            for ty in &built.types {
                s.add_type((**ty).clone());
            }
            for t in &built.tables {
                s.add_table(t.clone());
            }
        }
        for t in &self.retired {
            s.add_retired_table(t.clone());
        }
        s.set_version(self.version);
        s
    }
}

/// `TRUNCATE` records among a `system.local` update's cells.
fn truncations(
    schema: &Schema,
    u: &crate::mutation::PartitionUpdate<'_>,
    at: &Location,
    events: &mut Vec<SchemaEvent>,
) {
    for row in u.rows().chain(u.static_row()) {
        for col in row.columns().filter(|c| c.name() == "truncated_at") {
            for cell in col.cells().filter(|c| !c.is_tombstone()) {
                let (Some(path), v) = (cell.path_bytes(), cell.value_bytes()) else { continue };
                let (Ok(id), Some(seg), Some(pos)) = (
                    <[u8; 16]>::try_from(path),
                    v.get(0..8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
                    v.get(8..12).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes"))),
                ) else {
                    continue;
                };
                let table_id = Uuid::from_bytes(id);
                let table = schema.table_by_id(&table_id);
                events.push(SchemaEvent::Truncated(Truncation {
                    table_id,
                    keyspace: table.map(|t| t.keyspace.clone()),
                    table: table.map(|t| t.name.clone()),
                    segment_id: seg,
                    position: pos,
                    truncated_at: v.get(12..20).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
                    at: at.clone(),
                }));
            }
        }
    }
}

/// The table id of a mutation's first partition update, read from its
/// bytes (every update of one mutation is of one keyspace).
pub(crate) fn peek_table_id(bytes: &[u8]) -> Option<Uuid> {
    let (_, n) = crate::mutation::vint::read_unsigned_vint(bytes)?;
    let id: [u8; 16] = bytes.get(n..n + 16)?.try_into().ok()?;
    Some(Uuid::from_bytes(id))
}

/// A frozen `list<text>` (or `set<text>`) value.
fn text_list(items: &[String]) -> Vec<u8> {
    let mut out = (items.len() as i32).to_be_bytes().to_vec();
    for i in items {
        out.extend((i.len() as i32).to_be_bytes());
        out.extend(i.as_bytes());
    }
    out
}

/// Reads a frozen `list<text>` value.
fn read_text_list(bytes: &[u8]) -> Option<Vec<String>> {
    let ty = CqlType::List { elem: Box::new(CqlType::Text), frozen: true };
    let crate::value::Value::List(items) = crate::value::Value::decode(&ty, bytes).ok()? else { return None };
    items
        .iter()
        .map(|v| match v {
            Ok(Some(crate::value::Value::Text(s))) => Some(s.to_owned()),
            _ => None,
        })
        .collect()
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// One column as a `system_schema.columns` row describes it.
struct ColumnRow {
    name: String,
    kind: ColumnKind,
    position: i32,
    type_text: String,
}

/// Reads keyspace `ks` from the rows: its user types (dependencies first),
/// its tables and views with their columns and dropped columns.
fn read_keyspace(rows: &SchemaRows, ks: &str, at: &Location, events: &mut Vec<SchemaEvent>) -> Built {
    let mut built = Built::default();
    if rows.live_rows("keyspaces", ks).next().is_none() {
        return built;
    }
    let bad_row = |schema_table: &'static str, table: &str, clustering: &[Vec<u8>], what: &'static str| {
        SchemaEvent::NotApplied(SchemaApplyError::BadRow {
            at: at.clone(),
            keyspace: ks.to_owned(),
            table: table.to_owned(),
            schema_table,
            row: clustering.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(", "),
            what,
        })
    };
    // User types, dependencies first: a type is built once the types its
    // fields name are.
    let mut types = Schema::new();
    let mut pending = Vec::new();
    for (c, row) in rows.live_rows("types", ks) {
        let name = c.first().and_then(|n| text(n)).unwrap_or_default().to_owned();
        match (row.value("field_names").and_then(read_text_list), row.value("field_types").and_then(read_text_list)) {
            (Some(n), Some(t)) if n.len() == t.len() => pending.push((name, n, t)),
            _ => events.push(bad_row("types", &name, c, "field_names and field_types must be lists of equal length")),
        }
    }
    loop {
        let before = pending.len();
        let mut last_error = Vec::new();
        pending.retain(|(name, fields, field_types)| {
            let mut resolved = Vec::new();
            for (f, t) in fields.iter().zip(field_types) {
                match parse_type(t, ks, &types, false) {
                    Ok(ty) => resolved.push((f.clone(), ty)),
                    Err(reason) => {
                        last_error.push((name.clone(), f.clone(), t.clone(), reason));
                        return true;
                    }
                }
            }
            types.add_type(UserType { keyspace: ks.to_owned(), name: name.clone(), fields: resolved });
            false
        });
        if pending.is_empty() {
            break;
        }
        if pending.len() == before {
            for (table, column, type_text, reason) in last_error {
                events.push(SchemaEvent::NotApplied(SchemaApplyError::BadType {
                    at: at.clone(),
                    keyspace: ks.to_owned(),
                    table,
                    column,
                    type_text,
                    reason,
                }));
            }
            break;
        }
    }
    built.types = types.user_types().cloned().collect();
    // Columns and dropped columns by table (or view) name.
    let mut columns: BTreeMap<String, Vec<ColumnRow>> = BTreeMap::new();
    for (c, row) in rows.live_rows("columns", ks) {
        let (Some(table), Some(name)) = (c.first().and_then(|t| text(t)), c.get(1).and_then(|n| text(n))) else {
            continue;
        };
        let order = row.value("clustering_order").and_then(text).unwrap_or("none");
        let kind = match (row.value("kind").and_then(text), order) {
            (Some("partition_key"), _) => ColumnKind::PartitionKey,
            (Some("clustering"), "desc") => ColumnKind::Clustering(Order::Desc),
            (Some("clustering"), _) => ColumnKind::Clustering(Order::Asc),
            (Some("static"), _) => ColumnKind::Static,
            (Some("regular"), _) => ColumnKind::Regular,
            _ => {
                events.push(bad_row("columns", table, c, "kind is not partition_key, clustering, static or regular"));
                continue;
            }
        };
        let position = row.value("position").and_then(|p| <[u8; 4]>::try_from(p).ok()).map_or(-1, i32::from_be_bytes);
        let Some(type_text) = row.value("type").and_then(text) else {
            events.push(bad_row("columns", table, c, "no type"));
            continue;
        };
        columns.entry(table.to_owned()).or_default().push(ColumnRow {
            name: name.to_owned(),
            kind,
            position,
            type_text: type_text.to_owned(),
        });
    }
    let mut dropped: BTreeMap<String, Vec<DroppedColumn>> = BTreeMap::new();
    let no_types = Schema::new();
    for (c, row) in rows.live_rows("dropped_columns", ks) {
        let (Some(table), Some(name)) = (c.first().and_then(|t| text(t)), c.get(1).and_then(|n| text(n))) else {
            continue;
        };
        let time = row.value("dropped_time").and_then(|t| <[u8; 8]>::try_from(t).ok()).map(i64::from_be_bytes);
        let (Some(ms), Some(type_text)) = (time, row.value("type").and_then(text)) else {
            events.push(bad_row("dropped_columns", table, c, "no dropped_time or no type"));
            continue;
        };
        // UDTs are stored expanded to tuples: no user type is looked up.
        match parse_type(type_text, ks, &no_types, true) {
            Ok(ty) => dropped.entry(table.to_owned()).or_default().push(DroppedColumn {
                name: name.to_owned(),
                ty,
                dropped_at: ms.saturating_mul(1000),
                is_static: row.value("kind").and_then(text) == Some("static"),
            }),
            Err(reason) => events.push(SchemaEvent::NotApplied(SchemaApplyError::BadType {
                at: at.clone(),
                keyspace: ks.to_owned(),
                table: table.to_owned(),
                column: name.to_owned(),
                type_text: type_text.to_owned(),
                reason,
            })),
        }
    }
    // Tables, then views: both are tables to the decoder.
    for (schema_table, which) in [("tables", "tables"), ("views", "views")] {
        for (c, row) in rows.live_rows(schema_table, ks) {
            let Some(name) = c.first().and_then(|n| text(n)) else { continue };
            let Some(id) = row.value("id").and_then(|i| <[u8; 16]>::try_from(i).ok()) else {
                events.push(bad_row(which, name, c, "no 16-byte id"));
                continue;
            };
            let cols = columns.remove(name).unwrap_or_default();
            let drops = dropped.remove(name).unwrap_or_default();
            if let Some(t) = build_table(ks, name, Uuid::from_bytes(id), cols, drops, &types, at, events) {
                built.tables.push(t);
            }
        }
    }
    built
}

#[allow(clippy::too_many_arguments)]
fn build_table(
    ks: &str,
    name: &str,
    id: Uuid,
    mut cols: Vec<ColumnRow>,
    dropped: Vec<DroppedColumn>,
    types: &Schema,
    at: &Location,
    events: &mut Vec<SchemaEvent>,
) -> Option<Table> {
    cols.sort_by(|a, b| {
        let rank = |k: &ColumnKind| match k {
            ColumnKind::PartitionKey => 0,
            ColumnKind::Clustering(_) => 1,
            ColumnKind::Static => 2,
            ColumnKind::Regular => 3,
        };
        (rank(&a.kind), a.position, &a.name).cmp(&(rank(&b.kind), b.position, &b.name))
    });
    let mut b = Table::builder(ks, name).id(id);
    for c in cols {
        let ty = match parse_type(&c.type_text, ks, types, true) {
            Ok(t) => t,
            Err(reason) => {
                events.push(SchemaEvent::NotApplied(SchemaApplyError::BadType {
                    at: at.clone(),
                    keyspace: ks.to_owned(),
                    table: name.to_owned(),
                    column: c.name,
                    type_text: c.type_text,
                    reason,
                }));
                return None;
            }
        };
        b = match c.kind {
            ColumnKind::PartitionKey => b.partition_key(c.name, ty),
            ColumnKind::Clustering(o) => b.clustering(c.name, ty, o),
            ColumnKind::Static => b.static_column(c.name, ty),
            ColumnKind::Regular => b.regular(c.name, ty),
        };
    }
    for d in dropped {
        b = b.dropped(d);
    }
    match b.build() {
        Ok(t) => Some(t),
        Err(reason) => {
            events.push(SchemaEvent::NotApplied(SchemaApplyError::Incomplete {
                at: at.clone(),
                keyspace: ks.to_owned(),
                table: name.to_owned(),
                reason,
            }));
            None
        }
    }
}

/// What changed in keyspace `ks` from `before` to `after`.
fn diff(before: &Schema, after: &Schema, ks: &str, version: u64, at: &Location) -> SchemaChange {
    let mut change = SchemaChange {
        version,
        keyspace: ks.to_owned(),
        created: Vec::new(),
        altered: Vec::new(),
        dropped: Vec::new(),
        types: Vec::new(),
        at: at.clone(),
    };
    let live = |s: &Schema, id: &Uuid| s.table_by_id(id).filter(|_| !s.is_retired(id)).cloned();
    for t in after.tables().filter(|t| t.keyspace == ks) {
        match live(before, &t.id) {
            None => change.created.push((t.name.clone(), t.id)),
            Some(old) if old != *t => change.altered.push((t.name.clone(), t.id)),
            Some(_) => {}
        }
    }
    for t in before.tables().filter(|t| t.keyspace == ks) {
        if live(after, &t.id).is_none() {
            change.dropped.push((t.name.clone(), t.id));
        }
    }
    let types = |s: &Schema| -> BTreeMap<String, UserType> {
        s.user_types().filter(|t| t.keyspace == ks).map(|t| (t.name.clone(), (**t).clone())).collect()
    };
    let (old, new) = (types(before), types(after));
    for name in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        if old.get(name) != new.get(name) {
            change.types.push(name.clone());
        }
    }
    change
}

impl SchemaApplyError {
    /// The entry the failure was met at.
    pub fn location(&self) -> &Location {
        match self {
            SchemaApplyError::Undecodable(e) => &e.loc,
            SchemaApplyError::BadRow { at, .. }
            | SchemaApplyError::BadType { at, .. }
            | SchemaApplyError::Incomplete { at, .. } => at,
        }
    }
}

impl SchemaEvent {
    /// The entry the event comes from.
    pub fn location(&self) -> &Location {
        match self {
            SchemaEvent::Changed(c) => &c.at,
            SchemaEvent::Truncated(t) => &t.at,
            SchemaEvent::NotApplied(e) => e.location(),
        }
    }
}

/// Tables as `[{"table", "table_id"}]`.
struct TableList<'a>(&'a [(String, Uuid)]);

impl Serialize for TableList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.collect_seq(self.0.iter().map(|(name, id)| {
            struct One<'b>(&'b str, &'b Uuid);
            impl Serialize for One<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut m = s.serialize_map(Some(2))?;
                    m.serialize_entry("table", self.0)?;
                    m.serialize_entry("table_id", &self.1.hyphenated().to_string())?;
                    m.end()
                }
            }
            One(name, id)
        }))
    }
}

/// A line of the change format: `{"segment_id", "position", ...}` with
/// `"schema_change"`, `"truncate"` or, for what could not be applied,
/// `"error"` (see the README).
impl Serialize for SchemaEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let at = self.location();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("segment_id", &at.segment_id)?;
        m.serialize_entry("position", &at.logical)?;
        match self {
            SchemaEvent::Changed(c) => {
                struct Change<'b>(&'b SchemaChange);
                impl Serialize for Change<'_> {
                    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let c = self.0;
                        let mut m = s.serialize_map(Some(6))?;
                        m.serialize_entry("version", &c.version)?;
                        m.serialize_entry("keyspace", &c.keyspace)?;
                        m.serialize_entry("created", &TableList(&c.created))?;
                        m.serialize_entry("altered", &TableList(&c.altered))?;
                        m.serialize_entry("dropped", &TableList(&c.dropped))?;
                        m.serialize_entry("types", &c.types)?;
                        m.end()
                    }
                }
                m.serialize_entry("schema_change", &Change(c))?;
            }
            SchemaEvent::Truncated(t) => {
                struct Trunc<'b>(&'b Truncation);
                impl Serialize for Trunc<'_> {
                    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let t = self.0;
                        let mut m = s.serialize_map(Some(5))?;
                        m.serialize_entry("keyspace", &t.keyspace)?;
                        m.serialize_entry("table", &t.table)?;
                        m.serialize_entry("table_id", &t.table_id.hyphenated().to_string())?;
                        #[derive(Serialize)]
                        struct Pos {
                            segment_id: i64,
                            position: u32,
                        }
                        m.serialize_entry("position", &Pos { segment_id: t.segment_id, position: t.position })?;
                        m.serialize_entry("truncated_at", &t.truncated_at)?;
                        m.end()
                    }
                }
                m.serialize_entry("truncate", &Trunc(t))?;
            }
            SchemaEvent::NotApplied(e) => m.serialize_entry("error", &e.to_string())?,
        }
        m.end()
    }
}
