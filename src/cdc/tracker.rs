//! The watcher's decisions, without I/O: what each segment has made durable,
//! what has been consumed and acknowledged, what vanished, what may be
//! cleaned up. The [`Watcher`](super::Watcher) feeds it directory listings
//! and read results; the fuzz target feeds it arbitrary ones.

use std::collections::BTreeMap;

use super::checkpoint::{Checkpoint, Position};
use super::idx::IdxState;
use crate::segment::SegmentName;

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

/// Something the tracker noticed while observing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A segment known to hold CDC data vanished before it was consumed.
    Lost {
        /// The segment.
        segment_id: i64,
        /// Position consumed up to.
        from: u64,
        /// The last durable offset seen (`None`: unknown).
        to: Option<u64>,
    },
    /// An idx offset smaller than one seen before: ignored.
    Backwards {
        /// The segment.
        segment_id: i64,
        /// The offset seen before.
        previous: u64,
        /// The smaller offset found.
        found: u64,
    },
}

/// What to read next: a segment's durable data after what was consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The segment.
    pub name: SegmentName,
    /// Read only what lies after this position.
    pub after: u64,
    /// Read nothing at or past this offset (the idx offset).
    pub limit: u64,
    /// The idx says the segment is finished.
    pub completed: bool,
}

/// How a read of a [`Plan`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Position consumed up to.
    pub consumed: u64,
    /// Nothing more is below the limit (the read was not cut short).
    pub at_end: bool,
    /// The segment cannot be read past this position (a corrupt or
    /// truncated marker below the durable offset, or an unreadable file).
    pub broken_at: Option<u64>,
    /// Entries or sections were lost to damage.
    pub damaged: bool,
}

#[derive(Clone, Debug)]
struct Track {
    name: SegmentName,
    /// Seen with an idx: it holds CDC data.
    had_idx: bool,
    /// In the last listing.
    present: bool,
    /// Highest idx offset seen.
    durable: u64,
    completed: bool,
    /// Position consumed up to.
    consumed: u64,
    /// The durable offset the last complete read reached.
    checked: u64,
    /// Completed and read to its end.
    finished: bool,
    /// Consumed before the watcher started (behind the start checkpoint).
    before_start: bool,
    damaged: bool,
    broken: bool,
    cleaned: bool,
}

/// Counters a user can watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// The last position consumed.
    pub consumed: Option<Position>,
    /// The highest durable position seen.
    pub durable: Option<Position>,
    /// Durable logical bytes not yet consumed.
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
}

/// The watcher's bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    segs: BTreeMap<i64, Track>,
    /// The start checkpoint's position, and whether its segment was finished.
    start: Option<(Position, bool)>,
    start_checked: bool,
    acked: Option<Position>,
    last_consumed: Option<Position>,
    /// Idx files whose `.log` is gone (a cleanup cut short, for example).
    orphans: Vec<SegmentName>,
}

impl Tracker {
    /// A tracker that treats everything up to `start` as consumed.
    pub fn new(start: Option<&Checkpoint>) -> Tracker {
        Tracker {
            start: start.map(|c| (c.position, c.segment_completed)),
            acked: start.map(|c| c.position),
            last_consumed: start.map(|c| c.position),
            ..Tracker::default()
        }
    }

    /// Takes in a directory listing; returns what it noticed.
    pub fn observe(&mut self, listing: &[Observed]) -> Vec<Note> {
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
            let start = self.start;
            let t = self.segs.entry(o.name.id).or_insert_with(|| {
                let mut t = Track {
                    name: o.name,
                    had_idx: false,
                    present: true,
                    durable: 0,
                    completed: false,
                    consumed: 0,
                    checked: 0,
                    finished: false,
                    before_start: false,
                    damaged: false,
                    broken: false,
                    cleaned: false,
                };
                if let Some((p, completed)) = start {
                    if o.name.id < p.segment_id || (o.name.id == p.segment_id && completed) {
                        t.before_start = true;
                    } else if o.name.id == p.segment_id {
                        t.consumed = p.offset;
                    }
                }
                t
            });
            t.present = true;
            if let IdxState::Ready(idx) = o.idx {
                if idx.offset < t.durable {
                    notes.push(Note::Backwards { segment_id: o.name.id, previous: t.durable, found: idx.offset });
                } else {
                    t.durable = idx.offset;
                    t.completed |= idx.completed;
                    t.had_idx = true;
                }
            }
        }
        self.orphans =
            listing.iter().filter(|o| !o.log && !matches!(o.idx, IdxState::Missing)).map(|o| o.name).collect();
        // Segments gone from the listing.
        let gone: Vec<i64> = self.segs.iter().filter(|(_, t)| !t.present).map(|(id, _)| *id).collect();
        for id in gone {
            let t = self.segs.remove(&id).expect("listed above");
            let consumed_all = t.finished || t.before_start || t.cleaned;
            // A link without an idx never held CDC data: Cassandra deletes
            // such segments, and that is no loss.
            if t.had_idx && !consumed_all && !t.broken {
                notes.push(Note::Lost { segment_id: id, from: t.consumed, to: Some(t.durable) });
            }
        }
        notes
    }

    /// The next read, in segment order: a live segment with nothing new
    /// holds back the ones after it.
    pub fn next_read(&self) -> Option<Plan> {
        for t in self.segs.values() {
            if t.before_start || t.cleaned || t.finished || !t.had_idx || t.broken {
                continue;
            }
            if t.durable > t.checked.max(t.consumed) || (t.completed && !t.finished) {
                return Some(Plan { name: t.name, after: t.consumed, limit: t.durable, completed: t.completed });
            }
            return None;
        }
        None
    }

    /// The read that will follow once segment `id` is read to its end, if
    /// that segment is finished too (its idx says `COMPLETED`): what a
    /// watcher may read ahead.
    pub fn next_finished_after(&self, id: i64) -> Option<Plan> {
        use std::ops::Bound::{Excluded, Unbounded};
        let t = self
            .segs
            .range((Excluded(id), Unbounded))
            .map(|(_, t)| t)
            .find(|t| !(t.before_start || t.cleaned || t.finished || !t.had_idx || t.broken))?;
        t.completed.then_some(Plan { name: t.name, after: t.consumed, limit: t.durable, completed: true })
    }

    /// Records how a read of `plan` went.
    pub fn read_done(&mut self, plan: &Plan, result: ReadResult) {
        let Some(t) = self.segs.get_mut(&plan.name.id) else { return };
        t.consumed = t.consumed.max(result.consumed);
        t.damaged |= result.damaged;
        if result.at_end {
            t.checked = t.checked.max(plan.limit);
            if plan.completed {
                t.finished = true;
            }
        }
        if result.broken_at.is_some() {
            t.broken = true;
            t.damaged = true;
        }
        let p = Position { segment_id: plan.name.id, offset: t.consumed };
        self.last_consumed = Some(self.last_consumed.map_or(p, |q| q.max(p)));
    }

    /// Acknowledges everything up to and including `position`.
    pub fn ack(&mut self, position: Position) {
        self.acked = Some(self.acked.map_or(position, |a| a.max(position)));
    }

    /// Segments that may be cleaned up now: finished, undamaged, still
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
            .filter(|t| t.present && !t.cleaned && !t.damaged && (t.had_idx || t.before_start))
            .filter(|t| {
                let done = t.finished || (t.before_start && t.completed);
                let acked = t.before_start
                    || self.acked.is_some_and(|a| a >= Position { segment_id: t.name.id, offset: t.consumed });
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
        let mut m = Metrics { consumed: self.last_consumed, ..Metrics::default() };
        for t in self.segs.values() {
            if t.had_idx {
                let p = Position { segment_id: t.name.id, offset: t.durable };
                m.durable = Some(m.durable.map_or(p, |d| d.max(p)));
            }
            if t.had_idx && !t.before_start && !t.finished && !t.broken && t.durable > t.consumed {
                m.lag_bytes += t.durable - t.consumed;
                m.lag_segments += 1;
            }
            if t.damaged {
                m.damaged_segments += 1;
            }
        }
        m.awaiting_cleanup = self.cleanup_candidates().len() as u64;
        m
    }

    /// The highest idx offset seen for a segment.
    pub fn durable(&self, id: i64) -> Option<u64> {
        self.segs.get(&id).filter(|t| t.had_idx).map(|t| t.durable)
    }
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

    fn done(t: &mut Tracker, plan: Plan) {
        t.read_done(&plan, ReadResult { consumed: plan.limit, at_end: true, broken_at: None, damaged: false });
    }

    #[test]
    fn reads_in_segment_order_and_cleans_up_only_what_was_acknowledged() {
        let mut t = Tracker::new(None);
        assert!(t.observe(&[obs(1, Some((100, false))), obs(2, Some((50, false))), obs(3, None)]).is_empty());
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after, p.limit, p.completed), (1, 0, 100, false));
        done(&mut t, p);
        // Segment 1 is live with nothing new: segment 2 waits.
        assert_eq!(t.next_read(), None);
        t.observe(&[obs(1, Some((120, true))), obs(2, Some((50, false))), obs(3, None)]);
        let p = t.next_read().unwrap();
        assert_eq!((p.after, p.limit, p.completed), (100, 120, true));
        done(&mut t, p);
        assert!(t.cleanup_candidates().is_empty(), "finished but not acknowledged");
        t.ack(Position { segment_id: 1, offset: 119 });
        assert!(t.cleanup_candidates().is_empty(), "not acknowledged to its end");
        t.ack(Position { segment_id: 1, offset: 120 });
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        assert_eq!(t.next_read().unwrap().name.id, 2);
        t.cleaned(1);
        assert!(t.cleanup_candidates().is_empty());
        // Its files going away now is no loss.
        assert!(t.observe(&[obs(2, Some((50, false))), obs(3, None)]).is_empty());
    }

    #[test]
    fn losses_and_backwards_offsets_are_noticed() {
        let mut t = Tracker::new(None);
        t.observe(&[obs(1, Some((100, false))), obs(2, None)]);
        let notes = t.observe(&[obs(1, Some((90, false))), obs(2, None)]);
        assert_eq!(notes, [Note::Backwards { segment_id: 1, previous: 100, found: 90 }]);
        // The preallocated segment 2 (no idx) vanishing is no loss; segment 1 is.
        let notes = t.observe(&[]);
        assert_eq!(notes, [Note::Lost { segment_id: 1, from: 0, to: Some(100) }]);
    }

    #[test]
    fn a_start_checkpoint_skips_what_was_consumed() {
        let cp = Checkpoint::at(Position { segment_id: 2, offset: 40 }, false);
        let mut t = Tracker::new(Some(&cp));
        t.observe(&[obs(1, Some((100, true))), obs(2, Some((80, false)))]);
        let p = t.next_read().unwrap();
        assert_eq!((p.name.id, p.after), (2, 40));
        // Segment 1, behind the checkpoint and complete, may be cleaned up.
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        // A checkpoint whose segment is gone unfinished: a loss.
        let mut t = Tracker::new(Some(&cp));
        assert_eq!(t.observe(&[obs(3, Some((10, false)))]), [Note::Lost { segment_id: 2, from: 40, to: None }]);
    }

    #[test]
    fn idx_files_left_without_their_log_are_cleaned_up_behind_the_ack() {
        let mut t = Tracker::new(None);
        let orphan = |id| Observed { name: SegmentName { version: 7, id }, log: false, idx: IdxState::NotReady };
        assert!(t.observe(&[orphan(1), orphan(5)]).is_empty());
        assert!(t.cleanup_candidates().is_empty(), "nothing acknowledged yet");
        t.ack(Position { segment_id: 3, offset: 0 });
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        t.cleaned(1);
        assert!(t.cleanup_candidates().is_empty());
    }

    #[test]
    fn an_idx_left_by_a_kill_between_the_two_deletions_is_cleaned_up_after_a_restart() {
        // Killed after deleting segment 4's `.log`, before its idx: the
        // checkpoint says segment 4 was finished.
        let cp = Checkpoint::at(Position { segment_id: 4, offset: 120 }, true);
        let mut t = Tracker::new(Some(&cp));
        let orphan = |id| Observed { name: SegmentName { version: 7, id }, log: false, idx: IdxState::NotReady };
        assert!(t.observe(&[orphan(4), orphan(6)]).is_empty());
        assert_eq!(t.cleanup_candidates().iter().map(|n| n.id).collect::<Vec<_>>(), [4]);
        // Unfinished at the checkpoint: kept.
        let cp = Checkpoint::at(Position { segment_id: 4, offset: 120 }, false);
        let mut t = Tracker::new(Some(&cp));
        assert!(t.observe(&[orphan(4)]).len() <= 1);
        assert!(t.cleanup_candidates().is_empty());
    }

    #[test]
    fn damaged_segments_are_never_cleaned_up() {
        let mut t = Tracker::new(None);
        t.observe(&[obs(1, Some((100, true)))]);
        let p = t.next_read().unwrap();
        t.read_done(&p, ReadResult { consumed: 100, at_end: true, broken_at: None, damaged: true });
        t.ack(Position { segment_id: 9, offset: 0 });
        assert!(t.cleanup_candidates().is_empty());
        assert_eq!(t.metrics().damaged_segments, 1);
    }
}
