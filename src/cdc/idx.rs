//! `_cdc.idx` files (format spec §10.2): `<offset>` while a segment is live,
//! `<offset>\nCOMPLETED` once it is finished.
//!
//! Cassandra rewrites the file by truncating it and writing it again (no
//! rename), so a reader can see it empty or half-written. Such a read is "not
//! readable yet", never an error and never offset 0. A torn read can only cut
//! the text short, and a prefix of the digits is a smaller number, so a torn
//! offset can only under-report what is durable: never more.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
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

/// How many times an idx file is read before two reads in a row agree.
const IDX_READ_ATTEMPTS: usize = 4;

/// Reads and parses an idx file.
///
/// Cassandra rewrites the file in place (truncate, then write), so one read
/// can see it empty or partial, and a read that takes several system calls
/// can join the start of the old text to the end of the new one (`94010`
/// then `135660` read as `940100`: an offset that was never durable). The
/// file is therefore read whole twice and taken only when both reads agree;
/// after four disagreeing pairs the last read is taken
/// (its prefix-of-the-truth readings are harmless: an offset no greater).
pub fn read_cdc_index(path: &Path) -> Result<IdxState, IdxError> {
    let loc = || Location::file(Some(Arc::from(path)));
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(IdxState::Missing),
        Err(source) => return Err(IdxError::Io { loc: loc(), source }),
    };
    let mut read = |buf: &mut Vec<u8>| -> io::Result<()> {
        buf.clear();
        file.seek(SeekFrom::Start(0))?;
        file.by_ref().take(MAX_IDX_LEN as u64 + 1).read_to_end(buf)?;
        Ok(())
    };
    let (mut buf, mut again) = (Vec::with_capacity(MAX_IDX_LEN + 1), Vec::with_capacity(MAX_IDX_LEN + 1));
    read(&mut buf).map_err(|source| IdxError::Io { loc: loc(), source })?;
    for _ in 0..IDX_READ_ATTEMPTS {
        read(&mut again).map_err(|source| IdxError::Io { loc: loc(), source })?;
        if again == buf {
            break;
        }
        std::mem::swap(&mut buf, &mut again);
    }
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

    /// Regression: a read racing Cassandra's truncate-then-write joined the
    /// old text's start to the new text's end, an offset never written.
    #[test]
    fn a_read_racing_the_rewrite_never_sees_more_than_was_written() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let path = dir.path().join(format!("CommitLog-7-{round}_cdc.idx"));
            std::fs::write(&path, "1").unwrap();
            let written = Arc::new(AtomicU64::new(1));
            let done = Arc::new(AtomicBool::new(false));
            let writer = {
                let (path, written, done) = (path.clone(), written.clone(), done.clone());
                std::thread::spawn(move || {
                    // Offsets that keep gaining digits, each rewrite a longer text.
                    let mut offset = 1u64;
                    while offset < 1 << 60 {
                        offset = offset * 11 / 10 + 1;
                        written.store(offset, Ordering::SeqCst);
                        std::fs::write(&path, offset.to_string()).unwrap();
                    }
                    done.store(true, Ordering::SeqCst);
                })
            };
            while !done.load(Ordering::SeqCst) {
                let state = read_cdc_index(&path).unwrap();
                // The writer stores before it writes: an upper bound after the read.
                let bound = written.load(Ordering::SeqCst);
                if let IdxState::Ready(idx) = state {
                    assert!(idx.offset <= bound, "read {} while at most {bound} was written", idx.offset);
                }
            }
            writer.join().unwrap();
        }
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
