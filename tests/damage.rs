//! Damaged copies of real segments, made at test time: a flipped byte in a
//! mutation, a size, a marker; files cut at every offset. Each must cost
//! exactly what the format allows, with the positions of the loss, and the
//! rest must still be read. Expected positions come from the naive walker in
//! `common`, not from the reader under test.

mod common;

use std::path::PathBuf;

use cassandra_commitlog::segment::{Error, Item, LossKind, ReadOptions, SectionError, Segment, Summary, Tail};
use common::{NaiveSection, corpus, naive_plain_walk, options_for};

const PLAIN: &str = "cassandra-4.0.0/cdc_raw_after_shutdown/CommitLog-7-1795433791768.log";
const LZ4: &str = "cassandra-4.0.0-lz4/cdc_raw_after_shutdown/CommitLog-7-1795434137980.log";
const ENCRYPTED: &str = "cassandra-4.0.0-encrypted/cdc_raw_after_shutdown/CommitLog-7-1795434207351.log";

fn load(rel: &str) -> Option<(PathBuf, Vec<u8>)> {
    let corpus = corpus()?;
    let bytes = std::fs::read(corpus.join(rel)).unwrap();
    Some((corpus, bytes))
}

fn walk(bytes: &[u8], opts: &ReadOptions) -> Summary {
    Segment::from_data(bytes).unwrap().walk(opts).unwrap()
}

fn total_entries(sections: &[NaiveSection]) -> u64 {
    sections.iter().map(|s| s.entries.len() as u64).sum()
}

#[test]
fn a_flipped_mutation_byte_costs_exactly_that_entry() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let total = total_entries(&sections);
    assert_eq!(total, 28);
    for (i, s) in sections.iter().enumerate() {
        for &(start, len) in &s.entries {
            let mut bytes = clean.clone();
            bytes[start + 8 + len / 2] ^= 0x10;
            let sum = walk(&bytes, &ReadOptions::new());
            assert_eq!(sum.entries, total - 1);
            assert_eq!((sum.bad_entries, sum.lost_sections), (1, 0));
            assert_eq!(sum.sections, sections.len() as u64);
            assert_eq!(sum.end, sections.last().unwrap().next as u64);
            assert!(matches!(sum.tail, Some(Tail::ZeroMarker { .. })));
            let [loss] = &sum.losses[..] else { panic!("one loss expected: {:?}", sum.losses) };
            assert!(matches!(loss.kind, LossKind::MutationCrc { .. }), "section {i}: {loss}");
            assert_eq!((loss.start, loss.end), (start as u64, (start + 12 + len) as u64));
            assert_eq!(loss.file_offset, Some(start as u64));
            assert_eq!(loss.section_file_offset, s.marker as u64);
            assert_eq!(sum.lost_bytes, 12 + len as u64);

            // Strict mode: the same loss is the error, with its location.
            let err = Segment::from_data(&bytes[..]).unwrap().walk(&ReadOptions::new().strict(true)).unwrap_err();
            let Error::Corrupt { loc, kind } = &err else { panic!("{err}") };
            assert!(matches!(kind, LossKind::MutationCrc { .. }));
            assert_eq!((loc.file_offset, loc.logical), (Some(start as u64), Some(start as u64)));
            assert_eq!(loc.segment_id, Some(1795433791768));
            assert!(err.to_string().contains("mutation CRC mismatch"), "{err}");
        }
    }
}

#[test]
fn a_flipped_size_costs_the_rest_of_its_section_only() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let total = total_entries(&sections);
    for s in &sections {
        for (k, &(start, _)) in s.entries.iter().enumerate() {
            let mut bytes = clean.clone();
            bytes[start] ^= 0x80; // the size's top byte: a huge size whose CRC fails
            let sum = walk(&bytes, &ReadOptions::new());
            let lost_entries = (s.entries.len() - k) as u64;
            assert_eq!(sum.entries, total - lost_entries, "entries after the section are still read");
            assert_eq!(sum.bad_entries, 1);
            assert_eq!(sum.sections, sections.len() as u64);
            let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
            assert!(matches!(loss.kind, LossKind::SizeCrc { .. }), "{loss}");
            assert_eq!((loss.start, loss.end), (start as u64, s.next as u64));
        }
    }
}

#[test]
fn a_small_size_with_a_valid_crc_costs_the_rest_of_its_section() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let s = sections.iter().find(|s| s.entries.len() >= 2).unwrap();
    let (start, _) = s.entries[1];
    let mut bytes = clean.clone();
    bytes[start..start + 4].copy_from_slice(&5u32.to_be_bytes());
    bytes[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&5u32.to_be_bytes()).to_be_bytes());
    let sum = walk(&bytes, &ReadOptions::new());
    let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
    assert!(matches!(loss.kind, LossKind::InvalidSize { size: 5 }), "{loss}");
    assert_eq!((loss.start, loss.end), (start as u64, s.next as u64));
}

#[test]
fn a_damaged_marker_costs_its_section_and_reading_resumes_at_the_next_valid_one() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let total = total_entries(&sections);
    for (i, s) in sections.iter().enumerate() {
        let mut bytes = clean.clone();
        bytes[s.marker + 5] ^= 0x01;
        let sum = walk(&bytes, &ReadOptions::new());
        assert_eq!(sum.sections, sections.len() as u64 - 1, "section {i}");
        assert_eq!(sum.entries, total - s.entries.len() as u64, "only the section behind the bad marker is lost");
        assert_eq!(
            (sum.lost_sections, sum.resynced, sum.bad_entries),
            (1, 1, 0),
            "section {i}: {:?} {:?}",
            sum.tail,
            s.entries
        );
        assert_eq!(sum.end, sections.last().unwrap().next as u64, "positions go on as before");
        let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
        assert!(matches!(loss.kind, LossKind::CorruptMarker { .. }), "{loss}");
        assert_eq!((loss.start, loss.end), (s.marker as u64, s.next as u64));
        assert_eq!((loss.file_offset, loss.file_end), (Some(s.marker as u64), Some(s.next as u64)));
        assert!(matches!(sum.tail, Some(Tail::ZeroMarker { .. })), "{:?}", sum.tail);
        // Strict mode stops at it, saying where.
        let err = Segment::from_data(&bytes[..]).unwrap().walk(&ReadOptions::new().strict(true)).unwrap_err();
        assert!(matches!(err, Error::Corrupt { ref loc, .. } if loc.file_offset == Some(s.marker as u64)), "{err}");
    }
    // Damage past the written data: nothing valid follows, the walk ends
    // there as corrupt (as before resynchronisation).
    let end = sections.last().unwrap().next;
    let mut bytes = clean.clone();
    bytes[end + 5] = 0x5a;
    bytes[end + 100] = 0x01;
    let sum = walk(&bytes, &ReadOptions::new());
    assert_eq!((sum.sections, sum.entries), (sections.len() as u64, total));
    assert!(matches!(sum.tail, Some(Tail::CorruptMarker { file_offset, .. }) if file_offset == end as u64));
}

#[test]
fn a_wrong_next_is_read_around_with_a_report() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let total = total_entries(&sections);
    let s = &sections[3];
    // `next` is not covered by the marker CRC: past the file, backwards, at
    // itself, inside the section, at the marker after the next one.
    let past_next = sections[5].marker as u32;
    for next in [clean.len() as u32 + 1, 0, s.marker as u32, s.marker as u32 + 7, s.next as u32 - 3, past_next] {
        let mut bytes = clean.clone();
        bytes[s.marker..s.marker + 4].copy_from_slice(&next.to_be_bytes());
        let sum = walk(&bytes, &ReadOptions::new());
        assert_eq!((sum.sections, sum.entries), (sections.len() as u64, total), "next {next}");
        assert_eq!((sum.repaired, sum.lost_sections, sum.bad_entries), (1, 0, 0), "next {next}");
        let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
        let LossKind::WrongNext { declared, found } = loss.kind else { panic!("{loss}") };
        assert_eq!((declared, found), (next as u64, s.next as u64));
        assert_eq!(loss.start, loss.end, "nothing lost");
        assert!(matches!(sum.tail, Some(Tail::ZeroMarker { .. })));
    }
    // A file cut inside a section is a truncated tail, not damage: its
    // whole entries are read, the rest of it is one loss.
    let cut = &clean[..s.next - 5];
    let sum = walk(cut, &ReadOptions::new());
    assert_eq!(sum.sections, 4);
    assert_eq!(
        sum.tail,
        Some(Tail::Truncated { file_offset: s.marker as u64, next: s.next as u64, file_len: cut.len() as u64 })
    );
    let (last_start, _) = *s.entries.last().unwrap();
    let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
    assert!(matches!(loss.kind, LossKind::Truncated { .. }), "{loss}");
    assert_eq!((loss.start, loss.end), (last_start as u64, s.next as u64));
}

#[test]
fn a_plain_segment_cut_at_every_offset() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let sections = naive_plain_walk(&clean);
    let header = 20;
    let end = sections.last().unwrap().next;
    for cut in 0..end + 16 {
        let bytes = &clean[..cut];
        let seg = match Segment::from_data(bytes) {
            Ok(seg) => seg,
            Err(Error::HeaderTruncated { .. }) if cut < header => continue,
            Err(e) => panic!("cut {cut}: {e}"),
        };
        assert!(cut >= header);
        let sum = seg.walk(&ReadOptions::new()).unwrap();
        let complete: Vec<&NaiveSection> = sections.iter().filter(|s| s.next <= cut).collect();
        let mut entries = complete.iter().map(|s| s.entries.len() as u64).sum::<u64>();
        let mut sections_read = complete.len() as u64;
        // The section the file ends inside, if its marker is whole: its
        // whole entries are read, the rest up to its `next` is one loss.
        match sections.iter().find(|s| s.next > cut).filter(|s| s.marker + 8 <= cut) {
            Some(s) => {
                let whole: Vec<_> = s.entries.iter().filter(|&&(start, len)| start + 12 + len <= cut).collect();
                let lost_from = whole.last().map_or(s.marker + 8, |&&(start, len)| start + 12 + len);
                entries += whole.len() as u64;
                sections_read += 1;
                let [loss] = &sum.losses[..] else { panic!("cut {cut}: {:?}", sum.losses) };
                assert!(matches!(loss.kind, LossKind::Truncated { .. }), "cut {cut}: {loss}");
                assert_eq!((loss.start, loss.end), (lost_from as u64, s.next as u64), "cut {cut}");
                assert_eq!((loss.file_offset, loss.file_end), (Some(lost_from as u64), Some(cut as u64)));
                assert_eq!(sum.end, s.next as u64, "cut {cut}: the section's declared end");
            }
            None => assert!(sum.losses.is_empty(), "cut {cut}"),
        }
        assert_eq!(sum.sections, sections_read, "cut {cut}");
        assert_eq!(sum.entries, entries, "cut {cut}");
        let expected = match sections.iter().find(|s| s.next > cut) {
            Some(s) if s.marker + 8 > cut => Tail::NoRoom { file_offset: s.marker as u64 },
            Some(s) => Tail::Truncated { file_offset: s.marker as u64, next: s.next as u64, file_len: cut as u64 },
            None if end + 8 > cut => Tail::NoRoom { file_offset: end as u64 },
            None => Tail::ZeroMarker { file_offset: end as u64 },
        };
        assert_eq!(sum.tail, Some(expected), "cut {cut}");
    }
}

/// Markers of a compressed or encrypted segment, by a naive walk.
fn naive_markers(data: &[u8]) -> Vec<(usize, usize)> {
    let id = i64::from_be_bytes(data[4..12].try_into().unwrap());
    let mut pos = 18 + u16::from_be_bytes([data[12], data[13]]) as usize;
    let mut out = Vec::new();
    while pos + 8 <= data.len() {
        let next = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let mut crc = [0u8; 12];
        crc[..4].copy_from_slice(&(id as u32).to_be_bytes());
        crc[4..8].copy_from_slice(&((id >> 32) as u32).to_be_bytes());
        crc[8..].copy_from_slice(&(pos as u32).to_be_bytes());
        if crc32fast::hash(&crc).to_be_bytes() != data[pos + 4..pos + 8] {
            break;
        }
        out.push((pos, next));
        pos = next;
    }
    out
}

/// Entries of each section of an LZ4 segment, counted naively with lz4_flex.
fn naive_lz4_entries(data: &[u8], markers: &[(usize, usize)]) -> Vec<u64> {
    markers
        .iter()
        .map(|&(m, next)| {
            let u = u32::from_be_bytes(data[m + 8..m + 12].try_into().unwrap()) as usize;
            let raw = lz4_flex::block::decompress(&data[m + 16..next], u).unwrap();
            let (mut off, mut n) = (0, 0);
            while off + 4 <= raw.len() {
                off += 12 + u32::from_be_bytes(raw[off..off + 4].try_into().unwrap()) as usize;
                n += 1;
            }
            n
        })
        .collect()
}

#[test]
fn a_compressed_segment_cut_at_every_offset() {
    let Some((_, clean)) = load(LZ4) else { return };
    let markers = naive_markers(&clean);
    let entries = naive_lz4_entries(&clean, &markers);
    assert_eq!(markers.len(), 6);
    assert_eq!(markers.last().unwrap().1, clean.len());
    // Logical ends of the sections (format spec §3.5).
    let mut logical_ends = Vec::new();
    let mut logical = 83u64;
    for &(m, _) in &markers {
        logical += 8 + u32::from_be_bytes(clean[m + 8..m + 12].try_into().unwrap()) as u64;
        logical_ends.push(logical);
    }
    for cut in 83..=clean.len() {
        let sum = walk(&clean[..cut], &ReadOptions::new());
        let complete = markers.iter().take_while(|&&(_, next)| next <= cut).count();
        assert_eq!(sum.entries, entries[..complete].iter().sum::<u64>(), "cut {cut}");
        // A cut LZ4 block decodes to nothing: the whole section the file
        // ends inside is one loss, once its declared length is there.
        let started = markers.get(complete).filter(|&&(m, _)| m + 8 <= cut);
        assert_eq!(sum.sections, complete as u64 + u64::from(started.is_some()), "cut {cut}");
        match started {
            // (The last section is empty: its loss would cover nothing.)
            Some(&(m, _)) if m + 12 <= cut && complete + 1 < markers.len() => {
                let [loss] = &sum.losses[..] else { panic!("cut {cut}: {:?}", sum.losses) };
                assert!(matches!(loss.kind, LossKind::Truncated { .. }), "cut {cut}: {loss}");
                let start = if complete == 0 { 83 } else { logical_ends[complete - 1] };
                assert_eq!((loss.start, loss.end), (start + 8, logical_ends[complete]), "cut {cut}");
            }
            // Cut inside its 4-byte length: nothing says how long it was.
            _ => assert!(sum.losses.is_empty(), "cut {cut}: {:?}", sum.losses),
        }
        let expected = match markers.get(complete) {
            Some(&(m, _)) if m + 8 > cut => Tail::NoRoom { file_offset: m as u64 },
            Some(&(m, next)) => Tail::Truncated { file_offset: m as u64, next: next as u64, file_len: cut as u64 },
            None => Tail::NoRoom { file_offset: cut as u64 },
        };
        assert_eq!(sum.tail, Some(expected), "cut {cut}");
    }
}

#[test]
fn an_undecodable_section_costs_that_section_and_reading_goes_on() {
    let Some((_, clean)) = load(LZ4) else { return };
    let markers = naive_markers(&clean);
    let entries = naive_lz4_entries(&clean, &markers);
    let clean_sum = walk(&clean, &ReadOptions::new());
    for (i, &(m, _)) in markers.iter().enumerate() {
        let mut bytes = clean.clone();
        bytes[m + 12] ^= 0x01; // the LZ4 little-endian length prefix
        let seg = Segment::from_data(&bytes[..]).unwrap();
        let mut reader = seg.reader(&ReadOptions::new()).unwrap();
        let mut sections_seen = Vec::new();
        while let Some(item) = reader.next().unwrap() {
            if let Item::Section(s) = item {
                sections_seen.push(s);
            }
        }
        let sum = reader.into_summary();
        assert_eq!(sum.sections, markers.len() as u64, "every marker is still read");
        assert_eq!(sum.entries, entries.iter().sum::<u64>() - entries[i]);
        assert_eq!(sum.lost_sections, 1);
        assert_eq!(sum.end, clean_sum.end, "positions after the loss are unchanged");
        let [loss] = &sum.losses[..] else { panic!("{:?}", sum.losses) };
        let LossKind::Section(SectionError::Lz4Prefix { .. }) = loss.kind else { panic!("{loss}") };
        let s = sections_seen[i];
        assert_eq!((loss.start, loss.end, loss.section_file_offset), (s.content_start, s.end, m as u64));
    }
}

#[test]
fn encrypted_damage_and_keys() {
    let Some((corpus, clean)) = load(ENCRYPTED) else { return };
    let opts = options_for(&corpus, "cassandra-4.0.0-encrypted");
    let clean_sum = walk(&clean, &opts);
    assert_eq!(clean_sum.entries, 28);
    let markers = naive_markers(&clean);
    // A ciphertext length that is not a multiple of 16 loses that section.
    let (m, _) = markers[1];
    let mut bytes = clean.clone();
    bytes[m + 12..m + 16].copy_from_slice(&17u32.to_be_bytes());
    let sum = walk(&bytes, &opts);
    assert_eq!(sum.lost_sections, 1);
    assert_eq!(sum.sections, clean_sum.sections);
    assert!(matches!(sum.losses[0].kind, LossKind::Section(SectionError::CipherLength { len: 17, .. })));
    // A wrong key: every section with data is lost, none is misread.
    let wrong = ReadOptions::new().key("testing:1", vec![7u8; 16]);
    let sum = walk(&clean, &wrong);
    assert_eq!(sum.entries, 0);
    assert!(sum.lost_sections > 0);
    assert_eq!(sum.sections, clean_sum.sections);
    // No key at all: a clear error naming the alias.
    let err = Segment::from_data(&clean[..]).unwrap().reader(&ReadOptions::new()).err().unwrap();
    assert!(matches!(&err, Error::MissingKey { alias, .. } if alias == "testing:1"), "{err}");
    assert!(err.to_string().contains("testing:1"));
    let err = Segment::from_data(&clean[..]).unwrap().reader(&ReadOptions::new().key("testing:1", vec![1; 5])).err();
    assert!(matches!(err, Some(Error::BadKey { len: 5, .. })));
}

#[test]
fn a_damaged_header_is_refused_with_its_crc() {
    let Some((_, clean)) = load(PLAIN) else { return };
    let mut bytes = clean.clone();
    bytes[15] ^= 0x20; // inside the "{}" parameters
    match Segment::from_data(&bytes[..]) {
        Err(Error::HeaderCrc { expected, found, loc }) => {
            assert_eq!(found, u32::from_be_bytes(clean[16..20].try_into().unwrap()));
            assert_ne!(expected, found);
            assert_eq!(loc.file_offset, Some(0));
        }
        other => panic!("{other:?}"),
    }
    // The name and the header must agree on the version.
    let err = Segment::from_named_data(&clean[..], "CommitLog-6-1795433791768.log").unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { name: 6, header: 7, .. }), "{err}");
    // An id mismatch is Cassandra's recoverable error: tolerated, strict refuses.
    let seg = Segment::from_named_data(&clean[..], "CommitLog-7-5.log").unwrap();
    assert_eq!(seg.id(), 1795433791768);
    assert!(seg.walk(&ReadOptions::new()).is_ok());
    assert!(matches!(seg.walk(&ReadOptions::new().strict(true)), Err(Error::IdMismatch { name: 5, .. })));
}

/// Real segments of every codec cut inside a section (the cases
/// among them: the encrypted capture's `...207346` at 8,709 bytes, the Zstd
/// capture's `...276871` at 96): the walk ends truncated, with one loss from
/// the end of the last entry delivered to the declared end of the section
/// the file ends inside (its length field, read naively), and every entry
/// delivered is one of the whole file's, at the same position.
#[test]
fn a_segment_of_every_codec_cut_inside_a_section_ends_truncated_with_one_loss() {
    let Some(corpus) = corpus() else { return };
    let cases: [(&str, &str, &[usize]); 5] = [
        ("cassandra-4.0.0-encrypted", "CommitLog-7-1795434207346.log", &[8709, 400, 12000]),
        ("cassandra-4.0.0-zstd", "CommitLog-7-1795434276871.log", &[96, 200, 3000]),
        ("cassandra-4.0.0-lz4", "CommitLog-7-1795434137975.log", &[100, 5000, 17000]),
        ("cassandra-4.0.0", "CommitLog-7-1795433791763.log", &[30, 5000, 50000]),
        ("cassandra-4.0.0-crash-lz4rollover", "CommitLog-7-1796639918195.log", &[1000, 150_000, 294_000]),
    ];
    let mut checked = 0;
    for (capture, file, cuts) in cases {
        let folder = if capture.contains("crash") { "cdc_raw_final" } else { "cdc_raw_after_shutdown" };
        let opts = options_for(&corpus, capture);
        let whole = std::fs::read(corpus.join(capture).join(folder).join(file)).unwrap();
        let plain = !capture.contains('-') || capture == "cassandra-4.0.0";
        let full = Segment::from_data(&whole[..]).unwrap();
        let mut full_entries = std::collections::BTreeMap::new();
        let mut r = full.reader(&opts).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            full_entries.insert(e.position, e.mutation.to_vec());
        }
        // Markers and the logical end each one declares, naively (§3.5).
        let header = 18 + u16::from_be_bytes([whole[12], whole[13]]) as usize;
        let mut logical = header as u64;
        let mut declared = Vec::new();
        for (m, next) in naive_markers(&whole) {
            let len = if plain {
                (next - m - 8) as u64
            } else {
                u32::from_be_bytes(whole[m + 8..m + 12].try_into().unwrap()) as u64
            };
            logical += 8 + len;
            declared.push((m, next, logical));
        }
        for &cut in cuts {
            let bytes = &whole[..cut];
            let &(m, next, end) = declared.iter().find(|&&(_, next, _)| next > cut).expect("a section cut");
            let seg = Segment::from_data(bytes).unwrap();
            let mut reader = seg.reader(&opts).unwrap();
            let (mut last_entry_end, mut losses) = (None, Vec::new());
            let mut section_content = 0;
            while let Some(item) = reader.next().unwrap() {
                match item {
                    Item::Section(s) => section_content = s.content_start,
                    Item::Entry(e) => {
                        assert_eq!(full_entries.get(&e.position).map(|v| &v[..]), Some(e.mutation), "{file} cut {cut}");
                        last_entry_end = Some(e.position);
                    }
                    Item::Loss(l) => losses.push(l),
                }
            }
            let sum = reader.into_summary();
            let what = format!("{capture}/{file} cut at {cut}");
            assert_eq!(
                sum.tail,
                Some(Tail::Truncated { file_offset: m as u64, next: next as u64, file_len: cut as u64 }),
                "{what}"
            );
            let [loss] = &losses[..] else { panic!("{what}: {losses:?}") };
            assert!(matches!(loss.kind, LossKind::Truncated { .. }), "{what}: {loss}");
            let from = last_entry_end.filter(|&p| p > section_content).unwrap_or(section_content);
            assert_eq!((loss.start, loss.end), (from, end), "{what}");
            assert_eq!(sum.tail.unwrap().class_name(), "truncated");
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}
