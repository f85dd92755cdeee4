//! Walking a segment: sync markers, sections and entries (format spec §3, §6,
//! §11), with every loss and the way the data ended reported as values.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::codec::{AesKey, Codecs, SectionError, decrypt_section, encrypted_len, framed_len};
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
    resume: Option<ResumePoint>,
    strict: bool,
    max_section_len: u32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            keys: Keys::new(),
            limit: None,
            after: None,
            resume: None,
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

    /// Starts the walk at a section met by an earlier walk of the same
    /// segment file, instead of at its first section: what comes before is
    /// not read again (its entries and losses are not returned, and the
    /// [`Summary`] counts only what is read). A point from
    /// [`SegmentReader::resume_point`] starts within the section, at the
    /// first entry that walk had not returned. Its logical position is taken
    /// from the point, so a later walk of a compressed or encrypted segment
    /// does not decode the earlier sections again to learn it. Meant with
    /// [`after`](Self::after), to resume a walk cut into batches.
    ///
    /// A point that cannot belong to the segment (before its header or past
    /// its end, or, in a plain segment, a logical position that is not the
    /// file offset) is ignored: the walk starts at the first section. A
    /// point within a section past the end of its entries starts at the
    /// section's first entry.
    pub fn resume_from(mut self, point: ResumePoint) -> ReadOptions {
        self.resume = Some(point);
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

    /// The position set with [`after`](Self::after), if any.
    pub fn resume_after(&self) -> Option<u64> {
        self.after
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

/// Where a walk can start again: a section's marker, its logical position
/// and index, and where in the section's entries (see
/// [`ReadOptions::resume_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResumePoint {
    file_offset: u64,
    logical: u64,
    index: u32,
    /// Offset of the first entry not yet read, in the section's entries
    /// (0: the section's first).
    entry: u64,
}

impl ResumePoint {
    /// The logical position below which a walk resumed here reads nothing
    /// (the section's marker, or the end of the last entry read in it): a
    /// resume that skips everything up to a position at or past it
    /// ([`ReadOptions::after`]) misses nothing.
    pub fn logical(&self) -> u64 {
        if self.entry == 0 { self.logical } else { self.logical.saturating_add(SYNC_MARKER_SIZE as u64 + self.entry) }
    }
}

impl Section {
    /// The point to start a later walk of the same segment at this section.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint { file_offset: self.file_offset, logical: self.start, index: self.index, entry: 0 }
    }
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
    /// A sync marker whose CRC does not match: the bytes from it to the next
    /// marker with a valid CRC were skipped unread (resynchronisation).
    #[error(
        "corrupt sync marker (CRC expected {expected:#010x}, found {found:#010x}): skipped to the next valid marker"
    )]
    CorruptMarker {
        /// CRC a marker at this offset must have.
        expected: u32,
        /// CRC found.
        found: u32,
    },
    /// A marker's `next` (not covered by its CRC) is wrong: the section was
    /// read up to where its data really ends. Nothing is lost by this
    /// report itself (its range is empty); it says the file is damaged.
    #[error("sync marker says the section ends at file offset {declared}, its data ends at {found}")]
    WrongNext {
        /// The `next` the marker holds.
        declared: u64,
        /// Where the section really ends (the next valid marker, or the end
        /// of its data).
        found: u64,
    },
    /// A compressed or encrypted section's declared uncompressed length is
    /// wrong: its payload decodes, as a complete stream, to `found` bytes,
    /// which is what later positions are computed from. Nothing is lost by
    /// this report itself (its range is empty).
    #[error("section header declares {declared} uncompressed bytes, its payload holds {found}")]
    WrongLength {
        /// Length in the section header.
        declared: u64,
        /// Length the payload decodes to.
        found: u64,
    },
    /// The file ends inside this section (its marker's `next` lies past
    /// the end of the file, and no later marker is valid): everything from
    /// the last entry delivered to the section's declared end is lost, and
    /// the walk ends with [`Tail::Truncated`].
    #[error("the file ends at {file_len} bytes, inside a section that runs to file offset {next}")]
    Truncated {
        /// The section's `next` (a file offset past the end of the file).
        next: u64,
        /// The file's length.
        file_len: u64,
    },
}

impl LossKind {
    /// True when the loss is exactly one entry (the next one is intact).
    pub fn is_single_entry(&self) -> bool {
        matches!(self, LossKind::MutationCrc { .. })
    }

    /// True for the reports of damage that was read around, at no cost
    /// ([`WrongNext`](Self::WrongNext), [`WrongLength`](Self::WrongLength)).
    pub fn is_repaired(&self) -> bool {
        matches!(self, LossKind::WrongNext { .. } | LossKind::WrongLength { .. })
    }
}

/// Data that could not be read: what was found and the logical range it cost.
#[derive(Clone, Debug)]
pub struct Loss {
    /// Segment id.
    pub segment_id: i64,
    /// File offset of the sync marker of the section the loss is in.
    pub section_file_offset: u64,
    /// File offset where the lost bytes start, where they map to file bytes:
    /// an entry of a plain segment, a whole section, a skipped gap (an entry
    /// inside a compressed or encrypted section has none).
    pub file_offset: Option<u64>,
    /// File offset just past the lost bytes, where known (whole sections and
    /// skipped gaps).
    pub file_end: Option<u64>,
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
    /// A marker whose CRC does not match, and no way past it: no later
    /// marker with a valid CRC, or (compressed and encrypted segments) the
    /// bytes up to it do not decode to a length, so later positions could
    /// not be known.
    CorruptMarker {
        /// File offset of the marker.
        file_offset: u64,
        /// CRC a marker at this offset must have.
        expected: u32,
        /// CRC found.
        found: u32,
    },
    /// A marker with a valid CRC whose `next` points backwards or leaves no
    /// room for the section's own header, and where the section's data
    /// really ends could not be found.
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
    /// Sections that could not be decompressed or decrypted, and gaps
    /// skipped after a corrupt marker.
    pub lost_sections: u64,
    /// Gaps skipped after a corrupt marker (resynchronisations; each is
    /// also counted in `lost_sections`).
    pub resynced: u64,
    /// Sections read in full despite a wrong `next` or a wrong declared
    /// length ([`LossKind::is_repaired`]).
    pub repaired: u64,
    /// Logical bytes lost to all losses.
    pub lost_bytes: u64,
    /// Logical end of what was read: of the last section whose marker was
    /// intact, or of a gap skipped (the header length when there is none).
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
    /// The section `buf` holds, decoded.
    held: Option<HeldSection>,
}

/// Which section a buffer holds, decoded: a reader resumed at that section
/// of the same bytes (a batch read after the previous one stopped in it)
/// takes it instead of decoding it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeldSection {
    /// The segment bytes (address and length) it was decoded from.
    data: (usize, usize),
    id: i64,
    /// Its marker's file offset, `next` and declared length.
    pos: usize,
    next: usize,
    declared: u64,
    /// Its decoded length.
    len: u64,
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
    /// The file ends inside this section: once its whole entries are read,
    /// the rest is one loss and the walk ends.
    cut: Option<Cut>,
}

/// A section the file ends inside.
#[derive(Clone, Copy)]
struct Cut {
    /// Its declared logical end (unknown when the file ends before its
    /// compressed or encrypted header).
    declared_end: Option<u64>,
    /// How the walk ends after it.
    tail: Tail,
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
    /// Losses found while opening a section, to report before anything else.
    pending: VecDeque<Loss>,
    /// The loss the last `Event::Loss` reported.
    lost: Option<Loss>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    codecs: Codecs,
    held: Option<HeldSection>,
    summary: Summary,
    done: bool,
    /// The resumed section's marker offset and where in its entries to
    /// start (from a [`ResumePoint`] taken mid-section).
    resume_entry: Option<(usize, u64)>,
    /// Where to resume once no section is current: at the last section
    /// met, past its entries if they were read.
    last_point: Option<ResumePoint>,
    /// The tail a section the file ends inside left: the walk ends with it.
    cut_tail: Option<Tail>,
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
        // With a point taken mid-section, where in the section to start:
        // checked against its content once it is open.
        let (file_pos, logical, index, resume_entry) = match opts.resume {
            Some(p)
                if p.file_offset >= header_len as u64
                    && p.file_offset <= data.len() as u64
                    && p.logical >= header_len as u64
                    // Far below any overflow of the positions computed from it.
                    && p.logical < 1 << 48
                    && (!matches!(cipher, Cipher::Plain) || p.logical == p.file_offset) =>
            {
                let entry = (p.entry > 0).then_some((p.file_offset as usize, p.entry));
                (p.file_offset as usize, p.logical, p.index, entry)
            }
            _ => (header_len, header_len as u64, 0, None),
        };
        Ok(SegmentReader {
            data,
            id: descriptor.id,
            file,
            cipher,
            limit: opts.limit,
            after: opts.after,
            strict: opts.strict,
            max_section_len: opts.max_section_len,
            file_pos,
            logical,
            index,
            current: None,
            pending: VecDeque::new(),
            lost: None,
            buf: buffers.buf,
            scratch: buffers.scratch,
            codecs: buffers.codecs,
            held: buffers.held,
            summary: Summary { end: logical, file_end: file_pos as u64, ..Summary::default() },
            done: false,
            resume_entry,
            last_point: None,
            cut_tail: None,
        })
    }

    /// The point to start a later walk of the same bytes just past what
    /// this one has returned: in the current section, at its next entry
    /// (its entries before it are not walked again, so that a walk cut into
    /// batches reads each entry once however large its sections are); past
    /// the current section, the last section met (past its entries when
    /// they were read). `None` before any section is met.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        match &self.current {
            Some(cur) => Some(ResumePoint { entry: cur.off as u64, ..cur.section.resume_point() }),
            None => self.last_point,
        }
    }

    /// The offset to start the section at `pos` at: the resume point's,
    /// once, if the section's content reaches it.
    fn start_offset(&mut self, pos: usize, len: usize) -> usize {
        match self.resume_entry.take() {
            Some((at, entry)) if at == pos && entry <= len as u64 => entry as usize,
            _ => 0,
        }
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
        ReadBuffers { buf: self.buf, scratch: self.scratch, codecs: self.codecs, held: self.held }
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
            if let Some(loss) = self.pending.pop_front() {
                return self.report(loss).map(|()| Some(Event::Loss));
            }
            if self.current.is_some() {
                match self.step_entry() {
                    Step::Entry(f) => return Ok(Some(Event::Entry(f))),
                    Step::Loss => {
                        let loss = self.lost.take().expect("a stepped loss");
                        return self.report(loss).map(|()| Some(Event::Loss));
                    }
                    // `step_entry` resolves `RestLost` itself.
                    Step::Skip | Step::RestLost(_) => continue,
                    Step::SectionDone => {
                        self.last_point = self.resume_point();
                        self.current = None;
                        continue;
                    }
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.step_section() {
                Ok(Some(section)) => {
                    self.last_point = Some(section.resume_point());
                    return Ok(Some(Event::Section(section)));
                }
                Ok(None) => continue,
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
            if let LossKind::CorruptMarker { .. } = loss.kind {
                // The walk stops before the gap it would have skipped.
                self.summary.end = loss.start;
                self.summary.file_end = loss.file_offset.unwrap_or(self.summary.file_end);
            }
            return Err(Error::Corrupt { loc: loss.location(self.file.clone()), kind: loss.kind });
        }
        self.summary.lost_bytes += loss.end - loss.start;
        match loss.kind {
            LossKind::Section(_) => self.summary.lost_sections += 1,
            LossKind::CorruptMarker { .. } => {
                self.summary.lost_sections += 1;
                self.summary.resynced += 1;
            }
            LossKind::WrongNext { .. } | LossKind::WrongLength { .. } => self.summary.repaired += 1,
            // The tail says so; its bytes are counted above.
            LossKind::Truncated { .. } => {}
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
        let (cut, before) = self.current.as_ref().map_or((None, 0), |c| (c.cut, c.off));
        match (self.step_entry_inner(), cut) {
            (Step::RestLost(_) | Step::SectionDone, Some(cut)) => {
                // Bytes after the last whole entry are the cut one, not padding.
                if let Some(cur) = self.current.as_mut() {
                    cur.off = before;
                }
                self.cut_short(cut)
            }
            (Step::RestLost(kind), None) => self.rest_lost(kind),
            (step, _) => step,
        }
    }

    /// The end of a section the file ends inside: what its whole entries
    /// did not cover, up to its declared end, is one loss, and the walk
    /// ends truncated.
    fn cut_short(&mut self, cut: Cut) -> Step {
        let Some(cur) = self.current.take() else {
            return Step::SectionDone;
        };
        self.last_point = Some(ResumePoint { entry: cur.off as u64, ..cur.section.resume_point() });
        self.cut_tail = Some(cut.tail);
        let section = cur.section;
        let start = section.content_start + cur.off as u64;
        let end = cut.declared_end.unwrap_or(start).max(start);
        let Tail::Truncated { next, file_len, .. } = cut.tail else {
            return Step::SectionDone;
        };
        if end == start || self.after.is_some_and(|a| end <= a) {
            return Step::SectionDone;
        }
        let file_offset = match cur.content {
            Content::Borrowed { start: base, .. } => Some((base + cur.off) as u64),
            Content::Buffered { .. } => None,
        };
        self.lost = Some(Loss {
            segment_id: self.id,
            section_file_offset: section.file_offset,
            file_offset,
            file_end: Some(file_len),
            start,
            end,
            kind: LossKind::Truncated { next, file_len },
        });
        Step::Loss
    }

    /// Everything from the current offset to the end of the section is
    /// lost, unless the caller has already consumed it. In a plain segment
    /// the section may instead end early: a `next` pointing too far makes
    /// the following marker read as an entry, so a valid marker between
    /// here and the section's end is where it really ends, and reading goes
    /// on from there.
    fn rest_lost(&mut self, kind: LossKind) -> Step {
        let Some(cur) = self.current.as_mut() else {
            return Step::SectionDone;
        };
        let section = cur.section;
        let (base, len, buffered) = match cur.content {
            Content::Borrowed { start, end } => (start, end - start, false),
            Content::Buffered { len } => (0, len, true),
        };
        let off = cur.off;
        let start = section.content_start + off as u64;
        let file_offset = (!buffered).then_some((base + off) as u64);
        let mut end_off = len;
        // In strict mode this loss is the error that ends the walk: nothing
        // after it is repaired, so the section keeps the end it was
        // reported with.
        if matches!(self.cipher, Cipher::Plain)
            && !self.strict
            && let Some(q) = find_marker(self.data, self.id, base + off, base + len)
        {
            end_off = q - base;
            cur.content = Content::Borrowed { start: base, end: q };
            self.file_pos = q;
            self.logical = q as u64;
            self.summary.end = q as u64;
            self.summary.file_end = q as u64;
            if self.after.is_none_or(|a| (q as u64) > a) {
                self.pending.push_back(Loss {
                    segment_id: self.id,
                    section_file_offset: section.file_offset,
                    file_offset: Some(section.file_offset),
                    file_end: Some(q as u64),
                    start: q as u64,
                    end: q as u64,
                    kind: LossKind::WrongNext { declared: section.file_end, found: q as u64 },
                });
            }
        }
        cur.off = end_off;
        let end = section.content_start + end_off as u64;
        if end == start || self.after.is_some_and(|a| end <= a) {
            return Step::Skip;
        }
        let file_end = (!buffered).then_some((base + end_off) as u64);
        self.lost = Some(Loss {
            segment_id: self.id,
            section_file_offset: section.file_offset,
            file_offset,
            file_end,
            start,
            end,
            kind,
        });
        Step::Loss
    }

    fn step_entry_inner(&mut self) -> Step {
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
        let rest_lost = |_: &mut Current, _: &mut Option<Loss>, kind: LossKind, _: Option<u64>| Step::RestLost(kind);
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
                file_end: file_offset.map(|f| f + needed as u64),
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

    /// Reads the next sync marker and makes its section current (`None`
    /// when a corrupt marker was skipped instead); `Err` is how the segment
    /// ends.
    fn step_section(&mut self) -> Result<Option<Section>, Tail> {
        if let Some(tail) = self.cut_tail.take() {
            return Err(tail);
        }
        let pos = self.file_pos;
        if self.limit.is_some_and(|l| self.logical >= l) {
            return Err(Tail::Limit { logical: self.logical });
        }
        match marker_at(self.data, self.id, pos) {
            Marker::NoRoom => Err(Tail::NoRoom { file_offset: pos as u64 }),
            Marker::Zero => Err(Tail::ZeroMarker { file_offset: pos as u64 }),
            Marker::Corrupt { expected, found } => self.resync(pos, expected, found).map(|()| None),
            Marker::Valid { next } => match self.cipher {
                Cipher::Plain => self.open_plain(pos, next).map(Some),
                _ => self.open_coded(pos, next).map(Some),
            },
        }
    }

    /// The tail for a marker whose section could not be placed.
    fn unplaceable(&self, pos: usize, next: usize) -> Tail {
        let file_len = self.data.len();
        if next > file_len {
            Tail::Truncated { file_offset: pos as u64, next: next as u64, file_len: file_len as u64 }
        } else if self.limit.is_some_and(|l| next as u64 > l) && next >= pos + SYNC_MARKER_SIZE {
            Tail::Limit { logical: self.logical }
        } else {
            Tail::BadPosition { file_offset: pos as u64, next: next as u64 }
        }
    }

    /// Queues a loss found while opening a section, unless the caller has
    /// already consumed everything up to its end.
    fn queue(&mut self, loss: Loss) {
        if self.after.is_none_or(|a| loss.end > a) {
            self.pending.push_back(loss);
        }
    }

    /// Makes the section at `pos..end` current (or walks past it when the
    /// caller has consumed it), with `content_len` bytes of entries.
    fn enter(&mut self, pos: usize, end: usize, content_len: u64) -> Section {
        let start = self.logical;
        let section_end = start + SYNC_MARKER_SIZE as u64 + content_len;
        let section = Section {
            index: self.index,
            file_offset: pos as u64,
            file_end: end as u64,
            start,
            content_start: start + SYNC_MARKER_SIZE as u64,
            end: section_end,
        };
        self.index = self.index.saturating_add(1);
        self.file_pos = end;
        self.logical = section_end;
        self.summary.sections += 1;
        self.summary.end = section_end;
        self.summary.file_end = end as u64;
        section
    }

    /// A plain section: its entries are the file bytes up to the next marker.
    fn open_plain(&mut self, pos: usize, next: usize) -> Result<Section, Tail> {
        let data = self.data;
        let file_len = data.len();
        // Logical positions of a plain segment are file offsets.
        let bound = self.limit.map_or(file_len, |l| l.min(file_len as u64) as usize);
        let content = pos + SYNC_MARKER_SIZE;
        if content > bound {
            // The marker itself is not below the read limit (not durable yet).
            return Err(Tail::Limit { logical: self.logical });
        }
        let confirmed = next >= content
            && next <= bound
            // With no room for a marker at `next`, its entries must reach it
            // (over zeros only to the very end of the file: Cassandra ends a
            // section where its entries do).
            && ((next + SYNC_MARKER_SIZE > file_len
                && chain_reaches(data, content, next)
                && (next == file_len || !zero_padded(data, content, next)))
                || Some(next as u64) == self.limit
                || matches!(marker_at(data, self.id, next), Marker::Valid { .. }));
        let end = if confirmed {
            next
        } else {
            match plain_end(data, self.id, content, next, bound) {
                Some(end) => end,
                None if self.ends_inside(pos, next, content) => {
                    let declared = (next - content) as u64;
                    return Ok(self.enter_cut(
                        pos,
                        next,
                        Some(declared),
                        Content::Borrowed { start: content, end: file_len },
                    ));
                }
                None => return Err(self.unplaceable(pos, next)),
            }
        };
        let section = self.enter(pos, end, (end - content) as u64);
        if end != next {
            self.queue(Loss {
                segment_id: self.id,
                section_file_offset: pos as u64,
                file_offset: Some(pos as u64),
                file_end: Some(end as u64),
                start: section.end,
                end: section.end,
                kind: LossKind::WrongNext { declared: next as u64, found: end as u64 },
            });
        }
        if self.after.is_none_or(|a| section.end > a) {
            let off = self.start_offset(pos, end - content);
            self.current =
                Some(Current { section, content: Content::Borrowed { start: content, end }, off, cut: None });
        }
        Ok(section)
    }

    /// A compressed or encrypted section. Its `next` is proven by its
    /// payload decoding as one complete stream; when it does not, the
    /// section may end elsewhere (the next valid marker, or the end of the
    /// file), and the first end at which it decodes is taken. Its length is
    /// what the payload decodes to, so a wrong declared length cannot shift
    /// later positions.
    fn open_coded(&mut self, pos: usize, next: usize) -> Result<Section, Tail> {
        let data = self.data;
        let file_len = data.len();
        let header = pos + SYNC_MARKER_SIZE + 4;
        if self.ends_inside(pos, next, header.min(file_len)) {
            return self.open_cut_coded(pos, next, header);
        }
        if header > file_len {
            return Err(self.unplaceable(pos, next));
        }
        let declared = u32::from_be_bytes(data[pos + 8..header].try_into().expect("4 bytes")) as u64;
        let plausible = next >= header && next <= file_len;
        if plausible
            && let Some(l) = self.limit
            && self.logical + SYNC_MARKER_SIZE as u64 + declared > l
            && self.witness(header, next).is_none_or(|w| w == declared)
        {
            // Not yet durable (the payload's own framing agrees).
            return Err(Tail::Limit { logical: self.logical });
        }
        let key = HeldSection { data: (data.as_ptr() as usize, file_len), id: self.id, pos, next, declared, len: 0 };
        let held = self.held.filter(|h| HeldSection { len: 0, ..*h } == key);
        let mut opened = match held {
            // Decoded by the reader this one resumes: the same bytes, the same outcome.
            Some(h) => Some(Opened { len: h.len, result: Ok(Content::Buffered { len: h.len as usize }) }),
            None => plausible.then(|| self.open_payload(header, next, declared)),
        };
        let mut end = next;
        let next_valid = plausible && matches!(marker_at(data, self.id, next), Marker::Valid { .. });
        // A payload that decodes at `next` is still doubted when nothing
        // confirms `next` (a valid marker there, the end of the written
        // data or of the file): an end confirmed by the next valid marker
        // or the end of the file, at which it decodes, is taken instead
        // (a payload that decodes there cannot have ended before it).
        let confirmed = plausible
            && (next == file_len
                || matches!(marker_at(data, self.id, next), Marker::Valid { .. } | Marker::Zero | Marker::NoRoom));
        let noop = matches!(self.cipher, Cipher::Codec(Compression::Noop));
        // A Noop payload decodes whenever the declared length equals its
        // own: at an unconfirmed end only its entry chain is a witness.
        let decoded = opened.as_ref().is_some_and(|o| o.result.is_ok())
            && (confirmed || !noop || chain_reaches(data, header, next));
        if held.is_none() && decoded && confirmed {
            // Only an end confirmed where the marker says is remembered.
            if let Some(Opened { len, result: Ok(Content::Buffered { .. }) }) = &opened {
                self.held = Some(HeldSection { len: *len, ..key });
            }
        }
        if held.is_none() && (!decoded || !confirmed) {
            let scan_to = if next_valid { next } else { file_len };
            let q = find_marker(data, self.id, header, scan_to);
            let fallback = (q.is_none() && next != file_len).then_some(file_len);
            let mut found = false;
            for candidate in [q, fallback].into_iter().flatten() {
                // A Noop payload decodes to any length equal to its own: only
                // its entry chain can witness where it ends.
                if noop && !chain_reaches(data, header, candidate) {
                    continue;
                }
                let o = self.open_payload(header, candidate, declared);
                if o.result.is_ok() {
                    end = candidate;
                    opened = Some(o);
                    found = true;
                    break;
                }
            }
            // A Noop payload is its entries, with no framing of its own: its
            // length is where its entry chain ends, at the first valid marker.
            // An unconfirmed `next` comes last: a chain of no entries reaches
            // a `next` damaged to point at the section's own header.
            if !found
                && noop
                && let Some(c) = [confirmed.then_some(next), q, Some(file_len), plausible.then_some(next)]
                    .into_iter()
                    .flatten()
                    .find(|&c| chain_reaches(data, header, c))
            {
                let len = (c - header) as u64;
                end = c;
                opened = Some(Opened { len, result: self.decode_as(header, c, len) });
            }
        }
        let Some(opened) = opened else {
            return Err(self.unplaceable(pos, next));
        };
        if self.limit.is_some_and(|l| self.logical + SYNC_MARKER_SIZE as u64 + opened.len > l) {
            return Err(Tail::Limit { logical: self.logical });
        }
        let section = self.enter(pos, end, opened.len);
        let id = self.id;
        let notice = |kind| Loss {
            segment_id: id,
            section_file_offset: pos as u64,
            file_offset: Some(pos as u64),
            file_end: Some(end as u64),
            start: section.end,
            end: section.end,
            kind,
        };
        if end != next {
            self.queue(notice(LossKind::WrongNext { declared: next as u64, found: end as u64 }));
        }
        if opened.len != declared && opened.result.is_ok() {
            self.queue(notice(LossKind::WrongLength { declared, found: opened.len }));
        }
        match opened.result {
            Ok(content) => {
                if self.after.is_none_or(|a| section.end > a) {
                    let len = match content {
                        Content::Borrowed { start, end } => end - start,
                        Content::Buffered { len } => len,
                    };
                    let off = self.start_offset(pos, len);
                    self.current = Some(Current { section, content, off, cut: None });
                }
            }
            // The marker chain is intact: the next section can still be read.
            Err(err) => self.queue(Loss {
                segment_id: self.id,
                section_file_offset: pos as u64,
                file_offset: Some(pos as u64),
                file_end: Some(end as u64),
                start: section.content_start,
                end: section.end,
                kind: LossKind::Section(err),
            }),
        }
        Ok(section)
    }

    /// Whether the file ends inside the section whose marker is at `pos`:
    /// its `next` lies past the end of the file, no valid marker follows
    /// from `from` on (which would make `next` a damaged field instead),
    /// and no read limit stops the walk before the section.
    fn ends_inside(&self, pos: usize, next: usize, from: usize) -> bool {
        let file_len = self.data.len();
        next > file_len
            && self.limit.is_none_or(|l| next as u64 <= l || !matches!(self.cipher, Cipher::Plain))
            && find_marker(self.data, self.id, from.max(pos + 1), file_len).is_none()
    }

    /// A compressed or encrypted section the file ends inside: the part of
    /// its payload that is there is decoded as far as it goes (whole
    /// encrypted chunks, a Zstd or Deflate stream's prefix; an LZ4 or
    /// Snappy block decodes whole or not at all), its whole entries are
    /// read, and the rest up to its declared length is one loss.
    fn open_cut_coded(&mut self, pos: usize, next: usize, header: usize) -> Result<Section, Tail> {
        let file_len = self.data.len();
        let declared = self
            .data
            .get(pos + SYNC_MARKER_SIZE..header)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as u64);
        let declared_end = declared.map(|d| self.logical + SYNC_MARKER_SIZE as u64 + d);
        if let (Some(l), Some(end)) = (self.limit, declared_end)
            && end > l
        {
            // Not durable yet: nothing to judge.
            return Err(Tail::Limit { logical: self.logical });
        }
        let opened = match declared {
            Some(d) if d <= self.max_section_len as u64 => Some(self.open_payload(header, file_len, d)),
            _ => None,
        };
        let content = match opened {
            Some(Opened { len, result: Ok(content) }) if declared.is_some_and(|d| len <= d) => content,
            _ => Content::Buffered { len: 0 },
        };
        Ok(self.enter_cut(pos, next, declared, content))
    }

    /// Makes current a section the file ends inside, whose declared content
    /// length is `declared` (when known) and whose readable part is `content`.
    fn enter_cut(&mut self, pos: usize, next: usize, declared: Option<u64>, content: Content) -> Section {
        let file_len = self.data.len();
        let section = self.enter(pos, file_len, declared.unwrap_or(0));
        let tail = Tail::Truncated { file_offset: pos as u64, next: next as u64, file_len: file_len as u64 };
        let cut = Cut { declared_end: declared.map(|_| section.end), tail };
        let len = match content {
            Content::Borrowed { start, end } => end - start,
            Content::Buffered { len } => len,
        };
        let off = self.start_offset(pos, len);
        self.current = Some(Current { section, content, off, cut: Some(cut) });
        section
    }

    /// The length a payload's own framing states (the encrypted blocks'
    /// chunk lengths), when it states one.
    fn witness(&self, start: usize, end: usize) -> Option<u64> {
        let payload = &self.data[start..end];
        match &self.cipher {
            Cipher::Plain => None,
            Cipher::Codec(codec) => framed_len(*codec, payload),
            Cipher::Encrypted { key, iv } => encrypted_len(key, iv, payload).ok(),
        }
    }

    /// Decodes a payload, trying the declared length and the one its
    /// framing states; where they differ, the one it decodes to is taken
    /// (a codec that states no length is measured by decoding).
    fn open_payload(&mut self, start: usize, end: usize, declared: u64) -> Opened {
        let witness = self.witness(start, end);
        let first = witness.unwrap_or(declared);
        let result = self.decode_as(start, end, first);
        if result.is_ok() {
            return Opened { len: first, result };
        }
        if first != declared
            && let Ok(content) = self.decode_as(start, end, declared)
        {
            return Opened { len: declared, result: Ok(content) };
        }
        if witness.is_none()
            && let Cipher::Codec(codec) = self.cipher
            && let Some(n) = self.codecs.measure(codec, &self.data[start..end], self.max_section_len as u64)
            && n != declared
            && let Ok(content) = self.decode_as(start, end, n)
        {
            return Opened { len: n, result: Ok(content) };
        }
        let result = if first == declared { result } else { self.decode_as(start, end, declared) };
        Opened { len: declared, result }
    }

    /// Decodes a payload to exactly `len` bytes.
    fn decode_as(&mut self, start: usize, end: usize, len: u64) -> Result<Content, SectionError> {
        let cap = self.max_section_len as u64;
        if len > cap {
            return Err(SectionError::TooLarge { len, cap });
        }
        let payload = &self.data[start..end];
        let n = len as usize;
        if !matches!(self.cipher, Cipher::Plain) {
            self.held = None;
        }
        match &self.cipher {
            Cipher::Plain => Ok(Content::Borrowed { start, end }),
            // Noop sections are the entries themselves: borrow them.
            Cipher::Codec(Compression::Noop) if payload.len() == n => Ok(Content::Borrowed { start, end }),
            Cipher::Codec(codec) => {
                if self.buf.len() < n {
                    self.buf.resize(n, 0);
                }
                self.codecs.decompress(*codec, payload, &mut self.buf[..n]).map(|()| Content::Buffered { len: n })
            }
            Cipher::Encrypted { key, iv } => decrypt_section(key, iv, payload, n, &mut self.buf, &mut self.scratch)
                .map(|()| Content::Buffered { len: n }),
        }
    }

    /// After a marker with a bad CRC: skips to the next marker with a valid
    /// one, reporting the bytes in between as one loss. Nothing behind a bad
    /// marker is delivered (it may be stale bytes, not this segment's
    /// data). In a compressed or encrypted segment the gap must decode to a
    /// length, or later positions could not be known: then the walk ends.
    fn resync(&mut self, pos: usize, expected: u32, found: u32) -> Result<(), Tail> {
        let corrupt = Tail::CorruptMarker { file_offset: pos as u64, expected, found };
        let data = self.data;
        let file_len = data.len();
        let (q, gap_end) = match self.cipher {
            Cipher::Plain => {
                let bound = self.limit.map_or(file_len, |l| l.min(file_len as u64) as usize);
                // With a bound, bytes up to it are durable: a gap may end there.
                // Without one, the last section ends where its entries do,
                // before the zeroed rest of the file.
                let next = match marker_at(data, self.id, pos) {
                    Marker::Corrupt { .. } => u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")),
                    _ => 0,
                } as usize;
                let last = || {
                    let content = pos + SYNC_MARKER_SIZE;
                    // Only where the entries end: the bad marker's `next` is no witness.
                    let to_eof = || (bound >= content && chain_reaches(data, content, bound)).then_some(bound);
                    plain_end(data, self.id, content, usize::MAX, bound).or_else(to_eof).filter(|&e| {
                        // Stale bytes are not a section: it must start with
                        // an entry, or be an empty one.
                        (if e == content { e == next } else { entry_head_ok(data, content) })
                            && matches!(marker_at(data, self.id, e), Marker::Zero | Marker::NoRoom)
                    })
                };
                let q = find_marker(data, self.id, pos + 1, bound)
                    .or_else(|| (self.limit.is_some() && bound > pos).then_some(bound))
                    .or_else(last)
                    .ok_or(corrupt)?;
                (q, q as u64)
            }
            _ => {
                // Without a later marker, the last section may end the file.
                let q = find_marker(data, self.id, pos + 1, file_len).unwrap_or(file_len);
                let header = pos + SYNC_MARKER_SIZE + 4;
                if header > q {
                    return Err(corrupt);
                }
                let declared = u32::from_be_bytes(data[pos + 8..header].try_into().expect("4 bytes")) as u64;
                let mut opened = self.open_payload(header, q, declared);
                if opened.result.is_err()
                    && matches!(self.cipher, Cipher::Codec(Compression::Noop))
                    && chain_reaches(data, header, q)
                {
                    opened =
                        Opened { len: (q - header) as u64, result: Ok(Content::Borrowed { start: header, end: q }) };
                }
                if opened.result.is_err() {
                    return Err(corrupt);
                }
                let gap_end = self.logical + SYNC_MARKER_SIZE as u64 + opened.len;
                if self.limit.is_some_and(|l| gap_end > l) {
                    return Err(Tail::Limit { logical: self.logical });
                }
                (q, gap_end)
            }
        };
        let loss = Loss {
            segment_id: self.id,
            section_file_offset: pos as u64,
            file_offset: Some(pos as u64),
            file_end: Some(q as u64),
            start: self.logical,
            end: gap_end,
            kind: LossKind::CorruptMarker { expected, found },
        };
        self.file_pos = q;
        self.logical = gap_end;
        self.summary.end = gap_end;
        self.summary.file_end = q as u64;
        self.queue(loss);
        Ok(())
    }
}

/// A payload decoded, or not: the length later positions are computed from.
struct Opened {
    len: u64,
    result: Result<Content, SectionError>,
}

/// What the 8 bytes at a file offset are.
enum Marker {
    /// The file ends within them.
    NoRoom,
    /// All zero: the end of written data.
    Zero,
    /// A CRC that does not match this offset.
    Corrupt { expected: u32, found: u32 },
    /// A marker with a valid CRC.
    Valid { next: usize },
}

fn marker_at(data: &[u8], id: i64, pos: usize) -> Marker {
    let Some(m) = data.get(pos..pos.saturating_add(SYNC_MARKER_SIZE)) else {
        return Marker::NoRoom;
    };
    let Ok(pos32) = u32::try_from(pos) else {
        return Marker::NoRoom;
    };
    let next = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    let found = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
    let expected = marker_crc(id, pos32);
    if found == expected {
        Marker::Valid { next: next as usize }
    } else if next == 0 && found == 0 {
        Marker::Zero
    } else {
        Marker::Corrupt { expected, found }
    }
}

/// The first offset in `from..to` holding a sync marker with a valid CRC.
/// Runs of zero bytes are skipped at once (a marker whose CRC is zero, one
/// chance in 2^32, is not found).
fn find_marker(data: &[u8], id: i64, from: usize, to: usize) -> Option<usize> {
    let to = to.min(data.len().saturating_sub(SYNC_MARKER_SIZE - 1)).min(u32::MAX as usize + 1);
    let mut prefix = crc32fast::Hasher::new();
    prefix.update(&(id as u32).to_be_bytes());
    prefix.update(&((id >> 32) as u32).to_be_bytes());
    let mut q = from;
    while q < to {
        let crc = [data[q + 4], data[q + 5], data[q + 6], data[q + 7]];
        if crc == [0; 4] {
            let nonzero = q + 4 + data[q + 4..].iter().position(|&b| b != 0)?;
            q = nonzero.saturating_sub(SYNC_MARKER_SIZE - 1).max(q + 1);
            continue;
        }
        let mut h = prefix.clone();
        h.update(&(q as u32).to_be_bytes());
        if h.finalize() == u32::from_be_bytes(crc) {
            return Some(q);
        }
        q += 1;
    }
    None
}

/// Whether entries, walked by their sizes (size CRCs checked), run from
/// `from` exactly to `to` (zeros after a zero size count as padding).
fn chain_reaches(data: &[u8], from: usize, to: usize) -> bool {
    let mut c = from;
    while c < to {
        let Some(h) = data.get(c..c + 8).filter(|_| c + 8 <= to) else {
            return false;
        };
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if size == 0 {
            return data[c..to].iter().all(|&b| b == 0);
        }
        if !entry_head_ok(data, c) {
            return false;
        }
        c += ENTRY_OVERHEAD + size as usize;
    }
    c == to
}

/// Whether the entry chain from `from` reaches `to` over a run of zeros
/// (a zero size before `to`), rather than ending exactly there.
fn zero_padded(data: &[u8], from: usize, to: usize) -> bool {
    let mut c = from;
    while c + 4 <= to {
        let size = u32::from_be_bytes(data[c..c + 4].try_into().expect("4 bytes"));
        if size == 0 {
            return true;
        }
        c += ENTRY_OVERHEAD + size as usize;
    }
    false
}

/// Whether an entry with a valid size CRC starts at `at`.
fn entry_head_ok(data: &[u8], at: usize) -> bool {
    data.get(at..at.saturating_add(8)).is_some_and(|h| {
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        size >= MIN_MUTATION_SIZE && crc32fast::hash(&h[..4]) == u32::from_be_bytes([h[4], h[5], h[6], h[7]])
    })
}

/// Where a plain section whose `next` is not confirmed by a valid marker
/// really ends: the entries are walked by their sizes (size CRCs checked)
/// from `content` to the first valid marker, the bound, or a break (a zero
/// size, a damaged or torn entry). `None` when no end can be trusted.
fn plain_end(data: &[u8], id: i64, content: usize, next: usize, bound: usize) -> Option<usize> {
    // Past the end of the file (not a read limit, which may hide data not
    // yet durable), zeros after the entries end the written data.
    let bound_is_eof = bound == data.len();
    let mut c = content;
    let zero_stop = loop {
        // The entries end at a valid marker, or where `next` says, unless
        // an entry starts there (a damaged `next` that lands between two
        // entries: a damaged marker could not pass a size CRC).
        if c > content
            && ((c == next && !entry_head_ok(data, c)) || matches!(marker_at(data, id, c), Marker::Valid { .. }))
        {
            return Some(c);
        }
        if c >= bound {
            // The walk reached the bound: it is the end unless `next` says
            // the section goes on past it (torn, or not yet durable).
            return (next <= bound && bound >= content).then_some(c.min(bound));
        }
        let Some(head) = data.get(c..c + 8).filter(|_| c + 8 <= bound) else {
            // Too few bytes to tell padding from a torn entry.
            break false;
        };
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if size == 0 {
            break true;
        }
        let after = c + ENTRY_OVERHEAD + size as usize;
        if size < MIN_MUTATION_SIZE || crc32fast::hash(&head[..4]) != crc || after > bound {
            break false;
        }
        c = after;
    };
    let next_fits = next >= c && next <= bound;
    // Zeros where the next entry would be: the written data ends here (a
    // `next` further on over zeros is a wrong one; the slot at `c` is the
    // zeroed marker of a clean end).
    if zero_stop && next_fits && data[c..next].iter().all(|&b| b == 0) {
        return Some(c);
    }
    if let Some(q) = find_marker(data, id, c, bound) {
        return Some(q);
    }
    if next_fits {
        return Some(next);
    }
    (zero_stop && (next < c || (next > bound && bound_is_eof))).then_some(c)
}

enum Step {
    Entry(Found),
    /// The rest of the section cannot be read (resolved by `rest_lost`).
    RestLost(LossKind),
    /// The loss is in `SegmentReader::lost`.
    Loss,
    Skip,
    SectionDone,
}
