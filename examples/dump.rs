//! Decodes commit-log segments and prints one JSON object per entry (the
//! change format of the README), in segment-id then position order.
//!
//! ```text
//! cargo run --release --example dump -- [--schema FILE.cql] [--schema-from-log] [--key ALIAS=HEX]... [--cdc] PATH...
//! ```
//!
//! With `--schema-from-log` the schema comes from the log itself: Cassandra's
//! own keyspaces are built in, and every DDL's `system_schema` mutations
//! amend the schema in log order (`--schema` then gives a starting point for
//! logs whose DDL is gone). Schema changes and truncations are printed as
//! lines of their own (`"schema_change"`, `"truncate"`), right after the
//! entry that made them.
//!
//! PATH is a segment or a directory of segments. With `--cdc` a directory is
//! a `cdc_raw`: each segment is read only up to its `_cdc.idx` offset, and
//! segments without one are skipped. Damage found in the segments (lost
//! entries, torn tails) is reported on stderr. Exit status 0 when every
//! segment was read, 1 when one could not be, 2 on bad arguments.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::mutation::{ChangeWriter, Context, Decoder};
use cassandra_commitlog::schema::{Release, Schema, SchemaTracker};
use cassandra_commitlog::segment::{Item, ReadBuffers, ReadOptions, Segment, SegmentName, TailClass};

fn usage() -> ExitCode {
    eprintln!("usage: dump [--schema FILE.cql] [--schema-from-log] [--key ALIAS=HEX]... [--cdc] PATH...");
    ExitCode::from(2)
}

/// Where the schema comes from.
enum Schemas {
    /// A schema file, fixed.
    Fixed(Schema),
    /// The log, from an optional starting schema; the tracker is made at the
    /// first segment, whose descriptor says which release wrote it.
    Log { bootstrap: Option<Schema>, tracker: Option<Box<SchemaTracker>> },
}

fn main() -> ExitCode {
    let mut schema_path = None;
    let mut from_log = false;
    let mut opts = ReadOptions::new();
    let mut cdc = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--schema" => match args.next() {
                Some(p) => schema_path = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "--key" => match args.next().as_deref().and_then(common::parse_key) {
                Some((alias, key)) => opts = opts.key(alias, key),
                None => return usage(),
            },
            "--cdc" => cdc = true,
            "--schema-from-log" => from_log = true,
            a if a.starts_with("--") => return usage(),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if paths.is_empty() || (schema_path.is_none() && !from_log) {
        return usage();
    }
    let schema = match schema_path.map(|p| {
        std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|t| Schema::parse(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", p.display()))
    }) {
        Some(Err(e)) => {
            eprintln!("dump: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let mut schemas = match (schema, from_log) {
        (bootstrap, true) => Schemas::Log { bootstrap, tracker: None },
        (Some(s), false) => Schemas::Fixed(s),
        (None, false) => return usage(),
    };
    let mut files = match common::segment_files(&paths) {
        Ok(f) => f,
        Err((path, e)) => {
            eprintln!("dump: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    files.sort_by_key(|(id, _)| *id);
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut failed = false;
    let mut decoder = Decoder::new();
    let mut buffers = ReadBuffers::default();
    for (_, file) in files {
        let mut file_opts = opts.clone();
        if cdc {
            let name = SegmentName::from_path(&file).expect("listed by name");
            match read_cdc_index(&file.with_file_name(name.cdc_index_file_name())) {
                Ok(IdxState::Ready(idx)) => file_opts = file_opts.limit(idx.offset),
                Ok(IdxState::Missing | IdxState::NotReady) => continue,
                Err(e) => {
                    eprintln!("dump: {e}");
                    failed = true;
                    continue;
                }
            }
        }
        if let Err(e) = dump_segment(&file, &file_opts, &mut schemas, &mut decoder, &mut buffers, &mut out) {
            eprintln!("dump: {e}");
            failed = true;
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn dump_segment(
    file: &Path,
    opts: &ReadOptions,
    schemas: &mut Schemas,
    decoder: &mut Decoder,
    buffers: &mut ReadBuffers,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let segment = Segment::open(file)?;
    let path: Arc<Path> = Arc::from(file);
    if let Schemas::Log { bootstrap, tracker: tracker @ None } = schemas {
        let version = segment.descriptor().version;
        let release = Release::from_descriptor_version(version).ok_or("no release writes this descriptor version")?;
        *tracker = Some(Box::new(match bootstrap {
            Some(b) => SchemaTracker::with_bootstrap(release, b),
            None => SchemaTracker::new(release),
        }));
    }
    let mut reader = segment.reader_with(opts, std::mem::take(buffers))?;
    let mut writer = ChangeWriter::new();
    let mut buf = Vec::with_capacity(1 << 17);
    while let Some(item) = reader.next()? {
        match item {
            Item::Entry(entry) => {
                let ctx = Context::of_entry(&entry, segment.descriptor(), Some(path.clone()));
                match schemas {
                    Schemas::Fixed(schema) => writer.write_line(&mut buf, &decoder.decode(entry.mutation, schema, ctx)),
                    Schemas::Log { tracker, .. } => {
                        let tracker = tracker.as_mut().expect("made above");
                        let tracked = tracker.decode(decoder, entry.mutation, ctx);
                        writer.write_line(&mut buf, &tracked.decoded);
                        for event in &tracked.events {
                            serde_json::to_writer(&mut buf, event)?;
                            buf.push(b'\n');
                        }
                    }
                }
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
            }
            Item::Loss(loss) => eprintln!("dump: {}: lost {loss}", file.display()),
            Item::Section(_) => {}
        }
    }
    out.write_all(&buf)?;
    if let Some(tail) = reader.summary().tail.filter(|t| t.class() != TailClass::Clean) {
        eprintln!("dump: {}: {tail}", file.display());
    }
    *buffers = reader.into_buffers();
    Ok(())
}
