//! The fixtures in `testdata/` are made by the builder. This test rebuilds
//! each one and compares it with the committed file byte for byte (run with
//! `UPDATE_TESTDATA=1` to rewrite them), then checks that reading each gives
//! what `testdata/README.md` says it must.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cassandra_commitlog::builder::{
    BuildFormat, CellKind, CellSpec, ColumnSpec, MarkerSpec, RowSpec, SegmentBuilder, Unfiltered, UpdateSpec, Val,
    composite_key, encode_mutation,
};
use cassandra_commitlog::mutation::{DeletionTime, Liveness};
use cassandra_commitlog::schema::Schema;
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

/// Base timestamp of the cdc_raw fixture's writes (microseconds).
const T: i64 = 1_700_000_000_000_000;
/// Server time of its tombstones and TTLs (seconds).
const NOW: i64 = 1_700_000_100;

fn cell(ts: i64, value: Vec<u8>) -> CellSpec {
    CellSpec { timestamp: ts, kind: CellKind::Live, path: None, value }
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn row(liveness: Option<i64>, clustering: Vec<Option<Vec<u8>>>, columns: Vec<(&str, ColumnSpec)>) -> RowSpec {
    RowSpec {
        clustering,
        liveness: liveness.map(|timestamp| Liveness { timestamp, expiry: None }),
        deletion: None,
        columns: columns.into_iter().map(|(n, c)| (n.to_owned(), c)).collect(),
    }
}

fn update(table: u8, key: Vec<u8>, unfiltereds: Vec<Unfiltered>) -> UpdateSpec {
    UpdateSpec {
        table_id: format!("5a1e0000-0000-4000-8000-00000000000{table}").parse().unwrap(),
        key,
        deletion: None,
        static_row: None,
        unfiltereds,
    }
}

/// The mutations of `testdata/cdc_raw`, in the order they are written
/// (the README lists what each one is).
fn cdc_mutations(schema: &Schema) -> Vec<Vec<u8>> {
    let orders_key = |id: i32| id.to_be_bytes().to_vec();
    let readings_key = composite_key(&[b"s1", &Val::Date(19_675).encode(&cassandra_commitlog::schema::CqlType::Date)]);
    let at = |ms: i64| Some(ms.to_be_bytes().to_vec());
    let elem = |ts: i64, path: Vec<u8>, value: Vec<u8>| CellSpec {
        timestamp: ts,
        kind: CellKind::Live,
        path: Some(path),
        value,
    };
    let tomb = |ts: i64, path: Option<Vec<u8>>| CellSpec {
        timestamp: ts,
        kind: CellKind::Tombstone { local_deletion_time: NOW },
        path,
        value: vec![],
    };
    let list_path = |n: u8| {
        let mut p = [0x11u8; 16];
        p[0] = n;
        p[6] = 0x11; // a version-1 (time-based) UUID
        p.to_vec()
    };
    let decimal = Val::Decimal { scale: 2, unscaled: 1250 }.encode(&cassandra_commitlog::schema::CqlType::Decimal);
    let mut m1 = update(
        1,
        orders_key(1),
        vec![Unfiltered::Row(row(
            Some(T + 1),
            vec![],
            vec![
                ("customer", ColumnSpec::Simple(cell(T + 1, text("ada")))),
                ("total", ColumnSpec::Simple(cell(T + 1, decimal))),
                ("placed", ColumnSpec::Simple(cell(T + 1, 1_700_000_000_000i64.to_be_bytes().to_vec()))),
                (
                    "items",
                    ColumnSpec::Complex {
                        deletion: Some(DeletionTime { timestamp: T, local_deletion_time: NOW }),
                        cells: vec![elem(T + 1, list_path(1), text("pen")), elem(T + 1, list_path(2), text("ink"))],
                    },
                ),
                (
                    "tags",
                    ColumnSpec::Complex {
                        deletion: Some(DeletionTime { timestamp: T, local_deletion_time: NOW }),
                        cells: vec![elem(T + 1, text("new"), vec![])],
                    },
                ),
                (
                    "ship_to",
                    ColumnSpec::Complex {
                        deletion: Some(DeletionTime { timestamp: T, local_deletion_time: NOW }),
                        cells: vec![elem(T + 1, vec![0, 0], text("1 Main St")), elem(T + 1, vec![0, 1], text("Oslo"))],
                    },
                ),
                // Written before `note` was dropped: dropped data.
                ("note", ColumnSpec::Simple(cell(T + 1, text("fragile")))),
            ],
        ))],
    );
    m1.unfiltereds.shrink_to_fit();
    let mut m2 = update(
        2,
        readings_key.clone(),
        vec![Unfiltered::Row(row(
            Some(T + 2),
            vec![at(1_700_000_000_000)],
            vec![("value", ColumnSpec::Simple(cell(T + 2, 21.5f64.to_be_bytes().to_vec())))],
        ))],
    );
    m2.static_row = Some(row(None, vec![], vec![("site", ColumnSpec::Simple(cell(T + 2, text("roof"))))]));
    let mut ttl_row = row(
        Some(T + 3),
        vec![at(1_700_000_060_000)],
        vec![(
            "value",
            ColumnSpec::Simple(CellSpec {
                timestamp: T + 3,
                kind: CellKind::Expiring { ttl: 3600, expires_at: NOW + 3600 },
                path: None,
                value: 22.0f64.to_be_bytes().to_vec(),
            }),
        )],
    );
    ttl_row.liveness = Some(Liveness { timestamp: T + 3, expiry: Some((3600, NOW + 3600)) });
    let m3 = update(2, readings_key.clone(), vec![Unfiltered::Row(ttl_row)]);
    let m4 = update(
        1,
        orders_key(1),
        vec![Unfiltered::Row(row(
            None,
            vec![],
            vec![(
                "tags",
                ColumnSpec::Complex {
                    deletion: None,
                    cells: vec![elem(T + 4, text("gift"), vec![]), tomb(T + 4, Some(text("new")))],
                },
            )],
        ))],
    );
    let counter = Val::Counter(vec![([0xc0; 16], 1, 5)]).encode(&cassandra_commitlog::schema::CqlType::Counter);
    let m5 = update(
        3,
        text("apple"),
        vec![Unfiltered::Row(row(None, vec![], vec![("units", ColumnSpec::Simple(cell(T + 5, counter)))]))],
    );
    // DELETE FROM readings WHERE ... AND at > 1700000000000 AND at <= 1700000060000:
    // on a DESC column the start bound holds the larger value.
    let rt_del = DeletionTime { timestamp: T + 6, local_deletion_time: NOW };
    let m6 = update(
        2,
        readings_key,
        vec![
            Unfiltered::Marker(MarkerSpec {
                kind: 1,
                values: vec![at(1_700_000_060_000)],
                deletion: rt_del,
                start_deletion: None,
            }),
            Unfiltered::Marker(MarkerSpec {
                kind: 0,
                values: vec![at(1_700_000_000_000)],
                deletion: rt_del,
                start_deletion: None,
            }),
        ],
    );
    let mut m7 = update(1, orders_key(2), vec![]);
    m7.deletion = Some(DeletionTime { timestamp: T + 7, local_deletion_time: NOW });
    let mut ttl_order = row(
        Some(T + 8),
        vec![],
        vec![(
            "customer",
            ColumnSpec::Simple(CellSpec {
                timestamp: T + 8,
                kind: CellKind::Expiring { ttl: 86_400, expires_at: NOW + 86_400 },
                path: None,
                value: text("bob"),
            }),
        )],
    );
    ttl_order.liveness = Some(Liveness { timestamp: T + 8, expiry: Some((86_400, NOW + 86_400)) });
    let m8 = update(1, orders_key(3), vec![Unfiltered::Row(ttl_order)]);
    let m9 = update(
        1,
        orders_key(4),
        vec![Unfiltered::Row(row(
            Some(T + 9),
            vec![],
            vec![("customer", ColumnSpec::Simple(cell(T + 9, text("not durable yet"))))],
        ))],
    );
    [m1, m2, m3, m4, m5, m6, m7, m8, m9]
        .iter()
        .map(|u| encode_mutation(&[(schema.table_by_id(&u.table_id).unwrap(), u)], false))
        .collect()
}

/// `testdata/cdc_raw`: file name -> bytes.
fn cdc_fixture() -> Vec<(&'static str, Vec<u8>)> {
    let schema = Schema::parse(&std::fs::read_to_string(testdata().join("cdc_schema.cql")).unwrap()).unwrap();
    let m = cdc_mutations(&schema);
    // A finished plain segment: mutations 1-2, then 3-5, then a closing section.
    let mut a = SegmentBuilder::new(7, 2000, BuildFormat::Plain).preallocate(8192);
    for (i, bytes) in m[..5].iter().enumerate() {
        a.entry(bytes);
        if i == 1 || i == 4 {
            a.sync();
        }
    }
    a.sync();
    let a_end = a.logical_position();
    // A live LZ4 segment: mutations 6-7, then 8 are durable (the idx says
    // so); mutation 9 is in a section written after the last idx update.
    let mut b = SegmentBuilder::new(7, 2001, BuildFormat::Compressed(Compression::Lz4));
    b.entry(&m[5]);
    b.entry(&m[6]);
    b.sync();
    b.entry(&m[7]);
    b.sync();
    let b_durable = b.logical_position();
    b.entry(&m[8]);
    b.sync();
    // A pre-allocated segment Cassandra has created but not written to.
    let c = SegmentBuilder::new(7, 2002, BuildFormat::Plain).preallocate(8192).finish();
    vec![
        ("CommitLog-7-2000.log", a.finish()),
        ("CommitLog-7-2000_cdc.idx", format!("{a_end}\nCOMPLETED").into_bytes()),
        ("CommitLog-7-2001.log", b.finish()),
        ("CommitLog-7-2001_cdc.idx", b_durable.to_string().into_bytes()),
        ("CommitLog-7-2002.log", c),
    ]
}

#[test]
fn cdc_raw_fixture_is_what_the_builder_makes() {
    let update = std::env::var_os("UPDATE_TESTDATA").is_some();
    let dir = testdata().join("cdc_raw");
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let fixture = cdc_fixture();
    for (name, bytes) in &fixture {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(committed == *bytes, "{name} differs from what the builder makes (UPDATE_TESTDATA=1 rewrites it)");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), fixture.len(), "no other files in testdata/cdc_raw");
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
