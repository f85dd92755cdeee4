//! The bodies of the fuzz targets, shared with `tests/fuzz_regressions.rs`
//! so that `cargo test` replays every saved crash input through exactly the
//! code the fuzzer ran.

#![allow(dead_code)]

pub mod oracle;

use cassandra_commitlog::builder::{self, BuildFormat};
use cassandra_commitlog::segment::{Compression, Item, LossKind, ReadBuffers, ReadOptions, ResumePoint, Segment, Tail};

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
                // A gap skipped after a corrupt marker, or a notice that a
                // section ends before its `next` said, is not reported when
                // it lies at or before `after` (consumed already): the chain
                // then restarts there.
                let unreported = opts.resume_after().is_some_and(|a| s.start <= a);
                assert!(s.start == last_section_end || unreported, "sections chain: {s:?} after {last_section_end}");
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
            // A gap skipped after a corrupt marker moves the walk on; a
            // report of a wrong `next` may end the section early.
            Item::Loss(l) if matches!(l.kind, LossKind::CorruptMarker { .. }) => {
                assert!(l.start == last_section_end && l.end >= l.start, "{l}");
                assert!(l.file_offset < l.file_end, "{l}");
                last_section_end = l.end;
                last_position = l.end;
            }
            Item::Loss(l) if l.kind.is_repaired() => {
                assert!(l.start == l.end && l.end <= last_section_end && l.end >= last_position, "{l}");
                last_section_end = l.end;
            }
            Item::Loss(l) => {
                assert!(l.start <= l.end && l.end <= last_section_end, "{l}");
                last_position = last_position.max(l.end);
            }
        }
    }
    let summary = reader.summary();
    assert_eq!(summary.entries, entries);
    let unreported = opts.resume_after().is_some_and(|a| summary.end <= a);
    assert!(summary.end == last_section_end || unreported, "{} vs {last_section_end}", summary.end);
}

/// Target `segment`: a whole segment from arbitrary bytes.
pub fn segment(data: &[u8]) {
    walk(data, &ReadOptions::new().key(ALIAS, KEY.to_vec()));
    walk(data, &ReadOptions::new().strict(true).max_section_len(1 << 20));
}

/// The section format a `sections` input's first byte picks.
pub fn sections_format(pick: u8) -> BuildFormat {
    match pick % 8 {
        0 | 7 => BuildFormat::Plain,
        n @ 1..=5 => BuildFormat::Compressed(Compression::ALL[n as usize - 1]),
        _ => BuildFormat::Encrypted { alias: ALIAS.into(), key: KEY.to_vec(), iv: [3; 16], chunk_len: 64 },
    }
}

/// The header the `sections` target puts before its input's sections.
pub fn sections_header(format: &BuildFormat) -> Vec<u8> {
    builder::header(7, SECTIONS_ID, &builder::params_json(format))
}

/// The segment id of the `sections` target's header.
pub const SECTIONS_ID: i64 = 0x0102_0304_0506;

/// Target `sections`: arbitrary sections behind a valid header, so that
/// inputs get past the descriptor. The first byte picks the section format
/// and the read options.
pub fn sections(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let format = sections_format(pick);
    let mut bytes = sections_header(&format);
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
    if pick & 0x80 != 0 && pick & 0x10 == 0 {
        resumed(&bytes, &opts);
    }
}

/// A walk resumed at a section of an earlier walk (with that walk's
/// buffers, so that a section they hold is taken as decoded) returns the
/// earlier walk's entries after the resume position, and ends where it
/// ended. Tried at the middle and at the last section met, and at a
/// reader's own point within a section after the middle and last entries.
fn resumed(data: &[u8], opts: &ReadOptions) {
    let Ok(seg) = Segment::from_data(data) else { return };
    let Ok(mut reader) = seg.reader(opts) else { return };
    let (mut sections, mut entries) = (Vec::new(), Vec::new());
    while let Ok(Some(item)) = reader.next() {
        match item {
            Item::Section(s) => sections.push(s),
            Item::Entry(e) => entries.push((e.position, e.mutation.to_vec())),
            Item::Loss(_) => {}
        }
    }
    let whole = (entries, reader.summary().end, reader.summary().tail);
    let mut buffers = Some(reader.into_buffers());
    for s in [sections.get(sections.len() / 2), sections.last()].into_iter().flatten() {
        let after = opts.resume_after().unwrap_or(0).max(s.start);
        if !rest_matches(&seg, opts, s.resume_point(), after, &whole, &mut buffers) {
            return;
        }
    }
    // At the reader's own point within a section, after the middle entry
    // and after the last.
    for stop in [whole.0.len() / 2, whole.0.len()] {
        let Ok(mut r) = seg.reader_with(opts, buffers.take().unwrap_or_default()) else { return };
        let (mut seen, mut read_to) = (0, opts.resume_after().unwrap_or(0));
        while seen < stop {
            match r.next() {
                Ok(Some(Item::Entry(e))) => {
                    seen += 1;
                    read_to = read_to.max(e.position);
                }
                Ok(Some(Item::Loss(l))) => read_to = read_to.max(l.end),
                Ok(Some(Item::Section(_))) => {}
                _ => break,
            }
        }
        let point = r.resume_point();
        buffers = Some(r.into_buffers());
        let Some(point) = point else { continue };
        assert!(point.logical() <= read_to, "{point:?} past what was read ({read_to})");
        if !rest_matches(&seg, opts, point, read_to, &whole, &mut buffers) {
            return;
        }
    }
}

/// A whole walk: its entries (position, bytes), its end and its tail.
type Walk = (Vec<(u64, Vec<u8>)>, u64, Option<Tail>);

/// A walk resumed at `point` after `after` returns the whole walk's
/// entries after `after` and ends where it ended (`false`: no reader).
fn rest_matches(
    seg: &Segment<&[u8]>,
    opts: &ReadOptions,
    point: ResumePoint,
    after: u64,
    (entries, end, tail): &Walk,
    buffers: &mut Option<ReadBuffers>,
) -> bool {
    let resumed = opts.clone().after(after).resume_from(point);
    let Ok(mut r) = seg.reader_with(&resumed, buffers.take().unwrap_or_default()) else { return false };
    let mut got = Vec::new();
    while let Ok(Some(item)) = r.next() {
        if let Item::Entry(e) = item {
            got.push((e.position, e.mutation.to_vec()));
        }
    }
    let want: Vec<_> = entries.iter().filter(|(p, _)| *p > after).cloned().collect();
    assert_eq!(got, want, "resumed at {point:?} after {after}");
    assert_eq!((r.summary().end, r.summary().tail), (*end, *tail), "resumed at {point:?}");
    *buffers = Some(r.into_buffers());
    true
}

use std::sync::OnceLock;

use cassandra_commitlog::mutation::debezium::Envelope;
use cassandra_commitlog::mutation::{Change, ChangeWriter, Context, Decoder};
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
/// schema. Whatever decodes is walked to its last value, digested, and
/// rendered in both formats (the envelope as JSON lines that parse).
pub fn mutation(data: &[u8]) {
    let schema = fuzz_schema();
    let mut decoder = Decoder::new();
    for unsigned in [false, true] {
        let ctx = Context { unsigned_deletion_times: unsigned, ..Context::default() };
        let decoded = decoder.decode(data, schema, ctx);
        // The fast change-format writer gives exactly the serde path's bytes.
        let mut fast = Vec::new();
        ChangeWriter::new().write_line(&mut fast, &decoded);
        let mut slow = match &decoded {
            Ok(m) => serde_json::to_vec(m),
            Err(u) => serde_json::to_vec(&**u),
        }
        .expect("mutations render");
        slow.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
        let m = match decoded {
            Ok(m) => m,
            Err(u) => {
                assert!((u.error.error.offset() as usize) <= data.len());
                serde_json::to_string(&*u).expect("partial mutations render");
                continue;
            }
        };
        for u in m.updates() {
            let _ = u.partition_key().count();
            let _ = u.digest();
            for change in u.changes() {
                if let Change::Row { row, .. } = change {
                    let _ = row.primary_key().map(|k| k.to_json());
                    for c in row.columns() {
                        let _ = c.merged().map(|m| m.to_json());
                    }
                }
            }
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
        // The Debezium envelope: one JSON line per record, whatever the bytes.
        let mut lines = Vec::new();
        Envelope::new("fuzz").write_lines(&mut lines, &m);
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            // Syntax only: exact varints may exceed what serde_json's
            // default number types hold ("number out of range").
            serde_json::from_slice::<serde::de::IgnoredAny>(line).expect("envelope lines are JSON");
            assert!(line.windows(6).any(|w| w == b"\"op\":\""), "{}", String::from_utf8_lossy(line));
        }
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

use cassandra_commitlog::cdc::{CdcIndex, IdxState, Observed, Position, ReadResult, Tracker, parse_cdc_index};
use cassandra_commitlog::location::Location;
use cassandra_commitlog::segment::SegmentName;

/// Target `idx`: the `_cdc.idx` parser on arbitrary bytes. Whatever parses,
/// every prefix of it (what a read racing the rewrite sees) parses to an
/// offset no greater, and completed only when whole.
pub fn idx(data: &[u8]) {
    let Ok(Some(full)) = parse_cdc_index(data, &Location::default()) else { return };
    for cut in 0..data.len() {
        match parse_cdc_index(&data[..cut], &Location::default()) {
            Ok(None) => assert_eq!(cut, 0),
            Ok(Some(p)) => {
                assert!(p.offset <= full.offset);
                assert!(!p.completed || full.completed);
            }
            Err(e) => panic!("a prefix of a valid idx is not an error: {e}"),
        }
    }
}

/// What the `dir_events` target's model knows of one segment.
#[derive(Clone, Copy, Default)]
struct ModelSeg {
    log: bool,
    idx: Option<(u64, bool)>,
    /// Read to the end of a completed segment, without damage.
    finished: bool,
    damaged: bool,
    consumed: u64,
    /// The highest idx offset the tracker has been shown, and whether any
    /// showing said completed: durable data stays durable.
    observed: (u64, bool),
    /// Whether the log was there at the last observation (the tracker
    /// decides on what it was shown).
    seen_log: bool,
    /// It appeared at or behind the last position consumed (a replay links
    /// a finished segment again): never read, cleaned up once acknowledged.
    behind: bool,
    /// A listing showed a newer segment with an idx beside it (what the
    /// abandonment rule needs, besides its grace; a decision that sticks).
    behind_newer: bool,
}

/// Target `dir_events`: a sequence of directory changes (segments and idx
/// files created, advanced, deleted), reads, acknowledgements, cleanups and
/// the passing of time, driven through the watcher's [`Tracker`], checking
/// what must hold: reads in segment order, never past the durable offset of
/// a segment that is neither completed nor behind a newer idx, and cleanup
/// only of finished, undamaged, acknowledged segments (or orphaned idx
/// files behind the acknowledgement).
pub fn dir_events(data: &[u8]) {
    let mut model: std::collections::BTreeMap<i64, ModelSeg> = Default::default();
    let grace = std::time::Duration::from_secs(4);
    let mut t = Tracker::new(None).abandoned_after(Some(grace));
    let mut now = std::time::Instant::now();
    let mut acked: Option<Position> = None;
    // The last position consumed, and whether its segment was finished.
    let mut floor: Option<(Position, bool)> = None;
    let mut bytes = data.iter().copied();
    let name = |id: i64| SegmentName { version: 7, id };
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        let id = (arg % 8) as i64;
        match op % 8 {
            0 => model.entry(id).or_default().log = true,
            1 => {
                let s = model.entry(id).or_default();
                let (off, done) = s.idx.unwrap_or((0, false));
                s.idx = Some((off + (arg as u64 >> 3) * 40, done || arg & 4 != 0));
            }
            2 => {
                if let Some(s) = model.get_mut(&id) {
                    s.log = false;
                }
            }
            3 => {
                if let Some(s) = model.get_mut(&id) {
                    s.idx = None;
                }
            }
            4 => {
                let listing: Vec<Observed> = model
                    .iter()
                    .filter(|(_, s)| s.log || s.idx.is_some())
                    .map(|(&id, s)| Observed {
                        name: name(id),
                        log: s.log,
                        idx: s.idx.map_or(IdxState::Missing, |(offset, completed)| {
                            IdxState::Ready(CdcIndex { offset, completed })
                        }),
                    })
                    .collect();
                let newest_idx = model.iter().filter(|(_, s)| s.idx.is_some()).map(|(&id, _)| id).max();
                for (&id, s) in model.iter_mut() {
                    s.behind_newer |= s.log && newest_idx.is_some_and(|n| n > id);
                    if s.log && !s.seen_log {
                        s.behind = floor.is_some_and(|(p, fin)| id < p.segment_id || (id == p.segment_id && fin));
                    }
                    s.seen_log = s.log;
                    if !s.log {
                        // A segment whose log is gone is forgotten by the
                        // tracker; one appearing again under the same id is new.
                        (s.finished, s.damaged, s.consumed, s.observed) = (false, false, 0, (0, false));
                        s.behind_newer = false;
                    }
                    if let Some((offset, completed)) = s.idx {
                        s.observed = (s.observed.0.max(offset), s.observed.1 || completed);
                    }
                }
                // Time passes between listings: a tenth of the grace, or all of it.
                now += if arg & 0x80 != 0 { grace } else { grace / 10 };
                t.observe(&listing, now);
            }
            5 => {
                let Some(plan) = t.next_read() else { continue };
                let s = model.get(&plan.name.id).copied().unwrap_or_default();
                let (durable, completed) = s.observed;
                match plan.limit {
                    Some(limit) => {
                        assert!(limit <= durable, "never past the durable offset");
                        assert!(plan.after <= limit);
                    }
                    None => assert!(completed || s.behind_newer, "read to the end: completed, or abandoned"),
                }
                assert!(!plan.finishes || completed || plan.abandoned.is_some());
                let end = plan.limit.unwrap_or(plan.after + 40 * (arg as u64 & 3));
                let consumed = plan.after + end.saturating_sub(plan.after) * (arg as u64 % 3) / 2;
                let result = ReadResult {
                    consumed,
                    at_end: consumed == end || arg & 8 != 0,
                    broken_at: (arg & 0x30 == 0x30).then_some(consumed),
                    damaged: arg & 0x40 != 0,
                    end,
                    file_len: 4096,
                };
                let _ = t.read_done(&plan, result);
                let m = model.entry(plan.name.id).or_default();
                assert!(!m.behind, "a segment behind the consumed position is read again");
                m.consumed = m.consumed.max(consumed);
                m.damaged |= result.damaged || result.broken_at.is_some();
                m.finished |= plan.finishes && result.at_end && result.broken_at.is_none();
                let p = (Position { segment_id: plan.name.id, offset: m.consumed }, m.finished);
                if floor.is_none_or(|(f, _)| p.0 >= f) {
                    floor = Some(p);
                }
            }
            6 => {
                let p = Position { segment_id: id, offset: arg as u64 * 64 };
                t.ack(p);
                acked = Some(acked.map_or(p, |a| a.max(p)));
            }
            _ => {
                for n in t.cleanup_candidates() {
                    let s = model.get(&n.id).copied().unwrap_or_default();
                    let acked_to = |pos: Position| acked.is_some_and(|a| a >= pos);
                    let orphan = !s.seen_log && acked.is_some_and(|a| n.id < a.segment_id);
                    let finished =
                        s.finished && !s.damaged && acked_to(Position { segment_id: n.id, offset: s.consumed });
                    let behind = s.behind && acked.is_some_and(|a| a.segment_id >= n.id);
                    assert!(
                        orphan || finished || behind,
                        "cleanup of segment {} that is not finished and acknowledged",
                        n.id
                    );
                    model.remove(&n.id);
                    t.cleaned(n.id);
                }
            }
        }
    }
}

/// Target `damage`: a valid segment built from the input (format, sections,
/// entries), then damage to the marker and length fields of one section
/// only (its `next`, its marker CRC, its declared uncompressed length, the
/// sizes of its entries), judged by [`oracle::check`] against the walk of
/// the undamaged segment, tolerant and resuming.
pub fn damage(data: &[u8]) {
    let Some((head, edits)) = data.split_first_chunk::<4>() else { return };
    let format = match head[0] % 8 {
        0 | 7 => BuildFormat::Plain,
        n @ 1..=5 => BuildFormat::Compressed(Compression::ALL[n as usize - 1]),
        _ => BuildFormat::Encrypted { alias: ALIAS.into(), key: KEY.to_vec(), iv: [3; 16], chunk_len: 48 },
    };
    let plain = matches!(format, BuildFormat::Plain);
    let mut b = builder::SegmentBuilder::new(7, 0x0102_0304_0506, format);
    let sections = 2 + head[1] as usize % 5;
    // Where each section's entries are in the file (plain only).
    let mut entry_sizes: Vec<Vec<usize>> = Vec::new();
    for i in 0..sections {
        let count = (head[2] as usize >> (i % 4)) % 4;
        let mut sizes = Vec::new();
        for j in 0..count {
            let len = 10 + (i * 31 + j * 17 + head[3] as usize) % 90;
            let body: Vec<u8> = (0..len).map(|k| (k * 7 + i * 13 + j) as u8).collect();
            let e = b.entry(&body);
            sizes.push(e.start as usize);
        }
        b.sync();
        entry_sizes.push(sizes);
    }
    let built: Vec<_> = b.sections().to_vec();
    let bytes = if plain && head[3] & 1 == 1 { b.preallocate(64 << 10).finish() } else { b.finish() };
    let opts = ReadOptions::new().key(ALIAS, KEY.to_vec()).max_section_len(1 << 20);
    let r = oracle::reference(&bytes, &opts);
    // The builder is the independent witness of the undamaged walk.
    assert_eq!(r.sections.len(), built.len());
    for (s, bs) in r.sections.iter().zip(&built) {
        assert_eq!((s.file_offset, s.file_end, s.start, s.end), (bs.file_offset, bs.file_end, bs.start, bs.end));
    }
    let target = head[1] as usize / 5 % sections;
    let s = built[target];
    let mut fields: Vec<usize> = (s.file_offset as usize..s.file_offset as usize + 8).collect();
    if !plain {
        fields.extend(s.file_offset as usize + 8..s.file_offset as usize + 12);
    } else {
        // Plain logical positions are file offsets.
        for &start in &entry_sizes[target] {
            fields.extend(start..start + 4);
        }
    }
    let mut copy = bytes.clone();
    let mut at = Vec::new();
    // `fields` is a run of 4-byte fields: which ones the edits changed.
    let mut touched = std::collections::BTreeSet::new();
    for edit in edits.chunks_exact(2).take(6) {
        let i = edit[0] as usize % fields.len();
        copy[fields[i]] ^= edit[1];
        if edit[1] != 0 {
            at.push(fields[i]);
            touched.insert(i / 4);
        }
    }
    if copy == bytes {
        return;
    }
    let several = touched.len() > 1;
    let mut tally = oracle::Tally::default();
    oracle::check(&r, &copy, &opts, at[0], several, "fuzz damage", &mut tally);
    if let Some((&position, _)) = r.entries.iter().nth(r.entries.len() / 2) {
        oracle::check(&r, &copy, &opts.clone().after(position), at[0], several, "fuzz damage, resumed", &mut tally);
    }
}

/// The `schema_log` target: a sequence of DDL statements written as
/// Cassandra writes them (create, alter, drop of tables and types, drop of
/// the keyspace, truncations), some with a byte of their mutation flipped,
/// applied by a schema tracker. Whatever the bytes: no panic; a mutation
/// that does not decode is reported, never applied in part silently; every
/// schema built holds only tables with a partition key; and the tracker
/// saved and restored has the same schema.
pub fn schema_log(data: &[u8]) {
    use cassandra_commitlog::builder::DdlWriter;
    use cassandra_commitlog::mutation::{Context, Decoder};
    use cassandra_commitlog::schema::{CqlType, Release, SchemaEvent, SchemaTracker, Table, UserType, Uuid};

    const KS: &str = "ks";
    let names = ["a", "b", "Quoted \"x\"", "c"];
    let ty = |n: u8| match n % 5 {
        0 => CqlType::Int,
        1 => CqlType::Text,
        2 => CqlType::List { elem: Box::new(CqlType::Int), frozen: false },
        3 => CqlType::Tuple(vec![CqlType::Int, CqlType::Text]),
        _ => CqlType::Map { key: Box::new(CqlType::Text), value: Box::new(CqlType::Blob), frozen: true },
    };
    // Built once: a tracker knowing Cassandra's keyspaces takes a while.
    static BASE: std::sync::OnceLock<(DdlWriter, SchemaTracker)> = std::sync::OnceLock::new();
    let (ddl, base) = BASE.get_or_init(|| (DdlWriter::new(), SchemaTracker::new(Release::Cassandra4)));
    let mut tracker = base.clone();
    let mut decoder = Decoder::new();
    let mut table: Option<Table> = None;
    let mut next_id = 1u8;
    let mut ts = 1_000_000i64;
    let mut feed = |tracker: &mut SchemaTracker, mut m: Vec<u8>, flip: (u8, u8), position: u64| {
        if flip.1 != 0 && !m.is_empty() {
            let at = flip.0 as usize * 7 % m.len();
            m[at] ^= flip.1;
        }
        let ctx = Context { segment_id: 1, position, ..Context::default() };
        let events = tracker.observe(&mut decoder, &m, ctx);
        for e in &events {
            // Every event says where it comes from.
            assert_eq!(e.location().logical, Some(position));
        }
        let s = tracker.schema();
        for t in s.tables() {
            assert!(t.partition_key_len() > 0, "{}.{} has no partition key", t.keyspace, t.name);
        }
        events
    };
    feed(&mut tracker, ddl.create_keyspace(KS, ts), (0, 0), 1);
    // Once a damaged mutation was applied, later DDL may build on what it left.
    let mut damaged = false;
    for (i, op) in data.chunks_exact(4).take(64).enumerate() {
        ts += 1_000_000;
        let flip = (op[2], if op[3] & 0x80 != 0 { op[3] & 0x7f | 1 } else { 0 });
        let position = 2 + i as u64;
        let m = match (op[0] % 7, &table) {
            (0, None) => {
                let id = Uuid::from_bytes([next_id; 16]);
                next_id = next_id.wrapping_add(1);
                let mut b = Table::builder(KS, "t").id(id).partition_key("k", CqlType::Int);
                if op[1] % 2 == 1 {
                    b = b.clustering("c", CqlType::Text, cassandra_commitlog::schema::Order::Desc);
                }
                let t = b.build().unwrap();
                let m = ddl.create_table(&t, ts);
                table = Some(t);
                m
            }
            (1, Some(t)) => {
                let mut after = t.clone();
                let name = names[op[1] as usize % names.len()];
                let kind = t.dropped.iter().find(|d| d.name == name).map(|d| d.ty.clone()).unwrap_or(ty(op[1]));
                if after.add_column(name, kind, op[1] & 0x40 != 0).is_err() {
                    continue;
                }
                let m = ddl.alter_table(t, &after, ts);
                table = Some(after);
                m
            }
            (2, Some(t)) => {
                let mut after = t.clone();
                if after.drop_column(names[op[1] as usize % names.len()], ts).is_err() {
                    continue;
                }
                let m = ddl.alter_table(t, &after, ts);
                table = Some(after);
                m
            }
            (3, Some(t)) => {
                let m = ddl.drop_table(t, ts);
                table = None;
                m
            }
            (4, _) => {
                let fields = (0..op[1] % 4).map(|f| (format!("f{f}"), ty(f))).collect();
                ddl.create_type(&UserType { keyspace: KS.into(), name: "u".into(), fields }, ts)
            }
            (5, Some(t)) => ddl.truncate(t.id, 1, op[1] as u32, ts / 1000, ts),
            (6, _) if op[1] == 0xff => {
                table = None;
                ddl.drop_keyspace(KS, ts)
            }
            _ => continue,
        };
        let events = feed(&mut tracker, m, flip, position);
        damaged |= flip.1 != 0;
        if !damaged {
            assert!(
                !events.iter().any(|e| matches!(e, SchemaEvent::NotApplied(_))),
                "an undamaged DDL is applied: {events:?}"
            );
        }
    }
    let restored = SchemaTracker::restore(&tracker.save()).expect("a saved state restores");
    let tables = |s: &cassandra_commitlog::schema::Schema| {
        let mut v: Vec<String> =
            s.tables().map(|t| format!("{}.{} {} {:?} {:?}", t.keyspace, t.name, t.id, t.columns, t.dropped)).collect();
        v.sort();
        v
    };
    assert!(tables(restored.schema()) == tables(tracker.schema()), "the restored tracker differs");
}
