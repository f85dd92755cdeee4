//! Conformance: rebuild every table of every corpus capture from the
//! decoded mutations alone (with Cassandra's reconciliation rules, in
//! `common::materialize`) and compare with the rows Cassandra's own
//! `SELECT *` returned (`final_state.select_json.jsonl`): every table, every
//! row, every value. Both phases: the live capture read up to its
//! `_cdc.idx` offsets against the state after phase 1, and the capture
//! after shutdown against the state after phase 2.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{ReadOptions, Segment, SegmentName};
use common::materialize::Materializer;
use common::{corpus, options_for, segment_files};
use serde_json::Value;

/// Decodes a cdc_raw folder as a CDC reader does (each segment up to its
/// idx offset, segments without an idx skipped) and materializes it.
/// Returns the materializer and (entries decoded, entries of unknown tables).
fn materialize(dir: &Path, schema: &Schema, opts: &ReadOptions) -> (Materializer, u64, u64) {
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
            match decoder.decode(entry.mutation, schema, ctx) {
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

fn check(capture: &Path, folder: &str, schema_dir: &str, phase: &str) -> usize {
    let corpus = capture.parent().unwrap();
    let cname = capture.file_name().unwrap().to_str().unwrap();
    let schema =
        Schema::parse(&std::fs::read_to_string(capture.join(schema_dir).join("schema_internals.cql")).unwrap())
            .unwrap();
    let (m, decoded, unknown) = materialize(&capture.join(folder), &schema, &options_for(corpus, cname));
    assert!(decoded > 1000 && unknown > 0, "{cname}/{folder}: {decoded} decoded, {unknown} unknown");
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
    let ks = schema.keyspaces()[0].clone();
    let mut rows_compared = 0;
    for t in schema.tables() {
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

fn captures() -> Vec<std::path::PathBuf> {
    let Some(corpus) = corpus() else { return Vec::new() };
    let mut out: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("schema_after_phase2/final_state.jsonl").is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_capture_after_shutdown_rebuilds_cassandras_final_state() {
    let caps = captures();
    if caps.is_empty() {
        return;
    }
    assert_eq!(caps.len(), 5);
    for capture in caps {
        let rows = check(&capture, "cdc_raw_after_shutdown", "schema_after_phase2", "phase2");
        assert!(rows >= 10, "{}", capture.display());
    }
}

#[test]
fn every_live_capture_read_to_its_idx_rebuilds_the_phase1_state() {
    for capture in captures() {
        let rows = check(&capture, "cdc_raw_live", "schema_after_phase1", "phase1");
        assert!(rows >= 10, "{}", capture.display());
    }
}
