//! Where something was found: the file, the segment, the file offset and the
//! logical (commit-log) position. Every error and every reported loss carries
//! one, so a message always says where.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The place in the input an error or a loss refers to.
///
/// Fields are optional because not every stage knows all of them: a mutation
/// decoded from bytes in memory has no file, a compressed section's entries
/// have no file offset of their own (their section's offset is given instead).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The segment file, when reading from a file.
    pub file: Option<Arc<Path>>,
    /// The segment id (from the descriptor, or the file name before it is read).
    pub segment_id: Option<i64>,
    /// Byte offset in the file (for compressed or encrypted segments: the
    /// offset of the section's sync marker).
    pub file_offset: Option<u64>,
    /// Logical commit-log position (§3.5 of the format spec): equal to the
    /// file offset in plain segments, a position in the uncompressed stream
    /// otherwise.
    pub logical: Option<u64>,
}

impl Location {
    /// A location naming only a file.
    pub fn file(path: Option<Arc<Path>>) -> Self {
        Location { file: path, ..Location::default() }
    }

    /// The same location with a segment id.
    pub fn with_segment(mut self, id: i64) -> Self {
        self.segment_id = Some(id);
        self
    }

    /// The same location at a file offset.
    pub fn at_file(mut self, offset: u64) -> Self {
        self.file_offset = Some(offset);
        self
    }

    /// The same location at a logical position.
    pub fn at_logical(mut self, logical: u64) -> Self {
        self.logical = Some(logical);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            sep = " ";
        }
        if let Some(id) = self.segment_id {
            write!(f, "{sep}segment {id}")?;
            sep = " ";
        }
        if let Some(off) = self.file_offset {
            write!(f, "{sep}file offset {off}")?;
            sep = " ";
        }
        if let Some(pos) = self.logical {
            write!(f, "{sep}position {pos}")?;
            sep = " ";
        }
        if sep.is_empty() {
            f.write_str("<input>")?;
        }
        Ok(())
    }
}
