//! The bodies of the fuzz targets, shared with `tests/fuzz_regressions.rs`
//! so that `cargo test` replays every saved crash input through exactly the
//! code the fuzzer ran.

#![allow(dead_code)]

use cassandra_commitlog::builder::{self, BuildFormat};
use cassandra_commitlog::segment::{Compression, Item, ReadOptions, Segment};

/// The key the `sections` target gives its encrypted inputs.
pub const KEY: [u8; 16] = [7; 16];
const ALIAS: &str = "fuzz:1";

/// Walks a segment and checks what must hold whatever the bytes: positions
/// only move forward, every entry is framed as the format says, the walk
/// ends (no more steps than bytes) and its summary agrees with what it
/// returned.
fn walk(data: &[u8], opts: &ReadOptions) {
    let Ok(seg) = Segment::from_data(data) else { return };
    let Ok(mut reader) = seg.reader(opts) else { return };
    let header = seg.descriptor().header_len as u64;
    let (mut steps, mut entries, mut last_section_end, mut last_position) = (0u64, 0u64, header, header);
    // Errors (strict mode) end the walk like its end does.
    while let Ok(Some(item)) = reader.next() {
        steps += 1;
        assert!(steps <= data.len() as u64 + 2, "more steps than bytes: a loop");
        match item {
            Item::Section(s) => {
                assert_eq!(s.start, last_section_end, "sections chain");
                assert!(s.end >= s.content_start && s.content_start == s.start + 8);
                assert!(s.file_end > s.file_offset && s.file_end <= data.len() as u64);
                last_section_end = s.end;
            }
            Item::Entry(e) => {
                assert!(e.mutation.len() >= 10);
                assert_eq!(e.position, e.start + e.mutation.len() as u64 + 12);
                assert!(e.start >= last_position && e.position <= last_section_end);
                last_position = e.position;
                entries += 1;
            }
            Item::Loss(l) => {
                assert!(l.start <= l.end && l.end <= last_section_end, "{l}");
                last_position = last_position.max(l.end);
            }
        }
    }
    let summary = reader.summary();
    assert_eq!(summary.entries, entries);
    assert_eq!(summary.end, last_section_end);
}

/// Target `segment`: a whole segment from arbitrary bytes.
pub fn segment(data: &[u8]) {
    walk(data, &ReadOptions::new().key(ALIAS, KEY.to_vec()));
    walk(data, &ReadOptions::new().strict(true).max_section_len(1 << 20));
}

/// Target `sections`: arbitrary sections behind a valid header, so that
/// inputs get past the descriptor. The first byte picks the section format
/// and the read options.
pub fn sections(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let format = match pick % 8 {
        0 | 7 => BuildFormat::Plain,
        n @ 1..=5 => BuildFormat::Compressed(Compression::ALL[n as usize - 1]),
        _ => BuildFormat::Encrypted { alias: ALIAS.into(), key: KEY.to_vec(), iv: [3; 16], chunk_len: 64 },
    };
    let mut bytes = builder::header(7, 0x0102_0304_0506, &builder::params_json(&format));
    let header = bytes.len() as u64;
    bytes.extend_from_slice(rest);
    let mut opts = ReadOptions::new().key(ALIAS, KEY.to_vec()).max_section_len(1 << 20);
    if pick & 0x10 != 0 {
        opts = opts.strict(true);
    }
    if pick & 0x20 != 0 {
        opts = opts.limit(header + rest.len() as u64 / 2);
    }
    if pick & 0x40 != 0 {
        opts = opts.after(header + rest.len() as u64 / 3);
    }
    walk(&bytes, &opts);
}

use std::sync::OnceLock;

use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::Schema;

/// The fixed schema of the `mutation` target: the fixture's, plus a table
/// of every scalar type and one with 70 columns.
pub fn fuzz_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut cql = include_str!("../../testdata/cdc_schema.cql").to_owned();
        cql.push_str(
            "CREATE TABLE shop.every (k frozen<tuple<int, text>>, c1 varint, c2 decimal, a ascii, b bigint, bl blob,
                 bo boolean, d date, dc decimal, db double, du duration, f float, i inet, n int, s smallint, t text,
                 tm time, ts timestamp, tu timeuuid, ti tinyint, u uuid, vi varint, ve vector<float, 3>,
                 vt vector<text, 2>, fl frozen<list<int>>, fm frozen<map<text, frozen<set<int>>>>, st int static,
                 m map<int, text>, PRIMARY KEY (k, c1, c2))
             WITH ID = 5a1e0000-0000-4000-8000-000000000004 AND CLUSTERING ORDER BY (c1 DESC, c2 ASC);
             CREATE TABLE shop.wide (k int PRIMARY KEY",
        );
        for i in 0..70 {
            cql.push_str(&format!(", c{i:02} int"));
        }
        cql.push_str(") WITH ID = 5a1e0000-0000-4000-8000-000000000005;");
        Schema::parse(&cql).expect("the fuzz schema parses")
    })
}

/// Target `mutation`: a mutation from arbitrary bytes against the fixed
/// schema. Whatever decodes is walked to its last value and rendered.
pub fn mutation(data: &[u8]) {
    let schema = fuzz_schema();
    let mut decoder = Decoder::new();
    for unsigned in [false, true] {
        let ctx = Context { unsigned_deletion_times: unsigned, ..Context::default() };
        let m = match decoder.decode(data, schema, ctx) {
            Ok(m) => m,
            Err(u) => {
                assert!((u.error.error.offset() as usize) <= data.len());
                serde_json::to_string(&*u).expect("partial mutations render");
                continue;
            }
        };
        for u in m.updates() {
            let _ = u.partition_key().count();
            for r in u.all_rows() {
                for (_, v) in r.clustering() {
                    if let Some(Ok(v)) = v {
                        let _ = v.validate();
                    }
                }
                for c in r.columns() {
                    for cell in c.cells() {
                        let _ = cell.path();
                        if let Some(Ok(v)) = cell.value() {
                            let _ = v.validate();
                        }
                    }
                }
            }
            for rt in u.range_tombstones() {
                assert!(rt.start().clustering().len() <= u.table().clustering_len());
            }
        }
        serde_json::to_string(&m).expect("decoded mutations render");
    }
}

/// Target `schema`: the CQL parser on arbitrary text.
pub fn schema(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Schema::parse(text) {
        Ok(s) => {
            for t in s.tables() {
                for c in &t.columns {
                    let _ = c.ty.to_string();
                    assert!(c.ty.depth() <= cassandra_commitlog::schema::MAX_TYPE_DEPTH);
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
