//! The Kafka sink against its ceiling (`--features kafka`).
//!
//! Group `kafka`, on the benchmark captures (`bench-4.0.0`: 132,120 records;
//! `bench-4.0.0-lz4`: 198,212), each iteration shipping the whole capture
//! to a fresh librdkafka mock cluster (3 brokers, a topic per table with 3
//! partitions, replication 3):
//!
//! - `ceiling/<capture>`: the same records, pre-rendered (topics, keys,
//!   values, headers), sent straight through librdkafka with the sink's own
//!   producer settings (idempotent, `acks=all`, `linger.ms=5`), every
//!   delivery report awaited: what the producer alone can do here;
//! - `sink/<capture>`: the sink itself (`kafka_sink`'s pipeline, in
//!   process): reading, decoding, rendering, sending, checkpointing each
//!   batch once its records are acknowledged, with up to 4 batches in
//!   flight (its default);
//! - `sink-in-turn/<capture>`: the same with one batch in flight, each
//!   awaited before the next is read (the sink before stop 22).
//!
//! `cargo bench --features kafka --bench kafka`; the ratio of the two is
//! the sink's share of the ceiling.

#[path = "../src/bin/kafka_sink/metrics.rs"]
#[allow(dead_code)]
mod metrics;
#[path = "../src/bin/kafka_sink/sink.rs"]
#[allow(dead_code)]
mod sink;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::ReadOptions;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

fn config(capture: &str, brokers: String, checkpoint: PathBuf) -> sink::Config {
    let dir = corpus().join(capture).join("cdc_raw");
    let schema = std::fs::read_to_string(corpus().join(capture).join("schema/schema_internals.cql")).unwrap();
    sink::Config {
        brokers,
        dir,
        checkpoint,
        prefix: "bench".into(),
        cluster: "c1".into(),
        schema: Some(Schema::parse(&schema).unwrap()),
        primary: false,
        cleanup: false,
        max_batch: 4096,
        in_flight: 4,
        idle: Some(Duration::ZERO),
        settings: Vec::new(),
        read: ReadOptions::new(),
        abandoned_after: None,
    }
}

/// A fresh mock cluster with every topic of the capture.
fn cluster(topics: &[String]) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(3).unwrap();
    for t in topics {
        mock.create_topic(t, 3, 3).unwrap();
    }
    mock
}

fn kafka(c: &mut Criterion) {
    let mut g = c.benchmark_group("kafka");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let tmp = tempfile::tempdir().unwrap();
    for (capture, name) in [("bench-4.0.0", "plain"), ("bench-4.0.0-lz4", "lz4")] {
        let cfg = config(capture, String::new(), tmp.path().join("unused"));
        let (topics, batches) = sink::prerender(&cfg).unwrap();
        let names = topics.names();
        let records: u64 = batches.iter().map(|b| b.len() as u64).sum();
        g.throughput(Throughput::Elements(records));
        g.bench_function(format!("ceiling/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mock = cluster(&names);
                    let cfg = config(capture, mock.bootstrap_servers(), tmp.path().join("unused"));
                    let start = Instant::now();
                    assert_eq!(sink::ship(&cfg, &topics, &batches).unwrap(), records);
                    total += start.elapsed();
                }
                total
            })
        });
        for (function, in_flight) in [("sink", 4), ("sink-in-turn", 1)] {
            g.bench_function(format!("{function}/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mock = cluster(&names);
                        // A fresh checkpoint: the whole capture each time.
                        let checkpoint = tmp.path().join(format!("cp-{name}"));
                        let _ = std::fs::remove_file(&checkpoint);
                        let cfg = sink::Config { in_flight, ..config(capture, mock.bootstrap_servers(), checkpoint) };
                        let start = Instant::now();
                        let s = sink::run(&cfg, &AtomicBool::new(false), None).unwrap();
                        total += start.elapsed();
                        assert_eq!(s.records, records);
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, kafka);
criterion_main!(benches);
