//! Catching up on a backlog: many entries decoded at once, on several
//! threads, handed to the consumer in exact log order.
//!
//! One reader thread walks the segments in order (sections decompressed,
//! CRCs checked) and cuts the entries into batches; with the schema from
//! the log it also applies the schema mutations as it meets them (only
//! those entries are decoded there), so that every batch carries the exact
//! schema its entries were written under, and a batch ends at every schema
//! change. Worker threads, each with its own decoder, turn batches into the
//! consumer's own output (JSON lines, owned mutations, counts...), and the
//! consumer gets the outputs in batch order: exactly what one thread gives.
//! The reader is one of the `threads`: a batch that finds the queue full is
//! decoded by the reader itself, and once everything is read the reader
//! helps empty the queue. Memory is bounded: at most `in_flight` batches
//! wait in the queue, and no batch is read more than `in_flight + threads`
//! batches ahead of the one the consumer waits for (a thread stalled on an
//! early batch holds the reading back, instead of the others filling the
//! consumer's reorder buffer meanwhile).
//!
//! ```
//! use cassandra_commitlog::cdc::{CatchUp, Job, SchemaSource, Step};
//! use cassandra_commitlog::mutation::ChangeWriter;
//! use cassandra_commitlog::schema::Schema;
//! use cassandra_commitlog::segment::ReadOptions;
//!
//! let schema = Schema::parse(&std::fs::read_to_string("testdata/cdc_schema.cql")?)?;
//! let jobs = ["testdata/cdc_raw/CommitLog-7-2000.log", "testdata/cdc_raw/CommitLog-7-2001.log"]
//!     .map(|p| Job::new(p, ReadOptions::new()));
//! let mut out = Vec::new();
//! CatchUp::new(2).run(
//!     jobs.to_vec(),
//!     SchemaSource::Fixed(schema.into()),
//!     || (ChangeWriter::new(), Vec::new()),
//!     |(writer, lines): &mut (ChangeWriter, Vec<u8>), _file, step: Step<'_>| {
//!         if let Step::Entry { decoded, .. } = step {
//!             writer.write_line(lines, decoded);
//!         }
//!     },
//!     |(_, lines)| std::mem::take(lines),
//!     |chunk: Vec<u8>| out.extend(chunk),
//! )?;
//! assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::mutation::{Context, Decoded, Decoder};
use crate::schema::{Release, Schema, SchemaEvent, SchemaTracker};
use crate::segment::{self, Item, Loss, ReadBuffers, ReadOptions, Segment, Tail, TailClass};

/// One segment to read: its file and how (encryption keys, the `_cdc.idx`
/// limit, the position to resume after).
#[derive(Clone, Debug)]
pub struct Job {
    /// The segment file.
    pub path: PathBuf,
    /// How to read it.
    pub read: ReadOptions,
}

impl Job {
    /// A segment to read with these options.
    pub fn new(path: impl Into<PathBuf>, read: ReadOptions) -> Job {
        Job { path: path.into(), read }
    }
}

/// Where the schema comes from.
pub enum SchemaSource {
    /// One schema for every entry.
    Fixed(Arc<Schema>),
    /// The log's own DDL, applied in log order from this tracker's state.
    Tracked(Box<SchemaTracker>),
    /// The log's own DDL, from Cassandra's keyspaces (and this starting
    /// schema, if any): the tracker is made for the release that wrote the
    /// first segment.
    FromLog(Option<Arc<Schema>>),
}

/// What the consumer's `each` callback gets, in log order.
#[non_exhaustive]
pub enum Step<'a> {
    /// An entry, decoded (with the schema from the log: what it changed).
    Entry {
        /// The mutation, or why it did not decode.
        decoded: &'a Decoded<'a>,
        /// Schema changes and truncations the entry made.
        events: &'a [SchemaEvent],
    },
    /// Entries or a section lost to damage.
    Loss(&'a Loss),
    /// The segment ended in a way that is not clean (torn, corrupt).
    Tail(&'a Tail),
    /// The segment could not be read (at all, or any further).
    Unreadable(&'a segment::Error),
}

/// Why a catch-up stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError {
    /// A thread panicked (in the caller's callbacks: the crate's own code
    /// does not panic on input).
    #[error("a catch-up thread panicked")]
    Panicked,
}

/// How a catch-up runs: threads, batches read ahead, entries per batch.
#[derive(Clone, Copy, Debug)]
pub struct CatchUp {
    threads: usize,
    in_flight: usize,
    batch_entries: usize,
}

/// What the reader hands the workers, in log order.
enum Unit {
    /// An entry: its bytes are `map[at]` for a plain segment, `copied[at]`
    /// for a compressed or encrypted one.
    Entry {
        at: std::ops::Range<usize>,
        mapped: bool,
        ctx: Context,
        events: Vec<SchemaEvent>,
    },
    Loss(Loss),
    Tail(Tail),
    Unreadable(segment::Error),
}

/// A run of units of one segment, all of one schema. Its entries' bytes
/// are ranges of the segment's map, or of one buffer the batch owns (one
/// allocation a batch, not one an entry: freed on another thread, many
/// small buffers cost more than decoding them).
struct Batch {
    seq: u64,
    path: Arc<Path>,
    schema: Arc<Schema>,
    map: Bytes,
    copied: Vec<u8>,
    units: Vec<Unit>,
}

impl CatchUp {
    /// `threads` decoding threads (at least one; with one, everything runs
    /// on the calling thread; with more, the reader is one of them and the
    /// consumer runs on the calling thread), as many batches as threads
    /// plus two in flight, 1024 entries a batch.
    pub fn new(threads: usize) -> CatchUp {
        let threads = threads.max(1);
        CatchUp { threads, in_flight: threads + 2, batch_entries: 1024 }
    }

    /// At most this many batches queued for the decoding threads; no batch
    /// is read more than this many plus `threads` ahead of the one the
    /// consumer waits for.
    pub fn in_flight(mut self, batches: usize) -> Self {
        self.in_flight = batches.max(1);
        self
    }

    /// Entries per batch (a batch also ends at a schema change and at the
    /// end of a segment).
    pub fn batch_entries(mut self, n: usize) -> Self {
        self.batch_entries = n.max(1);
        self
    }

    /// Decodes every job's segment and hands the output over in log order.
    ///
    /// - `state()` makes a decoding thread's state (a writer and its
    ///   buffer, say);
    /// - `each(state, file, step)` is called for every step, in order within
    ///   a batch, on a decoding thread;
    /// - `take(state)` takes what `each` gathered from one batch;
    /// - `consume(output)` gets those outputs on the calling thread, in log
    ///   order.
    ///
    /// Returns the schema tracker after the last entry (with the schema
    /// from the log).
    pub fn run<S, C: Send>(
        &self,
        jobs: Vec<Job>,
        schema: SchemaSource,
        state: impl Fn() -> S + Sync,
        each: impl Fn(&mut S, &Path, Step<'_>) + Sync,
        take: impl Fn(&mut S) -> C + Sync,
        mut consume: impl FnMut(C),
    ) -> Result<Option<Box<SchemaTracker>>, CatchUpError> {
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut reader = Reader::new(schema, self.batch_entries, spare_rx);
        if self.threads == 1 {
            let mut s = state();
            let mut decoder = Decoder::new();
            reader.read_all(&jobs, |batch| {
                decode_batch(&batch, &mut decoder, &mut s, &each);
                consume(take(&mut s));
                recycle(&spare_tx, batch);
                true
            });
            return Ok(reader.tracker);
        }
        let (batch_tx, batch_rx) = sync_channel::<Batch>(self.in_flight);
        let batch_rx = Mutex::new(batch_rx);
        let (out_tx, out_rx) = sync_channel::<(u64, C)>(self.in_flight);
        // Decodes a batch and sends its output on; false once the
        // consumer is gone.
        let decode = |batch: Batch, decoder: &mut Decoder, s: &mut S, out: &SyncSender<(u64, C)>| {
            decode_batch(&batch, decoder, s, &each);
            let seq = batch.seq;
            recycle(&spare_tx, batch);
            out.send((seq, take(s))).is_ok()
        };
        // Decodes queued batches until the queue is closed and empty.
        let work = |decoder: &mut Decoder, s: &mut S, out: &SyncSender<(u64, C)>| loop {
            let next = batch_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(batch) = next else { return };
            if !decode(batch, decoder, s, out) {
                return;
            }
        };
        // No batch is read more than this far ahead of the one the consumer
        // waits for: the queue, and one being decoded on each thread.
        let progress = Progress::new((self.in_flight + self.threads) as u64);
        let workers_ok = std::thread::scope(|scope| {
            // Owned here, so that a panic in `consume` drops it while
            // unwinding: the threads' sends then fail and they stop, where
            // they would otherwise wait forever for room and the scope for
            // them.
            let out_rx = out_rx;
            let (decode, work, state, progress) = (&decode, &work, &state, &progress);
            let out = out_tx.clone();
            let batch_rx = &batch_rx;
            let reading = scope.spawn(move || {
                // The reader is one of the decoding threads: a batch that
                // finds the queue full is decoded here, while its section is
                // still in this core's cache (and no third thread competes
                // for two cores); once all is read, it helps empty the queue.
                let (mut s, mut decoder) = (state(), Decoder::new());
                reader.read_all(&jobs, |batch| {
                    // Too far ahead of the consumer (a thread stalled on an
                    // earlier batch): decode queued batches, which it needs
                    // sooner, or wait.
                    loop {
                        match progress.admits(batch.seq) {
                            None => return false,
                            Some(true) => break,
                            Some(false) => {}
                        }
                        // Not `lock`: a worker waiting for a batch holds the
                        // lock, and the queue is then empty anyway.
                        let queued = match batch_rx.try_lock() {
                            Ok(rx) => rx.try_recv().ok(),
                            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().try_recv().ok(),
                            Err(std::sync::TryLockError::WouldBlock) => None,
                        };
                        match queued {
                            Some(b) => {
                                if !decode(b, &mut decoder, &mut s, &out) {
                                    return false;
                                }
                            }
                            None => progress.wait(batch.seq),
                        }
                    }
                    match batch_tx.try_send(batch) {
                        Ok(()) => true,
                        Err(TrySendError::Disconnected(_)) => false,
                        Err(TrySendError::Full(batch)) => decode(batch, &mut decoder, &mut s, &out),
                    }
                });
                drop(batch_tx);
                work(&mut decoder, &mut s, &out);
                reader.tracker
            });
            let workers: Vec<_> = (1..self.threads)
                .map(|_| {
                    let out = out_tx.clone();
                    scope.spawn(move || {
                        // A worker that dies with a batch stops the reading:
                        // the consumer would wait for that batch for ever.
                        let _stop = StopIfPanicking(progress);
                        let (mut s, mut decoder) = (state(), Decoder::new());
                        work(&mut decoder, &mut s, &out);
                    })
                })
                .collect();
            drop(out_tx);
            // Outputs arrive in any order; hand them over in batch order.
            // The reader is stopped if `consume` panics (it may be waiting
            // for the consumer).
            let stop = StopIfPanicking(progress);
            let mut waiting = BTreeMap::new();
            let mut next = 0u64;
            for (seq, out) in out_rx.iter() {
                waiting.insert(seq, out);
                let before = next;
                while let Some(out) = waiting.remove(&next) {
                    consume(out);
                    next += 1;
                }
                if next != before {
                    progress.advance(next);
                }
            }
            drop(stop);
            let mut ok = waiting.is_empty();
            for w in workers {
                ok &= w.join().is_ok();
            }
            reading.join().ok().filter(|_| ok)
        });
        workers_ok.ok_or(CatchUpError::Panicked)
    }
}

/// The batch the consumer waits for, shared with the reader, which must
/// not get more than `ahead` batches ahead of it; and whether reading
/// should stop.
struct Progress {
    state: Mutex<(u64, bool)>,
    moved: std::sync::Condvar,
    ahead: u64,
}

impl Progress {
    fn new(ahead: u64) -> Progress {
        Progress { state: Mutex::new((0, false)), moved: std::sync::Condvar::new(), ahead }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether batch `seq` may be handed out now (`None`: stop reading).
    fn admits(&self, seq: u64) -> Option<bool> {
        let g = self.lock();
        (!g.1).then_some(seq < g.0 + self.ahead)
    }

    /// Waits (a little at most) for the consumer to move on.
    fn wait(&self, seq: u64) {
        let g = self.lock();
        if !g.1 && seq >= g.0 + self.ahead {
            let _ = self.moved.wait_timeout(g, std::time::Duration::from_millis(10));
        }
    }

    /// The consumer now waits for batch `next`.
    fn advance(&self, next: u64) {
        self.lock().0 = next;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.lock().1 = true;
        self.moved.notify_all();
    }
}

/// Stops the reading when dropped by a panicking thread.
struct StopIfPanicking<'a>(&'a Progress);

impl Drop for StopIfPanicking<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Sends a decoded batch's entry buffer back to the reader (unless it grew
/// past what a batch of entries needs: one huge entry should not stay).
fn recycle(spare: &std::sync::mpsc::Sender<Vec<u8>>, batch: Batch) {
    if batch.copied.capacity() > 0 && batch.copied.capacity() <= 8 << 20 {
        let _ = spare.send(batch.copied);
    }
}

/// Decodes a batch's units with its schema, through `each`.
fn decode_batch<S>(batch: &Batch, decoder: &mut Decoder, s: &mut S, each: &(impl Fn(&mut S, &Path, Step<'_>) + Sync)) {
    for unit in &batch.units {
        match unit {
            Unit::Entry { at, mapped, ctx, events } => {
                let bytes = if *mapped { &batch.map[at.clone()] } else { &batch.copied[at.clone()] };
                let decoded = decoder.decode(bytes, &batch.schema, ctx.clone());
                each(s, &batch.path, Step::Entry { decoded: &decoded, events });
            }
            Unit::Loss(l) => each(s, &batch.path, Step::Loss(l)),
            Unit::Tail(t) => each(s, &batch.path, Step::Tail(t)),
            Unit::Unreadable(e) => each(s, &batch.path, Step::Unreadable(e)),
        }
    }
}

/// Units reserved up front for a batch: a caller's huge `batch_entries`
/// grows past it as needed instead of reserving it all.
const MAX_PRESIZED: usize = 4096;

/// The reading side: segments in order, cut into batches, the schema
/// followed as it goes.
struct Reader {
    fixed: Option<Arc<Schema>>,
    tracker: Option<Box<SchemaTracker>>,
    bootstrap: Option<Arc<Schema>>,
    batch_entries: usize,
    decoder: Decoder,
    seq: u64,
    /// Entry buffers of decoded batches, sent back to be filled again:
    /// a fresh buffer a batch costs page faults and regrowth.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Reader {
    fn new(schema: SchemaSource, batch_entries: usize, spare: std::sync::mpsc::Receiver<Vec<u8>>) -> Reader {
        let (fixed, tracker, bootstrap) = match schema {
            SchemaSource::Fixed(s) => (Some(s), None, None),
            SchemaSource::Tracked(t) => (None, Some(t), None),
            SchemaSource::FromLog(b) => (None, None, b),
        };
        Reader { fixed, tracker, bootstrap, batch_entries, decoder: Decoder::new(), seq: 0, spare }
    }

    /// The schema in force now.
    fn schema(&self) -> Arc<Schema> {
        match (&self.fixed, &self.tracker) {
            (Some(s), _) => s.clone(),
            (None, Some(t)) => t.schema().clone(),
            (None, None) => Arc::new(Schema::new()),
        }
    }

    fn batch(
        &mut self,
        path: &Arc<Path>,
        schema: &Arc<Schema>,
        map: Bytes,
        copied: Vec<u8>,
        units: Vec<Unit>,
    ) -> Batch {
        let b = Batch { seq: self.seq, path: path.clone(), schema: schema.clone(), map, copied, units };
        self.seq += 1;
        b
    }

    /// An empty batch's units, with room for a whole batch: grown by
    /// doubling, a batch's units were copied ten times over and left the
    /// allocator fresh pages.
    fn units(&self) -> Vec<Unit> {
        Vec::with_capacity(self.batch_entries.min(MAX_PRESIZED))
    }

    /// An empty entry buffer: a decoded batch's, if one came back.
    fn buffer(&self) -> Vec<u8> {
        let mut b = self.spare.try_recv().unwrap_or_default();
        b.clear();
        b
    }

    /// A batch that says a segment cannot be read.
    fn unreadable(&mut self, path: &Arc<Path>, e: segment::Error) -> Batch {
        let schema = self.schema();
        self.batch(path, &schema, Bytes::new(), Vec::new(), vec![Unit::Unreadable(e)])
    }

    /// Reads every job, sending batches until `send` says stop.
    fn read_all(&mut self, jobs: &[Job], mut send: impl FnMut(Batch) -> bool) {
        let mut buffers = ReadBuffers::default();
        for job in jobs {
            let path: Arc<Path> = Arc::from(job.path.as_path());
            let seg = match Segment::open(&job.path) {
                Ok(s) => s,
                Err(e) => {
                    if !send(self.unreadable(&path, e)) {
                        return;
                    }
                    continue;
                }
            };
            if self.fixed.is_none() && self.tracker.is_none() {
                let release = Release::from_descriptor_version(seg.descriptor().version).unwrap_or(Release::Cassandra4);
                self.tracker = Some(Box::new(match &self.bootstrap {
                    Some(b) => SchemaTracker::with_bootstrap(release, b),
                    None => SchemaTracker::new(release),
                }));
            }
            let mut reader = match seg.reader_with(&job.read, std::mem::take(&mut buffers)) {
                Ok(r) => r,
                Err(e) => {
                    if !send(self.unreadable(&path, e)) {
                        return;
                    }
                    continue;
                }
            };
            let map = seg.bytes().clone();
            let mut units = self.units();
            let mut copied = self.buffer();
            let mut entries = 0;
            // Each batch gets its own handle on the path: one shared by all
            // would have its count touched by every thread for every entry.
            let mut batch_path = Arc::clone(&path);
            // The schema the current batch's entries were written under.
            let mut schema = self.schema();
            loop {
                let item = match reader.next() {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(e) => {
                        units.push(Unit::Unreadable(e));
                        break;
                    }
                };
                match item {
                    Item::Entry(e) => {
                        let ctx = Context::of_entry(&e, seg.descriptor(), Some(batch_path.clone()));
                        let events = match &mut self.tracker {
                            Some(t) => t.observe(&mut self.decoder, e.mutation, ctx.clone()),
                            None => Vec::new(),
                        };
                        let changed = !events.is_empty();
                        let (at, mapped) = match e.file_offset {
                            Some(off) => (off as usize + 8..off as usize + 8 + e.mutation.len(), true),
                            None => {
                                copied.extend_from_slice(e.mutation);
                                (copied.len() - e.mutation.len()..copied.len(), false)
                            }
                        };
                        units.push(Unit::Entry { at, mapped, ctx, events });
                        entries += 1;
                        // A batch ends at a schema change: its entries share one schema.
                        if entries >= self.batch_entries || changed {
                            let fresh = self.buffer();
                            let b = self.batch(
                                &batch_path,
                                &schema,
                                map.clone(),
                                std::mem::replace(&mut copied, fresh),
                                std::mem::replace(&mut units, self.units()),
                            );
                            batch_path = Arc::from(job.path.as_path());
                            schema = self.schema();
                            entries = 0;
                            if !send(b) {
                                return;
                            }
                        }
                    }
                    Item::Loss(l) => units.push(Unit::Loss(l)),
                    Item::Section(_) => {}
                }
            }
            if let Some(tail) = reader.summary().tail.filter(|t| t.class() != TailClass::Clean) {
                units.push(Unit::Tail(tail));
            }
            buffers = reader.into_buffers();
            if !units.is_empty() {
                let b = self.batch(&batch_path, &schema, map, copied, units);
                if !send(b) {
                    return;
                }
            }
        }
    }
}
