//! The watcher's decisions, without I/O: what each segment has made durable,
//! how far to read it, what has been consumed and acknowledged, what
//! vanished, what may be cleaned up. The [`Watcher`](super::Watcher) feeds
//! it directory listings (with the time they were taken) and read results;
//! the fuzz target and the lifecycle simulator feed it arbitrary ones.
//!
//! The lifecycle rules, from Cassandra's source (4.0 to 5.0,
//! `db/commitlog/`) and its real crashes in the corpus:
//!
//! - **Live.** A segment whose `_cdc.idx` says `<offset>` is read up to that
//!   offset and never past it (`CommitLogSegment.sync` writes the idx after
//!   the data it covers is on disk).
//! - **Completed.** One whose idx says `<offset>\nCOMPLETED` is finished: it
//!   is read to its end as Cassandra's replay reads it (every section behind
//!   a valid marker), whatever the offset states. After a crash,
//!   `CommitLogReplayer.handleCDCReplayCompletion` rewrites the idx of every
//!   replayed segment that held a CDC mutation as `<file length>\nCOMPLETED`:
//!   the *physical* length, far below the logical end of a compressed or
//!   encrypted segment. An offset that disagrees with the end found is a
//!   [`Note::IdxMismatch`], never a limit.
//! - **Abandoned.** `AbstractCommitLogSegmentManager.sync` syncs segments in
//!   id order, so in a running node a newer segment's idx is written only
//!   after every older one's final, `COMPLETED` one. A segment whose idx
//!   lacks `COMPLETED` while a newer segment has an idx is therefore one a
//!   crash left behind, which the restarted node did not replay (everything
//!   in it was flushed already, or the node came back with CDC disabled):
//!   its idx will never change again. Once that has held, the idx unchanged,
//!   for a grace period ([`DEFAULT_ABANDONED_AFTER`]), it is read to its end
//!   (entries past its idx offset behind valid markers are writes the sync
//!   made durable before the idx could say so) and treated as finished
//!   ([`Note::Abandoned`]). The newest segment with an idx is never read past
//!   its offset, however long it stays unchanged.
//! - **Relinked.** The replay links a replayed segment into `cdc_raw` again
//!   when its link is missing, so a segment the consumer finished and
//!   cleaned up can reappear. A segment at or behind the last position
//!   consumed is never read again: it only waits for its cleanup.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoint, Position};
use super::idx::IdxState;
use crate::segment::SegmentName;

/// The default grace period of the abandonment rule: 10 seconds.
///
/// By the sync order (see the module documentation), a running node never
/// shows an unfinished segment behind a newer idx for longer than it takes
/// to read the two idx files of one listing (a listing that read the older
/// idx just before its final rewrite and the newer one just after). Ten
/// seconds is a hundred listings at the default poll interval; it is also
/// all a crash costs in delay.
pub const DEFAULT_ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// What one directory listing showed about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The segment.
    pub name: SegmentName,
    /// Whether its `.log` is there.
    pub log: bool,
    /// Its `_cdc.idx`.
    pub idx: IdxState,
}

/// Why a completed segment's idx offset is not the end its data reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchCause {
    /// The offset is the file's physical length: the idx was rewritten by
    /// Cassandra's commit-log replay after a crash.
    PhysicalLength,
    /// Anything else.
    Other,
}

/// Something the tracker noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// A segment known to hold CDC data vanished before it was finished.
    Lost {
        /// The segment.
        segment_id: i64,
        /// Position consumed up to.
        from: u64,
        /// The last durable offset seen (`None`: unknown).
        to: Option<u64>,
    },
    /// An idx offset smaller than one seen before, without `COMPLETED`:
    /// ignored.
    Backwards {
        /// The segment.
        segment_id: i64,
        /// The offset seen before.
        previous: u64,
        /// The smaller offset found.
        found: u64,
    },
    /// A completed segment, read to its end, ends elsewhere than its idx
    /// says. Nothing is lost by this: the end read is the one that counts.
    IdxMismatch {
        /// The segment.
        segment_id: i64,
        /// The offset the `COMPLETED` idx states.
        idx_offset: u64,
        /// The logical end of the segment's data.
        end: u64,
        /// The file's length when it was read.
        file_len: u64,
        /// Why they differ, as far as can be told.
        cause: MismatchCause,
    },
    /// A segment was read to its end under the abandonment rule and is
    /// finished.
    Abandoned {
        /// The segment.
        segment_id: i64,
        /// The offset its idx states (never `COMPLETED`).
        idx_offset: u64,
        /// The logical end of its data, read as the replay reads it.
        read_to: u64,
    },
    /// A segment read to its end ends, cleanly, before an offset its idx
    /// once said was durable: data Cassandra made durable is missing. The
    /// segment counts as damaged (its files are kept).
    EndBeforeDurable {
        /// The segment.
        segment_id: i64,
        /// Where its data ends.
        end: u64,
        /// The durable offset an idx stated.
        durable: u64,
    },
}

/// What to read next: a segment's data after what was consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The segment.
    pub name: SegmentName,
    /// Read only what lies after this position.
    pub after: u64,
    /// Read nothing at or past this logical offset (a live segment's idx
    /// offset); `None`: read to the end of the data, as the replay does.
    pub limit: Option<u64>,
    /// Reading to the end finishes the segment (completed, or abandoned).
    pub finishes: bool,
    /// Read under the abandonment rule: the offset its idx states.
    pub abandoned: Option<u64>,
}

/// How a read of a [`Plan`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Position consumed up to.
    pub consumed: u64,
    /// Nothing more is below the limit (the read was not cut short).
    pub at_end: bool,
    /// The segment cannot be read past this position (damage where its
    /// data was durable, or an unreadable file).
    pub broken_at: Option<u64>,
    /// Entries or sections were lost to damage where its data was durable.
    pub damaged: bool,
    /// With `at_end`: the logical end of the data the read reached.
    pub end: u64,
    /// The file's length when it was read.
    pub file_len: u64,
}

#[derive(Clone, Debug)]
struct Track {
    name: SegmentName,
    /// Seen with an idx: it holds CDC data.
    had_idx: bool,
    /// In the last listing.
    present: bool,
    /// Highest idx offset seen without `COMPLETED`.
    durable: u64,
    /// The offset of the last idx that said `COMPLETED`.
    completed: Option<u64>,
    /// Position consumed up to.
    consumed: u64,
    /// The durable offset the last complete read of a live segment reached.
    checked: u64,
    /// Read to its end as a completed or abandoned segment.
    finished: bool,
    /// At or behind the last position consumed when it appeared (behind a
    /// start checkpoint, or linked again by a replay): never read.
    behind: bool,
    damaged: bool,
    broken: bool,
    cleaned: bool,
    /// Since when the abandonment rule's condition has held, and for which
    /// idx offset.
    stale: Option<(u64, Instant)>,
    /// The abandonment rule holds for it.
    abandoned: bool,
    /// Where a read to its end found the data ending, and the file length then.
    end_found: Option<(u64, u64)>,
    /// The completed offset last reported as a mismatch (or found to agree).
    judged: Option<u64>,
}

impl Track {
    fn new(name: SegmentName) -> Track {
        Track {
            name,
            had_idx: false,
            present: true,
            durable: 0,
            completed: None,
            consumed: 0,
            checked: 0,
            finished: false,
            behind: false,
            damaged: false,
            broken: false,
            cleaned: false,
            stale: None,
            abandoned: false,
            end_found: None,
            judged: None,
        }
    }

    /// Nothing more will be read from it.
    fn settled(&self) -> bool {
        self.behind || self.cleaned || self.finished || !self.had_idx || self.broken
    }

    /// The furthest its data is known to reach: where a read to its end
    /// found it ending, else the highest idx offset seen (a completed one
    /// may be a replay's physical length).
    fn known_end(&self) -> u64 {
        match self.end_found {
            Some((end, _)) => end,
            None => self.durable.max(self.completed.unwrap_or(0)),
        }
    }

    /// Read to its end rather than to its idx offset.
    fn to_end(&self) -> bool {
        self.completed.is_some() || self.abandoned
    }

    fn plan(&self) -> Plan {
        let to_end = self.to_end();
        Plan {
            name: self.name,
            after: self.consumed,
            limit: (!to_end).then_some(self.durable),
            finishes: to_end,
            abandoned: (self.abandoned && self.completed.is_none()).then_some(self.durable),
        }
    }

    /// A mismatch between a completed idx offset and the end found, not
    /// reported yet.
    fn mismatch(&mut self) -> Option<Note> {
        let (c, (end, file_len)) = (self.completed?, self.end_found?);
        if self.judged == Some(c) {
            return None;
        }
        self.judged = Some(c);
        (c != end).then_some(Note::IdxMismatch {
            segment_id: self.name.id,
            idx_offset: c,
            end,
            file_len,
            cause: if c == file_len { MismatchCause::PhysicalLength } else { MismatchCause::Other },
        })
    }
}

/// A segment the abandonment rule holds back while its grace runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldBack {
    /// The segment.
    pub segment_id: i64,
    /// Its idx offset (without `COMPLETED`).
    pub idx_offset: u64,
    /// Since when it has been seen unfinished behind a newer idx.
    pub since: Instant,
    /// When it will be read to its end if nothing changes.
    pub until: Instant,
}

/// Counters a user can watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// The last position consumed.
    pub consumed: Option<Position>,
    /// The highest durable position seen (for a finished segment, where its
    /// data ends; for a completed one not read yet, its idx offset, which a
    /// replay may have made a physical length).
    pub durable: Option<Position>,
    /// Durable logical bytes not yet consumed (as far as idx offsets tell).
    pub lag_bytes: u64,
    /// Segments with durable data not yet consumed.
    pub lag_segments: u64,
    /// Finished, acknowledged segments whose files are still there, waiting
    /// for the cleanup hook (0 when no hook is set: see `kept`).
    pub awaiting_cleanup: u64,
    /// Finished, acknowledged segments kept because no cleanup hook is set:
    /// nothing will remove them, and that is not a backlog.
    pub kept: u64,
    /// Segments whose data was damaged (their files are kept).
    pub damaged_segments: u64,
    /// Segments finished under the abandonment rule.
    pub abandoned_segments: u64,
    /// The oldest segment the abandonment rule holds back while its grace
    /// runs (the segments after it wait behind it).
    pub held_back: Option<HeldBack>,
}

/// The watcher's bookkeeping.
#[derive(Clone, Debug)]
pub struct Tracker {
    segs: BTreeMap<i64, Track>,
    /// The start checkpoint's position, and whether its segment was finished.
    start: Option<(Position, bool)>,
    /// The start checkpoint's damaged segments: damaged when listed.
    start_damaged: Vec<i64>,
    start_checked: bool,
    acked: Option<Position>,
    /// The last position consumed, and whether its segment was finished.
    floor: Option<(Position, bool)>,
    /// Idx files whose `.log` is gone (a cleanup cut short, for example).
    orphans: Vec<SegmentName>,
    abandoned_after: Option<Duration>,
    abandoned_count: u64,
}

impl Tracker {
    /// A tracker that treats everything up to `start` as consumed, with the
    /// default abandonment grace ([`DEFAULT_ABANDONED_AFTER`]).
    pub fn new(start: Option<&Checkpoint>) -> Tracker {
        let start_damaged = start.map(|c| c.damaged.clone()).unwrap_or_default();
        let start = start.map(|c| (c.position, c.segment_completed));
        Tracker {
            segs: BTreeMap::new(),
            start,
            start_damaged,
            start_checked: false,
            acked: start.map(|(p, _)| p),
            floor: start,
            orphans: Vec::new(),
            abandoned_after: Some(DEFAULT_ABANDONED_AFTER),
            abandoned_count: 0,
        }
    }

    /// The abandonment rule's grace period; `None` turns the rule off (an
    /// unfinished segment then waits for its `COMPLETED` for ever).
    pub fn abandoned_after(mut self, grace: Option<Duration>) -> Self {
        self.abandoned_after = grace;
        self
    }

    /// Takes in a directory listing made at `now`; returns what it noticed.
    pub fn observe(&mut self, listing: &[Observed], now: Instant) -> Vec<Note> {
        let mut notes = Vec::new();
        if !self.start_checked {
            self.start_checked = true;
            if let Some((position, false)) = self.start
                && !listing.iter().any(|o| o.name.id == position.segment_id && o.log)
            {
                // The checkpoint's own segment is gone before it was finished.
                notes.push(Note::Lost { segment_id: position.segment_id, from: position.offset, to: None });
            }
        }
        for t in self.segs.values_mut() {
            t.present = false;
        }
        for o in listing.iter().filter(|o| o.log) {
            let floor = self.floor;
            let start_damaged = &self.start_damaged;
            let t = self.segs.entry(o.name.id).or_insert_with(|| {
                let mut t = Track::new(o.name);
                // Damage found by a run before the start checkpoint.
                t.damaged = start_damaged.contains(&o.name.id);
                if let Some((p, finished)) = floor {
                    if o.name.id < p.segment_id || (o.name.id == p.segment_id && finished) {
                        t.behind = true;
                        t.consumed = if o.name.id == p.segment_id { p.offset } else { 0 };
                    } else if o.name.id == p.segment_id {
                        t.consumed = p.offset;
                    }
                }
                t
            });
            t.present = true;
            if let IdxState::Ready(idx) = o.idx {
                t.had_idx = true;
                if idx.completed {
                    t.completed = Some(idx.offset);
                    notes.extend(t.mismatch());
                } else if idx.offset < t.durable {
                    notes.push(Note::Backwards { segment_id: o.name.id, previous: t.durable, found: idx.offset });
                } else {
                    t.durable = idx.offset;
                }
            }
        }
        self.orphans =
            listing.iter().filter(|o| !o.log && !matches!(o.idx, IdxState::Missing)).map(|o| o.name).collect();
        // Segments gone from the listing.
        let gone: Vec<i64> = self.segs.iter().filter(|(_, t)| !t.present).map(|(id, _)| *id).collect();
        for id in gone {
            let t = self.segs.remove(&id).expect("listed above");
            let consumed_all = t.finished || t.behind || t.cleaned;
            // A link without an idx never held CDC data: Cassandra deletes
            // such segments, and that is no loss.
            if t.had_idx && !consumed_all && !t.broken {
                notes.push(Note::Lost { segment_id: id, from: t.consumed, to: Some(t.known_end()) });
            }
        }
        self.judge_abandonment(listing, now);
        notes
    }

    /// The abandonment rule: an unfinished segment behind a newer idx, its
    /// own idx unchanged for the grace period, is read to its end.
    fn judge_abandonment(&mut self, listing: &[Observed], now: Instant) {
        let newest_idx = listing.iter().filter(|o| !matches!(o.idx, IdxState::Missing)).map(|o| o.name.id).max();
        for o in listing.iter().filter(|o| o.log) {
            let Some(t) = self.segs.get_mut(&o.name.id) else { continue };
            if t.abandoned || t.completed.is_some() || t.cleaned || t.finished || t.broken {
                t.stale = None;
                continue;
            }
            let (Some(grace), Some(newest), IdxState::Ready(idx)) = (self.abandoned_after, newest_idx, o.idx) else {
                // Rewritten right now, gone, or the rule is off: not stale.
                t.stale = None;
                continue;
            };
            if newest <= o.name.id {
                t.stale = None;
                continue;
            }
            match t.stale {
                Some((offset, since)) if offset == idx.offset => {
                    if now.saturating_duration_since(since) >= grace {
                        t.abandoned = true;
                        t.stale = None;
                    }
                }
                _ => t.stale = Some((idx.offset, now)),
            }
        }
    }

    /// The earliest time at which the abandonment rule may decide: when a
    /// watcher with nothing else to do should look again.
    pub fn next_deadline(&self) -> Option<Instant> {
        let grace = self.abandoned_after?;
        self.segs.values().filter_map(|t| t.stale.map(|(_, since)| since + grace)).min()
    }

    /// The next read, in segment order: a live segment with nothing new
    /// holds back the ones after it.
    pub fn next_read(&self) -> Option<Plan> {
        let t = self.segs.values().find(|t| !t.settled())?;
        (t.to_end() || t.durable > t.checked.max(t.consumed)).then(|| t.plan())
    }

    /// The read that will follow once segment `id` is read to its end, if
    /// that segment is to be read to its end too (completed, or abandoned):
    /// what a watcher may read ahead.
    pub fn next_finished_after(&self, id: i64) -> Option<Plan> {
        use std::ops::Bound::{Excluded, Unbounded};
        let t = self.segs.range((Excluded(id), Unbounded)).map(|(_, t)| t).find(|t| !t.settled())?;
        t.to_end().then(|| t.plan())
    }

    /// Records how a read of `plan` went; returns what it noticed.
    pub fn read_done(&mut self, plan: &Plan, result: ReadResult) -> Vec<Note> {
        let mut notes = Vec::new();
        let Some(t) = self.segs.get_mut(&plan.name.id) else { return notes };
        t.consumed = t.consumed.max(result.consumed);
        t.damaged |= result.damaged;
        if result.at_end
            && let Some(limit) = plan.limit
        {
            t.checked = t.checked.max(limit);
        }
        if result.broken_at.is_some() {
            t.broken = true;
            t.damaged = true;
        }
        if plan.finishes && result.at_end && result.broken_at.is_none() {
            t.finished = true;
            t.end_found = Some((result.end, result.file_len));
            let durable = t.durable.max(t.checked);
            if result.end < durable {
                t.damaged = true;
                notes.push(Note::EndBeforeDurable { segment_id: plan.name.id, end: result.end, durable });
            }
            notes.extend(t.mismatch());
            if let Some(idx_offset) = plan.abandoned {
                self.abandoned_count += 1;
                notes.push(Note::Abandoned { segment_id: plan.name.id, idx_offset, read_to: result.end });
            }
        }
        let p = (Position { segment_id: plan.name.id, offset: t.consumed }, t.finished);
        if self.floor.is_none_or(|(f, _)| p.0 >= f) {
            self.floor = Some(p);
        }
        notes
    }

    /// The damaged segments up to and including segment `id` that are
    /// still listed, ascending: what a checkpoint there carries.
    pub fn damaged_through(&self, id: i64) -> Vec<i64> {
        self.segs.range(..=id).filter(|(_, t)| t.damaged).map(|(id, _)| *id).collect()
    }

    /// Acknowledges everything up to and including `position`.
    pub fn ack(&mut self, position: Position) {
        self.acked = Some(self.acked.map_or(position, |a| a.max(position)));
    }

    /// Segments that may be cleaned up now: finished (or behind the
    /// consumed position, and completed or abandoned), undamaged, still
    /// there, and acknowledged to their end; and idx files left without
    /// their `.log` behind the acknowledged position.
    pub fn cleanup_candidates(&self) -> Vec<SegmentName> {
        // Behind the acknowledged position, or at or before the segment a
        // start checkpoint says was finished (a process killed between
        // deleting a `.log` and its `_cdc.idx` leaves the idx of the very
        // segment it checkpointed last).
        let behind = |id: i64| {
            self.acked.is_some_and(|a| id < a.segment_id)
                || self.start.is_some_and(|(p, completed)| id < p.segment_id || (id == p.segment_id && completed))
        };
        let orphans = self.orphans.iter().filter(|n| behind(n.id) && !self.segs.get(&n.id).is_some_and(|t| t.damaged));
        self.segs
            .values()
            .filter(|t| t.present && !t.cleaned && !t.damaged && (t.had_idx || t.behind))
            .filter(|t| {
                let done = t.finished || (t.behind && t.to_end());
                let acked = self.acked.is_some_and(|a| a >= Position { segment_id: t.name.id, offset: t.consumed });
                done && acked
            })
            .map(|t| t.name)
            .chain(orphans.copied())
            .collect()
    }

    /// Records a successful cleanup.
    pub fn cleaned(&mut self, id: i64) {
        if let Some(t) = self.segs.get_mut(&id) {
            t.cleaned = true;
        }
        self.orphans.retain(|n| n.id != id);
    }

    /// The counters.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics {
            consumed: self.floor.map(|(p, _)| p),
            abandoned_segments: self.abandoned_count,
            ..Metrics::default()
        };
        for t in self.segs.values().filter(|t| t.had_idx) {
            let durable = t.known_end();
            let p = Position { segment_id: t.name.id, offset: durable };
            m.durable = Some(m.durable.map_or(p, |d| d.max(p)));
            if !t.behind && !t.finished && !t.broken && !t.cleaned && (durable > t.consumed || t.to_end()) {
                m.lag_bytes += durable.saturating_sub(t.consumed);
                m.lag_segments += 1;
            }
            if t.damaged {
                m.damaged_segments += 1;
            }
            if let (Some((idx_offset, since)), Some(grace), None) = (t.stale, self.abandoned_after, m.held_back) {
                m.held_back = Some(HeldBack { segment_id: t.name.id, idx_offset, since, until: since + grace });
            }
        }
        m.awaiting_cleanup = self.cleanup_candidates().len() as u64;
        m
    }

    /// The highest idx offset seen for a segment without `COMPLETED`.
    pub fn durable(&self, id: i64) -> Option<u64> {
        self.segs.get(&id).filter(|t| t.had_idx).map(|t| t.durable)
    }
}

/// How far a one-shot reader of a `cdc_raw` snapshot (a copy that will not
/// change) reads a segment, by the rules above: a completed segment to its
/// end; an unfinished one behind a newer idx to its end too (in a snapshot
/// its idx can no longer change: abandoned, with no grace to wait); the
/// newest unfinished one up to its idx offset. `Some(offset)`: read up to
/// it; `None`: to the end.
pub fn snapshot_limit(idx: &super::CdcIndex, newer_idx: bool) -> Option<u64> {
    (!idx.completed && !newer_idx).then_some(idx.offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::CdcIndex;

    fn obs(id: i64, idx: Option<(u64, bool)>) -> Observed {
        Observed {
            name: SegmentName { version: 7, id },
            log: true,
            idx: match idx {
                Some((offset, completed)) => IdxState::Ready(CdcIndex { offset, completed }),
                None => IdxState::Missing,
            },
        }
    }

    fn result(consumed: u64, end: u64) -> ReadResult {
        ReadResult { consumed, at_end: true, broken_at: None, damaged: false, end, file_len: 1 << 20 }
    }

    fn done(t: &mut Tracker, plan: Plan) -> Vec<Note> {
        let end = plan.limit.unwrap_or(plan.after.max(500));
        t.read_done(&plan, result(end, end))
    }

    #[test]
    fn reads_in_segment_order_and_cleans_up_only_what_was_acknowledged() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        assert!(t.observe(&[obs(1, Some((100, false))), obs(2, Some((50, false))), obs(3, None)], now).is_empty());
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after, p.limit, p.finishes), (1, 0, Some(100), false));
        done(&mut t, p);
        // Segment 1 is live with nothing new: segment 2 waits.
        assert_eq!(t.next_read(), None);
        t.observe(&[obs(1, Some((120, true))), obs(2, Some((50, false))), obs(3, None)], now);
        let p = t.next_read().unwrap();
        // Completed: read to its end, whatever the offset says.
        assert_eq!((p.after, p.limit, p.finishes), (100, None, true));
        t.read_done(&p, result(120, 120));
        assert!(t.cleanup_candidates().is_empty(), "finished but not acknowledged");
        t.ack(Position { segment_id: 1, offset: 119 });
        assert!(t.cleanup_candidates().is_empty(), "not acknowledged to its end");
        t.ack(Position { segment_id: 1, offset: 120 });
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        assert_eq!(t.next_read().unwrap().name.id, 2);
        t.cleaned(1);
        assert!(t.cleanup_candidates().is_empty());
        // Its files going away now is no loss.
        assert!(t.observe(&[obs(2, Some((50, false))), obs(3, None)], now).is_empty());
    }

    #[test]
    fn losses_and_backwards_offsets_are_noticed() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        t.observe(&[obs(1, Some((100, false))), obs(2, None)], now);
        let notes = t.observe(&[obs(1, Some((90, false))), obs(2, None)], now);
        assert_eq!(notes, [Note::Backwards { segment_id: 1, previous: 100, found: 90 }]);
        // A smaller offset with COMPLETED is a replay's rewrite, not a step back.
        let notes = t.observe(&[obs(1, Some((60, true))), obs(2, None)], now);
        assert!(notes.is_empty(), "{notes:?}");
        // The preallocated segment 2 (no idx) vanishing is no loss; segment 1 is.
        let notes = t.observe(&[], now);
        assert_eq!(notes, [Note::Lost { segment_id: 1, from: 0, to: Some(100) }]);
    }

    #[test]
    fn a_replay_rewritten_idx_is_no_limit_and_its_mismatch_is_told() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        // The LZ4 crash capture: 264408 live, then the replay's physical length.
        t.observe(&[obs(1, Some((264_408, false)))], now);
        let p = t.next_read().unwrap();
        assert_eq!(p.limit, Some(264_408));
        t.read_done(&p, result(264_408, 264_408));
        t.observe(&[obs(1, Some((375_593, true))), obs(2, Some((294_209, true)))], now);
        let p = t.next_read().unwrap();
        assert_eq!((p.after, p.limit, p.finishes), (264_408, None, true));
        let notes = t.read_done(&p, ReadResult { file_len: 375_593, ..result(1_048_542, 1_048_542) });
        assert_eq!(
            notes,
            [Note::IdxMismatch {
                segment_id: 1,
                idx_offset: 375_593,
                end: 1_048_542,
                file_len: 375_593,
                cause: MismatchCause::PhysicalLength
            }]
        );
        // Once: the same listing again says nothing more.
        assert!(t.observe(&[obs(1, Some((375_593, true))), obs(2, Some((294_209, true)))], now).is_empty());
        // An end short of what was once durable is damage.
        let p = t.next_read().unwrap();
        let mut t2 = t.clone();
        let notes = t2.read_done(&p, ReadResult { file_len: 294_209, ..result(1000, 1000) });
        assert!(notes.iter().any(|n| matches!(n, Note::IdxMismatch { cause: MismatchCause::PhysicalLength, .. })));
        assert!(!notes.iter().any(|n| matches!(n, Note::EndBeforeDurable { .. })));
        t2.observe(&[obs(2, Some((294_209, true))), obs(3, Some((50, false)))], now);
        assert!(t2.next_read().is_some_and(|p| p.name.id == 3));
    }

    #[test]
    fn an_unfinished_segment_behind_a_newer_idx_is_abandoned_after_the_grace() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut t = Tracker::new(None).abandoned_after(Some(grace));
        t.observe(&[obs(1, Some((100, false))), obs(2, None)], t0);
        let p = t.next_read().unwrap();
        t.read_done(&p, result(100, 100));
        // The newest idx: never read past, however long it waits.
        t.observe(&[obs(1, Some((100, false))), obs(2, None)], t0 + grace * 10);
        assert_eq!(t.next_read(), None);
        assert_eq!(t.metrics().held_back, None);
        // A newer segment gets an idx: segment 1 is held while the grace runs.
        let later = t0 + grace * 11;
        t.observe(&[obs(1, Some((100, false))), obs(2, Some((40, false)))], later);
        assert_eq!(t.next_read(), None);
        let held = t.metrics().held_back.unwrap();
        assert_eq!((held.segment_id, held.idx_offset, held.until), (1, 100, later + grace));
        assert_eq!(t.next_deadline(), Some(later + grace));
        // Its idx changes: the grace starts again.
        t.observe(&[obs(1, Some((110, false))), obs(2, Some((40, false)))], later + grace / 2);
        t.observe(&[obs(1, Some((110, false))), obs(2, Some((40, false)))], later + grace);
        assert_eq!(t.next_read().unwrap().limit, Some(110), "live until the grace has run");
        let p = t.next_read().unwrap();
        t.read_done(&p, result(110, 110));
        t.observe(&[obs(1, Some((110, false))), obs(2, Some((40, false)))], later + grace * 3 / 2);
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after, p.limit, p.finishes, p.abandoned), (1, 110, None, true, Some(110)));
        let notes = t.read_done(&p, result(180, 180));
        assert_eq!(notes, [Note::Abandoned { segment_id: 1, idx_offset: 110, read_to: 180 }]);
        assert_eq!(t.metrics().abandoned_segments, 1);
        assert_eq!(t.next_read().unwrap().name.id, 2);
        t.ack(Position { segment_id: 1, offset: 180 });
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        // With the rule off, it waits for ever.
        let mut t = Tracker::new(None).abandoned_after(None);
        t.observe(&[obs(1, Some((100, false))), obs(2, Some((40, false)))], t0);
        t.observe(&[obs(1, Some((100, false))), obs(2, Some((40, false)))], t0 + grace * 100);
        let p = t.next_read().unwrap();
        t.read_done(&p, result(100, 100));
        assert_eq!(t.next_read(), None);
    }

    #[test]
    fn a_segment_linked_again_behind_the_consumed_position_is_not_read_again() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        t.observe(&[obs(1, Some((100, true))), obs(2, Some((50, false)))], now);
        let p = t.next_read().unwrap();
        t.read_done(&p, result(100, 100));
        t.ack(Position { segment_id: 1, offset: 100 });
        t.cleaned(1);
        t.observe(&[obs(2, Some((50, false)))], now);
        let p = t.next_read().unwrap();
        t.read_done(&p, result(50, 50));
        // The replay links segment 1 again, its idx the physical length.
        t.observe(&[obs(1, Some((4096, true))), obs(2, Some((80, true)))], now);
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after), (2, 50));
        t.read_done(&p, result(80, 80));
        assert_eq!(t.next_read(), None);
        t.ack(Position { segment_id: 2, offset: 80 });
        let mut ids: Vec<i64> = t.cleanup_candidates().iter().map(|n| n.id).collect();
        ids.sort();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_start_checkpoint_skips_what_was_consumed() {
        let now = Instant::now();
        let cp = Checkpoint::at(Position { segment_id: 2, offset: 40 }, false);
        let mut t = Tracker::new(Some(&cp));
        t.observe(&[obs(1, Some((100, true))), obs(2, Some((80, false)))], now);
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after), (2, 40));
        // Segment 1, behind the checkpoint and complete, may be cleaned up.
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        // A checkpoint whose segment is gone unfinished: a loss.
        let mut t = Tracker::new(Some(&cp));
        assert_eq!(t.observe(&[obs(3, Some((10, false)))], now), [Note::Lost { segment_id: 2, from: 40, to: None }]);
    }

    #[test]
    fn idx_files_left_without_their_log_are_cleaned_up_behind_the_ack() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        let orphan = |id| Observed { name: SegmentName { version: 7, id }, log: false, idx: IdxState::NotReady };
        assert!(t.observe(&[orphan(1), orphan(5)], now).is_empty());
        assert!(t.cleanup_candidates().is_empty(), "nothing acknowledged yet");
        t.ack(Position { segment_id: 3, offset: 0 });
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        t.cleaned(1);
        assert!(t.cleanup_candidates().is_empty());
    }

    #[test]
    fn an_idx_left_by_a_kill_between_the_two_deletions_is_cleaned_up_after_a_restart() {
        let now = Instant::now();
        // Killed after deleting segment 4's `.log`, before its idx: the
        // checkpoint says segment 4 was finished.
        let cp = Checkpoint::at(Position { segment_id: 4, offset: 120 }, true);
        let mut t = Tracker::new(Some(&cp));
        let orphan = |id| Observed { name: SegmentName { version: 7, id }, log: false, idx: IdxState::NotReady };
        assert!(t.observe(&[orphan(4), orphan(6)], now).is_empty());
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [4]);
        // Unfinished at the checkpoint: kept.
        let cp = Checkpoint::at(Position { segment_id: 4, offset: 120 }, false);
        let mut t = Tracker::new(Some(&cp));
        assert!(t.observe(&[orphan(4)], now).len() <= 1);
        assert!(t.cleanup_candidates().is_empty());
    }

    #[test]
    fn damaged_segments_are_never_cleaned_up() {
        let now = Instant::now();
        let mut t = Tracker::new(None);
        t.observe(&[obs(1, Some((100, true)))], now);
        let p = t.next_read().unwrap();
        t.read_done(&p, ReadResult { damaged: true, ..result(100, 100) });
        t.ack(Position { segment_id: 9, offset: 0 });
        assert!(t.cleanup_candidates().is_empty());
        assert_eq!(t.metrics().damaged_segments, 1);
        assert_eq!(t.damaged_through(1), [1]);
        assert!(t.damaged_through(0).is_empty());
    }

    #[test]
    fn a_start_checkpoint_s_damaged_segments_stay_damaged() {
        let now = Instant::now();
        // Segments 1 and 3 were damaged in an earlier run; 3 is gone since.
        let cp = Checkpoint { damaged: vec![1, 3], ..Checkpoint::at(Position { segment_id: 4, offset: 120 }, true) };
        let mut t = Tracker::new(Some(&cp));
        t.observe(&[obs(1, Some((100, true))), obs(2, Some((100, true))), obs(4, Some((120, true)))], now);
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(t.metrics().damaged_segments, 1);
        assert_eq!(t.damaged_through(4), [1], "a damaged segment no longer listed is dropped");
    }

    #[test]
    fn a_snapshot_reads_completed_and_abandoned_segments_to_their_end() {
        let idx = |offset, completed| CdcIndex { offset, completed };
        assert_eq!(snapshot_limit(&idx(375_593, true), false), None);
        assert_eq!(snapshot_limit(&idx(185_874, false), true), None);
        assert_eq!(snapshot_limit(&idx(185_874, false), false), Some(185_874));
    }
}
