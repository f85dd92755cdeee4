//! `kafka_dedup`: reads the topics `kafka_sink` writes (one sink per
//! replica, each shipping its own copy of every write) and writes each
//! change once to output topics, with exactly-once between the input
//! offsets and the output records (Kafka transactions). Installed with
//! `cargo install --path . --features kafka`; `kafka_dedup --help` lists its
//! flags (README, "Shipping to Kafka").

#[path = "../cli/mod.rs"]
mod cli;

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cassandra_commitlog::mutation::{BYTES_PER_PAIR, Dedup, Digest};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const HELP: &str = "\
kafka_dedup: writes each change of kafka_sink's topics once, whatever the number of replicas' sinks.

usage: kafka_dedup --brokers HOST:PORT --input-prefix P --output-prefix O [OPTIONS]

Reads every topic named P.<keyspace>.<table> (read_committed) and writes to
O.<keyspace>.<table> the first copy of each change (by its digest and change
headers), with the same key, value and headers; records without a digest
(truncations) are all passed. Input offsets are committed in the same Kafka
transaction as the output records: a crash or a kill repeats nothing and
loses nothing. On start it reads back the last --window records of every
output partition, so a restarted program still knows what it has passed.

options:
  --brokers HOST:PORT     bootstrap servers (required)
  --input-prefix P        the sinks' topic prefix (required)
  --output-prefix O       the output topics' prefix (required, not P)
  --group G               consumer group (default: kafka_dedup-<O>)
  --transactional-id T    the producer's transactional.id (default: the group); one per running instance
  --window N              changes remembered (default: 1000000, about 64 bytes each)
  --max-records N         input records per transaction at most (default: 5000)
  --idle-exit SECS        stop after SECS without input (default: follow for ever)
  --set KEY=VALUE         a librdkafka setting for both clients (repeatable)
  -h, --help              this text

SIGTERM or SIGINT: the transaction under way is committed, then it exits 0.
Exit 1 on an error (the transaction under way is aborted: nothing of it is
visible, its input is read again on restart), 2 on bad arguments.
";

struct Args {
    brokers: String,
    input: String,
    output: String,
    group: String,
    transactional_id: String,
    window: usize,
    max_records: usize,
    idle: Option<Duration>,
    settings: Vec<(String, String)>,
}

fn parse() -> Result<Option<Args>, Box<dyn Error>> {
    let mut it = std::env::args().skip(1);
    let (mut brokers, mut input, mut output, mut group, mut txn) = (None, None, None, None, None);
    let (mut window, mut max_records, mut idle, mut settings) = (1_000_000usize, 5000usize, None, Vec::new());
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--brokers" => brokers = Some(value()?),
            "--input-prefix" => input = Some(value()?),
            "--output-prefix" => output = Some(value()?),
            "--group" => group = Some(value()?),
            "--transactional-id" => txn = Some(value()?),
            "--window" => window = value()?.parse()?,
            "--max-records" => max_records = value()?.parse()?,
            "--idle-exit" => idle = Some(cli::seconds(&value()?)?),
            "--set" => settings.push(cli::setting(&value()?)?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (brokers, input, output) = (
        brokers.ok_or("--brokers is required")?,
        input.ok_or("--input-prefix is required")?,
        output.ok_or("--output-prefix is required")?,
    );
    if input == output {
        return Err("the output prefix must differ from the input prefix".into());
    }
    let group = group.unwrap_or_else(|| format!("kafka_dedup-{output}"));
    let transactional_id = txn.unwrap_or_else(|| group.clone());
    Ok(Some(Args { brokers, input, output, group, transactional_id, window, max_records, idle, settings }))
}

fn config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.brokers);
    for (k, v) in &args.settings {
        c.set(k, v);
    }
    c
}

/// The (digest, change) pair a record names, if it has a digest.
fn pair(m: &impl Message) -> Option<(Digest, u32)> {
    let headers = m.headers()?;
    let (mut digest, mut change) = (None, None);
    for h in headers.iter() {
        let text = h.value.and_then(|v| std::str::from_utf8(v).ok());
        match h.key {
            "digest" => digest = text.and_then(Digest::from_hex),
            "change" => change = text.and_then(|t| t.parse().ok()),
            _ => {}
        }
    }
    Some((digest?, change?))
}

/// Remembers the changes already written: the last `window` records of
/// every output partition (read committed), oldest first.
fn restore(args: &Args, topics: &[String], dedup: &mut Dedup) -> Result<u64, Box<dyn Error>> {
    let reader: BaseConsumer = config(args)
        .set("group.id", format!("{}-restore", args.group))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for t in topics {
        let md = reader.fetch_metadata(Some(t), Duration::from_secs(10))?;
        for topic in md.topics() {
            for p in topic.partitions() {
                let (low, high) = reader.fetch_watermarks(t, p.id(), Duration::from_secs(10))?;
                if high > low {
                    let from = (high - args.window as i64).max(low);
                    tpl.add_partition_offset(t, p.id(), Offset::Offset(from))?;
                    ends.insert((t.clone(), p.id()), high);
                }
            }
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    reader.assign(&tpl)?;
    let (mut restored, mut quiet) = (0u64, Instant::now());
    // Until every partition is read to where it ended (control records of
    // transactions are never returned: their offsets count as read).
    while quiet.elapsed() < Duration::from_secs(5) {
        let done = ends.iter().all(|((t, p), high)| {
            reader
                .position()
                .ok()
                .and_then(|pos| pos.find_partition(t, *p).map(|e| e.offset()))
                .is_some_and(|o| matches!(o, Offset::Offset(o) if o >= *high))
        });
        if done {
            break;
        }
        let Some(m) = reader.poll(Duration::from_millis(100)) else { continue };
        let m = m?;
        quiet = Instant::now();
        if let Some((d, c)) = pair(&m) {
            dedup.first(d, c);
            restored += 1;
        }
    }
    Ok(restored)
}

/// Output records of one transaction, and the pairs they add.
struct Staged {
    pairs: Vec<(Digest, u32)>,
    set: HashSet<(Digest, u32)>,
    offsets: HashMap<(String, i32), i64>,
    input: u64,
    output: u64,
}

fn produce(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    m: &BorrowedMessage<'_>,
) -> Result<(), Box<dyn Error>> {
    let mut headers = OwnedHeaders::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            headers = headers.insert(rdkafka::message::Header { key: h.key, value: h.value });
        }
    }
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = m.key() {
        record = record.key(k);
    }
    if let Some(v) = m.payload() {
        record = record.payload(v);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(Box::new(e)),
        }
    }
}

fn run(args: &Args, stop: &AtomicBool) -> Result<(u64, u64, u64), Box<dyn Error>> {
    let consumer: BaseConsumer = config(args)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        config(args).set("transactional.id", &args.transactional_id).create()?;
    // Fences off an earlier instance with the same id (its open
    // transaction is aborted).
    producer.init_transactions(Duration::from_secs(30))?;
    let mut dedup = Dedup::new(args.window);
    let output_of = |topic: &str| format!("{}{}", args.output, &topic[args.input.len()..]);
    // Every partition of the input topics there are now, from the group's
    // committed offsets on; topics that appear later are added as found.
    let mut assigned = HashSet::new();
    let inputs = assign_new(args, &consumer, &mut assigned)?;
    let outputs: Vec<String> = inputs.iter().map(|t| output_of(t)).collect();
    let restored = restore(args, &outputs, &mut dedup)?;
    eprintln!("kafka_dedup: {restored} changes read back from {} output topics", outputs.len());
    let (mut input, mut output, mut last_input) = (0u64, 0u64, Instant::now());
    let mut looked = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if looked.elapsed() >= Duration::from_secs(5) {
            let new = assign_new(args, &consumer, &mut assigned)?;
            let new_outputs: Vec<String> = new.iter().map(|t| output_of(t)).collect();
            restore(args, &new_outputs, &mut dedup)?;
            looked = Instant::now();
        }
        if args.idle.is_some_and(|idle| last_input.elapsed() >= idle) {
            break;
        }
        let mut staged =
            Staged { pairs: Vec::new(), set: HashSet::new(), offsets: HashMap::new(), input: 0, output: 0 };
        let mut began = false;
        let deadline = Instant::now() + Duration::from_millis(100);
        while (staged.input as usize) < args.max_records && Instant::now() < deadline {
            let Some(m) = consumer.poll(deadline.saturating_duration_since(Instant::now())) else { break };
            let m = m?;
            if !began {
                producer.begin_transaction()?;
                began = true;
            }
            staged.input += 1;
            staged.offsets.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
            let first = match pair(&m) {
                // Truncations carry no digest: all pass.
                None => true,
                Some(p) => {
                    !dedup.contains(p.0, p.1) && staged.set.insert(p) && {
                        staged.pairs.push(p);
                        true
                    }
                }
            };
            if first {
                produce(&producer, &output_of(m.topic()), &m)?;
                staged.output += 1;
            }
        }
        if !began {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &staged.offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let meta = consumer.group_metadata().ok_or("no consumer group metadata")?;
        producer.send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(30))?;
        producer.commit_transaction(Duration::from_secs(60))?;
        // Committed: the pairs are passed for good.
        for (d, c) in staged.pairs {
            dedup.first(d, c);
        }
        input += staged.input;
        output += staged.output;
        last_input = Instant::now();
    }
    Ok((input, output, restored))
}

/// Assigns the partitions of input topics not assigned yet, at the group's
/// committed offsets (the beginning where there is none); returns the
/// topics added. The program assigns partitions itself rather than joining
/// the group's rebalances: one instance per group (its transactional id
/// fences off an earlier one), and a restart resumes at once.
fn assign_new(
    args: &Args,
    consumer: &BaseConsumer,
    assigned: &mut HashSet<String>,
) -> Result<Vec<String>, Box<dyn Error>> {
    let prefix = format!("{}.", args.input);
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut added = Vec::new();
    for t in md.topics().iter().filter(|t| t.name().starts_with(&prefix) && !assigned.contains(t.name())) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
        added.push(t.name().to_owned());
    }
    if added.is_empty() {
        return Ok(added);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        start.add_partition_offset(e.topic(), e.partition(), offset)?;
    }
    consumer.incremental_assign(&start)?;
    assigned.extend(added.iter().cloned());
    Ok(added)
}

fn main() -> ExitCode {
    let (args, stop) = match cli::start("kafka_dedup", HELP, parse) {
        Ok(started) => started,
        Err(code) => return code,
    };
    eprintln!("kafka_dedup: window of {} changes (about {} MB)", args.window, args.window * BYTES_PER_PAIR / 1_000_000);
    match run(&args, &stop) {
        Ok((input, output, _)) => {
            eprintln!("kafka_dedup: {input} records read, {output} written");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kafka_dedup: {e}");
            ExitCode::from(1)
        }
    }
}
