//! Runs the examples as a user would and checks what they print.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{CAPTURES, corpus, corpus_keys, example, reference_counts, segment_dirs};
use serde_json::Value;

/// Runs an example; its stdout's JSON lines and its exit status.
fn run_json(name: &str, args: &[String]) -> (Vec<Value>, i32) {
    let out = Command::new(example(name)).args(args).output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, out.status.code().unwrap_or(-1))
}

fn run_segments(args: &[String]) -> (Vec<Value>, i32) {
    run_json("segments", args)
}

fn key_args(corpus: &Path) -> Vec<String> {
    corpus_keys(corpus)
        .into_iter()
        .filter(|(folder, ..)| folder == "cassandra-4.0.0-encrypted")
        .flat_map(|(_, alias, key)| {
            ["--key".to_owned(), format!("{alias}={}", key.iter().map(|b| format!("{b:02x}")).collect::<String>())]
        })
        .collect()
}

#[test]
fn segments_over_every_cdc_raw_folder_prints_the_reference_counts() {
    let Some(corpus) = corpus() else { return };
    let reference = reference_counts(&corpus);
    let dirs: Vec<PathBuf> = segment_dirs(&corpus)
        .into_iter()
        .filter(|d| d.file_name().unwrap().to_string_lossy().starts_with("cdc_raw"))
        .collect();
    assert_eq!(dirs.len(), 12, "10 capture folders and 2 benchmark folders");
    let mut args = key_args(&corpus);
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    let (lines, status) = run_segments(&args);
    assert_eq!(status, 0);
    let mut compared = 0;
    for line in &lines {
        assert!(line.get("error").is_none(), "{line}");
        assert_eq!(line["bad_entries"], 0);
        assert_eq!(line["tail"], "clean");
        if !line["idx"].is_null() {
            assert_eq!(line["end"], line["idx"]["offset"], "{line}");
        }
        let file = Path::new(line["file"].as_str().unwrap());
        let folder = file.parent().unwrap().strip_prefix(&corpus).unwrap().to_string_lossy().replace('\\', "/");
        let name = file.file_name().unwrap().to_str().unwrap();
        if let Some(r) = reference.iter().find(|r| r["folder"] == folder.as_str() && r["file"] == name) {
            for (field, reference_field) in
                [("sections", "sections"), ("entries", "entries"), ("end", "logical_end"), ("segment_id", "segment_id")]
            {
                assert_eq!(line[field], r[reference_field], "{field} of {folder}/{name}");
            }
            assert_eq!(line["idx"], r["idx"]);
            assert_eq!(line["version"], r["descriptor"]);
            compared += 1;
        }
    }
    assert_eq!(lines.len(), 5 * 17 + 5);
    // The reference covers the benchmark segments too.
    assert_eq!(compared, lines.len(), "every segment is in the reference");
}

#[test]
fn segments_over_legacy_2x_folders_names_the_version_and_exits_0() {
    let Some(corpus) = corpus() else { return };
    let legacy = corpus.join("legacy");
    let folders =
        ["2.0", "2.1", "2.2", "2.2-lz4", "2.2-snappy", "2.2-lz4-bitrot", "2.2-lz4-bitrot2", "2.2-lz4-truncated"];
    let args: Vec<String> = folders.iter().map(|f| legacy.join(f).display().to_string()).collect();
    let (lines, status) = run_segments(&args);
    assert_eq!(status, 0);
    assert_eq!(lines.len(), 15);
    for line in lines {
        let version = line["version"].as_i64().unwrap();
        assert!((3..=5).contains(&version), "{line}");
        let err = line["error"].as_str().unwrap_or_else(|| panic!("no error: {line}"));
        assert!(err.contains(&format!("unsupported descriptor version {version}")), "{err}");
        assert!(line["entries"].is_null());
    }
}

#[test]
fn segments_on_the_testdata_matches_its_readme() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let args =
        vec!["--key".into(), "testdata:1=000102030405060708090a0b0c0d0e0f".into(), testdata.display().to_string()];
    let (lines, status) = run_segments(&args);
    assert_eq!(status, 0);
    assert_eq!(lines.len(), 11);
    let truncated = lines.iter().find(|l| l["segment_id"] == 1007).unwrap();
    assert_eq!(truncated["tail"], "truncated");
    let bad = lines.iter().find(|l| l["segment_id"] == 1008).unwrap();
    assert_eq!((bad["entries"].as_u64(), bad["bad_entries"].as_u64()), (Some(4), Some(1)));
    // The second entry: header 20, marker 8, then the first entry (12 bytes of
    // framing around "entry 0: " + one 45-byte sentence).
    assert_eq!(bad["losses"][0]["start"], 20 + 8 + 12 + (9 + 45));
}

fn run_dump(args: &[String]) -> (Vec<Value>, i32) {
    run_json("dump", args)
}

#[test]
fn dump_on_the_testdata_cdc_raw() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let schema = testdata.join("cdc_schema.cql").display().to_string();
    let dir = testdata.join("cdc_raw").display().to_string();
    let (lines, status) = run_dump(&["--schema".into(), schema.clone(), "--cdc".into(), dir.clone()]);
    assert_eq!(status, 0);
    assert_eq!(lines.len(), 8, "mutations 1-8 of testdata/README.md; 9 is past the idx offset");
    let ids: Vec<i64> = lines.iter().map(|l| l["segment_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [2000, 2000, 2000, 2000, 2000, 2001, 2001, 2001]);
    assert!(lines.iter().all(|l| l.get("error").is_none() && l["keyspace"] == "shop"));
    // Mutation 1: the dropped column's cell, the decimal, the UDT fields.
    let cells = &lines[0]["updates"][0]["rows"][0]["cells"];
    assert_eq!(cells["note"]["dropped"], true);
    // The decimal is an exact number token (parsing it back would lose the 0).
    assert_eq!(cells["total"]["value"], 12.5);
    let raw = Command::new(example("dump")).args(["--schema", &schema, "--cdc", &dir]).output().unwrap().stdout;
    let first_line = String::from_utf8(raw).unwrap().lines().next().unwrap().to_owned();
    assert!(first_line.contains(r#""total":{"timestamp":1700000000000001,"value":12.50}"#), "{first_line}");
    assert_eq!(cells["ship_to"]["cells"][1]["path"], "city");
    assert_eq!(cells["ship_to"]["cells"][1]["value"], "Oslo");
    // Mutation 2: the static row comes first.
    assert_eq!(lines[1]["updates"][0]["rows"][0]["static"], true);
    assert_eq!(lines[1]["updates"][0]["partition_key"]["day"], "2023-11-14");
    // Mutation 5: the counter's total; mutation 7: the partition deletion.
    assert_eq!(lines[4]["updates"][0]["rows"][0]["cells"]["units"]["value"], 5);
    assert_eq!(lines[6]["updates"][0]["partition_deletion"]["timestamp"], 1_700_000_000_000_007i64);
    // Without --cdc the whole segments are read, mutation 9 included.
    let (all, status) = run_dump(&["--schema".into(), schema, dir]);
    assert_eq!(status, 0);
    assert_eq!(all.len(), 9);
    assert_eq!(all[8]["updates"][0]["rows"][0]["cells"]["customer"]["value"], "not durable yet");
}

#[test]
fn dump_over_every_capture_has_no_error_on_a_cdc_test_table() {
    let Some(corpus) = corpus() else { return };
    let reference = reference_counts(&corpus);
    for capture in CAPTURES {
        let folder = format!("{capture}/cdc_raw_after_shutdown");
        let schema = corpus.join(capture).join("schema_after_phase2/schema_internals.cql");
        let mut args = key_args(&corpus);
        args.extend(["--schema".into(), schema.display().to_string(), corpus.join(&folder).display().to_string()]);
        let (lines, status) = run_dump(&args);
        assert_eq!(status, 0, "{capture}");
        let entries: u64 =
            reference.iter().filter(|r| r["folder"] == folder.as_str()).map(|r| r["entries"].as_u64().unwrap()).sum();
        assert_eq!(lines.len() as u64, entries, "{capture}: one line per entry");
        let mut last = (i64::MIN, 0u64);
        for l in &lines {
            let at = (l["segment_id"].as_i64().unwrap(), l["position"].as_u64().unwrap());
            assert!(at > last, "segment-id then position order");
            last = at;
            if l["keyspace"] == "cdc_test" {
                assert!(l.get("error").is_none(), "{capture}: {l}");
            } else if let Some(e) = l.get("error") {
                assert!(e.as_str().unwrap().contains("unknown table id"), "{capture}: {l}");
                assert!(l["keyspace"].is_null());
            }
        }
        assert!(lines.iter().filter(|l| l["keyspace"] == "cdc_test").count() > 1500, "{capture}");
    }
}

/// With the schema from the log, no line of any capture is an error, in
/// both directories, read whole or (`--cdc`) up to each idx: every system
/// entry decodes too, and the truncation Cassandra makes at start-up comes
/// out as an event.
#[test]
fn dump_with_the_schema_from_the_log_prints_no_error_on_any_capture() {
    let Some(corpus) = corpus() else { return };
    for capture in CAPTURES {
        for dir in ["cdc_raw_after_shutdown", "cdc_raw_live"] {
            for cdc in [false, true] {
                let mut args = key_args(&corpus);
                args.push("--schema-from-log".into());
                if cdc {
                    args.push("--cdc".into());
                }
                args.push(corpus.join(capture).join(dir).display().to_string());
                let (lines, status) = run_dump(&args);
                assert_eq!(status, 0, "{capture}/{dir}");
                let errors: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
                assert!(errors.is_empty(), "{capture}/{dir} --cdc {cdc}: {errors:?}");
                let changes = lines.iter().filter(|l| l.get("schema_change").is_some()).count();
                let truncates = lines.iter().filter(|l| l.get("truncate").is_some()).count();
                let ddl = if dir == "cdc_raw_live" { 9 } else { 10 };
                assert_eq!(changes, ddl, "{capture}/{dir}: the two CREATE TYPEs, seven CREATE TABLEs, ALTER");
                // 4.0.0 truncates system.size_estimates at start-up; 4.0-alpha4 did not.
                if capture != "cassandra-4.0-alpha4" {
                    assert!(truncates >= 1, "{capture}/{dir}: no truncation");
                }
                assert!(lines.iter().filter(|l| l["keyspace"] == "cdc_test").count() > 1500);
            }
        }
    }
}

#[test]
fn decode_stats_on_the_testdata_cdc_raw() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let out = Command::new(example("decode_stats"))
        .arg("--schema")
        .arg(testdata.join("cdc_schema.cql"))
        .arg(testdata.join("cdc_raw/CommitLog-7-2000.log"))
        .arg(testdata.join("cdc_raw/CommitLog-7-2001.log"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Nine mutations (testdata/README.md). Cells: mutation 1 has 3 simple
    // cells, 2 list elements, 1 set element, 2 UDT fields and the dropped
    // note (9); 2 has site and value (2); 3 a value (1); 4 two set elements
    // (2); 5 the counter (1); 8 and 9 a customer each (1 + 1).
    assert_eq!(
        (v["entries"].as_u64(), v["mutations"].as_u64(), v["undecodable"].as_u64()),
        (Some(9), Some(9), Some(0))
    );
    assert_eq!(v["cells"], 9 + 2 + 1 + 2 + 1 + 1 + 1);
    assert_eq!(v["invalid_values"], 0);
}
