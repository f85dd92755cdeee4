//! Errors of the segment stage.

use std::io;

use crate::location::Location;

use super::reader::{LossKind, Tail};

/// Why a segment could not be read, or (in strict mode) the first damage found.
///
/// Damage in an otherwise readable segment is not an error: the reader
/// reports it as a [`Loss`](super::Loss) or a [`Tail`] and goes on. Only what
/// makes the whole file unreadable, and in [strict mode](super::ReadOptions::strict)
/// the first loss, is returned as an `Error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, inspected or mapped.
    #[error("{loc}: {source}")]
    Io {
        /// Where.
        loc: Location,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file name is not `CommitLog-<version>-<id>.log`.
    #[error("{loc}: not a segment file name (expected CommitLog-<version>-<id>.log)")]
    FileName {
        /// Where.
        loc: Location,
    },
    /// A descriptor version this reader does not read (Cassandra 2.x wrote 3 to 5).
    #[error("{loc}: unsupported descriptor version {found} (this reader reads 6, 7 and 8)")]
    UnsupportedVersion {
        /// Where.
        loc: Location,
        /// The version found in the file name or header.
        found: i32,
    },
    /// The file name and the header disagree on the version.
    #[error("{loc}: the file name says version {name} but the header says {header}")]
    VersionMismatch {
        /// Where.
        loc: Location,
        /// Version in the name.
        name: i32,
        /// Version in the header.
        header: i32,
    },
    /// The file name and the header disagree on the segment id (strict mode only;
    /// otherwise the header's id is used, as Cassandra does).
    #[error("{loc}: the file name says segment id {name} but the header says {header}")]
    IdMismatch {
        /// Where.
        loc: Location,
        /// Id in the name.
        name: i64,
        /// Id in the header.
        header: i64,
    },
    /// The file is shorter than its descriptor.
    #[error("{loc}: header truncated: {needed} bytes needed, {available} present")]
    HeaderTruncated {
        /// Where.
        loc: Location,
        /// Bytes the header needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The descriptor's CRC does not match (format spec §2).
    #[error("{loc}: header CRC mismatch: expected {expected:#010x}, found {found:#010x}")]
    HeaderCrc {
        /// Where.
        loc: Location,
        /// CRC computed over the descriptor.
        expected: u32,
        /// CRC stored in the file.
        found: u32,
    },
    /// The descriptor's parameter JSON is not usable.
    #[error("{loc}: header parameters: {problem}")]
    Params {
        /// Where.
        loc: Location,
        /// What is wrong with them.
        problem: ParamsError,
    },
    /// The segment is encrypted and no key was supplied for its alias.
    #[error("{loc}: encrypted with key alias {alias:?}, but no key was supplied for it")]
    MissingKey {
        /// Where.
        loc: Location,
        /// The alias named in the header.
        alias: String,
    },
    /// The supplied key has a length AES does not accept.
    #[error("{loc}: key for alias {alias:?} is {len} bytes; AES takes 16, 24 or 32")]
    BadKey {
        /// Where.
        loc: Location,
        /// The alias.
        alias: String,
        /// The length supplied.
        len: usize,
    },
    /// Strict mode: the first damaged entry or section.
    #[error("{loc}: {kind}")]
    Corrupt {
        /// Where the damage starts.
        loc: Location,
        /// What was found.
        kind: LossKind,
    },
    /// Strict mode: the segment ends in a torn or corrupt tail.
    #[error("{loc}: {tail}")]
    Tail {
        /// Where.
        loc: Location,
        /// How the segment ended.
        tail: Tail,
    },
}

impl Error {
    /// The location the error refers to.
    pub fn location(&self) -> &Location {
        match self {
            Error::Io { loc, .. }
            | Error::FileName { loc }
            | Error::UnsupportedVersion { loc, .. }
            | Error::VersionMismatch { loc, .. }
            | Error::IdMismatch { loc, .. }
            | Error::HeaderTruncated { loc, .. }
            | Error::HeaderCrc { loc, .. }
            | Error::Params { loc, .. }
            | Error::MissingKey { loc, .. }
            | Error::BadKey { loc, .. }
            | Error::Corrupt { loc, .. }
            | Error::Tail { loc, .. } => loc,
        }
    }

    /// True for operating-system errors (never a sign of corruption).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}

/// What is wrong with a descriptor's parameter JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The parameters are not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The parameters are not JSON.
    #[error("not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON is not an object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// A key has a value of the wrong JSON type.
    #[error("{key:?} should be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// The JSON type expected.
        expected: &'static str,
    },
    /// `compressionClass` names no compressor Cassandra ships for commit logs.
    #[error("unknown compressor class {class:?} (expected LZ4, Snappy, Deflate, Zstd or Noop)")]
    UnknownCompressor {
        /// The class named.
        class: String,
    },
    /// `encCipher` is not AES/CBC/PKCS5Padding.
    #[error("unsupported cipher {cipher:?} (expected AES/CBC/PKCS5Padding)")]
    UnsupportedCipher {
        /// The transformation named.
        cipher: String,
    },
    /// `encIV` is missing, not hex, or not 16 bytes.
    #[error("encIV {iv:?} is not 16 bytes of hex")]
    BadIv {
        /// The text found (empty when absent).
        iv: String,
    },
}
