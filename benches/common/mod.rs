//! What the benches share: where the corpus is, its segments, their entries.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cassandra_commitlog::mutation::Context;
use cassandra_commitlog::segment::{ReadBuffers, ReadOptions, Segment, SegmentName};

/// `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// The segments of a directory, by id (none if it is missing).
pub fn segments(dir: &Path) -> Vec<Segment> {
    let mut files: Vec<(i64, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| SegmentName::from_path(&p).map(|n| (n.id, p)))
            .collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files.into_iter().map(|(_, p)| Segment::open(p).expect("open benchmark segment")).collect()
}

/// Calls `f` with every entry of the segments and its context, reusing the
/// section buffers.
pub fn each_entry(segs: &[Segment], buffers: &mut ReadBuffers, mut f: impl FnMut(&[u8], Context)) {
    let opts = ReadOptions::new();
    for s in segs {
        let mut r = s.reader_with(&opts, std::mem::take(buffers)).expect("reader");
        while let Some(e) = r.next_entry().expect("tolerant walk") {
            f(e.mutation, Context::of_entry(&e, s.descriptor(), None));
        }
        *buffers = r.into_buffers();
    }
}
