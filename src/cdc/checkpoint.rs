//! Positions in the change stream and the durable checkpoint file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::location::Location;

/// Where a mutation is in the change stream: its segment and its commit-log
/// position (the logical offset just past its entry). Positions order the
/// stream: by segment id, then by offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Segment id.
    pub segment_id: i64,
    /// Logical offset within the segment.
    pub offset: u64,
}

/// What a consumer has processed: the last position, and whether that
/// segment was finished there (so that its disappearance is no loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last position processed.
    pub position: Position,
    /// Whether the segment was complete and read to its end.
    pub segment_completed: bool,
}

/// Why a checkpoint could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{loc}: {source}")]
    Io {
        /// Which file.
        loc: Location,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not a checkpoint.
    #[error("{loc}: not a checkpoint: {source}")]
    Format {
        /// Which file.
        loc: Location,
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
}

/// Most bytes a checkpoint file may have (it is a few dozen).
const MAX_CHECKPOINT_LEN: u64 = 4096;

/// A checkpoint file saved durably: written to a temporary file beside it,
/// fsynced, renamed over the old one, and the directory fsynced. A crash
/// leaves the old checkpoint or the new one, never a mix.
#[derive(Clone, Debug)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// A checkpoint kept at `path`.
    pub fn new(path: impl Into<PathBuf>) -> CheckpointFile {
        CheckpointFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn loc(&self) -> Location {
        Location::file(Some(Arc::from(self.path.as_path())))
    }

    /// The saved checkpoint, `None` if there is none yet.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let io = |source| CheckpointError::Io { loc: self.loc(), source };
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        Read::by_ref(&mut file).take(MAX_CHECKPOINT_LEN).read_to_end(&mut text).map_err(io)?;
        serde_json::from_slice(&text).map(Some).map_err(|source| CheckpointError::Format { loc: self.loc(), source })
    }

    /// Saves a checkpoint durably.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { loc: self.loc(), source };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let text = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(io)?;
        // The rename is durable once the directory is.
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}
