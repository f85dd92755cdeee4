//! The CDC watcher: the idx parser under the truncate-then-write race; the
//! `tail` example following a `cdc_raw` fed by a Cassandra-like writer (same
//! output as `dump` on the finished files, never a decoy from past the
//! durable offset); crash and resume from the checkpoint; cleanup only of
//! finished, acknowledged, undamaged segments; losses made visible.

mod common;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cassandra_commitlog::builder::{CellKind, CellSpec, ColumnSpec, RowSpec, Unfiltered, UpdateSpec, encode_mutation};
use cassandra_commitlog::cdc::{
    Checkpoint, CheckpointFile, CleanupHook, DeleteFiles, Event, Position, SegmentFiles, WatchOptions, Watcher,
    parse_cdc_index,
};
use cassandra_commitlog::location::Location;
use cassandra_commitlog::mutation::Liveness;
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{Keys, SegmentName};
use common::cassandra_writer::{CassandraWriter, DECOY};
use common::{corpus, corpus_keys, example, segment_dirs, segment_files};

#[test]
fn idx_parser_under_every_prefix_of_every_corpus_idx() {
    let Some(corpus) = corpus() else { return };
    let mut files = 0;
    for dir in segment_dirs(&corpus) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with("_cdc.idx") {
                continue;
            }
            let text = std::fs::read(&path).unwrap();
            let full = parse_cdc_index(&text, &Location::default()).unwrap().unwrap();
            let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
            for cut in 0..=text.len() {
                // What a reader racing the truncate-then-write can see.
                let got = parse_cdc_index(&text[..cut], &Location::default()).unwrap();
                let Some(got) = got else {
                    assert_eq!(cut, 0, "only an empty file is not ready");
                    continue;
                };
                assert!(got.offset > 0 && got.offset <= full.offset, "{}: prefix of {cut}", path.display());
                if cut > digits {
                    assert_eq!(got.offset, full.offset, "the offset is whole once a line end follows it");
                }
                assert_eq!(got.completed, full.completed && cut == text.len(), "{}: {cut}", path.display());
            }
            files += 1;
        }
    }
    assert!(files >= 70, "{files} idx files");
}

/// A mutation of `cdc_test.scalars` that never happened.
fn decoy(schema: &Schema) -> Vec<u8> {
    let t = schema.table("cdc_test", "scalars").unwrap();
    let cell = CellSpec { timestamp: 1, kind: CellKind::Live, path: None, value: DECOY.as_bytes().to_vec() };
    let u = UpdateSpec {
        table_id: t.id,
        key: 424242i32.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(RowSpec {
            clustering: vec![],
            liveness: Some(Liveness { timestamp: 1, expiry: None }),
            deletion: None,
            columns: vec![("c_text".into(), ColumnSpec::Simple(cell))],
        })],
    };
    encode_mutation(&[(t, &u)], false)
}

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

fn lines(bytes: &[u8]) -> Vec<String> {
    // A line cut by a kill has no newline: it was not printed.
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    if out.last().is_some_and(|l| !l.ends_with('\n')) {
        out.pop();
    }
    out.into_iter().map(|l| l.trim_end().to_owned()).collect()
}

fn dump_cdc(dir: &Path, schema: &Path, key_args: &[String]) -> Vec<String> {
    dump_cdc_with(dir, &[OsStr::new("--schema"), schema.as_os_str()], key_args)
}

/// `dump --cdc` with these schema arguments.
fn dump_cdc_with(dir: &Path, schema_args: &[&OsStr], key_args: &[String]) -> Vec<String> {
    let mut cmd = Command::new(example("dump"));
    cmd.args(key_args).args(schema_args).arg("--cdc").arg(dir);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    lines(&out.stdout)
}

/// A backlog: full batches, decoded by `tail` on several threads (runs of
/// entries to whichever thread is free), come out as `dump` prints them.
#[test]
fn tail_on_a_backlog_with_threads_prints_what_dump_prints() {
    let Some(corpus) = corpus() else { return };
    for capture in ["cassandra-4.0.0", "cassandra-4.0.0-lz4", "cassandra-4.0.0-encrypted"] {
        let schema_path = corpus.join(capture).join("schema_after_phase2/schema_internals.cql");
        let (_, key_args) = keys_for(&corpus, capture);
        let (tmp, dst) = copy_cdc_raw(&corpus.join(capture).join("cdc_raw_after_shutdown"));
        let want = dump_cdc(&dst, &schema_path, &key_args);
        for threads in ["1", "3"] {
            let out = Command::new(example("tail"))
                .args(&key_args)
                .arg("--schema")
                .arg(&schema_path)
                .arg("--checkpoint")
                .arg(tmp.path().join(format!("cp-{threads}.json")))
                .args(["--idle-exit", "0.2", "--no-notify", "--max-batch", "4096", "--threads", threads])
                .arg(&dst)
                .output()
                .unwrap();
            assert!(out.status.success(), "{capture}: {}", String::from_utf8_lossy(&out.stderr));
            let got = lines(&out.stdout);
            assert_eq!(got.len(), want.len(), "{capture}, {threads} threads");
            assert!(got == want, "{capture}, {threads} threads: tail and dump differ");
        }
        assert!(want.len() > 1500);
    }
}

#[test]
fn tail_follows_a_cdc_raw_written_like_cassandra() {
    let Some(corpus) = corpus() else { return };
    for (capture, notify) in
        [("cassandra-4.0.0", true), ("cassandra-4.0.0-lz4", false), ("cassandra-4.0.0-encrypted", true)]
    {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("cdc_raw");
        std::fs::create_dir(&dst).unwrap();
        let schema_path = corpus.join(capture).join("schema_after_phase2/schema_internals.cql");
        let schema = Schema::parse(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
        let (keys, key_args) = keys_for(&corpus, capture);
        let writer = CassandraWriter {
            dst: dst.clone(),
            pace: Duration::from_micros(700),
            decoy_mutation: decoy(&schema),
            keys,
        };
        let sources = segment_files(&corpus.join(capture).join("cdc_raw_after_shutdown"));
        let mut tail = Command::new(example("tail"));
        tail.args(&key_args)
            .arg("--schema")
            .arg(&schema_path)
            .arg("--checkpoint")
            .arg(tmp.path().join("cp.json"))
            .args(["--idle-exit", "3", "--poll-ms", "20"])
            .arg(&dst)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !notify {
            tail.arg("--no-notify");
        }
        let mut child = tail.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::BufReader::new(stdout).read_to_end(&mut out).unwrap();
            out
        });
        // Drain stderr too: a full pipe would block the child.
        let stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut err = String::new();
            std::io::BufReader::new(stderr).read_to_string(&mut err).unwrap();
            err
        });
        writer.replay(&sources);
        let out = reader.join().unwrap();
        let status = child.wait().unwrap();
        let err = errors.join().unwrap();
        assert!(status.success(), "{capture}: {err}");
        let got = lines(&out);
        assert!(!got.iter().any(|l| l.contains(DECOY)), "{capture}: a decoy from past the durable offset was emitted");
        let want = dump_cdc(&dst, &schema_path, &key_args);
        assert!(!want.iter().any(|l| l.contains(DECOY)));
        assert_eq!(got.len(), want.len(), "{capture}");
        assert!(got == want, "{capture}: tail and dump differ");
        assert!(got.len() > 1500);
        assert!(!err.contains("\"lost\"") && !err.contains("\"damaged\""), "{capture}: {err}");
        assert!(err.lines().count() < 10, "{capture}: torn idx reads are not reported as steps back: {err}");
    }
}

fn position(line: &str) -> (i64, u64) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (v["segment_id"].as_i64().unwrap(), v["position"].as_u64().unwrap())
}

#[test]
fn killed_and_restarted_tail_loses_nothing_and_repeats_nothing_before_its_checkpoint() {
    killed_and_restarted(false);
}

/// The same with the schema from the log: the segments holding the DDL are
/// deleted once acknowledged, so a restarted tail decodes the data after a
/// DDL only with the schema state saved with its checkpoint. Every other
/// run is killed right after it printed a schema change (after the DDL's
/// batch was checkpointed, before the data that uses it).
#[test]
fn killed_between_a_ddl_and_its_data_tail_goes_on_with_the_saved_schema() {
    killed_and_restarted(true);
}

fn killed_and_restarted(from_log: bool) {
    let Some(corpus) = corpus() else { return };
    let capture = corpus.join("cassandra-4.0.0");
    let schema_path = capture.join("schema_after_phase2/schema_internals.cql");
    let schema_args: Vec<&OsStr> = if from_log {
        vec![OsStr::new("--schema-from-log")]
    } else {
        vec![OsStr::new("--schema"), schema_path.as_os_str()]
    };
    let (tmp, dst) = copy_cdc_raw(&capture.join("cdc_raw_after_shutdown"));
    let want = dump_cdc_with(&dst, &schema_args, &[]);
    let ddl_positions: Vec<(i64, u64)> =
        want.iter().filter(|l| l.contains("\"schema_change\"")).map(|l| position(l)).collect();
    assert_eq!(ddl_positions.len(), if from_log { 10 } else { 0 });
    let checkpoint = CheckpointFile::new(tmp.path().join("cp.json"));
    let mut seen: Vec<(i64, u64)> = Vec::new();
    let mut kills_after_ddl = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut kills, mut finished, mut runs_with_output) = (0, false, 0);
    // Each run is killed at a random moment after it has printed something
    // (so that every round makes progress whatever the machine's load),
    // until a run finishes by itself.
    for round in 0..400 {
        let before = checkpoint.load().unwrap().map(|c| (c.position.segment_id, c.position.offset));
        let out_path = tmp.path().join(format!("out-{round}"));
        let mut child = Command::new(example("tail"))
            .args(&schema_args)
            .arg("--checkpoint")
            .arg(checkpoint.path())
            .args(["--idle-exit", "0.5", "--max-batch", "8", "--cleanup", "delete", "--pause-after-ddl", "200"])
            .arg(&dst)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let started = std::time::Instant::now();
        let after_ddl = from_log;
        let mut first_output = None;
        // The first schema change the checkpoint has not passed yet, when
        // it is near (a far one is left to later rounds).
        let ahead =
            |p: (i64, u64)| want.iter().filter(|l| before.is_none_or(|b| position(l) > b) && position(l) < p).count();
        let target = ddl_positions.iter().copied().find(|p| before.is_none_or(|b| *p > b)).filter(|p| ahead(*p) < 64);
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let printed = std::fs::read(&out_path).map(|b| b.contains(&b'\n')).unwrap_or(false);
            if printed && first_output.is_none() {
                first_output = Some(std::time::Instant::now());
            }
            // Rounds after a DDL are killed the moment the checkpoint reaches
            // the next DDL's own position (its batch saved, the data after it
            // not yet read); the others soon after any output.
            let reached = match (after_ddl, target) {
                (true, Some(t)) => checkpoint
                    .load()
                    .ok()
                    .flatten()
                    .map(|cp| (cp.position.segment_id, cp.position.offset))
                    .filter(|p| *p >= t),
                _ => None,
            };
            let normal = printed && !(after_ddl && target.is_some());
            if reached.is_some() || normal || started.elapsed() > Duration::from_secs(20) {
                if normal {
                    std::thread::sleep(Duration::from_micros(rng % 3000));
                }
                kills_after_ddl += usize::from(reached.is_some() && reached == target);
                break child.try_wait().unwrap();
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        if exited.is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
        let out = lines(&std::fs::read(&out_path).unwrap());
        if from_log {
            let bad: Vec<_> = out.iter().filter(|l| l.contains("\"error\"")).collect();
            assert!(bad.is_empty(), "round {round}: lines that did not decode: {bad:?}");
        }
        let printed: Vec<(i64, u64)> = out.iter().map(|l| position(l)).collect();
        if let Some(cp) = before {
            assert!(printed.iter().all(|p| *p > cp), "round {round}: printed again what the checkpoint had");
        }
        runs_with_output += usize::from(!printed.is_empty());
        seen.extend(printed);
        if exited.is_some_and(|s| s.success()) {
            finished = true;
            break;
        }
    }
    assert!(finished, "tail never got to its idle exit");
    assert!(kills >= 20, "only {kills} kills");
    assert!(runs_with_output >= 5, "the stream was cut across only {runs_with_output} runs");
    eprintln!("{kills} kills ({kills_after_ddl} right after a schema change), output in {runs_with_output} runs");
    if from_log {
        assert!(kills_after_ddl >= 5, "only {kills_after_ddl} kills after a schema change");
    }
    seen.sort();
    seen.dedup();
    // A schema change or truncation line has its entry's position.
    let mut want_positions: Vec<(i64, u64)> = want.iter().map(|l| position(l)).collect();
    want_positions.dedup();
    assert!(seen == want_positions, "the union of all runs is the whole stream");
    // Every finished segment was deleted; the ones without an idx stay.
    let left: Vec<String> =
        std::fs::read_dir(&dst).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|n| !n.ends_with("_cdc.idx")), "{left:?}");
    assert_eq!(left.len(), 2, "the two preallocated segments: {left:?}");
}

// ---------- cleanup and losses, in process ----------

/// A copy of the files of a `cdc_raw` directory, in `cdc_raw` of a
/// temporary directory.
fn copy_cdc_raw(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("cdc_raw");
    std::fs::create_dir(&dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
    }
    (tmp, dst)
}

fn fixture_copy() -> (tempfile::TempDir, PathBuf, Arc<Schema>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let (tmp, dst) = copy_cdc_raw(&src.join("cdc_raw"));
    let schema = Schema::parse(&std::fs::read_to_string(src.join("cdc_schema.cql")).unwrap()).unwrap();
    (tmp, dst, Arc::new(schema))
}

fn opts(dir: &Path, schema: &Arc<Schema>) -> WatchOptions {
    WatchOptions::new(dir, schema.clone())
        .idle_timeout(Some(Duration::from_millis(300)))
        .poll_interval(Duration::from_millis(20))
}

fn exists(dir: &Path, id: i64) -> bool {
    dir.join(SegmentName { version: 7, id }.file_name()).exists()
}

#[test]
fn cleanup_waits_for_completion_and_acknowledgement() {
    let (_tmp, dir, schema) = fixture_copy();
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(DeleteFiles)).unwrap();
    let mut batches = Vec::new();
    while let Some(e) = w.next_event().unwrap() {
        match e {
            Event::Batch(b) => batches.push(b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(batches.len(), 2);
    assert!(batches[0].completed && !batches[1].completed);
    // The owned form, sent to another thread, renders as the borrowed one.
    let mut decoder = cassandra_commitlog::mutation::Decoder::new();
    let owned = batches[0].owned(&mut decoder);
    let direct: Vec<String> = (0..batches[0].len())
        .map(|i| serde_json::to_string(&batches[0].decode(i, &mut decoder).unwrap()).unwrap())
        .collect();
    let sent = std::thread::spawn(move || owned.iter().map(|m| serde_json::to_string(m).unwrap()).collect::<Vec<_>>());
    assert_eq!(sent.join().unwrap(), direct);
    assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 8);
    assert!(exists(&dir, 2000), "finished but not acknowledged: kept");
    assert_eq!(w.metrics().awaiting_cleanup, 0);
    // Acknowledging everything: only the finished segment goes.
    w.ack(batches[1].to);
    assert_eq!(w.metrics().awaiting_cleanup, 1);
    let mut cleaned = Vec::new();
    while let Some(e) = w.next_event().unwrap() {
        if let Event::Cleaned { segment_id } = e {
            cleaned.push(segment_id);
        }
    }
    assert_eq!(cleaned, [2000]);
    assert!(!exists(&dir, 2000) && !dir.join("CommitLog-7-2000_cdc.idx").exists());
    assert!(exists(&dir, 2001), "live segment: kept");
    assert!(exists(&dir, 2002), "segment without idx: kept");
    let m = w.metrics();
    assert_eq!((m.lag_bytes, m.lag_segments, m.awaiting_cleanup), (0, 0, 0));
    assert_eq!(m.consumed, Some(Position { segment_id: 2001, offset: 309 }));
}

/// Flips a byte inside the first mutation of the fixture's finished segment.
fn damage_the_finished_segment(dir: &Path) {
    let path = dir.join("CommitLog-7-2000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20 + 8 + 8 + 30] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
}

#[test]
fn damaged_segments_are_reported_and_never_cleaned_up() {
    let (_tmp, dir, schema) = fixture_copy();
    damage_the_finished_segment(&dir);
    let cleaned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = cleaned.clone();
    let hook = move |_: &SegmentFiles| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    };
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(hook)).unwrap();
    let mut losses = 0;
    while let Some(e) = w.next_event().unwrap() {
        if let Event::Batch(b) = e {
            losses += b.losses.len();
            w.ack(b.to);
        }
    }
    assert_eq!(losses, 1);
    assert_eq!(cleaned.load(std::sync::atomic::Ordering::SeqCst), 0, "a damaged segment is never cleaned up");
    assert!(exists(&dir, 2000));
    assert_eq!(w.metrics().damaged_segments, 1);
}

#[test]
fn a_checkpoint_file_written_before_damaged_lists_existed_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cp.json");
    std::fs::write(&path, r#"{"position":{"segment_id":1795433791762,"offset":59709},"segment_completed":true}"#)
        .unwrap();
    let file = CheckpointFile::new(&path);
    let cp = file.load().unwrap().unwrap();
    assert_eq!(cp, Checkpoint::at(Position { segment_id: 1795433791762, offset: 59709 }, true));
    assert!(cp.damaged.is_empty());
    // And one with damaged segments round-trips.
    let cp = Checkpoint { damaged: vec![1795433791760, 1795433791761], ..cp };
    file.save(&cp).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains(r#""damaged":[1795433791760,1795433791761]"#));
    assert_eq!(file.load().unwrap(), Some(cp));
}

#[test]
fn a_damaged_segment_stays_damaged_across_a_restart_from_the_checkpoint() {
    let (tmp, dir, schema) = fixture_copy();
    damage_the_finished_segment(&dir);
    let cleaned = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = |cleaned: &Arc<std::sync::Mutex<Vec<i64>>>| {
        let c = cleaned.clone();
        move |f: &SegmentFiles| {
            c.lock().unwrap().push(f.name.id);
            Ok(())
        }
    };
    // The first run reads everything, acknowledges it and saves each
    // batch's checkpoint, as a consumer does.
    let file = CheckpointFile::new(tmp.path().join("cp.json"));
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(hook(&cleaned))).unwrap();
    let mut last = None;
    while let Some(e) = w.next_event().unwrap() {
        if let Event::Batch(b) = e {
            file.save(&b.checkpoint()).unwrap();
            w.ack(b.to);
            last = Some(b.to);
        }
    }
    assert_eq!(last.map(|p| p.segment_id), Some(2001), "the run ends in the live segment");
    drop(w);
    let saved = file.load().unwrap().unwrap();
    assert_eq!(saved.damaged, [2000], "the checkpoint remembers the damaged segment behind it");
    // Restarted from the checkpoint, with the cleanup hook: segment 2000
    // lies behind the checkpoint, completed and acknowledged, and is still
    // damaged: its files stay.
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(hook(&cleaned)).start(Some(saved))).unwrap();
    while let Some(e) = w.next_event().unwrap() {
        match e {
            Event::Batch(b) => {
                let saved = b.checkpoint();
                assert_eq!(saved.damaged, [2000]);
                w.ack(b.to);
            }
            Event::Cleaned { segment_id } => panic!("segment {segment_id} cleaned up"),
            _ => {}
        }
    }
    assert_eq!(*cleaned.lock().unwrap(), Vec::<i64>::new());
    assert!(exists(&dir, 2000));
    assert_eq!(w.metrics().damaged_segments, 1);
}

#[test]
fn vanished_segments_are_lost_and_preallocated_ones_are_not() {
    let (_tmp, dir, schema) = fixture_copy();
    let mut w = Watcher::new(opts(&dir, &schema).max_batch(2)).unwrap();
    // Read the first batch of segment 2000, then it disappears (as under
    // cdc_block_writes: false), and so does the preallocated 2002.
    let Some(Event::Batch(first)) = w.next_event().unwrap() else { panic!("a batch first") };
    assert_eq!((first.segment_id, first.len()), (2000, 2));
    std::fs::remove_file(dir.join("CommitLog-7-2000.log")).unwrap();
    std::fs::remove_file(dir.join("CommitLog-7-2000_cdc.idx")).unwrap();
    std::fs::remove_file(dir.join("CommitLog-7-2002.log")).unwrap();
    let mut lost = Vec::new();
    let mut later = 0;
    while let Some(e) = w.next_event().unwrap() {
        match e {
            Event::Lost { segment_id, from, to } => lost.push((segment_id, from, to)),
            Event::Batch(b) => {
                assert_eq!(b.segment_id, 2001, "reading goes on with the next segment");
                later += b.len();
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lost, [(2000, first.to.offset, Some(602))]);
    assert_eq!(later, 3);
}

#[test]
fn a_restart_resumes_after_its_checkpoint_and_reports_a_vanished_checkpoint_segment() {
    let (tmp, dir, schema) = fixture_copy();
    let cp = Checkpoint::at(Position { segment_id: 2000, offset: 429 }, false);
    let mut w = Watcher::new(opts(&dir, &schema).start(Some(cp.clone()))).unwrap();
    let mut positions = Vec::new();
    while let Some(e) = w.next_event().unwrap() {
        if let Event::Batch(b) = e {
            positions.extend(b.entries.iter().map(|e| (e.context.segment_id, e.context.position)));
        }
    }
    assert_eq!(positions, [(2000, 500), (2000, 594), (2001, 179), (2001, 231), (2001, 309)]);
    // The checkpoint file itself: durable, and exactly what was saved.
    let file = CheckpointFile::new(tmp.path().join("cp.json"));
    assert_eq!(file.load().unwrap(), None);
    file.save(&cp).unwrap();
    assert_eq!(file.load().unwrap(), Some(cp.clone()));
    assert!(!tmp.path().join("cp.json.tmp").exists());
    // If the checkpoint's segment is gone before it was finished: a loss.
    std::fs::remove_file(dir.join("CommitLog-7-2000.log")).unwrap();
    let mut w = Watcher::new(opts(&dir, &schema).start(Some(cp))).unwrap();
    let Some(Event::Lost { segment_id: 2000, from: 429, to: None }) = w.next_event().unwrap() else {
        panic!("lost first")
    };
}

#[test]
fn failed_cleanups_are_reported_and_retried_and_io_errors_clean_nothing() {
    let (_tmp, dir, schema) = fixture_copy();
    let mut failures = 2;
    let hook = move |files: &SegmentFiles| {
        if failures > 0 {
            failures -= 1;
            return Err(std::io::Error::other("archive full"));
        }
        DeleteFiles.cleanup(files)
    };
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(hook).idle_timeout(Some(Duration::from_millis(800)))).unwrap();
    let (mut failed, mut cleaned) = (0, 0);
    while let Some(e) = w.next_event().unwrap() {
        match e {
            Event::Batch(b) => w.ack(b.to),
            Event::CleanupFailed { segment_id: 2000, .. } => failed += 1,
            Event::Cleaned { segment_id: 2000 } => cleaned += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((failed, cleaned), (2, 1));
    // An I/O error (a segment that cannot be read as a file) stops the call
    // and is no reason to clean anything up.
    let (_tmp, dir, schema) = fixture_copy();
    let log = dir.join("CommitLog-7-2000.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let mut w = Watcher::new(opts(&dir, &schema).cleanup(DeleteFiles)).unwrap();
    let err = loop {
        match w.next_event() {
            Err(e) => break e,
            Ok(Some(Event::Batch(b))) => w.ack(b.to),
            Ok(other) => panic!("{other:?}"),
        }
    };
    assert!(err.to_string().contains("CommitLog-7-2000.log"), "{err}");
    assert!(log.is_dir() && dir.join("CommitLog-7-2000_cdc.idx").exists());
}

#[test]
fn idx_going_backwards_is_ignored_and_reported() {
    let (_tmp, dir, schema) = fixture_copy();
    let mut w = Watcher::new(opts(&dir, &schema)).unwrap();
    while let Some(e) = w.next_event().unwrap() {
        assert!(matches!(e, Event::Batch(_)));
    }
    std::fs::write(dir.join("CommitLog-7-2001_cdc.idx"), "200").unwrap();
    let e = w.next_event().unwrap();
    assert!(matches!(e, Some(Event::IdxBackwards { segment_id: 2001, previous: 309, found: 200 })), "{e:?}");
    std::fs::write(dir.join("CommitLog-7-2001_cdc.idx"), "not a number").unwrap();
    let e = w.next_event().unwrap();
    assert!(matches!(e, Some(Event::IdxMalformed(_))), "{e:?}");
}

/// A checkpoint with schema state: the state is kept beside it, once per
/// state; older states are removed; a damaged state file is an error that
/// says so, not a silently different schema.
#[test]
fn a_checkpoint_keeps_its_schema_state_beside_it() {
    use cassandra_commitlog::cdc::SchemaState;
    use cassandra_commitlog::schema::{Release, SchemaTracker};
    let tmp = tempfile::tempdir().unwrap();
    let file = CheckpointFile::new(tmp.path().join("cp.json"));
    let tracker = SchemaTracker::new(Release::Cassandra4);
    let state = SchemaState::of(&tracker);
    let mut cp = Checkpoint::at(Position { segment_id: 1, offset: 10 }, false);
    cp.schema = Some(state.clone());
    file.save(&cp).unwrap();
    cp.position.offset = 20;
    file.save(&cp).unwrap();
    assert_eq!(file.load().unwrap(), Some(cp.clone()));
    let sidecars = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".schema-"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(sidecars().len(), 1);
    let restored = file.load().unwrap().unwrap().schema.unwrap().tracker().unwrap();
    assert_eq!(restored.schema().tables().count(), tracker.schema().tables().count());
    // Another state replaces the file; the old one goes.
    let mut other = tracker.save();
    other.extend(b" ");
    cp.schema = Some(SchemaState::from_bytes(other));
    file.save(&cp).unwrap();
    assert_eq!(sidecars().len(), 1);
    // Damage to the state file is reported with both CRCs.
    let path = tmp.path().join(&sidecars()[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = file.load().unwrap_err().to_string();
    assert!(err.contains("schema state CRC") && err.contains(".schema-"), "{err}");
}

/// A batch decoded on several threads gives, entry by entry, what
/// `decode` gives, whether as a value per entry (`map_parallel`) or as an
/// output a run of entries (`fold_parallel`).
#[test]
fn a_batch_decoded_on_several_threads_is_the_batch_decoded_in_turn() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("cassandra-4.0.0-lz4/cdc_raw_after_shutdown");
    let mut w = Watcher::new(
        WatchOptions::schema_from_log(&dir).idle_timeout(Some(Duration::from_millis(200))).use_notify(false),
    )
    .unwrap();
    let mut decoder = cassandra_commitlog::mutation::Decoder::new();
    let (mut batches, mut longest) = (0, 0);
    while let Some(e) = w.next_event().unwrap() {
        let Event::Batch(b) = e else { continue };
        let want: Vec<String> = (0..b.len())
            .map(|i| match b.decode(i, &mut decoder) {
                Ok(m) => serde_json::to_string(&m).unwrap(),
                Err(u) => serde_json::to_string(&*u).unwrap(),
            })
            .collect();
        // Each mutation keeps its entry's context (file, segment, position).
        let contexts: Vec<_> = b.entries.iter().map(|e| Some(e.context.clone())).collect();
        for threads in [1, 2, 5] {
            let got = b.map_parallel(
                threads,
                || (),
                |_, d| match d {
                    Ok(m) => serde_json::to_string(&m).unwrap(),
                    Err(u) => serde_json::to_string(&*u).unwrap(),
                },
            );
            assert_eq!(got, want);
            let parts = b.fold_parallel(
                threads,
                || (Vec::new(), Vec::new()),
                |(lines, ctxs): &mut (Vec<String>, Vec<_>), d| {
                    ctxs.push(d.as_ref().ok().map(|m| m.context().clone()));
                    lines.push(match d {
                        Ok(m) => serde_json::to_string(&m).unwrap(),
                        Err(u) => serde_json::to_string(&*u).unwrap(),
                    });
                },
                std::mem::take,
            );
            let (lines, ctxs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
            assert_eq!(lines.concat(), want);
            let decoded = ctxs.concat();
            for (got, want) in decoded.iter().zip(&contexts) {
                assert!(got.is_none() || got == want, "{got:?} vs {want:?}");
            }
            assert_eq!(decoded.len(), contexts.len());
        }
        batches += 1;
        longest = longest.max(b.len());
        w.ack(b.to);
    }
    assert!(batches > 10);
    // Batches long enough that runs go to several threads.
    assert!(longest >= 4 * 64, "longest batch {longest}");
}

/// Without a cleanup hook, finished segments are kept, and the metrics say
/// so without counting them as awaiting a cleanup that will never come.
#[test]
fn without_a_hook_finished_segments_are_kept_not_awaiting() {
    let (_tmp, dir, schema) = fixture_copy();
    let mut w = Watcher::new(opts(&dir, &schema)).unwrap();
    let mut last = None;
    while let Some(e) = w.next_event().unwrap() {
        if let Event::Batch(b) = e {
            last = Some(b.to);
        }
    }
    w.ack(last.unwrap());
    let m = w.metrics();
    assert_eq!((m.awaiting_cleanup, m.kept), (0, 1));
    assert!(exists(&dir, 2000));
}

/// Every event of a watcher over `dir`, as text: a batch with its range,
/// the CRC of each entry's bytes and its position, its losses and schema
/// events; every other event as it is.
fn watch_events(dir: &Path, keys: &Keys, read_ahead: bool, max_batch: usize) -> Vec<String> {
    watch_events_with(dir, keys, read_ahead, max_batch, 32 << 20)
}

fn watch_events_with(dir: &Path, keys: &Keys, read_ahead: bool, max_batch: usize, cap: usize) -> Vec<String> {
    let opts = WatchOptions::schema_from_log(dir)
        .read_ahead_bytes(cap)
        .read_options(cassandra_commitlog::segment::ReadOptions::new().keys(keys.clone()))
        .idle_timeout(Some(Duration::ZERO))
        .use_notify(false)
        .max_batch(max_batch)
        .read_ahead(read_ahead);
    let mut w = Watcher::new(opts).unwrap();
    let mut out = Vec::new();
    while let Some(e) = w.next_event().unwrap() {
        out.push(match e {
            Event::Batch(b) => {
                w.ack(b.to);
                let entries: Vec<(u32, u64)> =
                    b.entries.iter().map(|e| (crc32fast::hash(&e.bytes), e.context.position)).collect();
                format!(
                    "batch {} {:?}..{:?} completed={} version={} {entries:?} {:?} {:?}",
                    b.segment_id,
                    b.from,
                    b.to,
                    b.completed,
                    b.schema().version(),
                    b.losses,
                    b.schema_events
                )
            }
            other => format!("{other:?}"),
        });
    }
    out
}

/// Reading ahead changes nothing: on every `cdc_raw` of the corpus, and on
/// a copy whose segments are damaged in their middle, the watcher gives the
/// same events with read-ahead as without, batch for batch, for large and
/// small batches.
#[test]
fn reading_ahead_gives_the_events_of_reading_in_turn() {
    let Some(corpus) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    let source = corpus.join("cassandra-4.0.0-lz4/cdc_raw_after_shutdown");
    for f in std::fs::read_dir(&source).unwrap() {
        let f = f.unwrap().path();
        let mut bytes = std::fs::read(&f).unwrap();
        if SegmentName::from_path(&f).is_some() && bytes.len() > 1000 {
            // A section's `next` pointer (issue 9's case: a section lost,
            // resynchronised) and a byte of compressed data in the middle.
            bytes[85] ^= 0x01;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
        std::fs::write(damaged.join(f.file_name().unwrap()), bytes).unwrap();
    }
    let mut dirs: Vec<PathBuf> = segment_dirs(&corpus)
        .into_iter()
        .filter(|d| std::fs::read_dir(d).unwrap().any(|f| f.unwrap().path().to_string_lossy().ends_with("_cdc.idx")))
        .collect();
    dirs.push(damaged.clone());
    let mut read_ahead_batches = 0;
    for dir in &dirs {
        let capture = dir.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let (keys, _) = keys_for(&corpus, &capture);
        for max_batch in [4096, 97] {
            let ahead = watch_events(dir, &keys, true, max_batch);
            let in_turn = watch_events(dir, &keys, false, max_batch);
            assert_eq!(ahead.len(), in_turn.len(), "{}: {max_batch}", dir.display());
            for (a, b) in ahead.iter().zip(&in_turn) {
                assert_eq!(a, b, "{}: {max_batch}", dir.display());
            }
            read_ahead_batches += ahead.iter().filter(|e| e.starts_with("batch")).count();
        }
    }
    let damaged_events = watch_events(&damaged, &Keys::new(), true, 4096);
    let with_losses = damaged_events.iter().filter(|e| e.contains("Loss {")).count();
    assert!(with_losses >= 5, "the damaged copy has losses in most segments: {with_losses}");
    assert!(read_ahead_batches > 100);
}

/// On full 32 MiB LZ4 segments (the benchmark capture), with a copy cap of
/// 5 MB (under a segment's entries), reading ahead stops at its cap and
/// goes on from there: the same entries, losses and segment ends as
/// reading in turn, in the same order.
#[test]
fn reading_ahead_full_compressed_segments_goes_on_past_its_copy_cap() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("bench-4.0.0-lz4/cdc_raw");
    // Entries (segment, CRC of the bytes, position), losses and segment
    // ends in order, and the number of batches that ended short of
    // `max_batch` inside a segment.
    let flat = |read_ahead: bool| {
        let opts = WatchOptions::schema_from_log(&dir)
            .idle_timeout(Some(Duration::ZERO))
            .use_notify(false)
            .read_ahead(read_ahead)
            .read_ahead_bytes(5_000_000);
        let mut w = Watcher::new(opts).unwrap();
        let (mut items, mut short) = (Vec::new(), 0);
        while let Some(e) = w.next_event().unwrap() {
            let Event::Batch(b) = e else {
                items.push(format!("{e:?}"));
                continue;
            };
            w.ack(b.to);
            for e in &b.entries {
                items.push(format!("{} {} {}", b.segment_id, crc32fast::hash(&e.bytes), e.context.position));
            }
            items.extend(b.losses.iter().map(|l| format!("{l:?}")));
            if b.completed {
                items.push(format!("{} completed at {:?}", b.segment_id, b.to));
            } else if b.len() < 4096 && b.schema_events.is_empty() {
                short += 1;
            }
        }
        (items, short)
    };
    let (ahead, short) = flat(true);
    let (in_turn, _) = flat(false);
    assert!(short >= 3, "walks stopped at their cap: {short}");
    assert_eq!(ahead.len(), in_turn.len());
    assert!(ahead == in_turn, "same entries, losses and ends");
    assert_eq!(ahead.iter().filter(|i| i.contains("completed")).count(), 3);
}
