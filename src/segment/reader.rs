//! Walking a segment: sync markers, sections and entries (format spec §3, §6,
//! §11), with every loss and the way the data ended reported as values.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::codec::{AesKey, Codecs, SectionError, decrypt_section};
use super::descriptor::{Compression, Descriptor, SectionFormat};
use super::error::Error;
use crate::location::Location;

/// Size of a sync marker: `u32 next`, `u32 crc`.
pub const SYNC_MARKER_SIZE: usize = 8;
/// Bytes an entry adds around its mutation: size, size CRC, mutation CRC.
pub const ENTRY_OVERHEAD: usize = 12;
/// Cassandra's smallest valid serialized mutation size.
pub const MIN_MUTATION_SIZE: u32 = 10;
/// Default cap on a section's declared uncompressed length (64 MiB: twice
/// Cassandra's default segment size).
pub const DEFAULT_MAX_SECTION_LEN: u32 = 64 << 20;
/// How many losses a [`Summary`] keeps in full; later ones are only counted.
pub const KEPT_LOSSES: usize = 1024;

/// Encryption keys by alias (the `encKeyAlias` of a segment header).
#[derive(Clone, Default)]
pub struct Keys {
    keys: HashMap<String, Vec<u8>>,
}

impl Keys {
    /// No keys.
    pub fn new() -> Keys {
        Keys::default()
    }

    /// Adds (or replaces) the key for an alias.
    pub fn insert(&mut self, alias: impl Into<String>, key: impl Into<Vec<u8>>) -> &mut Keys {
        self.keys.insert(alias.into(), key.into());
        self
    }

    /// The key for an alias.
    pub fn get(&self, alias: &str) -> Option<&[u8]> {
        self.keys.get(alias).map(Vec::as_slice)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keys").field("aliases", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

/// How to read a segment.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    keys: Keys,
    limit: Option<u64>,
    after: Option<u64>,
    strict: bool,
    max_section_len: u32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            keys: Keys::new(),
            limit: None,
            after: None,
            strict: false,
            max_section_len: DEFAULT_MAX_SECTION_LEN,
        }
    }
}

impl ReadOptions {
    /// Default options: no keys, no bound, tolerant.
    pub fn new() -> ReadOptions {
        ReadOptions::default()
    }

    /// Adds the key for an encryption alias.
    pub fn key(mut self, alias: impl Into<String>, key: impl Into<Vec<u8>>) -> ReadOptions {
        self.keys.insert(alias, key);
        self
    }

    /// Uses these keys.
    pub fn keys(mut self, keys: Keys) -> ReadOptions {
        self.keys = keys;
        self
    }

    /// Reads nothing at or past this logical position (a `_cdc.idx` offset):
    /// a section that ends past it is not read.
    pub fn limit(mut self, logical: u64) -> ReadOptions {
        self.limit = Some(logical);
        self
    }

    /// Skips everything up to and including this position: sections that end
    /// at or before it are not decoded, entries whose position is at or
    /// before it are not returned (a resume from a checkpoint).
    pub fn after(mut self, position: u64) -> ReadOptions {
        self.after = Some(position);
        self
    }

    /// In strict mode the first loss, or a torn or corrupt tail, is an error.
    pub fn strict(mut self, strict: bool) -> ReadOptions {
        self.strict = strict;
        self
    }

    /// Caps a section's declared uncompressed length (bytes). Sections over
    /// the cap are reported lost instead of allocated.
    pub fn max_section_len(mut self, cap: u32) -> ReadOptions {
        self.max_section_len = cap;
        self
    }

    /// Whether [`strict`](Self::strict) mode is on.
    pub fn is_strict(&self) -> bool {
        self.strict
    }
}

/// The CRC of a sync marker: over the id's low word, high word, and the
/// marker's own file offset (format spec §3.1).
pub fn marker_crc(id: i64, file_offset: u32) -> u32 {
    let mut bytes = [0u8; 12];
    bytes[0..4].copy_from_slice(&(id as u32).to_be_bytes());
    bytes[4..8].copy_from_slice(&((id >> 32) as u32).to_be_bytes());
    bytes[8..12].copy_from_slice(&file_offset.to_be_bytes());
    crc32fast::hash(&bytes)
}

/// One sync section: where its marker is in the file and which logical
/// range its entries cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// 0-based index in the segment.
    pub index: u32,
    /// File offset of the sync marker.
    pub file_offset: u64,
    /// File offset of the next marker (the marker's `next`).
    pub file_end: u64,
    /// Logical position of the marker.
    pub start: u64,
    /// Logical position of the first entry (`start + 8`).
    pub content_start: u64,
    /// Logical end of the section: where the next marker is, and what a
    /// `_cdc.idx` written after this section says.
    pub end: u64,
}

/// One intact entry: its mutation bytes, both CRCs checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Segment id.
    pub segment_id: i64,
    /// File offset of the sync marker of the entry's section.
    pub section_file_offset: u64,
    /// File offset of the entry (plain segments only; inside a compressed or
    /// encrypted section an entry has no file offset of its own).
    pub file_offset: Option<u64>,
    /// Logical position of the entry's size field.
    pub start: u64,
    /// Logical position just past the entry: Cassandra's commit-log position
    /// of this mutation. Resuming after it means every later entry is next.
    pub position: u64,
    /// The serialized mutation (format spec §8).
    pub mutation: &'a [u8],
}

/// What was found in place of an intact entry or section.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LossKind {
    /// The mutation CRC does not match: this entry is lost, the next one is read.
    #[error("mutation CRC mismatch: expected {expected:#010x}, found {found:#010x}")]
    MutationCrc {
        /// CRC computed over size and mutation.
        expected: u32,
        /// CRC stored.
        found: u32,
    },
    /// The size CRC does not match: the size cannot be trusted, so the rest of
    /// the section is lost.
    #[error("size CRC mismatch: expected {expected:#010x}, found {found:#010x}")]
    SizeCrc {
        /// CRC computed over the size.
        expected: u32,
        /// CRC stored.
        found: u32,
    },
    /// The size is below the 10 bytes of the smallest mutation: the rest of
    /// the section is lost.
    #[error("invalid mutation size {size} (at least {MIN_MUTATION_SIZE} expected)")]
    InvalidSize {
        /// The size read.
        size: u32,
    },
    /// The entry runs past the end of its section: the rest of the section is lost.
    #[error("entry of {needed} bytes runs past its section ({available} bytes left)")]
    EntryOverrun {
        /// Bytes the entry needs (with its 12 bytes of framing).
        needed: u64,
        /// Bytes left in the section.
        available: u64,
    },
    /// Non-zero bytes where the section has no room for an entry, or after a
    /// zero size (Cassandra's end-of-segment marker).
    #[error("{len} stray bytes at the end of the section")]
    StrayBytes {
        /// How many.
        len: u64,
    },
    /// The whole section could not be decompressed or decrypted.
    #[error("section undecodable: {0}")]
    Section(#[source] SectionError),
}

impl LossKind {
    /// True when the loss is exactly one entry (the next one is intact).
    pub fn is_single_entry(&self) -> bool {
        matches!(self, LossKind::MutationCrc { .. })
    }
}

/// Data that could not be read: what was found and the logical range it cost.
#[derive(Clone, Debug)]
pub struct Loss {
    /// Segment id.
    pub segment_id: i64,
    /// File offset of the sync marker of the section the loss is in.
    pub section_file_offset: u64,
    /// File offset of the loss (plain segments only).
    pub file_offset: Option<u64>,
    /// First logical position lost.
    pub start: u64,
    /// Logical position just past the loss.
    pub end: u64,
    /// What was found.
    pub kind: LossKind,
}

impl Loss {
    /// The location of the start of the loss.
    pub fn location(&self, file: Option<Arc<Path>>) -> Location {
        let loc = Location::file(file).with_segment(self.segment_id).at_logical(self.start);
        loc.at_file(self.file_offset.unwrap_or(self.section_file_offset))
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {} positions {}..{} (section at file offset {}): {}",
            self.segment_id, self.start, self.end, self.section_file_offset, self.kind
        )
    }
}

/// How the walk of a segment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tail {
    /// A zeroed marker slot: the clean end of written data.
    ZeroMarker {
        /// File offset of the slot.
        file_offset: u64,
    },
    /// No room for another marker before the end of the file: a clean end.
    NoRoom {
        /// File offset where the marker would be.
        file_offset: u64,
    },
    /// The caller's bound ([`ReadOptions::limit`]) was reached.
    Limit {
        /// Logical position where reading stopped.
        logical: u64,
    },
    /// A valid marker announces a section the file does not hold: a torn
    /// or truncated write.
    Truncated {
        /// File offset of the marker.
        file_offset: u64,
        /// Where the marker says the section ends.
        next: u64,
        /// File length.
        file_len: u64,
    },
    /// A marker whose CRC does not match.
    CorruptMarker {
        /// File offset of the marker.
        file_offset: u64,
        /// CRC a marker at this offset must have.
        expected: u32,
        /// CRC found.
        found: u32,
    },
    /// A marker with a valid CRC whose `next` points backwards or leaves no
    /// room for the section's own header.
    BadPosition {
        /// File offset of the marker.
        file_offset: u64,
        /// The `next` found.
        next: u64,
    },
}

/// The three ends a caller usually distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailClass {
    /// All written data was read (or the bound was reached).
    Clean,
    /// The file ends inside a section.
    Truncated,
    /// A marker is damaged.
    Corrupt,
}

impl Tail {
    /// Clean, truncated or corrupt.
    pub fn class(&self) -> TailClass {
        match self {
            Tail::ZeroMarker { .. } | Tail::NoRoom { .. } | Tail::Limit { .. } => TailClass::Clean,
            Tail::Truncated { .. } => TailClass::Truncated,
            Tail::CorruptMarker { .. } | Tail::BadPosition { .. } => TailClass::Corrupt,
        }
    }

    /// `"clean"`, `"truncated"` or `"corrupt"`.
    pub fn class_name(&self) -> &'static str {
        match self.class() {
            TailClass::Clean => "clean",
            TailClass::Truncated => "truncated",
            TailClass::Corrupt => "corrupt",
        }
    }

    fn file_offset(&self) -> Option<u64> {
        match *self {
            Tail::ZeroMarker { file_offset }
            | Tail::NoRoom { file_offset }
            | Tail::Truncated { file_offset, .. }
            | Tail::CorruptMarker { file_offset, .. }
            | Tail::BadPosition { file_offset, .. } => Some(file_offset),
            Tail::Limit { .. } => None,
        }
    }
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tail::ZeroMarker { file_offset } => write!(f, "clean end: zeroed marker at file offset {file_offset}"),
            Tail::NoRoom { file_offset } => write!(f, "clean end: no room for a marker at file offset {file_offset}"),
            Tail::Limit { logical } => write!(f, "stopped at the read limit, position {logical}"),
            Tail::Truncated { file_offset, next, file_len } => write!(
                f,
                "truncated: marker at file offset {file_offset} announces a section ending at {next}, the file has {file_len} bytes"
            ),
            Tail::CorruptMarker { file_offset, expected, found } => write!(
                f,
                "corrupt marker at file offset {file_offset}: CRC expected {expected:#010x}, found {found:#010x}"
            ),
            Tail::BadPosition { file_offset, next } => {
                write!(f, "corrupt marker at file offset {file_offset}: valid CRC but next offset {next} is impossible")
            }
        }
    }
}

/// What a walk found, counted as it goes.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Sections with an intact marker.
    pub sections: u64,
    /// Intact entries returned.
    pub entries: u64,
    /// Entry-level losses (a bad mutation CRC, or a size that cost the rest of
    /// its section).
    pub bad_entries: u64,
    /// Sections that could not be decompressed or decrypted.
    pub lost_sections: u64,
    /// Logical bytes lost to all losses.
    pub lost_bytes: u64,
    /// Logical end of the last section whose marker was intact (the header
    /// length when there is none).
    pub end: u64,
    /// File offset where the walk stopped.
    pub file_end: u64,
    /// How the walk ended (`None` while it has not).
    pub tail: Option<Tail>,
    /// The first [`KEPT_LOSSES`] losses.
    pub losses: Vec<Loss>,
    /// Losses past the first [`KEPT_LOSSES`], counted only.
    pub losses_not_kept: u64,
}

/// One step of a walk.
#[derive(Debug)]
pub enum Item<'r> {
    /// A section with an intact marker starts.
    Section(Section),
    /// An intact entry.
    Entry(Entry<'r>),
    /// Something was lost.
    Loss(Loss),
}

pub(crate) enum Cipher {
    Plain,
    Codec(Compression),
    Encrypted { key: Box<AesKey>, iv: [u8; 16] },
}

/// The buffers a reader decodes compressed and encrypted sections into.
/// A consumer reading many segments passes them from one reader to the
/// next, so that the section buffer is allocated (and zeroed) once.
#[derive(Default)]
pub struct ReadBuffers {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    codecs: Codecs,
}

impl fmt::Debug for ReadBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuffers").field("section_capacity", &self.buf.capacity()).finish_non_exhaustive()
    }
}

/// Where the current section's entries are.
#[derive(Clone, Copy)]
enum Content {
    /// In the segment bytes, `start..end`.
    Borrowed { start: usize, end: usize },
    /// In the reader's buffer, `0..len`.
    Buffered { len: usize },
}

struct Current {
    section: Section,
    content: Content,
    /// Offset of the next entry within the content.
    off: usize,
}

/// An entry found, by index, before its bytes are borrowed.
struct Found {
    section_file_offset: u64,
    file_offset: Option<u64>,
    start: u64,
    position: u64,
    buffered: bool,
    body: std::ops::Range<usize>,
}

enum Event {
    Section(Section),
    Entry(Found),
    /// The loss is in `SegmentReader::lost`.
    Loss,
}

/// A fallible, lending walk over one segment's sections and entries.
///
/// Call [`next`](Self::next) until it returns `Ok(None)`; the walk never
/// loops, never reads past the data and ends with [`summary`](Self::summary)
/// telling how. Entries of plain segments borrow the segment bytes; those of
/// compressed and encrypted segments borrow one buffer the reader reuses.
pub struct SegmentReader<'a> {
    data: &'a [u8],
    id: i64,
    file: Option<Arc<Path>>,
    cipher: Cipher,
    limit: Option<u64>,
    after: Option<u64>,
    strict: bool,
    max_section_len: u32,
    file_pos: usize,
    logical: u64,
    index: u32,
    current: Option<Current>,
    /// A section lost while opening it, to report before anything else.
    pending: Option<Loss>,
    /// The loss the last `Event::Loss` reported.
    lost: Option<Loss>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    codecs: Codecs,
    summary: Summary,
    done: bool,
}

impl<'a> SegmentReader<'a> {
    pub(crate) fn new(
        data: &'a [u8],
        descriptor: &Descriptor,
        file: Option<Arc<Path>>,
        opts: &ReadOptions,
        buffers: ReadBuffers,
    ) -> Result<SegmentReader<'a>, Error> {
        let cipher = match &descriptor.format {
            SectionFormat::Plain => Cipher::Plain,
            SectionFormat::Compressed { codec, .. } => Cipher::Codec(*codec),
            SectionFormat::Encrypted(enc) => {
                let loc = || Location::file(file.clone()).with_segment(descriptor.id);
                let key = opts
                    .keys
                    .get(&enc.key_alias)
                    .ok_or_else(|| Error::MissingKey { loc: loc(), alias: enc.key_alias.clone() })?;
                let key = AesKey::new(key).ok_or_else(|| Error::BadKey {
                    loc: loc(),
                    alias: enc.key_alias.clone(),
                    len: key.len(),
                })?;
                Cipher::Encrypted { key: Box::new(key), iv: enc.iv }
            }
        };
        let header_len = descriptor.header_len;
        Ok(SegmentReader {
            data,
            id: descriptor.id,
            file,
            cipher,
            limit: opts.limit,
            after: opts.after,
            strict: opts.strict,
            max_section_len: opts.max_section_len,
            file_pos: header_len,
            logical: header_len as u64,
            index: 0,
            current: None,
            pending: None,
            lost: None,
            buf: buffers.buf,
            scratch: buffers.scratch,
            codecs: buffers.codecs,
            summary: Summary { end: header_len as u64, file_end: header_len as u64, ..Summary::default() },
            done: false,
        })
    }

    /// The segment id.
    pub fn segment_id(&self) -> i64 {
        self.id
    }

    /// What the walk has found so far; complete once `next` returned `Ok(None)`.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Consumes the reader, returning its summary.
    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// Consumes the reader, returning its buffers for the next one (see
    /// [`Segment::reader_with`](super::Segment::reader_with)).
    pub fn into_buffers(self) -> ReadBuffers {
        ReadBuffers { buf: self.buf, scratch: self.scratch, codecs: self.codecs }
    }

    /// The next section, entry or loss; `Ok(None)` at the end. Errors only
    /// in strict mode (the first loss, or a torn or corrupt tail).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item<'_>>, Error> {
        Ok(match self.advance()? {
            None => None,
            Some(Event::Section(s)) => Some(Item::Section(s)),
            Some(Event::Loss) => Some(Item::Loss(self.lost.clone().expect("a reported loss"))),
            Some(Event::Entry(f)) => Some(Item::Entry(self.resolve(f))),
        })
    }

    /// The next intact entry, stepping over section starts and losses (which
    /// are counted and kept in the [`summary`](Self::summary), and are errors
    /// in strict mode).
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, Error> {
        loop {
            match self.advance()? {
                None => return Ok(None),
                Some(Event::Entry(f)) => return Ok(Some(self.resolve(f))),
                Some(_) => {}
            }
        }
    }

    /// Walks to the end, returning the summary.
    pub fn finish(mut self) -> Result<Summary, Error> {
        while self.advance()?.is_some() {}
        Ok(self.summary)
    }

    fn resolve(&self, f: Found) -> Entry<'_> {
        let src: &[u8] = if f.buffered { &self.buf } else { self.data };
        Entry {
            segment_id: self.id,
            section_file_offset: f.section_file_offset,
            file_offset: f.file_offset,
            start: f.start,
            position: f.position,
            mutation: &src[f.body],
        }
    }

    fn advance(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some(loss) = self.pending.take() {
                return self.report(loss).map(|()| Some(Event::Loss));
            }
            if self.current.is_some() {
                match self.step_entry() {
                    Step::Entry(f) => return Ok(Some(Event::Entry(f))),
                    Step::Loss => {
                        let loss = self.lost.take().expect("a stepped loss");
                        return self.report(loss).map(|()| Some(Event::Loss));
                    }
                    Step::Skip => continue,
                    Step::SectionDone => {
                        self.current = None;
                        continue;
                    }
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.step_section() {
                Ok(section) => return Ok(Some(Event::Section(section))),
                Err(tail) => {
                    self.done = true;
                    self.summary.tail = Some(tail);
                    self.summary.file_end = self.file_pos as u64;
                    if self.strict && tail.class() != TailClass::Clean {
                        let mut loc = Location::file(self.file.clone()).with_segment(self.id).at_logical(self.logical);
                        if let Some(off) = tail.file_offset() {
                            loc = loc.at_file(off);
                        }
                        return Err(Error::Tail { loc, tail });
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Records a loss (or, in strict mode, turns it into the error) and
    /// keeps it for `next` to return.
    fn report(&mut self, loss: Loss) -> Result<(), Error> {
        if self.strict {
            self.done = true;
            self.current = None;
            return Err(Error::Corrupt { loc: loss.location(self.file.clone()), kind: loss.kind });
        }
        self.summary.lost_bytes += loss.end - loss.start;
        match loss.kind {
            LossKind::Section(_) => self.summary.lost_sections += 1,
            _ => self.summary.bad_entries += 1,
        }
        if self.summary.losses.len() < KEPT_LOSSES {
            self.summary.losses.push(loss.clone());
        } else {
            self.summary.losses_not_kept += 1;
        }
        self.lost = Some(loss);
        Ok(())
    }

    /// Reads the next entry of the current section.
    fn step_entry(&mut self) -> Step {
        let Some(cur) = self.current.as_mut() else {
            return Step::SectionDone;
        };
        let (base, len, buffered) = match cur.content {
            Content::Borrowed { start, end } => (start, end - start, false),
            Content::Buffered { len } => (0, len, true),
        };
        let content: &[u8] = if buffered { &self.buf[..len] } else { &self.data[base..base + len] };
        let off = cur.off;
        let section = cur.section;
        if off == len {
            return Step::SectionDone;
        }
        let rem = &content[off..];
        let start = section.content_start + off as u64;
        let file_offset = (!buffered).then_some((base + off) as u64);
        let segment_id = self.id;
        // Everything from here to the end of the section is lost, unless the
        // caller has already consumed it.
        let rest_lost = |cur: &mut Current, lost: &mut Option<Loss>, kind: LossKind, after: Option<u64>| {
            cur.off = len;
            let end = section.content_start + len as u64;
            if after.is_some_and(|a| end <= a) {
                return Step::SectionDone;
            }
            *lost = Some(Loss { segment_id, section_file_offset: section.file_offset, file_offset, start, end, kind });
            Step::Loss
        };
        let size = match rem.first_chunk::<4>() {
            Some(b) => u32::from_be_bytes(*b),
            // Fewer than four bytes: padding if zero, damage otherwise.
            None if rem.iter().all(|&b| b == 0) => {
                cur.off = len;
                return Step::SectionDone;
            }
            None => return rest_lost(cur, &mut self.lost, LossKind::StrayBytes { len: rem.len() as u64 }, self.after),
        };
        if size == 0 {
            // Cassandra's legacy end-of-segment marker: the rest should be padding.
            if rem.iter().all(|&b| b == 0) {
                cur.off = len;
                return Step::SectionDone;
            }
            return rest_lost(cur, &mut self.lost, LossKind::StrayBytes { len: rem.len() as u64 }, self.after);
        }
        if size < MIN_MUTATION_SIZE {
            return rest_lost(cur, &mut self.lost, LossKind::InvalidSize { size }, self.after);
        }
        let needed = size as usize + ENTRY_OVERHEAD;
        let Some(stored_size_crc) = rem.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            let kind = LossKind::EntryOverrun { needed: needed as u64, available: rem.len() as u64 };
            return rest_lost(cur, &mut self.lost, kind, self.after);
        };
        // The size CRC is checked lazily: the mutation CRC continues it, so
        // seeding the mutation CRC with the *stored* size CRC reproduces the
        // stored mutation CRC only if the stored size CRC is right (the CRC
        // register is a bijection of its initial state). The size CRC is
        // computed on its own only to classify a failure, or where the
        // mutation CRC is not checked.
        let bad_size_crc = || {
            let computed = crc32fast::hash(&rem[..4]);
            (computed != stored_size_crc).then_some(LossKind::SizeCrc { expected: computed, found: stored_size_crc })
        };
        if needed > rem.len() {
            let kind =
                bad_size_crc().unwrap_or(LossKind::EntryOverrun { needed: needed as u64, available: rem.len() as u64 });
            return rest_lost(cur, &mut self.lost, kind, self.after);
        }
        let position = start + needed as u64;
        if self.after.is_some_and(|a| position <= a) {
            if let Some(kind) = bad_size_crc() {
                return rest_lost(cur, &mut self.lost, kind, self.after);
            }
            cur.off = off + needed;
            return Step::Skip;
        }
        let body = &rem[8..8 + size as usize];
        let stored = u32::from_be_bytes(rem[needed - 4..needed].try_into().expect("4 bytes"));
        let mut hasher = crc32fast::Hasher::new_with_initial(stored_size_crc);
        hasher.update(body);
        let crc = hasher.finalize();
        if crc != stored {
            if let Some(kind) = bad_size_crc() {
                return rest_lost(cur, &mut self.lost, kind, self.after);
            }
            cur.off = off + needed;
            self.lost = Some(Loss {
                segment_id: self.id,
                section_file_offset: section.file_offset,
                file_offset,
                start,
                end: position,
                kind: LossKind::MutationCrc { expected: crc, found: stored },
            });
            return Step::Loss;
        }
        cur.off = off + needed;
        self.summary.entries += 1;
        let body_start = base + off + 8;
        Step::Entry(Found {
            section_file_offset: section.file_offset,
            file_offset,
            start,
            position,
            buffered,
            body: body_start..body_start + size as usize,
        })
    }

    /// Reads the next sync marker and makes its section current; `Err` is
    /// how the segment ends.
    fn step_section(&mut self) -> Result<Section, Tail> {
        let pos = self.file_pos;
        let data = self.data;
        if self.limit.is_some_and(|l| self.logical >= l) {
            return Err(Tail::Limit { logical: self.logical });
        }
        let file_len = data.len() as u64;
        let (Some(marker), true) = (data.get(pos..pos + SYNC_MARKER_SIZE), pos <= u32::MAX as usize) else {
            return Err(Tail::NoRoom { file_offset: pos as u64 });
        };
        let next = u32::from_be_bytes([marker[0], marker[1], marker[2], marker[3]]) as u64;
        let found = u32::from_be_bytes([marker[4], marker[5], marker[6], marker[7]]);
        let expected = marker_crc(self.id, pos as u32);
        if found != expected {
            if next == 0 && found == 0 {
                return Err(Tail::ZeroMarker { file_offset: pos as u64 });
            }
            return Err(Tail::CorruptMarker { file_offset: pos as u64, expected, found });
        }
        let header = match self.cipher {
            Cipher::Plain => SYNC_MARKER_SIZE,
            _ => SYNC_MARKER_SIZE + 4,
        };
        if next > file_len {
            return Err(Tail::Truncated { file_offset: pos as u64, next, file_len });
        }
        if next < (pos + header) as u64 {
            return Err(Tail::BadPosition { file_offset: pos as u64, next });
        }
        let next = next as usize;
        let content_len = match self.cipher {
            Cipher::Plain => (next - pos - SYNC_MARKER_SIZE) as u64,
            _ => u32::from_be_bytes(data[pos + 8..pos + 12].try_into().expect("4 bytes")) as u64,
        };
        let start = self.logical;
        let end = start + SYNC_MARKER_SIZE as u64 + content_len;
        if self.limit.is_some_and(|l| end > l) {
            return Err(Tail::Limit { logical: self.logical });
        }
        let section = Section {
            index: self.index,
            file_offset: pos as u64,
            file_end: next as u64,
            start,
            content_start: start + SYNC_MARKER_SIZE as u64,
            end,
        };
        self.index = self.index.saturating_add(1);
        self.file_pos = next;
        self.logical = end;
        self.summary.sections += 1;
        self.summary.end = end;
        self.summary.file_end = next as u64;
        if self.after.is_some_and(|a| end <= a) {
            // Already consumed: walked past without decoding.
            return Ok(section);
        }
        let payload = &data[pos + header..next];
        let decoded = match &self.cipher {
            Cipher::Plain => Ok(Content::Borrowed { start: pos + SYNC_MARKER_SIZE, end: next }),
            _ if content_len > self.max_section_len as u64 => {
                Err(SectionError::TooLarge { len: content_len, cap: self.max_section_len as u64 })
            }
            // Noop sections are the entries themselves: borrow them.
            Cipher::Codec(Compression::Noop) if payload.len() as u64 == content_len => {
                Ok(Content::Borrowed { start: pos + header, end: next })
            }
            Cipher::Codec(codec) => {
                let n = content_len as usize;
                if self.buf.len() < n {
                    self.buf.resize(n, 0);
                }
                self.codecs.decompress(*codec, payload, &mut self.buf[..n]).map(|()| Content::Buffered { len: n })
            }
            Cipher::Encrypted { key, iv } => {
                decrypt_section(key, iv, payload, content_len as usize, &mut self.buf, &mut self.scratch)
                    .map(|()| Content::Buffered { len: content_len as usize })
            }
        };
        match decoded {
            Ok(content) => self.current = Some(Current { section, content, off: 0 }),
            // The marker chain is intact: the next section can still be read.
            Err(err) => {
                self.pending = Some(Loss {
                    segment_id: self.id,
                    section_file_offset: section.file_offset,
                    file_offset: None,
                    start: section.content_start,
                    end,
                    kind: LossKind::Section(err),
                })
            }
        }
        Ok(section)
    }
}

enum Step {
    Entry(Found),
    /// The loss is in `SegmentReader::lost`.
    Loss,
    Skip,
    SectionDone,
}
