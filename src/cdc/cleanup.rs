//! What happens to a segment's files once it is finished and acknowledged.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::segment::SegmentName;

/// A finished segment's files in `cdc_raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFiles {
    /// The segment.
    pub name: SegmentName,
    /// Its `.log`.
    pub log: PathBuf,
    /// Its `_cdc.idx`.
    pub idx: PathBuf,
}

impl SegmentFiles {
    /// The files of `name` in `dir`.
    pub fn in_dir(dir: &Path, name: SegmentName) -> SegmentFiles {
        SegmentFiles { name, log: dir.join(name.file_name()), idx: dir.join(name.cdc_index_file_name()) }
    }
}

/// Called for a segment only when it is complete, read to its end without
/// damage, and acknowledged to its end. An error is reported and the call
/// retried later; the watcher never calls it for a segment that failed to
/// read, that is damaged, or before the acknowledgement.
///
/// Any `FnMut(&SegmentFiles) -> io::Result<()> + Send` is a hook.
pub trait CleanupHook: Send {
    /// Disposes of the files.
    fn cleanup(&mut self, segment: &SegmentFiles) -> io::Result<()>;
}

impl<F: FnMut(&SegmentFiles) -> io::Result<()> + Send> CleanupHook for F {
    fn cleanup(&mut self, segment: &SegmentFiles) -> io::Result<()> {
        self(segment)
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes the `.log`, then the `_cdc.idx` (as a CDC consumer must, to free
/// Cassandra's `cdc_total_space`). Files already gone are not an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteFiles;

impl CleanupHook for DeleteFiles {
    fn cleanup(&mut self, segment: &SegmentFiles) -> io::Result<()> {
        remove_if_there(&segment.log)?;
        remove_if_there(&segment.idx)
    }
}

/// Moves both files into an archive directory (renaming when it is on the
/// same file system, copying then deleting otherwise).
#[derive(Clone, Debug)]
pub struct ArchiveTo {
    dir: PathBuf,
}

impl ArchiveTo {
    /// Archives into `dir` (created if needed).
    pub fn new(dir: impl Into<PathBuf>) -> ArchiveTo {
        ArchiveTo { dir: dir.into() }
    }
}

fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            fs::copy(from, to)?;
            fs::File::open(to)?.sync_all()?;
            remove_if_there(from)
        }
        Err(e) => Err(e),
    }
}

impl CleanupHook for ArchiveTo {
    fn cleanup(&mut self, segment: &SegmentFiles) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        move_file(&segment.log, &self.dir.join(segment.name.file_name()))?;
        move_file(&segment.idx, &self.dir.join(segment.name.cdc_index_file_name()))
    }
}
