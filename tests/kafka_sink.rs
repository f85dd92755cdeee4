//! The `kafka_sink` program against librdkafka's in-process mock cluster
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

/// A consumer of every partition of the topics, from the beginning (with
/// `settings` besides the usual ones).
fn reader(servers: &str, group: &str, settings: &[(&str, &str)], topics: &HashSet<String>) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers).set("group.id", group).set("enable.auto.commit", "false");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Everything on the topics, from the beginning, until nothing new for a
/// while.
fn consume(servers: &str, topics: &HashSet<String>) -> Vec<Got> {
    let consumer = reader(servers, "kafka-sink-test", &[], topics);
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

/// The sink, as `cargo test --features kafka` built it beside the tests.
fn sink_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kafka_sink"))
}

/// The sink, stopping once idle for 2 s.
fn sink(servers: &str, dir: &Path, checkpoint: &Path, prefix: &str, extra: &[&str]) -> Child {
    spawn_sink(servers, dir, checkpoint, prefix, &[&["--idle-exit", "2"], extra].concat())
}

/// The sink with these options, its stderr piped.
fn spawn_sink(servers: &str, dir: &Path, checkpoint: &Path, prefix: &str, options: &[&str]) -> Child {
    Command::new(sink_bin())
        .args(["--brokers", servers, "--topic-prefix", prefix, "--cluster", "c1"])
        .args(options)
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

/// Every expected record at least once, nothing else; returns how many
/// records arrived more than once.
fn check_present(expected: &[Rec], got: &[Got]) -> usize {
    let count = tally(got.iter().map(|g| &g.rec));
    for e in expected {
        assert!(count.contains_key(e), "not delivered: {:?} at {:?}", e.topic, e.at());
    }
    assert_eq!(count.len(), expected.iter().collect::<HashSet<_>>().len(), "records nobody expected");
    count.values().filter(|&&n| n > 1).map(|n| n - 1).sum()
}

/// Every expected record at least once; per topic and key, the first
/// copies in log order; returns how many records arrived more than once.
fn check(expected: &[Rec], got: &[Got]) -> usize {
    let repeated = check_present(expected, got);
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
        let at = |v: &[&Rec]| v.iter().map(|r| r.at()).collect::<Vec<_>>();
        assert_eq!(at(&firsts), at(&w), "order per key");
        assert!(firsts == w, "the same records per key");
        keys_seen += 1;
    }
    assert!(keys_seen > 10);
    repeated
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

/// Per topic and key, the last copy of each record in offset order: the
/// log order (a record's earlier copies may come anywhere before it).
fn check_last_copies_in_order(expected: &[Rec], got: &[Got]) {
    type Place = (String, Option<String>, i32);
    let mut by_key: BTreeMap<Place, Vec<(i64, &Rec)>> = BTreeMap::new();
    for g in got {
        by_key.entry((g.rec.topic.clone(), g.rec.key.clone(), g.partition)).or_default().push((g.offset, &g.rec));
    }
    let mut want: BTreeMap<(String, Option<String>), Vec<&Rec>> = BTreeMap::new();
    for e in expected {
        want.entry((e.topic.clone(), e.key.clone())).or_default().push(e);
    }
    for ((topic, key, _), mut recs) in by_key {
        if key.is_none() {
            continue;
        }
        recs.sort();
        recs.reverse();
        let mut seen = HashSet::new();
        let mut lasts: Vec<&Rec> = recs.into_iter().map(|(_, r)| r).filter(|r| seen.insert(*r)).collect();
        lasts.reverse();
        let mut w_seen = HashSet::new();
        let w: Vec<&Rec> = want[&(topic, key)].iter().copied().filter(|r| w_seen.insert(*r)).collect();
        let at = |v: &[&Rec]| v.iter().map(|r| r.at()).collect::<Vec<_>>();
        assert_eq!(at(&lasts), at(&w), "last copies per key in log order");
    }
}

/// Produce requests failing for good in the middle of the stream, while
/// later batches are in flight and delivered: the sink stops sending, lets
/// what is in flight settle, and goes back to its last checkpoint. Every
/// record arrives, later batches' records twice (delivered before the
/// failure, and again); per key the last copies come in log order.
#[test]
fn a_middle_batch_failing_while_later_ones_are_delivered_goes_back_to_the_checkpoint() {
    let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", "middle") else { return };
    let prefix = "middle";
    let want = expected(&dir, prefix);
    let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
    let mock = mock_with_topics(3, &topics);
    let servers = mock.bootstrap_servers();
    let checkpoint = tmp.join("checkpoint");
    let cp = CheckpointFile::new(&checkpoint);
    // Small batches, many in flight, slow brokers: several batches are out
    // when the failures start.
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::from_millis(30)).unwrap());
    let extra = ["--max-batch", "8", "--in-flight", "16", "--set", "linger.ms=1"];
    let child = sink(&servers, &dir, &checkpoint, prefix, &extra);
    let target = want[300].at();
    let started = Instant::now();
    while cp.load().unwrap().is_none_or(|c| (c.position.segment_id, c.position.offset) < target) {
        assert!(started.elapsed() < Duration::from_secs(60), "the sink did not get going");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The next two produce requests fail for good.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD, RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
    );
    // The checkpoint, sampled while the sink runs, only moves forward (the
    // sink goes back to it, it does not save an earlier one).
    let mut saved = Vec::new();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(c)) = cp.load() {
            saved.push((c.position.segment_id, c.position.offset));
        }
        if saved.last().is_some_and(|&p| p >= want.last().unwrap().at()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::ZERO).unwrap());
    let err = finish(child);
    assert!(err.contains("sending it again"), "no failure was noticed: {err}");
    let got = consume(&servers, &topics);
    let repeated = check_present(&want, &got);
    check_last_copies_in_order(&want, &got);
    assert!(repeated > 0, "nothing was sent twice: no later batch had been delivered");
    assert!(saved.windows(2).all(|w| w[0] <= w[1]), "the checkpoint went backwards");
    eprintln!("a middle batch failed: {} records in all, {repeated} sent again", got.len());
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The sink with its stderr read line by line on a thread.
fn sink_with_stderr(
    servers: &str,
    dir: &Path,
    checkpoint: &Path,
    prefix: &str,
    extra: &[&str],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = spawn_sink(servers, dir, checkpoint, prefix, extra);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// One scrape of the Prometheus endpoint: metric (with labels) -> value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// `--metrics`: scraped over HTTP while the sink runs and once it has
/// shipped everything, the values are the run's: records per table as
/// expected, batches, the watcher's positions and lag, nothing in flight.
/// Then SIGTERM stops it cleanly.
#[test]
fn the_metrics_endpoint_tells_the_run_as_it_goes() {
    let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", "metrics") else { return };
    let prefix = "metrics";
    let want = expected(&dir, prefix);
    let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
    let mock = mock_with_topics(3, &topics);
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::from_millis(20)).unwrap());
    let servers = mock.bootstrap_servers();
    let checkpoint = tmp.join("checkpoint");
    let extra = ["--metrics", "127.0.0.1:0", "--max-batch", "50", "--in-flight", "2"];
    let (child, lines) = sink_with_stderr(&servers, &dir, &checkpoint, prefix, &extra);
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("the sink says where its metrics are");
        if let Some(rest) = line.strip_prefix("kafka_sink: metrics at http://") {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    // While it runs: some records, never more than the capture's.
    let cp = CheckpointFile::new(&checkpoint);
    let end = want.last().unwrap().at();
    let mut during = 0;
    let started = Instant::now();
    loop {
        let m = scrape(&addr);
        let records: f64 = m.iter().filter(|(k, _)| k.starts_with("cdc_sink_records_total")).map(|(_, v)| v).sum();
        assert!(records <= want.len() as f64);
        if records > 0.0 && records < want.len() as f64 {
            during += 1;
        }
        let at = cp.load().unwrap().map(|c| (c.position.segment_id, c.position.offset));
        if at.is_some_and(|p| p >= end) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the sink did not finish");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(during >= 2, "only {during} scrapes caught the run midway");
    // Once everything is checkpointed (the scrape after the last batch).
    std::thread::sleep(Duration::from_millis(300));
    let m = scrape(&addr);
    let mut per_table: BTreeMap<String, f64> = BTreeMap::new();
    for r in &want {
        let table = r.topic.rsplit('.').next().unwrap();
        *per_table.entry(format!("cdc_sink_records_total{{keyspace=\"cdc_test\",table=\"{table}\"}}")).or_default() +=
            1.0;
    }
    for (metric, n) in &per_table {
        assert_eq!(m.get(metric), Some(n), "{metric}");
    }
    let saved = cp.load().unwrap().unwrap().position;
    assert_eq!(m["cdc_watcher_consumed_segment_id"], saved.segment_id as f64);
    assert_eq!(m["cdc_watcher_consumed_offset"], saved.offset as f64);
    assert!(m["cdc_sink_batches_total"] >= (want.len() / 50) as f64);
    assert_eq!(m["cdc_sink_batch_seconds_count"], m["cdc_sink_batches_total"]);
    assert_eq!((m["cdc_sink_in_flight_batches"], m["cdc_sink_failed_attempts_total"]), (0.0, 0.0));
    assert_eq!((m["cdc_watcher_lag_bytes"], m["cdc_watcher_lag_segments"]), (0.0, 0.0));
    assert_eq!((m["cdc_watcher_segments_damaged"], m["cdc_watcher_segments_abandoned"]), (0.0, 0.0));
    assert!(m["cdc_sink_seconds_since_checkpoint"] < 60.0);
    assert!(m.contains_key("cdc_watcher_held_back_segment_id") && m.contains_key("cdc_watcher_durable_offset"));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a SIGTERM is a clean stop");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped on a signal")), "{rest:?}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// SIGTERM in the middle of a run, with slow brokers and batches in
/// flight: the sink reads nothing more, delivers and checkpoints what is in
/// flight, and exits 0; restarted, it goes on from that checkpoint with
/// nothing before it sent twice.
#[test]
fn sigterm_lets_the_batches_in_flight_settle_and_saves_the_checkpoint() {
    let Some((tmp, dir)) = copy_capture("cassandra-4.0.0", "sigterm") else { return };
    let prefix = "sigterm";
    let want = expected(&dir, prefix);
    let topics: HashSet<String> = want.iter().map(|r| r.topic.clone()).collect();
    let mock = mock_with_topics(3, &topics);
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::from_millis(100)).unwrap());
    let servers = mock.bootstrap_servers();
    let checkpoint = tmp.join("checkpoint");
    let extra = ["--max-batch", "40", "--in-flight", "4"];
    let (child, lines) = sink_with_stderr(&servers, &dir, &checkpoint, prefix, &extra);
    let cp = CheckpointFile::new(&checkpoint);
    let target = want[200].at();
    let started = Instant::now();
    while cp.load().unwrap().is_none_or(|c| (c.position.segment_id, c.position.offset) < target) {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a SIGTERM is a clean stop");
    let err: Vec<String> = lines.try_iter().collect();
    assert!(err.iter().any(|l| l.contains("stopped on a signal")), "{err:?}");
    let saved = cp.load().unwrap().unwrap().position;
    let at_stop = consume(&servers, &topics);
    // Everything sent was delivered and checkpointed: the checkpoint is the
    // last record on the topics.
    let last = at_stop.iter().map(|g| g.rec.at()).max().unwrap();
    assert!(last <= (saved.segment_id, saved.offset), "records past the checkpoint {saved:?}: {last:?}");
    assert!(at_stop.len() < want.len(), "stopped after the end: nothing tested");
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::ZERO).unwrap());
    finish(sink(&servers, &dir, &checkpoint, prefix, &[]));
    let got = consume(&servers, &topics);
    assert_eq!(check(&want, &got), 0, "nothing sent twice");
    std::fs::remove_dir_all(&tmp).unwrap();
}

// ---------- kafka_dedup ----------

/// A consumer that counts what it has read of some topics so far (read
/// committed), without waiting for quiet.
fn counter(servers: &str, topics: &HashSet<String>) -> BaseConsumer {
    reader(servers, "kafka-dedup-counter", &[("isolation.level", "read_committed")], topics)
}

fn dedup_program(servers: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kafka_dedup"))
        .args(["--brokers", servers, "--input-prefix", "rf3in", "--output-prefix", "rf3out", "--idle-exit", "4"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The (digest, change) headers of a record.
fn pair_of(g: &Got) -> Option<(String, String)> {
    Some((g.headers.get("digest").filter(|d| !d.is_empty())?.clone(), g.headers.get("change")?.clone()))
}

/// Three sinks, one per node of the real three-replica capture (node 2's
/// segments LZ4), ship every write three times to the same topics; the
/// `kafka_dedup` program, SIGKILLed midway and restarted, writes each
/// change once: every (digest, change) of the input exactly once, in the
/// order some replica logged it per key, and the tables rebuilt from the
/// output are Cassandra's `SELECT *` at ALL.
#[test]
fn three_replicas_through_the_dedup_program_killed_midway_give_each_change_once() {
    use cassandra_commitlog::cdc::{Event, WatchOptions, Watcher};
    use cassandra_commitlog::mutation::{Decoder, Digest};
    use common::materialize::{Materializer, driver_final_state, read_time};

    let Some(corpus) = corpus() else { return };
    let rf3 = corpus.join("cassandra-4.0.0-rf3");
    let tables = ["kv", "clustered", "coll", "counters", "nocdc"];
    let inputs: HashSet<String> = tables.iter().map(|t| format!("rf3in.rf3.{t}")).collect();
    let outputs: HashSet<String> = tables.iter().map(|t| format!("rf3out.rf3.{t}")).collect();
    let mock = mock_with_topics(3, &inputs.union(&outputs).cloned().collect());
    let servers = mock.bootstrap_servers();
    // One sink a node; which node a record came from, by its segment.
    let mut node_of_segment: HashMap<i64, usize> = HashMap::new();
    let mut tmps = Vec::new();
    for (n, node) in ["node1", "node2", "node3"].into_iter().enumerate() {
        let (tmp, dir) =
            copy_folder(&format!("cassandra-4.0.0-rf3/{node}/cdc_raw_final"), &format!("rf3-{node}")).unwrap();
        for f in std::fs::read_dir(&dir).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("CommitLog-7-").and_then(|r| r.strip_suffix(".log")) {
                node_of_segment.insert(id.parse().unwrap(), n);
            }
        }
        finish(sink(&servers, &dir, &tmp.join("checkpoint"), "rf3in", &[]));
        tmps.push(tmp);
    }
    let input = consume(&servers, &inputs);
    let pairs_in: HashSet<(String, String)> = input.iter().filter_map(pair_of).collect();
    // Each node shipped every change: three copies of each.
    assert_eq!(input.len(), 3 * pairs_in.len(), "every change from every replica");
    assert!(pairs_in.len() > 1900, "{} changes", pairs_in.len());

    // The dedup program, killed once part of its output is committed.
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::from_millis(5)).unwrap());
    let mut child = dedup_program(&servers, &["--max-records", "150"]);
    let watch = counter(&servers, &outputs);
    let (mut committed, started) = (0, Instant::now());
    while committed < pairs_in.len() / 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "the dedup program wrote nothing");
        if let Some(m) = watch.poll(Duration::from_millis(20)) {
            m.unwrap();
            committed += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    (1..=3).for_each(|b| mock.broker_round_trip_time(b, Duration::ZERO).unwrap());
    let out = dedup_program(&servers, &[]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("changes read back"), "{err}");

    let output = consume(&servers, &outputs);
    let mut seen = HashSet::new();
    for g in &output {
        let p = pair_of(g).expect("every rf3 record has a digest");
        assert!(seen.insert(p.clone()), "a change written twice: {p:?}");
    }
    let (missing, extra) = (pairs_in.difference(&seen).count(), seen.difference(&pairs_in).count());
    assert_eq!(
        (missing, extra),
        (0, 0),
        "every change of the input, once ({} in, {} out): {err}",
        pairs_in.len(),
        seen.len()
    );
    eprintln!(
        "kafka_dedup: {} input records (3 replicas), {} output records; killed after {committed} committed",
        input.len(),
        output.len()
    );

    // Per topic and key, the output's order is one replica's log order.
    type Key = (String, Option<String>);
    type Pair = (String, String);
    let mut by_node: HashMap<(Key, usize), Vec<Pair>> = HashMap::new();
    let mut sorted_input: Vec<&Got> = input.iter().collect();
    sorted_input.sort_by_key(|g| (g.rec.at(), g.headers["change"].parse::<u32>().unwrap()));
    for g in sorted_input {
        let node = node_of_segment[&g.rec.at().0];
        by_node.entry(((g.rec.topic.clone(), g.rec.key.clone()), node)).or_default().push(pair_of(g).unwrap());
    }
    let mut by_key: BTreeMap<(Key, i32), Vec<(i64, Pair)>> = BTreeMap::new();
    for g in &output {
        let topic = g.rec.topic.replacen("rf3out", "rf3in", 1);
        by_key.entry(((topic, g.rec.key.clone()), g.partition)).or_default().push((g.offset, pair_of(g).unwrap()));
    }
    let mut keys = 0;
    for ((key, _), mut recs) in by_key {
        recs.sort();
        let order: Vec<Pair> = recs.into_iter().map(|(_, p)| p).collect();
        let matches = (0..3).filter(|n| by_node.get(&(key.clone(), *n)) == Some(&order)).count();
        assert!(matches >= 1, "{key:?}: the output's order is no replica's");
        keys += 1;
    }
    assert!(keys > 100, "{keys} keys");

    // The tables, rebuilt from node 1's updates named by the output.
    let wanted: HashSet<Digest> = seen.iter().map(|(d, _)| Digest::from_hex(d).unwrap()).collect();
    let dir = corpus.join("cassandra-4.0.0-rf3/node1/cdc_raw_final");
    let mut w =
        Watcher::new(WatchOptions::schema_from_log(&dir).idle_timeout(Some(Duration::ZERO)).use_notify(false)).unwrap();
    let (mut tables_rebuilt, mut decoder, mut schema, mut applied) =
        (Materializer::default(), Decoder::new(), None, HashSet::new());
    while let Some(e) = w.next_event().unwrap() {
        let Event::Batch(b) = e else { continue };
        for i in 0..b.len() {
            let Ok(m) = b.decode(i, &mut decoder) else { continue };
            for u in m.updates() {
                if wanted.contains(&u.digest()) && applied.insert(u.digest()) {
                    tables_rebuilt.apply_update(&u);
                }
            }
        }
        schema = Some(b.schema().clone());
    }
    assert_eq!(applied, wanted, "every output change is one of node 1's updates");
    let rebuilt = tables_rebuilt.row_sets(
        schema.as_ref().unwrap(),
        "rf3",
        &["kv", "clustered", "coll", "counters"],
        read_time(&rf3),
    );
    assert!(rebuilt == driver_final_state(&rf3), "the tables rebuilt from the output differ from Cassandra's");
    for tmp in tmps {
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
