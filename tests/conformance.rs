//! Conformance: rebuild every table of every corpus capture from the
//! decoded mutations alone (with Cassandra's reconciliation rules, in
//! `common::materialize`) and compare with the rows Cassandra's own
//! `SELECT *` returned (`final_state.select_json.jsonl`): every table, every
//! row, every value. Both phases: the live capture read up to its
//! `_cdc.idx` offsets against the state after phase 1, and the capture
//! after shutdown against the state after phase 2. And the same with no
//! schema file at all: the schema the log's own DDL builds.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::{Release, Schema, SchemaEvent, SchemaTracker};
use cassandra_commitlog::segment::{ReadOptions, Segment, SegmentName};
use common::materialize::Materializer;
use common::{captures, options_for, segment_files};
use serde_json::Value;

/// Where the schema comes from.
enum Source {
    /// The capture's `schema_internals.cql`.
    File(Schema),
    /// The log itself.
    Log(SchemaTracker),
}

/// Decodes a cdc_raw folder as a CDC reader does (each segment up to its
/// idx offset, segments without an idx skipped) and materializes it.
/// Returns the materializer and (entries decoded, entries of unknown tables).
fn materialize(dir: &Path, source: &mut Source, opts: &ReadOptions) -> (Materializer, u64, u64) {
    let mut m = Materializer::default();
    let mut decoder = Decoder::new();
    let (mut decoded, mut unknown) = (0, 0);
    for file in segment_files(dir) {
        let name = SegmentName::from_path(&file).unwrap();
        let IdxState::Ready(idx) = read_cdc_index(&file.with_file_name(name.cdc_index_file_name())).unwrap() else {
            continue;
        };
        let seg = Segment::open(&file).unwrap();
        let mut reader = seg.reader(&opts.clone().limit(idx.offset).strict(true)).unwrap();
        while let Some(entry) = reader.next_entry().unwrap() {
            let ctx = Context::of_entry(&entry, seg.descriptor(), None);
            match source {
                Source::File(schema) => match decoder.decode(entry.mutation, schema, ctx) {
                    Ok(mutation) => {
                        m.apply(&mutation);
                        decoded += 1;
                    }
                    Err(u) if u.error.is_unknown_table() => {
                        // Cassandra's own system tables: no schema for them here.
                        let id = u.error.table_id.unwrap();
                        assert!(schema.table_by_id(&id).is_none());
                        unknown += 1;
                    }
                    Err(u) => panic!("{}: {}", file.display(), u.error),
                },
                Source::Log(tracker) => {
                    let tracked = tracker.decode(&mut decoder, entry.mutation, ctx);
                    match &tracked.decoded {
                        Ok(mutation) => m.apply(mutation),
                        Err(u) => panic!("{}: every entry decodes with the log's schema: {}", file.display(), u.error),
                    }
                    decoded += 1;
                    for e in &tracked.events {
                        match e {
                            SchemaEvent::Truncated(t) => m.truncate(t.table_id),
                            SchemaEvent::NotApplied(e) => panic!("{e}"),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    (m, decoded, unknown)
}

fn canonical(v: &Value) -> String {
    // serde_json's Map is ordered by key: the text is canonical.
    serde_json::to_string(v).unwrap()
}

/// Read time: the last statement of the phase (no TTL had expired when the
/// state was read, so it had not then either).
fn read_time(capture: &Path, phase: &str) -> i64 {
    let text = std::fs::read_to_string(capture.join("expected.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|s| s["phase"] == phase)
        .map(|s| s["wallclock_ms"].as_i64().unwrap() / 1000)
        .max()
        .unwrap()
}

fn check(capture: &Path, folder: &str, schema_dir: &str, phase: &str, from_log: bool) -> usize {
    let corpus = capture.parent().unwrap();
    let cname = capture.file_name().unwrap().to_str().unwrap();
    let file_schema =
        Schema::parse(&std::fs::read_to_string(capture.join(schema_dir).join("schema_internals.cql")).unwrap())
            .unwrap();
    let mut source =
        if from_log { Source::Log(SchemaTracker::new(Release::Cassandra4)) } else { Source::File(file_schema.clone()) };
    let (m, decoded, unknown) = materialize(&capture.join(folder), &mut source, &options_for(corpus, cname));
    let schema = match source {
        Source::File(s) => s,
        Source::Log(t) => {
            // Every entry decodes: Cassandra's own tables are built in.
            assert_eq!(unknown, 0);
            (**t.schema()).clone()
        }
    };
    assert!(decoded > 1000 && (unknown > 0) != from_log, "{cname}/{folder}: {decoded} decoded, {unknown} unknown");
    let now = read_time(capture, phase);
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut expected_rows = 0;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let text = std::fs::read_to_string(capture.join(schema_dir).join("final_state.select_json.jsonl")).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let table = v["table"].as_str().unwrap().to_owned();
        if let Some(n) = v["row_count"].as_u64() {
            counts.insert(table, n);
        } else {
            expected.entry(table).or_default().push(canonical(&v["row"]));
            expected_rows += 1;
        }
    }
    let ks = file_schema.keyspaces()[0].clone();
    let mut rows_compared = 0;
    for t in schema.tables().filter(|t| t.keyspace == ks) {
        let mut got: Vec<String> = m.rows(&schema, &ks, &t.name, now).iter().map(canonical).collect();
        got.sort();
        if let Some(n) = counts.get(&t.name) {
            assert_eq!(got.len() as u64, *n, "{cname}/{folder}: row count of {}", t.name);
            continue;
        }
        let mut want = expected.remove(&t.name).unwrap_or_default();
        want.sort();
        if got != want {
            let only_got: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
            let only_want: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
            panic!("{cname}/{folder}: table {}\nrebuilt only: {only_got:#?}\nCassandra only: {only_want:#?}", t.name);
        }
        rows_compared += got.len();
    }
    assert!(expected.is_empty(), "tables in the final state but not the schema: {:?}", expected.keys());
    assert_eq!(rows_compared, expected_rows);
    assert_eq!(counts.len(), 1, "the bulk table is given as a row count");
    rows_compared
}

#[test]
fn every_capture_after_shutdown_rebuilds_cassandras_final_state() {
    let caps = captures();
    if caps.is_empty() {
        return;
    }
    assert_eq!(caps.len(), 5);
    for capture in caps {
        let rows = check(&capture, "cdc_raw_after_shutdown", "schema_after_phase2", "phase2", false);
        assert!(rows >= 10, "{}", capture.display());
    }
}

#[test]
fn every_capture_rebuilds_cassandras_final_state_with_the_schema_from_the_log() {
    for capture in captures() {
        let a = check(&capture, "cdc_raw_after_shutdown", "schema_after_phase2", "phase2", true);
        let b = check(&capture, "cdc_raw_live", "schema_after_phase1", "phase1", true);
        assert!(a >= 10 && b >= 10, "{}", capture.display());
    }
}

#[test]
fn every_live_capture_read_to_its_idx_rebuilds_the_phase1_state() {
    for capture in captures() {
        let rows = check(&capture, "cdc_raw_live", "schema_after_phase1", "phase1", false);
        assert!(rows >= 10, "{}", capture.display());
    }
}
