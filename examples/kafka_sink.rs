//! Ships a `cdc_raw` directory to Kafka, one topic per table, in the
//! Debezium-compatible envelope, checkpointing only what the brokers have
//! acknowledged.
//!
//! ```text
//! cargo run --release --features kafka --example kafka_sink -- \
//!     --brokers HOST:PORT CDC_RAW_DIR CHECKPOINT_FILE [--topic-prefix P] [--cluster NAME] \
//!     [--schema FILE.cql] [--key partition|primary] [--cleanup] [--max-batch N] [--idle-exit SECS] \
//!     [--set KEY=VALUE]...
//! ```
//!
//! - Follows `CDC_RAW_DIR` with the [`Watcher`], the schema taken from the
//!   log (and saved with the checkpoint), from `CHECKPOINT_FILE` on;
//!   `--schema` gives a starting point for logs whose DDL is gone (a
//!   `DESCRIBE ... WITH INTERNALS` file).
//! - Every change of a non-system table becomes one record on topic
//!   `<P>.<keyspace>.<table>` (`P` defaults to `cassandra`): key = the
//!   partition key as JSON (so one partition's changes keep their order),
//!   value = the envelope (README, "Shipping to Kafka"), headers `digest`
//!   (the same on every replica: see `PartitionUpdate::digest`), `change`
//!   (the record's index within its partition update: `digest` + `change`
//!   identify a record across replicas and re-sends), `segment_id`,
//!   `position`. A `TRUNCATE` is a record with op `t` and no key.
//!   `--key primary` keys row records by the row's whole primary key
//!   instead (Debezium's relational convention, what JDBC-style sinks
//!   expect): the rows of one partition may then land on different Kafka
//!   partitions, and their relative order (a partition deletion then a new
//!   row, say) is no longer kept.
//! - The producer is idempotent (`enable.idempotence`, `acks=all`). After
//!   each batch of entries it waits until the brokers have acknowledged
//!   every record of the batch; only then does it save the checkpoint and
//!   acknowledge the batch to the watcher. A record that fails (a broker
//!   down longer than `message.timeout.ms`, a non-retriable error) makes it
//!   send the whole batch again after a pause, for as long as it takes:
//!   nothing is checkpointed, and no segment cleaned up, past an
//!   undelivered record. A record the producer refuses outright (larger
//!   than `message.max.bytes`, say) stops the sink with an error instead,
//!   its batch not checkpointed.
//! - `--cleanup` deletes a segment and its `_cdc.idx` once it is
//!   `COMPLETED` and every record of it delivered (the watcher's cleanup
//!   hook; without it, files are kept).
//! - `--set` passes librdkafka producer settings (`--set linger.ms=20`).
//! - `--idle-exit SECS` stops after that long without new data (for tests
//!   and one-shot catch-up); without it the sink follows the directory.
//!
//! Delivery is at least once: after a crash between a delivery and the
//! checkpoint after it, the restarted sink sends that batch's records
//! again (never anything before the saved checkpoint). A consumer drops
//! such copies, and the copies other replicas' sinks send of the same write,
//! by the (`digest`, `change`) headers.
//!
//! On exit it prints to stderr: records, batches, attempts that failed,
//! seconds in all and spent on batches (decoding, sending, waiting for the
//! brokers, checkpointing), and records per second of the latter.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cassandra_commitlog::cdc::{CheckpointFile, DeleteFiles, Event, WatchOptions, Watcher};
use cassandra_commitlog::mutation::Decoder;
use cassandra_commitlog::mutation::debezium::{Envelope, Record};
use cassandra_commitlog::schema::{SYSTEM_KEYSPACES, Schema, SchemaEvent};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

/// Counts the brokers' answers.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err((e, _)) => {
                eprintln!("kafka_sink: delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

/// One record to send (kept until the batch is delivered: a failed batch
/// is sent again).
struct Out {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    digest: String,
    change: u32,
    segment_id: i64,
    position: u64,
}

struct Args {
    brokers: String,
    dir: PathBuf,
    checkpoint: PathBuf,
    prefix: String,
    cluster: String,
    schema: Option<PathBuf>,
    primary: bool,
    cleanup: bool,
    max_batch: Option<usize>,
    idle: Option<Duration>,
    settings: Vec<(String, String)>,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let usage = "usage: kafka_sink --brokers HOST:PORT CDC_RAW_DIR CHECKPOINT_FILE [--topic-prefix P] \
                 [--cluster NAME] [--schema FILE.cql] [--key partition|primary] [--cleanup] [--max-batch N] [--idle-exit SECS] [--set KEY=VALUE]...";
    let (mut brokers, mut prefix, mut cluster) = (None, "cassandra".to_owned(), "cassandra".to_owned());
    let (mut schema, mut primary) = (None, false);
    let (mut cleanup, mut max_batch, mut idle, mut settings, mut paths) = (false, None, None, Vec::new(), Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(usage);
        match a.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic-prefix" => prefix = value()?,
            "--cluster" => cluster = value()?,
            "--schema" => schema = Some(PathBuf::from(value()?)),
            "--key" => {
                primary = match value()?.as_str() {
                    "partition" => false,
                    "primary" => true,
                    _ => return Err(usage.into()),
                }
            }
            "--cleanup" => cleanup = true,
            "--max-batch" => max_batch = Some(value()?.parse()?),
            "--idle-exit" => idle = Some(Duration::from_secs_f64(value()?.parse()?)),
            "--set" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').ok_or(usage)?;
                settings.push((k.to_owned(), v.to_owned()));
            }
            s if s.starts_with("--") => return Err(usage.into()),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let [dir, checkpoint] = <[PathBuf; 2]>::try_from(paths).map_err(|_| usage)?;
    let brokers = brokers.ok_or(usage)?;
    Ok(Args { brokers, dir, checkpoint, prefix, cluster, schema, primary, cleanup, max_batch, idle, settings })
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in &args.settings {
        config.set(k, v);
    }
    let producer: BaseProducer<Deliveries> = config.create_with_context(Deliveries::default())?;

    let checkpoints = CheckpointFile::new(&args.checkpoint);
    let mut opts = WatchOptions::schema_from_log(&args.dir).start(checkpoints.load()?).idle_timeout(args.idle);
    if let Some(path) = &args.schema {
        opts = opts.bootstrap_schema(Schema::parse(&std::fs::read_to_string(path)?)?);
    }
    if let Some(n) = args.max_batch {
        opts = opts.max_batch(n);
    }
    if args.cleanup {
        opts = opts.cleanup(DeleteFiles);
    }
    let mut watcher = Watcher::new(opts)?;
    let (mut decoder, mut envelope) = (Decoder::new(), Envelope::new(args.cluster.clone()));
    let (started, mut records, mut batches, mut failed_attempts) = (Instant::now(), 0u64, 0u64, 0u64);
    let mut busy = Duration::ZERO;
    let mut out: Vec<Out> = Vec::new();
    while let Some(event) = watcher.next_event()? {
        let Event::Batch(batch) = event else {
            eprintln!("kafka_sink: {event:?}"); // losses, damage, cleanups: reported, never silent
            continue;
        };
        let t0 = Instant::now();
        out.clear();
        let topic = |r: &Record<'_>| format!("{}.{}.{}", args.prefix, r.keyspace, r.table);
        for i in 0..batch.len() {
            let m = match batch.decode(i, &mut decoder) {
                Ok(m) => m,
                Err(u) => {
                    // Reported, and the rest of the entry's updates are sent.
                    eprintln!("kafka_sink: {}", u.error);
                    u.partial
                }
            };
            let (mut last, mut change) = (None, 0u32);
            envelope.mutation(&m, |r| {
                if SYSTEM_KEYSPACES.contains(&r.keyspace) {
                    return;
                }
                // Records count from 0 within each partition update.
                if last != r.digest {
                    (last, change) = (r.digest, 0);
                }
                out.push(Out {
                    topic: topic(r),
                    key: if args.primary { r.primary_key } else { r.key }.map(<[u8]>::to_vec),
                    value: r.value.to_vec(),
                    digest: r.digest.map(|d| d.to_hex()).unwrap_or_default(),
                    change,
                    segment_id: r.segment_id,
                    position: r.position,
                });
                change += 1;
            });
        }
        for event in &batch.schema_events {
            if let SchemaEvent::Truncated(t) = event {
                if t.table.is_none() {
                    // A table the schema does not know: no topic to send to.
                    eprintln!("kafka_sink: truncation of unknown table {} not sent", t.table_id);
                    continue;
                }
                envelope.truncation(t, |r| {
                    if !SYSTEM_KEYSPACES.contains(&r.keyspace) {
                        let (digest, change) = (String::new(), 0);
                        out.push(Out {
                            topic: topic(r),
                            key: None,
                            value: r.value.to_vec(),
                            digest,
                            change,
                            segment_id: r.segment_id,
                            position: r.position,
                        });
                    }
                });
            }
        }
        let mut pause = Duration::from_millis(200);
        // A refused record stops the sink with an error, this batch not
        // checkpointed: it is sent again from its start after a restart.
        while !deliver(&producer, &out)? {
            failed_attempts += 1;
            eprintln!("kafka_sink: batch {:?}..{:?} not delivered; sending it again", batch.from, batch.to);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(10));
        }
        records += out.len() as u64;
        batches += 1;
        // Every record of the batch is acknowledged by the brokers: only
        // now is the batch consumed.
        checkpoints.save(&batch.checkpoint())?;
        watcher.ack(batch.to);
        busy += t0.elapsed();
    }
    let (secs, busy) = (started.elapsed().as_secs_f64(), busy.as_secs_f64());
    eprintln!(
        "kafka_sink: {records} records in {batches} batches, {failed_attempts} failed attempts, {secs:.2} s \
         ({busy:.2} s sending: {:.0} records/s)",
        records as f64 / busy
    );
    Ok(())
}

/// Sends the records and waits for every answer; whether all were
/// delivered. A record the producer refuses outright (too large for
/// `message.max.bytes`, an invalid topic) is an error: sending it again
/// cannot help.
fn deliver(producer: &BaseProducer<Deliveries>, out: &[Out]) -> Result<bool, KafkaError> {
    let ctx = producer.context();
    ctx.ok.store(0, Ordering::SeqCst);
    ctx.failed.store(0, Ordering::SeqCst);
    let mut sent = 0u64;
    for o in out {
        let (seg, pos, change) = (o.segment_id.to_string(), o.position.to_string(), o.change.to_string());
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header { key: "digest", value: Some(&o.digest) })
            .insert(Header { key: "change", value: Some(&change) })
            .insert(Header { key: "segment_id", value: Some(&seg) })
            .insert(Header { key: "position", value: Some(&pos) });
        let mut record = BaseRecord::to(&o.topic).payload(&o.value[..]).headers(headers);
        if let Some(k) = &o.key {
            record = record.key(&k[..]);
        }
        loop {
            match producer.send(record) {
                Ok(()) => {
                    sent += 1;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    // Wait for the answers of what was sent, then stop.
                    while ctx.ok.load(Ordering::SeqCst) + ctx.failed.load(Ordering::SeqCst) < sent {
                        producer.poll(Duration::from_millis(50));
                    }
                    eprintln!("kafka_sink: record at segment {} position {} refused: {e}", o.segment_id, o.position);
                    return Err(e);
                }
            }
        }
    }
    while ctx.ok.load(Ordering::SeqCst) + ctx.failed.load(Ordering::SeqCst) < sent {
        producer.poll(Duration::from_millis(50));
    }
    Ok(ctx.failed.load(Ordering::SeqCst) == 0)
}
