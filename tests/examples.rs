//! Runs the examples as a user would and checks what they print.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{corpus, corpus_keys, segment_dirs};
use serde_json::Value;

/// The example binary `cargo test` built beside this test (built on demand
/// when only this test target was selected).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin = dir.join(name);
    if !bin.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building example {name}");
    }
    bin
}

fn run_segments(args: &[String]) -> (Vec<Value>, i32) {
    let out = Command::new(example("segments")).args(args).output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, out.status.code().unwrap_or(-1))
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
    let reference: Vec<Value> = std::fs::read_to_string(corpus.join("reference_counts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    assert_eq!(compared, 5 * 17, "every capture segment is in the reference");
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
