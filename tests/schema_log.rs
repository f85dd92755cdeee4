//! The schema the log builds, on Cassandra's own files: for every capture,
//! decoding with no schema file gives, for every `cdc_test` entry, exactly
//! the change stream the shipped `schema_internals.cql` gives; every entry
//! decodes (Cassandra's own tables are built in); the schema rebuilt at the
//! end of each directory equals what Cassandra reported
//! (`schema_after_phase*/{table_ids,columns,types,dropped_columns}.json`);
//! a bootstrap schema plus the log gives the same as the log alone; and a
//! tracker saved and restored at any point goes on exactly as before.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::{ColumnKind, Order, Release, Schema, SchemaEvent, SchemaTracker};
use cassandra_commitlog::segment::{ReadOptions, Segment, SegmentName};
use common::{captures, corpus, options_for, segment_files};
use serde_json::Value;

/// One decoded entry: its change-format line, and whether it is `cdc_test`'s.
struct Line {
    text: String,
    cdc_test: bool,
}

/// Every entry of a cdc_raw folder read as a CDC reader does, decoded with
/// a fixed schema; `None` entries are those of unknown tables.
fn with_file(dir: &Path, schema: &Schema, opts: &ReadOptions) -> Vec<Line> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    each_entry(dir, opts, |bytes, ctx| {
        let (text, ks) = match decoder.decode(bytes, schema, ctx) {
            Ok(m) => (serde_json::to_string(&m).unwrap(), m.keyspace().map(str::to_owned)),
            Err(u) => (serde_json::to_string(&u).unwrap(), None),
        };
        out.push(Line { text, cdc_test: ks.as_deref() == Some("cdc_test") });
    });
    out
}

/// The same with a tracker; every entry must decode, every schema mutation
/// apply. Also saves and restores the tracker after every schema change and
/// checks that the restored one has the same schema.
fn with_log(dir: &Path, tracker: &mut SchemaTracker, opts: &ReadOptions) -> (Vec<Line>, usize) {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut changes = 0;
    each_entry(dir, opts, |bytes, ctx| {
        let tracked = tracker.decode(&mut decoder, bytes, ctx);
        let m = match &tracked.decoded {
            Ok(m) => *m,
            Err(u) => panic!("{}: every entry decodes with the schema from the log: {}", dir.display(), u.error),
        };
        out.push(Line { text: serde_json::to_string(&m).unwrap(), cdc_test: m.keyspace() == Some("cdc_test") });
        let mut changed = false;
        for e in &tracked.events {
            match e {
                SchemaEvent::NotApplied(e) => panic!("{e}"),
                SchemaEvent::Changed(_) => changed = true,
                _ => {}
            }
        }
        if changed {
            changes += 1;
            let restored = SchemaTracker::restore(&tracker.save()).unwrap();
            same_schema(restored.schema(), tracker.schema(), "restored tracker");
            assert_eq!(restored.schema().version(), tracker.schema().version());
        }
    });
    (out, changes)
}

fn each_entry(dir: &Path, opts: &ReadOptions, mut f: impl FnMut(&[u8], Context)) {
    for file in segment_files(dir) {
        let name = SegmentName::from_path(&file).unwrap();
        let IdxState::Ready(idx) = read_cdc_index(&file.with_file_name(name.cdc_index_file_name())).unwrap() else {
            continue;
        };
        let seg = Segment::open(&file).unwrap();
        let mut reader = seg.reader(&opts.clone().limit(idx.offset).strict(true)).unwrap();
        while let Some(entry) = reader.next_entry().unwrap() {
            f(entry.mutation, Context::of_entry(&entry, seg.descriptor(), None));
        }
    }
}

/// Two schemas have the same live tables (ids, columns with types and
/// kinds, dropped columns) and user types, whatever their order.
fn same_schema(a: &Schema, b: &Schema, what: &str) {
    same_in(a, b, None, what)
}

/// The same, in one keyspace or in all.
fn same_in(a: &Schema, b: &Schema, keyspace: Option<&str>, what: &str) {
    let tables = |s: &Schema| -> BTreeSet<String> {
        s.tables()
            .filter(|t| keyspace.is_none_or(|k| t.keyspace == k))
            .map(|t| {
                let mut cols: Vec<_> = t.columns.iter().map(|c| format!("{} {} {:?}", c.name, c.ty, c.kind)).collect();
                cols.sort();
                let mut dropped: Vec<_> = t.dropped.iter().map(|d| format!("{d:?}")).collect();
                dropped.sort();
                format!("{}.{} {} {cols:?} {dropped:?}", t.keyspace, t.name, t.id)
            })
            .collect()
    };
    let types = |s: &Schema| -> BTreeSet<String> {
        s.user_types().filter(|t| keyspace.is_none_or(|k| t.keyspace == k)).map(|t| format!("{t:?}")).collect()
    };
    assert_eq!(tables(a), tables(b), "{what}: tables");
    assert_eq!(types(a), types(b), "{what}: types");
}

/// The schema equals what Cassandra reported in `schema_after_phaseN`.
fn matches_cassandras_report(schema: &Schema, report: &Path) {
    let load = |f: &str| -> Vec<Value> { serde_json::from_slice(&std::fs::read(report.join(f)).unwrap()).unwrap() };
    let ks = "cdc_test";
    let ids: BTreeSet<(String, String)> = load("table_ids.json")
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_owned(), t["id"].as_str().unwrap().to_owned()))
        .collect();
    let ours: BTreeSet<(String, String)> =
        schema.tables().filter(|t| t.keyspace == ks).map(|t| (t.name.clone(), t.id.to_string())).collect();
    assert_eq!(ours, ids, "{}: table ids", report.display());
    let columns: BTreeSet<String> = load("columns.json")
        .iter()
        .map(|c| {
            format!(
                "{}.{} {} {} {} {}",
                c["table"].as_str().unwrap(),
                c["column"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["position"],
                c["type"].as_str().unwrap(),
                c["clustering_order"].as_str().unwrap()
            )
        })
        .collect();
    let mut ours = BTreeSet::new();
    for t in schema.tables().filter(|t| t.keyspace == ks) {
        let pk: Vec<_> = t.partition_key().map(|c| c.name.clone()).collect();
        let ck: Vec<_> = t.clustering().map(|c| c.name.clone()).collect();
        for c in &t.columns {
            let (kind, position, order) = match c.kind {
                ColumnKind::PartitionKey => {
                    ("partition_key", pk.iter().position(|n| *n == c.name).unwrap() as i64, "none")
                }
                ColumnKind::Clustering(o) => (
                    "clustering",
                    ck.iter().position(|n| *n == c.name).unwrap() as i64,
                    if o == Order::Desc { "desc" } else { "asc" },
                ),
                ColumnKind::Static => ("static", -1, "none"),
                ColumnKind::Regular => ("regular", -1, "none"),
            };
            ours.insert(format!("{}.{} {kind} {position} {} {order}", t.name, c.name, c.ty));
        }
    }
    assert_eq!(ours, columns, "{}: columns", report.display());
    let types: BTreeSet<String> = load("types.json")
        .iter()
        .map(|t| format!("{} {} {}", t["type"].as_str().unwrap(), t["field_names"], t["field_types"]))
        .collect();
    let ours: BTreeSet<String> = schema
        .user_types()
        .filter(|t| t.keyspace == ks)
        .map(|t| {
            let names: Vec<_> = t.fields.iter().map(|(n, _)| n.clone()).collect();
            let types: Vec<_> = t.fields.iter().map(|(_, ty)| ty.to_string()).collect();
            format!("{} {} {}", t.name, serde_json::json!(names), serde_json::json!(types))
        })
        .collect();
    assert_eq!(ours, types, "{}: types", report.display());
    let dropped: BTreeSet<String> = load("dropped_columns.json")
        .iter()
        .map(|d| format!("{}.{} {}", d["table_name"], d["column_name"], d["dropped_time"]))
        .collect();
    let ours: BTreeSet<String> = schema
        .tables()
        .filter(|t| t.keyspace == ks)
        .flat_map(|t| t.dropped.iter().map(move |d| format!("\"{}\".\"{}\" {}", t.name, d.name, d.dropped_at / 1000)))
        .collect();
    assert_eq!(ours, dropped, "{}: dropped columns", report.display());
}

#[test]
fn the_log_alone_gives_the_change_stream_and_the_schema_cassandra_reported() {
    let caps = captures();
    if caps.is_empty() {
        return;
    }
    assert_eq!(caps.len(), 5);
    for capture in caps {
        let corpus = capture.parent().unwrap();
        let cname = capture.file_name().unwrap().to_str().unwrap();
        let opts = options_for(corpus, cname);
        for (folder, report) in
            [("cdc_raw_after_shutdown", "schema_after_phase2"), ("cdc_raw_live", "schema_after_phase1")]
        {
            let dir = capture.join(folder);
            let cql = std::fs::read_to_string(capture.join(report).join("schema_internals.cql")).unwrap();
            let file_schema = Schema::parse(&cql).unwrap();
            let fixed = with_file(&dir, &file_schema, &opts);
            let mut tracker = SchemaTracker::new(Release::Cassandra4);
            let (logged, changes) = with_log(&dir, &mut tracker, &opts);
            // The two CREATE TYPEs and seven CREATE TABLEs, and in phase 2 the ALTER ... ADD.
            let ddl = if folder == "cdc_raw_live" { 9 } else { 10 };
            assert_eq!(changes, ddl, "{cname}/{folder}: schema changes");
            assert_eq!(fixed.len(), logged.len());
            let mut compared = 0;
            for (f, l) in fixed.iter().zip(&logged) {
                if f.cdc_test {
                    assert!(l.cdc_test);
                    assert_eq!(f.text, l.text, "{cname}/{folder}");
                    compared += 1;
                }
            }
            assert!(compared > 1000, "{cname}/{folder}: {compared} cdc_test entries");
            matches_cassandras_report(tracker.schema(), &capture.join(report));
            same_in(tracker.schema(), &file_schema, Some("cdc_test"), &format!("{cname}/{folder}: log vs schema file"));

            // A bootstrap schema plus the log: the same stream, the same schema.
            let mut boot = SchemaTracker::with_bootstrap(Release::Cassandra4, &file_schema);
            let (booted, _) = with_log(&dir, &mut boot, &opts);
            assert_eq!(booted.len(), logged.len());
            for (b, l) in booted.iter().zip(&logged) {
                assert_eq!(b.text, l.text, "{cname}/{folder}: bootstrap + log vs log alone");
            }
            same_schema(boot.schema(), tracker.schema(), &format!("{cname}/{folder}: bootstrap + log vs log"));
        }
    }
}

/// The phase-1 live capture with the phase-2 schema file as a bootstrap:
/// the column the log has not yet added is known from the start, and every
/// line is still what the log alone gives (no data names that column).
#[test]
fn a_bootstrap_from_after_the_log_changes_no_line() {
    let Some(corpus) = corpus() else { return };
    let capture = corpus.join("cassandra-4.0.0");
    let opts = options_for(&corpus, "cassandra-4.0.0");
    let dir = capture.join("cdc_raw_live");
    let cql = std::fs::read_to_string(capture.join("schema_after_phase2/schema_internals.cql")).unwrap();
    let later = Schema::parse(&cql).unwrap();
    let (alone, _) = with_log(&dir, &mut SchemaTracker::new(Release::Cassandra4), &opts);
    let mut boot = SchemaTracker::with_bootstrap(Release::Cassandra4, &later);
    let (booted, _) = with_log(&dir, &mut boot, &opts);
    assert_eq!(alone.len(), booted.len());
    for (a, b) in alone.iter().zip(&booted) {
        assert_eq!(a.text, b.text);
    }
    // The bootstrap's later column stays: the log never dropped it.
    assert!(boot.schema().table("cdc_test", "scalars").unwrap().column("c_added").is_some());
}
