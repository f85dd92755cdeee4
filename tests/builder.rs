//! The builder is checked against Cassandra: re-encoding the entries of real
//! plain segments gives Cassandra's bytes exactly, and real compressed and
//! encrypted segments re-encoded by the builder keep every logical position.
//! Then every section kind round-trips through the reader.

mod common;

use cassandra_commitlog::builder::{BuildFormat, BuiltEntry, BuiltSection, DEFAULT_CHUNK_LEN, SegmentBuilder};
use cassandra_commitlog::segment::{Compression, Item, ReadOptions, Segment, Tail};
use common::{corpus, naive_plain_walk, options_for, segment_files};

#[test]
fn reencoding_real_plain_segments_gives_cassandras_bytes() {
    let Some(corpus) = corpus() else { return };
    let mut files = 0;
    for folder in [
        "cassandra-4.0.0/cdc_raw_after_shutdown",
        "cassandra-4.0-alpha4/cdc_raw_after_shutdown",
        "legacy/3.0.13-encrypted",
        "legacy/3.0.29-encrypted",
        "legacy/4.0.11-encrypted",
        "bench-4.0.0/cdc_raw",
    ] {
        for file in segment_files(&corpus.join(folder)) {
            let real = std::fs::read(&file).unwrap();
            let version = i32::from_be_bytes(real[0..4].try_into().unwrap());
            let id = i64::from_be_bytes(real[4..12].try_into().unwrap());
            let mut b = SegmentBuilder::new(version, id, BuildFormat::Plain).preallocate(real.len());
            for section in naive_plain_walk(&real) {
                for (start, len) in section.entries {
                    b.entry(&real[start + 8..start + 8 + len]);
                }
                let built = b.sync();
                assert_eq!(built.file_end as usize, section.next);
            }
            let rebuilt = b.finish();
            assert_eq!(rebuilt.len(), real.len());
            if let Some(at) = rebuilt.iter().zip(&real).position(|(a, b)| a != b) {
                panic!("{}: first difference at byte {at}", file.display());
            }
            files += 1;
        }
    }
    assert_eq!(files, 9 + 9 + 2 + 1 + 1 + 2);
}

/// Every entry of a segment with the section it is in.
fn entries_by_section(seg: &Segment<&[u8]>, opts: &ReadOptions) -> Vec<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut reader = seg.reader(opts).unwrap();
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Section(_) => out.push(Vec::new()),
            Item::Entry(e) => out.last_mut().unwrap().push(e.mutation.to_vec()),
            Item::Loss(l) => panic!("{l}"),
        }
    }
    out
}

#[test]
fn real_compressed_and_encrypted_segments_keep_their_positions_when_rebuilt() {
    let Some(corpus) = corpus() else { return };
    for (folder, format) in [
        ("cassandra-4.0.0-lz4/cdc_raw_after_shutdown", BuildFormat::Compressed(Compression::Lz4)),
        ("cassandra-4.0.0-zstd/cdc_raw_after_shutdown", BuildFormat::Compressed(Compression::Zstd)),
        (
            "cassandra-4.0.0-encrypted/cdc_raw_after_shutdown",
            BuildFormat::Encrypted {
                alias: "testing:1".into(),
                key: common::hex_decode("b7d96fb9b11d829179aeeb0b4e81f97a"),
                iv: [9; 16],
                chunk_len: DEFAULT_CHUNK_LEN,
            },
        ),
    ] {
        let opts = options_for(&corpus, folder);
        for file in segment_files(&corpus.join(folder)) {
            let real = std::fs::read(&file).unwrap();
            let seg = Segment::from_data(&real[..]).unwrap();
            let d = seg.descriptor();
            let sections = entries_by_section(&seg, &opts);
            let mut b = SegmentBuilder::new(d.version, d.id, format.clone());
            assert_eq!(b.logical_position() as usize, d.header_len, "same header length as Cassandra's");
            for entries in &sections {
                for e in entries {
                    b.entry(e);
                }
                b.sync();
            }
            let rebuilt = b.finish();
            let seg2 = Segment::from_data(&rebuilt[..]).unwrap();
            assert_eq!(entries_by_section(&seg2, &opts), sections, "{}", file.display());
            assert_eq!(seg2.walk(&opts).unwrap().end, seg.walk(&opts).unwrap().end, "{}", file.display());
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of repeated text, so that compressors have work to do.
            if i % 64 < 32 { b"abcdefgh"[i % 8] } else { x as u8 }
        })
        .collect()
}

fn formats() -> Vec<BuildFormat> {
    let mut f = vec![BuildFormat::Plain];
    f.extend(Compression::ALL.iter().map(|&c| BuildFormat::Compressed(c)));
    for key_len in [16, 24, 32] {
        f.push(BuildFormat::Encrypted {
            alias: format!("k{key_len}"),
            key: payload(key_len as u64, key_len),
            iv: [0x42; 16],
            chunk_len: 1000,
        });
    }
    f
}

#[test]
fn every_section_kind_round_trips() {
    for format in formats() {
        let mut b = SegmentBuilder::new(7, 1_700_000_000_123, format.clone());
        let mut written: Vec<(BuiltEntry, Vec<u8>)> = Vec::new();
        let mut sections: Vec<BuiltSection> = Vec::new();
        for s in 0..5u64 {
            // Section 2 is empty, as Cassandra's closing sections are.
            let n = if s == 2 { 0 } else { 1 + s as usize * 3 };
            for e in 0..n {
                let bytes = payload(s * 100 + e as u64, 10 + (e * 397) % 3000);
                written.push((b.entry(&bytes), bytes));
            }
            sections.push(b.sync());
        }
        let bytes = b.finish();
        let mut opts = ReadOptions::new();
        if let BuildFormat::Encrypted { alias, key, .. } = &format {
            opts = opts.key(alias.clone(), key.clone());
        }
        let seg = Segment::from_data(&bytes[..]).unwrap();
        let mut reader = seg.reader(&opts.clone().strict(true)).unwrap();
        let (mut got_sections, mut got_entries) = (Vec::new(), Vec::new());
        while let Some(item) = reader.next().unwrap() {
            match item {
                Item::Section(s) => got_sections.push((s.file_offset, s.file_end, s.start, s.end)),
                Item::Entry(e) => got_entries.push((e.start, e.position, e.mutation.to_vec())),
                Item::Loss(l) => panic!("{format:?}: {l}"),
            }
        }
        let want_sections: Vec<_> = sections.iter().map(|s| (s.file_offset, s.file_end, s.start, s.end)).collect();
        assert_eq!(got_sections, want_sections, "{format:?}");
        let want_entries: Vec<_> = written.iter().map(|(p, b)| (p.start, p.position, b.clone())).collect();
        assert_eq!(got_entries, want_entries, "{format:?}");
        let sum = reader.into_summary();
        assert_eq!(sum.end, sections.last().unwrap().end);
        assert_eq!(sum.tail, Some(Tail::NoRoom { file_offset: bytes.len() as u64 }));
        // The same bytes bounded at the end of section 3 stop there.
        let bounded = seg.walk(&opts.clone().limit(sections[3].end)).unwrap();
        assert_eq!(bounded.sections, 4);
        assert_eq!(bounded.entries, sections[..4].iter().map(|s| s.entries as u64).sum::<u64>());
        // A bound inside section 4 reads nothing of it.
        let inside = seg.walk(&opts.clone().limit(sections[4].end - 1)).unwrap();
        assert_eq!(inside.sections, 4);
        assert_eq!(inside.tail, Some(Tail::Limit { logical: sections[3].end }));
        // Resuming after an entry skips exactly what came before it.
        let (resume, _) = written[7];
        let mut r = seg.reader(&opts.clone().after(resume.position)).unwrap();
        let mut rest = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            rest.push(e.position);
        }
        let want: Vec<u64> = written[8..].iter().map(|(p, _)| p.position).collect();
        assert_eq!(rest, want, "{format:?}");
    }
}

#[test]
fn preallocated_plain_segments_end_at_the_zeroed_marker() {
    let mut b = SegmentBuilder::new(6, 3, BuildFormat::Plain).preallocate(4096);
    b.entry(&payload(1, 100));
    let s = b.sync();
    let bytes = b.finish();
    assert_eq!(bytes.len(), 4096);
    let sum = Segment::from_data(&bytes[..]).unwrap().walk(&ReadOptions::new()).unwrap();
    assert_eq!(sum.tail, Some(Tail::ZeroMarker { file_offset: s.file_end }));
    assert_eq!((sum.sections, sum.entries, sum.end), (1, 1, s.end));
}
