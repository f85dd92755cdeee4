//! An encoder for what this crate reads: segments (headers, markers,
//! sections of every kind, entries with their CRCs).
//!
//! It exists so that tests, fixtures (`testdata/`) and fuzz seeds are made by
//! code, and it is public so that users can make fixtures for their own
//! pipelines. It is checked against Cassandra: re-encoding the entries of a
//! real plain segment gives Cassandra's bytes exactly (`tests/builder.rs`).

mod segment;

pub use segment::{
    BuildFormat, BuiltEntry, BuiltSection, DEFAULT_CHUNK_LEN, SegmentBuilder, compress, encrypt, entry, header, marker,
    params_json,
};
