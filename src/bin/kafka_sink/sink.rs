//! The sink's pipeline: batches read, decoded and rendered while earlier
//! ones are in flight; each checkpointed and acknowledged, in order, once
//! the brokers acknowledged all its records. Shared by the `kafka_sink`
//! binary and the `kafka` benchmark.

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cassandra_commitlog::cdc::{Checkpoint, CheckpointFile, DeleteFiles, Event, Position, WatchOptions, Watcher};
use cassandra_commitlog::mutation::Decoder;
use cassandra_commitlog::mutation::debezium::{Envelope, Record};
use cassandra_commitlog::schema::{SYSTEM_KEYSPACES, Schema, SchemaEvent};
use cassandra_commitlog::segment::ReadOptions;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::metrics::Metrics;

/// How the sink runs.
pub struct Config {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The `cdc_raw` directory.
    pub dir: PathBuf,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Topics are `<prefix>.<keyspace>.<table>`.
    pub prefix: String,
    /// `source.cluster` / `source.name` in the envelope.
    pub cluster: String,
    /// A starting schema for logs whose DDL is gone.
    pub schema: Option<Schema>,
    /// Key row records by the row's primary key instead of the partition key.
    pub primary: bool,
    /// Delete finished, delivered segments.
    pub cleanup: bool,
    /// Entries a batch holds at most.
    pub max_batch: usize,
    /// Batches in flight at most.
    pub in_flight: usize,
    /// Stop after this long without new data.
    pub idle: Option<Duration>,
    /// Extra librdkafka producer settings.
    pub settings: Vec<(String, String)>,
    /// Segment read options (encryption keys).
    pub read: ReadOptions,
    /// The abandonment rule's grace.
    pub abandoned_after: Option<Duration>,
}

/// The producer settings the sink always uses (others may be added).
pub fn producer_config(brokers: &str, settings: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "5");
    for (k, v) in settings {
        config.set(k, v);
    }
    config
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records delivered (and checkpointed).
    pub records: u64,
    /// Batches checkpointed.
    pub batches: u64,
    /// Times a failed delivery made the sink go back to its checkpoint.
    pub failed_attempts: u64,
    /// Records sent again after such a failure.
    pub resent: u64,
    /// Stopped on request (SIGTERM) rather than idle.
    pub stopped: bool,
}

/// The brokers' answers, by batch number, as they come.
#[derive(Default)]
pub struct Reports {
    done: Mutex<Vec<(u64, bool)>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: usize) {
        if let Err((e, _)) = result {
            eprintln!("kafka_sink: delivery failed: {e}");
        }
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push((batch as u64, result.is_ok()));
    }
}

/// A batch whose records are with the producer.
struct InFlight {
    seq: u64,
    sent: usize,
    ok: usize,
    failed: usize,
    /// Saved once the batch is delivered whole; its position is the batch's end.
    checkpoint: Checkpoint,
    read_at: Instant,
    /// Records by topic index.
    per_topic: Vec<(usize, u64)>,
}

impl InFlight {
    fn settled(&self) -> bool {
        self.ok + self.failed == self.sent
    }
}

/// One record, as the producer gets it.
struct Out<'a> {
    topic: &'a str,
    /// The topic's index in [`Topics`].
    index: usize,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    /// The digest's hex digits (none for a truncation).
    digest: Option<[u8; 32]>,
    change: u32,
    segment_id: i64,
    position: u64,
}

/// Topic names by keyspace and table, made once: (topic, keyspace, table).
#[derive(Default)]
pub struct Topics {
    names: Vec<(String, String, String)>,
    /// keyspace -> table -> index in `names` (looked up without allocating).
    index: HashMap<String, HashMap<String, usize>>,
}

impl Topics {
    /// Every topic name made so far.
    #[allow(dead_code)] // the benchmark's
    pub fn names(&self) -> Vec<String> {
        self.names.iter().map(|(t, ..)| t.clone()).collect()
    }

    fn of(&mut self, prefix: &str, keyspace: &str, table: &str) -> usize {
        if let Some(&i) = self.index.get(keyspace).and_then(|t| t.get(table)) {
            return i;
        }
        let i = self.names.len();
        self.names.push((format!("{prefix}.{keyspace}.{table}"), keyspace.to_owned(), table.to_owned()));
        self.index.entry(keyspace.to_owned()).or_default().insert(table.to_owned(), i);
        i
    }
}

/// Calls `each` with every record of a batch, in log order: one per row
/// change of a table outside Cassandra's own keyspaces, with its topic and
/// its index within its partition update, then the batch's truncations.
fn records(
    batch: &cassandra_commitlog::cdc::Batch,
    cfg: &Config,
    decoder: &mut Decoder,
    envelope: &mut Envelope,
    topics: &mut Topics,
    mut each: impl FnMut(Out<'_>),
) {
    let mut out = |topics: &mut Topics, r: &Record<'_>, change: u32| {
        let t = topics.of(&cfg.prefix, r.keyspace, r.table);
        each(Out {
            topic: &topics.names[t].0,
            index: t,
            key: if cfg.primary { r.primary_key } else { r.key },
            value: r.value,
            digest: r.digest.map(|d| d.hex()),
            change,
            segment_id: r.segment_id,
            position: r.position,
        });
    };
    for i in 0..batch.len() {
        let m = match batch.decode(i, decoder) {
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
            out(topics, r, change);
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
                    out(topics, r, 0);
                }
            });
        }
    }
}

/// A record the producer refused outright: sending it again cannot help.
#[derive(Debug)]
struct Refused {
    segment_id: i64,
    position: u64,
    error: KafkaError,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record at segment {} position {} refused: {}", self.segment_id, self.position, self.error)
    }
}

impl Error for Refused {}

/// Hands one record of batch `seq` to the producer (waiting while its
/// queue is full); the producer copies it.
fn send(producer: &BaseProducer<Reports>, o: &Out<'_>, seq: u64) -> Result<(), Refused> {
    let (mut seg, mut pos, mut change) = (itoa::Buffer::new(), itoa::Buffer::new(), itoa::Buffer::new());
    let digest = o.digest.as_ref().map_or("", |d| std::str::from_utf8(d).unwrap_or_default());
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header { key: "digest", value: Some(digest) })
        .insert(Header { key: "change", value: Some(change.format(o.change)) })
        .insert(Header { key: "segment_id", value: Some(seg.format(o.segment_id)) })
        .insert(Header { key: "position", value: Some(pos.format(o.position)) });
    let mut record = BaseRecord::with_opaque_to(o.topic, seq as usize).payload(o.value).headers(headers);
    if let Some(k) = o.key {
        record = record.key(k);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(Refused { segment_id: o.segment_id, position: o.position, error }),
        }
    }
}

fn watcher(cfg: &Config, start: Option<Checkpoint>) -> Result<Watcher, Box<dyn Error>> {
    let mut opts = WatchOptions::schema_from_log(&cfg.dir)
        .start(start)
        .read_options(cfg.read.clone())
        .max_batch(cfg.max_batch)
        .abandoned_after(cfg.abandoned_after);
    if let Some(schema) = &cfg.schema {
        opts = opts.bootstrap_schema(schema.clone());
    }
    if cfg.cleanup {
        opts = opts.cleanup(DeleteFiles);
    }
    Ok(Watcher::new(opts)?)
}

/// Follows the directory and ships it until idle, stopped, or a record is
/// refused.
pub fn run(cfg: &Config, stop: &AtomicBool, metrics: Option<&Metrics>) -> Result<Summary, Box<dyn Error>> {
    let mut producer: BaseProducer<Reports> =
        producer_config(&cfg.brokers, &cfg.settings).create_with_context(Reports::default())?;
    let checkpoints = CheckpointFile::new(&cfg.checkpoint);
    let mut watch = watcher(cfg, checkpoints.load()?)?;
    let (mut decoder, mut envelope) = (Decoder::new(), Envelope::new(cfg.cluster.clone()));
    let mut topics = Topics::default();
    let mut summary = Summary::default();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let (mut next_seq, mut last_data) = (0u64, Instant::now());
    let mut failing = false;
    let mut refused: Option<Refused> = None;
    let mut pause = Duration::from_millis(200);
    let max_in_flight = cfg.in_flight.max(1);
    // Records already sent once past the checkpoint the sink went back to.
    let mut resend_from: Option<Position> = None;
    loop {
        // The brokers' answers.
        let reports = std::mem::take(&mut *producer.context().done.lock().unwrap_or_else(|p| p.into_inner()));
        for (seq, ok) in reports {
            let Some(front) = in_flight.front().map(|f| f.seq) else { continue };
            let Some(b) = seq.checked_sub(front).and_then(|i| in_flight.get_mut(i as usize)) else { continue };
            if ok {
                b.ok += 1;
            } else {
                b.failed += 1;
                failing = true;
            }
        }
        // Batches delivered whole, in order: checkpointed, acknowledged.
        while in_flight.front().is_some_and(|b| b.settled() && b.failed == 0) {
            let b = in_flight.pop_front().expect("a front batch");
            checkpoints.save(&b.checkpoint)?;
            watch.ack(b.checkpoint.position);
            summary.records += b.sent as u64;
            summary.batches += 1;
            if let Some(m) = metrics {
                m.batch_delivered(&b.per_topic.iter().map(|&(t, n)| (&topics.names[t], n)).collect::<Vec<_>>());
                m.batch_latency(b.read_at.elapsed());
            }
            if resend_from.is_some_and(|p| b.checkpoint.position >= p) {
                resend_from = None;
            }
        }
        if let Some(m) = metrics {
            m.watcher(&watch.metrics(), in_flight.len());
        }
        if failing || refused.is_some() {
            // Nothing more is sent; what is in flight settles first.
            if in_flight.iter().any(|b| !b.settled()) {
                producer.poll(Duration::from_millis(20));
                continue;
            }
            if let Some(r) = refused.take() {
                eprintln!("kafka_sink: {r}");
                return Err(Box::new(r));
            }
            summary.failed_attempts += 1;
            if let Some(m) = metrics {
                m.failed_attempt();
            }
            let saved = checkpoints.load()?;
            let first = in_flight.front().map(|b| b.checkpoint.position);
            eprintln!("kafka_sink: batch after {:?} not delivered; sending it again from the checkpoint", first);
            resend_from = in_flight.back().map(|b| b.checkpoint.position);
            summary.resent += in_flight.iter().filter(|b| b.failed == 0).map(|b| b.sent as u64).sum::<u64>();
            in_flight.clear();
            if stop.load(Ordering::Relaxed) {
                summary.stopped = true;
                return Ok(summary);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(10));
            if producer.client().fatal_error().is_some() {
                // An idempotent producer that lost track of its sequence:
                // a new one (new producer id) goes on.
                producer = producer_config(&cfg.brokers, &cfg.settings).create_with_context(Reports::default())?;
            }
            // From the last saved checkpoint, as a restarted sink would:
            // per partition the last copy of every record comes in log order.
            watch = watcher(cfg, saved)?;
            failing = false;
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            if in_flight.is_empty() {
                summary.stopped = true;
                return Ok(summary);
            }
            producer.poll(Duration::from_millis(20));
            continue;
        }
        if in_flight.len() >= max_in_flight {
            producer.poll(Duration::from_millis(5));
            continue;
        }
        // With batches in flight, look for the next one without waiting
        // (their answers are polled meanwhile); with none, wait for data
        // (no longer than the idle time left).
        let wait = match (in_flight.is_empty(), cfg.idle) {
            (false, _) => Duration::ZERO,
            (true, None) => Duration::from_millis(100),
            (true, Some(idle)) => idle.saturating_sub(last_data.elapsed()).min(Duration::from_millis(100)),
        };
        let event = watch.next_event_within(wait)?;
        let batch = match event {
            Some(Event::Batch(b)) => b,
            Some(other) => {
                // Losses, damage, lifecycle events: reported, never silent.
                eprintln!("kafka_sink: {other:?}");
                continue;
            }
            None => {
                if in_flight.is_empty() {
                    if cfg.idle.is_some_and(|idle| last_data.elapsed() >= idle) {
                        return Ok(summary);
                    }
                } else {
                    producer.poll(Duration::from_millis(2));
                }
                continue;
            }
        };
        last_data = Instant::now();
        pause = Duration::from_millis(200);
        let read_at = Instant::now();
        let seq = next_seq;
        next_seq += 1;
        let (mut handed, mut per_topic) = (0usize, HashMap::<usize, u64>::new());
        // Each record straight from the envelope to the producer (which
        // copies it): the batch's memory goes once it is rendered.
        records(&batch, cfg, &mut decoder, &mut envelope, &mut topics, |o| {
            if refused.is_some() {
                return;
            }
            match send(&producer, &o, seq) {
                Ok(()) => {
                    handed += 1;
                    *per_topic.entry(o.index).or_default() += 1;
                }
                Err(r) => refused = Some(r),
            }
        });
        let mut b = InFlight {
            seq,
            sent: handed,
            ok: 0,
            failed: 0,
            checkpoint: batch.checkpoint(),
            read_at,
            per_topic: per_topic.into_iter().collect(),
        };
        if refused.is_some() {
            // The refused record counts as a failed one of its batch.
            (b.sent, b.failed) = (handed + 1, 1);
        }
        in_flight.push_back(b);
    }
}

/// A batch rendered and kept: the records of the ceiling benchmark.
#[derive(Default)]
pub struct Rendered {
    bytes: Vec<u8>,
    records: Vec<Kept>,
}

/// A kept record: its topic's index and the ranges of its key and value.
struct Kept {
    index: usize,
    key: Option<std::ops::Range<usize>>,
    value: std::ops::Range<usize>,
    digest: Option<[u8; 32]>,
    change: u32,
    segment_id: i64,
    position: u64,
}

impl Rendered {
    /// Records in the batch.
    #[allow(dead_code)] // the benchmark's
    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// Every batch of the directory rendered as the sink renders it, with
/// nothing sent: the records of the ceiling benchmark.
#[allow(dead_code)] // the benchmark's
pub fn prerender(cfg: &Config) -> Result<(Topics, Vec<Rendered>), Box<dyn Error>> {
    let mut watch = watcher(cfg, None)?;
    let (mut decoder, mut envelope) = (Decoder::new(), Envelope::new(cfg.cluster.clone()));
    let (mut topics, mut batches) = (Topics::default(), Vec::new());
    while let Some(event) = watch.next_event_within(Duration::ZERO)? {
        if let Event::Batch(b) = event {
            let mut r = Rendered::default();
            records(&b, cfg, &mut decoder, &mut envelope, &mut topics, |o| {
                let start = r.bytes.len();
                r.bytes.extend_from_slice(o.key.unwrap_or_default());
                let key = o.key.map(|_| start..r.bytes.len());
                let v = r.bytes.len();
                r.bytes.extend_from_slice(o.value);
                let value = v..r.bytes.len();
                let (index, digest, change, segment_id, position) =
                    (o.index, o.digest, o.change, o.segment_id, o.position);
                r.records.push(Kept { index, key, value, digest, change, segment_id, position });
            });
            batches.push(r);
            watch.ack(b.to);
        }
    }
    Ok((topics, batches))
}

/// Sends pre-rendered batches straight through a producer with the sink's
/// settings and waits for every answer: what librdkafka alone does with
/// the same records. Returns the records delivered.
#[allow(dead_code)] // the benchmark's
pub fn ship(cfg: &Config, topics: &Topics, batches: &[Rendered]) -> Result<u64, Box<dyn Error>> {
    let producer: BaseProducer<Reports> =
        producer_config(&cfg.brokers, &cfg.settings).create_with_context(Reports::default())?;
    let (mut sent, mut answered, mut delivered) = (0, 0, 0u64);
    for (seq, b) in batches.iter().enumerate() {
        for k in &b.records {
            let o = Out {
                topic: &topics.names[k.index].0,
                index: k.index,
                key: k.key.clone().map(|r| &b.bytes[r]),
                value: &b.bytes[k.value.clone()],
                digest: k.digest,
                change: k.change,
                segment_id: k.segment_id,
                position: k.position,
            };
            send(&producer, &o, seq as u64)?;
            sent += 1;
        }
        producer.poll(Duration::ZERO);
    }
    while answered < sent {
        producer.poll(Duration::from_millis(5));
        let done = std::mem::take(&mut *producer.context().done.lock().unwrap_or_else(|p| p.into_inner()));
        answered += done.len();
        delivered += done.iter().filter(|(_, ok)| *ok).count() as u64;
    }
    Ok(delivered)
}
