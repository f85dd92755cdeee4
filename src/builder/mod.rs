//! An encoder for what this crate reads: segments (headers, markers,
//! sections of every kind, entries with their CRCs), mutations (updates,
//! rows, cells, deletions, markers) and values.
//!
//! It exists so that tests, fixtures (`testdata/`) and fuzz seeds are made by
//! code, and it is public so that users can make fixtures for their own
//! pipelines. It is checked against Cassandra: re-encoding the entries of
//! real plain segments gives Cassandra's bytes exactly (`tests/builder.rs`),
//! and so does re-encoding every decoded corpus mutation
//! (`tests/builder_mutations.rs`).
//!
//! # Panics
//!
//! The builder trusts its caller, as slice indexing does: a spec that
//! contradicts its table (a column the table lacks, complex cells for a
//! simple column, a value that does not fit its type), an AES key that is
//! not 16, 24 or 32 bytes, or header parameters over 65535 bytes panic.
//! Only the encoder does this; nothing that reads bytes panics.

mod mutation;
mod schema;
mod segment;
mod value;

pub use mutation::{
    CellKind, CellSpec, ColumnSpec, MarkerSpec, RowSpec, Unfiltered, UpdateSpec, column_order, composite_key,
    encode_mutation,
};
pub use schema::DdlWriter;
pub use segment::{
    BuildFormat, BuiltEntry, BuiltSection, DEFAULT_CHUNK_LEN, SegmentBuilder, compress, encrypt, entry, header, marker,
    params_json,
};
pub use value::{Val, varint_bytes};
