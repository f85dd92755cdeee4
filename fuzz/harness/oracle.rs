//! The oracle of damage: a damaged copy of a segment, walked, against the
//! walk of the undamaged one (used by `tests/resync.rs` and the `damage`
//! fuzz target):
//! - no entry outside the damaged section is lost,
//! - every entry delivered is an undamaged one, at the same position,
//! - every undamaged entry not delivered lies inside a reported loss, and
//!   no loss reaches outside the damaged section.

use std::collections::BTreeMap;

use cassandra_commitlog::segment::{Item, Loss, LossKind, ReadOptions, Section, Segment, Tail};

/// The walk of an undamaged segment.
pub struct Reference {
    pub sections: Vec<Section>,
    /// Entries by position: (start, mutation bytes, index of their section).
    pub entries: BTreeMap<u64, (u64, Vec<u8>, usize)>,
    /// Bytes actually written (the end of the last section).
    pub written: usize,
}

pub fn reference(bytes: &[u8], opts: &ReadOptions) -> Reference {
    let seg = Segment::from_data(bytes).unwrap();
    let mut reader = seg.reader(opts).unwrap();
    let (mut sections, mut entries) = (Vec::new(), BTreeMap::new());
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Section(s) => sections.push(s),
            Item::Entry(e) => {
                entries.insert(e.position, (e.start, e.mutation.to_vec(), sections.len() - 1));
            }
            Item::Loss(l) => panic!("the undamaged segment has a loss: {l}"),
        }
    }
    let sum = reader.into_summary();
    assert_eq!(sum.tail.unwrap().class_name(), "clean");
    let written = sections.last().unwrap().file_end as usize;
    Reference { sections, entries, written }
}

/// What the damaged copies cost, summed.
#[derive(Default, Debug)]
pub struct Tally {
    pub copies: u64,
    pub entries_lost_by_damage: u64,
    pub sections_lost: u64,
    pub resynced: u64,
    pub repaired: u64,
}

/// Walks one damaged copy (byte `at` changed) and checks it against the
/// reference.
pub fn check(
    r: &Reference,
    bytes: &[u8],
    opts: &ReadOptions,
    at: usize,
    several_fields: bool,
    what: &str,
    tally: &mut Tally,
) {
    let seg = match Segment::from_data(bytes) {
        Ok(seg) => seg,
        Err(e) => panic!("{what}: the header is not damaged, yet {e}"),
    };
    let damaged = r.sections.iter().position(|s| (s.file_offset as usize..s.file_end as usize).contains(&at));
    let mut reader = seg.reader(opts).unwrap();
    let mut delivered = BTreeMap::new();
    let mut losses = Vec::new();
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Section(_) => {}
            Item::Entry(e) => {
                assert!(
                    opts.resume_after().is_none_or(|a| e.position > a),
                    "{what}: entry {} resumed past",
                    e.position
                );
                let Some((start, mutation, _)) = r.entries.get(&e.position) else {
                    panic!("{what}: an entry at position {} that the undamaged walk does not have", e.position)
                };
                assert_eq!((e.start, e.mutation), (*start, &mutation[..]), "{what}: entry at {} differs", e.position);
                assert!(delivered.insert(e.position, ()).is_none(), "{what}: entry {} twice", e.position);
            }
            Item::Loss(l) => losses.push(l),
        }
    }
    let sum = reader.into_summary();
    for l in &losses {
        if l.start == l.end {
            assert!(l.kind.is_repaired() || matches!(l.kind, LossKind::CorruptMarker { .. }), "{what}: {l}");
            continue;
        }
        let Some(d) = damaged else { panic!("{what}: a loss with no section damaged: {l}") };
        let s = &r.sections[d];
        // Several damaged fields (a wrong `next` and a wrong size) may leave
        // the end of the section's data unknowable: the loss may then run on
        // past it (entries lost there are caught below). A last section
        // whose `next` points past the end of a file that ends with it reads
        // as a file cut short: its loss runs to that `next`.
        let torn = matches!(l.kind, LossKind::Truncated { .. }) && d + 1 == r.sections.len();
        assert!(
            l.start >= s.start && (l.end <= s.end || several_fields || torn),
            "{what}: loss {l} outside the damaged section {s:?}"
        );
    }
    let after = opts.resume_after().unwrap_or(0);
    // A walk that ends at damage it cannot read past reports the rest of
    // the segment lost through its tail: allowed only where the damage is
    // more than one field of the damaged section, and only there.
    let bad_tail = match sum.tail {
        Some(t @ (Tail::CorruptMarker { file_offset, .. } | Tail::BadPosition { file_offset, .. })) => {
            Some((t, file_offset))
        }
        Some(t @ Tail::Truncated { file_offset, .. }) => Some((t, file_offset)),
        _ => None,
    };
    // (Damage past the written data may end the walk there: it costs
    // nothing, which the entry check below confirms.)
    if let Some((t, file_offset)) = bad_tail.filter(|_| damaged.is_some()) {
        // A last section whose `next` points past the end of a file that
        // ends with it reads exactly as a file cut short: a torn tail.
        let last = r.sections.last().unwrap();
        let torn = matches!(t, Tail::Truncated { .. })
            && file_offset == last.file_offset
            && bytes.len() as u64 == last.file_end;
        assert!(several_fields || torn, "{what}: one damaged field ended the walk: {t:?}");
        let d = damaged.map(|d| r.sections[d]);
        assert!(d.is_some_and(|d| file_offset >= d.file_offset && file_offset < d.file_end), "{what}: {t:?}");
    }
    for (position, (start, _, section)) in &r.entries {
        if delivered.contains_key(position) || *position <= after {
            continue;
        }
        assert_eq!(Some(*section), damaged, "{what}: entry at {position} lost outside the damaged section");
        // With several fields damaged, the end of the section's data may be
        // misjudged: a loss that reaches into the entry reports it.
        let reported = |l: &Loss| {
            (l.start <= *start && *position <= l.end) || (several_fields && l.start < *position && *start < l.end)
        };
        assert!(
            bad_tail.is_some() || losses.iter().any(reported),
            "{what}: entry {start}..{position} lost without a report (losses {losses:?}, tail {:?})",
            sum.tail
        );
        tally.entries_lost_by_damage += 1;
    }
    // The walk reached the end of the written data, at the same position.
    if bad_tail.is_none() && !several_fields {
        assert_eq!(sum.end, r.sections.last().unwrap().end, "{what}: positions at the end differ ({:?})", sum.tail);
    }
    tally.copies += 1;
    tally.sections_lost += sum.lost_sections;
    tally.resynced += sum.resynced;
    tally.repaired += sum.repaired;
}
