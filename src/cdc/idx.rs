//! `_cdc.idx` files (format spec §10.2): `<offset>` while a segment is live,
//! `<offset>\nCOMPLETED` once it is finished.
//!
//! Cassandra rewrites the file by truncating it and writing it again (no
//! rename), so a reader can see it empty or half-written. Such a read is "not
//! readable yet", never an error and never offset 0. A torn read can only cut
//! the text short, and a prefix of the digits is a smaller number, so a torn
//! offset can only under-report what is durable: never more.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use crate::location::Location;

/// The most bytes a well-formed idx file can hold (digits of a 64-bit
/// offset, `\r\nCOMPLETED\r\n`), with room to spare.
pub const MAX_IDX_LEN: usize = 64;

/// What a `_cdc.idx` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CdcIndex {
    /// Logical position up to which the segment is durable.
    pub offset: u64,
    /// Whether the segment is finished (`COMPLETED`).
    pub completed: bool,
}

/// The state of an idx file read from disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxState {
    /// No idx file (yet): the segment is not readable.
    Missing,
    /// Empty or cut before the first digit ended: retry later.
    NotReady,
    /// A usable offset.
    Ready(CdcIndex),
}

/// An idx file that is not a prefix of anything Cassandra writes, or that
/// could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdxError {
    /// The file could not be read.
    #[error("{loc}: {source}")]
    Io {
        /// Which file.
        loc: Location,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The text is not `<offset>[\n[COMPLETED]]`.
    #[error("{loc}: malformed _cdc.idx at byte {at}: expected {expected}, found {found:?}")]
    Malformed {
        /// Which file.
        loc: Location,
        /// Byte offset of the first unexpected byte.
        at: usize,
        /// What was expected there.
        expected: &'static str,
        /// Up to 16 bytes found from there, lossily decoded.
        found: String,
    },
}

const COMPLETED: &[u8] = b"COMPLETED";

/// Parses idx text. `Ok(None)` means "not readable yet" (empty).
///
/// Accepts `\n` or `\r\n` line ends and a trailing line end. A prefix of
/// `COMPLETED` (a read racing the writer) gives the offset, not completed.
pub fn parse_cdc_index(text: &[u8], loc: &Location) -> Result<Option<CdcIndex>, IdxError> {
    let malformed = |at: usize, expected: &'static str| IdxError::Malformed {
        loc: loc.clone(),
        at,
        expected,
        found: String::from_utf8_lossy(&text[at.min(text.len())..text.len().min(at + 16)]).into_owned(),
    };
    if text.len() > MAX_IDX_LEN {
        return Err(malformed(MAX_IDX_LEN, "at most 64 bytes"));
    }
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return if text.is_empty() { Ok(None) } else { Err(malformed(0, "a decimal offset")) };
    }
    let mut offset: u64 = 0;
    for &d in &text[..digits] {
        offset = offset
            .checked_mul(10)
            .and_then(|o| o.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| malformed(0, "an offset below 2^64"))?;
    }
    let mut rest = &text[digits..];
    let mut at = digits;
    // Line end after the offset: "\n", "\r\n", or a torn "\r".
    if let Some(r) = rest.strip_prefix(b"\r") {
        rest = r;
        at += 1;
        if rest.is_empty() {
            return Ok(Some(CdcIndex { offset, completed: false }));
        }
    }
    if rest.is_empty() {
        return Ok(Some(CdcIndex { offset, completed: false }));
    }
    let Some(r) = rest.strip_prefix(b"\n") else {
        return Err(malformed(at, "a line end or the end of the file"));
    };
    rest = r;
    at += 1;
    let word = rest.len().min(COMPLETED.len());
    if rest[..word] != COMPLETED[..word] {
        return Err(malformed(at, "COMPLETED"));
    }
    if word < COMPLETED.len() {
        // Nothing, or part of "COMPLETED": written only partly so far.
        return Ok(Some(CdcIndex { offset, completed: false }));
    }
    rest = &rest[word..];
    at += word;
    if matches!(rest, b"" | b"\n" | b"\r\n" | b"\r") {
        Ok(Some(CdcIndex { offset, completed: true }))
    } else {
        Err(malformed(at, "the end of the file after COMPLETED"))
    }
}

/// Reads and parses an idx file.
pub fn read_cdc_index(path: &Path) -> Result<IdxState, IdxError> {
    let loc = || Location::file(Some(Arc::from(path)));
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(IdxState::Missing),
        Err(source) => return Err(IdxError::Io { loc: loc(), source }),
    };
    let mut buf = Vec::with_capacity(MAX_IDX_LEN + 1);
    file.by_ref()
        .take(MAX_IDX_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|source| IdxError::Io { loc: loc(), source })?;
    Ok(match parse_cdc_index(&buf, &loc())? {
        None => IdxState::NotReady,
        Some(idx) => IdxState::Ready(idx),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<CdcIndex>, IdxError> {
        parse_cdc_index(text.as_bytes(), &Location::default())
    }

    fn ready(offset: u64, completed: bool) -> Option<CdcIndex> {
        Some(CdcIndex { offset, completed })
    }

    #[test]
    fn parses_what_cassandra_writes() {
        assert_eq!(parse("37509").unwrap(), ready(37509, false));
        assert_eq!(parse("1047767\nCOMPLETED").unwrap(), ready(1047767, true));
        assert_eq!(parse("1047767\r\nCOMPLETED\r\n").unwrap(), ready(1047767, true));
        assert_eq!(parse("1047767\nCOMPLETED\n").unwrap(), ready(1047767, true));
        assert_eq!(parse("41678\n").unwrap(), ready(41678, false));
    }

    #[test]
    fn empty_and_half_written_are_not_ready_or_partial() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("1047767\nCOMP").unwrap(), ready(1047767, false));
        assert_eq!(parse("1047767\r").unwrap(), ready(1047767, false));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["x", "\n12", "12 ", "12\nDONE", "12\nCOMPLETEDX", "99999999999999999999999", "-1"] {
            assert!(matches!(parse(bad), Err(IdxError::Malformed { .. })), "{bad:?}");
        }
        assert!(parse(&"1".repeat(65)).is_err());
    }
}
