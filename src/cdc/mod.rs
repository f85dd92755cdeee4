//! Stage 5: CDC directories (`cdc_raw`, format spec §10).
//!
//! - [`read_cdc_index`]: `_cdc.idx` files, tolerant of the truncate-then-write
//!   race (a torn read only ever under-reports what is durable).
//! - [`Watcher`]: yields, in segment order, every mutation as soon as the idx
//!   says it is durable and never a byte beyond in a live segment; reads
//!   completed segments, and those a crash abandoned, to their end; starts
//!   after a [`Checkpoint`]; reports what vanished ([`Event::Lost`]) or is
//!   damaged; calls a [`CleanupHook`] only for finished, acknowledged
//!   segments.
//! - [`CheckpointFile`]: a checkpoint saved durably (temp file, fsync, rename).
//! - [`Tracker`]: the watcher's decisions without I/O, where the lifecycle
//!   rules are (completed, abandoned and replay-rewritten segments).
//! - [`CatchUp`]: a backlog of segments decoded on several threads, handed
//!   over in exact log order with bounded memory.

mod catch_up;
mod checkpoint;
mod cleanup;
mod idx;
mod tracker;
mod watcher;

pub use catch_up::{CatchUp, CatchUpError, Job, SchemaSource, Step};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointFile, Position, SchemaState};
pub use cleanup::{ArchiveTo, CleanupHook, DeleteFiles, SegmentFiles};
pub use idx::{CdcIndex, IdxError, IdxState, MAX_IDX_LEN, parse_cdc_index, read_cdc_index};
pub use tracker::{
    DEFAULT_ABANDONED_AFTER, HeldBack, Metrics, MismatchCause, Note, Observed, Plan, ReadResult, Tracker,
    snapshot_limit,
};
pub use watcher::{Batch, BatchEntry, CdcError, Clock, Damage, Event, WatchOptions, Watcher};
