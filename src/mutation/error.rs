//! Errors of the mutation stage.

use uuid::Uuid;

use crate::location::Location;

/// Why a mutation could not be decoded, with the byte offset within the
/// mutation where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The mutation ends inside a field.
    #[error("byte {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// Offset of the field.
        offset: u32,
        /// The field.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A table id the schema does not know (Cassandra's system tables, or
    /// a table the schema given to the decoder lacks).
    #[error("byte {offset}: unknown table id {table_id}")]
    UnknownTable {
        /// Offset of the id.
        offset: u32,
        /// The id.
        table_id: Uuid,
    },
    /// A column name the table knows neither as current nor as dropped.
    #[error("byte {offset}: table {keyspace}.{table} has no column {column:?}")]
    UnknownColumn {
        /// Offset of the name.
        offset: u32,
        /// Keyspace.
        keyspace: String,
        /// Table.
        table: String,
        /// The name (lossily decoded).
        column: String,
    },
    /// A field whose value is not allowed there.
    #[error("byte {offset}: invalid {what}: {found:#x}")]
    Invalid {
        /// Offset of the field.
        offset: u32,
        /// The field.
        what: &'static str,
        /// The value found.
        found: u64,
    },
    /// Bytes after the last partition update.
    #[error("byte {offset}: {len} bytes after the last partition update")]
    Trailing {
        /// Offset of the first extra byte.
        offset: u32,
        /// How many.
        len: u32,
    },
}

impl DecodeError {
    /// The offset within the mutation.
    pub fn offset(&self) -> u32 {
        match self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::UnknownTable { offset, .. }
            | DecodeError::UnknownColumn { offset, .. }
            | DecodeError::Invalid { offset, .. }
            | DecodeError::Trailing { offset, .. } => *offset,
        }
    }
}

/// A mutation that could not be decoded: where it is (segment id and
/// commit-log position), the table of the update that failed (when its id
/// was read), and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{loc}: mutation {error}")]
pub struct MutationError {
    /// Segment and position of the entry (the file, when known).
    pub loc: Location,
    /// Id of the table of the update that failed.
    pub table_id: Option<Uuid>,
    /// What went wrong.
    pub error: DecodeError,
}

impl MutationError {
    /// Whether the mutation was skipped because its table is unknown (for
    /// example one of Cassandra's own system tables), rather than damaged.
    pub fn is_unknown_table(&self) -> bool {
        matches!(self.error, DecodeError::UnknownTable { .. })
    }
}
