//! A deterministic model of a Cassandra node's side of `cdc_raw`, for the
//! lifecycle simulation (`tests/simulation.rs`). It writes real segment
//! files with the crate's builder, as Cassandra 4.0 to 5.0 does (format
//! spec §10.2, `db/commitlog/` of Cassandra's source):
//!
//! - segments live in `commitlog/`; one with CDC enabled is hard-linked
//!   into `cdc_raw/` at creation;
//! - a write adds an entry to the active segment, unsynced; a plain
//!   (memory-mapped) segment holds it in the file already, behind a zeroed
//!   marker slot, a compressed or encrypted one in memory;
//! - a sync writes the section (data, then marker), then rewrites the idx
//!   in `cdc_raw` with the section's logical end, truncate-then-write;
//! - a full segment's final sync closes it (an empty last section) with
//!   `<end>\nCOMPLETED`, before the next segment is written to (segments
//!   sync in id order);
//! - a crash drops what was not synced (a plain segment keeps its bytes
//!   past the last marker, unreadable; a compressed one may have half a
//!   section on disk), and may fall between a sync's data and its idx;
//! - a restart replays the segments still in `commitlog/`: with CDC on,
//!   each one holding an entry past the flush point gets its link back if
//!   missing and its idx rewritten as `<file length>\nCOMPLETED`; with CDC
//!   off, or everything flushed, its idx stays as the crash left it; new
//!   segments get new ids (from the clock: far above the old ones);
//! - a clean shutdown closes the active segment with `COMPLETED`;
//! - with `cdc_block_writes: false` (4.1+), creating a segment past the
//!   space limit deletes the oldest segment (log and idx) from `cdc_raw`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cassandra_commitlog::builder::{BuildFormat, SegmentBuilder, entry};
use cassandra_commitlog::segment::{ENTRY_OVERHEAD, SYNC_MARKER_SIZE, SegmentName};

/// How the node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Section format of its segments.
    pub format: BuildFormat,
    /// Logical bytes a segment holds before it is full.
    pub capacity: u64,
    /// `cdc_block_writes` (4.0 always blocks: true).
    pub block_writes: bool,
    /// With `block_writes: false`, the most segments `cdc_raw` holds.
    pub cdc_limit: usize,
}

/// One write, as the node logged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its sequence number (in its bytes).
    pub seq: u64,
    /// Its commit-log position (logical, just past its entry).
    pub position: u64,
    /// Behind a valid marker: a sync covered it.
    pub synced: bool,
}

/// One segment.
#[derive(Debug)]
pub struct NodeSegment {
    /// Segment id.
    pub id: i64,
    builder: SegmentBuilder,
    /// Bytes of the builder's output on disk.
    written: usize,
    /// Every write logged in it.
    pub writes: Vec<Written>,
    /// Writes not synced yet: (seq, mutation bytes).
    pending: Vec<(u64, Vec<u8>)>,
    /// The idx last written: (offset, completed).
    pub idx: Option<(u64, bool)>,
    /// Created with CDC on (linked into `cdc_raw`).
    pub cdc: bool,
    /// Still in `commitlog/` (not discarded after a flush).
    pub in_commitlog: bool,
    /// Deleted from `cdc_raw` by the node (non-blocking mode).
    pub deleted: bool,
    /// Closed (full, or at shutdown): its idx says `COMPLETED`.
    pub closed: bool,
    /// Left unfinished by a crash.
    pub crashed: bool,
    /// The crash left half a section on disk.
    pub torn: bool,
}

impl NodeSegment {
    /// The writes a CDC reader must deliver: those a sync covered.
    pub fn synced(&self) -> impl Iterator<Item = &Written> {
        self.writes.iter().filter(|w| w.synced)
    }
}

/// The node.
pub struct Node {
    pub cfg: NodeConfig,
    pub commitlog: PathBuf,
    pub cdc_raw: PathBuf,
    pub segments: BTreeMap<i64, NodeSegment>,
    active: Option<i64>,
    next_id: i64,
    seq: u64,
    pub running: bool,
    pub cdc_enabled: bool,
    /// Segments the node deleted from `cdc_raw`, in order.
    pub deletions: Vec<i64>,
}

/// The bytes of write `seq`: at least the 10 bytes of a mutation, its
/// number readable back, a length that varies.
pub fn mutation(seq: u64) -> Vec<u8> {
    let mut m = b"sim-write:".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend(std::iter::repeat_n(b'x', (seq * 7 % 53) as usize));
    m
}

/// The sequence number in a write's bytes.
pub fn seq_of(bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(b"sim-write:")?;
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
}

impl Node {
    /// A node writing into `root/commitlog` and `root/cdc_raw`, started.
    pub fn new(root: &Path, cfg: NodeConfig) -> Node {
        let (commitlog, cdc_raw) = (root.join("commitlog"), root.join("cdc_raw"));
        std::fs::create_dir_all(&commitlog).unwrap();
        std::fs::create_dir_all(&cdc_raw).unwrap();
        let mut node = Node {
            cfg,
            commitlog,
            cdc_raw,
            segments: BTreeMap::new(),
            active: None,
            next_id: 1_000,
            seq: 0,
            running: true,
            cdc_enabled: true,
            deletions: Vec::new(),
        };
        node.new_segment();
        node
    }

    fn name(id: i64) -> SegmentName {
        SegmentName { version: 7, id }
    }

    fn log_path(&self, id: i64) -> PathBuf {
        self.commitlog.join(Node::name(id).file_name())
    }

    fn link_path(&self, id: i64) -> PathBuf {
        self.cdc_raw.join(Node::name(id).file_name())
    }

    fn idx_path(&self, id: i64) -> PathBuf {
        self.cdc_raw.join(Node::name(id).cdc_index_file_name())
    }

    fn plain(&self) -> bool {
        matches!(self.cfg.format, BuildFormat::Plain)
    }

    fn file(&self, id: i64) -> File {
        OpenOptions::new().write(true).open(self.log_path(id)).unwrap()
    }

    /// Creates the next segment (and its link, with CDC on); in
    /// non-blocking mode, frees room in `cdc_raw` first.
    fn new_segment(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let builder = SegmentBuilder::new(7, id, self.cfg.format.clone());
        let header = builder.bytes().to_vec();
        let f = File::create(self.log_path(id)).unwrap();
        if self.plain() {
            // Memory-mapped segments are created at full size, zeroed.
            f.set_len(self.cfg.capacity + 4096).unwrap();
        }
        f.write_all_at(&header, 0).unwrap();
        if self.cdc_enabled {
            if !self.cfg.block_writes {
                self.free_room();
            }
            std::fs::hard_link(self.log_path(id), self.link_path(id)).unwrap();
        }
        let seg = NodeSegment {
            id,
            builder,
            written: header.len(),
            writes: Vec::new(),
            pending: Vec::new(),
            idx: None,
            cdc: self.cdc_enabled,
            in_commitlog: true,
            deleted: false,
            closed: false,
            crashed: false,
            torn: false,
        };
        self.segments.insert(id, seg);
        self.active = Some(id);
    }

    /// `cdc_block_writes: false`: the oldest segments in `cdc_raw` go until
    /// a new one fits (never the one being written).
    fn free_room(&mut self) {
        loop {
            let linked: Vec<i64> = self
                .segments
                .values()
                .filter(|s| s.cdc && !s.deleted && self.link_path(s.id).exists())
                .map(|s| s.id)
                .collect();
            if linked.len() < self.cfg.cdc_limit {
                return;
            }
            let oldest = linked[0];
            let _ = std::fs::remove_file(self.link_path(oldest));
            let _ = std::fs::remove_file(self.idx_path(oldest));
            self.segments.get_mut(&oldest).unwrap().deleted = true;
            self.deletions.push(oldest);
        }
    }

    /// Logs `n` writes (rolling to a new segment when one is full).
    pub fn write(&mut self, n: usize) {
        if !self.running {
            return;
        }
        for _ in 0..n {
            let m = mutation(self.seq);
            let need = (m.len() + ENTRY_OVERHEAD + 2 * SYNC_MARKER_SIZE) as u64;
            let id = self.active.expect("a running node has a segment");
            let seg = &self.segments[&id];
            let used = seg.builder.logical_position()
                + seg.pending.iter().map(|(_, m)| (m.len() + ENTRY_OVERHEAD) as u64).sum::<u64>();
            if used + need > self.cfg.capacity {
                self.roll();
            }
            let id = self.active.unwrap();
            let plain = self.plain();
            let seg = self.segments.get_mut(&id).unwrap();
            let at = seg.builder.entry(&m);
            seg.writes.push(Written { seq: self.seq, position: at.position, synced: false });
            seg.pending.push((self.seq, m.clone()));
            if plain {
                // Into the map at once (behind the still zeroed marker slot).
                let mut bytes = Vec::new();
                entry(&m, &mut bytes);
                self.file(id).write_all_at(&bytes, at.start).unwrap();
            }
            self.seq += 1;
        }
    }

    /// Syncs the active segment: its section, then (unless a crash falls
    /// in between) its idx.
    pub fn sync(&mut self, write_idx: bool) {
        if !self.running {
            return;
        }
        let id = self.active.unwrap();
        if self.segments[&id].pending.is_empty() {
            return;
        }
        self.sync_section(id, write_idx, false);
    }

    /// Closes the pending section of `id`, writes it, and the idx.
    fn sync_section(&mut self, id: i64, write_idx: bool, complete: bool) {
        let link = self.segments[&id].cdc && !self.segments[&id].deleted;
        let idx_path = self.idx_path(id);
        let file = self.file(id);
        let seg = self.segments.get_mut(&id).unwrap();
        let section = seg.builder.sync();
        let bytes = seg.builder.bytes();
        // Data first, then the marker (a reader never sees a marker
        // before the bytes it covers).
        let start = section.file_offset as usize;
        file.write_all_at(&bytes[start + SYNC_MARKER_SIZE..], (start + SYNC_MARKER_SIZE) as u64).unwrap();
        file.write_all_at(&bytes[start..start + SYNC_MARKER_SIZE], start as u64).unwrap();
        seg.written = bytes.len();
        seg.pending.clear();
        for w in seg.writes.iter_mut().filter(|w| w.position <= section.end) {
            w.synced = true;
        }
        if write_idx && link && seg.cdc {
            let text = if complete { format!("{}\nCOMPLETED", section.end) } else { section.end.to_string() };
            std::fs::write(idx_path, text).unwrap();
            seg.idx = Some((section.end, complete));
        }
        seg.closed |= complete;
    }

    /// The active segment is full: its final sync, with `COMPLETED`, then
    /// a new one.
    pub fn roll(&mut self) {
        if !self.running {
            return;
        }
        self.close_active();
        self.new_segment();
    }

    fn close_active(&mut self) {
        if let Some(id) = self.active.take() {
            let has_data = !self.segments[&id].writes.is_empty();
            // A segment that never held a write never gets an idx.
            if has_data {
                self.sync_section(id, true, true);
            }
        }
    }

    /// kill -9 (or power loss): what was not synced is gone; with `torn`, a
    /// compressed or encrypted segment has half of its next section on disk.
    pub fn crash(&mut self, torn: bool) {
        if !self.running {
            return;
        }
        self.running = false;
        let Some(id) = self.active.take() else { return };
        let plain = self.plain();
        let file = self.file(id);
        let seg = self.segments.get_mut(&id).unwrap();
        seg.crashed = true;
        if torn && !plain && !seg.pending.is_empty() {
            let section = seg.builder.sync();
            let bytes = seg.builder.bytes();
            let start = section.file_offset as usize;
            let half = start + (bytes.len() - start).div_ceil(2);
            file.write_all_at(&bytes[start..half], start as u64).unwrap();
            seg.torn = true;
        }
        seg.pending.clear();
    }

    /// Starts a stopped node: replays `commitlog/`, then writes on in a new
    /// segment. `cdc`: whether CDC is enabled now; `flushed`: whether every
    /// table was flushed past the replayed segments (the replay reads none).
    pub fn restart(&mut self, cdc: bool, flushed: bool) {
        if self.running {
            return;
        }
        let replayed: Vec<i64> = self.segments.values().filter(|s| s.in_commitlog).map(|s| s.id).collect();
        for id in replayed {
            let seg = &self.segments[&id];
            // CommitLogReplayer.handleCDCReplayCompletion, for a segment in
            // which the replay read a CDC mutation.
            let saw_cdc = seg.synced().next().is_some();
            if cdc && !flushed && saw_cdc {
                if !self.link_path(id).exists() {
                    std::fs::hard_link(self.log_path(id), self.link_path(id)).unwrap();
                }
                let len = std::fs::metadata(self.log_path(id)).unwrap().len();
                std::fs::write(self.idx_path(id), format!("{len}\nCOMPLETED")).unwrap();
                let seg = self.segments.get_mut(&id).unwrap();
                seg.idx = Some((len, true));
                seg.cdc = true;
                seg.deleted = false;
            }
            // Replayed (or flushed already): discarded from the commit log.
            self.segments.get_mut(&id).unwrap().in_commitlog = false;
        }
        // New ids come from the clock: far above the old ones.
        self.next_id += 1_000;
        self.cdc_enabled = cdc;
        self.running = true;
        self.new_segment();
    }

    /// A clean shutdown (drain): the active segment closed with `COMPLETED`;
    /// everything flushed, so nothing will be replayed.
    pub fn shutdown(&mut self) {
        if !self.running {
            return;
        }
        self.close_active();
        self.running = false;
        for s in self.segments.values_mut() {
            s.in_commitlog = false;
        }
    }

    /// A memtable flush: segments no longer active leave the commit log
    /// (their `cdc_raw` links stay).
    pub fn flush(&mut self) {
        let active = self.active;
        for s in self.segments.values_mut().filter(|s| Some(s.id) != active) {
            s.in_commitlog = false;
        }
    }

    /// The segment whose idx is the newest (highest id), if any.
    pub fn newest_idx(&self) -> Option<i64> {
        self.segments.values().filter(|s| s.idx.is_some() && !s.deleted).map(|s| s.id).max()
    }
}
