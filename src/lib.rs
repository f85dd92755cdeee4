//! A zero-copy reader of Apache Cassandra commit-log segments (3.0 to 5.0)
//! and of the CDC directories (`cdc_raw`) built from them.
//!
//! Data flows one way, one module per stage:
//!
//! - [`segment`]: file names, descriptors, sync markers, section codecs
//!   (LZ4, Snappy, Deflate, Zstd, Noop, AES/CBC encryption) and entries, each
//!   with its logical position; damage is reported as values, never panics.
//! - [`mutation`]: an entry's bytes decoded into partition updates, rows,
//!   cells, deletions and range tombstones, zero-copy.
//! - [`schema`]: CQL types and tables, found by table id: from the log
//!   itself ([`SchemaTracker`](schema::SchemaTracker) applies every DDL's
//!   `system_schema` mutations in log order), from `DESCRIBE ... WITH
//!   INTERNALS` text, or built in code.
//! - [`value`]: typed CQL values borrowed from the segment, and their JSON.
//! - [`cdc`]: `_cdc.idx` files and the `cdc_raw` [`Watcher`](cdc::Watcher):
//!   only what Cassandra says is durable, resumed from a checkpoint, with
//!   cleanup of acknowledged segments and every loss reported.
//! - [`builder`]: the encoder behind the tests and fixtures, public for yours.
//!
//! The byte-level format this follows is described below (the repository's
//! `README.md`, whose code blocks are compiled and run as doctests) and,
//! with the Cassandra source behind each fact, in the format specification
//! the crate was written against.
//!
//! ---
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod builder;
pub mod cdc;
pub mod location;
pub mod mutation;
pub mod schema;
pub mod segment;
pub mod value;

pub use location::Location;
