//! Each write once across replicas.
//!
//! With replication factor 3 every write is logged by three nodes, and a
//! sink per node ships three copies of it (and a sink restarted between a
//! delivery and its checkpoint ships some records again). Every copy of a
//! change carries the same [`Digest`] of its partition update and the same
//! index of the change within it (see "Replicas and the digest" in the
//! README): [`Dedup`] remembers the pairs it has passed and says which
//! record is the first copy.

use std::collections::{HashSet, VecDeque};

use super::Digest;

/// What a [`Dedup`] remembers per pair, in bytes (the set's slot, the
/// queue's, and the set's spare capacity), as a guide to its memory.
pub const BYTES_PER_PAIR: usize = 64;

/// Remembers the last `capacity` distinct (`digest`, `change`) pairs it
/// was shown, first in, first out: memory is bounded by the capacity
/// (about [`BYTES_PER_PAIR`] bytes a pair), whatever the stream.
///
/// The window is a count of distinct changes, not a time: a copy is
/// recognised as long as fewer than `capacity` other changes came first
/// since its original. Replicas' sinks ship the same writes at about the
/// same time, so a window of a few minutes of the cluster's write rate
/// (a million pairs, 64 MB, holds ten minutes at 1,600 writes a second)
/// catches every copy but those of a sink that lagged longer; such a copy
/// is passed as new (a repeat, never a loss).
///
/// ```
/// use cassandra_commitlog::mutation::{Dedup, Digest};
///
/// let mut seen = Dedup::new(2);
/// let (a, b, c) = (Digest([1; 16]), Digest([2; 16]), Digest([3; 16]));
/// assert!(seen.first(a, 0)); // a write, from the first replica
/// assert!(seen.first(a, 1)); // another change of the same update
/// assert!(!seen.first(a, 0)); // the same write from another replica
/// assert!(seen.first(b, 0));
/// assert!(seen.first(c, 0)); // the window holds two: (a, 0) is forgotten
/// assert!(seen.first(a, 0));
/// ```
#[derive(Clone, Debug)]
pub struct Dedup {
    capacity: usize,
    seen: HashSet<(Digest, u32)>,
    order: VecDeque<(Digest, u32)>,
}

impl Dedup {
    /// A window of `capacity` pairs (at least one).
    pub fn new(capacity: usize) -> Dedup {
        let capacity = capacity.max(1);
        Dedup { capacity, seen: HashSet::new(), order: VecDeque::new() }
    }

    /// Whether this is the first copy of the change within the window; if
    /// so, it is remembered (forgetting the oldest pair when full).
    pub fn first(&mut self, digest: Digest, change: u32) -> bool {
        let pair = (digest, change);
        if !self.seen.insert(pair) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(pair);
        true
    }

    /// Whether the change is in the window, without remembering it.
    pub fn contains(&self, digest: Digest, change: u32) -> bool {
        self.seen.contains(&(digest, change))
    }

    /// Pairs remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most pairs remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
