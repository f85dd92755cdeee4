//! Every kind of DDL, through the `system_schema` mutations Cassandra writes
//! for it (the builder's `DdlWriter`, after `SchemaKeyspace`), applied by a
//! `SchemaTracker` in log order with data. The expected schema at every
//! step is built here in code from the statements' meaning (an independent
//! model), and every data mutation must decode under the tracker exactly as
//! it does under that model: ALTER TYPE ... ADD, DROP and re-ADD of a
//! column (quoted names included), DROP and re-CREATE of a table with a
//! changed column type, DROP KEYSPACE, TRUNCATE; then random sequences of
//! them (proptest) against the same model.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use cassandra_commitlog::builder::{
    BuildFormat, CellKind, CellSpec, ColumnSpec, DdlWriter, RowSpec, SegmentBuilder, Unfiltered, UpdateSpec, Val,
    encode_mutation,
};
use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::{
    CqlType, DroppedColumn, Release, Schema, SchemaEvent, SchemaTracker, Table, Truncation, UserType, Uuid,
};
use cassandra_commitlog::segment::{ReadOptions, Segment};
use common::materialize::Materializer;
use proptest::prelude::*;

const KS: &str = "ks";

/// A tracker fed one mutation at a time, with a model schema beside it.
struct Run {
    tracker: SchemaTracker,
    decoder: Decoder,
    ddl: DdlWriter,
    model: Schema,
    position: u64,
    events: Vec<SchemaEvent>,
}

impl Run {
    fn new() -> Run {
        let mut model = Schema::new();
        model.add_keyspace(KS);
        let mut run = Run {
            tracker: SchemaTracker::new(Release::Cassandra4),
            decoder: Decoder::new(),
            ddl: DdlWriter::new(),
            model,
            position: 0,
            events: Vec::new(),
        };
        let m = run.ddl.create_keyspace(KS, 1_000);
        run.feed(&m);
        run
    }

    fn ctx(&mut self) -> Context {
        self.position += 100;
        Context { segment_id: 7, position: self.position, ..Context::default() }
    }

    /// Applies a schema mutation; returns its events.
    fn feed(&mut self, m: &[u8]) -> Vec<SchemaEvent> {
        let ctx = self.ctx();
        let events = self.tracker.observe(&mut self.decoder, m, ctx);
        for e in &events {
            if let SchemaEvent::NotApplied(e) = e {
                panic!("{e}");
            }
        }
        self.events.extend(events.iter().cloned());
        events
    }

    /// Decodes a data mutation with the tracker and with the model: the
    /// same line. Returns it.
    fn data(&mut self, m: &[u8]) -> String {
        let model = self.model.clone();
        self.data_as(m, &model)
    }

    /// The same, against a schema the test gives.
    fn data_as(&mut self, m: &[u8], model: &Schema) -> String {
        let ctx = self.ctx();
        let tracked = self.tracker.decode(&mut self.decoder, m, ctx.clone());
        let got = match &tracked.decoded {
            Ok(m) => serde_json::to_string(m).unwrap(),
            Err(u) => panic!("{}", u.error),
        };
        assert!(tracked.events.is_empty());
        let mut d = Decoder::new();
        let want = match d.decode(m, model, ctx) {
            Ok(m) => serde_json::to_string(&m).unwrap(),
            Err(u) => panic!("model: {}", u.error),
        };
        assert_eq!(got, want);
        got
    }

    /// The tracker's schema equals the model's, in the test keyspace.
    fn check(&self) {
        let view = |s: &Schema| -> (BTreeSet<String>, BTreeSet<String>) {
            let tables = s
                .tables()
                .filter(|t| t.keyspace == KS)
                .map(|t| {
                    let mut cols: Vec<_> = t
                        .columns
                        .iter()
                        .map(|c| format!("{} {} {:?} {:?}", c.name, c.ty, c.kind, c.dropped_at))
                        .collect();
                    cols.sort();
                    let mut dropped: Vec<_> = t.dropped.iter().map(|d| format!("{d:?}")).collect();
                    dropped.sort();
                    format!("{} {} {cols:?} {dropped:?}", t.name, t.id)
                })
                .collect();
            let types = s.user_types().filter(|t| t.keyspace == KS).map(|t| format!("{t:?}")).collect();
            (tables, types)
        };
        assert_eq!(view(self.tracker.schema()), view(&self.model));
    }

    fn table(&self, name: &str) -> Table {
        self.model.table(KS, name).unwrap().clone()
    }

    fn create_table(&mut self, t: Table, ts: i64) {
        let m = self.ddl.create_table(&t, ts);
        self.model.add_table(t);
        self.feed(&m);
        self.check();
    }

    fn alter(&mut self, name: &str, ts: i64, change: impl FnOnce(&mut Table)) {
        let before = self.table(name);
        let mut after = before.clone();
        change(&mut after);
        let m = self.ddl.alter_table(&before, &after, ts);
        self.model
            .amend_table(KS, name, |t| {
                *t = after;
                Ok(())
            })
            .unwrap();
        self.feed(&m);
        self.check();
    }

    fn drop_table(&mut self, name: &str, ts: i64) {
        let t = self.table(name);
        let m = self.ddl.drop_table(&t, ts);
        let mut model = Schema::new();
        model.add_keyspace(KS);
        for ty in self.model.user_types() {
            model.add_type((**ty).clone());
        }
        for other in self.model.tables().filter(|o| o.id != t.id) {
            model.add_table(other.clone());
        }
        self.model = model;
        self.feed(&m);
        self.check();
    }
}

fn cell(ts: i64, value: Vec<u8>) -> ColumnSpec {
    ColumnSpec::Simple(CellSpec { timestamp: ts, kind: CellKind::Live, path: None, value })
}

/// One row of a table without clustering columns.
fn upsert(table: &Table, key: i32, cells: Vec<(&str, ColumnSpec)>) -> Vec<u8> {
    let spec = UpdateSpec {
        table_id: table.id,
        key: key.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(RowSpec {
            clustering: vec![],
            liveness: None,
            deletion: None,
            columns: cells.into_iter().map(|(n, c)| (n.to_owned(), c)).collect(),
        })],
    };
    encode_mutation(&[(table, &spec)], false)
}

fn id(n: u8) -> Uuid {
    format!("3a3b9380-e732-11f1-a7c5-e72bb5e4b1{n:02x}").parse().unwrap()
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn drop_and_re_add_of_a_column_flags_older_cells_and_keeps_newer_ones() {
    let mut run = Run::new();
    let t = Table::builder(KS, "t")
        .id(id(1))
        .partition_key("k", CqlType::Int)
        .regular("v", CqlType::Text)
        .regular("MixedCase", CqlType::Int)
        .build()
        .unwrap();
    run.create_table(t, 1_000_000);
    let before = run.table("t");
    let line = run.data(&upsert(&before, 1, vec![("v", cell(2_000_000, text("a")))]));
    assert!(!line.contains("dropped"), "before the drop, v is a live column: {line}");
    // DROP v and the quoted column, at 3 s (ms precision, as Cassandra stores it).
    run.alter("t", 3_000_000, |t| {
        t.drop_column("v", 3_000_000).unwrap();
        t.drop_column("MixedCase", 3_000_000).unwrap();
    });
    // A mutation written before the drop but logged after it (in flight).
    let line = run.data(&upsert(
        &before,
        2,
        vec![("v", cell(2_500_000, text("b"))), ("MixedCase", cell(2_500_000, vec![0, 0, 0, 7]))],
    ));
    assert_eq!(line.matches("\"dropped\":true").count(), 2, "{line}");
    // ADD v again: cells up to the drop stay dropped, later ones are live.
    run.alter("t", 4_000_000, |t| t.add_column("v", CqlType::Text, false).unwrap());
    let after = run.table("t");
    assert_eq!(after.column("v").unwrap().dropped_at, Some(3_000_000));
    let line = run.data(&upsert(&after, 3, vec![("v", cell(2_900_000, text("old")))]));
    assert!(line.contains("\"dropped\":true"), "{line}");
    let line = run.data(&upsert(&after, 4, vec![("v", cell(5_000_000, text("new")))]));
    assert!(!line.contains("dropped"), "{line}");
    let change = run.events.iter().rev().find_map(|e| match e {
        SchemaEvent::Changed(c) => Some(c),
        _ => None,
    });
    assert_eq!(change.unwrap().altered, vec![("t".to_owned(), id(1))]);
}

#[test]
fn a_dropped_column_time_keeps_milliseconds_as_cassandra_stores_it() {
    let mut run = Run::new();
    let t =
        Table::builder(KS, "t").id(id(1)).partition_key("k", CqlType::Int).regular("v", CqlType::Int).build().unwrap();
    run.create_table(t, 1_000_000);
    // Dropped at 3 000 999 µs: system_schema.dropped_columns keeps 3000 ms,
    // and Cassandra reads it back as 3 000 000 µs.
    let m = {
        let before = run.table("t");
        let mut after = before.clone();
        after.drop_column("v", 3_000_999).unwrap();
        run.ddl.alter_table(&before, &after, 3_500_000)
    };
    run.model.amend_table(KS, "t", |t| t.drop_column("v", 3_000_000)).unwrap();
    run.feed(&m);
    run.check();
    let d = &run.tracker.schema().table(KS, "t").unwrap().dropped[0];
    assert_eq!(d.dropped_at, 3_000_000);
}

#[test]
fn drop_and_re_create_of_a_table_keeps_the_old_id_for_older_mutations() {
    let mut run = Run::new();
    let old =
        Table::builder(KS, "t").id(id(1)).partition_key("k", CqlType::Int).regular("v", CqlType::Int).build().unwrap();
    run.create_table(old.clone(), 1_000_000);
    run.data(&upsert(&old, 1, vec![("v", cell(1_500_000, vec![0, 0, 0, 1]))]));
    run.drop_table("t", 2_000_000);
    assert!(run.tracker.schema().table(KS, "t").is_none());
    assert!(run.tracker.schema().is_retired(&id(1)));
    // Re-created with another type for v, under a new id.
    let new =
        Table::builder(KS, "t").id(id(2)).partition_key("k", CqlType::Int).regular("v", CqlType::Text).build().unwrap();
    run.create_table(new.clone(), 3_000_000);
    run.data(&upsert(&new, 1, vec![("v", cell(3_500_000, text("x")))]));
    // An older mutation of the old table, logged after: decoded as it was written.
    let mut as_written = Schema::new();
    as_written.add_table(old.clone());
    let line = run.data_as(&upsert(&old, 2, vec![("v", cell(1_800_000, vec![0, 0, 0, 2]))]), &as_written);
    assert!(line.contains("\"value\":2"), "{line}");
    let s = run.tracker.schema();
    assert_eq!(s.table(KS, "t").unwrap().id, id(2));
    assert!(s.is_retired(&id(1)) && !s.is_retired(&id(2)));
    let kinds: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            SchemaEvent::Changed(c) => Some((c.created.clone(), c.dropped.clone())),
            _ => None,
        })
        .collect();
    assert!(kinds.contains(&(vec![], vec![("t".to_owned(), id(1))])));
    assert!(kinds.contains(&(vec![("t".to_owned(), id(2))], vec![])));
}

#[test]
fn alter_type_add_field_reaches_frozen_and_non_frozen_columns() {
    let mut run = Run::new();
    let v1 = UserType { keyspace: KS.into(), name: "address".into(), fields: vec![("street".into(), CqlType::Text)] };
    let m = run.ddl.create_type(&v1, 1_000_000);
    let def = run.model.add_type(v1.clone());
    run.feed(&m);
    let t = Table::builder(KS, "t")
        .id(id(1))
        .partition_key("k", CqlType::Int)
        .regular("f", CqlType::Udt { def: def.clone(), frozen: true })
        .regular("u", CqlType::Udt { def, frozen: false })
        .build()
        .unwrap();
    run.create_table(t, 1_100_000);
    let before = run.table("t");
    let street = Val::Fields(vec![Some(Val::Text("Main".into()))]).encode(&before.column("f").unwrap().ty);
    run.data(&upsert(&before, 1, vec![("f", cell(1_200_000, street.clone()))]));
    // ALTER TYPE address ADD zip int: the type row is written again, and the
    // tables that use it read it back with the new field.
    let mut v2 = v1.clone();
    v2.fields.push(("zip".into(), CqlType::Int));
    let m = run.ddl.create_type(&v2, 2_000_000);
    let def2 = run.model.add_type(v2);
    run.model
        .amend_table(KS, "t", |t| {
            let mut b = Table::builder(KS, "t").id(t.id).partition_key("k", CqlType::Int);
            b = b.regular("f", CqlType::Udt { def: def2.clone(), frozen: true });
            b = b.regular("u", CqlType::Udt { def: def2.clone(), frozen: false });
            *t = b.build()?;
            Ok(())
        })
        .unwrap();
    let events = run.feed(&m);
    run.check();
    let SchemaEvent::Changed(c) = &events[0] else { panic!("{events:?}") };
    assert_eq!((c.types.clone(), c.altered.clone()), (vec!["address".to_owned()], vec![("t".to_owned(), id(1))]));
    // An old value (one field) and a new one, and the new field's own cell.
    let after = run.table("t");
    let line = run.data(&upsert(&after, 1, vec![("f", cell(2_100_000, street))]));
    assert!(line.contains("\"zip\":null"), "{line}");
    let zip = ColumnSpec::Complex {
        deletion: None,
        cells: vec![CellSpec {
            timestamp: 2_200_000,
            kind: CellKind::Live,
            path: Some(vec![0, 1]),
            value: vec![0, 0, 0, 9],
        }],
    };
    let line = run.data(&upsert(&after, 2, vec![("u", zip)]));
    assert!(line.contains("\"path\":\"zip\""), "{line}");
}

#[test]
fn drop_keyspace_retires_its_tables_and_a_new_keyspace_starts_empty() {
    let mut run = Run::new();
    let t = Table::builder(KS, "t").id(id(1)).partition_key("k", CqlType::Int).build().unwrap();
    run.create_table(t, 1_000_000);
    let m = run.ddl.drop_keyspace(KS, 2_000_000);
    run.feed(&m);
    assert!(run.tracker.schema().table(KS, "t").is_none());
    assert!(run.tracker.schema().is_retired(&id(1)));
    let m = run.ddl.create_keyspace(KS, 3_000_000);
    run.feed(&m);
    // A schema mutation older than the drop (a late one from another node)
    // stays deleted, as Cassandra reconciles it.
    let late = Table::builder(KS, "late").id(id(3)).partition_key("k", CqlType::Int).build().unwrap();
    let m = run.ddl.create_table(&late, 1_500_000);
    run.feed(&m);
    assert!(run.tracker.schema().table(KS, "late").is_none());
    let t2 = Table::builder(KS, "t").id(id(2)).partition_key("k", CqlType::Int).build().unwrap();
    let m = run.ddl.create_table(&t2, 4_000_000);
    run.feed(&m);
    assert_eq!(run.tracker.schema().table(KS, "t").unwrap().id, id(2));
}

/// TRUNCATE through a real segment: the event names the table and the
/// recorded position, and a sink that honours it forgets the older rows.
#[test]
fn truncate_is_an_event_and_a_sink_that_honours_it_forgets_older_data() {
    let ddl = DdlWriter::new();
    let t =
        Table::builder(KS, "t").id(id(1)).partition_key("k", CqlType::Int).regular("v", CqlType::Int).build().unwrap();
    let mut b = SegmentBuilder::new(7, 42, BuildFormat::Plain);
    b.entry(&ddl.create_keyspace(KS, 1_000_000));
    b.entry(&ddl.create_table(&t, 1_100_000));
    b.entry(&upsert(&t, 1, vec![("v", cell(1_200_000, vec![0, 0, 0, 1]))]));
    let before_truncate = b.logical_position();
    b.entry(&ddl.truncate(t.id, 42, before_truncate as u32, 1_300, 1_300_000));
    b.entry(&upsert(&t, 2, vec![("v", cell(1_400_000, vec![0, 0, 0, 2]))]));
    b.sync();
    let bytes = b.finish();
    let seg = Segment::from_data(&bytes[..]).unwrap();
    let mut reader = seg.reader(&ReadOptions::new()).unwrap();
    let mut tracker = SchemaTracker::new(Release::Cassandra4);
    let mut decoder = Decoder::new();
    let mut sink = Materializer::default();
    let mut truncations: Vec<Truncation> = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        let ctx = Context::of_entry(&e, seg.descriptor(), None);
        let tracked = tracker.decode(&mut decoder, e.mutation, ctx);
        sink.apply(tracked.decoded.as_ref().unwrap());
        for ev in &tracked.events {
            if let SchemaEvent::Truncated(tr) = ev {
                sink.truncate(tr.table_id);
                truncations.push(tr.clone());
            }
        }
    }
    assert_eq!(truncations.len(), 1);
    let tr = &truncations[0];
    assert_eq!((tr.keyspace.as_deref(), tr.table.as_deref()), (Some(KS), Some("t")));
    assert_eq!((tr.segment_id, tr.position as u64, tr.truncated_at), (42, before_truncate, Some(1_300)));
    let schema = tracker.schema().clone();
    let rows = sink.rows(&schema, KS, "t", 2);
    assert_eq!(rows.len(), 1, "only the row written after the truncation: {rows:?}");
    assert_eq!(rows[0]["k"], 2);
    let line = serde_json::to_string(&SchemaEvent::Truncated(tr.clone())).unwrap();
    assert!(line.contains(r#""truncate":{"keyspace":"ks","table":"t","#), "{line}");
}

/// Saving and restoring a tracker between a DDL and the data that uses it.
#[test]
fn a_restored_tracker_decodes_what_comes_after_the_ddl() {
    let mut run = Run::new();
    let t =
        Table::builder(KS, "t").id(id(1)).partition_key("k", CqlType::Int).regular("v", CqlType::Int).build().unwrap();
    run.create_table(t, 1_000_000);
    run.alter("t", 2_000_000, |t| t.add_column("w", CqlType::Text, false).unwrap());
    let saved = run.tracker.save();
    run.tracker = SchemaTracker::restore(&saved).unwrap();
    let after = run.table("t");
    run.data(&upsert(&after, 1, vec![("w", cell(2_500_000, text("x")))]));
    assert!(SchemaTracker::restore(b"{}").is_err());
    assert!(SchemaTracker::restore(&saved[..saved.len() / 2]).is_err());
}

/// One random DDL step of the property test.
#[derive(Clone, Debug)]
enum Op {
    AddColumn(u8, u8),
    DropColumn(u8),
    DropTable,
    CreateTable(u8),
    Truncate,
}

const NAMES: [&str; 4] = ["a", "b", "Quoted Name", "c"];

fn ty(n: u8) -> CqlType {
    match n % 4 {
        0 => CqlType::Int,
        1 => CqlType::Text,
        2 => CqlType::List { elem: Box::new(CqlType::Int), frozen: false },
        _ => CqlType::Map { key: Box::new(CqlType::Text), value: Box::new(CqlType::Int), frozen: true },
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, 0..4u8).prop_map(|(n, t)| Op::AddColumn(n, t)),
        (0..4u8).prop_map(Op::DropColumn),
        Just(Op::DropTable),
        (0..4u8).prop_map(Op::CreateTable),
        Just(Op::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of DDL: after every step the tracker's schema is the
    /// model's, and a save/restore changes nothing.
    #[test]
    fn random_ddl_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        let mut run = Run::new();
        let mut next_id = 10u8;
        let mut ts = 1_000_000i64;
        run.create_table(Table::builder(KS, "t").id(id(next_id)).partition_key("k", CqlType::Int).build().unwrap(), ts);
        for op in ops {
            ts += 1_000_000;
            let exists = run.model.table(KS, "t").is_some();
            match op {
                Op::AddColumn(n, t) if exists => {
                    let name = NAMES[n as usize];
                    let table = run.table("t");
                    let previous = table.dropped.iter().find(|d| d.name == name).map(|d| d.ty.clone());
                    // Cassandra refuses a re-added column of another type.
                    let ty = previous.unwrap_or_else(|| ty(t));
                    if table.column(name).is_none() {
                        run.alter("t", ts, |t| t.add_column(name, ty, false).unwrap());
                    }
                }
                Op::DropColumn(n) if exists => {
                    let name = NAMES[n as usize];
                    if run.table("t").column(name).is_some() {
                        run.alter("t", ts, |t| t.drop_column(name, ts).unwrap());
                    }
                }
                Op::DropTable if exists => run.drop_table("t", ts),
                Op::CreateTable(n) if !exists => {
                    next_id += 1;
                    let mut b = Table::builder(KS, "t").id(id(next_id)).partition_key("k", CqlType::Int);
                    if n > 0 {
                        b = b.regular(NAMES[n as usize], ty(n));
                    }
                    run.create_table(b.build().unwrap(), ts);
                }
                Op::Truncate if exists => {
                    let t = run.table("t");
                    let m = run.ddl.truncate(t.id, 7, 10, ts / 1000, ts);
                    let events = run.feed(&m);
                    prop_assert!(matches!(&events[..], [SchemaEvent::Truncated(tr)] if tr.table_id == t.id));
                }
                _ => {}
            }
            run.check();
        }
        let restored = SchemaTracker::restore(&run.tracker.save()).unwrap();
        prop_assert_eq!(restored.schema().version(), run.tracker.schema().version());
        let _ = Arc::clone(restored.schema());
        let dropped: Vec<DroppedColumn> =
            run.tracker.schema().tables().filter(|t| t.keyspace == KS).flat_map(|t| t.dropped.clone()).collect();
        prop_assert!(dropped.iter().all(|d| d.dropped_at % 1000 == 0));
    }
}
