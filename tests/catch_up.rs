//! Catching up on several threads gives, byte for byte, what one thread
//! gives: every corpus directory (captures with their schema file and with
//! the schema from the log, legacy sets, benchmark captures) through
//! `CatchUp` on 1, 2 and 3 threads, with batches small enough to be cut
//! everywhere, against a plain sequential loop written here; and a
//! watcher's batch decoded with `map_parallel` against `decode`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cassandra_commitlog::cdc::{CatchUp, Job, SchemaSource, Step};
use cassandra_commitlog::mutation::{ChangeWriter, Context, Decoder};
use cassandra_commitlog::schema::{Release, Schema, SchemaTracker};
use cassandra_commitlog::segment::{Item, ReadOptions, Segment};
use common::{captures, corpus, options_for, segment_files};

/// The sequential reference: every entry decoded in order, its line and
/// then its events' lines; losses and tails as lines of their own.
fn sequential(files: &[PathBuf], opts: &ReadOptions, schema: Option<&Schema>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut decoder = Decoder::new();
    let mut writer = ChangeWriter::new();
    let mut tracker: Option<SchemaTracker> = None;
    for file in files {
        let seg = match Segment::open(file) {
            Ok(s) => s,
            Err(e) => {
                out.extend(format!("unreadable {e}\n").bytes());
                continue;
            }
        };
        let t = tracker.get_or_insert_with(|| {
            SchemaTracker::new(Release::from_descriptor_version(seg.descriptor().version).unwrap())
        });
        let path: Arc<Path> = Arc::from(file.as_path());
        let mut reader = match seg.reader(opts) {
            Ok(r) => r,
            Err(e) => {
                out.extend(format!("unreadable {e}\n").bytes());
                continue;
            }
        };
        while let Some(item) = reader.next().unwrap() {
            match item {
                Item::Entry(e) => {
                    let ctx = Context::of_entry(&e, seg.descriptor(), Some(path.clone()));
                    match schema {
                        Some(s) => writer.write_line(&mut out, &decoder.decode(e.mutation, s, ctx)),
                        None => {
                            let tracked = t.decode(&mut decoder, e.mutation, ctx);
                            writer.write_line(&mut out, &tracked.decoded);
                            for ev in &tracked.events {
                                serde_json::to_writer(&mut out, ev).unwrap();
                                out.push(b'\n');
                            }
                        }
                    }
                }
                Item::Loss(l) => out.extend(format!("loss {l}\n").bytes()),
                Item::Section(_) => {}
            }
        }
        if let Some(tail) = reader.summary().tail.as_ref().filter(|t| t.class_name() != "clean") {
            out.extend(format!("tail {tail}\n").bytes());
        }
    }
    out
}

fn parallel(files: &[PathBuf], opts: &ReadOptions, schema: Option<&Schema>, threads: usize, batch: usize) -> Vec<u8> {
    let jobs = files.iter().map(|f| Job::new(f, opts.clone())).collect();
    let source = match schema {
        Some(s) => SchemaSource::Fixed(Arc::new(s.clone())),
        None => SchemaSource::FromLog(None),
    };
    let mut out = Vec::new();
    CatchUp::new(threads)
        .batch_entries(batch)
        .in_flight(3)
        .run(
            jobs,
            source,
            || (ChangeWriter::new(), Vec::new()),
            |(w, buf): &mut (ChangeWriter, Vec<u8>), _file, step| match step {
                Step::Entry { decoded, events } => {
                    w.write_line(buf, decoded);
                    for ev in events {
                        serde_json::to_writer(&mut *buf, ev).unwrap();
                        buf.push(b'\n');
                    }
                }
                Step::Loss(l) => buf.extend(format!("loss {l}\n").bytes()),
                Step::Tail(t) => buf.extend(format!("tail {t}\n").bytes()),
                Step::Unreadable(e) => buf.extend(format!("unreadable {e}\n").bytes()),
                _ => unreachable!(),
            },
            |(_, buf)| std::mem::take(buf),
            |chunk: Vec<u8>| out.extend(chunk),
        )
        .unwrap();
    out
}

fn check(dir: &Path, opts: &ReadOptions, schema: Option<&Schema>) -> usize {
    let files = segment_files(dir);
    let want = sequential(&files, opts, schema);
    for (threads, batch) in [(1, 1024), (2, 7), (3, 100), (2, 1)] {
        let got = parallel(&files, opts, schema, threads, batch);
        assert!(got == want, "{}: {threads} threads, batches of {batch}: differs", dir.display());
    }
    want.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn catching_up_on_several_threads_gives_what_one_gives_on_every_corpus_directory() {
    let Some(corpus) = corpus() else { return };
    let mut lines = 0;
    for capture in captures() {
        let name = capture.file_name().unwrap().to_str().unwrap();
        let opts = options_for(&corpus, name);
        let schema =
            Schema::parse(&std::fs::read_to_string(capture.join("schema_after_phase2/schema_internals.cql")).unwrap())
                .unwrap();
        for dir in ["cdc_raw_after_shutdown", "cdc_raw_live"] {
            lines += check(&capture.join(dir), &opts, Some(&schema));
            lines += check(&capture.join(dir), &opts, None);
        }
    }
    // Legacy sets (descriptors 6 and 7; 2.x ones are unreadable: a line each).
    for dir in ["legacy/3.0.13-encrypted", "legacy/4.0.11-encrypted", "legacy/2.2-lz4"] {
        lines += check(&corpus.join(dir), &options_for(&corpus, dir), None);
    }
    let bench = corpus.join("bench-4.0.0-lz4");
    let schema = Schema::parse(&std::fs::read_to_string(bench.join("schema/schema_internals.cql")).unwrap()).unwrap();
    lines += check(&bench.join("cdc_raw"), &ReadOptions::new(), Some(&schema));
    assert!(lines > 200_000, "{lines} lines");
}

/// Runs a catch-up of the fixture's segments on a helper thread, so that
/// a hang fails the test instead of stalling it: the outcome, or `None`
/// after 60 s.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).ok()
}

fn fixture_jobs() -> (Vec<Job>, Arc<Schema>) {
    let schema = Schema::parse(&std::fs::read_to_string("testdata/cdc_schema.cql").unwrap()).unwrap();
    let jobs = ["testdata/cdc_raw/CommitLog-7-2000.log", "testdata/cdc_raw/CommitLog-7-2001.log"]
        .map(|p| Job::new(p, ReadOptions::new()))
        .to_vec();
    (jobs, Arc::new(schema))
}

#[test]
fn a_panicking_callback_ends_the_catch_up_with_an_error_on_every_thread_count() {
    // Batches of one entry and a queue of one: the reader finds the queue
    // full and decodes batches itself, so the panic also happens there.
    for threads in [2, 3, 4] {
        for panic_at in [0usize, 1, 3, 8] {
            let outcome = within_a_minute(move || {
                let (jobs, schema) = fixture_jobs();
                let seen = std::sync::atomic::AtomicUsize::new(0);
                CatchUp::new(threads).batch_entries(1).in_flight(1).run(
                    jobs,
                    SchemaSource::Fixed(schema),
                    || (),
                    |_, _, step| {
                        if let Step::Entry { .. } = step
                            && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == panic_at
                        {
                            panic!("the caller's callback fails");
                        }
                    },
                    |_| (),
                    |_| (),
                )
            });
            let outcome = outcome.unwrap_or_else(|| panic!("{threads} threads, panic at {panic_at}: hung"));
            assert!(outcome.is_err(), "{threads} threads, panic at {panic_at}: {outcome:?}");
        }
    }
}

#[test]
fn a_panicking_consumer_panics_the_caller_and_stops_every_thread() {
    for threads in [1, 2, 3] {
        let outcome = within_a_minute(move || {
            std::panic::catch_unwind(move || {
                let (jobs, schema) = fixture_jobs();
                let mut consumed = 0;
                let _ = CatchUp::new(threads).batch_entries(1).in_flight(1).run(
                    jobs,
                    SchemaSource::Fixed(schema),
                    || (),
                    |_, _, _| {},
                    |_| (),
                    |()| {
                        consumed += 1;
                        if consumed == 2 {
                            panic!("the caller's consumer fails");
                        }
                    },
                );
            })
            .is_err()
        });
        assert_eq!(outcome, Some(true), "{threads} threads: hung (None) or did not panic");
    }
}

/// A decoding thread stalled on one batch does not let the others read and
/// decode the backlog ahead of the consumer (whose reorder buffer would
/// hold every output meanwhile): at most `in_flight + threads` batches
/// are handed out past the one it waits for.
#[test]
fn a_stalled_thread_holds_the_reading_back_to_the_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let Some(corpus) = corpus() else { return };
    let capture = corpus.join("cassandra-4.0.0");
    let schema = Arc::new(
        Schema::parse(&std::fs::read_to_string(capture.join("schema_after_phase2/schema_internals.cql")).unwrap())
            .unwrap(),
    );
    let files = segment_files(&capture.join("cdc_raw_after_shutdown"));
    for threads in [2, 3] {
        let (files, schema) = (files.clone(), schema.clone());
        let outcome = within_a_minute(move || {
            let jobs = files.iter().map(|f| Job::new(f, ReadOptions::new())).collect();
            let seg = Segment::open(&files[0]).unwrap();
            let first = seg.reader(&ReadOptions::new()).unwrap().next_entry().unwrap().unwrap().position;
            let (decoded, lead) = (AtomicUsize::new(0), AtomicUsize::new(usize::MAX));
            CatchUp::new(threads)
                .batch_entries(1)
                .in_flight(1)
                .run(
                    jobs,
                    SchemaSource::Fixed(schema),
                    || (),
                    |_, _, step| {
                        if let Step::Entry { decoded: d, .. } = step {
                            decoded.fetch_add(1, SeqCst);
                            let m = match d {
                                Ok(m) => m,
                                Err(u) => &u.partial,
                            };
                            // The thread with the first batch (a worker: the
                            // reader queues it) stalls on the first entry.
                            if m.position() == first {
                                std::thread::sleep(std::time::Duration::from_millis(500));
                            }
                        }
                    },
                    |_| (),
                    // Entries decoded when the first output is consumed.
                    |()| {
                        let _ = lead.compare_exchange(usize::MAX, decoded.load(SeqCst), SeqCst, SeqCst);
                    },
                )
                .unwrap();
            (lead.load(SeqCst), decoded.load(SeqCst))
        });
        let (lead, total) = outcome.unwrap_or_else(|| panic!("{threads} threads: hung"));
        // One-entry batches (plus a few without entries); a queue of one.
        assert!(total > 1000, "the capture has {total} entries");
        assert!(lead <= 1 + threads + 1, "{threads} threads: {lead} entries decoded while the first stalled");
    }
}
