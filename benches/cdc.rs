//! The CDC watcher's speed.
//!
//! - `latency/inotify`, `latency/poll-10ms`: from the moment a sync's idx
//!   rewrite is written to the moment the watcher hands the sync's mutation
//!   to its consumer. One iteration is one sync: a section with one entry is
//!   written into a live plain segment, then its idx is rewritten (truncate,
//!   then write), as Cassandra does. The mean per sync is criterion's; the
//!   median and 99th percentile over every sync measured are printed at the
//!   end (`latency: ... p50 ... p99`).
//! - `catchup/dump`, `catchup/watcher`: a backlog of finished segments
//!   (`../shared/corpus/bench-4.0.0`) turned into JSON lines: as the `dump`
//!   example does (read each segment to its idx offset, decode, serialize),
//!   and by a watcher started from scratch on the same directory.
//!
//! `cargo bench --bench cdc`

use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cassandra_commitlog::builder::{self, BuildFormat, SegmentBuilder};
use cassandra_commitlog::cdc::{Event, IdxState, WatchOptions, Watcher, read_cdc_index};
use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{ReadOptions, Segment, SegmentName};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SEGMENT_LEN: usize = 32 << 20;
const ID: i64 = 1_795_000_000_000;

fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::parse("CREATE TABLE ks.t (k int PRIMARY KEY, v text) WITH ID = 00000000-0000-0000-0000-00000000000b;")
            .unwrap(),
    )
}

/// One small mutation of `ks.t`.
fn mutation(schema: &Schema, n: i32) -> Vec<u8> {
    use builder::{CellKind, CellSpec, ColumnSpec, RowSpec, Unfiltered, UpdateSpec};
    let t = schema.table("ks", "t").unwrap();
    let cell = CellSpec { timestamp: n as i64, kind: CellKind::Live, path: None, value: b"a sync".to_vec() };
    let row = RowSpec { columns: vec![("v".into(), ColumnSpec::Simple(cell))], ..RowSpec::default() };
    let u = UpdateSpec {
        table_id: t.id,
        key: n.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(row)],
    };
    builder::encode_mutation(&[(t, &u)], false)
}

/// A live segment being synced, and a watcher following it on another thread.
struct Live {
    file: std::fs::File,
    idx: PathBuf,
    pos: usize,
    n: i32,
    schema: Arc<Schema>,
    seen: mpsc::Receiver<Instant>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start(notify: bool, poll: Duration) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let name = SegmentName { version: 7, id: ID };
        let bytes = SegmentBuilder::new(7, ID, BuildFormat::Plain).preallocate(SEGMENT_LEN).finish();
        let path = dir.path().join(name.file_name());
        std::fs::write(&path, &bytes).unwrap();
        let idx = dir.path().join(name.cdc_index_file_name());
        std::fs::write(&idx, "20").unwrap();
        let schema = schema();
        let (tx, seen) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let opts = WatchOptions::new(dir.path(), schema.clone())
            .use_notify(notify)
            .poll_interval(poll)
            .idle_timeout(Some(Duration::from_millis(200)));
        let mut watcher = Watcher::new(opts).unwrap();
        assert_eq!(watcher.is_watching(), notify);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match watcher.next_event() {
                    Ok(Some(Event::Batch(b))) => {
                        let at = Instant::now();
                        for _ in &b.entries {
                            let _ = tx.send(at);
                        }
                        watcher.ack(b.to);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        Live { file, idx, pos: 20, n: 0, schema, seen, stop, thread: Some(thread), _dir: dir }
    }

    /// One sync: a section with one entry, then the idx; returns the latency.
    fn sync(&mut self) -> Duration {
        self.n += 1;
        let mut entries = Vec::new();
        builder::entry(&mutation(&self.schema, self.n), &mut entries);
        let next = self.pos + 8 + entries.len();
        assert!(next + 8 <= SEGMENT_LEN, "the benchmark segment is full");
        self.file.write_at(&entries, (self.pos + 8) as u64).unwrap();
        self.file.write_at(&builder::marker(ID, self.pos as u32, next as u32), self.pos as u64).unwrap();
        self.pos = next;
        let start = Instant::now();
        let mut idx = std::fs::File::create(&self.idx).unwrap(); // truncate...
        idx.write_all(next.to_string().as_bytes()).unwrap(); // ...then write
        drop(idx);
        let got = self.seen.recv_timeout(Duration::from_secs(10)).expect("the watcher saw the sync");
        got.saturating_duration_since(start)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("latency");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    for (name, notify, poll) in
        [("inotify", true, Duration::from_millis(100)), ("poll-10ms", false, Duration::from_millis(10))]
    {
        let all = Arc::new(Mutex::new(Vec::new()));
        let mut live = Live::start(notify, poll);
        let record = all.clone();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = live.sync();
                    record.lock().unwrap().push(d);
                    total += d;
                }
                total
            })
        });
        let mut v = all.lock().unwrap().clone();
        if v.is_empty() {
            continue; // filtered out
        }
        v.sort();
        eprintln!(
            "latency/{name}: {} syncs, p50 {:?}, p99 {:?}, max {:?}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v.last().unwrap()
        );
    }
    g.finish();
}

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bench-4.0.0")
}

/// What the `dump` example does with `--cdc`, into a sink.
fn dump(dir: &Path, schema: &Schema, out: &mut impl Write) -> u64 {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| SegmentName::from_path(&p).map(|n| (n.id, p)))
        .collect();
    files.sort();
    let mut decoder = Decoder::new();
    let mut n = 0;
    for (_, file) in files {
        let name = SegmentName::from_path(&file).unwrap();
        let IdxState::Ready(idx) = read_cdc_index(&file.with_file_name(name.cdc_index_file_name())).unwrap() else {
            continue;
        };
        let seg = Segment::open(&file).unwrap();
        let mut r = seg.reader(&ReadOptions::new().limit(idx.offset)).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            let ctx = Context::of_entry(&e, seg.descriptor(), None);
            match decoder.decode(e.mutation, schema, ctx) {
                Ok(m) => serde_json::to_writer(&mut *out, &m).unwrap(),
                Err(u) => serde_json::to_writer(&mut *out, &*u).unwrap(),
            }
            out.write_all(b"\n").unwrap();
            n += 1;
        }
    }
    n
}

fn catchup(c: &mut Criterion) {
    let dir = bench_dir();
    let Ok(text) = std::fs::read_to_string(dir.join("schema/schema_internals.cql")) else {
        eprintln!("{} not found: no catch-up benchmark", dir.display());
        return;
    };
    let schema = Arc::new(Schema::parse(&text).unwrap());
    let cdc_raw = dir.join("cdc_raw");
    let bytes: u64 = std::fs::read_dir(&cdc_raw)
        .unwrap()
        .filter_map(|e| SegmentName::from_path(&e.unwrap().path()))
        .filter_map(|n| match read_cdc_index(&cdc_raw.join(n.cdc_index_file_name())).unwrap() {
            IdxState::Ready(i) => Some(i.offset),
            _ => None,
        })
        .sum();
    let mut g = c.benchmark_group("catchup");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("dump", |b| b.iter(|| black_box(dump(&cdc_raw, &schema, &mut std::io::sink()))));
    g.bench_function("watcher", |b| {
        b.iter(|| {
            let opts = WatchOptions::new(&cdc_raw, schema.clone()).use_notify(false).idle_timeout(Some(Duration::ZERO));
            let mut w = Watcher::new(opts).unwrap();
            let mut out = std::io::sink();
            let mut decoder = Decoder::new();
            let mut n = 0u64;
            while let Some(e) = w.next_event().unwrap() {
                if let Event::Batch(batch) = e {
                    for i in 0..batch.len() {
                        match batch.decode(i, &mut decoder) {
                            Ok(m) => serde_json::to_writer(&mut out, &m).unwrap(),
                            Err(u) => serde_json::to_writer(&mut out, &*u).unwrap(),
                        }
                        out.write_all(b"\n").unwrap();
                        n += 1;
                    }
                    w.ack(batch.to);
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, latency, catchup);
criterion_main!(benches);
