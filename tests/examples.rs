//! Runs the examples as a user would and checks what they print.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{CAPTURES, corpus, corpus_keys, example, idx_agrees, reference_counts, segment_dirs};
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
    // 10 capture folders, 2 benchmark folders, 4 copies of each crashed
    // node, 2 of each of the three replicas.
    assert_eq!(dirs.len(), 12 + 8 + 6);
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
            let (end, file_len) = (line["end"].as_u64().unwrap(), line["file_len"].as_u64().unwrap());
            let (offset, completed) = (line["idx"]["offset"].as_u64().unwrap(), line["idx"]["completed"] == true);
            assert!(idx_agrees(end, offset, completed, file_len), "{line}");
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
            assert_eq!(line["file_len"], r["file_len"]);
            assert_eq!(line["version"], r["descriptor"]);
            compared += 1;
        }
    }
    assert_eq!(lines.len(), 5 * 17 + 5 + 11 + 14 + 15);
    // The reference covers the benchmark, crash and replica segments too.
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

/// Runs `sync_sketch` on `dir` with `checkpoint`, exiting after 1 s idle.
fn run_sync_sketch(dir: &Path, checkpoint: &Path) -> String {
    let out = Command::new(example("sync_sketch"))
        .args([dir.as_os_str(), checkpoint.as_os_str(), "1".as_ref()])
        .output()
        .unwrap();
    assert!(out.status.success(), "sync_sketch: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing but batches on a clean capture");
    String::from_utf8(out.stdout).unwrap()
}

/// `sync_sketch` on the unencrypted captures: one record per change the
/// statements of `expected.jsonl` made (kinds read off their CQL), with each
/// table's primary key (read off its `CREATE TABLE`), in log order, the DDL
/// as schema changes; and stopped after the first segment (which holds all
/// the DDL) then run again on the whole directory, it prints exactly the
/// rest: the checkpoint carries the position and the schema.
#[test]
fn sync_sketch_writes_a_record_per_change_and_resumes_from_its_checkpoint() {
    use std::collections::BTreeMap;
    let Some(corpus) = corpus() else { return };
    for folder in ["cassandra-4.0.0", "cassandra-4.0.0-lz4", "cassandra-4.0.0-zstd"] {
        let capture = corpus.join(folder);
        let (want, keys) = common::cql::expected_changes(&capture);

        let tmp = std::env::temp_dir().join(format!("sync-sketch-{}-{folder}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (whole, split) = (tmp.join("whole"), tmp.join("split"));
        let source = capture.join("cdc_raw_after_shutdown");
        for d in [&whole, &split] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&source).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in &files {
            std::fs::copy(f, whole.join(f.file_name().unwrap())).unwrap();
        }
        let all = run_sync_sketch(&whole, &tmp.join("whole.checkpoint"));

        // Records: kinds and keys.
        let mut got: BTreeMap<(String, &str), usize> = BTreeMap::new();
        let (mut last, mut schema_changes, mut created) = ((0i64, 0u64), 0, Vec::new());
        for line in all.lines() {
            let r: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let at = (r["segment_id"].as_i64().unwrap(), r["position"].as_u64().unwrap());
            assert!(at >= last, "{folder}: log order: {line}");
            last = at;
            if let Some(c) = r.get("schema_change") {
                schema_changes += 1;
                created
                    .extend(c["created"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap().to_owned()));
                continue;
            }
            if r.get("truncate").is_some() {
                continue;
            }
            let (ks, table) = (r["table"][0].as_str().unwrap(), r["table"][1].as_str().unwrap().to_owned());
            assert_eq!(ks, "cdc_test", "{line}");
            let kind: &'static str = match r["kind"].as_str().unwrap() {
                "delete_partition" => "partition_delete",
                "delete_range" => "range_delete",
                "insert" => "insert",
                "update" => "update",
                "delete" => "delete",
                other => panic!("{other}"),
            };
            let (partition, clustering) = &keys[&table];
            let names: Vec<&str> = r["key"].as_object().unwrap().keys().map(String::as_str).collect();
            let mut full: Vec<&str> = partition.iter().map(String::as_str).collect();
            let partition_only = full.clone();
            full.extend(clustering.iter().map(String::as_str));
            match kind {
                "partition_delete" | "range_delete" => assert_eq!(sorted(names), sorted(partition_only), "{line}"),
                // The static row of an update has the partition key only.
                _ if r["columns"].as_object().unwrap().keys().all(|c| c == "s_static") && names.len() < full.len() => {
                    assert_eq!(sorted(names), sorted(partition_only), "{line}")
                }
                _ => assert_eq!(sorted(names), sorted(full.clone()), "{line}"),
            }
            assert_eq!(r.get("range").is_some(), kind == "range_delete", "{line}");
            assert_eq!(r.get("columns").is_some(), !kind.ends_with("_delete"), "{line}");
            *got.entry((table, kind)).or_default() += 1;
        }
        assert_eq!(got, want, "{folder}: records per table and kind");
        // Every CREATE TABLE and the ALTER ... ADD (the second ALTER
        // changes a table option only, which the decoded schema does not
        // hold); the CREATE KEYSPACE and CREATE TYPEs precede the tables.
        let mut tables: Vec<String> = keys.keys().cloned().collect();
        created.sort();
        tables.sort();
        assert_eq!(created, tables, "{folder}");
        assert_eq!(schema_changes, 2 + tables.len() + 1, "{folder}: types, tables, ALTER ADD");

        // Stopped after the first segment, then resumed on the whole directory.
        for f in files.iter().take(2) {
            std::fs::copy(f, split.join(f.file_name().unwrap())).unwrap();
        }
        assert!(files[1].to_string_lossy().ends_with("_cdc.idx"));
        let checkpoint = tmp.join("split.checkpoint");
        let first = run_sync_sketch(&split, &checkpoint);
        assert!(!first.is_empty() && first.len() < all.len());
        for f in &files[2..] {
            std::fs::copy(f, split.join(f.file_name().unwrap())).unwrap();
        }
        let rest = run_sync_sketch(&split, &checkpoint);
        assert_eq!(first + &rest, all, "{folder}: resumed output");
        assert_eq!(run_sync_sketch(&split, &checkpoint), "", "{folder}: nothing new");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

fn names(o: &Value) -> Vec<&str> {
    sorted(o.as_object().unwrap().keys().map(String::as_str).collect())
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v
}

/// `dump --format debezium` on every capture: one record per change, each
/// statement's op and scope as its CQL says (read off `expected.jsonl`),
/// keys as the tables' primary keys say, and the same digests and positions
/// as the native format.
#[test]
fn dump_debezium_gives_a_record_per_change_with_the_native_digests() {
    use std::collections::{BTreeMap, HashMap};
    let Some(corpus) = corpus() else { return };
    for capture in CAPTURES {
        let (want, keys) = common::cql::expected_changes(&corpus.join(capture));
        let dir = corpus.join(capture).join("cdc_raw_after_shutdown").display().to_string();
        let mut args = key_args(&corpus);
        args.extend(["--schema-from-log".into(), "--cluster".into(), "c1".into()]);
        let (native, status) = run_dump(&[args.clone(), vec![dir.clone()]].concat());
        assert_eq!(status, 0);
        args.extend(["--format".into(), "debezium".into(), dir]);
        let (records, status) = run_dump(&args);
        assert_eq!(status, 0);
        // Native digests by (segment, position, table).
        let mut digests: HashMap<(i64, u64, String), Vec<String>> = HashMap::new();
        for l in native.iter().filter(|l| l.get("updates").is_some()) {
            for u in l["updates"].as_array().unwrap() {
                let at = (l["segment_id"].as_i64().unwrap(), l["position"].as_u64().unwrap());
                digests
                    .entry((at.0, at.1, u["table"].as_str().unwrap().to_owned()))
                    .or_default()
                    .push(u["digest"].as_str().unwrap().to_owned());
            }
        }
        let mut got: BTreeMap<(String, &str), usize> = BTreeMap::new();
        let (mut last, mut truncates) = ((0i64, 0u64), 0);
        for r in &records {
            if r.get("schema_change").is_some() {
                continue;
            }
            let (key, v) = (&r["key"], &r["value"]);
            assert!(v["before"].is_null(), "{r}");
            let s = &v["source"];
            assert_eq!((s["name"].as_str(), s["cluster"].as_str()), (Some("c1"), Some("c1")));
            assert_eq!(v["ts_ms"], s["ts_ms"]);
            assert_eq!(s["ts_ms"].as_i64().unwrap(), s["ts_us"].as_i64().unwrap().div_euclid(1000));
            let at = (s["segment_id"].as_i64().unwrap(), s["position"].as_u64().unwrap());
            assert!(at >= last, "{capture}: log order: {r}");
            last = at;
            let table = s["table"].as_str().unwrap().to_owned();
            if v["op"] == "t" {
                assert!(key.is_null() && v["scope"] == "table" && v["truncated"]["table_id"].is_string());
                truncates += 1;
                continue;
            }
            let ds = &digests[&(at.0, at.1, table.clone())];
            assert!(ds.iter().any(|d| s["digest"] == d.as_str()), "{capture}: digest of {r}");
            if s["keyspace"] != "cdc_test" {
                continue;
            }
            let (op, scope) = (v["op"].as_str().unwrap(), v["scope"].as_str().unwrap());
            let kind = match (op, scope) {
                ("c", "row") => "insert",
                ("u", "row" | "static") => "update",
                ("d", "row") => "delete",
                ("d", "partition") => "partition_delete",
                ("d", "range") => "range_delete",
                other => panic!("{other:?}: {r}"),
            };
            *got.entry((table.clone(), kind)).or_default() += 1;
            let (partition, clustering) = &keys[&table];
            let pk: Vec<&str> = partition.iter().map(String::as_str).collect();
            let mut full = pk.clone();
            full.extend(clustering.iter().map(String::as_str));
            // The record key is the partition key, always.
            assert_eq!(names(key), sorted(pk.clone()), "{r}");
            let want_key = if scope == "row" { sorted(full.clone()) } else { sorted(pk.clone()) };
            assert_eq!(names(&v["key"]), want_key, "{r}");
            match op {
                "d" => assert!(v["after"].is_null(), "{r}"),
                // `after` holds the key's columns and what was written.
                _ => {
                    let after = names(&v["after"]);
                    assert!(want_key.iter().all(|k| after.contains(k)) && after.len() > want_key.len(), "{r}");
                }
            }
            assert_eq!(v.get("range").is_some(), scope == "range", "{r}");
        }
        assert_eq!(got, want, "{capture}: records per table and kind");
        if capture != "cassandra-4.0-alpha4" {
            assert!(truncates >= 1, "{capture}");
        }
    }
}
