//! The `kafka_sink` example against librdkafka's in-process mock cluster
//! (`--features kafka`): every change of a corpus capture arrives exactly
//! once, on its table's topic, in log order per key; brokers that are down
//! or fail requests cost no record and let no segment be cleaned up early;
//! a SIGKILL followed by a restart re-sends at most the unacknowledged tail.
//!
//! What is expected comes from `dump --format debezium` over the same
//! directory (the envelope is checked against the corpus's statements in
//! `tests/examples.rs`).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cassandra_commitlog::cdc::CheckpointFile;
use common::{corpus, example};
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// A record as expected or as consumed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Rec {
    topic: String,
    key: Option<String>,
    value: String,
}

impl Rec {
    fn at(&self) -> (i64, u64) {
        let v: Value = serde_json::from_str(&self.value).unwrap();
        (v["source"]["segment_id"].as_i64().unwrap(), v["source"]["position"].as_u64().unwrap())
    }
}

/// What the sink should send for a directory: `dump --format debezium`,
/// system keyspaces left out, in log order.
fn expected(dir: &Path, prefix: &str) -> Vec<Rec> {
    expected_keyed(dir, prefix, false)
}

/// The same, keyed by each record's primary key (`--key primary`).
fn expected_keyed(dir: &Path, prefix: &str, primary: bool) -> Vec<Rec> {
    let out = Command::new(example("dump"))
        .args(["--schema-from-log", "--format", "debezium", "--cluster", "c1"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut recs = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        let Some(v) = l.get("value") else { continue };
        let (ks, table) = (v["source"]["keyspace"].as_str().unwrap(), v["source"]["table"].as_str().unwrap());
        if ks.starts_with("system") {
            continue;
        }
        recs.push(Rec {
            topic: format!("{prefix}.{ks}.{table}"),
            key: match (primary, l["key"].is_null()) {
                (_, true) => None,
                (true, false) => Some(v["key"].to_string()),
                (false, false) => Some(l["key"].to_string()),
            },
            value: v.to_string(),
        });
    }
    assert!(recs.len() > 1500, "{} records", recs.len());
    recs
}

/// A consumed record with its place.
struct Got {
    rec: Rec,
    partition: i32,
    offset: i64,
    headers: BTreeMap<String, String>,
}

/// Everything on the topics, from the beginning, until nothing new for a
/// while.
fn consume(servers: &str, topics: &HashSet<String>) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", "kafka-sink-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let (mut got, mut quiet) = (Vec::new(), Instant::now());
    while quiet.elapsed() < Duration::from_secs(3) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.unwrap();
        quiet = Instant::now();
        let headers = m
            .headers()
            .map(|h| {
                h.iter().map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap())).collect()
            })
            .unwrap_or_default();
        // The values are JSON written by the sink: compare them parsed and
        // written again, as the expected ones are.
        let value: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let key = m.key().map(|k| serde_json::from_slice::<Value>(k).unwrap().to_string());
        got.push(Got {
            rec: Rec { topic: m.topic().to_owned(), key, value: value.to_string() },
            partition: m.partition(),
            offset: m.offset(),
            headers,
        });
    }
    got
}

fn mock_with_topics(brokers: i32, topics: &HashSet<String>) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(brokers).unwrap();
    for t in topics {
        mock.create_topic(t, PARTITIONS, brokers.min(3)).unwrap();
    }
    mock
}

/// A fresh copy of a capture's `cdc_raw_after_shutdown`.
fn copy_capture(capture: &str, name: &str) -> Option<(PathBuf, PathBuf)> {
    copy_folder(&format!("{capture}/cdc_raw_after_shutdown"), name)
}

/// A fresh copy of a corpus folder of segments: (temporary directory, the
/// copy in it).
fn copy_folder(folder: &str, name: &str) -> Option<(PathBuf, PathBuf)> {
    let source = corpus()?.join(folder);
    let tmp = std::env::temp_dir().join(format!("kafka-sink-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("cdc_raw");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&source).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    Some((tmp, dir))
}

/// The sink, built once per test run (`cargo test` does not rebuild an
/// example that needs a feature).
fn sink_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let release: &[&str] = if cfg!(debug_assertions) { &[] } else { &["--release"] };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--features", "kafka", "--example", "kafka_sink"])
            .args(release)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building kafka_sink");
    });
    example("kafka_sink")
}

fn sink(servers: &str, dir: &Path, checkpoint: &Path, prefix: &str, extra: &[&str]) -> Child {
    Command::new(sink_bin())
        .args(["--brokers", servers, "--topic-prefix", prefix, "--cluster", "c1", "--idle-exit", "2"])
        .args(extra)
        .arg(dir)
        .arg(checkpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kafka_sink failed: {err}");
    eprintln!("{}", err.lines().last().unwrap_or_default());
    err
}

/// How many times each record occurs.
fn tally<'a>(recs: impl IntoIterator<Item = &'a Rec>) -> HashMap<&'a Rec, usize> {
    let mut count = HashMap::new();
    for r in recs {
        *count.entry(r).or_default() += 1;
    }
    count
}

/// After a restart from checkpoint `saved`: nothing at or before it
/// arrived more often than the log holds it, nothing after it more than
/// twice as often.
fn resent_only_after(want: &[Rec], got: &[Got], saved: Option<(i64, u64)>) {
    let in_log = tally(want);
    for (r, n) in tally(got.iter().map(|g| &g.rec)) {
        if saved.is_some_and(|p| r.at() <= p) {
            assert_eq!(n, in_log[r], "re-sent from before the checkpoint: {r:?}");
        } else {
            assert!(n <= 2 * in_log[r], "sent more than twice: {r:?}");
        }
    }
}

/// Every expected record at least once; per topic and key, the first
/// copies in log order; returns how many records arrived more than once.
fn check(expected: &[Rec], got: &[Got]) -> usize {
    let count = tally(got.iter().map(|g| &g.rec));
    for e in expected {
        assert!(count.contains_key(e), "not delivered: {e:?}");
    }
    assert_eq!(count.len(), expected.iter().collect::<HashSet<_>>().len(), "records nobody expected");
    // Per topic and key, in offset order, first copies: log order.
    type Place = (String, Option<String>, i32);
    let mut by_key: BTreeMap<Place, Vec<(i64, &Rec)>> = BTreeMap::new();
    for g in got {
        by_key.entry((g.rec.topic.clone(), g.rec.key.clone(), g.partition)).or_default().push((g.offset, &g.rec));
    }
    let mut want: BTreeMap<(String, Option<String>), Vec<&Rec>> = BTreeMap::new();
    for e in expected {
        want.entry((e.topic.clone(), e.key.clone())).or_default().push(e);
    }
    let mut keys_seen = 0;
    for ((topic, key, _), mut recs) in by_key {
        if key.is_none() {
            continue; // truncations: any partition
        }
        recs.sort();
        let mut seen = HashSet::new();
        let firsts: Vec<&Rec> = recs.into_iter().map(|(_, r)| r).filter(|r| seen.insert(*r)).collect();
        let w = &want[&(topic, key)];
        // Identical records (a write logged twice) count once here.
        let mut w_seen = HashSet::new();
        let w: Vec<&Rec> = w.iter().copied().filter(|r| w_seen.insert(*r)).collect();
        assert_eq!(firsts, w, "order per key");
        keys_seen += 1;
    }
    assert!(keys_seen > 10);
    count.values().filter(|&&n| n > 1).map(|n| n - 1).sum()
}

#[test]
fn every_change_arrives_exactly_once_in_log_order_per_key() {
    // The third run keys records by primary key (`--key primary`).
    for (capture, primary) in [("cassandra-4.0.0", false), ("cassandra-4.0.0-lz4", false), ("cassandra-4.0.0", true)] {
        let Some((tmp, dir)) = copy_capture(capture, &format!("once-{primary}")) else { return };
        let want = expected_keyed(&dir, "cdc", primary);
        let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
        let mock = mock_with_topics(3, &topics);
        let servers = mock.bootstrap_servers();
        let extra: &[&str] = if primary { &["--key", "primary"] } else { &[] };
        let err = finish(sink(&servers, &dir, &tmp.join("checkpoint"), "cdc", extra));
        let got = consume(&servers, &topics);
        assert_eq!(check(&want, &got), 0, "{capture}: duplicates");
        assert_eq!(got.len(), want.len(), "{capture}");
        // The headers: digest and change index as in the envelope.
        for g in &got {
            let v: Value = serde_json::from_str(&g.rec.value).unwrap();
            if v["op"] != "t" {
                assert_eq!(g.headers["digest"], v["source"]["digest"].as_str().unwrap());
            }
            assert_eq!(g.headers["position"], v["source"]["position"].to_string());
            assert!(g.headers.contains_key("change"));
        }
        assert!(err.contains(&format!("kafka_sink: {} records", want.len())), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn brokers_down_or_failing_cost_no_record_and_clean_up_nothing_early() {
    // The outage starts before the first record, then mid-stream (once the
    // checkpoint is past record 400).
    for (round, outage_at) in [None, Some(400usize)].into_iter().enumerate() {
        let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", &format!("down{round}")) else { return };
        let prefix = format!("down{round}");
        let want = expected(&dir, &prefix);
        let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
        let segments = segment_files(&dir);
        let unflushed: Vec<String> =
            segments.iter().filter(|s| !dir.join(s.replace(".log", "_cdc.idx")).exists()).cloned().collect();
        let mock = mock_with_topics(3, &topics);
        let servers = mock.bootstrap_servers();
        let down = || (1..=3).for_each(|b| mock.broker_down(b).unwrap());
        if outage_at.is_none() {
            down();
        }
        let checkpoint = tmp.join("checkpoint");
        let cp = CheckpointFile::new(&checkpoint);
        let at = |cp: &CheckpointFile| cp.load().unwrap().map(|c| (c.position.segment_id, c.position.offset));
        // Deliveries time out after 2 s: the sink sends its batch again
        // and again while the brokers are down.
        let extra = ["--cleanup", "--max-batch", "20", "--set", "message.timeout.ms=2000"];
        let child = sink(&servers, &dir, &checkpoint, &prefix, &extra);
        if let Some(n) = outage_at {
            let target = want[n].at();
            let started = Instant::now();
            while at(&cp).is_none_or(|p| p < target) && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(2));
            }
            down();
        }
        // A batch in flight when the brokers went down may still land.
        std::thread::sleep(Duration::from_secs(1));
        let stopped = at(&cp);
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(at(&cp), stopped, "checkpoint advanced while no broker was up");
        let stopped = stopped.unwrap_or_default();
        assert!(stopped < want.last().unwrap().at());
        if outage_at.is_none() {
            // Batches of Cassandra's own tables send nothing and are
            // checkpointed; nothing past the first record is.
            assert!(stopped < want[0].at(), "checkpoint past an undelivered record");
        }
        // No segment holding an undelivered record is gone.
        let left = segment_files(&dir);
        for s in &segments {
            let id: i64 = s.trim_start_matches("CommitLog-7-").trim_end_matches(".log").parse().unwrap();
            if id >= stopped.0 {
                assert!(left.contains(s), "{s} cleaned up before its records were delivered");
            }
        }
        // Brokers back, but failing produce requests with retriable errors.
        mock.request_errors(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            ],
        );
        for b in 1..=3 {
            mock.broker_up(b).unwrap();
        }
        let err = finish(child);
        assert!(err.contains("sending it again"), "the outage was not noticed: {err}");
        let got = consume(&servers, &topics);
        let repeated = check(&want, &got);
        eprintln!(
            "outage {}: {} records expected, {} received, {repeated} repeated",
            outage_at.map_or("before the first record".to_owned(), |n| format!("past record {n}")),
            want.len(),
            got.len()
        );
        // Every segment with a COMPLETED idx is delivered and cleaned up
        // now; those without an idx (not yet flushed for CDC) are never
        // read, and kept.
        assert!(unflushed.len() < segments.len());
        assert_eq!(segment_files(&dir), unflushed);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

#[test]
fn a_killed_sink_resends_at_most_its_unacknowledged_tail() {
    // The third round has slow brokers (150 ms round trips) and is killed
    // 100 ms after a checkpoint: inside a batch, some of whose records the
    // brokers may already have.
    for (round, (delivered, slow)) in [(50usize, false), (900, false), (400, true)].into_iter().enumerate() {
        let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", &format!("kill{round}")) else { return };
        let prefix = format!("kill{round}");
        let want = expected(&dir, &prefix);
        let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
        let mock = mock_with_topics(3, &topics);
        let servers = mock.bootstrap_servers();
        let checkpoint = tmp.join("checkpoint");
        let extra = ["--max-batch", "10", "--set", "linger.ms=20"];
        let rtt = |ms| (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::from_millis(ms)).unwrap());
        if slow {
            rtt(150);
        }
        let mut child = sink(&servers, &dir, &checkpoint, &prefix, &extra);
        // Killed mid-stream, once the checkpoint is past that many records.
        let cp = CheckpointFile::new(&checkpoint);
        let target = want[delivered].at();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(c)) = cp.load()
                && (c.position.segment_id, c.position.offset) >= target
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if slow {
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if slow {
            rtt(0);
        }
        let saved = cp.load().unwrap().expect("a checkpoint was saved").position;
        let before = consume(&servers, &topics).len();
        assert!(before < want.len(), "killed after the end: nothing tested");
        assert!(before > delivered, "killed before record {delivered}");
        finish(sink(&servers, &dir, &checkpoint, &prefix, &extra));
        let got = consume(&servers, &topics);
        let repeated = check(&want, &got);
        // Nothing at or before the saved checkpoint arrived twice.
        resent_only_after(&want, &got, Some((saved.segment_id, saved.offset)));
        eprintln!(
            "killed past record {delivered} (slow brokers: {slow}): {before} records before the kill, checkpoint at {saved:?}, \
             {} records in all, {repeated} repeated",
            got.len()
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

/// The delivery figure of the note: the benchmark capture (132,120
/// mutations) through the mock cluster. Minutes in a debug build: run it
/// with `cargo test --release --features kafka --test kafka_sink -- --ignored`.
#[test]
#[ignore]
fn delivery_rate_on_the_benchmark_capture() {
    let Some(corpus) = corpus() else { return };
    let (tmp, dir) = copy_folder("bench-4.0.0/cdc_raw", "bench").unwrap();
    let mock = MockCluster::new(3).unwrap();
    let servers = mock.bootstrap_servers();
    let schema = corpus.join("bench-4.0.0/schema/schema_internals.cql").display().to_string();
    let err = finish(sink(&servers, &dir, &tmp.join("checkpoint"), "bench", &["--schema", &schema]));
    assert!(err.contains("kafka_sink: 132120 records"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_record_the_producer_refuses_stops_the_sink_before_its_checkpoint() {
    let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", "refused") else { return };
    let want = expected(&dir, "refused");
    let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
    let segments = segment_files(&dir);
    let mock = mock_with_topics(3, &topics);
    let servers = mock.bootstrap_servers();
    let checkpoint = tmp.join("checkpoint");
    // Records over 4,000 bytes are refused by the producer itself (the
    // capture's first such record, a `bulk` row, comes after 54 small ones).
    let first_large = want.iter().position(|r| r.value.len() > 4000).expect("a large record");
    assert!(first_large > 0 && want[..first_large].iter().all(|r| r.value.len() < 2000));
    let small = ["--cleanup", "--max-batch", "20", "--set", "message.max.bytes=4000"];
    let out = sink(&servers, &dir, &checkpoint, "refused", &small).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused"), "{err}");
    let saved = CheckpointFile::new(&checkpoint).load().unwrap().map(|c| (c.position.segment_id, c.position.offset));
    let bound = want.iter().skip(first_large).map(Rec::at).find(|&p| p > want[first_large - 1].at()).unwrap();
    assert!(saved.is_none_or(|p| p < bound), "checkpoint {saved:?} past the refused record at {bound:?}");
    assert_eq!(segment_files(&dir), segments, "a segment cleaned up past the refused record");
    // Restarted without the limit: everything arrives, nothing before the
    // checkpoint twice.
    finish(sink(&servers, &dir, &checkpoint, "refused", &["--cleanup"]));
    let got = consume(&servers, &topics);
    let repeated = check(&want, &got);
    resent_only_after(&want, &got, saved);
    eprintln!("refused record {first_large}: checkpoint {saved:?}, {} records in all, {repeated} repeated", got.len());
    std::fs::remove_dir_all(&tmp).unwrap();
}
