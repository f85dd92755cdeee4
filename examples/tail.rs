//! Follows a `cdc_raw` directory and prints every mutation as soon as
//! Cassandra says it is durable, in the change format of `dump`.
//!
//! ```text
//! cargo run --release --example tail -- [--schema FILE.cql] [--schema-from-log] --checkpoint FILE \
//!     [--cleanup delete|archive:DIR] [--idle-exit SECS] [--key ALIAS=HEX]... \
//!     [--max-batch N] [--poll-ms MS] [--no-notify] [--no-read-ahead] [--abandoned-after SECS|off] CDC_RAW_DIR
//! ```
//!
//! `--abandoned-after` sets the grace period of the abandonment rule
//! (default 10 s; `off` turns it off): a segment a crash left without
//! `COMPLETED` behind a newer segment's idx is read to its end once its idx
//! has not changed for that long, and reported as `{"event": "abandoned"}`.
//!
//! With `--schema-from-log` the schema comes from the log (`--schema` is
//! then a starting point): schema changes and truncations are printed as
//! lines of their own, and the schema at each checkpoint is saved with it.
//! A full batch (a backlog) is decoded on `--threads` threads (default: the
//! machine's cores).
//! `--pause-after-ddl MS` sleeps after checkpointing a batch that changed the
//! schema (so that a crash test can kill it between a DDL and its data).
//!
//! After each batch is printed and flushed, the checkpoint is saved (durably)
//! and the batch acknowledged; finished, acknowledged segments are then
//! cleaned up. Started again with the same checkpoint, it continues after the
//! last saved position. Losses, damage and cleanup failures are reported on
//! stderr as JSON. Exit status 0 after `--idle-exit` seconds without new
//! durable data, 1 on an error, 2 on bad arguments.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cassandra_commitlog::cdc::{ArchiveTo, CheckpointFile, DeleteFiles, Event, WatchOptions, Watcher};
use cassandra_commitlog::mutation::{ChangeWriter, Decoder};
use cassandra_commitlog::schema::{Schema, SchemaEvent};
use cassandra_commitlog::segment::ReadOptions;
use serde_json::json;

fn usage() -> ExitCode {
    eprintln!(
        "usage: tail [--schema FILE.cql] [--schema-from-log] --checkpoint FILE [--cleanup delete|archive:DIR] \
         [--idle-exit SECS] [--key ALIAS=HEX]... [--max-batch N] [--poll-ms MS] [--no-notify] [--no-read-ahead] \
         [--pause-after-ddl MS] [--threads N] [--abandoned-after SECS|off] CDC_RAW_DIR"
    );
    ExitCode::from(2)
}

enum Cleanup {
    None,
    Delete,
    Archive(PathBuf),
}

fn main() -> ExitCode {
    let (mut schema, mut checkpoint, mut dir, mut idle) = (None, None, None, None);
    let mut cleanup = Cleanup::None;
    let mut read = ReadOptions::new();
    let (mut max_batch, mut poll_ms, mut notify, mut from_log) = (1024usize, 100u64, true, false);
    let mut read_ahead = true;
    let mut pause_after_ddl = Duration::ZERO;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut abandoned_after = Some(cassandra_commitlog::cdc::DEFAULT_ABANDONED_AFTER);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next();
        match arg.as_str() {
            "--schema" => schema = value().map(PathBuf::from),
            "--checkpoint" => checkpoint = value().map(PathBuf::from),
            "--idle-exit" => match value().and_then(|v| Duration::try_from_secs_f64(v.parse().ok()?).ok()) {
                Some(d) => idle = Some(d),
                None => return usage(),
            },
            "--cleanup" => match value().as_deref() {
                Some("delete") => cleanup = Cleanup::Delete,
                Some(v) if v.starts_with("archive:") => {
                    cleanup = Cleanup::Archive(PathBuf::from(&v["archive:".len()..]))
                }
                _ => return usage(),
            },
            "--key" => match value().as_deref().and_then(common::parse_key) {
                Some((alias, key)) => read = read.key(alias, key),
                None => return usage(),
            },
            "--max-batch" => match value().and_then(|v| v.parse().ok()) {
                Some(n) => max_batch = n,
                None => return usage(),
            },
            "--poll-ms" => match value().and_then(|v| v.parse().ok()) {
                Some(n) => poll_ms = n,
                None => return usage(),
            },
            "--no-notify" => notify = false,
            "--no-read-ahead" => read_ahead = false,
            "--schema-from-log" => from_log = true,
            "--threads" => match value().and_then(|v| v.parse().ok()).filter(|&n: &usize| n > 0) {
                Some(n) => threads = n,
                None => return usage(),
            },
            "--abandoned-after" => match value().as_deref() {
                Some("off") => abandoned_after = None,
                Some(v) => match v.parse().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                    Some(d) => abandoned_after = Some(d),
                    None => return usage(),
                },
                None => return usage(),
            },
            "--pause-after-ddl" => match value().and_then(|v| v.parse().ok()) {
                Some(ms) => pause_after_ddl = Duration::from_millis(ms),
                None => return usage(),
            },
            a if a.starts_with("--") => return usage(),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let (Some(checkpoint), Some(dir)) = (checkpoint, dir) else { return usage() };
    if schema.is_none() && !from_log {
        return usage();
    }
    let knobs = Knobs { max_batch, poll_ms, notify, read_ahead, pause_after_ddl, threads, abandoned_after };
    match run(schema, from_log, checkpoint, dir, idle, cleanup, read, knobs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tail: {e}");
            ExitCode::from(1)
        }
    }
}

/// How batches are sized and paced.
struct Knobs {
    max_batch: usize,
    poll_ms: u64,
    notify: bool,
    read_ahead: bool,
    pause_after_ddl: Duration,
    /// Threads to decode a full batch on (a backlog).
    threads: usize,
    /// The abandonment rule's grace period.
    abandoned_after: Option<Duration>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    schema_path: Option<PathBuf>,
    from_log: bool,
    checkpoint: PathBuf,
    dir: PathBuf,
    idle: Option<Duration>,
    cleanup: Cleanup,
    read: ReadOptions,
    knobs: Knobs,
) -> Result<(), Box<dyn std::error::Error>> {
    let Knobs { max_batch, poll_ms, notify, read_ahead, pause_after_ddl, threads, abandoned_after } = knobs;
    let schema = match schema_path {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Arc::new(Schema::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?))
        }
        None => None,
    };
    let checkpoints = CheckpointFile::new(checkpoint);
    let opts = match (schema, from_log) {
        (Some(s), false) => WatchOptions::new(dir, s),
        (Some(s), true) => WatchOptions::schema_from_log(dir).bootstrap_schema(s),
        (None, _) => WatchOptions::schema_from_log(dir),
    };
    let mut opts = opts
        .start(checkpoints.load()?)
        .read_options(read)
        .idle_timeout(idle)
        .max_batch(max_batch)
        .poll_interval(Duration::from_millis(poll_ms))
        .use_notify(notify)
        .read_ahead(read_ahead)
        .abandoned_after(abandoned_after);
    opts = match cleanup {
        Cleanup::None => opts,
        Cleanup::Delete => opts.cleanup(DeleteFiles),
        Cleanup::Archive(to) => opts.cleanup(ArchiveTo::new(to)),
    };
    let mut watcher = Watcher::new(opts)?;
    let mut decoder = Decoder::new();
    let (mut writer, mut buf) = (ChangeWriter::new(), Vec::new());
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    while let Some(event) = watcher.next_event()? {
        match event {
            Event::Batch(batch) => {
                buf.clear();
                if batch.len() >= 256 && threads > 1 {
                    // A backlog: the batch is full, decode it on every thread.
                    let runs = batch.fold_parallel(
                        threads,
                        || (ChangeWriter::new(), Vec::new()),
                        |(w, run), decoded| w.write_line(run, &decoded),
                        |(_, run)| std::mem::take(run),
                    );
                    runs.iter().for_each(|r| buf.extend_from_slice(r));
                } else {
                    for i in 0..batch.len() {
                        writer.write_line(&mut buf, &batch.decode(i, &mut decoder));
                    }
                }
                out.write_all(&buf)?;
                for e in &batch.schema_events {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                for loss in &batch.losses {
                    eprintln!(
                        "{}",
                        json!({"event": "loss", "segment_id": loss.segment_id, "start": loss.start, "end": loss.end, "what": loss.kind.to_string()})
                    );
                }
                checkpoints.save(&batch.checkpoint())?;
                watcher.ack(batch.to);
                if batch.schema_events.iter().any(|e| matches!(e, SchemaEvent::Changed(_))) {
                    std::thread::sleep(pause_after_ddl);
                }
            }
            Event::Lost { segment_id, from, to } => {
                eprintln!("{}", json!({"event": "lost", "segment_id": segment_id, "from": from, "to": to}))
            }
            Event::Damaged { segment_id, position, detail } => {
                eprintln!(
                    "{}",
                    json!({"event": "damaged", "segment_id": segment_id, "position": position, "what": format!("{detail:?}")})
                )
            }
            Event::IdxBackwards { segment_id, previous, found } => {
                eprintln!(
                    "{}",
                    json!({"event": "idx_backwards", "segment_id": segment_id, "previous": previous, "found": found})
                )
            }
            Event::IdxMalformed(e) => eprintln!("{}", json!({"event": "idx_malformed", "what": e.to_string()})),
            Event::IdxMismatch { segment_id, idx_offset, end, file_len, cause } => eprintln!(
                "{}",
                json!({"event": "idx_mismatch", "segment_id": segment_id, "idx_offset": idx_offset, "end": end,
                       "file_len": file_len, "cause": format!("{cause:?}")})
            ),
            Event::Abandoned { segment_id, idx_offset, read_to } => eprintln!(
                "{}",
                json!({"event": "abandoned", "segment_id": segment_id, "idx_offset": idx_offset, "read_to": read_to})
            ),
            Event::Cleaned { segment_id } => eprintln!("{}", json!({"event": "cleaned", "segment_id": segment_id})),
            Event::CleanupFailed { segment_id, error } => {
                eprintln!("{}", json!({"event": "cleanup_failed", "segment_id": segment_id, "what": error.to_string()}))
            }
            other => eprintln!("{}", json!({"event": format!("{other:?}")})),
        }
    }
    Ok(())
}
