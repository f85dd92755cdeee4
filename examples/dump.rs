//! Decodes commit-log segments and prints one JSON object per entry (the
//! change format of the README), in segment-id then position order.
//!
//! ```text
//! cargo run --release --example dump -- [--schema FILE.cql] [--schema-from-log] [--key ALIAS=HEX]... [--cdc] \
//!     [--threads N] [--format native|debezium] [--cluster NAME] PATH...
//! ```
//!
//! With `--schema-from-log` the schema comes from the log itself: Cassandra's
//! own keyspaces are built in, and every DDL's `system_schema` mutations
//! amend the schema in log order (`--schema` then gives a starting point for
//! logs whose DDL is gone). Schema changes and truncations are printed as
//! lines of their own (`"schema_change"`, `"truncate"`), right after the
//! entry that made them.
//!
//! `--format debezium` prints one line per row change instead,
//! `{"key": PARTITION_KEY, "value": ENVELOPE}`, in the Debezium-compatible
//! envelope (`op` c/u/d, `t` for a truncation; see the README, "Shipping to
//! Kafka"), `--cluster` naming the cluster in `source` (default
//! `cassandra`). Entries that do not decode and schema changes stay lines
//! of the native format.
//!
//! Segments are decoded on `--threads` threads (default: the machine's
//! cores), the output in exactly the order one thread gives.
//!
//! PATH is a segment or a directory of segments. With `--cdc` a directory is
//! a `cdc_raw`, read as a snapshot by the watcher's rules
//! (`cdc::snapshot_limit`): segments without an idx are skipped; a segment
//! whose idx says `COMPLETED` is read to its end, whatever offset it states
//! (a replay after a crash writes the file's physical length); one without
//! `COMPLETED` behind a newer segment's idx (abandoned by a crash) is read
//! to its end too; the newest one without `COMPLETED` only up to its idx
//! offset. Damage found in the segments (lost
//! entries, torn tails) is reported on stderr. Exit status 0 when every
//! segment was read, 1 when one could not be, 2 on bad arguments.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cassandra_commitlog::cdc::{CatchUp, IdxState, Job, SchemaSource, Step, read_cdc_index, snapshot_limit};
use cassandra_commitlog::mutation::ChangeWriter;
use cassandra_commitlog::mutation::debezium::Envelope;
use cassandra_commitlog::schema::{Schema, SchemaEvent};
use cassandra_commitlog::segment::{ReadOptions, SegmentName};

fn usage() -> ExitCode {
    eprintln!(
        "usage: dump [--schema FILE.cql] [--schema-from-log] [--key ALIAS=HEX]... [--cdc] [--threads N] \\
         [--format native|debezium] [--cluster NAME] PATH..."
    );
    ExitCode::from(2)
}

/// What one worker gathers from a segment before handing it over.
#[derive(Default)]
struct Chunk {
    /// Change-format lines.
    out: Vec<u8>,
    /// Reports of damage.
    err: Vec<u8>,
    /// The segment could not be read.
    failed: bool,
}

fn main() -> ExitCode {
    let mut schema_path = None;
    let mut from_log = false;
    let mut opts = ReadOptions::new();
    let mut cdc = false;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut paths = Vec::new();
    let (mut debezium, mut cluster) = (false, "cassandra".to_owned());
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
            "--threads" => match args.next().and_then(|n| n.parse().ok()).filter(|&n: &usize| n > 0) {
                Some(n) => threads = n,
                None => return usage(),
            },
            "--format" => match args.next().as_deref() {
                Some("native") => debezium = false,
                Some("debezium") => debezium = true,
                _ => return usage(),
            },
            "--cluster" => match args.next() {
                Some(c) => cluster = c,
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
        Some(Ok(s)) => Some(Arc::new(s)),
        None => None,
    };
    let source = match (schema, from_log) {
        (bootstrap, true) => SchemaSource::FromLog(bootstrap),
        (Some(s), false) => SchemaSource::Fixed(s),
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
    let mut failed = false;
    let mut jobs = Vec::new();
    // With --cdc: each file's idx, read once.
    let idx_of = |file: &PathBuf| {
        let name = SegmentName::from_path(file).expect("listed by name");
        read_cdc_index(&file.with_file_name(name.cdc_index_file_name()))
    };
    let idxs: Vec<_> = files.iter().map(|(_, f)| if cdc { Some(idx_of(f)) } else { None }).collect();
    for (i, ((id, file), idx)) in files.iter().zip(&idxs).enumerate() {
        let mut file_opts = opts.clone();
        match idx {
            None => {}
            Some(Ok(IdxState::Ready(idx))) => {
                // A newer segment of the same directory has an idx.
                let newer_idx = files.iter().zip(&idxs).skip(i + 1).any(|((newer, f), x)| {
                    newer > id
                        && f.parent() == file.parent()
                        && matches!(x, Some(Ok(IdxState::Ready(_) | IdxState::NotReady)))
                });
                if let Some(limit) = snapshot_limit(idx, newer_idx) {
                    file_opts = file_opts.limit(limit);
                }
            }
            Some(Ok(IdxState::Missing | IdxState::NotReady)) => continue,
            Some(Err(e)) => {
                eprintln!("dump: {e}");
                failed = true;
                continue;
            }
        }
        jobs.push(Job::new(file.clone(), file_opts));
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut write_failed = false;
    // Consumed chunks, emptied, for the workers to fill again.
    let spare = std::sync::Mutex::new(Vec::<Chunk>::new());
    let run = CatchUp::new(threads).run(
        jobs,
        source,
        || (ChangeWriter::new(), Envelope::new(cluster.clone()), Chunk::default()),
        |(writer, envelope, chunk), file, step| match step {
            Step::Entry { decoded, events } => {
                match decoded {
                    Ok(m) if debezium => envelope.write_lines(&mut chunk.out, m),
                    _ => writer.write_line(&mut chunk.out, decoded),
                }
                for event in events {
                    if let (true, SchemaEvent::Truncated(t)) = (debezium, event) {
                        envelope.write_truncation(&mut chunk.out, t);
                        continue;
                    }
                    serde_json::to_writer(&mut chunk.out, event).expect("an event serializes");
                    chunk.out.push(b'\n');
                }
            }
            Step::Loss(loss) => {
                let _ = writeln!(chunk.err, "dump: {}: lost {loss}", file.display());
            }
            Step::Tail(tail) => {
                let _ = writeln!(chunk.err, "dump: {}: {tail}", file.display());
            }
            Step::Unreadable(e) => {
                let _ = writeln!(chunk.err, "dump: {e}");
                chunk.failed = true;
            }
            _ => {}
        },
        |(_, _, chunk)| {
            std::mem::replace(chunk, spare.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default())
        },
        |mut chunk: Chunk| {
            write_failed |= out.write_all(&chunk.out).is_err();
            let _ = std::io::stderr().write_all(&chunk.err);
            failed |= chunk.failed;
            // Back to the workers: a fresh buffer a batch costs page faults.
            chunk.out.clear();
            chunk.err.clear();
            chunk.failed = false;
            spare.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
        },
    );
    if let Err(e) = run {
        eprintln!("dump: {e}");
        return ExitCode::from(1);
    }
    if write_failed || out.flush().is_err() {
        return ExitCode::from(1);
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
