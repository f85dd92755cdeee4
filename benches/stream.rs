//! The change stream at decode speed: what a sync tool gets per second.
//!
//! Group `stream`, on both benchmark captures (132,120 and 198,212 entries),
//! throughput in bytes of change-format JSON produced:
//! - `{plain,lz4}/decode`: the walk and a full decode of every entry (no
//!   value touched beyond what decoding checks);
//! - `{plain,lz4}/decode+json`: the same, each entry written as a line of
//!   the change format into a reused buffer with the `ChangeWriter`;
//! - `{plain,lz4}/decode+json-serde`: the same through `Serialize` and
//!   `serde_json::to_writer` (the path the writer replaces);
//! - `{plain,lz4}/copy`: the baseline, a plain copy of the same JSON bytes,
//!   line by line, into the same kind of buffer.
//!
//! Group `catch-up`: the same decode and write through `cdc::CatchUp` on
//! 1 and 2 threads (a reader thread walks the segments, decoding threads
//! write batches of lines, the consumer gets them in log order), on both
//! captures; throughput in JSON bytes. `watcher-*`: the `Watcher` over the
//! same backlog, batches written with `Batch::fold_parallel`: `in-turn`
//! without read-ahead on one thread (each batch read by a resumed reader),
//! `ahead-1` and `ahead-2` with finished segments read whole and the next
//! one read ahead on its own thread, batches written on 1 or 2 threads.
//!
//! `cargo bench --bench stream` (needs `../shared/corpus/bench-4.0.0*`).

use std::hint::black_box;

use std::sync::Arc;
use std::time::Duration;

use cassandra_commitlog::cdc::{CatchUp, Event, Job, SchemaSource, Step, WatchOptions, Watcher};
use cassandra_commitlog::mutation::{ChangeWriter, Decoder};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{ReadBuffers, ReadOptions, SegmentName};
#[path = "common/mod.rs"]
mod common;

use common::{corpus, each_entry, segments};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Bytes of JSON written per flush of the output buffer.
const FLUSH: usize = 1 << 16;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    g.sample_size(20);
    for (name, capture) in [("plain", "bench-4.0.0"), ("lz4", "bench-4.0.0-lz4")] {
        let segs = segments(&corpus().join(capture).join("cdc_raw"));
        if segs.is_empty() {
            eprintln!("benchmark captures not found under {}: nothing to measure", corpus().display());
            return;
        }
        let schema = Schema::parse(
            &std::fs::read_to_string(corpus().join(capture).join("schema/schema_internals.cql")).unwrap(),
        )
        .unwrap();
        let (mut decoder, mut writer, mut buffers) = (Decoder::new(), ChangeWriter::new(), ReadBuffers::default());
        // The JSON the stream produces, kept line by line for the copy baseline.
        let mut lines: Vec<Vec<u8>> = Vec::new();
        each_entry(&segs, &mut buffers, |bytes, ctx| {
            let mut line = Vec::new();
            writer.write_line(&mut line, &decoder.decode(bytes, &schema, ctx));
            lines.push(line);
        });
        let json_bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
        eprintln!("{name}: {} entries, {json_bytes} bytes of JSON", lines.len());
        g.throughput(Throughput::Bytes(json_bytes));
        let mut out = Vec::with_capacity(2 * FLUSH);
        g.bench_function(format!("{name}/copy"), |b| {
            b.iter(|| {
                for l in &lines {
                    out.extend_from_slice(l);
                    if out.len() >= FLUSH {
                        black_box(&out);
                        out.clear();
                    }
                }
            })
        });
        g.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| {
                let mut n = 0u64;
                each_entry(&segs, &mut buffers, |bytes, ctx| {
                    n += decoder.decode(bytes, &schema, ctx).is_ok() as u64;
                });
                black_box(n)
            })
        });
        g.bench_function(format!("{name}/decode+json"), |b| {
            b.iter(|| {
                each_entry(&segs, &mut buffers, |bytes, ctx| {
                    writer.write_line(&mut out, &decoder.decode(bytes, &schema, ctx));
                    if out.len() >= FLUSH {
                        black_box(&out);
                        out.clear();
                    }
                });
            })
        });
        g.bench_function(format!("{name}/decode+json-serde"), |b| {
            b.iter(|| {
                each_entry(&segs, &mut buffers, |bytes, ctx| {
                    match decoder.decode(bytes, &schema, ctx) {
                        Ok(m) => serde_json::to_writer(&mut out, &m).unwrap(),
                        Err(u) => serde_json::to_writer(&mut out, &*u).unwrap(),
                    }
                    out.push(b'\n');
                    if out.len() >= FLUSH {
                        black_box(&out);
                        out.clear();
                    }
                });
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("catch-up");
    g.sample_size(10);
    for (name, capture) in [("plain", "bench-4.0.0"), ("lz4", "bench-4.0.0-lz4")] {
        let dir = corpus().join(capture).join("cdc_raw");
        let mut files: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(rd) => {
                rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| SegmentName::from_path(p).is_some()).collect()
            }
            Err(_) => return,
        };
        files.sort();
        let schema = Arc::new(
            Schema::parse(
                &std::fs::read_to_string(corpus().join(capture).join("schema/schema_internals.cql")).unwrap(),
            )
            .unwrap(),
        );
        // Output buffers go back to the workers once consumed (a fresh one a
        // batch costs page faults on every thread).
        let pool = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
        let run = |threads: usize| {
            let jobs = files.iter().map(|f| Job::new(f, ReadOptions::new())).collect();
            let mut bytes = 0u64;
            CatchUp::new(threads)
                .run(
                    jobs,
                    SchemaSource::Fixed(schema.clone()),
                    || (ChangeWriter::new(), Vec::new()),
                    |(w, buf): &mut (ChangeWriter, Vec<u8>), _file, step| {
                        if let Step::Entry { decoded, .. } = step {
                            w.write_line(buf, decoded);
                        }
                    },
                    |(_, buf)| std::mem::replace(buf, pool.lock().unwrap().pop().unwrap_or_default()),
                    |mut chunk: Vec<u8>| {
                        bytes += black_box(&chunk).len() as u64;
                        chunk.clear();
                        pool.lock().unwrap().push(chunk);
                    },
                )
                .unwrap();
            bytes
        };
        g.throughput(Throughput::Bytes(run(1)));
        for threads in [1, 2] {
            g.bench_function(format!("{name}/threads-{threads}"), |b| b.iter(|| run(threads)));
        }
        // The watcher over the same backlog: batches decoded and written on
        // `threads` threads (`Batch::fold_parallel`), the next finished
        // segment read ahead on another thread when `threads` > 1.
        let watch = |threads: usize, read_ahead: bool| {
            let opts = WatchOptions::new(&dir, schema.clone())
                .idle_timeout(Some(Duration::ZERO))
                .use_notify(false)
                .read_ahead(read_ahead);
            let mut watcher = Watcher::new(opts).unwrap();
            let mut bytes = 0u64;
            while let Some(event) = watcher.next_event().unwrap() {
                if let Event::Batch(batch) = event {
                    let chunks = batch.fold_parallel(
                        threads,
                        || (ChangeWriter::new(), Vec::new()),
                        |(w, run), decoded| w.write_line(run, &decoded),
                        |(_, run)| std::mem::take(run),
                    );
                    bytes += chunks.iter().map(|c| black_box(c).len() as u64).sum::<u64>();
                    watcher.ack(batch.to);
                }
            }
            bytes
        };
        g.bench_function(format!("{name}/watcher-in-turn"), |b| b.iter(|| watch(1, false)));
        for threads in [1, 2] {
            g.bench_function(format!("{name}/watcher-ahead-{threads}"), |b| b.iter(|| watch(threads, true)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
