//! Positions in the change stream and the durable checkpoint file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::location::Location;
use crate::schema::{SchemaTracker, StateError};

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

/// What a consumer has processed: the last position, whether that segment
/// was finished there (so that its disappearance is no loss), the damaged
/// segments at or behind it (so that a restarted watcher keeps their files
/// too), and for a watcher that follows the schema in the log, the schema
/// tracker's state at that position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last position processed.
    pub position: Position,
    /// Whether the segment was complete and read to its end.
    pub segment_completed: bool,
    /// The schema tracker's state after `position` (log-following watchers).
    pub schema: Option<SchemaState>,
    /// Segments at or behind `position`, still in the directory, whose data
    /// was damaged: a watcher started from this checkpoint never cleans
    /// them up (their files stay for the operator, as in the run that found
    /// the damage). Ascending.
    pub damaged: Vec<i64>,
}

impl Checkpoint {
    /// A checkpoint without schema state.
    pub fn at(position: Position, segment_completed: bool) -> Checkpoint {
        Checkpoint { position, segment_completed, schema: None, damaged: Vec::new() }
    }
}

/// The saved state of a [`SchemaTracker`] (cheap to clone: shared bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct SchemaState {
    bytes: Arc<[u8]>,
}

impl std::fmt::Debug for SchemaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaState").field("len", &self.bytes.len()).field("crc", &self.crc()).finish()
    }
}

impl SchemaState {
    /// The state of a tracker now.
    pub fn of(tracker: &SchemaTracker) -> SchemaState {
        SchemaState { bytes: tracker.save().into() }
    }

    /// A state saved earlier ([`SchemaTracker::save`]).
    pub fn from_bytes(bytes: Vec<u8>) -> SchemaState {
        SchemaState { bytes: bytes.into() }
    }

    /// The saved bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The tracker back.
    pub fn tracker(&self) -> Result<SchemaTracker, StateError> {
        SchemaTracker::restore(&self.bytes)
    }

    fn crc(&self) -> u32 {
        crc32fast::hash(&self.bytes)
    }
}

/// The checkpoint file's content: the position, and the name and CRC of
/// the file beside it that holds the schema state (written once per state).
#[derive(Serialize, Deserialize)]
struct Record {
    position: Position,
    segment_completed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_crc: Option<u32>,
    /// Absent in files written before it existed: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    damaged: Vec<i64>,
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
    /// The schema state file the checkpoint names is not the one it wrote.
    #[error("{loc}: schema state CRC {found:#010x}, the checkpoint expects {expected:#010x}")]
    SchemaState {
        /// The schema state file.
        loc: Location,
        /// The CRC the checkpoint recorded.
        expected: u32,
        /// The CRC of the file's bytes.
        found: u32,
    },
}

/// Most bytes a schema state file may have.
const MAX_SCHEMA_STATE_LEN: u64 = 256 << 20;

/// Most bytes a checkpoint file may have (a few dozen, and 14 more for
/// each damaged segment kept in the directory).
const MAX_CHECKPOINT_LEN: u64 = 1 << 20;

/// A checkpoint file saved durably: written to a temporary file beside it,
/// fsynced, renamed over the old one, and the directory fsynced. A crash
/// leaves the old checkpoint or the new one, never a mix.
///
/// A checkpoint with schema state keeps that state in a second file beside
/// it, `<name>.schema-<crc>`, written (durably, the same way) only when the
/// state changes and before the checkpoint that names it; files of older
/// states are removed once the new checkpoint is durable.
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
        let record: Record =
            serde_json::from_slice(&text).map_err(|source| CheckpointError::Format { loc: self.loc(), source })?;
        let schema = match (&record.schema_file, record.schema_crc) {
            (Some(name), Some(expected)) => {
                let path = self.dir().join(name);
                let loc = Location::file(Some(Arc::from(path.as_path())));
                let mut bytes = Vec::new();
                File::open(&path)
                    .and_then(|f| f.take(MAX_SCHEMA_STATE_LEN).read_to_end(&mut bytes))
                    .map_err(|source| CheckpointError::Io { loc: loc.clone(), source })?;
                let state = SchemaState::from_bytes(bytes);
                if state.crc() != expected {
                    return Err(CheckpointError::SchemaState { loc, expected, found: state.crc() });
                }
                Some(state)
            }
            _ => None,
        };
        Ok(Some(Checkpoint {
            position: record.position,
            segment_completed: record.segment_completed,
            schema,
            damaged: record.damaged,
        }))
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Writes `bytes` to `path` durably: a temporary file, fsync, rename.
    fn write_durably(&self, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { loc: Location::file(Some(Arc::from(path))), source };
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// The name of the file of a schema state, from its CRC.
    fn schema_file_name(&self, crc: u32) -> String {
        format!("{}.schema-{crc:08x}", self.path.file_name().unwrap_or_default().to_string_lossy())
    }

    /// Saves a checkpoint durably (and its schema state, when it has one
    /// the file beside it does not hold yet).
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let dir = self.dir();
        let dir_io = |source| CheckpointError::Io { loc: Location::file(Some(Arc::from(dir.as_path()))), source };
        let mut record = Record {
            position: checkpoint.position,
            segment_completed: checkpoint.segment_completed,
            schema_file: None,
            schema_crc: None,
            damaged: checkpoint.damaged.clone(),
        };
        if let Some(state) = &checkpoint.schema {
            let crc = state.crc();
            let name = self.schema_file_name(crc);
            let path = dir.join(&name);
            // Content-addressed: a file of this name was renamed into place whole.
            let present = fs::metadata(&path).is_ok_and(|m| m.len() == state.bytes().len() as u64);
            if !present {
                self.write_durably(&path, state.bytes())?;
            }
            record.schema_file = Some(name);
            record.schema_crc = Some(crc);
        }
        let text = serde_json::to_vec(&record).expect("a checkpoint serializes");
        self.write_durably(&self.path, &text)?;
        // The renames are durable once the directory is.
        File::open(&dir).and_then(|d| d.sync_all()).map_err(dir_io)?;
        // Older states are no longer named by the checkpoint: remove them.
        let prefix = format!("{}.schema-", self.path.file_name().unwrap_or_default().to_string_lossy());
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&prefix) && Some(name.as_ref()) != record.schema_file.as_deref() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}
