//! The crate's only `unsafe` code: mapping a segment file into memory.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps `file` read-only.
pub(crate) fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified or
    // truncated while the map is alive, or reads of the changed bytes race
    // with the writer. How this crate keeps to that for a file Cassandra is
    // still writing:
    // - The map is read-only and private to the reader; this crate never
    //   writes through it and never truncates segment files.
    // - Cassandra never truncates a segment: memory-mapped segments are
    //   created at full size and only written inside it; compressed and
    //   encrypted segments only grow by appending, past the length this map
    //   was made with, so appended bytes are simply not in the map.
    // - Below the durable `_cdc.idx` offset a segment's bytes are final: the
    //   writer only touches the marker slot at the durable end and the space
    //   after it. The CDC reader bounds every read of a live segment by that
    //   offset (`ReadOptions::limit`), so it never reads bytes being written.
    // - Reading a live segment without that bound (e.g. the `segments`
    //   example on a commit-log directory) can observe bytes that change
    //   under it; every byte is then still validated (marker and entry CRCs,
    //   bounds checks on every length), so a torn write shows up as a
    //   reported loss or tail, never as an out-of-bounds access.
    // - Deleting (unlinking) the file while mapped is harmless: the pages
    //   stay valid until the map is dropped.
    unsafe { Mmap::map(file) }
}
