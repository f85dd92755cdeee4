//! The `cdc_raw` watcher: yields, in segment order, every mutation as soon
//! as Cassandra's `_cdc.idx` says it is durable, never a byte beyond in a
//! live segment (completed and abandoned ones are read to their end: see
//! [`Tracker`]); resumes from a checkpoint; cleans up only what was
//! acknowledged.

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoint, Position, SchemaState};
use super::cleanup::{CleanupHook, SegmentFiles};
use super::idx::{IdxError, IdxState, read_cdc_index};
use super::tracker::{DEFAULT_ABANDONED_AFTER, Metrics, MismatchCause, Note, Observed, Plan, ReadResult, Tracker};
use crate::location::Location;
use bytes::Bytes;

use crate::mutation::{Context, Decoded, Decoder, OwnedMutation};
use crate::schema::{Release, Schema, SchemaEvent, SchemaTracker, StateError};
use crate::segment::{
    self, Item, Loss, ReadBuffers, ReadOptions, ResumePoint, Segment, SegmentName, Summary, Tail, TailClass,
};

/// How often to read again an idx that seems to have gone backwards.
const TORN_READ_RETRIES: usize = 5;

/// One entry of a batch: the mutation's bytes (a view into the memory map
/// for plain segments) and where it is.
#[derive(Clone, Debug)]
pub struct BatchEntry {
    /// The serialized mutation.
    pub bytes: Bytes,
    /// Segment, position, file.
    pub context: Context,
}

/// The newly durable part of one segment (or as much of it as one batch holds).
///
/// Its entries are decoded when asked: [`decode`](Batch::decode) with a
/// reused [`Decoder`] allocates nothing; [`owned`](Batch::owned) gives
/// mutations to keep.
#[derive(Debug)]
pub struct Batch {
    /// The segment.
    pub segment_id: i64,
    /// What had been consumed before this batch (exclusive).
    pub from: Position,
    /// What has been consumed with this batch: acknowledge it once the
    /// mutations are processed.
    pub to: Position,
    /// The segment is finished: complete, and read to its end.
    pub completed: bool,
    /// The entries, in position order.
    pub entries: Vec<BatchEntry>,
    /// Entries or sections lost to damage within the batch's range.
    pub losses: Vec<Loss>,
    /// With the schema from the log: what the batch's last entry changed
    /// (a batch ends at every schema change, so that all its entries decode
    /// with one schema), and truncations.
    pub schema_events: Vec<SchemaEvent>,
    schema: Arc<Schema>,
    schema_state: Option<SchemaState>,
    /// Damaged segments up to this one (for the checkpoint).
    damaged: Vec<i64>,
}

impl Batch {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (a batch can only finish a segment).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decodes the `i`-th entry (mutations of unknown tables, such as
    /// Cassandra's system tables, come back as undecodable).
    pub fn decode<'d>(&'d self, i: usize, decoder: &'d mut Decoder) -> Decoded<'d> {
        let e = &self.entries[i];
        decoder.decode(&e.bytes, &self.schema, e.context.clone())
    }

    /// Every entry decoded into an owned mutation, to keep or send away.
    pub fn owned(&self, decoder: &mut Decoder) -> Vec<OwnedMutation> {
        self.entries
            .iter()
            .map(|e| OwnedMutation::decode(decoder, e.bytes.clone(), self.schema.clone(), e.context.clone()))
            .collect()
    }

    /// Decodes the entries on `threads` threads (each with its own
    /// decoder and a `state()` of its own) and returns what `each` makes of
    /// them, in entry order: for catching up on a backlog, where batches
    /// are full and decoding and rendering them is the consumer's work.
    /// Where the outputs are bytes to concatenate (JSON Lines),
    /// [`fold_parallel`](Self::fold_parallel) writes them into a buffer a
    /// run of entries instead of a value per entry.
    ///
    /// ```no_run
    /// # let batch: cassandra_commitlog::cdc::Batch = unimplemented!();
    /// use cassandra_commitlog::mutation::ChangeWriter;
    /// let lines: Vec<Vec<u8>> = batch.map_parallel(2, ChangeWriter::new, |writer, decoded| {
    ///     let mut line = Vec::new();
    ///     writer.write_line(&mut line, &decoded);
    ///     line
    /// });
    /// ```
    pub fn map_parallel<S, T: Send>(
        &self,
        threads: usize,
        state: impl Fn() -> S + Sync,
        each: impl Fn(&mut S, Decoded<'_>) -> T + Sync,
    ) -> Vec<T> {
        let runs = self.fold_parallel(
            threads,
            || (state(), Vec::new()),
            |(s, out): &mut (S, Vec<T>), decoded| out.push(each(s, decoded)),
            |(_, out)| std::mem::take(out),
        );
        runs.into_iter().flatten().collect()
    }

    /// Decodes the entries on `threads` threads, each with its own decoder
    /// and `state()`, in runs of consecutive entries that go to whichever
    /// thread is free (so that a thread slowed by others does not hold the
    /// batch up): `each` is called for every entry of a run, in order, then
    /// `take` makes the run's output from the thread's state. The outputs
    /// come back in entry order: with a buffer in the state that `take`
    /// hands over, the outputs one after the other are the entries' own,
    /// with no value per entry.
    ///
    /// ```no_run
    /// # let batch: cassandra_commitlog::cdc::Batch = unimplemented!();
    /// use cassandra_commitlog::mutation::ChangeWriter;
    /// let runs: Vec<Vec<u8>> = batch.fold_parallel(
    ///     2,
    ///     || (ChangeWriter::new(), Vec::new()),
    ///     |(writer, buf), decoded| writer.write_line(buf, &decoded),
    ///     |(_, buf)| std::mem::take(buf),
    /// );
    /// let jsonl: Vec<u8> = runs.concat();
    /// ```
    pub fn fold_parallel<S, C: Send>(
        &self,
        threads: usize,
        state: impl Fn() -> S + Sync,
        each: impl Fn(&mut S, Decoded<'_>) + Sync,
        take: impl Fn(&mut S) -> C + Sync,
    ) -> Vec<C> {
        let threads = threads.clamp(1, self.entries.len().max(1));
        // Runs small enough to even the threads out, large enough that
        // taking one costs nothing next to decoding it.
        let run_len = self.entries.len().div_ceil(threads * RUNS_PER_THREAD).max(MIN_RUN);
        let runs: Vec<&[BatchEntry]> = self.entries.chunks(run_len).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let (mut s, mut decoder) = (state(), Decoder::new());
            // A handle on the segment's path of the thread's own: one shared
            // by all would have its count touched by every thread for every
            // entry (the cache line bouncing between cores).
            let mut path: Option<(Arc<Path>, Arc<Path>)> = None;
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(run) = runs.get(i) else { break };
                for e in *run {
                    let file = e.context.file.as_ref().map(|f| match &path {
                        Some((shared, own)) if Arc::ptr_eq(shared, f) => own.clone(),
                        _ => {
                            let own: Arc<Path> = Arc::from(&**f);
                            path = Some((f.clone(), own.clone()));
                            own
                        }
                    });
                    let c = &e.context;
                    let ctx = Context {
                        file,
                        segment_id: c.segment_id,
                        position: c.position,
                        file_offset: c.file_offset,
                        unsigned_deletion_times: c.unsigned_deletion_times,
                    };
                    each(&mut s, decoder.decode(&e.bytes, &self.schema, ctx));
                }
                done.push((i, take(&mut s)));
            }
            done
        };
        if threads == 1 || runs.len() <= 1 {
            let mut s = work();
            if s.is_empty() {
                // No entries: one output, of the state as made.
                s.push((0, take(&mut state())));
            }
            return s.into_iter().map(|(_, c)| c).collect();
        }
        let mut out: Vec<Option<C>> = std::iter::repeat_with(|| None).take(runs.len()).collect();
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            // The caller's thread is one of them.
            let mine = work();
            for (i, c) in others
                .into_iter()
                // A panic in `each` is the caller's: it goes on in the caller.
                .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .chain(mine)
            {
                out[i] = Some(c);
            }
        });
        out.into_iter().map(|c| c.expect("every run is taken once")).collect()
    }

    /// The schema the entries decode with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The checkpoint to save once this batch is processed (with the
    /// schema from the log, the tracker's state after the batch).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            position: self.to,
            segment_completed: self.completed,
            schema: self.schema_state.clone(),
            damaged: self.damaged.clone(),
        }
    }
}

/// What the watcher reports besides batches is as important as the data:
/// nothing is lost silently.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Newly durable mutations.
    Batch(Batch),
    /// A segment known to hold CDC data vanished before it was consumed
    /// (for example deleted by Cassandra under `cdc_block_writes: false`).
    Lost {
        /// The segment.
        segment_id: i64,
        /// Position consumed up to.
        from: u64,
        /// Last durable offset seen (`None`: unknown).
        to: Option<u64>,
    },
    /// A segment's durable data is damaged beyond this position, or the
    /// file is unreadable: it is not read further and its files stay.
    Damaged {
        /// The segment.
        segment_id: i64,
        /// Where reading stopped.
        position: u64,
        /// What was found.
        detail: Damage,
    },
    /// An idx offset went backwards: ignored.
    IdxBackwards {
        /// The segment.
        segment_id: i64,
        /// The offset seen before.
        previous: u64,
        /// The smaller one found.
        found: u64,
    },
    /// An idx file that is not Cassandra's format: ignored until it is.
    IdxMalformed(IdxError),
    /// A completed segment, read to its end as Cassandra's replay reads it,
    /// ends elsewhere than its `COMPLETED` idx says: after a crash, the
    /// replay rewrites the idx with the file's physical length. Nothing is
    /// lost or moved by it: the end read is the one that counts.
    IdxMismatch {
        /// The segment.
        segment_id: i64,
        /// The offset the idx states.
        idx_offset: u64,
        /// The logical end of the segment's data.
        end: u64,
        /// The file's length when read.
        file_len: u64,
        /// A replay's physical length, or something else.
        cause: MismatchCause,
    },
    /// A segment a crash left unfinished (its idx without `COMPLETED`
    /// behind a newer segment's idx, unchanged for the grace period of
    /// [`WatchOptions::abandoned_after`]) was read to its end and is
    /// finished; its batches, the last one with `completed`, came before.
    Abandoned {
        /// The segment.
        segment_id: i64,
        /// The offset its idx states.
        idx_offset: u64,
        /// The logical end of its data: entries between `idx_offset` and
        /// here were made durable by a sync whose idx write the crash cut.
        read_to: u64,
    },
    /// A finished, acknowledged segment was cleaned up.
    Cleaned {
        /// The segment.
        segment_id: i64,
    },
    /// The cleanup hook failed; it is retried later.
    CleanupFailed {
        /// The segment.
        segment_id: i64,
        /// The hook's error.
        error: io::Error,
    },
}

/// What was found in a damaged segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum Damage {
    /// A marker below the durable offset is corrupt or announces a section
    /// the file does not hold.
    Tail(Tail),
    /// The file cannot be read as a segment (bad header, missing key...).
    Unreadable(segment::Error),
    /// The segment's data ends, cleanly, before an offset its idx once
    /// said was durable.
    EndBeforeDurable {
        /// Where the data ends.
        end: u64,
        /// The durable offset an idx stated.
        durable: u64,
    },
}

/// An error that stops a call (the caller may call again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdcError {
    /// Listing the directory or reading a file failed.
    #[error("{loc}: {source}")]
    Io {
        /// Where.
        loc: Location,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The start checkpoint's schema state cannot be restored.
    #[error("{loc}: the checkpoint's schema state: {source}")]
    SchemaState {
        /// The watched directory.
        loc: Location,
        /// Why.
        #[source]
        source: StateError,
    },
}

/// Where the schema comes from.
enum SchemaSource {
    /// A schema given once.
    Fixed(Arc<Schema>),
    /// The log: a tracker, made at the first segment read (its descriptor
    /// says which release wrote it) unless given or restored.
    Log { bootstrap: Option<Arc<Schema>>, tracker: Option<Box<SchemaTracker>> },
}

/// How to watch a `cdc_raw` directory.
pub struct WatchOptions {
    dir: PathBuf,
    schema: SchemaSource,
    read: ReadOptions,
    start: Option<Checkpoint>,
    poll_interval: Duration,
    idle_timeout: Option<Duration>,
    max_batch: usize,
    use_notify: bool,
    read_ahead: bool,
    read_ahead_bytes: usize,
    cleanup: Option<Box<dyn CleanupHook>>,
    abandoned_after: Option<Duration>,
    clock: Clock,
}

/// The watcher's time source: `Instant::now` unless a test gives its own.
#[derive(Clone)]
pub struct Clock(Option<Arc<dyn Fn() -> Instant + Send + Sync>>);

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock read from `now` (a simulation's manual clock).
    pub fn manual(now: impl Fn() -> Instant + Send + Sync + 'static) -> Clock {
        Clock(Some(Arc::new(now)))
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |f| f())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Clock::manual" } else { "Clock::system" })
    }
}

impl WatchOptions {
    /// Watch `dir`, decoding with `schema` (a [`Schema`] or an
    /// `Arc<Schema>` shared with other readers).
    pub fn new(dir: impl Into<PathBuf>, schema: impl Into<Arc<Schema>>) -> WatchOptions {
        WatchOptions::with_source(dir.into(), SchemaSource::Fixed(schema.into()))
    }

    /// Watch `dir`, decoding with the schema the log itself carries (see
    /// [`SchemaTracker`]): Cassandra's own keyspaces are built in, every
    /// DDL in the log amends the schema at its position, and each batch
    /// decodes with the schema in force where it was written. The
    /// tracker's state is part of every [`Batch::checkpoint`], so that a
    /// watcher restarted from a saved checkpoint goes on with the schema of
    /// that position, even after the segments holding the DDL are gone.
    pub fn schema_from_log(dir: impl Into<PathBuf>) -> WatchOptions {
        WatchOptions::with_source(dir.into(), SchemaSource::Log { bootstrap: None, tracker: None })
    }

    /// With [`schema_from_log`](Self::schema_from_log): start from this
    /// schema (for a log whose DDL is long gone); the log amends it.
    pub fn bootstrap_schema(mut self, schema: impl Into<Arc<Schema>>) -> Self {
        if let SchemaSource::Log { bootstrap, .. } = &mut self.schema {
            *bootstrap = Some(schema.into());
        }
        self
    }

    /// Follow the log with this tracker (a start checkpoint with schema
    /// state takes precedence).
    pub fn schema_tracker(mut self, tracker: SchemaTracker) -> Self {
        self.schema = SchemaSource::Log { bootstrap: None, tracker: Some(Box::new(tracker)) };
        self
    }

    fn with_source(dir: PathBuf, schema: SchemaSource) -> WatchOptions {
        WatchOptions {
            dir,
            schema,
            read: ReadOptions::new(),
            start: None,
            poll_interval: Duration::from_millis(100),
            idle_timeout: None,
            max_batch: 4096,
            use_notify: cfg!(feature = "watch"),
            read_ahead: true,
            read_ahead_bytes: DEFAULT_READ_AHEAD_BYTES,
            cleanup: None,
            abandoned_after: Some(DEFAULT_ABANDONED_AFTER),
            clock: Clock::system(),
        }
    }

    /// Options for reading segments (encryption keys, section cap). Their
    /// limit and start position are set by the watcher.
    pub fn read_options(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    /// Start after this checkpoint: everything at or before it counts as
    /// consumed and acknowledged.
    pub fn start(mut self, checkpoint: Option<Checkpoint>) -> Self {
        self.start = checkpoint;
        self
    }

    /// How often to look at the directory when no file event arrives
    /// (default 100 ms). With `notify` this is a safety net against lost
    /// events, and no more often than once a second; without it, the
    /// polling interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// [`Watcher::next_event`] returns `None` after this long without new
    /// durable data (the default is to wait forever).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most mutations in one batch (memory is bounded by this).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// Use file-system events (`notify`, feature `watch`); off: poll only.
    pub fn use_notify(mut self, on: bool) -> Self {
        self.use_notify = on && cfg!(feature = "watch");
        self
    }

    /// Read finished segments whole, and ahead (on by default).
    ///
    /// On: a finished segment (`COMPLETED` in its idx) is read once, whole
    /// (up to [`read_ahead_bytes`](Self::read_ahead_bytes) of copied
    /// entries), and served in batches; while another finished segment
    /// waits behind it (a backlog), that one is read on another thread
    /// (sections decompressed or decrypted, CRCs checked) while the
    /// consumer works on the current one. At most two finished segments
    /// are held in memory: the one being served and the one read ahead (a
    /// plain segment's entries are views of the map; a compressed or
    /// encrypted one's are copies, up to `read_ahead_bytes` each).
    ///
    /// Off: each batch is read from the file by a reader resumed at the
    /// section the previous batch stopped in (that section's decoded bytes
    /// are reused, not decoded again), on the consumer's thread, and memory
    /// is one batch and one section.
    ///
    /// The batches are the same, entry for entry, either way.
    pub fn read_ahead(mut self, on: bool) -> Self {
        self.read_ahead = on;
        self
    }

    /// With [`read_ahead`](Self::read_ahead): the most bytes of entries a
    /// whole-segment read copies out of compressed or encrypted sections
    /// (default 16 MiB, half a full segment's entries); past it the segment
    /// goes on being read batch by batch. Plain segments' entries are views
    /// of the map and count nothing.
    pub fn read_ahead_bytes(mut self, bytes: usize) -> Self {
        self.read_ahead_bytes = bytes.max(1);
        self
    }

    /// Call this hook for finished, acknowledged segments.
    pub fn cleanup(mut self, hook: impl CleanupHook + 'static) -> Self {
        self.cleanup = Some(Box::new(hook));
        self
    }

    /// The grace period of the abandonment rule (default
    /// [`DEFAULT_ABANDONED_AFTER`], 10 s): a segment whose idx lacks
    /// `COMPLETED` while a newer segment has an idx, unchanged that long, is
    /// one a crash left behind and no replay finished; it is read to its
    /// end (past its idx offset: the sync that made those entries durable
    /// ran, the idx write after it did not), then treated as finished, with
    /// an [`Event::Abandoned`]. While the grace runs, [`Watcher::metrics`]
    /// shows it in `held_back`, and the segments after it wait. `None`
    /// turns the rule off: such a segment then holds the stream back until
    /// its idx says `COMPLETED`, which may be never. The newest segment
    /// with an idx is never read past its offset.
    pub fn abandoned_after(mut self, grace: Option<Duration>) -> Self {
        self.abandoned_after = grace;
        self
    }

    /// The time source of the abandonment rule's grace period (a
    /// simulation drives it by hand; the default is the system's).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// Watches a `cdc_raw` directory.
///
/// ```no_run
/// use std::sync::Arc;
/// use cassandra_commitlog::cdc::{CheckpointFile, DeleteFiles, Event, WatchOptions, Watcher};
/// use cassandra_commitlog::mutation::Decoder;
/// use cassandra_commitlog::schema::Schema;
///
/// let schema = Arc::new(Schema::parse(&std::fs::read_to_string("schema.cql")?)?);
/// let checkpoints = CheckpointFile::new("cdc.checkpoint");
/// let opts = WatchOptions::new("/var/lib/cassandra/cdc_raw", schema)
///     .start(checkpoints.load()?)
///     .cleanup(DeleteFiles);
/// let mut watcher = Watcher::new(opts)?;
/// let mut decoder = Decoder::new();
/// while let Some(event) = watcher.next_event()? {
///     if let Event::Batch(batch) = event {
///         for i in 0..batch.len() {
///             match batch.decode(i, &mut decoder) {
///                 Ok(m) => println!("{}", serde_json::to_string(&m)?),
///                 Err(u) => println!("{}", serde_json::to_string(&*u)?),
///             }
///         }
///         checkpoints.save(&batch.checkpoint())?;
///         watcher.ack(batch.to);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Watcher {
    opts: WatchOptions,
    tracker: Tracker,
    pending: VecDeque<Event>,
    /// Cleanup retries.
    retry: Retries,
    last_progress: Instant,
    wakeups: Wakeups,
    /// The segment being read, mapped, and the file length it was mapped
    /// at: kept while the file does not grow (a new map sees appended data).
    open: Option<(SegmentName, u64, Segment)>,
    /// Section buffers, passed from one read to the next.
    buffers: ReadBuffers,
    /// Decodes the schema mutations the tracker applies.
    schema_decoder: Decoder,
    /// The tracker's state, saved at a generation.
    snapshot: Option<(u64, SchemaState)>,
    /// A finished segment read whole, served in batches.
    walked: Option<WalkedSegment>,
    /// The next finished segment, being read on another thread.
    ahead: Option<(Plan, ReadingAhead)>,
    /// The section buffers of the read-ahead thread, kept between segments.
    ahead_buffers: ReadBuffers,
    /// Buffers that entries copied out of decoded sections go into, back
    /// once the batches holding them are dropped.
    copies: CopyPool,
    /// Where the last read of a segment stopped (its section, and the next
    /// entry in it), so that the next read neither decodes the earlier
    /// sections nor steps over the section's earlier entries again.
    resume: Option<(SegmentName, ResumePoint)>,
}

/// With file-system events, how often the directory is listed unprompted
/// at the least (a safety net: idle, each listing reads every idx twice).
const SAFETY_NET_INTERVAL: Duration = Duration::from_secs(1);

/// `Batch::fold_parallel` cuts a batch into about this many runs a thread.
const RUNS_PER_THREAD: usize = 8;

/// Entries a run has at least.
const MIN_RUN: usize = 64;

/// The most bytes of entries a walk copies out of compressed or encrypted
/// sections before it stops, by default (the rest is read batch by batch).
const DEFAULT_READ_AHEAD_BYTES: usize = 16 << 20;

/// The read-ahead thread: the segment it read, and its buffers back.
type ReadingAhead = std::thread::JoinHandle<(Option<WalkedSegment>, ReadBuffers)>;

/// Section-sized buffers for the entries a walk copies out of decoded
/// sections. A buffer comes back when the last entry viewing it is dropped
/// (the consumer's batch): a fresh one for every section costs a page
/// fault for every 4 KiB copied, on each thread, every time.
#[derive(Clone, Default)]
struct CopyPool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Buffers a pool keeps: the sections of a walk being served and one read
/// ahead are in use meanwhile, not kept.
const POOLED_COPY_BUFFERS: usize = 4;

impl CopyPool {
    /// An empty buffer with room for `len` bytes: the smallest kept one
    /// that has the room, else the largest kept one, grown (a large
    /// buffer grows in place or is moved by remapping its pages: no copy,
    /// and no fault but for the pages added).
    fn take(&self, len: usize) -> Vec<u8> {
        let mut pool = self.lock();
        let fits = (0..pool.len()).filter(|&i| pool[i].capacity() >= len).min_by_key(|&i| pool[i].capacity());
        match fits.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].capacity())) {
            Some(i) => {
                let mut buf = pool.swap_remove(i);
                buf.reserve_exact(len);
                buf
            }
            None => Vec::with_capacity(len),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets the kept buffers go (nothing is being caught up on).
    fn clear(&self) {
        self.lock().clear();
    }

    /// Keeps an unused buffer, if the pool has room.
    fn put(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut pool = self.lock();
        if pool.len() < POOLED_COPY_BUFFERS {
            buf.clear();
            pool.push(buf);
        }
    }

    /// The buffer as bytes that give it back to the pool when dropped.
    fn bytes(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledCopy { buf, pool: self.clone() })
    }
}

/// A pooled buffer, owned by the entries that view it.
struct PooledCopy {
    buf: Vec<u8>,
    pool: CopyPool,
}

impl AsRef<[u8]> for PooledCopy {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledCopy {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

/// One item of a walk, owned.
enum Walked {
    Entry(BatchEntry),
    Loss(Loss),
}

/// A finished segment read whole to its end (after a position),
/// ahead of the consumer.
struct WalkedSegment {
    name: SegmentName,
    len: u64,
    limit: Option<u64>,
    after: u64,
    version: i32,
    items: std::vec::IntoIter<Walked>,
    summary: Summary,
    /// The walk stopped at the copy cap: where to resume (just past its
    /// last entry, in that entry's section).
    partial: Option<ResumePoint>,
}

/// The options to read a plan with: tolerant, after its position, up to its
/// limit if it has one.
fn plan_options(read: &ReadOptions, plan: &Plan) -> ReadOptions {
    let opts = read.clone().strict(false).after(plan.after);
    match plan.limit {
        Some(limit) => opts.limit(limit),
        None => opts,
    }
}

/// Reads a finished segment whole; `None` when it cannot be opened or read
/// at all (the watcher then reads it itself, and reports why).
fn walk_finished(
    path: &Path,
    plan: Plan,
    read: &ReadOptions,
    resume: Option<ResumePoint>,
    cap: usize,
    buffers: &mut ReadBuffers,
    copies: &CopyPool,
) -> Option<WalkedSegment> {
    let len = std::fs::metadata(path).ok()?.len();
    let seg = Segment::open(path).ok()?;
    let mut opts = plan_options(read, &plan);
    if let Some(point) = resume {
        opts = opts.resume_from(point);
    }
    let file: Arc<Path> = Arc::from(path);
    let mut reader = seg.reader_with(&opts, std::mem::take(buffers)).ok()?;
    let (mut items, mut copied, mut partial) = (Vec::new(), 0usize, None);
    // Entries copied out of a decoded section go into one buffer per
    // section, then become views of it: one allocation a section, not one
    // an entry (freed by another thread, many small ones cost more).
    let (mut buf, mut pending) = (Vec::new(), Vec::new());
    let plain = matches!(seg.descriptor().format, segment::SectionFormat::Plain);
    let flush = |buf: &mut Vec<u8>, pending: &mut Vec<(std::ops::Range<usize>, Context)>, items: &mut Vec<Walked>| {
        if pending.is_empty() {
            return;
        }
        let bytes = copies.bytes(std::mem::take(buf));
        items
            .extend(pending.drain(..).map(|(r, context)| Walked::Entry(BatchEntry { bytes: bytes.slice(r), context })));
    };
    // Not strict: damage comes as items, so `next` has no error to give.
    while let Ok(Some(item)) = reader.next() {
        match item {
            Item::Entry(e) => {
                let context = Context::of_entry(&e, seg.descriptor(), Some(file.clone()));
                if e.file_offset.is_some() {
                    items.push(Walked::Entry(BatchEntry { bytes: seg.entry_bytes(&e), context }));
                    continue;
                }
                copied += e.mutation.len();
                pending.push((buf.len()..buf.len() + e.mutation.len(), context));
                buf.extend_from_slice(e.mutation);
                if copied >= cap {
                    partial = reader.resume_point();
                    break;
                }
            }
            Item::Loss(l) => {
                flush(&mut buf, &mut pending, &mut items);
                items.push(Walked::Loss(l));
            }
            Item::Section(s) => {
                flush(&mut buf, &mut pending, &mut items);
                if !plain {
                    // Entries take at most the section's decoded length.
                    let unused =
                        std::mem::replace(&mut buf, copies.take((s.end - s.content_start).min(cap as u64) as usize));
                    copies.put(unused);
                }
            }
        }
    }
    flush(&mut buf, &mut pending, &mut items);
    copies.put(buf);
    let summary = reader.summary().clone();
    *buffers = reader.into_buffers();
    let version = seg.descriptor().version;
    let items = items.into_iter();
    Some(WalkedSegment { name: plan.name, len, limit: plan.limit, after: plan.after, version, items, summary, partial })
}

/// What one read collected.
struct Collected {
    entries: Vec<BatchEntry>,
    losses: Vec<Loss>,
    consumed: u64,
    cut_short: bool,
    schema_events: Vec<SchemaEvent>,
}

/// File-system events, when `notify` is available and asked for.
struct Wakeups {
    #[cfg(feature = "watch")]
    watcher: Option<(notify::RecommendedWatcher, std::sync::mpsc::Receiver<()>)>,
}

/// Whether a file-system event only says a file was opened, read or closed
/// unwritten.
#[cfg(feature = "watch")]
fn is_a_read(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

impl Wakeups {
    fn new(dir: &Path, on: bool) -> Wakeups {
        #[cfg(feature = "watch")]
        {
            use notify::Watcher as _;
            let watcher = on.then(|| {
                // One pending wake-up is enough: events coalesce, memory stays bounded.
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    // Opening, reading and closing a file unwritten change
                    // nothing; they are mostly the watcher's own reads of
                    // the idx files, which would wake it again at once (a
                    // core spent spinning on a quiet node).
                    if let Ok(e) = &res
                        && is_a_read(&e.kind)
                    {
                        return;
                    }
                    let _ = tx.try_send(());
                })
                .ok()?;
                w.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
                Some((w, rx))
            });
            Wakeups { watcher: watcher.flatten() }
        }
        #[cfg(not(feature = "watch"))]
        {
            let _ = (dir, on);
            Wakeups {}
        }
    }

    fn active(&self) -> bool {
        #[cfg(feature = "watch")]
        return self.watcher.is_some();
        #[cfg(not(feature = "watch"))]
        false
    }

    /// Waits for a file event or `timeout`.
    fn wait(&self, timeout: Duration) {
        #[cfg(feature = "watch")]
        if let Some((_, rx)) = &self.watcher {
            if rx.recv_timeout(timeout).is_ok() {
                while rx.try_recv().is_ok() {}
            }
            return;
        }
        std::thread::sleep(timeout);
    }
}

impl Watcher {
    /// Starts watching (nothing is read until asked).
    pub fn new(mut opts: WatchOptions) -> Result<Watcher, CdcError> {
        let dir_loc = Location::file(Some(Arc::from(opts.dir.as_path())));
        if let Err(source) = std::fs::metadata(&opts.dir) {
            return Err(CdcError::Io { loc: dir_loc, source });
        }
        if let (SchemaSource::Log { tracker, .. }, Some(state)) =
            (&mut opts.schema, opts.start.as_ref().and_then(|c| c.schema.as_ref()))
        {
            let restored = state.tracker().map_err(|source| CdcError::SchemaState { loc: dir_loc, source })?;
            *tracker = Some(Box::new(restored));
        }
        let wakeups = Wakeups::new(&opts.dir, opts.use_notify);
        Ok(Watcher {
            tracker: Tracker::new(opts.start.as_ref()).abandoned_after(opts.abandoned_after),
            pending: VecDeque::new(),
            retry: Default::default(),
            last_progress: Instant::now(),
            wakeups,
            open: None,
            buffers: ReadBuffers::default(),
            schema_decoder: Decoder::new(),
            snapshot: None,
            walked: None,
            ahead: None,
            ahead_buffers: ReadBuffers::default(),
            copies: CopyPool::default(),
            resume: None,
            opts,
        })
    }

    /// Whether file-system events are being used (else the directory is polled).
    pub fn is_watching(&self) -> bool {
        self.wakeups.active()
    }

    /// Acknowledges everything up to and including `position`: segments
    /// finished at or before it may now be cleaned up.
    pub fn ack(&mut self, position: Position) {
        self.tracker.ack(position);
    }

    /// Consumed and durable positions, lag, segments awaiting cleanup.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.tracker.metrics();
        if self.opts.cleanup.is_none() {
            m.kept = std::mem::take(&mut m.awaiting_cleanup);
        }
        m
    }

    /// The next event: blocks until there is one, and returns `Ok(None)`
    /// once the idle timeout passes with nothing new. Reads only when
    /// called, so a slow consumer holds the watcher back, not its memory.
    pub fn next_event(&mut self) -> Result<Option<Event>, CdcError> {
        self.next_event_until(None)
    }

    /// The next event, if one comes within `wait`: `Ok(None)` when nothing
    /// new arrived by then (or the idle timeout passed). For a consumer with
    /// work of its own between events, such as a producer's delivery
    /// reports to poll while batches are in flight.
    pub fn next_event_within(&mut self, wait: Duration) -> Result<Option<Event>, CdcError> {
        self.next_event_until(Some(Instant::now() + wait))
    }

    fn next_event_until(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, CdcError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            self.clean_up();
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            if let Some(plan) = self.tracker.next_read() {
                if let Some(batch) = self.read(plan)? {
                    self.last_progress = Instant::now();
                    return Ok(Some(Event::Batch(batch)));
                }
                continue;
            }
            self.scan()?;
            if !self.pending.is_empty() || self.tracker.next_read().is_some() {
                continue;
            }
            if self.opts.cleanup.is_some()
                && self.tracker.cleanup_candidates().iter().any(|n| retry_due(&self.retry, n.id))
            {
                continue;
            }
            // With file-system events, looking again unprompted is only a
            // safety net (events lost to an overflowing queue), at most once
            // a second; a segment in the abandonment rule's grace is looked
            // at again once the grace has run.
            let mut wait = match self.wakeups.active() {
                true => self.opts.poll_interval.max(SAFETY_NET_INTERVAL),
                false => self.opts.poll_interval,
            };
            if let Some(deadline) = self.tracker.next_deadline() {
                wait = wait.min(deadline.saturating_duration_since(self.opts.clock.now()));
            }
            // A failed cleanup is tried again when its pause ends (the
            // pauses kept are those of segments still waiting: see clean_up).
            if let Some(retry) = self.retry.values().map(|(_, at)| *at).min() {
                wait = wait.min(retry.saturating_duration_since(Instant::now()));
            }
            if let Some(idle) = self.opts.idle_timeout {
                let waited = self.last_progress.elapsed();
                if waited >= idle {
                    return Ok(None);
                }
                wait = wait.min(idle - waited);
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                wait = wait.min(left);
            }
            self.wakeups.wait(wait);
        }
    }

    /// Calls `f` with every event until it breaks, or the idle timeout passes.
    pub fn run(&mut self, mut f: impl FnMut(&mut Watcher, Event) -> ControlFlow<()>) -> Result<(), CdcError> {
        while let Some(e) = self.next_event()? {
            if f(self, e).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn dir_loc(&self) -> Location {
        Location::file(Some(Arc::from(self.opts.dir.as_path())))
    }

    /// Lists the directory and reads every idx; files may vanish meanwhile.
    fn scan(&mut self) -> Result<(), CdcError> {
        let io = |source| CdcError::Io { loc: self.dir_loc(), source };
        let mut logs = Vec::new();
        let mut idxs = std::collections::HashSet::new();
        for entry in std::fs::read_dir(&self.opts.dir).map_err(io)? {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = SegmentName::parse(name) {
                logs.push(n);
            } else if let Some(n) = SegmentName::parse_cdc_index(name) {
                idxs.insert(n);
            }
        }
        logs.sort_by_key(|n| n.id);
        let mut listing = Vec::with_capacity(logs.len());
        let log_set: std::collections::HashSet<SegmentName> = logs.iter().copied().collect();
        for name in idxs.iter().filter(|n| !log_set.contains(n)) {
            // An idx left without its log: only its presence matters.
            listing.push(Observed { name: *name, log: false, idx: IdxState::NotReady });
        }
        for name in logs {
            let idx = if idxs.contains(&name) {
                let path = self.opts.dir.join(name.cdc_index_file_name());
                let mut state = read_cdc_index(&path);
                // A smaller offset than before is most likely a read that raced
                // Cassandra's truncate-then-write (a prefix of the digits):
                // look again before calling it a step backwards.
                let known = self.tracker.durable(name.id);
                for _ in 0..TORN_READ_RETRIES {
                    match &state {
                        Ok(IdxState::Ready(i)) if known.is_some_and(|k| i.offset < k) => {
                            std::thread::sleep(Duration::from_millis(1));
                            state = read_cdc_index(&path);
                        }
                        _ => break,
                    }
                }
                match state {
                    Ok(state) => state,
                    Err(IdxError::Io { loc, source }) => return Err(CdcError::Io { loc, source }),
                    Err(e) => {
                        self.pending.push_back(Event::IdxMalformed(e));
                        IdxState::NotReady
                    }
                }
            } else {
                IdxState::Missing
            };
            listing.push(Observed { name, log: true, idx });
        }
        let notes = self.tracker.observe(&listing, self.opts.clock.now());
        self.report(notes);
        Ok(())
    }

    /// Queues the events for what the tracker noticed.
    fn report(&mut self, notes: Vec<Note>) {
        for note in notes {
            self.pending.push_back(match note {
                Note::Lost { segment_id, from, to } => Event::Lost { segment_id, from, to },
                Note::Backwards { segment_id, previous, found } => Event::IdxBackwards { segment_id, previous, found },
                Note::IdxMismatch { segment_id, idx_offset, end, file_len, cause } => {
                    Event::IdxMismatch { segment_id, idx_offset, end, file_len, cause }
                }
                Note::Abandoned { segment_id, idx_offset, read_to } => {
                    Event::Abandoned { segment_id, idx_offset, read_to }
                }
                Note::EndBeforeDurable { segment_id, end, durable } => {
                    Event::Damaged { segment_id, position: end, detail: Damage::EndBeforeDurable { end, durable } }
                }
            });
        }
    }

    /// Reads one plan; `None` when it gave nothing to report.
    fn read(&mut self, plan: Plan) -> Result<Option<Batch>, CdcError> {
        if plan.finishes
            && self.opts.read_ahead
            && let Some(walked) = self.walked_for(&plan)
        {
            return Ok(self.serve_walked(plan, walked));
        }
        if self.ahead.is_none() && self.walked.is_none() {
            // Not catching up: the buffers kept for copies are let go.
            self.copies.clear();
        }
        let path = self.opts.dir.join(plan.name.file_name());
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.scan()?;
                return Ok(None);
            }
            Err(source) => return Err(CdcError::Io { loc: Location::file(Some(Arc::from(path.as_path()))), source }),
        };
        let cached = self.open.take().filter(|(n, l, _)| *n == plan.name && *l == len);
        let seg = match cached.map(|(_, _, s)| Ok(s)).unwrap_or_else(|| Segment::open(&path)) {
            Ok(s) => s,
            Err(segment::Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // Gone between listing and opening: the next scan says so.
                self.scan()?;
                return Ok(None);
            }
            Err(segment::Error::Io { loc, source }) => return Err(CdcError::Io { loc, source }),
            Err(e) => {
                self.unreadable(&plan, e);
                return Ok(None);
            }
        };
        let mut opts = plan_options(&self.opts.read, &plan);
        if let Some(point) = self.resume_point(&plan) {
            opts = opts.resume_from(point);
        }
        let path: Arc<Path> = Arc::from(path.as_path());
        let mut reader = match seg.reader_with(&opts, std::mem::take(&mut self.buffers)) {
            Ok(r) => r,
            Err(e) => {
                self.unreadable(&plan, e);
                return Ok(None);
            }
        };
        let schema = self.schema_for(seg.descriptor().version);
        let collected = {
            // Not strict: damage comes as items, so `next` has no error to give.
            let mut items = std::iter::from_fn(|| {
                loop {
                    match reader.next() {
                        Ok(Some(Item::Entry(e))) => {
                            let context = Context::of_entry(&e, seg.descriptor(), Some(path.clone()));
                            return Some(Walked::Entry(BatchEntry { bytes: seg.entry_bytes(&e), context }));
                        }
                        Ok(Some(Item::Loss(l))) => return Some(Walked::Loss(l)),
                        Ok(Some(Item::Section(_))) => {}
                        _ => return None,
                    }
                }
            });
            self.collect(&mut items, plan.after)
        };
        // The next read of this segment starts where this one stopped, in
        // the section it stopped in (the bytes below the idx offset do not
        // change): an entry is walked once, however many batches its
        // section is cut into.
        if let Some(point) = reader.resume_point() {
            self.resume = Some((plan.name, point));
        }
        let summary = reader.summary().clone();
        self.buffers = reader.into_buffers();
        self.open = Some((plan.name, len, seg));
        Ok(self.finish(plan, &summary, collected, schema, len))
    }

    /// The finished segment of `plan`, read whole: kept from the last
    /// batch, read ahead, or read now. `None`: read it the ordinary way
    /// (which reports why it cannot be read).
    fn walked_for(&mut self, plan: &Plan) -> Option<WalkedSegment> {
        let fits = |w: &WalkedSegment| w.name == plan.name && w.limit == plan.limit && w.after <= plan.after;
        let path = self.opts.dir.join(plan.name.file_name());
        let walked = match self.walked.take().filter(fits) {
            Some(w) => w,
            None => {
                let ahead = match self.ahead.take() {
                    // This segment's, or one the reads have gone past (of no
                    // use: it does not fit): its buffers come back either way.
                    Some((p, handle)) if p.name == plan.name || p.name.id < plan.name.id => match handle.join() {
                        Ok((walked, buffers)) => {
                            self.ahead_buffers = buffers;
                            walked.filter(fits)
                        }
                        Err(_) => None,
                    },
                    other => {
                        self.ahead = other;
                        None
                    }
                };
                match ahead {
                    Some(w) => w,
                    None => {
                        let (read, resume) = (self.opts.read.clone(), self.resume_point(plan));
                        walk_finished(
                            &path,
                            *plan,
                            &read,
                            resume,
                            self.opts.read_ahead_bytes,
                            &mut self.buffers,
                            &self.copies,
                        )?
                    }
                }
            }
        };
        // A finished segment does not change; one that did is read anew.
        (std::fs::metadata(&path).ok()?.len() == walked.len).then_some(walked)
    }

    /// Starts reading ahead on another thread, unless something is being
    /// read ahead already: the rest of the segment being served when its
    /// walk stopped at the copy cap (`rest`: where), else the next
    /// finished segment, if there is one.
    fn read_ahead(&mut self, current: Plan, rest: Option<ResumePoint>) {
        if self.ahead.is_some() {
            return;
        }
        let next = match rest {
            Some(_) => current,
            None => match self.tracker.next_finished_after(current.name.id) {
                Some(next) => next,
                None => return,
            },
        };
        let path = self.opts.dir.join(next.name.file_name());
        let (read, cap) = (self.opts.read.clone(), self.opts.read_ahead_bytes);
        let (mut buffers, copies) = (std::mem::take(&mut self.ahead_buffers), self.copies.clone());
        let spawned = std::thread::Builder::new().name("cdc-read-ahead".into()).spawn(move || {
            let walked = walk_finished(&path, next, &read, rest, cap, &mut buffers, &copies);
            (walked, buffers)
        });
        // Without a thread, the segment is read when its turn comes.
        if let Ok(handle) = spawned {
            self.ahead = Some((next, handle));
        }
    }

    /// The next batch of a segment read whole.
    fn serve_walked(&mut self, plan: Plan, mut walked: WalkedSegment) -> Option<Batch> {
        self.read_ahead(plan, walked.partial);
        let schema = self.schema_for(walked.version);
        let after = plan.after;
        let collected = {
            let mut items = walked.items.by_ref().filter(|item| match item {
                Walked::Entry(e) => e.context.position > after,
                Walked::Loss(l) => l.end > after,
            });
            self.collect(&mut items, after)
        };
        let mut collected = collected;
        let mut keep = collected.cut_short;
        if walked.items.len() == 0
            && let Some(point) = walked.partial
        {
            // The walk stopped at its copy cap: the rest is read from there.
            collected.cut_short = true;
            keep = false;
            self.resume = Some((plan.name, point));
        }
        let summary = std::mem::take(&mut walked.summary);
        let batch = self.finish(plan, &summary, collected, schema, walked.len);
        if keep {
            walked.summary = summary;
            self.walked = Some(walked);
        }
        batch
    }

    /// Where to resume reading `plan`'s segment, if a read of it stopped
    /// at or before `plan.after`.
    fn resume_point(&self, plan: &Plan) -> Option<ResumePoint> {
        match self.resume {
            Some((name, point)) if name == plan.name && point.logical() <= plan.after => Some(point),
            _ => None,
        }
    }

    /// The schema to decode with (with the schema from the log, the
    /// tracker is made on the first segment read, for its release).
    fn schema_for(&mut self, descriptor_version: i32) -> Arc<Schema> {
        match &mut self.opts.schema {
            SchemaSource::Fixed(s) => s.clone(),
            SchemaSource::Log { bootstrap, tracker } => {
                let t = tracker.get_or_insert_with(|| {
                    // Segment::open accepts only the descriptors of 3.0 to 5.0.
                    let release = Release::from_descriptor_version(descriptor_version).unwrap_or(Release::Cassandra4);
                    Box::new(match bootstrap {
                        Some(b) => SchemaTracker::with_bootstrap(release, b),
                        None => SchemaTracker::new(release),
                    })
                });
                t.schema().clone()
            }
        }
    }

    /// Takes entries and losses (those after `after`) until the batch is
    /// full or a schema change ends it.
    fn collect(&mut self, items: &mut dyn Iterator<Item = Walked>, after: u64) -> Collected {
        let mut c = Collected {
            entries: Vec::new(),
            losses: Vec::new(),
            consumed: after,
            cut_short: false,
            schema_events: Vec::new(),
        };
        for item in items {
            match item {
                Walked::Entry(e) => {
                    c.consumed = e.context.position;
                    if let SchemaSource::Log { tracker: Some(t), .. } = &mut self.opts.schema {
                        c.schema_events = t.observe(&mut self.schema_decoder, &e.bytes, e.context.clone());
                    }
                    c.entries.push(e);
                    // A schema change ends the batch: its entries share one schema.
                    if c.entries.len() >= self.opts.max_batch || !c.schema_events.is_empty() {
                        c.cut_short = true;
                        break;
                    }
                }
                Walked::Loss(l) => {
                    c.consumed = c.consumed.max(l.end);
                    c.losses.push(l);
                }
            }
        }
        c
    }

    /// Records what a read found and makes its batch.
    ///
    /// Damage counts where the segment's data was durable: everywhere in a
    /// completed or live one, below its idx offset in an abandoned one
    /// (past it, a torn last section is what the crash left: its losses
    /// are reported in the batch, and the segment still finishes).
    fn finish(
        &mut self,
        plan: Plan,
        summary: &Summary,
        c: Collected,
        schema: Arc<Schema>,
        file_len: u64,
    ) -> Option<Batch> {
        let Collected { entries, losses, mut consumed, cut_short, schema_events } = c;
        let durable_to = plan.abandoned.unwrap_or(u64::MAX);
        let mut broken_at = None;
        if !cut_short {
            consumed = consumed.max(plan.limit.map_or(summary.end, |l| summary.end.min(l)));
            if let Some(tail) = summary.tail
                && tail.class() != TailClass::Clean
            {
                // A cut section that starts at or past the idx offset ends
                // past it; a damaged marker at or past it is at its position.
                let in_durable = match tail {
                    Tail::Truncated { .. } => summary.end <= durable_to,
                    _ => summary.end < durable_to,
                };
                if in_durable {
                    broken_at = Some(summary.end);
                    self.pending.push_back(Event::Damaged {
                        segment_id: plan.name.id,
                        position: summary.end,
                        detail: Damage::Tail(tail),
                    });
                }
            }
        }
        let damaged = losses.iter().any(|l| l.start < durable_to);
        let at_end = !cut_short;
        let result = ReadResult { consumed, at_end, broken_at, damaged, end: summary.end, file_len };
        let notes = self.tracker.read_done(&plan, result);
        self.report(notes);
        let completed = plan.finishes && at_end && broken_at.is_none();
        let from = Position { segment_id: plan.name.id, offset: plan.after };
        let to = Position { segment_id: plan.name.id, offset: consumed };
        if entries.is_empty() && losses.is_empty() && !completed {
            return None;
        }
        let schema_state = match &self.opts.schema {
            SchemaSource::Log { tracker: Some(t), .. } => {
                let generation = t.generation();
                let fresh = match &self.snapshot {
                    Some((g, state)) if *g == generation => state.clone(),
                    _ => SchemaState::of(t),
                };
                self.snapshot = Some((generation, fresh.clone()));
                Some(fresh)
            }
            _ => None,
        };
        Some(Batch {
            segment_id: plan.name.id,
            from,
            to,
            completed,
            entries,
            losses,
            schema_events,
            schema,
            schema_state,
            damaged: self.tracker.damaged_through(plan.name.id),
        })
    }

    /// A segment that cannot be read (bad header, missing key...): reported,
    /// not read further, its files kept.
    fn unreadable(&mut self, plan: &Plan, e: segment::Error) {
        let result = ReadResult {
            consumed: plan.after,
            at_end: true,
            broken_at: Some(plan.after),
            damaged: true,
            end: plan.after,
            file_len: 0,
        };
        let notes = self.tracker.read_done(plan, result);
        self.report(notes);
        self.pending.push_back(Event::Damaged {
            segment_id: plan.name.id,
            position: plan.after,
            detail: Damage::Unreadable(e),
        });
    }

    /// Runs the cleanup hook for every segment that may be cleaned up now.
    fn clean_up(&mut self) {
        let Some(hook) = self.opts.cleanup.as_mut() else { return };
        let candidates = self.tracker.cleanup_candidates();
        // Pauses of segments no longer waiting (gone meanwhile) are dropped.
        self.retry.retain(|id, _| candidates.iter().any(|n| n.id == *id));
        for name in candidates {
            if !retry_due(&self.retry, name.id) {
                continue;
            }
            let files = SegmentFiles::in_dir(&self.opts.dir, name);
            match hook.cleanup(&files) {
                Ok(()) => {
                    self.tracker.cleaned(name.id);
                    self.retry.remove(&name.id);
                    self.pending.push_back(Event::Cleaned { segment_id: name.id });
                }
                Err(error) => {
                    let failures = self.retry.get(&name.id).map_or(1, |(n, _)| n + 1);
                    let backoff =
                        self.opts.poll_interval.saturating_mul(1 << failures.min(10)).min(Duration::from_secs(60));
                    self.retry.insert(name.id, (failures, Instant::now() + backoff));
                    self.pending.push_back(Event::CleanupFailed { segment_id: name.id, error });
                }
            }
        }
    }
}

/// Cleanup retries: segment id -> (failures, not before).
type Retries = std::collections::HashMap<i64, (u32, Instant)>;

/// Whether the cleanup of segment `id` may be tried now.
fn retry_due(retry: &Retries, id: i64) -> bool {
    retry.get(&id).is_none_or(|(_, at)| Instant::now() >= *at)
}

impl Iterator for Watcher {
    type Item = Result<Event, CdcError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}
