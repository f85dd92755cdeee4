//! A test-side materializer: applies decoded mutations with Cassandra's
//! reconciliation rules and renders the resulting tables as `SELECT *`
//! would return them, in the change format's VALUE rendering.
//!
//! Rules (what the conformance tests hold the decoder to):
//! - per cell the newest timestamp wins; on a tie a tombstone wins, then the
//!   greater value (bytes compared unsigned);
//! - partition, row, range and complex deletions cover everything written
//!   at or before their timestamp;
//! - a shadowable row deletion is ignored where the row's liveness is newer;
//! - an expiring cell or liveness is dead once its expiry is at or before
//!   the read time;
//! - collection elements are cells of their own, keyed by path and ordered
//!   by the path's type; counters merge shard by shard (highest clock wins
//!   per counter id) and read as the sum of the shards.

#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use cassandra_commitlog::mutation::{Cell, Mutation, PartitionUpdate};
use cassandra_commitlog::schema::{ColumnKind, CqlType, Order, Schema, Table};
use cassandra_commitlog::value::Value;
use serde_json::{Map, Value as Json};

/// Compares two values of a type as Cassandra orders them (for clustering,
/// set elements, map keys and list element ids).
pub fn compare(ty: &CqlType, a: &[u8], b: &[u8]) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return a.len().cmp(&b.len());
    }
    let signed = |x: &[u8]| {
        let mut v = if x[0] & 0x80 != 0 { -1i128 } else { 0 };
        for &byte in x {
            v = (v << 8) | byte as i128;
        }
        v
    };
    match ty {
        CqlType::Int | CqlType::BigInt | CqlType::SmallInt | CqlType::TinyInt | CqlType::Timestamp | CqlType::Time => {
            signed(a).cmp(&signed(b))
        }
        CqlType::Varint if a.len() <= 16 && b.len() <= 16 => signed(a).cmp(&signed(b)),
        CqlType::Float => {
            f32::from_be_bytes(a.try_into().unwrap()).total_cmp(&f32::from_be_bytes(b.try_into().unwrap()))
        }
        CqlType::Double => {
            f64::from_be_bytes(a.try_into().unwrap()).total_cmp(&f64::from_be_bytes(b.try_into().unwrap()))
        }
        CqlType::TimeUuid => {
            let ts = |x: &[u8]| {
                let msb = u64::from_be_bytes(x[..8].try_into().unwrap());
                ((msb & 0x0fff) << 48) | (((msb >> 16) & 0xffff) << 32) | (msb >> 32)
            };
            ts(a).cmp(&ts(b)).then_with(|| a[8..].iter().map(|&x| x as i8).cmp(b[8..].iter().map(|&x| x as i8)))
        }
        CqlType::List { elem, .. } | CqlType::Set { elem, .. } => {
            let (ea, eb) = (elements(a), elements(b));
            for (x, y) in ea.iter().zip(&eb) {
                let c = compare(elem, x, y);
                if c != Ordering::Equal {
                    return c;
                }
            }
            ea.len().cmp(&eb.len())
        }
        CqlType::Tuple(types) => components(types.iter(), a, b),
        CqlType::Udt { def, .. } => components(def.fields.iter().map(|(_, t)| t), a, b),
        _ => a.cmp(b),
    }
}

fn elements(x: &[u8]) -> Vec<&[u8]> {
    let n = i32::from_be_bytes(x[..4].try_into().unwrap()) as usize;
    let mut at = 4;
    (0..n)
        .map(|_| {
            let len = i32::from_be_bytes(x[at..at + 4].try_into().unwrap());
            let v = if len < 0 { &x[0..0] } else { &x[at + 4..at + 4 + len as usize] };
            at += 4 + len.max(0) as usize;
            v
        })
        .collect()
}

fn components<'t>(types: impl Iterator<Item = &'t CqlType>, a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    for ty in types {
        if i >= a.len() || j >= b.len() {
            break;
        }
        let la = i32::from_be_bytes(a[i..i + 4].try_into().unwrap());
        let lb = i32::from_be_bytes(b[j..j + 4].try_into().unwrap());
        let va = if la < 0 { &a[0..0] } else { &a[i + 4..i + 4 + la as usize] };
        let vb = if lb < 0 { &b[0..0] } else { &b[j + 4..j + 4 + lb as usize] };
        let c = match (la < 0, lb < 0) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => compare(ty, va, vb),
        };
        if c != Ordering::Equal {
            return c;
        }
        i += 4 + la.max(0) as usize;
        j += 4 + lb.max(0) as usize;
    }
    (a.len() - i.min(a.len())).cmp(&(b.len() - j.min(b.len())))
}

/// A cell's state after reconciliation.
#[derive(Clone, Debug)]
struct CellState {
    timestamp: i64,
    tombstone: bool,
    value: Vec<u8>,
    expires_at: Option<i64>,
    /// Counter shards by counter id: (clock, count).
    shards: Option<BTreeMap<[u8; 16], (i64, i64)>>,
}

impl CellState {
    fn of(cell: &Cell<'_>) -> CellState {
        let shards = cell.counter().map(|c| {
            c.expect("counter context").shards().map(|s| (*s.counter_id.as_bytes(), (s.clock, s.count))).collect()
        });
        CellState {
            timestamp: cell.timestamp(),
            tombstone: cell.is_tombstone(),
            value: cell.value_bytes().to_vec(),
            expires_at: cell.expiry().map(|(_, at)| at),
            shards,
        }
    }

    /// Newest timestamp wins; on a tie a tombstone, then the greater value.
    fn merge(&mut self, new: CellState) {
        if let (Some(old), Some(newer)) = (&mut self.shards, &new.shards)
            && !self.tombstone
            && !new.tombstone
        {
            for (id, (clock, count)) in newer {
                let e = old.entry(*id).or_insert((*clock, *count));
                if *clock > e.0 {
                    *e = (*clock, *count);
                }
            }
            self.timestamp = self.timestamp.max(new.timestamp);
            return;
        }
        let wins = match new.timestamp.cmp(&self.timestamp) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match (new.tombstone, self.tombstone) {
                (true, false) => true,
                (false, true) => false,
                _ => new.value > self.value,
            },
        };
        if wins {
            *self = new;
        }
    }

    fn live(&self, deleted_at: i64, now: i64) -> bool {
        !self.tombstone && self.timestamp > deleted_at && self.expires_at.is_none_or(|e| e > now)
    }
}

#[derive(Debug)]
struct Complex {
    deletion: i64,
    /// Path bytes -> cell.
    cells: HashMap<Vec<u8>, CellState>,
}

impl Default for Complex {
    fn default() -> Self {
        Complex { deletion: i64::MIN, cells: HashMap::new() }
    }
}

#[derive(Debug)]
struct RowState {
    clustering: Vec<Option<Vec<u8>>>,
    liveness: Option<(i64, Option<i64>)>,
    deletion: i64,
    shadowable: i64,
    cells: HashMap<String, CellState>,
    complex: HashMap<String, Complex>,
}

// No deletion is older than every timestamp (timestamps can be negative).
impl Default for RowState {
    fn default() -> Self {
        RowState {
            clustering: Vec::new(),
            liveness: None,
            deletion: i64::MIN,
            shadowable: i64::MIN,
            cells: HashMap::new(),
            complex: HashMap::new(),
        }
    }
}

/// A clustering prefix: its values, `None` for null.
type Prefix = Vec<Option<Vec<u8>>>;

/// A range tombstone: (start, start inclusive, end, end inclusive, timestamp).
type Rt = (Prefix, bool, Prefix, bool, i64);

#[derive(Debug)]
struct Partition {
    key: Map<String, Json>,
    deletion: i64,
    statics: RowState,
    rows: Vec<RowState>,
    rts: Vec<Rt>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            key: Map::new(),
            deletion: i64::MIN,
            statics: RowState::default(),
            rows: Vec::new(),
            rts: Vec::new(),
        }
    }
}

/// Tables rebuilt from mutations.
#[derive(Default)]
pub struct Materializer {
    /// (keyspace, table) -> partition key bytes -> partition
    tables: HashMap<(String, String), HashMap<Vec<u8>, Partition>>,
    /// Table id -> (keyspace, table), for truncations.
    ids: HashMap<uuid::Uuid, (String, String)>,
    /// Cells of dropped columns seen (and ignored).
    pub dropped_cells: u64,
}

fn cmp_clustering(table: &Table, row: &[Option<Vec<u8>>], prefix: &[Option<Vec<u8>>]) -> Ordering {
    for (i, (r, p)) in row.iter().zip(prefix).enumerate() {
        let col = table.clustering_column(i).unwrap();
        let c = match (r, p) {
            (Some(r), Some(p)) => compare(&col.ty, r, p),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        };
        let c = if col.kind == ColumnKind::Clustering(Order::Desc) { c.reverse() } else { c };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

impl Materializer {
    /// Forgets every row of the table of this id, as a sink that honours
    /// a `TRUNCATE` does.
    pub fn truncate(&mut self, id: uuid::Uuid) {
        if let Some(key) = self.ids.get(&id) {
            self.tables.remove(key);
        }
    }

    /// Applies every update of a mutation.
    pub fn apply(&mut self, m: &Mutation<'_>) {
        for u in m.updates() {
            self.apply_update(&u);
        }
    }

    /// Applies one partition update.
    pub fn apply_update(&mut self, u: &PartitionUpdate<'_>) {
        {
            let t = u.table();
            self.ids.insert(u.table_id(), (t.keyspace.clone(), t.name.clone()));
            let parts = self.tables.entry((t.keyspace.clone(), t.name.clone())).or_default();
            let p = parts.entry(u.partition_key_bytes().to_vec()).or_insert_with(|| {
                let mut key = Map::new();
                for kv in u.partition_key() {
                    let (col, v) = kv.expect("partition key");
                    key.insert(col.name.clone(), render(&v));
                }
                Partition { key, ..Partition::default() }
            });
            if let Some(d) = u.partition_deletion() {
                p.deletion = p.deletion.max(d.timestamp);
            }
            for rt in u.range_tombstones() {
                let owned = |b: cassandra_commitlog::mutation::Bound<'_>| -> Vec<Option<Vec<u8>>> {
                    b.clustering_bytes().map(|v| v.map(<[u8]>::to_vec)).collect()
                };
                let (s, e) = (rt.start(), rt.end());
                p.rts.push((owned(s), s.inclusive(), owned(e), e.inclusive(), rt.deletion().unwrap().timestamp));
            }
            for row in u.all_rows() {
                let clustering: Vec<Option<Vec<u8>>> = row.clustering_bytes().map(|v| v.map(<[u8]>::to_vec)).collect();
                let state = if row.is_static() {
                    &mut p.statics
                } else {
                    match p.rows.iter().position(|r| r.clustering == clustering) {
                        Some(i) => &mut p.rows[i],
                        None => {
                            p.rows.push(RowState { clustering, ..RowState::default() });
                            p.rows.last_mut().unwrap()
                        }
                    }
                };
                if let Some(l) = row.liveness() {
                    let new = (l.timestamp, l.expiry.map(|(_, at)| at));
                    if state.liveness.is_none_or(|old| new.0 >= old.0) {
                        state.liveness = Some(new);
                    }
                }
                if let Some(d) = row.deletion() {
                    if d.shadowable {
                        state.shadowable = state.shadowable.max(d.time.timestamp);
                    } else {
                        state.deletion = state.deletion.max(d.time.timestamp);
                    }
                }
                for col in row.columns() {
                    let name = col.name().to_owned();
                    if col.is_complex() {
                        let c = state.complex.entry(name).or_default();
                        if let Some(d) = col.complex_deletion() {
                            c.deletion = c.deletion.max(d.timestamp);
                        }
                        for cell in col.cells() {
                            if cell.is_dropped() {
                                self.dropped_cells += 1;
                                continue;
                            }
                            let path = cell.path_bytes().unwrap().to_vec();
                            let new = CellState::of(&cell);
                            match c.cells.get_mut(&path) {
                                Some(old) => old.merge(new),
                                None => {
                                    c.cells.insert(path, new);
                                }
                            }
                        }
                    } else {
                        for cell in col.cells() {
                            if cell.is_dropped() {
                                self.dropped_cells += 1;
                                continue;
                            }
                            let new = CellState::of(&cell);
                            match state.cells.get_mut(&name) {
                                Some(old) => old.merge(new),
                                None => {
                                    state.cells.insert(name.clone(), new);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The rows of a table as `SELECT *` returns them, at read time `now`
    /// (seconds since the epoch).
    pub fn rows(&self, schema: &Schema, keyspace: &str, table: &str, now: i64) -> Vec<Json> {
        let t = schema.table(keyspace, table).expect("table in schema");
        let mut out = Vec::new();
        let Some(parts) = self.tables.get(&(keyspace.to_owned(), table.to_owned())) else { return out };
        for p in parts.values() {
            let statics = columns_of(t, &p.statics, p.deletion, now, true);
            let mut live_rows = 0;
            for r in &p.rows {
                let covered = p
                    .rts
                    .iter()
                    .filter(|(s, si, e, ei, _)| {
                        let after_start = s.is_empty()
                            || matches!(cmp_clustering(t, &r.clustering, s), Ordering::Greater)
                            || (*si && cmp_clustering(t, &r.clustering, s) == Ordering::Equal);
                        let before_end = e.is_empty()
                            || matches!(cmp_clustering(t, &r.clustering, e), Ordering::Less)
                            || (*ei && cmp_clustering(t, &r.clustering, e) == Ordering::Equal);
                        after_start && before_end
                    })
                    .map(|rt| rt.4)
                    .max()
                    .unwrap_or(i64::MIN);
                let mut deleted = p.deletion.max(covered).max(r.deletion);
                // A shadowable deletion is ignored where the liveness is newer.
                if r.liveness.is_none_or(|(ts, _)| r.shadowable >= ts) {
                    deleted = deleted.max(r.shadowable);
                }
                let marker_live = r.liveness.is_some_and(|(ts, exp)| ts > deleted && exp.is_none_or(|e| e > now));
                let cells = columns_of(t, r, deleted, now, false);
                if !marker_live && cells.is_empty() {
                    continue;
                }
                live_rows += 1;
                let mut row = p.key.clone();
                for (i, col) in t.clustering().enumerate() {
                    let v =
                        r.clustering[i].as_deref().map_or(Json::Null, |b| render(&Value::decode(&col.ty, b).unwrap()));
                    row.insert(col.name.clone(), v);
                }
                fill(t, &mut row, &statics, &cells);
                out.push(Json::Object(row));
            }
            if live_rows == 0 && !statics.is_empty() {
                let mut row = p.key.clone();
                for col in t.clustering() {
                    row.insert(col.name.clone(), Json::Null);
                }
                fill(t, &mut row, &statics, &Map::new());
                out.push(Json::Object(row));
            }
        }
        out
    }
}

fn fill(t: &Table, row: &mut Map<String, Json>, statics: &Map<String, Json>, cells: &Map<String, Json>) {
    for col in &t.columns {
        match col.kind {
            ColumnKind::Static => row.insert(col.name.clone(), statics.get(&col.name).cloned().unwrap_or(Json::Null)),
            ColumnKind::Regular => row.insert(col.name.clone(), cells.get(&col.name).cloned().unwrap_or(Json::Null)),
            _ => None,
        };
    }
}

/// A value in the change format's rendering.
pub fn render(v: &Value<'_>) -> Json {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

/// The live columns of a row (or the static row) after deletions.
fn columns_of(t: &Table, r: &RowState, deleted: i64, now: i64, statics: bool) -> Map<String, Json> {
    let mut out = Map::new();
    for col in &t.columns {
        let wanted = if statics { ColumnKind::Static } else { ColumnKind::Regular };
        if col.kind != wanted {
            continue;
        }
        if let Some(c) = r.cells.get(&col.name) {
            if !c.live(deleted, now) {
                continue;
            }
            let v = match &c.shards {
                Some(shards) => Json::from(shards.values().fold(0i64, |s, (_, n)| s.wrapping_add(*n))),
                None => render(&Value::decode(&col.ty, &c.value).unwrap()),
            };
            out.insert(col.name.clone(), v);
        } else if let Some(c) = r.complex.get(&col.name) {
            let floor = deleted.max(c.deletion);
            let mut live: Vec<(&Vec<u8>, &CellState)> = c.cells.iter().filter(|(_, s)| s.live(floor, now)).collect();
            if live.is_empty() {
                continue;
            }
            let v = match &col.ty {
                CqlType::List { elem, .. } => {
                    live.sort_by(|a, b| compare(&CqlType::TimeUuid, a.0, b.0));
                    Json::Array(live.iter().map(|(_, s)| render(&Value::decode(elem, &s.value).unwrap())).collect())
                }
                CqlType::Set { elem, .. } => {
                    live.sort_by(|a, b| compare(elem, a.0, b.0));
                    Json::Array(live.iter().map(|(p, _)| render(&Value::decode(elem, p).unwrap())).collect())
                }
                CqlType::Map { key, value, .. } => {
                    live.sort_by(|a, b| compare(key, a.0, b.0));
                    let mut m = Map::new();
                    for (p, s) in live {
                        let k = Value::decode(key, p).unwrap().key_string().unwrap();
                        m.insert(k, render(&Value::decode(value, &s.value).unwrap()));
                    }
                    Json::Object(m)
                }
                CqlType::Udt { def, .. } => {
                    let mut m = Map::new();
                    for (i, (name, ty)) in def.fields.iter().enumerate() {
                        let path = (i as i16).to_be_bytes().to_vec();
                        let v = live.iter().find(|(p, _)| **p == path);
                        m.insert(
                            name.clone(),
                            v.map_or(Json::Null, |(_, s)| render(&Value::decode(ty, &s.value).unwrap())),
                        );
                    }
                    Json::Object(m)
                }
                other => panic!("complex column of type {other}"),
            };
            out.insert(col.name.clone(), v);
        }
    }
    out
}

/// The `final_state.jsonl` of a crash or replica capture (values as the
/// Python driver gave them: `{"set": [...]}`, `{"map": [[k, v]...]}`) in
/// this materializer's rendering (sets as arrays, maps as objects keyed by
/// text), by table: each row's JSON.
pub fn driver_final_state(capture: &std::path::Path) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(capture.join("final_state.jsonl")).unwrap().lines() {
        let v: Json = serde_json::from_str(line).unwrap();
        let mut row = Map::new();
        for (col, value) in v["row"].as_object().unwrap() {
            let value = match value {
                Json::Object(o) if o.contains_key("set") => o["set"].clone(),
                Json::Object(o) if o.contains_key("map") => Json::Object(
                    o["map"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].clone()))
                        .collect(),
                ),
                other => other.clone(),
            };
            row.insert(col.clone(), value);
        }
        out.entry(v["table"].as_str().unwrap().to_owned()).or_default().insert(Json::Object(row).to_string());
    }
    out
}

/// The capture's read time (`read_time.json`), for TTL expiry.
pub fn read_time(capture: &std::path::Path) -> i64 {
    let v: Json = serde_json::from_str(&std::fs::read_to_string(capture.join("read_time.json")).unwrap()).unwrap();
    v["read_time_s"].as_i64().unwrap()
}

impl Materializer {
    /// The rows of `tables` of `keyspace`, each as its JSON, by table.
    pub fn row_sets(
        &self,
        schema: &Schema,
        keyspace: &str,
        tables: &[&str],
        now: i64,
    ) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        tables
            .iter()
            .map(|t| {
                ((*t).to_owned(), self.rows(schema, keyspace, t, now).into_iter().map(|r| r.to_string()).collect())
            })
            .collect()
    }
}
