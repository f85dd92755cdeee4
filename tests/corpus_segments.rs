//! The segment reader against every segment Cassandra wrote in the corpus:
//! counts from `reference_counts.jsonl` and the segment-walk tables of each
//! capture's README, ends that agree with the `_cdc.idx` offsets by
//! Cassandra's rules (a live idx at a section end at or below the end, a
//! completed one the end or, after a replay, the file's physical length),
//! and the legacy 2.x files refused by their version.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::segment::{Error, Item, ReadOptions, ResumePoint, Segment, SegmentName, Tail, TailClass};
use common::{CAPTURES, corpus, idx_agrees, options_for, reference_counts, segment_dirs, segment_files};

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
            let completed = r["idx"]["completed"].as_bool().unwrap();
            let file_len = r["file_len"].as_u64().unwrap();
            assert!(idx_agrees(s.end, offset, completed, file_len), "end {} of {what} vs its _cdc.idx {offset}", s.end);
            // Where the reference says so, the idx is the end itself.
            if r["idx_matches_section_end"].as_bool() == Some(true) {
                assert_eq!(s.end, offset, "{what}");
            }
        }
        checked += 1;
    }
    // 97 rows from before the crash and replica captures, 40 of them.
    assert_eq!(checked, 137, "reference rows");
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
fn every_v6_v7_segment_reads_without_loss_and_agrees_with_its_idx() {
    let Some(corpus) = corpus() else { return };
    let (mut segments, mut live, mut past_idx, mut replayed) = (0, 0, 0, 0);
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
                let file_len = std::fs::metadata(&file).unwrap().len();
                assert!(idx_agrees(s.end, i.offset, i.completed, file_len), "{}: {i:?}, end {}", file.display(), s.end);
                if !i.completed {
                    // A live idx is a section's end: bounded by it the
                    // reader sees the entries that end at or before it, and
                    // stops exactly there.
                    let mut within = 0;
                    let mut reader = seg.reader(&opts).unwrap();
                    while let Some(e) = reader.next_entry().unwrap() {
                        within += u64::from(e.position <= i.offset);
                    }
                    let bounded = seg.walk(&opts.clone().limit(i.offset)).unwrap();
                    assert_eq!(bounded.entries, within, "{}", file.display());
                    assert_eq!(bounded.tail, Some(Tail::Limit { logical: i.offset }), "{}", file.display());
                    live += 1;
                    past_idx += s.entries - within;
                } else if s.end != i.offset {
                    replayed += 1;
                }
            }
            segments += 1;
        }
    }
    // 7 legacy v6/v7 files, 5 captures of 8 + 9 files, 5 benchmark files,
    // the crash captures' 11 (plain) and 14 (LZ4) files, the replicas' 15.
    assert_eq!(segments, 7 + 5 * 17 + 5 + 11 + 14 + 15);
    // Live idx files: one a capture's cdc_raw_live, and the crash and
    // replica copies taken while the node ran or was dead.
    assert_eq!(live, 5 + 2 + 2 + 3);
    // The plain crash's segment, killed with its idx at 776504 and its
    // markers chained to 815413: synced entries past its idx.
    assert!(past_idx > 0, "the crashed plain segment holds synced entries past its idx");
    // Replay-rewritten idx files whose offset is not the data's end: the
    // LZ4 crash's two segments in its after-restart and final copies, the
    // plain crash's one in the same two.
    assert_eq!(replayed, 2 * 2 + 2);
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

/// What a walk returns, as comparable values.
#[derive(Clone, Debug, PartialEq)]
enum Walked {
    Entry(u64, Vec<u8>),
    Loss(String),
}

fn walk_items(
    seg: &Segment,
    opts: &ReadOptions,
) -> (Vec<Walked>, Vec<cassandra_commitlog::segment::Section>, u64, String) {
    let mut reader = seg.reader(opts).unwrap();
    let (mut items, mut sections) = (Vec::new(), Vec::new());
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Entry(e) => items.push(Walked::Entry(e.position, e.mutation.to_vec())),
            Item::Loss(l) => items.push(Walked::Loss(format!("{l:?}"))),
            Item::Section(s) => sections.push(s),
        }
    }
    let s = reader.summary();
    (items, sections, s.end, format!("{:?}", s.tail))
}

/// The entries (`true`) or the losses of a walk.
fn pick(items: &[Walked], entries: bool) -> Vec<Walked> {
    items.iter().filter(|w| matches!(w, Walked::Entry(..)) == entries).cloned().collect()
}

/// A walk resumed at `point` after `after` returns what the full walk
/// (`items`, `end`, `tail`) returns after `after`, with the losses of a
/// walk from the start after it (not those before), and ends where the full
/// walk ends.
fn assert_resumes(
    seg: &Segment,
    opts: &ReadOptions,
    point: ResumePoint,
    after: u64,
    (items, end, tail): (&[Walked], u64, &str),
    at: &str,
) {
    let want: Vec<&Walked> = items.iter().filter(|w| matches!(w, Walked::Entry(p, _) if *p > after)).collect();
    let (got, _, got_end, got_tail) = walk_items(seg, &opts.clone().after(after).resume_from(point));
    let from_start = walk_items(seg, &opts.clone().after(after)).0;
    assert_eq!(pick(&got, true).iter().collect::<Vec<_>>(), want, "{at}");
    assert_eq!(pick(&got, false), pick(&from_start, false), "{at}");
    assert_eq!((got_end, got_tail.as_str()), (end, tail), "{at}");
}

/// Calls `f` with every readable segment of the corpus and its read
/// options, then with a copy whose second section has a damaged byte.
fn each_readable_and_damaged(corpus: &Path, mut f: impl FnMut(&Path, &ReadOptions, &Segment)) {
    for dir in segment_dirs(corpus) {
        let opts = options_for(corpus, &folder_of(corpus, &dir));
        for file in segment_files(&dir) {
            let Ok(seg) = Segment::open(&file) else { continue };
            if seg.reader(&opts).is_err() {
                continue;
            }
            f(&file, &opts, &seg);
            let mut damaged = seg.data().to_vec();
            if let Some(second) = walk_items(&seg, &opts).1.get(1)
                && (second.file_offset as usize) + 40 < damaged.len()
            {
                damaged[second.file_offset as usize + 30] ^= 0xff;
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                f(&file, &opts, &Segment::from_named_data(bytes::Bytes::from(damaged), &name).unwrap());
            }
        }
    }
}

/// A walk resumed at any section a full walk met, after any position in
/// it, returns exactly what the full walk returns after that position, and
/// ends where it ends: on every segment of the corpus (plain, LZ4, Zstd,
/// encrypted), and on a copy whose second section is damaged.
#[test]
fn a_walk_resumed_at_a_section_returns_the_rest_of_the_full_walk() {
    let Some(corpus) = corpus() else { return };
    let mut resumed = 0;
    each_readable_and_damaged(&corpus, |file, opts, seg| {
        let (items, sections, end, tail) = walk_items(seg, opts);
        // A stride over the sections keeps the big segments quick.
        let stride = (sections.len() / 16).max(1);
        for s in sections.iter().step_by(stride) {
            for after in [s.start, s.content_start + 1, s.end - 1] {
                let at = format!("{} from {s:?} after {after}", file.display());
                assert_resumes(seg, opts, s.resume_point(), after, (&items, end, &tail), &at);
                resumed += 1;
            }
        }
    });
    assert!(resumed > 1000, "{resumed}");
}

/// Walks `seg` until `stop` items (sections not counted) have come, and
/// gives the reader's resume point then and how far it read (the position
/// of the last entry, or the end of a loss after it).
fn stop_after(seg: &Segment, opts: &ReadOptions, stop: usize) -> (Option<ResumePoint>, u64) {
    let mut reader = seg.reader(opts).unwrap();
    let (mut seen, mut last) = (0, 0);
    while seen < stop {
        match reader.next().unwrap() {
            Some(Item::Entry(e)) => {
                last = e.position;
                seen += 1;
            }
            Some(Item::Loss(l)) => {
                last = last.max(l.end);
                seen += 1;
            }
            Some(Item::Section(_)) => {}
            None => break,
        }
    }
    (reader.resume_point(), last)
}

/// A walk stopped after any entry and resumed at the reader's own point
/// (mid-section) returns exactly what the full walk returns after that
/// entry, with the losses of a walk from the start after it, and ends where
/// the full walk ends: every segment of the corpus (plain, LZ4, Zstd,
/// encrypted), and a copy whose second section is damaged.
#[test]
fn a_walk_resumed_mid_section_returns_the_rest_of_the_full_walk() {
    let Some(corpus) = corpus() else { return };
    let mut resumed = 0;
    each_readable_and_damaged(&corpus, |file, opts, seg| {
        let (items, _, end, tail) = walk_items(seg, opts);
        let stride = (items.len() / 12).max(1);
        for stop in (1..=items.len()).step_by(stride).chain([items.len()]) {
            let (point, after) = stop_after(seg, opts, stop);
            let Some(point) = point else { continue };
            assert!(point.logical() <= after, "{}: {point:?} {after}", file.display());
            let at = format!("{} stopped after {stop} items ({after})", file.display());
            assert_resumes(seg, opts, point, after, (&items, end, &tail), &at);
            resumed += 1;
        }
    });
    assert!(resumed > 500, "{resumed}");
}

/// A walk resumed at a point mid-section starts at that point: the entries
/// of the section before it are not walked again. Shown on a plain segment
/// whose first entry of a section has its size damaged after the point was
/// taken: a walk resumed at the section's start (with the same `after`)
/// loses the rest of the section to it; one resumed at the point loses
/// nothing.
#[test]
fn a_walk_resumed_mid_section_does_not_walk_the_entries_before_again() {
    let Some(corpus) = corpus() else { return };
    let file = segment_files(&corpus.join("bench-4.0.0/cdc_raw")).into_iter().next().expect("a bench segment");
    let seg = Segment::open(&file).unwrap();
    let opts = ReadOptions::new();
    // The tenth entry of the second section, and the first entry's offset.
    let mut reader = seg.reader(&opts).unwrap();
    let (mut sections, mut in_section, mut first_at, mut stop) = (0, 0, 0, 0usize);
    let mut seen = 0;
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Section(_) => {
                sections += 1;
                in_section = 0;
            }
            Item::Entry(e) => {
                seen += 1;
                in_section += 1;
                if sections == 2 && in_section == 1 {
                    first_at = e.file_offset.expect("plain entries are in the file") as usize;
                }
                if sections == 2 && in_section == 10 {
                    stop = seen;
                    break;
                }
            }
            Item::Loss(l) => panic!("{l:?}"),
        }
    }
    assert!(stop > 0, "a second section of at least ten entries");
    let (point, after) = stop_after(&seg, &opts, stop);
    let point = point.expect("a point mid-section");
    let (full, sections_met, ..) = walk_items(&seg, &opts);
    let section_start = sections_met[1].resume_point();
    assert!(section_start.logical() < point.logical() && point.logical() == after);
    let want: Vec<Walked> = full.into_iter().filter(|w| matches!(w, Walked::Entry(p, _) if *p > after)).collect();
    let mut bytes = seg.data().to_vec();
    bytes[first_at] ^= 0x40;
    let damaged =
        Segment::from_named_data(bytes::Bytes::from(bytes), &file.file_name().unwrap().to_string_lossy()).unwrap();
    let (got, ..) = walk_items(&damaged, &opts.clone().after(after).resume_from(point));
    assert_eq!(got, want);
    let (at_section, ..) = walk_items(&damaged, &opts.clone().after(after).resume_from(section_start));
    assert!(at_section.iter().any(|w| matches!(w, Walked::Loss(_))), "the damage is met from the section start");
    assert!(at_section.len() < want.len());
}

/// A resume point taken from another segment is a wrong hint, not a
/// crash: section points and points within sections of each corpus
/// capture's first segments, tried on the others, give walks that end,
/// with no panic.
#[test]
fn a_resume_point_from_another_segment_never_panics() {
    let Some(corpus) = corpus() else { return };
    let mut segs = Vec::new();
    for dir in segment_dirs(&corpus) {
        let folder = folder_of(&corpus, &dir);
        if let Some(file) = segment_files(&dir).into_iter().next()
            && let Ok(seg) = Segment::open(&file)
        {
            segs.push((seg, options_for(&corpus, &folder)));
        }
    }
    let mut tried = 0;
    for (a, a_opts) in &segs {
        let (items, sections, ..) = walk_items(a, a_opts);
        // Section starts, and points within sections where walks stopped.
        let mut points: Vec<ResumePoint> =
            sections.iter().step_by((sections.len() / 8).max(1)).map(|s| s.resume_point()).collect();
        points.extend(
            (1..=items.len()).step_by((items.len() / 8).max(1)).filter_map(|stop| stop_after(a, a_opts, stop).0),
        );
        for (b, b_opts) in &segs {
            for &point in &points {
                if let Ok(mut r) = b.reader(&b_opts.clone().resume_from(point)) {
                    let mut n = 0u64;
                    while let Ok(Some(_)) = r.next() {
                        n += 1;
                        assert!(n < 10_000_000, "the walk ends");
                    }
                    tried += 1;
                }
            }
        }
    }
    assert!(tried > 100, "{tried}");
}
