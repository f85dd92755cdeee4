//! The rows of `system_schema`, kept as Cassandra keeps them: every write
//! and deletion the log carries, reconciled by timestamp (`Cells.reconcile`,
//! `DeletionTime.deletes`, `LivenessInfo.supersedes`), so that the schema
//! rebuilt from them is the one Cassandra reads back after applying the
//! same mutations (`SchemaKeyspace.fetchKeyspace`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mutation::PartitionUpdate;

/// A clustering: one byte string per clustering column.
pub(crate) type Clustering = Vec<Vec<u8>>;

/// A cell as stored. Only the winner of reconciliation is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredCell {
    pub ts: i64,
    /// Local deletion time of a tombstone or expiring cell.
    pub ldt: Option<i64>,
    pub tombstone: bool,
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

impl StoredCell {
    /// `Cells.reconcile` for regular cells: the newer timestamp wins; at
    /// equal timestamps a tombstone or expiring cell beats a live one, a
    /// tombstone beats an expiring one, then the later local deletion
    /// time, then the greater value.
    fn supersedes(&self, other: &StoredCell) -> bool {
        if self.ts != other.ts {
            return self.ts > other.ts;
        }
        let rank = |c: &StoredCell| match (c.tombstone, c.ldt.is_some()) {
            (true, _) => 2,
            (false, true) => 1,
            (false, false) => 0,
        };
        match rank(self).cmp(&rank(other)) {
            Ordering::Equal => {}
            o => return o == Ordering::Greater,
        }
        if self.ldt != other.ldt {
            return self.ldt > other.ldt;
        }
        self.value > other.value
    }
}

/// A row as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRow {
    /// Primary-key liveness timestamp (the row marker an INSERT writes).
    pub liveness: Option<i64>,
    /// Row deletion timestamp.
    pub deletion: Option<i64>,
    /// Cells by column name (and element path, empty for simple cells).
    pub cells: BTreeMap<String, BTreeMap<PathKey, StoredCell>>,
    /// Complex deletions by column name.
    pub complex_deletions: BTreeMap<String, i64>,
}

/// An element cell's path, hex in the saved state.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct PathKey(#[serde(with = "hex_bytes")] pub Vec<u8>);

impl StoredRow {
    /// Removes everything at or before `ts` (a deletion covering the row).
    fn purge(&mut self, ts: i64) {
        if self.liveness.is_some_and(|l| l <= ts) {
            self.liveness = None;
        }
        for cells in self.cells.values_mut() {
            cells.retain(|_, c| c.ts > ts);
        }
        self.cells.retain(|_, c| !c.is_empty());
        self.complex_deletions.retain(|_, d| *d > ts);
    }

    /// Whether a SELECT would return the row: a live marker or a live cell.
    pub fn is_live(&self) -> bool {
        self.liveness.is_some() || self.cells.values().flat_map(|c| c.values()).any(|c| !c.tombstone)
    }

    /// A simple cell's live value.
    pub fn value(&self, column: &str) -> Option<&[u8]> {
        let cell = self.cells.get(column)?.get(&PathKey::default())?;
        (!cell.tombstone).then_some(cell.value.as_slice())
    }

    fn is_empty(&self) -> bool {
        self.liveness.is_none() && self.deletion.is_none() && self.cells.is_empty() && self.complex_deletions.is_empty()
    }
}

/// A range deletion of a partition's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RangeDeletion {
    #[serde(with = "hex_list")]
    pub start: Clustering,
    pub start_inclusive: bool,
    #[serde(with = "hex_list")]
    pub end: Clustering,
    pub end_inclusive: bool,
    pub ts: i64,
}

/// Compares a clustering with a bound's prefix, component by component
/// (bytes, as `UTF8Type` compares the text keys of `system_schema`): equal
/// when the clustering starts with the prefix.
fn cmp_prefix(row: &[Vec<u8>], prefix: &[Vec<u8>]) -> Ordering {
    for (a, b) in row.iter().zip(prefix) {
        match a.cmp(b) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

impl RangeDeletion {
    fn covers(&self, row: &[Vec<u8>]) -> bool {
        let after_start = match cmp_prefix(row, &self.start) {
            Ordering::Greater => true,
            Ordering::Equal => self.start_inclusive || self.start.is_empty(),
            Ordering::Less => false,
        };
        let before_end = match cmp_prefix(row, &self.end) {
            Ordering::Less => true,
            Ordering::Equal => self.end_inclusive || self.end.is_empty(),
            Ordering::Greater => false,
        };
        after_start && before_end
    }
}

/// A partition of a `system_schema` table (one keyspace's rows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredPartition {
    pub deletion: Option<i64>,
    pub ranges: Vec<RangeDeletion>,
    /// Rows by clustering (hex in the saved state).
    #[serde(with = "row_map")]
    pub rows: BTreeMap<Clustering, StoredRow>,
}

impl StoredPartition {
    /// The newest deletion covering a row (partition or range).
    fn shadow(&self, clustering: &[Vec<u8>]) -> Option<i64> {
        let ranges = self.ranges.iter().filter(|r| r.covers(clustering)).map(|r| r.ts).max();
        self.deletion.max(ranges)
    }

    fn is_empty(&self) -> bool {
        self.deletion.is_none() && self.ranges.is_empty() && self.rows.is_empty()
    }
}

/// The rows of `system_schema`: table name -> keyspace -> partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaRows {
    pub tables: BTreeMap<String, BTreeMap<String, StoredPartition>>,
}

/// A row to write into the rows directly (bootstrap schemas).
pub(crate) struct SeedRow<'a> {
    pub clustering: Clustering,
    pub cells: Vec<(&'a str, Vec<u8>)>,
}

impl SchemaRows {
    /// The partition of `table` for `keyspace`, if there is one.
    pub fn partition(&self, table: &str, keyspace: &str) -> Option<&StoredPartition> {
        self.tables.get(table)?.get(keyspace)
    }

    /// The live rows of `table` for `keyspace`, in clustering order.
    pub fn live_rows<'s>(
        &'s self,
        table: &str,
        keyspace: &str,
    ) -> impl Iterator<Item = (&'s Clustering, &'s StoredRow)> + 's {
        self.partition(table, keyspace).into_iter().flat_map(|p| p.rows.iter().filter(|(_, r)| r.is_live()))
    }

    /// Every keyspace that has a partition in any table.
    pub fn keyspaces(&self) -> std::collections::BTreeSet<String> {
        self.tables.values().flat_map(|t| t.keys().cloned()).collect()
    }

    /// Writes a row as an `INSERT` at `ts` would.
    pub fn seed(&mut self, table: &str, keyspace: &str, row: SeedRow<'_>, ts: i64) {
        let p = self.tables.entry(table.to_owned()).or_default().entry(keyspace.to_owned()).or_default();
        if p.shadow(&row.clustering).is_some_and(|d| d >= ts) {
            return;
        }
        let r = p.rows.entry(row.clustering).or_default();
        if r.deletion.is_some_and(|d| d >= ts) {
            return;
        }
        r.liveness = Some(r.liveness.map_or(ts, |l| l.max(ts)));
        for (name, value) in row.cells {
            let cell = StoredCell { ts, ldt: None, tombstone: false, value };
            let slot = r.cells.entry(name.to_owned()).or_default();
            match slot.get(&PathKey::default()) {
                Some(old) if !cell.supersedes(old) => {}
                _ => {
                    slot.insert(PathKey::default(), cell);
                }
            }
        }
    }

    /// Applies one decoded partition update of a `system_schema` table.
    /// Returns the keyspace (the partition key) it changed.
    pub fn apply(&mut self, table: &str, update: &PartitionUpdate<'_>) -> String {
        let keyspace = String::from_utf8_lossy(update.partition_key_bytes()).into_owned();
        let p = self.tables.entry(table.to_owned()).or_default().entry(keyspace.clone()).or_default();
        if let Some(d) = update.partition_deletion() {
            if p.deletion.is_none_or(|old| d.timestamp > old) {
                p.deletion = Some(d.timestamp);
            }
            let ts = d.timestamp;
            p.ranges.retain(|r| r.ts > ts);
            for row in p.rows.values_mut() {
                row.purge(ts);
                if row.deletion.is_some_and(|rd| rd <= ts) {
                    row.deletion = None;
                }
            }
            p.rows.retain(|_, r| !r.is_empty());
        }
        for rt in update.range_tombstones() {
            let Some(d) = rt.deletion() else { continue };
            let bytes = |b: crate::mutation::Bound<'_>| -> Clustering {
                b.clustering_bytes().map(|v| v.unwrap_or_default().to_vec()).collect()
            };
            let range = RangeDeletion {
                start: bytes(rt.start()),
                start_inclusive: rt.start().inclusive(),
                end: bytes(rt.end()),
                end_inclusive: rt.end().inclusive(),
                ts: d.timestamp,
            };
            for (c, row) in p.rows.iter_mut() {
                if range.covers(c) {
                    row.purge(range.ts);
                }
            }
            p.rows.retain(|_, r| !r.is_empty());
            p.ranges.push(range);
        }
        for row in update.all_rows() {
            let clustering: Clustering = row.clustering_bytes().map(|v| v.unwrap_or_default().to_vec()).collect();
            let shadow = p.shadow(&clustering);
            let stored = p.rows.entry(clustering).or_default();
            if let Some(d) = row.deletion() {
                let ts = d.time.timestamp;
                if stored.deletion.is_none_or(|old| ts > old) {
                    stored.deletion = Some(ts);
                }
                stored.purge(ts);
            }
            let dead_at = shadow.max(stored.deletion);
            if let Some(l) = row.liveness()
                && dead_at.is_none_or(|d| l.timestamp > d)
                && stored.liveness.is_none_or(|old| l.timestamp > old)
            {
                stored.liveness = Some(l.timestamp);
            }
            for col in row.columns() {
                let name = col.name();
                let mut dead = dead_at;
                if let Some(cd) = col.complex_deletion() {
                    let old = stored.complex_deletions.get(name).copied();
                    if old.is_none_or(|o| cd.timestamp > o) {
                        stored.complex_deletions.insert(name.to_owned(), cd.timestamp);
                    }
                    if let Some(cells) = stored.cells.get_mut(name) {
                        cells.retain(|path, c| path.0.is_empty() || c.ts > cd.timestamp);
                    }
                }
                if col.is_complex() {
                    dead = dead.max(stored.complex_deletions.get(name).copied());
                }
                for cell in col.cells() {
                    if dead.is_some_and(|d| cell.timestamp() <= d) {
                        continue;
                    }
                    let new = StoredCell {
                        ts: cell.timestamp(),
                        ldt: cell.local_deletion_time().or(cell.expiry().map(|(_, at)| at)),
                        tombstone: cell.is_tombstone(),
                        value: cell.value_bytes().to_vec(),
                    };
                    let path = PathKey(cell.path_bytes().unwrap_or_default().to_vec());
                    let slot = stored.cells.entry(name.to_owned()).or_default();
                    match slot.get(&path) {
                        Some(old) if !new.supersedes(old) => {}
                        _ => {
                            slot.insert(path, new);
                        }
                    }
                }
            }
        }
        p.rows.retain(|_, r| !r.is_empty());
        let empty = p.is_empty();
        if empty && let Some(t) = self.tables.get_mut(table) {
            t.remove(&keyspace);
        }
        keyspace
    }
}

/// Byte strings as hex in the saved state.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::value::json::hex(bytes)[2..])
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        unhex(&text).ok_or_else(|| serde::de::Error::custom("not hex"))
    }

    pub fn unhex(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
    }
}

/// A clustering as a list of hex strings.
mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| crate::value::json::hex(b)[2..].to_owned()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| super::hex_bytes::unhex(t).ok_or_else(|| serde::de::Error::custom("not hex"))).collect()
    }
}

/// Rows keyed by clustering, as a list of `[clustering, row]` pairs.
mod row_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Clustering, StoredRow};

    #[derive(Serialize, Deserialize)]
    struct Entry {
        #[serde(with = "super::hex_list")]
        clustering: Clustering,
        row: StoredRow,
    }

    pub fn serialize<S: Serializer>(rows: &BTreeMap<Clustering, StoredRow>, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Ref<'a> {
            #[serde(with = "super::hex_list")]
            clustering: &'a Clustering,
            row: &'a StoredRow,
        }
        s.collect_seq(rows.iter().map(|(clustering, row)| Ref { clustering, row }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Clustering, StoredRow>, D::Error> {
        Ok(Vec::<Entry>::deserialize(d)?.into_iter().map(|e| (e.clustering, e.row)).collect())
    }
}
