//! The JSON Lines change format (one object per entry): `Serialize` for
//! [`Mutation`] and [`Undecodable`], used by the `dump` and `tail` examples
//! and by the owned form.
//!
//! A value whose bytes are not a value of its type (damage that passed the
//! CRCs, or a schema that does not match the data) is written as
//! `{"invalid": "<why>", "hex": "0x.."}` in place of the value.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::decode::{DeletionTime, Liveness, Undecodable};
use super::view::{Cell, CellPath, ColumnData, Mutation, PartitionUpdate, RangeTombstone, Row, RowDeletion};
use crate::schema::Column;
use crate::value::json::hex;
use crate::value::{Value, ValueError};

/// A value, or why its bytes are not one.
struct ValueJson<'a>(Result<Value<'a>, ValueError>, &'a [u8]);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let err = match &self.0 {
            Ok(v) => match v.validate() {
                Ok(()) => return v.serialize(s),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("invalid", &err)?;
        map.serialize_entry("hex", &hex(self.1))?;
        map.end()
    }
}

struct Deletion(DeletionTime, Option<bool>);

impl Serialize for Deletion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("timestamp", &self.0.timestamp)?;
        map.serialize_entry("local_deletion_time", &self.0.local_deletion_time)?;
        if let Some(shadowable) = self.1 {
            map.serialize_entry("shadowable", &shadowable)?;
        }
        map.end()
    }
}

fn deletion(d: Option<DeletionTime>) -> Option<Deletion> {
    d.map(|d| Deletion(d, None))
}

struct LivenessJson(Liveness);

impl Serialize for LivenessJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("timestamp", &self.0.timestamp)?;
        if let Some((ttl, expires_at)) = self.0.expiry {
            map.serialize_entry("ttl", &ttl)?;
            map.serialize_entry("expires_at", &expires_at)?;
        }
        map.end()
    }
}

/// Clustering or key values by column name, as a JSON object; the closure
/// yields the pairs afresh for every serialization.
struct Named<F>(F);

impl<'d, F, I> Serialize for Named<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'d Column, Option<(Result<Value<'d>, ValueError>, &'d [u8])>)>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (col, v) in (self.0)() {
            map.serialize_entry(&col.name, &v.map(|(v, raw)| ValueJson(v, raw)))?;
        }
        map.end()
    }
}

struct CellJson<'d> {
    cell: Cell<'d>,
    with_path: bool,
}

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.cell;
        let mut map = s.serialize_map(None)?;
        if self.with_path
            && let Some(path) = c.path()
        {
            let raw = c.path_bytes().unwrap_or_default();
            match path {
                Ok(CellPath::ListElement(u)) => map.serialize_entry("path", &u.hyphenated().to_string())?,
                Ok(CellPath::SetElement(v) | CellPath::MapKey(v)) => {
                    map.serialize_entry("path", &ValueJson(Ok(v), raw))?
                }
                Ok(CellPath::Field { name: Some(n), .. }) => map.serialize_entry("path", n)?,
                Ok(CellPath::Field { index, name: None }) => map.serialize_entry("path", &index)?,
                Err(e) => map.serialize_entry("path", &ValueJson(Err(e), raw))?,
            }
        }
        map.serialize_entry("timestamp", &c.timestamp())?;
        if let Some(ldt) = c.local_deletion_time() {
            map.serialize_entry("tombstone", &true)?;
            map.serialize_entry("local_deletion_time", &ldt)?;
        } else if let Some(ctx) = c.counter() {
            match ctx {
                Ok(ctx) => {
                    map.serialize_entry("value", &ctx.total())?;
                    let shards: Vec<_> = ctx.shards().map(ShardJson).collect();
                    map.serialize_entry("shards", &shards)?;
                }
                Err(e) => map.serialize_entry("value", &ValueJson(Err(e), c.value_bytes()))?,
            }
        } else if let Some(v) = c.value() {
            if matches!(v, Ok(Value::Empty)) {
                map.serialize_entry("value", &())?;
                map.serialize_entry("empty", &true)?;
            } else {
                map.serialize_entry("value", &ValueJson(v, c.value_bytes()))?;
            }
        }
        if let Some((ttl, expires_at)) = c.expiry() {
            map.serialize_entry("ttl", &ttl)?;
            map.serialize_entry("expires_at", &expires_at)?;
        }
        if c.is_dropped() {
            map.serialize_entry("dropped", &true)?;
        }
        map.end()
    }
}

struct ShardJson(crate::value::Shard);

impl Serialize for ShardJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("counter_id", &self.0.counter_id.hyphenated().to_string())?;
        map.serialize_entry("clock", &self.0.clock)?;
        map.serialize_entry("count", &self.0.count)?;
        map.serialize_entry("kind", self.0.kind.name())?;
        map.end()
    }
}

struct ColumnJson<'d>(ColumnData<'d>);

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        if !c.is_complex() {
            let cell = c.cells().next();
            return cell.map(|cell| CellJson { cell, with_path: false }).serialize(s);
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("deletion", &deletion(c.complex_deletion()))?;
        let cells: Vec<_> = c.cells().map(|cell| CellJson { cell, with_path: true }).collect();
        map.serialize_entry("cells", &cells)?;
        map.end()
    }
}

struct RowJson<'d>(Row<'d>);

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("static", &r.is_static())?;
        let clustering = || {
            r.clustering()
                .zip(r.clustering_bytes())
                .map(|((col, v), raw)| (col, v.map(|v| (v, raw.unwrap_or_default()))))
        };
        map.serialize_entry("clustering", &Named(clustering))?;
        map.serialize_entry("liveness", &r.liveness().map(LivenessJson))?;
        map.serialize_entry(
            "deletion",
            &r.deletion().map(|RowDeletion { time, shadowable }| Deletion(time, Some(shadowable))),
        )?;
        struct Cells<'d>(Row<'d>);
        impl Serialize for Cells<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.columns().len()))?;
                for c in self.0.columns() {
                    map.serialize_entry(c.name(), &ColumnJson(c))?;
                }
                map.end()
            }
        }
        map.serialize_entry("cells", &Cells(r))?;
        map.end()
    }
}

struct BoundJson<'d>(super::view::Bound<'d>);

impl Serialize for BoundJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Values<'d>(super::view::Bound<'d>);
        impl Serialize for Values<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.clustering().len()))?;
                for ((_, v), raw) in self.0.clustering().zip(self.0.clustering_bytes()) {
                    seq.serialize_element(&v.map(|v| ValueJson(v, raw.unwrap_or_default())))?;
                }
                seq.end()
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("clustering", &Values(self.0))?;
        map.serialize_entry("inclusive", &self.0.inclusive())?;
        map.end()
    }
}

struct RtJson<'d>(RangeTombstone<'d>);

impl Serialize for RtJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("start", &BoundJson(self.0.start()))?;
        map.serialize_entry("end", &BoundJson(self.0.end()))?;
        map.serialize_entry("deletion", &deletion(self.0.deletion()))?;
        map.end()
    }
}

impl Serialize for PartitionUpdate<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.table();
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("table", &t.name)?;
        map.serialize_entry("table_id", &self.table_id().hyphenated().to_string())?;
        map.serialize_entry("digest", &self.digest())?;
        match self.partition_key().collect::<Result<Vec<_>, _>>() {
            Ok(key) => {
                let named = || key.iter().map(|&(c, v)| (c, Some((Ok(v), &[][..]))));
                map.serialize_entry("partition_key", &Named(named))?
            }
            Err(e) => map.serialize_entry("partition_key", &ValueJson(Err(e), self.partition_key_bytes()))?,
        }
        map.serialize_entry("partition_deletion", &deletion(self.partition_deletion()))?;
        let rows: Vec<_> = self.all_rows().map(RowJson).collect();
        map.serialize_entry("rows", &rows)?;
        let rts: Vec<_> = self.range_tombstones().map(RtJson).collect();
        map.serialize_entry("range_tombstones", &rts)?;
        map.end()
    }
}

/// The failing update of an undecodable mutation.
struct Failed<'a> {
    table_id: Option<uuid::Uuid>,
    table: Option<&'a str>,
    raw: &'a [u8],
}

impl Serialize for Failed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(t) = self.table {
            map.serialize_entry("table", t)?;
        }
        map.serialize_entry("table_id", &self.table_id.map(|u| u.hyphenated().to_string()))?;
        let raw = hex(self.raw);
        map.serialize_entry("raw_hex", &raw[2..])?;
        map.end()
    }
}

fn entry<S: Serializer>(s: S, m: &Mutation<'_>, failure: Option<&super::MutationError>) -> Result<S::Ok, S::Error> {
    let failed_table = failure.and_then(|f| f.table_id).and_then(|id| m.schema.table_by_id(&id));
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("segment_id", &m.segment_id())?;
    map.serialize_entry("position", &m.position())?;
    let keyspace = m.keyspace().or(failed_table.map(|t| t.keyspace.as_str()));
    map.serialize_entry("keyspace", &keyspace)?;
    struct Updates<'a, 'd>(&'a Mutation<'d>, Option<Failed<'a>>);
    impl Serialize for Updates<'_, '_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(None)?;
            for u in self.0.updates() {
                seq.serialize_element(&u)?;
            }
            if let Some(f) = &self.1 {
                seq.serialize_element(f)?;
            }
            seq.end()
        }
    }
    let failed =
        failure.map(|f| Failed { table_id: f.table_id, table: failed_table.map(|t| t.name.as_str()), raw: m.bytes() });
    map.serialize_entry("updates", &Updates(m, failed))?;
    if let Some(f) = failure {
        map.serialize_entry("error", &f.error.to_string())?;
    }
    map.end()
}

impl Serialize for Mutation<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        entry(s, self, None)
    }
}

impl Serialize for Undecodable<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        entry(s, &self.partial, Some(&self.error))
    }
}

impl RangeTombstone<'_> {
    /// The range deletion as the change format writes it (`start` and
    /// `end` bounds with their clustering values and inclusiveness,
    /// `deletion`), exact for every value.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&RtJson(*self)).expect("a range tombstone renders")
    }
}

impl Row<'_> {
    /// The row as the change format writes it (`static`, `clustering`,
    /// `liveness`, `deletion`, `cells`), exact for every value: varints and
    /// decimals digit for digit, whatever serde_json features are enabled.
    pub fn to_json(&self) -> String {
        // Values that do not decode are written as `invalid` objects, so
        // rendering a row cannot fail.
        serde_json::to_string(&RowJson(*self)).expect("a row renders")
    }
}
