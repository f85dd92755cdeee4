//! A digest of a partition update's logged content, the same on every
//! replica that logged the same write.
//!
//! With replication factor 3 every write reaches the `cdc_raw` of three
//! nodes. Each replica deserializes the mutation it received and writes it
//! to its own commit log again (`Mutation.serializer` at its messaging
//! version). The partition update's bytes are then the same on every
//! replica: the header names its columns and keeps the sender's encoding
//! stats (the bases of the delta-encoded timestamps, deletion times and
//! TTLs), and 3.0, 4.x and 5.0 write the same update content with the same
//! bytes, with one exception: a LIVE deletion time (`markedForDeleteAt ==
//! i64::MIN`, "no deletion", written for each complex column without one in
//! a row where another has one) has local deletion time `0x7FFFFFFF` from
//! 3.x/4.x and `0xFFFFFFFF` from 5.0 (format spec §8.4).
//!
//! So the digest takes two forms, chosen by the content alone (the same
//! choice on every replica):
//!
//! - **no LIVE deletion time written** (almost every update): XXH3-128 over
//!   the update's bytes as logged, table id to end of partition;
//! - **a LIVE deletion time written**: XXH3-128 with seed 1 (so the two
//!   forms never hash the same input) over a canonical form of the
//!   decoded content: table id; partition key; partition deletion; then
//!   each row in logged order (static first): clustering values,
//!   primary-key liveness, row deletion, and each column by name with its
//!   complex deletion and cells (tombstone and expiry flags, timestamp,
//!   local deletion time, TTL, path, value); then each range tombstone
//!   (bounds, inclusiveness, deletion). Every field is fixed-width
//!   big-endian or length-prefixed, every optional one tagged, so two
//!   different updates cannot give the same input.
//!
//! The first form is the cheap one (one hash over bytes the decoder has
//! just read, no copy); the second costs about as much as the decode
//! itself. XXH3 (`twox-hash`, AVX2 when the CPU has it) is fast, not
//! cryptographic: a digest tells copies apart, it does not authenticate
//! them.
//!
//! Never part of it: the segment id, the position, the section codec,
//! encryption, the schema's view of the data (a cell's `dropped` flag).
//!
//! **Counters.** A counter write is applied first on a leader replica
//! (`CounterMutation.applyCounterMutation`), which reads its current shard,
//! writes a global shard `(its counter id, clock, new count)` in place of the
//! client's delta, logs that mutation and sends the same result to the
//! other replicas, which log it as received. So the copies of one increment
//! share a digest; two increments of the same delta are different writes
//! (another clock, another count) and differ.

use std::fmt;

use twox_hash::XxHash3_128;

use super::decode::{CELL_IS_DELETED, CELL_IS_EXPIRING, DeletionTime};
use super::view::{Bound, PartitionUpdate};

/// The 128-bit content digest of a partition update
/// ([`PartitionUpdate::digest`]); displays as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    /// The 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The digest its 32 hex digits name (either case); `None` for
    /// anything else.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let text = text.as_bytes();
        if text.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (b, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *b = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(Digest(out))
    }

    /// The 32 lowercase hex digits, without allocating (ASCII: a `str`
    /// with `std::str::from_utf8`).
    pub fn hex(&self) -> [u8; 32] {
        let mut text = [0u8; 32];
        for (pair, b) in text.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&crate::value::write::HEX_PAIRS[b as usize]);
        }
        text
    }

    /// Appends the 32 lowercase hex digits to `out`.
    pub(crate) fn write_hex(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hex());
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Writes the canonical form into a buffer (reused by each thread), hashed
/// in one call at the end: one-shot XXH3 over a contiguous buffer is several
/// times faster than feeding a streaming hasher field by field.
struct Canon<'b> {
    buf: &'b mut Vec<u8>,
}

impl Canon<'_> {
    #[inline]
    fn small(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    #[inline]
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    #[inline]
    fn u32(&mut self, v: u32) {
        self.small(&v.to_be_bytes());
    }

    #[inline]
    fn i64(&mut self, v: i64) {
        self.small(&v.to_be_bytes());
    }

    /// A length-prefixed byte string.
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.small(b);
    }

    fn deletion(&mut self, d: Option<DeletionTime>) {
        match d {
            None => self.u8(0),
            Some(d) => {
                self.u8(1);
                self.i64(d.timestamp);
                self.i64(d.local_deletion_time);
            }
        }
    }

    fn values<'a>(&mut self, values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) {
        self.u32(values.len() as u32);
        for v in values {
            match v {
                None => self.u8(0),
                Some(v) => {
                    self.u8(1);
                    self.bytes(v);
                }
            }
        }
    }

    fn bound(&mut self, b: &Bound<'_>) {
        self.values(b.clustering_bytes());
        self.u8(b.inclusive() as u8);
    }
}

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The seed of the canonical form's hash (the logged bytes' is 0).
const CANONICAL_SEED: u64 = 1;

pub(crate) fn digest(u: &PartitionUpdate<'_>) -> Digest {
    let (bytes, live_written) = u.serialized();
    if !live_written {
        return Digest(XxHash3_128::oneshot(bytes).to_be_bytes());
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => digest_into(u, &mut buf),
        // Not reachable (nothing below calls back into a digest), but a
        // fresh buffer is the safe answer.
        Err(_) => digest_into(u, &mut Vec::new()),
    })
}

fn digest_into(u: &PartitionUpdate<'_>, buf: &mut Vec<u8>) -> Digest {
    buf.clear();
    let mut c = Canon { buf };
    c.small(u.table_id().as_bytes());
    c.bytes(u.partition_key_bytes());
    c.deletion(u.partition_deletion());
    let rows = u.all_rows();
    c.u32(rows.len() as u32);
    for r in rows {
        c.u8(r.is_static() as u8);
        c.values(r.clustering_bytes());
        match r.liveness() {
            None => c.u8(0),
            Some(l) => {
                c.u8(1);
                c.i64(l.timestamp);
                match l.expiry {
                    None => c.u8(0),
                    Some((ttl, at)) => {
                        c.u8(1);
                        c.u32(ttl as u32);
                        c.i64(at);
                    }
                }
            }
        }
        match r.deletion() {
            None => c.u8(0),
            Some(d) => {
                c.u8(1 + d.shadowable as u8);
                c.i64(d.time.timestamp);
                c.i64(d.time.local_deletion_time);
            }
        }
        let cols = r.columns();
        c.u32(cols.len() as u32);
        for col in cols {
            c.bytes(col.name().as_bytes());
            c.u8(col.is_complex() as u8);
            if col.is_complex() {
                c.deletion(col.complex_deletion());
            }
            let cells = col.cells();
            c.u32(cells.len() as u32);
            for cell in cells {
                let rec = cell.rec();
                let deleted = rec.flags & CELL_IS_DELETED != 0;
                let expiring = rec.flags & CELL_IS_EXPIRING != 0 && !deleted;
                c.u8(deleted as u8 | (expiring as u8) << 1);
                c.i64(rec.timestamp);
                if deleted || expiring {
                    c.i64(rec.ldt);
                }
                if expiring {
                    c.u32(rec.ttl as u32);
                }
                if let Some(p) = cell.path_bytes() {
                    c.bytes(p);
                }
                c.bytes(cell.value_bytes());
            }
        }
    }
    let rts = u.range_tombstones();
    c.u32(rts.len() as u32);
    for rt in rts {
        c.bound(&rt.start());
        c.bound(&rt.end());
        c.deletion(rt.deletion());
    }
    let d = Digest(XxHash3_128::oneshot_with_seed(CANONICAL_SEED, c.buf).to_be_bytes());
    // A huge update leaves no huge buffer behind.
    if buf.capacity() > 1 << 20 {
        *buf = Vec::new();
    }
    d
}
