//! The node's lifecycle, on real files: what Cassandra writes into
//! `cdc_raw` when a node is killed and restarted, and what the crate makes
//! of it.
//!
//! - Copies of every capture altered exactly as a crash and a restart alter
//!   them (every idx rewritten by the replay as `<file length>\nCOMPLETED`;
//!   a middle segment left without `COMPLETED`, abandoned): `tail` prints
//!   what `dump --cdc` prints of the untouched directory.
//! - The real crash captures (`cassandra-4.0.0-crash-*`): a consumer living
//!   through the crash, its directory replaced copy by copy, and consumers
//!   started fresh after the restart deliver every entry of their copy,
//!   once, and rebuild the tables Cassandra returned.
//! - An idle `tail` costs next to no CPU.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cassandra_commitlog::cdc::{CheckpointFile, DeleteFiles, Event, WatchOptions, Watcher};
use cassandra_commitlog::mutation::{Decoder, Mutation};
use cassandra_commitlog::schema::{Schema, SchemaEvent};
use cassandra_commitlog::segment::{Keys, ReadOptions, Segment, SegmentName};
use common::materialize::{Materializer, driver_final_state, read_time};
use common::{CAPTURES, corpus, corpus_keys, example, reference_counts, segment_files};
use serde_json::Value as Json;

fn keys_for(corpus: &Path, capture: &str) -> (Keys, Vec<String>) {
    let mut keys = Keys::new();
    let mut args = Vec::new();
    for (folder, alias, key) in corpus_keys(corpus) {
        if folder == capture {
            args.push("--key".to_owned());
            args.push(format!("{alias}={}", key.iter().map(|b| format!("{b:02x}")).collect::<String>()));
            keys.insert(alias, key);
        }
    }
    (keys, args)
}

/// A writable copy of a directory's files.
fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap().path();
        let to = dst.join(f.file_name().unwrap());
        std::fs::write(&to, std::fs::read(&f).unwrap()).unwrap();
    }
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

fn dump_cdc(dir: &Path, key_args: &[String]) -> Vec<String> {
    let out =
        Command::new(example("dump")).args(key_args).args(["--schema-from-log", "--cdc"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stdout_lines(&out)
}

/// `tail` over `dir` until it has been idle `idle` seconds: its lines and
/// its stderr events.
fn tail(dir: &Path, key_args: &[String], extra: &[&str], idle: &str) -> (Vec<String>, Vec<Json>) {
    let checkpoint = checkpoint_of(dir);
    let out = Command::new(example("tail"))
        .args(key_args)
        .args(["--schema-from-log", "--no-notify", "--poll-ms", "20", "--idle-exit", idle])
        .args(extra)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", dir.display());
    let events = err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (stdout_lines(&out), events)
}

/// Where `tail` keeps its checkpoint for `dir`: beside it.
fn checkpoint_of(dir: &Path) -> PathBuf {
    dir.with_file_name(format!("{}.checkpoint", dir.file_name().unwrap().to_string_lossy()))
}

fn events_named<'a>(events: &'a [Json], name: &str) -> Vec<&'a Json> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The `_cdc.idx` files of a directory, by segment id.
fn idx_files(dir: &Path) -> BTreeMap<i64, PathBuf> {
    segment_files(dir)
        .into_iter()
        .filter_map(|f| {
            let name = SegmentName::from_path(&f).unwrap();
            let idx = f.with_file_name(name.cdc_index_file_name());
            idx.exists().then_some((name.id, idx))
        })
        .collect()
}

/// Every capture, altered as a restart after a crash alters it: each idx
/// rewritten by the replay with the segment's physical length (fact 4 of
/// the issue), then a middle segment's idx without `COMPLETED` (a crash the
/// replay did not finish, fact 5). `tail` prints exactly what `dump --cdc`
/// prints of the untouched directory, with `--cleanup delete` deleting
/// every segment it finished; the abandoned segment is reported once and
/// read to its end after its grace; with the rule off the stream stops
/// before it.
#[test]
fn tail_on_replayed_and_abandoned_copies_prints_what_dump_prints_of_the_untouched_directory() {
    let Some(corpus) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let replicas = ["node1", "node2", "node3"].map(|n| format!("cassandra-4.0.0-rf3/{n}"));
    for capture in CAPTURES.iter().copied().chain(replicas.iter().map(String::as_str)) {
        let (_, key_args) = keys_for(&corpus, capture);
        let folder = if capture.contains("rf3") { "cdc_raw_final" } else { "cdc_raw_after_shutdown" };
        let untouched = corpus.join(capture).join(folder);
        let want = dump_cdc(&untouched, &key_args);
        assert!(want.len() > 1500, "{capture}");
        let capture = capture.replace('/', "-");
        let capture = capture.as_str();

        // Every idx as the replay rewrites it: `<file length>\nCOMPLETED`.
        let replayed = tmp.path().join(format!("{capture}-replayed"));
        copy_dir(&untouched, &replayed);
        for (id, idx) in idx_files(&replayed) {
            let log = replayed.join(SegmentName { version: 7, id }.file_name());
            let len = std::fs::metadata(&log).unwrap().len();
            std::fs::write(&idx, format!("{len}\nCOMPLETED")).unwrap();
        }
        let (got, events) = tail(&replayed, &key_args, &["--cleanup", "delete"], "0.5");
        assert_eq!(got.len(), want.len(), "{capture}, replayed");
        assert!(got == want, "{capture}, replayed: tail and dump differ");
        // Each segment whose physical length is not its logical end says so.
        let compressed = ["lz4", "zstd", "encrypted", "node2"].iter().any(|c| capture.ends_with(c));
        let mismatches = events_named(&events, "idx_mismatch");
        assert!(mismatches.iter().all(|e| e["cause"] == "PhysicalLength"), "{events:?}");
        if compressed {
            assert_eq!(mismatches.len(), idx_files(&untouched).len(), "{capture}: {events:?}");
        }
        assert!(events_named(&events, "damaged").is_empty() && events_named(&events, "lost").is_empty());
        assert!(idx_files(&replayed).is_empty(), "{capture}: every finished segment cleaned up");
        compared += 1;
        if idx_files(&untouched).len() < 3 {
            // A replica's single segment: no middle one to abandon.
            continue;
        }

        // A middle segment without `COMPLETED`: abandoned by a crash.
        let abandoned = tmp.path().join(format!("{capture}-abandoned"));
        copy_dir(&untouched, &abandoned);
        let idxs = idx_files(&abandoned);
        let (&middle, middle_idx) = idxs.iter().nth(idxs.len() / 2).unwrap();
        let text = std::fs::read_to_string(middle_idx).unwrap();
        let offset: u64 = text.lines().next().unwrap().parse().unwrap();
        std::fs::write(middle_idx, offset.to_string()).unwrap();
        let (got, events) = tail(&abandoned, &key_args, &["--abandoned-after", "1"], "2");
        assert!(got == want, "{capture}, abandoned: tail and dump differ ({} vs {} lines)", got.len(), want.len());
        let reported = events_named(&events, "abandoned");
        assert_eq!(reported.len(), 1, "{capture}: {events:?}");
        assert_eq!(
            (reported[0]["segment_id"].as_i64(), reported[0]["idx_offset"].as_u64()),
            (Some(middle), Some(offset))
        );
        // The rule off: the stream stops at the abandoned segment's idx
        // offset (here its end), and never goes on.
        std::fs::remove_file(checkpoint_of(&abandoned)).unwrap();
        let (got, events) = tail(&abandoned, &key_args, &["--abandoned-after", "off"], "1.5");
        let position = |l: &String| -> i64 { serde_json::from_str::<Json>(l).unwrap()["segment_id"].as_i64().unwrap() };
        let prefix: Vec<&String> = want.iter().filter(|l| position(l) <= middle).collect();
        assert!(got.iter().collect::<Vec<_>>() == prefix, "{capture}: the rule off stops at the segment");
        assert!(events_named(&events, "abandoned").is_empty());
    }
    assert_eq!(compared, CAPTURES.len() + 3);
}

/// On a live capture nothing is abandoned, however short the grace: the
/// newest segment with an idx is never read past its offset.
#[test]
fn tail_on_a_live_capture_with_a_short_grace_prints_what_dump_prints() {
    let Some(corpus) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for capture in CAPTURES {
        let (_, key_args) = keys_for(&corpus, capture);
        let live = corpus.join(capture).join("cdc_raw_live");
        let dir = tmp.path().join(capture);
        copy_dir(&live, &dir);
        let want = dump_cdc(&live, &key_args);
        let (got, events) = tail(&dir, &key_args, &["--abandoned-after", "1"], "2");
        assert!(got == want, "{capture}: {} vs {} lines", got.len(), want.len());
        assert!(events_named(&events, "abandoned").is_empty(), "{events:?}");
    }
}

// ---------- the real crash captures ----------

const CRASHES: [&str; 2] = ["cassandra-4.0.0-crash-plain", "cassandra-4.0.0-crash-lz4rollover"];
const COPIES: [&str; 4] = ["cdc_raw_before_kill", "cdc_raw_after_kill", "cdc_raw_after_restart", "cdc_raw_final"];

/// Every entry of a copy's segments that have an idx (where Cassandra says
/// CDC data is), read to the end of their data: (segment, position, CRC of
/// the bytes). Counted against `reference_counts.jsonl` by the caller.
fn entries_of(dir: &Path) -> BTreeSet<(i64, u64, u32)> {
    let mut out = BTreeSet::new();
    for (id, _) in idx_files(dir) {
        let seg = Segment::open(dir.join(SegmentName { version: 7, id }.file_name())).unwrap();
        let mut reader = seg.reader(&ReadOptions::new().strict(true)).unwrap();
        while let Some(e) = reader.next_entry().unwrap() {
            out.insert((id, e.position, crc32fast::hash(e.mutation)));
        }
    }
    out
}

/// The reference walk's entry count over a copy's segments with an idx.
fn reference_entries(corpus: &Path, capture: &str, copy: &str) -> u64 {
    let folder = format!("{capture}/{copy}");
    reference_counts(corpus)
        .iter()
        .filter(|r| r["folder"] == folder.as_str() && !r["idx"].is_null())
        .map(|r| r["entries"].as_u64().unwrap())
        .sum()
}

/// Writes a copy of the node's `cdc_raw` over `dst` as the node would have
/// changed it: files written in place (a memory-mapped reader sees them
/// change, as it sees Cassandra's writes), idx files truncated and
/// rewritten, files the copy no longer has deleted. A file the consumer
/// cleaned up comes back if the copy has it: the replay links a replayed
/// segment into `cdc_raw` again when its link is missing.
fn apply_copy(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    let wanted: BTreeSet<_> = std::fs::read_dir(src).unwrap().map(|f| f.unwrap().file_name()).collect();
    for f in std::fs::read_dir(dst).unwrap() {
        let f = f.unwrap();
        if !wanted.contains(&f.file_name()) && SegmentName::from_path(&f.path()).is_some()
            || SegmentName::parse_cdc_index(&f.file_name().to_string_lossy()).is_some()
                && !wanted.contains(&f.file_name())
        {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    for name in &wanted {
        let (from, to) = (src.join(name), dst.join(name));
        let bytes = std::fs::read(&from).unwrap();
        if name.to_string_lossy().ends_with(".log") {
            let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&to).unwrap();
            assert!(f.metadata().unwrap().len() <= bytes.len() as u64, "segments only grow");
            f.write_all_at(&bytes, 0).unwrap();
        } else {
            std::fs::write(&to, &bytes).unwrap();
        }
    }
}

/// What a consumer got: entries (segment, position, CRC), tables rebuilt,
/// the write timestamps it saw, events other than batches.
#[derive(Default)]
struct Consumed {
    entries: Vec<(i64, u64, u32)>,
    tables: Materializer,
    timestamps: BTreeSet<i64>,
    schema: Option<Arc<Schema>>,
    events: Vec<String>,
}

impl Consumed {
    /// Drains a watcher until it is idle: every batch applied, checkpointed
    /// and acknowledged.
    fn drain(&mut self, w: &mut Watcher, checkpoints: &CheckpointFile) {
        let mut decoder = Decoder::new();
        while let Some(e) = w.next_event().unwrap() {
            let Event::Batch(b) = e else {
                self.events.push(format!("{e:?}"));
                continue;
            };
            for (i, entry) in b.entries.iter().enumerate() {
                self.entries.push((b.segment_id, entry.context.position, crc32fast::hash(&entry.bytes)));
                if let Ok(m) = b.decode(i, &mut decoder) {
                    self.tables.apply(&m);
                    timestamps(&m, &mut self.timestamps);
                }
            }
            for event in &b.schema_events {
                if let SchemaEvent::Truncated(t) = event {
                    self.tables.truncate(t.table_id);
                }
            }
            assert!(b.losses.is_empty(), "{:?}", b.losses);
            self.schema = Some(b.schema().clone());
            checkpoints.save(&b.checkpoint()).unwrap();
            w.ack(b.to);
        }
    }
}

/// Every write timestamp a mutation carries (liveness, cells, deletions):
/// each statement of the crash captures has its own.
fn timestamps(m: &Mutation<'_>, out: &mut BTreeSet<i64>) {
    for u in m.updates() {
        out.extend(u.partition_deletion().map(|d| d.timestamp));
        out.extend(u.range_tombstones().filter_map(|rt| rt.deletion()).map(|d| d.timestamp));
        for row in u.all_rows() {
            out.extend(row.liveness().map(|l| l.timestamp));
            out.extend(row.deletion().map(|d| d.time.timestamp));
            for col in row.columns() {
                out.extend(col.complex_deletion().map(|d| d.timestamp));
                out.extend(col.cells().map(|c| c.timestamp()));
            }
        }
    }
}

fn watch(dir: &Path, checkpoints: &CheckpointFile, cleanup: bool) -> Watcher {
    let opts = WatchOptions::schema_from_log(dir)
        .start(checkpoints.load().unwrap())
        .idle_timeout(Some(Duration::ZERO))
        .use_notify(false)
        .max_batch(500);
    Watcher::new(if cleanup { opts.cleanup(DeleteFiles) } else { opts }).unwrap()
}

/// The statements of a crash capture whose write the consumer delivered,
/// counted by phase and status (each has its own `USING TIMESTAMP`).
fn delivered_statements(capture: &Path, c: &Consumed) -> BTreeMap<(String, String), (u64, u64)> {
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(capture.join("expected.jsonl")).unwrap().lines() {
        let v: Json = serde_json::from_str(line).unwrap();
        let key = (v["phase"].as_str().unwrap().to_owned(), v["status"].as_str().unwrap().to_owned());
        let e = out.entry(key).or_default();
        e.0 += 1;
        e.1 += u64::from(c.timestamps.contains(&v["ts"].as_i64().unwrap()));
    }
    out
}

/// (a) One consumer living through the crash: its directory replaced copy
/// by copy (before the kill, after it, after the restart, final), one
/// watcher with one checkpoint and a cleanup hook, delivers every entry of
/// the final copy's segments, once; and so does a consumer restarted from
/// its checkpoint at every copy (as one restarted with the node).
#[test]
fn a_consumer_living_through_the_crash_delivers_every_entry_once() {
    let Some(corpus) = corpus() else { return };
    for capture in CRASHES {
        let cap = corpus.join(capture);
        let want = entries_of(&cap.join("cdc_raw_final"));
        assert_eq!(want.len() as u64, reference_entries(&corpus, capture, "cdc_raw_final"), "{capture}");
        for restarted in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("cdc_raw");
            let checkpoints = CheckpointFile::new(tmp.path().join("cp.json"));
            let mut consumed = Consumed::default();
            let mut w = None;
            for copy in COPIES {
                apply_copy(&cap.join(copy), &dir);
                if restarted || w.is_none() {
                    w = Some(watch(&dir, &checkpoints, true));
                }
                consumed.drain(w.as_mut().unwrap(), &checkpoints);
            }
            let what = format!("{capture}, restarted at every copy: {restarted}");
            let got: BTreeSet<_> = consumed.entries.iter().copied().collect();
            assert_eq!(got.len(), consumed.entries.len(), "{what}: an entry delivered twice");
            assert_eq!(got.len(), want.len(), "{what}");
            assert!(got == want, "{what}: other entries than the final copy's");
            assert!(!consumed.events.iter().any(|e| e.contains("Lost") || e.contains("Damaged")), "{what}");
            // The living consumer acknowledged and cleaned up every finished
            // segment; the replay's links back came and went again.
            let left: Vec<i64> = idx_files(&dir).into_keys().collect();
            assert!(left.is_empty(), "{what}: {left:?} {:?}", consumed.events);
        }
    }
}

/// (b) Consumers started fresh on the copy after the restart and on the
/// final copy deliver every entry of that copy; (c) the tables rebuilt from
/// the final copy's stream are Cassandra's `SELECT *`; and what a kill cost
/// in acknowledged statements is what the capture's notes say.
#[test]
fn consumers_started_after_the_restart_deliver_every_entry_and_rebuild_the_tables() {
    let Some(corpus) = corpus() else { return };
    for capture in CRASHES {
        let cap = corpus.join(capture);
        for copy in ["cdc_raw_after_restart", "cdc_raw_final"] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("cdc_raw");
            copy_dir(&cap.join(copy), &dir);
            let checkpoints = CheckpointFile::new(tmp.path().join("cp.json"));
            let mut consumed = Consumed::default();
            consumed.drain(&mut watch(&dir, &checkpoints, false), &checkpoints);
            let want = entries_of(&dir);
            assert_eq!(want.len() as u64, reference_entries(&corpus, capture, copy), "{capture}/{copy}");
            let got: BTreeSet<_> = consumed.entries.iter().copied().collect();
            assert_eq!(consumed.entries.len(), want.len(), "{capture}/{copy}");
            assert!(got == want, "{capture}/{copy}");
            if copy == "cdc_raw_final" {
                let schema = consumed.schema.as_ref().unwrap();
                let rebuilt = consumed.tables.row_sets(schema, "crash", &["kv", "clustered", "coll"], read_time(&cap));
                assert!(rebuilt == driver_final_state(&cap), "{capture}: the tables differ");
                let counts = delivered_statements(&cap, &consumed);
                let count = |phase: &str, status: &str| counts[&(phase.to_owned(), status.to_owned())];
                // Every statement acknowledged before the crash's last
                // sync and after the restart; none of the failed ones.
                let (a_total, a_seen) = count("A", "acked");
                assert_eq!(a_seen, a_total, "{capture}: phase A");
                let (c_total, c_seen) = count("C", "acked");
                assert_eq!((c_total, c_seen), (500, 500), "{capture}: phase C");
                assert_eq!(count("B", "error").1, 0, "{capture}: a failed write delivered");
                // The capture's notes (an independent decoder): phase B
                // statements acknowledged and found in the segments.
                let (b_total, b_seen) = count("B", "acked");
                let expected = if capture.contains("plain") { (7717, 7652) } else { (22586, 22287) };
                assert_eq!((b_total, b_seen), expected, "{capture}: phase B");
                eprintln!(
                    "{capture}: acknowledged statements delivered: A {a_seen}/{a_total}, B {b_seen}/{b_total}, C {c_seen}/{c_total}"
                );
            }
        }
    }
}

// ---------- idle costs nothing ----------

/// Clock ticks of CPU (user + system) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// An idle `tail` with its default inotify watch, on a copy of a live
/// capture whose backlog it has read: under 1% of a core over 4 seconds.
/// (Its own reads of the idx files once woke it again at once: 6.06 s wall,
/// 1.25 s user and 6.85 s system in 6 s.)
#[test]
fn an_idle_tail_uses_under_one_percent_of_a_core() {
    let Some(corpus) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cdc_raw");
    copy_dir(&corpus.join("cassandra-4.0.0/cdc_raw_live"), &dir);
    let mut child = Command::new(example("tail"))
        .args(["--schema-from-log", "--idle-exit", "30"])
        .arg("--checkpoint")
        .arg(tmp.path().join("cp.json"))
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The backlog is read well within this (the checkpoint is saved at
    // each batch; nothing changes after).
    let cp = CheckpointFile::new(tmp.path().join("cp.json"));
    let mut waited = 0;
    while cp.load().ok().flatten().is_none() && waited < 200 {
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    std::thread::sleep(Duration::from_secs(1));
    let tck: u64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let before = cpu_ticks(child.id());
    let interval = Duration::from_secs(4);
    std::thread::sleep(interval);
    let used = (cpu_ticks(child.id()) - before) as f64 / tck as f64;
    child.kill().unwrap();
    child.wait().unwrap();
    let share = used / interval.as_secs_f64();
    eprintln!("idle tail: {used:.3} s of CPU in {interval:?} ({:.2}% of a core)", share * 100.0);
    assert!(share < 0.01, "an idle tail used {:.1}% of a core", share * 100.0);
}
