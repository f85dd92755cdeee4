//! The node's lifecycle, simulated: a model of Cassandra's side
//! (`common::node`: writes, syncs, rolls, crashes, replays, restarts with
//! CDC on or off, clean shutdowns, non-blocking deletions) and a consumer
//! (a [`Watcher`] with a checkpoint, killed and restarted, on a manual
//! clock), interleaved by proptest in every order it finds, on real files
//! of every section format. After every step, what must hold:
//!
//! - every entry delivered is one the node wrote, at its position, and
//!   never past the idx offset of a segment that is neither completed nor
//!   abandoned (behind a newer idx, unchanged for the grace);
//! - within a consumer's run, nothing twice and nothing at or before the
//!   checkpoint it started from;
//! - a segment is cleaned up only once every write a sync covered in it was
//!   delivered, only if it is completed or abandoned, and never once a run
//!   (this one or one before a restart) reported it damaged;
//! - a `Lost` only for a segment the node deleted while unfinished, and one
//!   for every such segment the consumer had listed;
//! - once the node is quiet and the grace has run (twice), every write a
//!   sync covered in a segment with an idx has been delivered: no stall.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cassandra_commitlog::builder::BuildFormat;
use cassandra_commitlog::cdc::{
    CheckpointFile, Clock, DeleteFiles, Event, Position, SegmentFiles, WatchOptions, Watcher,
};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{Compression, ReadOptions};
use common::node::{Node, NodeConfig, seq_of};
use proptest::prelude::*;

const KEY: [u8; 16] = [9; 16];
const GRACE: Duration = Duration::from_secs(10);

fn format(pick: u8) -> BuildFormat {
    match pick % 7 {
        0 => BuildFormat::Plain,
        n @ 1..=5 => BuildFormat::Compressed(Compression::ALL[n as usize - 1]),
        _ => BuildFormat::Encrypted { alias: "sim:1".into(), key: KEY.to_vec(), iv: [5; 16], chunk_len: 100 },
    }
}

/// One step of a schedule.
#[derive(Clone, Debug)]
enum Op {
    /// The node logs this many writes.
    Write(u8),
    /// A sync: section, then idx.
    Sync,
    /// A sync whose idx write a crash will cut off (the crash follows).
    SyncThenCrash,
    /// The active segment fills up.
    Roll,
    /// kill -9; `torn`: half a compressed section on disk.
    Crash { torn: bool },
    /// A restart after a crash or a shutdown.
    Restart { cdc: bool, flushed: bool },
    /// A clean shutdown.
    Shutdown,
    /// A memtable flush.
    Flush,
    /// The consumer takes this many events.
    Step(u8),
    /// The consumer processes one batch and is killed before saving its
    /// checkpoint.
    DieInBatch,
    /// The consumer is killed (and started again from its checkpoint).
    Kill,
    /// Time passes.
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..12).prop_map(Op::Write),
        4 => Just(Op::Sync),
        1 => Just(Op::SyncThenCrash),
        2 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|torn| Op::Crash { torn }),
        // CDC back on three times in four; everything flushed one in four.
        2 => (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Op::Restart { cdc: !(a && b), flushed: a && !b }),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Flush),
        5 => (1u8..8).prop_map(Op::Step),
        1 => Just(Op::DieInBatch),
        1 => Just(Op::Kill),
        2 => (0u16..15_000).prop_map(Op::Advance),
    ]
}

/// Counts over all schedules, printed at the end.
#[derive(Default, Debug)]
struct Tally {
    schedules: u64,
    ops: u64,
    writes: u64,
    required: u64,
    delivered: u64,
    redelivered_after_kill: u64,
    crashes: u64,
    replays: u64,
    abandoned: u64,
    idx_mismatches: u64,
    cleaned: u64,
    node_deletions: u64,
    lost_events: u64,
    lost_unseen_writes: u64,
    consumer_kills: u64,
    early_cleanups: u64,
    stalls: u64,
}

static TALLY: Mutex<Option<Tally>> = Mutex::new(None);

/// The consumer and what the oracle knows of it.
struct Consumer {
    dir: std::path::PathBuf,
    checkpoints: CheckpointFile,
    watcher: Option<Watcher>,
    clock: Arc<AtomicU64>,
    base: Instant,
    read_ahead: bool,
    max_batch: usize,
    format: BuildFormat,
    /// This run: its start checkpoint and what it delivered.
    run_start: Option<Position>,
    run_delivered: BTreeSet<(i64, u64)>,
    /// Ever delivered: (segment, position) -> write number.
    delivered: BTreeMap<(i64, u64), u64>,
    /// Segments the hook cleaned up (in order).
    cleaned: Arc<Mutex<Vec<i64>>>,
    cleaned_checked: usize,
    /// Lost events: segment ids.
    lost: Vec<i64>,
    /// Segments any run reported damaged: their files must stay.
    damaged: BTreeSet<i64>,
    /// When this run last went idle (a listing of the whole directory),
    /// by operation number; and the run's number.
    idle_at: Option<u64>,
    run: u64,
    abandoned: u64,
    mismatches: u64,
}

impl Consumer {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.clock.load(Ordering::SeqCst))
    }

    fn start(&mut self) {
        let cp = self.checkpoints.load().unwrap();
        self.run_start = cp.as_ref().map(|c| c.position);
        self.run_delivered.clear();
        self.idle_at = None;
        self.run += 1;
        let (clock, base) = (self.clock.clone(), self.base);
        let cleaned = self.cleaned.clone();
        let hook = move |files: &SegmentFiles| {
            cleaned.lock().unwrap().push(files.name.id);
            DeleteFiles.cleanup(files)
        };
        let read = match &self.format {
            BuildFormat::Encrypted { alias, key, .. } => ReadOptions::new().key(alias.clone(), key.clone()),
            _ => ReadOptions::new(),
        };
        let opts = WatchOptions::new(&self.dir, Schema::default())
            .read_options(read)
            .start(cp)
            .idle_timeout(Some(Duration::ZERO))
            .use_notify(false)
            .read_ahead(self.read_ahead)
            .max_batch(self.max_batch)
            .abandoned_after(Some(GRACE))
            .clock(Clock::manual(move || base + Duration::from_millis(clock.load(Ordering::SeqCst))))
            .cleanup(hook);
        self.watcher = Some(Watcher::new(opts).unwrap());
    }
}

use cassandra_commitlog::cdc::CleanupHook as _;

/// The model's view: whether segment `id` may be read past its idx offset
/// at `now`: completed, or unfinished behind a newer idx for the grace.
struct Oracle {
    /// Since when each unfinished segment has been behind a newer idx, with
    /// its idx offset then (reset when its idx changes).
    behind_newer: BTreeMap<i64, (u64, Instant)>,
}

impl Oracle {
    /// After every node step: which unfinished segments a newer idx is
    /// beside (by the files in `cdc_raw`).
    fn observe(&mut self, node: &Node, now: Instant) {
        let on_disk = |id: i64| node.cdc_raw.join(format!("CommitLog-7-{id}_cdc.idx")).exists();
        let newest = node.segments.keys().copied().filter(|&id| on_disk(id)).max();
        for s in node.segments.values() {
            let stale = match (s.idx, newest) {
                (Some((offset, false)), Some(n)) if n > s.id && on_disk(s.id) => Some(offset),
                _ => None,
            };
            match stale {
                Some(offset) if self.behind_newer.get(&s.id).is_some_and(|(o, _)| *o == offset) => {}
                Some(offset) => {
                    self.behind_newer.insert(s.id, (offset, now));
                }
                None => {
                    self.behind_newer.remove(&s.id);
                }
            }
        }
    }

    fn may_read_past_idx(&self, node: &Node, id: i64, now: Instant) -> bool {
        let s = &node.segments[&id];
        s.idx.is_some_and(|(_, completed)| completed)
            || self.behind_newer.get(&id).is_some_and(|(_, since)| now.saturating_duration_since(*since) >= GRACE)
    }
}

/// Runs one consumer step: up to `n` events (or one batch, then death).
fn step(c: &mut Consumer, node: &Node, oracle: &Oracle, n: usize, die_in_batch: bool, op_no: u64, tally: &mut Tally) {
    if c.watcher.is_none() {
        c.start();
    }
    let now = c.now();
    for _ in 0..n {
        let event = c.watcher.as_mut().unwrap().next_event().unwrap();
        check_cleanups(c, node, tally);
        let Some(event) = event else {
            c.idle_at = Some(op_no);
            return;
        };
        match event {
            Event::Batch(b) => {
                for e in &b.entries {
                    let (id, pos) = (b.segment_id, e.context.position);
                    let seq = seq_of(&e.bytes).expect("a write's bytes");
                    let seg = &node.segments[&id];
                    let w = seg.writes.iter().find(|w| w.seq == seq).expect("a write the node logged");
                    assert_eq!(w.position, pos, "write {seq} at the position it was logged at");
                    let idx = seg.idx.map_or(0, |(o, _)| o);
                    assert!(
                        pos <= idx || oracle.may_read_past_idx(node, id, now),
                        "segment {id}: entry at {pos} past the idx offset {idx} of a live segment"
                    );
                    assert!(c.run_delivered.insert((id, pos)), "segment {id}: entry {pos} twice in one run");
                    assert!(
                        c.run_start.is_none_or(|s| Position { segment_id: id, offset: pos } > s),
                        "entry {id}/{pos} at or before the run's checkpoint {:?}",
                        c.run_start
                    );
                    if c.delivered.insert((id, pos), seq).is_some() {
                        tally.redelivered_after_kill += 1;
                    }
                }
                if die_in_batch {
                    // Processed, and killed before the checkpoint.
                    c.watcher = None;
                    tally.consumer_kills += 1;
                    return;
                }
                c.checkpoints.save(&b.checkpoint()).unwrap();
                c.watcher.as_mut().unwrap().ack(b.to);
            }
            Event::Lost { segment_id, .. } => {
                assert!(
                    node.deletions.contains(&segment_id),
                    "segment {segment_id} reported lost, but the node did not delete it"
                );
                c.lost.push(segment_id);
            }
            Event::Abandoned { segment_id, .. } => {
                assert!(node.segments[&segment_id].crashed, "segment {segment_id} abandoned, but not crashed");
                c.abandoned += 1;
            }
            Event::IdxMismatch { .. } => c.mismatches += 1,
            // Half a section a crash left in a segment the replay then
            // completed: its end is torn where Cassandra had made it
            // durable, as far as anyone can tell; the segment is kept.
            Event::Damaged { segment_id, detail, .. } => {
                assert!(node.segments[&segment_id].torn, "segment {segment_id}: damaged: {detail:?}");
                c.damaged.insert(segment_id);
            }
            Event::Cleaned { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

/// Each segment cleaned up since the last check: completed or abandoned,
/// every synced write in it delivered.
fn check_cleanups(c: &mut Consumer, node: &Node, tally: &mut Tally) {
    let cleaned = c.cleaned.lock().unwrap().clone();
    for &id in &cleaned[c.cleaned_checked..] {
        let s = &node.segments[&id];
        let finished = s.idx.is_some_and(|(_, completed)| completed) || s.crashed;
        let undelivered: Vec<_> = s.synced().filter(|w| !c.delivered.contains_key(&(id, w.position))).collect();
        if !finished || !undelivered.is_empty() {
            tally.early_cleanups += 1;
        }
        if c.damaged.contains(&id) {
            tally.early_cleanups += 1;
        }
        assert!(!c.damaged.contains(&id), "segment {id} cleaned up, damaged (reported by an earlier run)");
        assert!(finished, "segment {id} cleaned up, neither completed nor abandoned");
        assert!(undelivered.is_empty(), "segment {id} cleaned up with writes undelivered: {undelivered:?}");
        tally.cleaned += 1;
    }
    c.cleaned_checked = cleaned.len();
}

/// The node is quiet: time passes past the grace, twice (a first listing
/// starts it), and the consumer runs until idle each time. Every synced
/// write of every segment with an idx is delivered, but those the node
/// deleted first, and past the idx of the newest live segment.
fn quiesce(c: &mut Consumer, node: &Node, oracle: &mut Oracle, op_no: u64, tally: &mut Tally) {
    for _ in 0..3 {
        step(c, node, oracle, 100_000, false, op_no, tally);
        c.clock.fetch_add(GRACE.as_millis() as u64 + 1_000, Ordering::SeqCst);
        oracle.observe(node, c.now());
    }
    step(c, node, oracle, 100_000, false, op_no, tally);
    let newest = node.newest_idx();
    for s in node.segments.values() {
        if s.idx.is_none() || node.deletions.contains(&s.id) {
            continue;
        }
        let live = Some(s.id) == newest && !s.idx.unwrap().1;
        for w in s.synced() {
            if live && w.position > s.idx.unwrap().0 {
                continue;
            }
            if !c.delivered.contains_key(&(s.id, w.position)) {
                tally.stalls += 1;
                panic!("segment {}: write {} at {} not delivered once quiet", s.id, w.seq, w.position);
            }
        }
    }
}

fn run_schedule(pick: u8, block_writes: bool, read_ahead: bool, max_batch: usize, ops: &[Op]) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = NodeConfig { format: format(pick), capacity: 1_500, block_writes, cdc_limit: 3 };
    let mut node = Node::new(tmp.path(), cfg.clone());
    let mut c = Consumer {
        dir: node.cdc_raw.clone(),
        checkpoints: CheckpointFile::new(tmp.path().join("cp.json")),
        watcher: None,
        clock: Arc::new(AtomicU64::new(0)),
        base: Instant::now(),
        read_ahead,
        max_batch,
        format: cfg.format.clone(),
        run_start: None,
        run_delivered: BTreeSet::new(),
        delivered: BTreeMap::new(),
        cleaned: Arc::new(Mutex::new(Vec::new())),
        cleaned_checked: 0,
        lost: Vec::new(),
        damaged: BTreeSet::new(),
        idle_at: None,
        run: 0,
        abandoned: 0,
        mismatches: 0,
    };
    let mut oracle = Oracle { behind_newer: BTreeMap::new() };
    let mut tally = Tally::default();
    // Deletions the consumer must report: a run that went idle (listed
    // every segment) while the segment was there with an idx, and stays
    // alive until the end.
    let mut must_report: Vec<(i64, u64)> = Vec::new();
    let mut idx_since: BTreeMap<i64, u64> = BTreeMap::new();
    let mut op_no = 0u64;
    for op in ops.iter().chain([Op::Shutdown].iter()) {
        op_no += 1;
        let deletions_before = node.deletions.len();
        match *op {
            Op::Write(n) => node.write(n as usize),
            Op::Sync => node.sync(true),
            Op::SyncThenCrash => {
                node.sync(false);
                node.crash(false);
                tally.crashes += 1;
            }
            Op::Roll => node.roll(),
            Op::Crash { torn } => {
                tally.crashes += u64::from(node.running);
                node.crash(torn);
            }
            Op::Restart { cdc, flushed } => {
                tally.replays += u64::from(!node.running && cdc && !flushed);
                node.restart(cdc, flushed);
            }
            Op::Shutdown => node.shutdown(),
            Op::Flush => node.flush(),
            Op::Step(n) => step(&mut c, &node, &oracle, n as usize, false, op_no, &mut tally),
            Op::DieInBatch => step(&mut c, &node, &oracle, 4, true, op_no, &mut tally),
            Op::Kill => {
                c.watcher = None;
                tally.consumer_kills += 1;
            }
            Op::Advance(ms) => {
                c.clock.fetch_add(ms as u64, Ordering::SeqCst);
            }
        }
        oracle.observe(&node, c.now());
        for &id in &node.deletions[deletions_before..] {
            tally.node_deletions += 1;
            let s = &node.segments[&id];
            let undelivered = s.synced().filter(|w| !c.delivered.contains_key(&(id, w.position))).count() as u64;
            let listed = c.watcher.is_some() && c.idle_at.zip(idx_since.get(&id)).is_some_and(|(i, s)| i > *s);
            if undelivered > 0 && listed {
                must_report.push((id, c.run));
            } else {
                tally.lost_unseen_writes += undelivered;
            }
        }
        // Since when each segment has been in `cdc_raw` with an idx, without
        // a break: one a replay linked again and the node deleted within
        // one step was never there for the consumer to list.
        for s in node.segments.values() {
            let listed = node.cdc_raw.join(format!("CommitLog-7-{}_cdc.idx", s.id)).exists();
            if listed {
                idx_since.entry(s.id).or_insert(op_no);
            } else {
                idx_since.remove(&s.id);
            }
        }
    }
    if !node.running {
        node.restart(true, true);
        node.shutdown();
    }
    oracle.observe(&node, c.now());
    quiesce(&mut c, &node, &mut oracle, op_no + 1, &mut tally);
    for (id, run) in must_report {
        if run == c.run {
            assert!(c.lost.contains(&id), "segment {id}, deleted unread by the node, was not reported lost");
        }
    }
    // The totals.
    tally.schedules = 1;
    tally.ops = ops.len() as u64;
    tally.writes = node.segments.values().map(|s| s.writes.len() as u64).sum();
    tally.required = node
        .segments
        .values()
        .filter(|s| s.idx.is_some() && !node.deletions.contains(&s.id))
        .map(|s| s.synced().count() as u64)
        .sum();
    tally.delivered = c.delivered.len() as u64;
    tally.lost_events = c.lost.len() as u64;
    tally.abandoned = c.abandoned;
    tally.idx_mismatches = c.mismatches;
    let mut all = TALLY.lock().unwrap();
    let t = all.get_or_insert_with(Tally::default);
    for (a, b) in [
        (&mut t.schedules, tally.schedules),
        (&mut t.ops, tally.ops),
        (&mut t.writes, tally.writes),
        (&mut t.required, tally.required),
        (&mut t.delivered, tally.delivered),
        (&mut t.redelivered_after_kill, tally.redelivered_after_kill),
        (&mut t.crashes, tally.crashes),
        (&mut t.replays, tally.replays),
        (&mut t.abandoned, tally.abandoned),
        (&mut t.idx_mismatches, tally.idx_mismatches),
        (&mut t.cleaned, tally.cleaned),
        (&mut t.node_deletions, tally.node_deletions),
        (&mut t.lost_events, tally.lost_events),
        (&mut t.lost_unseen_writes, tally.lost_unseen_writes),
        (&mut t.consumer_kills, tally.consumer_kills),
        (&mut t.early_cleanups, tally.early_cleanups),
        (&mut t.stalls, tally.stalls),
    ] {
        *a += b;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_node_and_consumer_schedules_keep_the_lifecycle_rules(
        pick in 0u8..7,
        block_writes in any::<bool>(),
        read_ahead in any::<bool>(),
        max_batch in 1usize..6,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run_schedule(pick, block_writes, read_ahead, max_batch, &ops);
    }
}

/// The tally of every schedule tried (run after the property test in the
/// same process when tests run on one thread; otherwise it prints what it
/// has). Fails when the schedules did not exercise what they are for.
#[test]
fn zz_the_schedules_exercised_every_lifecycle_event() {
    // Run a fixed number of seeded schedules here too, so that this test
    // stands on its own whatever order tests run in.
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig { cases: 128, ..ProptestConfig::default() },
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = (0u8..7, any::<bool>(), any::<bool>(), 1usize..6, proptest::collection::vec(op(), 40..160));
    runner
        .run(&strategy, |(pick, block, ahead, batch, ops)| {
            run_schedule(pick, block, ahead, batch, &ops);
            Ok(())
        })
        .unwrap();
    let t = TALLY.lock().unwrap();
    let t = t.as_ref().unwrap();
    eprintln!("{t:#?}");
    assert!(t.crashes > 0 && t.replays > 0 && t.abandoned > 0 && t.idx_mismatches > 0, "{t:?}");
    assert!(t.cleaned > 0 && t.node_deletions > 0 && t.consumer_kills > 0, "{t:?}");
    assert_eq!((t.early_cleanups, t.stalls), (0, 0));
}

/// Schedules proptest once found failing, replayed every run.
#[test]
fn regression_a_segment_deleted_unread_after_two_rolls_and_a_replay_is_reported_lost() {
    use Op::*;
    let ops = [
        Write(6),
        Write(9),
        Shutdown,
        Step(2),
        Step(4),
        Restart { cdc: true, flushed: false },
        Write(1),
        Roll,
        Step(1),
        Roll,
        Roll,
        Crash { torn: false },
        Step(1),
        Restart { cdc: true, flushed: false },
    ];
    run_schedule(0, false, false, 3, &ops);
}

#[test]
fn regression_a_torn_segment_reported_damaged_is_kept_after_the_consumer_restarts() {
    use Op::*;
    let ops = [
        Write(1),
        Sync,
        Write(1),
        Crash { torn: true },
        Restart { cdc: true, flushed: false },
        Flush,
        Write(1),
        Sync,
        Step(4),
        Kill,
    ];
    run_schedule(1, true, false, 1, &ops);
}
