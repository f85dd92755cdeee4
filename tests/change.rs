//! The kind of change, the primary key and the merged columns, checked
//! against what Cassandra was asked to do: every statement of the corpus's
//! `expected.jsonl` (with its explicit `USING TIMESTAMP`) is classified from
//! its CQL text here, and the changes the log holds at that timestamp must
//! be of that kind; merged collection values are checked against the
//! statements' own literals.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::mutation::{Change, ChangeKind, Context, Decoder, Merged};
use cassandra_commitlog::schema::{Release, SchemaTracker};
use cassandra_commitlog::segment::{Segment, SegmentName};
use common::cql::expected_kind;
use common::{captures, corpus, options_for, segment_files};
use serde_json::Value as Json;

fn kind_name(c: &Change<'_>) -> &'static str {
    match c {
        Change::PartitionDelete(_) => "partition_delete",
        Change::Row { kind, .. } => kind.name(),
        Change::RangeDelete(_) => "range_delete",
        _ => "other",
    }
}

/// The timestamps a change carries.
fn timestamps(c: &Change<'_>) -> Vec<i64> {
    match c {
        Change::PartitionDelete(d) => vec![d.timestamp],
        Change::RangeDelete(rt) => rt.deletion().map(|d| d.timestamp).into_iter().collect(),
        Change::Row { row, .. } => {
            let mut ts: Vec<i64> = row.liveness().map(|l| l.timestamp).into_iter().collect();
            ts.extend(row.deletion().map(|d| d.time.timestamp));
            for col in row.columns() {
                ts.extend(col.cells().map(|c| c.timestamp()));
                ts.extend(col.complex_deletion().map(|d| d.timestamp));
            }
            ts
        }
        _ => vec![],
    }
}

#[test]
fn every_statement_of_the_corpus_gets_the_kind_its_cql_says() {
    let Some(corpus) = corpus() else { return };
    let clustering: BTreeMap<&str, &[&str]> = [("clustered", &["ck1", "ck2"][..]), ("bulk", &["ck"][..])].into();
    let mut checked_kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    for capture in captures() {
        let name = capture.file_name().unwrap().to_str().unwrap();
        let opts = options_for(&corpus, name);
        // Every change of cdc_test by timestamp.
        let mut by_ts: BTreeMap<i64, BTreeSet<&'static str>> = BTreeMap::new();
        let mut tracker = SchemaTracker::new(Release::Cassandra4);
        let mut decoder = Decoder::new();
        let mut merged_checks = 0;
        for file in segment_files(&capture.join("cdc_raw_after_shutdown")) {
            let n = SegmentName::from_path(&file).unwrap();
            let IdxState::Ready(idx) = read_cdc_index(&file.with_file_name(n.cdc_index_file_name())).unwrap() else {
                continue;
            };
            let seg = Segment::open(&file).unwrap();
            let mut reader = seg.reader(&opts.clone().limit(idx.offset)).unwrap();
            while let Some(e) = reader.next_entry().unwrap() {
                let ctx = Context::of_entry(&e, seg.descriptor(), None);
                let tracked = tracker.decode(&mut decoder, e.mutation, ctx);
                let m = tracked.decoded.unwrap();
                if m.keyspace() != Some("cdc_test") {
                    continue;
                }
                for u in m.updates() {
                    for c in u.changes() {
                        // The statement's own timestamp, or one below it (a
                        // collection overwrite's complex deletion).
                        if let Some(ts) = timestamps(&c).into_iter().max() {
                            by_ts.entry(ts).or_default().insert(kind_name(&c));
                        }
                        if let Change::Row { row, .. } = c {
                            // Every row has a whole, typed primary key.
                            let key = row.primary_key().unwrap();
                            assert_eq!(key.partition.len(), u.table().partition_key_len());
                            let json: Json = serde_json::from_str(&key.to_json().unwrap()).unwrap();
                            assert_eq!(json.as_object().unwrap().len(), key.partition.len() + key.clustering.len());
                            merged_checks += check_merged(&row);
                        }
                    }
                }
            }
        }
        assert_eq!(merged_checks, 5, "{name}: the collection statements checked");
        let text = std::fs::read_to_string(capture.join("expected.jsonl")).unwrap();
        for line in text.lines() {
            let s: Json = serde_json::from_str(line).unwrap();
            let (Some(ts), Some(cql)) = (s["timestamp_us"].as_i64(), s["cql_as_sent"].as_str()) else { continue };
            if s["kind"] == "batch" {
                // The kinds of the batch's statements.
                let body = cql.split_once('\n').map_or(cql, |(_, b)| b);
                let want: BTreeSet<&str> =
                    body.split(';').map(str::trim).filter_map(|stmt| expected_kind(stmt, &clustering)).collect();
                assert_eq!(by_ts.get(&ts).cloned().unwrap_or_default(), want, "{name}: {cql}");
                continue;
            }
            let Some(kind) = expected_kind(cql, &clustering) else { continue };
            if s["kind"] == "ddl" || s["phase"] == "phase2" && cql.contains("no_cdc") {
                continue;
            }
            let got = by_ts.get(&ts).cloned().unwrap_or_default();
            assert_eq!(got, BTreeSet::from([kind]), "{name}: {cql}");
            *checked_kinds.entry(kind).or_default() += 1;
        }
    }
    // Every kind is met in the corpus, in every capture.
    for kind in ["insert", "update", "delete", "partition_delete", "range_delete"] {
        assert!(checked_kinds.get(kind).copied().unwrap_or(0) >= 5, "{kind}: {checked_kinds:?}");
    }
}

/// The merged values of the collection statements, from their CQL literals.
fn check_merged(row: &cassandra_commitlog::mutation::Row<'_>) -> usize {
    let ts = row.columns().flat_map(|c| c.cells().map(|c| c.timestamp()).collect::<Vec<_>>()).max();
    let want: &[(&str, bool, &str)] = match ts {
        // SET l = l + [4, 5]: two elements appended.
        Some(1_700_000_000_000_021) => &[("l", false, "[4,5]")],
        // SET s = s + {'c'}, s = s - {'a'}: 'c' added ('a' is a tombstone below).
        Some(1_700_000_000_000_023) => &[("s", false, r#"["c"]"#)],
        // SET m['k3'] = 3, m['k1'] = 100: two entries put (in key order).
        Some(1_700_000_000_000_024) => &[("m", false, r#"{"k1":100,"k3":3}"#)],
        // SET udt.city = 'Capital City', udt.zip = null: one live field.
        Some(1_700_000_000_000_028) => &[("udt", false, r#"{"city":"Capital City"}"#)],
        // SET s = {'only'}: the whole set replaced.
        Some(1_700_000_000_000_029) => &[("s", true, r#"["only"]"#)],
        _ => return 0,
    };
    for (name, complete, json) in want {
        let col = row.columns().find(|c| c.name() == *name).unwrap();
        let merged = col.merged().unwrap();
        assert!(matches!(merged, Merged::Collection { complete: c, .. } if c == *complete), "{name}: {merged:?}");
        assert_eq!(merged.to_json().unwrap(), *json, "{name}");
    }
    1
}

/// The kinds on the builder's rows: a row deletion written with a newer
/// row marker is an insert, with an older one a delete.
#[test]
fn a_delete_and_an_insert_in_one_batch_is_an_insert() {
    use cassandra_commitlog::builder::{
        CellKind, CellSpec, ColumnSpec, RowSpec, Unfiltered, UpdateSpec, encode_mutation,
    };
    use cassandra_commitlog::mutation::{DeletionTime, Liveness};
    use cassandra_commitlog::schema::{CqlType, Order, Schema, Table};
    let t = Table::builder("ks", "t")
        .id("3a3b9380-e732-11f1-a7c5-e72bb5e4b197".parse().unwrap())
        .partition_key("k", CqlType::Int)
        .clustering("c", CqlType::Int, Order::Asc)
        .regular("v", CqlType::Int)
        .build()
        .unwrap();
    let mut schema = Schema::new();
    schema.add_table(t.clone());
    let row = |deleted: Option<i64>, marker: Option<i64>, cell: Option<i64>| RowSpec {
        clustering: vec![Some(1i32.to_be_bytes().to_vec())],
        liveness: marker.map(|timestamp| Liveness { timestamp, expiry: None }),
        deletion: deleted.map(|timestamp| (DeletionTime { timestamp, local_deletion_time: 1 }, false)),
        columns: cell
            .map(|timestamp| {
                (
                    "v".to_owned(),
                    ColumnSpec::Simple(CellSpec {
                        timestamp,
                        kind: CellKind::Live,
                        path: None,
                        value: vec![0, 0, 0, 1],
                    }),
                )
            })
            .into_iter()
            .collect(),
    };
    for (spec, want) in [
        (row(Some(10), Some(11), Some(11)), ChangeKind::Insert),
        (row(Some(10), None, Some(11)), ChangeKind::Update),
        (row(Some(10), Some(9), None), ChangeKind::Delete),
        (row(Some(10), None, None), ChangeKind::Delete),
        (row(None, None, Some(5)), ChangeKind::Update),
    ] {
        let u = UpdateSpec {
            table_id: t.id,
            key: 7i32.to_be_bytes().to_vec(),
            deletion: None,
            static_row: None,
            unfiltereds: vec![Unfiltered::Row(spec)],
        };
        let bytes = encode_mutation(&[(&t, &u)], false);
        let mut d = Decoder::new();
        let m = d.decode(&bytes, &schema, Context::default()).unwrap();
        let row = m.updates().next().unwrap().rows().next().unwrap();
        assert_eq!(row.kind(), want);
        assert_eq!(row.primary_key().unwrap().to_json().unwrap(), r#"{"k":7,"c":1}"#);
    }
}

/// A collection replaced by an empty one (`SET m = {}`, `SET l = []`) is a
/// complex deletion with no element: the JSON shape still follows the
/// column's type, an object for a map, an array for a list.
#[test]
fn an_emptied_collection_renders_in_its_own_shape() {
    use cassandra_commitlog::builder::{ColumnSpec, RowSpec, Unfiltered, UpdateSpec, encode_mutation};
    use cassandra_commitlog::mutation::{CollectionKind, DeletionTime};
    use cassandra_commitlog::schema::{CqlType, Schema, Table};
    let text = || Box::new(CqlType::Text);
    let t = Table::builder("ks", "c")
        .id("3a3b9380-e732-11f1-a7c5-e72bb5e4b198".parse().unwrap())
        .partition_key("k", CqlType::Int)
        .regular("l", CqlType::List { elem: text(), frozen: false })
        .regular("m", CqlType::Map { key: text(), value: text(), frozen: false })
        .build()
        .unwrap();
    let mut schema = Schema::new();
    schema.add_table(t.clone());
    let emptied =
        || ColumnSpec::Complex { deletion: Some(DeletionTime { timestamp: 4, local_deletion_time: 1 }), cells: vec![] };
    let u = UpdateSpec {
        table_id: t.id,
        key: 7i32.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(RowSpec {
            columns: vec![("l".to_owned(), emptied()), ("m".to_owned(), emptied())],
            ..RowSpec::default()
        })],
    };
    let bytes = encode_mutation(&[(&t, &u)], false);
    let mut d = Decoder::new();
    let m = d.decode(&bytes, &schema, Context::default()).unwrap();
    let row = m.updates().next().unwrap().rows().next().unwrap();
    let got: Vec<_> = row.columns().map(|c| (c.name(), c.merged().unwrap())).collect();
    assert_eq!(got.len(), 2);
    for ((name, merged), (want_kind, want_json)) in
        got.iter().zip([(CollectionKind::List, "[]"), (CollectionKind::Map, "{}")])
    {
        assert!(
            matches!(merged, Merged::Collection { kind, complete: true, elements } if *kind == want_kind && elements.is_empty()),
            "{name}: {merged:?}"
        );
        assert_eq!(merged.to_json().unwrap(), want_json, "{name}");
    }
}
