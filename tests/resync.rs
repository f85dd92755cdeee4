//! Damage costs only what it hit. Damaged copies of real plain, LZ4, Zstd
//! and encrypted corpus segments are made at test time: every bit of the
//! first two sections' markers and length fields flipped one at a time,
//! then XOR 0x01 and 0xFF at a stride over the rest of the written bytes.
//! Each copy is walked and compared with the walk of the undamaged file:
//! - no entry outside the damaged section is lost,
//! - every entry delivered is an undamaged one, at the same position,
//! - every undamaged entry not delivered lies inside a reported loss, and
//!   no loss reaches outside the damaged section.

mod common;
#[path = "../fuzz/harness/mod.rs"]
mod harness;

use std::path::Path;

use common::{corpus, options_for};
use harness::oracle::{Tally, check, reference};

/// Header bytes of a section: its marker, and the uncompressed length of a
/// compressed or encrypted section.
fn header_len(plain: bool) -> u64 {
    if plain { 8 } else { 12 }
}

fn flip_all(folder: &str, file: &str, plain: bool, stride: usize) -> Option<Tally> {
    let corpus = corpus()?;
    let opts = options_for(&corpus, folder);
    let bytes = std::fs::read(Path::new(&corpus).join(folder).join(file)).unwrap();
    let r = reference(&bytes, &opts);
    assert!(r.sections.len() >= 2 && r.entries.len() >= 10, "{file}: too small to test");
    let mut tally = Tally::default();
    let mut copy = bytes.clone();
    let mut header_bytes = Vec::new();
    for s in &r.sections[..2] {
        header_bytes.extend(s.file_offset as usize..(s.file_offset + header_len(plain)) as usize);
    }
    // Resuming from a checkpoint inside the second section: the sections
    // walked past undecoded must not shift what follows either.
    let second = r.sections[1];
    let resume = r.entries.range(second.content_start..second.end).map(|(&p, _)| p).nth(1).unwrap_or(second.start);
    let resumed = opts.clone().after(resume);
    for &at in &header_bytes {
        for bit in 0..8 {
            copy[at] ^= 1 << bit;
            check(&r, &copy, &opts, at, false, &format!("{file} offset {at} bit {bit}"), &mut tally);
            check(&r, &copy, &resumed, at, false, &format!("{file} offset {at} bit {bit} after {resume}"), &mut tally);
            copy[at] = bytes[at];
        }
    }
    let first = r.sections[0].file_offset as usize;
    for at in (first..r.written + 8.min(bytes.len() - r.written)).step_by(stride) {
        if header_bytes.contains(&at) {
            continue;
        }
        for x in [0x01, 0xff] {
            copy[at] ^= x;
            check(&r, &copy, &opts, at, false, &format!("{file} offset {at} xor {x:#04x}"), &mut tally);
            copy[at] = bytes[at];
        }
    }
    // Every later section's header too, one bit each.
    for s in &r.sections[2..] {
        for at in s.file_offset as usize..(s.file_offset + header_len(plain)) as usize {
            copy[at] ^= 0x10;
            check(&r, &copy, &opts, at, false, &format!("{file} offset {at} xor 0x10"), &mut tally);
            copy[at] = bytes[at];
        }
    }
    eprintln!("{file}: {tally:?}");
    Some(tally)
}

#[test]
fn plain_segment_flips() {
    let Some(t) = flip_all("cassandra-4.0.0/cdc_raw_after_shutdown", "CommitLog-7-1795433791768.log", true, 5) else {
        return;
    };
    assert!(t.resynced > 0 && t.repaired > 0, "{t:?}");
}

#[test]
fn lz4_segment_flips() {
    let Some(t) = flip_all("cassandra-4.0.0-lz4/cdc_raw_after_shutdown", "CommitLog-7-1795434137975.log", false, 3)
    else {
        return;
    };
    assert!(t.resynced > 0 && t.repaired > 0, "{t:?}");
}

#[test]
fn zstd_segment_flips() {
    let Some(t) = flip_all("cassandra-4.0.0-zstd/cdc_raw_after_shutdown", "CommitLog-7-1795434276871.log", false, 3)
    else {
        return;
    };
    assert!(t.resynced > 0 && t.repaired > 0, "{t:?}");
}

#[test]
fn encrypted_segment_flips() {
    let Some(t) =
        flip_all("cassandra-4.0.0-encrypted/cdc_raw_after_shutdown", "CommitLog-7-1795434207346.log", false, 3)
    else {
        return;
    };
    assert!(t.resynced > 0 && t.repaired > 0, "{t:?}");
}

/// The cases the issue names, exactly: a flipped length must not move the
/// second section's entries, a flipped `next` must not drop a section.
#[test]
fn the_reported_cases() {
    let Some(corpus) = corpus() else { return };
    let cases = [
        ("cassandra-4.0.0-lz4/cdc_raw_after_shutdown", "CommitLog-7-1795434137975.log", [91, 85]),
        ("cassandra-4.0.0-zstd/cdc_raw_after_shutdown", "CommitLog-7-1795434276871.log", [92, 87]),
        ("cassandra-4.0.0-encrypted/cdc_raw_after_shutdown", "CommitLog-7-1795434207346.log", [134, 128]),
    ];
    for (folder, file, offsets) in cases {
        let opts = options_for(&corpus, folder);
        let bytes = std::fs::read(corpus.join(folder).join(file)).unwrap();
        let r = reference(&bytes, &opts);
        let mut tally = Tally::default();
        for at in offsets {
            let mut copy = bytes.clone();
            copy[at] ^= 0x01;
            check(&r, &copy, &opts, at, false, &format!("{file} offset {at}"), &mut tally);
        }
        // Absurd lengths: the declared length of the first section.
        let u = r.sections[0].file_offset as usize + 8;
        for len in [0x7fff_ffffu32, u32::MAX, 0] {
            let mut copy = bytes.clone();
            copy[u..u + 4].copy_from_slice(&len.to_be_bytes());
            check(&r, &copy, &opts, u, false, &format!("{file} length {len:#x}"), &mut tally);
        }
        assert_eq!(tally.entries_lost_by_damage, 0, "{file}: these are all repairable: {tally:?}");
    }
}
