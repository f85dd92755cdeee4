//! Stage 1: file bytes to sections to entries.
//!
//! A [`Segment`] is a checked descriptor over bytes that are memory-mapped
//! ([`Segment::open`]) or already in memory ([`Segment::from_data`]). Its
//! [`reader`](Segment::reader) walks the sync sections and entries exactly as
//! Cassandra wrote them and reports what is damaged as values:
//!
//! ```no_run
//! use cassandra_commitlog::segment::{Item, ReadOptions, Segment};
//!
//! let segment = Segment::open("cdc_raw/CommitLog-7-1795433791762.log")?;
//! let mut reader = segment.reader(&ReadOptions::new())?;
//! while let Some(item) = reader.next()? {
//!     match item {
//!         Item::Entry(entry) => println!("{} bytes at {}", entry.mutation.len(), entry.position),
//!         Item::Loss(loss) => eprintln!("lost: {loss}"),
//!         Item::Section(_) => {}
//!     }
//! }
//! println!("ended: {:?}", reader.summary().tail);
//! # Ok::<(), cassandra_commitlog::segment::Error>(())
//! ```

mod codec;
mod descriptor;
mod error;
mod mmap;
mod name;
mod reader;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

pub use codec::SectionError;
pub use descriptor::{
    AES_CBC_PKCS5, Compression, Descriptor, Encryption, SUPPORTED_VERSIONS, SectionFormat, header_crc,
};
pub use error::{Error, ParamsError};
pub use name::SegmentName;
pub use reader::{
    DEFAULT_MAX_SECTION_LEN, ENTRY_OVERHEAD, Entry, Item, KEPT_LOSSES, Keys, Loss, LossKind, MIN_MUTATION_SIZE,
    ReadBuffers, ReadOptions, ResumePoint, SYNC_MARKER_SIZE, Section, SegmentReader, Summary, Tail, TailClass,
    marker_crc,
};

use crate::location::Location;

/// A commit-log segment: its checked descriptor and its bytes.
///
/// `D` is where the bytes live: [`Bytes`] (a memory map from
/// [`open`](Segment::open), or any shared buffer), `&[u8]`, `Vec<u8>`...
/// Nothing is copied; entries of plain segments borrow these bytes.
#[derive(Debug)]
pub struct Segment<D = Bytes> {
    data: D,
    descriptor: Descriptor,
    path: Option<Arc<Path>>,
    name: Option<SegmentName>,
}

impl Segment<Bytes> {
    /// Memory-maps a segment file and checks its name and descriptor.
    ///
    /// The file name must be `CommitLog-<version>-<id>.log`; a version other
    /// than 6, 7 or 8, in the name or the header, is refused with
    /// [`Error::UnsupportedVersion`].
    pub fn open(path: impl AsRef<Path>) -> Result<Segment<Bytes>, Error> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let name = checked_name(&path)?;
        let io = |source| Error::Io { loc: Location::file(Some(path.clone())).with_segment(name.id), source };
        let file = File::open(&path).map_err(io)?;
        let map = mmap::map(&file).map_err(io)?;
        let data = Bytes::from_owner(map);
        Segment::build(data, Some(path), Some(name))
    }
}

/// The segment name of a path, refused if it is not one or names a
/// version this crate does not read.
fn checked_name(path: &Arc<Path>) -> Result<SegmentName, Error> {
    let loc = Location::file(Some(path.clone()));
    let name = SegmentName::from_path(path).ok_or_else(|| Error::FileName { loc: loc.clone() })?;
    if !SUPPORTED_VERSIONS.contains(&name.version) {
        return Err(Error::UnsupportedVersion { loc: loc.with_segment(name.id), found: name.version });
    }
    Ok(name)
}

impl<D: AsRef<[u8]>> Segment<D> {
    /// A segment from bytes in memory, without a file name.
    pub fn from_data(data: D) -> Result<Segment<D>, Error> {
        Segment::build(data, None, None)
    }

    /// A segment from bytes in memory, checked against its file name.
    pub fn from_named_data(data: D, file_name: &str) -> Result<Segment<D>, Error> {
        let path: Arc<Path> = Arc::from(Path::new(file_name));
        let name = checked_name(&path)?;
        Segment::build(data, Some(path), Some(name))
    }

    fn build(data: D, path: Option<Arc<Path>>, name: Option<SegmentName>) -> Result<Segment<D>, Error> {
        let mut loc = Location::file(path.clone());
        if let Some(n) = name {
            loc = loc.with_segment(n.id);
        }
        let descriptor = Descriptor::parse(data.as_ref(), &loc)?;
        if let Some(n) = name
            && n.version != descriptor.version
        {
            return Err(Error::VersionMismatch { loc: loc.at_file(0), name: n.version, header: descriptor.version });
        }
        Ok(Segment { data, descriptor, path, name })
    }

    /// The checked descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The segment id (from the header, as Cassandra uses it).
    pub fn id(&self) -> i64 {
        self.descriptor.id
    }

    /// The name the segment was opened under, if any.
    pub fn name(&self) -> Option<SegmentName> {
        self.name
    }

    /// The file path, if opened from a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// All bytes of the segment.
    pub fn data(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// The storage the segment was built from.
    pub fn storage(&self) -> &D {
        &self.data
    }

    /// A reader over the sections and entries. Fails only when the segment
    /// is encrypted and `opts` has no usable key for it, or in strict mode
    /// when the file name and header disagree on the id.
    pub fn reader(&self, opts: &ReadOptions) -> Result<SegmentReader<'_>, Error> {
        self.reader_with(opts, ReadBuffers::default())
    }

    /// A reader that decodes into `buffers` (taken back with
    /// [`SegmentReader::into_buffers`]): for consumers reading many segments.
    pub fn reader_with(&self, opts: &ReadOptions, buffers: ReadBuffers) -> Result<SegmentReader<'_>, Error> {
        if let Some(name) = self.name
            && opts.is_strict()
            && name.id != self.descriptor.id
        {
            return Err(Error::IdMismatch {
                loc: Location::file(self.path.clone()).with_segment(self.descriptor.id).at_file(4),
                name: name.id,
                header: self.descriptor.id,
            });
        }
        SegmentReader::new(self.data.as_ref(), &self.descriptor, self.path.clone(), opts, buffers)
    }

    /// Walks the whole segment and returns what was found.
    pub fn walk(&self, opts: &ReadOptions) -> Result<Summary, Error> {
        self.reader(opts)?.finish()
    }
}

impl Segment<Bytes> {
    /// The bytes of an entry as an owned, cheaply cloned [`Bytes`]: a view
    /// into the map for plain segments, a copy otherwise.
    pub fn entry_bytes(&self, entry: &Entry<'_>) -> Bytes {
        match entry.file_offset {
            Some(off) => {
                let start = off as usize + 8;
                self.data.slice(start..start + entry.mutation.len())
            }
            None => Bytes::copy_from_slice(entry.mutation),
        }
    }

    /// The whole file's bytes (the map), cheaply cloned.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }
}
