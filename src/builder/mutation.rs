//! Writing mutations (format spec §8) as Cassandra 3.0–5.0 serializes them:
//! encoding stats, header column lists in Cassandra's column order, rows,
//! cells, complex deletions and range tombstone markers.

use std::cmp::Ordering;

use uuid::Uuid;

use crate::mutation::vint::write_unsigned_vint;
use crate::mutation::{DELETION_TIME_EPOCH, DeletionTime, Liveness, TIMESTAMP_EPOCH};
use crate::schema::{CqlType, Table};

/// What a cell is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// A live value.
    Live,
    /// A value with a TTL.
    Expiring {
        /// TTL in seconds.
        ttl: i32,
        /// Expiry time (seconds since the epoch).
        expires_at: i64,
    },
    /// A tombstone.
    Tombstone {
        /// When it was written (seconds since the epoch).
        local_deletion_time: i64,
    },
}

/// A cell to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellSpec {
    /// Timestamp (microseconds).
    pub timestamp: i64,
    /// Live, expiring or tombstone.
    pub kind: CellKind,
    /// The path of an element cell (complex columns only).
    pub path: Option<Vec<u8>>,
    /// The value's bytes (empty: no value, as for tombstones and set elements).
    pub value: Vec<u8>,
}

/// A column of a row to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnSpec {
    /// One cell.
    Simple(CellSpec),
    /// A non-frozen collection or UDT: complex deletion and element cells.
    Complex {
        /// The complex deletion.
        deletion: Option<DeletionTime>,
        /// Element cells, in path order.
        cells: Vec<CellSpec>,
    },
}

/// A row to write.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RowSpec {
    /// Clustering values (`None`: null); empty for the static row.
    pub clustering: Vec<Option<Vec<u8>>>,
    /// Primary-key liveness.
    pub liveness: Option<Liveness>,
    /// Row deletion and whether it is shadowable.
    pub deletion: Option<(DeletionTime, bool)>,
    /// Columns by name, in any order (they are written in Cassandra's order).
    pub columns: Vec<(String, ColumnSpec)>,
}

/// A range tombstone bound or boundary to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerSpec {
    /// Bound kind ordinal (format spec §8.5): 0, 1, 6, 7 for bounds, 2 and 5
    /// for boundaries.
    pub kind: u8,
    /// Clustering prefix (`None`: null).
    pub values: Vec<Option<Vec<u8>>>,
    /// The deletion (for a boundary: the end deletion).
    pub deletion: DeletionTime,
    /// A boundary's start deletion.
    pub start_deletion: Option<DeletionTime>,
}

/// A row or a marker, in clustering order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfiltered {
    /// A row.
    Row(RowSpec),
    /// A range tombstone marker.
    Marker(MarkerSpec),
}

/// One partition update to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateSpec {
    /// Table id written.
    pub table_id: Uuid,
    /// Serialized partition key.
    pub key: Vec<u8>,
    /// Partition deletion.
    pub deletion: Option<DeletionTime>,
    /// Static row.
    pub static_row: Option<RowSpec>,
    /// Rows and markers in clustering order.
    pub unfiltereds: Vec<Unfiltered>,
}

/// Serializes a composite partition key (format spec §9.4).
pub fn composite_key(components: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in components {
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
        out.push(0);
    }
    out
}

/// Cassandra's column order within a header list (format spec §8.3.1):
/// simple before complex, then by a 6-byte name prefix with its top bit
/// flipped, then by the whole name.
pub fn column_order(a: (&str, bool), b: (&str, bool)) -> Ordering {
    fn key(name: &str, complex: bool) -> u64 {
        let mut prefix = [0u8; 8];
        for (d, s) in prefix.iter_mut().zip(name.as_bytes()) {
            *d = *s;
        }
        let p = u64::from_be_bytes(prefix) ^ (1 << 63);
        (u64::from(complex) << 60) | (p >> 16)
    }
    key(a.0, a.1).cmp(&key(b.0, b.1)).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
}

/// The minimum timestamp, local deletion time and TTL of an update, as
/// Cassandra's `EncodingStats.Collector` gathers them.
#[derive(Clone, Copy)]
struct Stats {
    ts: Option<i64>,
    ldt: Option<i64>,
    ttl: Option<i32>,
}

impl Stats {
    fn timestamp(&mut self, t: i64) {
        self.ts = Some(self.ts.map_or(t, |m| m.min(t)));
    }
    fn ldt(&mut self, t: i64) {
        self.ldt = Some(self.ldt.map_or(t, |m| m.min(t)));
    }
    fn ttl(&mut self, t: i32) {
        self.ttl = Some(self.ttl.map_or(t, |m| m.min(t)));
    }
    fn deletion(&mut self, d: &DeletionTime) {
        self.timestamp(d.timestamp);
        self.ldt(d.local_deletion_time);
    }
    fn row(&mut self, r: &RowSpec) {
        if let Some(l) = &r.liveness {
            self.timestamp(l.timestamp);
            if let Some((ttl, at)) = l.expiry {
                self.ttl(ttl);
                self.ldt(at);
            }
        }
        if let Some((d, _)) = &r.deletion {
            self.deletion(d);
        }
        for (_, c) in &r.columns {
            match c {
                ColumnSpec::Simple(cell) => self.cell(cell),
                ColumnSpec::Complex { deletion, cells } => {
                    if let Some(d) = deletion {
                        self.deletion(d);
                    }
                    cells.iter().for_each(|c| self.cell(c));
                }
            }
        }
    }
    fn cell(&mut self, c: &CellSpec) {
        self.timestamp(c.timestamp);
        match c.kind {
            CellKind::Live => {}
            CellKind::Expiring { ttl, expires_at } => {
                self.ttl(ttl);
                self.ldt(expires_at);
            }
            CellKind::Tombstone { local_deletion_time } => self.ldt(local_deletion_time),
        }
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    min_ts: i64,
    min_ldt: u32,
    min_ttl: u32,
    no_ldt: i64,
}

impl Writer<'_> {
    fn vint(&mut self, v: u64) {
        write_unsigned_vint(v, self.out);
    }
    fn timestamp(&mut self, t: i64) {
        self.vint(t.wrapping_sub(self.min_ts) as u64);
    }
    fn ldt(&mut self, t: i64) {
        // 32-bit subtraction, sign-extended to 64 bits (format spec §8.4).
        self.vint((t as u32).wrapping_sub(self.min_ldt) as i32 as i64 as u64);
    }
    fn ttl(&mut self, t: i32) {
        self.vint((t as u32).wrapping_sub(self.min_ttl) as i32 as i64 as u64);
    }
    fn deletion(&mut self, d: Option<&DeletionTime>) {
        match d {
            Some(d) => {
                self.timestamp(d.timestamp);
                self.ldt(d.local_deletion_time);
            }
            None => {
                self.timestamp(i64::MIN);
                let no = self.no_ldt;
                self.ldt(no);
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.vint(b.len() as u64);
        self.out.extend_from_slice(b);
    }
    fn value(&mut self, ty: &CqlType, b: &[u8]) {
        if ty.fixed_len().is_some() {
            self.out.extend_from_slice(b);
        } else {
            self.bytes(b);
        }
    }
}

/// A header column: name, type, complex.
type HeaderCol<'t> = (&'t str, &'t CqlType, bool);

fn column_type<'t>(table: &'t Table, name: &str) -> &'t CqlType {
    if let Some(c) = table.column(name) {
        return &c.ty;
    }
    match table.dropped.iter().find(|d| d.name == name) {
        Some(d) => &d.ty,
        None => panic!("builder: table {} has no column {name:?}", table.name),
    }
}

fn header_list<'t>(table: &'t Table, rows: impl Iterator<Item = &'t RowSpec>) -> Vec<HeaderCol<'t>> {
    let mut cols: Vec<HeaderCol<'t>> = Vec::new();
    for r in rows {
        for (name, _) in &r.columns {
            if !cols.iter().any(|c| c.0 == name) {
                let ty = column_type(table, name);
                cols.push((name.as_str(), ty, ty.is_multi_cell()));
            }
        }
    }
    cols.sort_by(|a, b| column_order((a.0, a.2), (b.0, b.2)));
    cols
}

/// Serializes a mutation of these updates (each with its table) for
/// messaging 10–12 (`unsigned_ldt`: 13, whose "no deletion time" differs).
pub fn encode_mutation(updates: &[(&Table, &UpdateSpec)], unsigned_ldt: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_unsigned_vint(updates.len() as u64, &mut out);
    for (table, u) in updates {
        encode_update(table, u, unsigned_ldt, &mut out);
    }
    out
}

fn encode_update(table: &Table, u: &UpdateSpec, unsigned_ldt: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(u.table_id.as_bytes());
    write_unsigned_vint(u.key.len() as u64, out);
    out.extend_from_slice(&u.key);
    let no_ldt = if unsigned_ldt { u32::MAX as i64 } else { i32::MAX as i64 };
    let rows = || u.unfiltereds.iter().filter_map(|x| if let Unfiltered::Row(r) = x { Some(r) } else { None });
    let is_empty = u.deletion.is_none() && u.static_row.is_none() && u.unfiltereds.is_empty();
    let mut flags = 0x10u8; // HAS_ROW_ESTIMATE
    if is_empty {
        out.push(0x01);
        return;
    }
    if u.deletion.is_some() {
        flags |= 0x04;
    }
    if u.static_row.is_some() {
        flags |= 0x08;
    }
    out.push(flags);
    let mut stats = Stats { ts: None, ldt: None, ttl: None };
    if let Some(d) = &u.deletion {
        stats.deletion(d);
    }
    u.static_row.iter().for_each(|r| stats.row(r));
    for x in &u.unfiltereds {
        match x {
            Unfiltered::Row(r) => stats.row(r),
            Unfiltered::Marker(m) => {
                stats.deletion(&m.deletion);
                if let Some(d) = &m.start_deletion {
                    stats.deletion(d);
                }
            }
        }
    }
    let min_ts = stats.ts.unwrap_or(TIMESTAMP_EPOCH);
    let min_ldt = stats.ldt.map_or(DELETION_TIME_EPOCH, |l| l as u32);
    let min_ttl = stats.ttl.unwrap_or(0) as u32;
    let mut w = Writer { out, min_ts, min_ldt, min_ttl, no_ldt };
    w.vint(min_ts.wrapping_sub(TIMESTAMP_EPOCH) as u64);
    w.vint(min_ldt.wrapping_sub(DELETION_TIME_EPOCH) as i32 as i64 as u64);
    w.vint(min_ttl as i32 as i64 as u64);
    let statics = header_list(table, u.static_row.iter());
    let regulars = header_list(table, rows());
    for list in [(u.static_row.is_some(), &statics), (true, &regulars)] {
        if list.0 {
            w.vint(list.1.len() as u64);
            for (name, _, _) in list.1.iter() {
                w.bytes(name.as_bytes());
            }
        }
    }
    if let Some(d) = &u.deletion {
        w.deletion(Some(d));
    }
    if let Some(r) = &u.static_row {
        row(&mut w, table, r, &statics, true);
    }
    w.vint(rows().count() as u64);
    for x in &u.unfiltereds {
        match x {
            Unfiltered::Row(r) => row(&mut w, table, r, &regulars, false),
            Unfiltered::Marker(m) => {
                w.out.push(0x02);
                w.out.push(m.kind);
                w.out.extend_from_slice(&(m.values.len() as u16).to_be_bytes());
                clustering(&mut w, table, &m.values);
                w.deletion(Some(&m.deletion));
                if let Some(d) = &m.start_deletion {
                    w.deletion(Some(d));
                }
            }
        }
    }
    w.out.push(0x01); // end of partition
}

fn clustering(w: &mut Writer<'_>, table: &Table, values: &[Option<Vec<u8>>]) {
    for (batch_no, batch) in values.chunks(32).enumerate() {
        let mut header = 0u64;
        for (j, v) in batch.iter().enumerate() {
            match v {
                None => header |= 1 << (2 * j + 1),
                Some(b) if b.is_empty() => header |= 1 << (2 * j),
                Some(_) => {}
            }
        }
        w.vint(header);
        for (j, v) in batch.iter().enumerate() {
            if let Some(b) = v.as_ref().filter(|b| !b.is_empty()) {
                let ty = &table.clustering_column(batch_no * 32 + j).expect("clustering column").ty;
                w.value(ty, b);
            }
        }
    }
}

fn row(w: &mut Writer<'_>, table: &Table, r: &RowSpec, header: &[HeaderCol<'_>], is_static: bool) {
    let mut flags = 0u8;
    let mut ext = 0u8;
    if is_static {
        ext |= 0x01;
    }
    if let Some(l) = &r.liveness {
        flags |= 0x04;
        if l.expiry.is_some() {
            flags |= 0x08;
        }
    }
    if let Some((_, shadowable)) = &r.deletion {
        flags |= 0x10;
        if *shadowable {
            ext |= 0x02;
        }
    }
    let present: Vec<usize> = (0..header.len()).filter(|&i| r.columns.iter().any(|(n, _)| n == header[i].0)).collect();
    if present.len() == header.len() {
        flags |= 0x20;
    }
    let complex_deletion = r.columns.iter().any(|(_, c)| matches!(c, ColumnSpec::Complex { deletion: Some(_), .. }));
    if complex_deletion {
        flags |= 0x40;
    }
    if ext != 0 {
        flags |= 0x80;
    }
    w.out.push(flags);
    if ext != 0 {
        w.out.push(ext);
    }
    if !is_static {
        clustering(w, table, &r.clustering);
    }
    let (row_ts, row_exp) = match &r.liveness {
        Some(l) => {
            w.timestamp(l.timestamp);
            if let Some((ttl, at)) = l.expiry {
                w.ttl(ttl);
                w.ldt(at);
            }
            (Some(l.timestamp), l.expiry)
        }
        None => (None, None),
    };
    if let Some((d, _)) = &r.deletion {
        w.deletion(Some(d));
    }
    if flags & 0x20 == 0 {
        subset(w, header.len(), &present);
    }
    for &i in &present {
        let (name, ty, complex) = header[i];
        let spec = &r.columns.iter().find(|(n, _)| n == name).expect("present").1;
        match spec {
            ColumnSpec::Simple(c) => cell(w, ty, false, c, row_ts, row_exp),
            ColumnSpec::Complex { deletion, cells } => {
                assert!(complex, "builder: complex cells for simple column {name}");
                if complex_deletion {
                    w.deletion(deletion.as_ref());
                }
                w.vint(cells.len() as u64);
                for c in cells {
                    cell(w, ty, true, c, row_ts, row_exp);
                }
            }
        }
    }
}

fn subset(w: &mut Writer<'_>, n: usize, present: &[usize]) {
    if n < 64 {
        let mut missing = 0u64;
        for i in 0..n {
            if !present.contains(&i) {
                missing |= 1 << i;
            }
        }
        w.vint(missing);
        return;
    }
    let missing: Vec<usize> = (0..n).filter(|i| !present.contains(i)).collect();
    w.vint(missing.len() as u64);
    if present.len() < n / 2 {
        present.iter().for_each(|&i| w.vint(i as u64));
    } else {
        missing.iter().for_each(|&i| w.vint(i as u64));
    }
}

fn cell(
    w: &mut Writer<'_>,
    ty: &CqlType,
    complex: bool,
    c: &CellSpec,
    row_ts: Option<i64>,
    row_exp: Option<(i32, i64)>,
) {
    let mut flags = 0u8;
    if c.value.is_empty() {
        flags |= 0x04;
    }
    let expiring = match c.kind {
        CellKind::Tombstone { .. } => {
            flags |= 0x01;
            None
        }
        CellKind::Expiring { ttl, expires_at } => {
            flags |= 0x02;
            Some((ttl, expires_at))
        }
        CellKind::Live => None,
    };
    let use_row_ts = row_ts == Some(c.timestamp);
    let use_row_ttl = expiring.is_some() && expiring == row_exp;
    if use_row_ts {
        flags |= 0x08;
    }
    if use_row_ttl {
        flags |= 0x10;
    }
    w.out.push(flags);
    if !use_row_ts {
        w.timestamp(c.timestamp);
    }
    if !use_row_ttl {
        match c.kind {
            CellKind::Tombstone { local_deletion_time } => w.ldt(local_deletion_time),
            CellKind::Expiring { ttl, expires_at } => {
                w.ldt(expires_at);
                w.ttl(ttl);
            }
            CellKind::Live => {}
        }
    }
    if complex {
        w.bytes(c.path.as_deref().unwrap_or_default());
    }
    if !c.value.is_empty() {
        if complex {
            w.bytes(&c.value);
        } else {
            w.value(ty, &c.value);
        }
    }
}
