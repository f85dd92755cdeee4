//! The fixtures in `testdata/` are made by the builder. This test rebuilds
//! each one and compares it with the committed file byte for byte (run with
//! `UPDATE_TESTDATA=1` to rewrite them), then checks that reading each gives
//! what `testdata/README.md` says it must.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cassandra_commitlog::builder::{BuildFormat, SegmentBuilder};
use cassandra_commitlog::segment::{Compression, ReadOptions, Segment};

/// The key of the encrypted fixture (alias `testdata:1`), also in the README.
pub const TESTDATA_KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// A made-up mutation body: text that compresses, of varying length.
fn body(n: usize) -> Vec<u8> {
    let mut b = format!("entry {n}: ").into_bytes();
    while b.len() < 40 + n * 37 {
        b.extend_from_slice(b"the quick brown fox jumps over the lazy dog. ");
    }
    b
}

/// Three sections of 3, 2 and 0 entries: the shape of a closed segment.
fn standard(version: i32, id: i64, format: BuildFormat, preallocate: bool) -> SegmentBuilder {
    let mut b = SegmentBuilder::new(version, id, format);
    if preallocate {
        b = b.preallocate(8192);
    }
    let mut n = 0;
    for entries in [3, 2, 0] {
        for _ in 0..entries {
            b.entry(&body(n));
            n += 1;
        }
        b.sync();
    }
    b
}

struct Fixture {
    file: &'static str,
    bytes: Vec<u8>,
}

fn fixtures() -> Vec<Fixture> {
    let plain = |v, id| standard(v, id, BuildFormat::Plain, true).finish();
    let codec = |id, c| standard(7, id, BuildFormat::Compressed(c), false).finish();
    let encrypted = standard(
        7,
        1006,
        BuildFormat::Encrypted {
            alias: "testdata:1".into(),
            key: TESTDATA_KEY.to_vec(),
            iv: [0xa5; 16],
            chunk_len: 128,
        },
        false,
    )
    .finish();
    // LZ4, cut 10 bytes into the payload of its second section.
    let b = standard(7, 1007, BuildFormat::Compressed(Compression::Lz4), false);
    let cut_at = b.sections()[1].file_offset as usize + 12 + 10;
    let mut truncated = b.finish();
    truncated.truncate(cut_at);
    // Plain, with one byte of the second entry's mutation flipped.
    let b = standard(7, 1008, BuildFormat::Plain, true);
    let second = b.sections()[0].file_offset as usize + 8 + 12 + body(0).len();
    let mut bad_crc = b.finish();
    bad_crc[second + 8 + 5] ^= 0x01;
    vec![
        Fixture { file: "CommitLog-7-1000.log", bytes: plain(7, 1000) },
        Fixture { file: "CommitLog-7-1001.log", bytes: codec(1001, Compression::Lz4) },
        Fixture { file: "CommitLog-7-1002.log", bytes: codec(1002, Compression::Snappy) },
        Fixture { file: "CommitLog-7-1003.log", bytes: codec(1003, Compression::Deflate) },
        Fixture { file: "CommitLog-7-1004.log", bytes: codec(1004, Compression::Zstd) },
        Fixture { file: "CommitLog-7-1005.log", bytes: codec(1005, Compression::Noop) },
        Fixture { file: "CommitLog-7-1006.log", bytes: encrypted },
        Fixture { file: "CommitLog-7-1007.log", bytes: truncated },
        Fixture { file: "CommitLog-7-1008.log", bytes: bad_crc },
        Fixture { file: "CommitLog-6-1009.log", bytes: plain(6, 1009) },
        Fixture { file: "CommitLog-8-1010.log", bytes: plain(8, 1010) },
    ]
}

#[test]
fn fixtures_are_what_the_builder_makes() {
    let update = std::env::var_os("UPDATE_TESTDATA").is_some();
    for f in fixtures() {
        let path = testdata().join(f.file);
        if update {
            std::fs::write(&path, &f.bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(committed == f.bytes, "{} differs from what the builder makes (UPDATE_TESTDATA=1 rewrites it)", f.file);
    }
}

/// The table of `testdata/README.md`: file -> column -> cell.
fn readme_table() -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(testdata().join("README.md")).unwrap();
    let mut columns: Vec<String> = Vec::new();
    let mut rows = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with('|') && !l.starts_with("|---")) {
        let cells: Vec<String> =
            line.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_owned()).collect();
        if columns.is_empty() {
            columns = cells;
            continue;
        }
        rows.insert(cells[0].clone(), columns.iter().cloned().zip(cells).collect());
    }
    rows
}

#[test]
fn fixtures_read_as_the_readme_says() {
    let table = readme_table();
    assert_eq!(table.len(), fixtures().len());
    let opts = ReadOptions::new().key("testdata:1", TESTDATA_KEY.to_vec());
    for f in fixtures() {
        let row = &table[f.file];
        let seg = Segment::open(testdata().join(f.file)).unwrap();
        let s = seg.walk(&opts).unwrap();
        let got = [
            ("sections", s.sections.to_string()),
            ("entries", s.entries.to_string()),
            ("bad_entries", s.bad_entries.to_string()),
            ("end", s.end.to_string()),
            ("tail", s.tail.unwrap().class_name().to_owned()),
        ];
        for (col, value) in got {
            assert_eq!(row[col], value, "{} column {col}", f.file);
        }
    }
}
