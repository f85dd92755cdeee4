//! A test helper that writes a `cdc_raw` directory the way Cassandra 4.0+
//! does, from real corpus segments:
//!
//! - a new segment's `.log` appears at creation (memory-mapped segments at
//!   full size, zero-filled, with their header), before the previous segment
//!   is finished;
//! - each section is written ahead of the idx: its entries (or payload)
//!   first, then the 8 bytes after it zeroed, then its sync marker;
//! - `<segment>_cdc.idx` is then rewritten by truncate-then-write (no
//!   rename) with the section's logical end, and `COMPLETED` at the end;
//! - before each real section, a decoy is written where it will go: a valid
//!   marker and valid entries of a mutation that never happened, which the
//!   real section then overwrites. A reader that reads past the durable
//!   offset emits it.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cassandra_commitlog::builder;
use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::segment::{Keys, ReadOptions, SectionFormat, Segment, SegmentName};

/// The text every decoy mutation carries.
pub const DECOY: &str = "DECOY-never-durable";

/// One section of a source segment.
struct SourceSection {
    file_offset: usize,
    file_end: usize,
    logical_end: u64,
}

pub struct CassandraWriter {
    pub dst: PathBuf,
    /// Pause after each write and each idx update.
    pub pace: Duration,
    /// A serialized mutation to put in decoy sections.
    pub decoy_mutation: Vec<u8>,
    pub keys: Keys,
}

fn sections(bytes: &[u8], opts: &ReadOptions) -> Vec<SourceSection> {
    let seg = Segment::from_data(bytes).unwrap();
    let mut r = seg.reader(opts).unwrap();
    let mut out = Vec::new();
    while let Some(item) = r.next().unwrap() {
        if let cassandra_commitlog::segment::Item::Section(s) = item {
            out.push(SourceSection {
                file_offset: s.file_offset as usize,
                file_end: s.file_end as usize,
                logical_end: s.end,
            });
        }
    }
    out
}

fn write_idx(path: &Path, text: &str) {
    // Truncate, then write: a reader can see the file empty or partial.
    std::fs::write(path, text).unwrap();
}

impl CassandraWriter {
    /// The bytes of a decoy section at `offset` in a segment of this header.
    fn decoy(&self, seg: &Segment<&[u8]>, offset: usize) -> Vec<u8> {
        let mut entries = Vec::new();
        for _ in 0..3 {
            builder::entry(&self.decoy_mutation, &mut entries);
        }
        let d = seg.descriptor();
        let body = match &d.format {
            SectionFormat::Plain => entries,
            SectionFormat::Compressed { codec, .. } => {
                let mut b = (entries.len() as u32).to_be_bytes().to_vec();
                b.extend(builder::compress(*codec, &entries));
                b
            }
            SectionFormat::Encrypted(e) => {
                let key = self.keys.get(&e.key_alias).expect("key for the decoy");
                let mut b = (entries.len() as u32).to_be_bytes().to_vec();
                b.extend(builder::encrypt(key, &e.iv, &entries, 65536));
                b
            }
        };
        let next = offset + 8 + body.len();
        let mut out = builder::marker(d.id, offset as u32, next as u32).to_vec();
        out.extend(body);
        out
    }

    /// Creates a segment's file as Cassandra does at segment creation.
    fn create(&self, name: SegmentName, src: &[u8]) -> File {
        let path = self.dst.join(name.file_name());
        let f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        let seg = Segment::from_data(src).unwrap();
        let header = &src[..seg.descriptor().header_len];
        if seg.descriptor().format == SectionFormat::Plain {
            f.set_len(src.len() as u64).unwrap();
        }
        f.write_at(header, 0).unwrap();
        f
    }

    /// Replays every source segment, in segment-id order, into `dst`.
    pub fn replay(&self, sources: &[PathBuf]) {
        let opts = ReadOptions::new().keys(self.keys.clone());
        let mut open: Vec<(SegmentName, Vec<u8>, File)> = Vec::new();
        for (i, src_path) in sources.iter().enumerate() {
            let name = SegmentName::from_path(src_path).unwrap();
            let src = std::fs::read(src_path).unwrap();
            let idx = read_cdc_index(&src_path.with_file_name(name.cdc_index_file_name())).unwrap();
            let file = match open.iter().position(|(n, ..)| *n == name) {
                Some(k) => open.remove(k).2,
                None => self.create(name, &src),
            };
            let IdxState::Ready(final_idx) = idx else {
                // A preallocated segment that never received CDC data.
                drop(file);
                continue;
            };
            let seg = Segment::from_data(&src[..]).unwrap();
            let plain = seg.descriptor().format == SectionFormat::Plain;
            let idx_path = self.dst.join(name.cdc_index_file_name());
            for (k, s) in sections(&src, &opts).iter().enumerate() {
                // Cassandra creates (and links) the next segment before this one ends.
                if k == 1
                    && let Some(next) = sources.get(i + 1)
                {
                    let next_name = SegmentName::from_path(next).unwrap();
                    let next_src = std::fs::read(next).unwrap();
                    open.push((next_name, next_src.clone(), self.create(next_name, &next_src)));
                }
                let decoy = self.decoy(&seg, s.file_offset);
                if !plain || s.file_offset + decoy.len() + 8 <= src.len() {
                    file.write_at(&decoy, s.file_offset as u64).unwrap();
                }
                std::thread::sleep(self.pace);
                // The section: content, the next marker slot zeroed, then its marker.
                file.write_at(&src[s.file_offset + 8..s.file_end], (s.file_offset + 8) as u64).unwrap();
                if plain && s.file_end + 8 <= src.len() {
                    file.write_at(&[0u8; 8], s.file_end as u64).unwrap();
                }
                file.write_at(&src[s.file_offset..s.file_offset + 8], s.file_offset as u64).unwrap();
                if !plain && decoy.len() > s.file_end - s.file_offset {
                    // Cassandra appends compressed and encrypted sections:
                    // nothing lies past the last one written.
                    file.set_len(s.file_end as u64).unwrap();
                }
                file.sync_data().unwrap();
                write_idx(&idx_path, &s.logical_end.to_string());
                std::thread::sleep(self.pace);
            }
            if final_idx.completed {
                write_idx(&idx_path, &format!("{}\nCOMPLETED", final_idx.offset));
            }
        }
    }
}
