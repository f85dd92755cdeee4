//! Helpers shared by the integration tests: where the corpus is, the keys
//! its README gives, and a naive reference walker used to derive expected
//! positions independently of the crate's reader.

#![allow(dead_code)]

pub mod cassandra_writer;
pub mod cql;
pub mod materialize;
pub mod node;
pub mod spec;

use std::path::{Path, PathBuf};
use std::process::Command;

use cassandra_commitlog::mutation::{Context, Decoder, Mutation};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{Keys, ReadOptions, Segment, SegmentName};

/// `../shared/corpus` beside the repository. Tests that need it fail when it
/// is missing, so that CI can never pass by skipping them; set
/// `CASSANDRA_COMMITLOG_SKIP_CORPUS=1` to skip them knowingly.
pub fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var_os("CASSANDRA_COMMITLOG_SKIP_CORPUS").is_some() {
        eprintln!("corpus not found at {}: skipped on request", dir.display());
        return None;
    }
    panic!("the corpus is not at {} (set CASSANDRA_COMMITLOG_SKIP_CORPUS=1 to skip corpus tests)", dir.display());
}

/// The corpus captures (the folders with a schema and final states), by name.
pub fn captures() -> Vec<PathBuf> {
    let Some(corpus) = corpus() else { return Vec::new() };
    let mut out: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("schema_after_phase2/final_state.jsonl").is_file())
        .collect();
    out.sort();
    out
}

/// The keys table of the corpus README: folder -> (alias, key bytes).
pub fn corpus_keys(corpus: &Path) -> Vec<(String, String, Vec<u8>)> {
    let readme = std::fs::read_to_string(corpus.join("README.md")).expect("corpus README");
    let mut keys = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("## Keys for the encrypted sets") {
            in_table = true;
            continue;
        }
        if in_table && line.starts_with("## ") {
            break;
        }
        if !in_table || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let folder = cells[1].trim_matches('`').to_owned();
        let alias = cells[2].trim_matches('`').to_owned();
        let hex = cells[3].split('`').nth(1).expect("hex key in backquotes");
        keys.push((folder, alias, hex_decode(hex)));
    }
    assert!(keys.len() >= 3, "keys table not found in the corpus README");
    keys
}

/// Read options with the corpus key for a folder (by prefix), if any.
pub fn options_for(corpus: &Path, folder: &str) -> ReadOptions {
    let mut keys = Keys::new();
    for (f, alias, key) in corpus_keys(corpus) {
        if folder == f || folder.starts_with(&format!("{f}/")) {
            keys.insert(alias, key);
        }
    }
    ReadOptions::new().keys(keys)
}

/// Decodes every entry of a corpus folder (segments in id order, read with
/// the corpus keys for the folder) with `schema`, and calls `each` with the
/// file, the entry's bytes and the mutation; entries that do not decode
/// are skipped.
pub fn each_decoded(corpus: &Path, folder: &str, schema: &Schema, mut each: impl FnMut(&Path, &[u8], &Mutation<'_>)) {
    let opts = options_for(corpus, folder);
    let mut decoder = Decoder::new();
    for file in segment_files(&corpus.join(folder)) {
        let seg = Segment::open(&file).unwrap();
        let mut reader = seg.reader(&opts).unwrap();
        while let Some(entry) = reader.next_entry().unwrap() {
            let ctx = Context::of_entry(&entry, seg.descriptor(), None);
            if let Ok(m) = decoder.decode(entry.mutation, schema, ctx) {
                each(&file, entry.mutation, &m);
            }
        }
    }
}

pub fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

/// Segment files of a directory, by segment id.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .expect("list directory")
        .map(|e| e.expect("directory entry").path())
        .filter_map(|p| SegmentName::from_path(&p).map(|n| (n.id, p)))
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Every directory under `root` (recursively) holding segment files.
pub fn segment_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut has_segments = false;
        for e in std::fs::read_dir(&dir).expect("list directory") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if SegmentName::from_path(&p).is_some() {
                has_segments = true;
            }
        }
        if has_segments {
            out.push(dir);
        }
    }
    out.sort();
    out
}

/// A section as the naive walker sees it.
#[derive(Clone, Debug)]
pub struct NaiveSection {
    pub marker: usize,
    pub next: usize,
    /// (entry start, mutation length) of each entry.
    pub entries: Vec<(usize, usize)>,
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// The plainest possible walk of an undamaged plain segment, written from
/// format spec §2, §3.1 and §6 without the crate's code: header length from
/// the parameter length, markers checked with their CRC, entries taken
/// back to back until the section ends.
pub fn naive_plain_walk(data: &[u8]) -> Vec<NaiveSection> {
    let id = i64::from_be_bytes(data[4..12].try_into().unwrap());
    let mut pos = 18 + u16::from_be_bytes([data[12], data[13]]) as usize;
    let mut sections = Vec::new();
    while pos + 8 <= data.len() {
        let next = be32(data, pos) as usize;
        let mut h = crc32fast::Hasher::new();
        h.update(&(id as u32).to_be_bytes());
        h.update(&((id >> 32) as u32).to_be_bytes());
        h.update(&(pos as u32).to_be_bytes());
        if h.finalize() != be32(data, pos + 4) || next > data.len() || next < pos + 8 {
            break;
        }
        let mut entries = Vec::new();
        let mut e = pos + 8;
        while e + 12 <= next {
            let size = be32(data, e) as usize;
            if size == 0 {
                break;
            }
            entries.push((e, size));
            e += 12 + size;
        }
        assert_eq!(e, next, "naive walk: entries do not fill the section at {pos}");
        sections.push(NaiveSection { marker: pos, next, entries });
        pos = next;
    }
    sections
}

/// The five CDC captures of the corpus.
pub const CAPTURES: [&str; 5] = [
    "cassandra-4.0.0",
    "cassandra-4.0-alpha4",
    "cassandra-4.0.0-lz4",
    "cassandra-4.0.0-zstd",
    "cassandra-4.0.0-encrypted",
];

/// Whether a segment's `_cdc.idx` agrees with the end of its data (`end`,
/// from a walk to the end) by Cassandra's rules: a live idx (no
/// `COMPLETED`) is at or below the end (a crash can leave synced sections
/// past it); a completed one is the end, or, after a crash and a replay,
/// the file's physical length (`CommitLogReplayer.handleCDCReplayCompletion`
/// writes `f.length()`).
pub fn idx_agrees(end: u64, idx_offset: u64, completed: bool, file_len: u64) -> bool {
    if completed { idx_offset == end || idx_offset == file_len } else { idx_offset <= end }
}

/// The rows of `reference_counts.jsonl`.
pub fn reference_counts(corpus: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(corpus.join("reference_counts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The example binary `cargo test` built beside this test (built on demand
/// when only one test target was selected).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
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
