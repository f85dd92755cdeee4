//! The segment reader against every segment Cassandra wrote in the corpus:
//! counts from `reference_counts.jsonl` and the segment-walk tables of each
//! capture's README, ends equal to the `_cdc.idx` offsets, and the legacy 2.x
//! files refused by their version.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::segment::{Error, Item, ReadOptions, Segment, SegmentName, Tail, TailClass};
use common::{CAPTURES, corpus, options_for, reference_counts, segment_dirs, segment_files};

fn folder_of(corpus: &Path, dir: &Path) -> String {
    dir.strip_prefix(corpus).unwrap().to_string_lossy().replace('\\', "/")
}

#[test]
fn every_segment_matches_the_reference_walk() {
    let Some(corpus) = corpus() else { return };
    let mut checked = 0;
    for r in reference_counts(&corpus) {
        let folder = r["folder"].as_str().unwrap();
        let file = corpus.join(folder).join(r["file"].as_str().unwrap());
        let seg = Segment::open(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seg.descriptor().version as u64, r["descriptor"].as_u64().unwrap(), "{}", file.display());
        assert_eq!(seg.id(), r["segment_id"].as_i64().unwrap());
        assert_eq!(seg.descriptor().header_len as u64, r["header_len"].as_u64().unwrap());
        let s = seg.walk(&options_for(&corpus, folder)).unwrap_or_else(|e| panic!("{e}"));
        let what = file.display();
        assert_eq!(s.sections, r["sections"].as_u64().unwrap(), "sections of {what}");
        assert_eq!(s.entries, r["entries"].as_u64().unwrap(), "entries of {what}");
        assert_eq!(s.bad_entries, r["bad_entries"].as_u64().unwrap(), "bad entries of {what}");
        assert_eq!(s.lost_sections, 0, "{what}");
        assert_eq!(s.end, r["logical_end"].as_u64().unwrap(), "logical end of {what}");
        assert_eq!(s.file_end, r["file_end"].as_u64().unwrap(), "file end of {what}");
        let tail = s.tail.unwrap();
        match r["tail"].as_str().unwrap() {
            "clean_zero_marker" => assert!(matches!(tail, Tail::ZeroMarker { .. }), "{what}: {tail:?}"),
            "eof_no_room_for_marker" => assert!(matches!(tail, Tail::NoRoom { .. }), "{what}: {tail:?}"),
            other => panic!("unexpected reference tail {other}"),
        }
        if let Some(offset) = r["idx"]["offset"].as_u64() {
            assert_eq!(s.end, offset, "end of {what} vs its _cdc.idx");
        }
        checked += 1;
    }
    assert!(checked >= 90, "only {checked} reference rows");
}

/// Parses the `## Segment walk (...)` tables of a capture README:
/// folder -> file -> cells by column name.
fn readme_walk_tables(readme: &str) -> HashMap<String, HashMap<String, HashMap<String, String>>> {
    let mut tables = HashMap::new();
    let mut current: Option<String> = None;
    let mut columns: Vec<String> = Vec::new();
    for line in readme.lines() {
        if let Some(rest) = line.strip_prefix("## Segment walk (") {
            current = Some(rest.trim_end_matches(')').to_owned());
            columns.clear();
            continue;
        }
        if line.starts_with("## ") {
            current = None;
        }
        let Some(folder) = &current else { continue };
        if !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<String> = line.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect();
        if columns.is_empty() {
            columns = cells;
            continue;
        }
        let row: HashMap<String, String> = columns.iter().cloned().zip(cells.iter().cloned()).collect();
        tables.entry(folder.clone()).or_insert_with(HashMap::new).insert(cells[0].clone(), row);
    }
    tables
}

#[test]
fn captures_match_their_readme_walk_tables() {
    let Some(corpus) = corpus() else { return };
    let mut rows = 0;
    for capture in CAPTURES {
        let readme = std::fs::read_to_string(corpus.join(capture).join("README.md")).unwrap();
        let tables = readme_walk_tables(&readme);
        assert_eq!(tables.len(), 2, "{capture}: both walk tables");
        for (folder, files) in tables {
            let dir = corpus.join(capture).join(&folder);
            let opts = options_for(&corpus, capture);
            assert_eq!(files.len(), segment_files(&dir).len(), "{capture}/{folder}: every segment is in the table");
            for (file, row) in files {
                let seg = Segment::open(dir.join(&file)).unwrap();
                let s = seg.walk(&opts).unwrap();
                let what = format!("{capture}/{folder}/{file}");
                assert_eq!(s.sections.to_string(), row["sync sections"], "{what}");
                if let Some(entries) = row.get("entries") {
                    assert_eq!(&s.entries.to_string(), entries, "{what}");
                }
                if let Some(last) = row.get("last sync offset") {
                    assert_eq!(&s.end.to_string(), last, "{what}");
                }
                if let Some(file_end) = row.get("last marker end (file)") {
                    assert_eq!(&s.file_end.to_string(), file_end, "{what}");
                }
                if let Some(header_end) = row.get("header end") {
                    assert_eq!(&seg.descriptor().header_len.to_string(), header_end, "{what}");
                }
                if let Some(sum) = row.get("sum of uncompressed section lengths") {
                    let header = seg.descriptor().header_len as u64;
                    assert_eq!((s.end - header - 8 * s.sections).to_string(), *sum, "{what}");
                }
                if let Some(idx) = row.get("_cdc.idx")
                    && idx != "None"
                {
                    let offset = idx.split('|').next().unwrap();
                    assert_eq!(&s.end.to_string(), offset, "{what}");
                }
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 5 * 17);
}

#[test]
fn every_v6_v7_segment_reads_without_loss_and_ends_at_its_idx() {
    let Some(corpus) = corpus() else { return };
    let mut segments = 0;
    for dir in segment_dirs(&corpus) {
        let folder = folder_of(&corpus, &dir);
        let opts = options_for(&corpus, &folder);
        for file in segment_files(&dir) {
            let name = SegmentName::from_path(&file).unwrap();
            if name.version < 6 {
                continue;
            }
            let seg = Segment::open(&file).unwrap_or_else(|e| panic!("{e}"));
            let strict = opts.clone().strict(true);
            let s = seg.walk(&strict).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((s.bad_entries, s.lost_sections), (0, 0), "{}", file.display());
            assert_eq!(s.tail.unwrap().class(), TailClass::Clean);
            let idx = file.with_file_name(name.cdc_index_file_name());
            if let IdxState::Ready(i) = read_cdc_index(&idx).unwrap() {
                assert_eq!(s.end, i.offset, "{}", file.display());
                // Bounded by its own idx the reader sees the same entries
                // and ends at the bound.
                let bounded = seg.walk(&opts.clone().limit(i.offset)).unwrap();
                assert_eq!(bounded.entries, s.entries);
                assert_eq!(bounded.tail, Some(Tail::Limit { logical: i.offset }));
            }
            segments += 1;
        }
    }
    // 7 legacy v6/v7 files, 5 captures of 8 + 9 files, 5 benchmark files.
    assert_eq!(segments, 7 + 5 * 17 + 5);
}

#[test]
fn legacy_2x_segments_are_refused_by_version() {
    let Some(corpus) = corpus() else { return };
    let mut refused = 0;
    for folder in
        ["2.0", "2.1", "2.2", "2.2-lz4", "2.2-snappy", "2.2-lz4-bitrot", "2.2-lz4-bitrot2", "2.2-lz4-truncated"]
    {
        for file in segment_files(&corpus.join("legacy").join(folder)) {
            let want = SegmentName::from_path(&file).unwrap().version;
            match Segment::open(&file) {
                Err(Error::UnsupportedVersion { found, loc }) => {
                    assert_eq!(found, want);
                    assert_eq!(loc.file.as_deref(), Some(file.as_path()));
                }
                other => panic!("{}: {other:?}", file.display()),
            }
            // The bytes alone (no name) are refused by the header's version
            // too, for every file that has a header.
            let bytes = std::fs::read(&file).unwrap();
            assert!(matches!(Segment::from_data(&bytes[..]), Err(Error::UnsupportedVersion { .. })));
            refused += 1;
        }
    }
    assert_eq!(refused, 4 + 2 + 2 + 2 + 2 + 1 + 1 + 1);
}

#[test]
fn entries_carry_positions_that_chain_through_sections() {
    let Some(corpus) = corpus() else { return };
    for (folder, file) in [
        ("cassandra-4.0.0/cdc_raw_after_shutdown", "CommitLog-7-1795433791768.log"),
        ("cassandra-4.0.0-lz4/cdc_raw_after_shutdown", "CommitLog-7-1795434137980.log"),
        ("cassandra-4.0.0-encrypted/cdc_raw_after_shutdown", "CommitLog-7-1795434207351.log"),
    ] {
        let seg = Segment::open(corpus.join(folder).join(file)).unwrap();
        let mut reader = seg.reader(&options_for(&corpus, folder)).unwrap();
        let mut expect_next = None;
        let mut section_end = 0;
        let mut next_entry = 0;
        while let Some(item) = reader.next().unwrap() {
            match item {
                Item::Section(s) => {
                    assert_eq!(expect_next.unwrap_or(s.start), s.start, "sections chain");
                    assert_eq!(s.content_start, s.start + 8);
                    expect_next = Some(s.end);
                    section_end = s.end;
                    next_entry = s.content_start;
                }
                Item::Entry(e) => {
                    assert_eq!(e.start, next_entry, "entries are back to back");
                    next_entry = e.position;
                    assert_eq!(e.position - e.start, e.mutation.len() as u64 + 12);
                    assert!(e.position <= section_end);
                    assert_eq!(e.segment_id, seg.id());
                    if seg.descriptor().compression().is_none() && seg.descriptor().encryption().is_none() {
                        assert_eq!(e.file_offset, Some(e.start));
                    } else {
                        assert_eq!(e.file_offset, None);
                    }
                }
                Item::Loss(l) => panic!("{l}"),
            }
        }
    }
}

#[test]
fn plain_entries_are_views_of_the_map() {
    let Some(corpus) = corpus() else { return };
    let seg =
        Segment::open(corpus.join("cassandra-4.0.0/cdc_raw_after_shutdown/CommitLog-7-1795433791768.log")).unwrap();
    let base = seg.data().as_ptr() as usize;
    let mut reader = seg.reader(&ReadOptions::new()).unwrap();
    let mut n = 0;
    while let Some(e) = reader.next_entry().unwrap() {
        let at = e.mutation.as_ptr() as usize - base;
        assert_eq!(at as u64, e.start + 8, "borrowed in place, not copied");
        n += 1;
    }
    assert_eq!(n, 28);
}
