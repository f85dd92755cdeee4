//! `kafka_sink`: ships a `cdc_raw` directory to Kafka, one topic per table,
//! in the Debezium-compatible envelope, checkpointing only what the brokers
//! have acknowledged. Installed with `cargo install --path . --features
//! kafka`; `kafka_sink --help` lists its flags (README, "Shipping to
//! Kafka").

#[path = "../cli/mod.rs"]
mod cli;
mod metrics;
mod sink;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cassandra_commitlog::cdc::DEFAULT_ABANDONED_AFTER;
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::ReadOptions;

const HELP: &str = "\
kafka_sink: ships a Cassandra cdc_raw directory to Kafka, one record per row change.

usage: kafka_sink --brokers HOST:PORT [OPTIONS] CDC_RAW_DIR CHECKPOINT_FILE

Records go to <prefix>.<keyspace>.<table>, keyed by the partition key (JSON),
valued with the Debezium-compatible envelope, with headers digest, change,
segment_id and position. The checkpoint (and the schema state beside it) is
saved once every record of a batch is acknowledged by the brokers.

options:
  --brokers HOST:PORT      bootstrap servers (required)
  --topic-prefix P         topic prefix (default: cassandra)
  --cluster NAME           source.name and source.cluster of the envelope (default: cassandra)
  --schema FILE.cql        starting schema for a log whose DDL is gone (DESCRIBE ... WITH INTERNALS)
  --key partition|primary  record key: the partition key (default; one partition's changes keep
                           their order) or the row's whole primary key (Debezium's relational
                           convention; rows of one partition may change Kafka partition)
  --key-alias ALIAS=HEX    the AES key of an encryption alias (encrypted segments)
  --cleanup                delete each segment and its idx once finished and delivered
  --max-batch N            entries a batch holds at most (default: 4096)
  --in-flight N            batches sent and not yet acknowledged at most (default: 4)
  --abandoned-after SECS   grace of the abandonment rule, or `off` (default: 10)
  --metrics ADDR           serve Prometheus metrics at http://ADDR/metrics (ADDR: 127.0.0.1:9464)
  --idle-exit SECS         stop after SECS without new data (default: follow for ever)
  --set KEY=VALUE          a librdkafka producer setting (repeatable: --set linger.ms=20)
  -h, --help               this text

SIGTERM or SIGINT: no new batch is read; the batches in flight are delivered
and checkpointed; then it exits 0. Exit 1 on an error (a record the producer
refuses: its batch is not checkpointed), 2 on bad arguments.
";

struct Args {
    config: sink::Config,
    metrics: Option<String>,
}

fn parse() -> Result<Option<Args>, Box<dyn Error>> {
    let mut it = std::env::args().skip(1);
    let (mut brokers, mut prefix, mut cluster) = (None, "cassandra".to_owned(), "cassandra".to_owned());
    let (mut schema, mut primary, mut cleanup, mut metrics) = (None, false, false, None);
    let (mut max_batch, mut in_flight, mut idle) = (4096usize, 4usize, None);
    let (mut settings, mut paths, mut read) = (Vec::new(), Vec::new(), ReadOptions::new());
    let mut abandoned_after = Some(DEFAULT_ABANDONED_AFTER);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--brokers" => brokers = Some(value()?),
            "--topic-prefix" => prefix = value()?,
            "--cluster" => cluster = value()?,
            "--schema" => schema = Some(PathBuf::from(value()?)),
            "--key" => {
                primary = match value()?.as_str() {
                    "partition" => false,
                    "primary" => true,
                    other => return Err(format!("--key partition|primary, not {other}").into()),
                }
            }
            "--key-alias" => {
                let (alias, key) = cli::key_alias(&value()?)?;
                read = read.key(alias, key);
            }
            "--cleanup" => cleanup = true,
            "--max-batch" => max_batch = value()?.parse()?,
            "--in-flight" => in_flight = value()?.parse()?,
            "--abandoned-after" => {
                abandoned_after = match value()?.as_str() {
                    "off" => None,
                    secs => Some(cli::seconds(secs)?),
                }
            }
            "--metrics" => metrics = Some(value()?),
            "--idle-exit" => idle = Some(cli::seconds(&value()?)?),
            "--set" => settings.push(cli::setting(&value()?)?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}").into()),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let [dir, checkpoint] = <[PathBuf; 2]>::try_from(paths).map_err(|_| "CDC_RAW_DIR and CHECKPOINT_FILE")?;
    let brokers = brokers.ok_or("--brokers is required")?;
    let schema = match schema {
        Some(path) => {
            Some(Schema::parse(&std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?)?)
        }
        None => None,
    };
    let config = sink::Config {
        brokers,
        dir,
        checkpoint,
        prefix,
        cluster,
        schema,
        primary,
        cleanup,
        max_batch,
        in_flight,
        idle,
        settings,
        read,
        abandoned_after,
    };
    Ok(Some(Args { config, metrics }))
}

fn main() -> ExitCode {
    let (args, stop) = match cli::start("kafka_sink", HELP, parse) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let metrics = Arc::new(metrics::Metrics::new());
    if let Some(addr) = &args.metrics {
        match metrics::serve(addr, metrics.clone()) {
            Ok(bound) => eprintln!("kafka_sink: metrics at http://{bound}/metrics"),
            Err(e) => {
                eprintln!("kafka_sink: --metrics {addr}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let started = std::time::Instant::now();
    match sink::run(&args.config, &stop, Some(&metrics)) {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "kafka_sink: {} records in {} batches, {} failed attempts ({} records sent again), {secs:.2} s{}",
                s.records,
                s.batches,
                s.failed_attempts,
                s.resent,
                if s.stopped { ", stopped on a signal" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kafka_sink: {e}");
            ExitCode::from(1)
        }
    }
}
