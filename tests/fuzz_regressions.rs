//! Replays every input saved under `fuzz/regressions/<target>/` (crashes the
//! fuzzer found, kept after the fix, named after what broke) and the
//! repository's own fixtures through the fuzz targets' code.

#[path = "../fuzz/harness/mod.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut n = 0;
    // Git keeps no empty folder: a target without regressions has none.
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn segment_regressions() {
    replay("segment", harness::segment);
    // The fixtures, whole and cut at every offset, through the same checks.
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for entry in std::fs::read_dir(testdata).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let data = std::fs::read(&path).unwrap();
            for cut in (0..data.len().min(1200)).chain([data.len()]) {
                harness::segment(&data[..cut]);
            }
        }
    }
}

#[test]
fn sections_regressions() {
    replay("sections", harness::sections);
}

/// Builder-made sections of several entries, in every format, through the
/// `sections` target with its resume checks on (at sections and within
/// them), without and with `after` and a read limit: entries whose CRCs
/// hold are what random inputs rarely give those checks.
#[test]
fn sections_of_entries_resume_where_they_stopped() {
    use cassandra_commitlog::builder::SegmentBuilder;
    for pick in 0u8..7 {
        let format = harness::sections_format(pick);
        let mut b = SegmentBuilder::new(7, harness::SECTIONS_ID, format.clone());
        for i in 0..4 {
            for j in 0..5 {
                let body: Vec<u8> = (0..20 + i * 7 + j * 3).map(|k| (k * 11 + i + j) as u8).collect();
                b.entry(&body);
            }
            b.sync();
        }
        let bytes = b.finish();
        let header = harness::sections_header(&format).len();
        assert_eq!(bytes[..header], harness::sections_header(&format)[..], "the target's own header");
        for flags in [0x80u8, 0xa0, 0xc0, 0xe0] {
            let mut input = vec![pick | flags];
            input.extend_from_slice(&bytes[header..]);
            harness::sections(&input);
        }
    }
}

#[test]
fn mutation_regressions() {
    replay("mutation", harness::mutation);
    // Every mutation of the fixture, whole and cut at every length.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cdc_raw");
    let mut n = 0;
    for name in ["CommitLog-7-2000.log", "CommitLog-7-2001.log"] {
        let seg = cassandra_commitlog::segment::Segment::open(dir.join(name)).unwrap();
        let mut r = seg.reader(&cassandra_commitlog::segment::ReadOptions::new()).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            for cut in 0..=e.mutation.len() {
                harness::mutation(&e.mutation[..cut]);
            }
            n += 1;
        }
    }
    assert_eq!(n, 9);
}

#[test]
fn schema_regressions() {
    replay("schema", harness::schema);
    let text = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cdc_schema.cql")).unwrap();
    for cut in 0..=text.len() {
        harness::schema(&text[..cut]);
    }
}

#[test]
fn idx_regressions() {
    replay("idx", harness::idx);
    for text in [&b"1047767\nCOMPLETED"[..], b"37509", b"41678\r\nCOMPLETED\r\n", b""] {
        harness::idx(text);
    }
}

#[test]
fn dir_events_regressions() {
    replay("dir_events", harness::dir_events);
    // A deterministic walk through every operation.
    let ops: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    harness::dir_events(&ops);
}

#[test]
fn damage_regressions() {
    replay("damage", harness::damage);
    // A deterministic sweep: every format, section count and target, with
    // edits drawn from a fixed sequence.
    let mut x = 0x9e37_79b9u32;
    for i in 0..3000u32 {
        let mut input = vec![(i % 8) as u8, (i / 8 % 25) as u8, (i / 200) as u8 ^ 0x5a, (i * 7) as u8];
        for _ in 0..(1 + i % 4) * 2 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            input.push(x as u8);
        }
        if std::panic::catch_unwind(|| harness::damage(&input)).is_err() {
            panic!("damage sweep input {i}: {input:?}");
        }
    }
}

#[test]
fn schema_log_regressions() {
    replay("schema_log", harness::schema_log);
    // A fixed walk through every operation, undamaged and damaged.
    let mut ops = Vec::new();
    for k in 0..7u8 {
        for arg in [0u8, 1, 2, 3, 0x41, 0xff] {
            ops.extend([k, arg, 3, 0]);
        }
    }
    harness::schema_log(&ops);
    for flip in [0x81u8, 0xc0, 0xff] {
        let damaged: Vec<u8> = ops.chunks(4).flat_map(|o| [o[0], o[1], o[1].wrapping_mul(31), flip]).collect();
        harness::schema_log(&damaged);
    }
}
