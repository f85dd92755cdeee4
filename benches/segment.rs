//! Walking every entry of the benchmark captures, with both CRCs checked,
//! against the cheapest pass over the same bytes:
//!
//! - `plain/crc32fast`: one `crc32fast::hash` over each plain segment's
//!   written bytes (header to logical end), the floor of any CRC check;
//! - `plain/crc32fast-per-entry`: the same CRCs the format asks for, each
//!   entry's size and mutation hashed on their own from precomputed offsets
//!   (the floor of any entry-by-entry check: crc32fast has a fixed cost per
//!   call that one contiguous pass does not pay);
//! - `plain/walk`: the reader over the same segments;
//! - `lz4/lz4_flex`: decompressing every section of the LZ4 segments into a
//!   reused buffer, nothing else;
//! - `lz4/walk`: the reader over the same segments (decompression and CRCs).
//! - `plain/decode`, `lz4/decode`: the walk plus a full typed decode of every
//!   mutation against the capture's schema, touching every value: partition
//!   keys, clustering values, every cell value and path, decoded and checked
//!   (system-table mutations, which have no schema here, are skipped by id).
//! - `plain/decode-digest`, `lz4/decode-digest`: the decode plus the
//!   content digest of every partition update (`PartitionUpdate::digest`).
//! - `plain/decode-schema-from-log`, `lz4/decode-schema-from-log`: the same
//!   decode through a `SchemaTracker` (started from the capture's schema:
//!   these captures hold no DDL), which looks at every entry's first table
//!   id for schema mutations: the cost of following the schema in the log.
//!
//! Throughput is in logical (uncompressed) bytes for all four, so the ratio
//! of a walk to its baseline is the ratio of their medians.
//!
//! `cargo bench --bench segment` (needs `../shared/corpus/bench-4.0.0*`).

use std::hint::black_box;

use cassandra_commitlog::mutation::{Decoder, Mutation};
use cassandra_commitlog::schema::{Release, Schema, SchemaTracker};
use cassandra_commitlog::segment::{Item, ReadBuffers, ReadOptions, Segment};
#[path = "common/mod.rs"]
mod common;

use common::{corpus, each_entry, segments};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Walks every entry, touching its bytes' length; returns the bytes seen.
/// The section buffer is reused across segments and runs, as the
/// baseline's is.
fn walk(segs: &[Segment], buffers: &mut ReadBuffers) -> u64 {
    let opts = ReadOptions::new();
    let mut n = 0u64;
    for s in segs {
        let mut r = s.reader_with(&opts, std::mem::take(buffers)).expect("reader");
        while let Some(e) = r.next_entry().expect("tolerant walk") {
            n += e.mutation.len() as u64;
        }
        *buffers = r.into_buffers();
    }
    n
}

/// Decodes every value of a mutation; returns the cells touched.
fn touch(m: &Mutation<'_>) -> u64 {
    let mut cells = 0;
    for u in m.updates() {
        for kv in u.partition_key() {
            black_box(kv.map(|(_, v)| v.validate().is_ok()).is_ok());
        }
        for r in u.all_rows() {
            for (_, v) in r.clustering() {
                if let Some(Ok(v)) = v {
                    black_box(v.validate().is_ok());
                }
            }
            for c in r.columns() {
                for cell in c.cells() {
                    cells += 1;
                    if let Some(p) = cell.path() {
                        black_box(p.is_ok());
                    }
                    if let Some(Ok(v)) = cell.value() {
                        black_box(v.validate().is_ok());
                    }
                }
            }
        }
        for rt in u.range_tombstones() {
            black_box(rt.deletion());
        }
    }
    cells
}

/// Walks and decodes every entry, and with `digest` takes the content
/// digest of every partition update; returns (mutations decoded, cells).
fn decode(
    segs: &[Segment],
    schema: &Schema,
    decoder: &mut Decoder,
    buffers: &mut ReadBuffers,
    digest: bool,
) -> (u64, u64) {
    let (mut mutations, mut cells) = (0, 0);
    each_entry(segs, buffers, |bytes, ctx| {
        if let Ok(m) = decoder.decode(bytes, schema, ctx) {
            mutations += 1;
            cells += touch(&m);
            if digest {
                for u in m.updates() {
                    black_box(u.digest());
                }
            }
        }
    });
    (mutations, cells)
}

/// The same through a schema tracker.
fn decode_tracked(
    segs: &[Segment],
    tracker: &mut SchemaTracker,
    decoder: &mut Decoder,
    buffers: &mut ReadBuffers,
) -> (u64, u64) {
    let (mut mutations, mut cells) = (0, 0);
    each_entry(segs, buffers, |bytes, ctx| {
        if let Ok(m) = tracker.decode(decoder, bytes, ctx).decoded {
            mutations += 1;
            cells += touch(&m);
        }
    });
    (mutations, cells)
}

fn bench(c: &mut Criterion) {
    let plain = segments(&corpus().join("bench-4.0.0/cdc_raw"));
    let lz4 = segments(&corpus().join("bench-4.0.0-lz4/cdc_raw"));
    if plain.is_empty() || lz4.is_empty() {
        eprintln!("benchmark captures not found under {}: nothing to measure", corpus().display());
        return;
    }
    let plain_ends: Vec<usize> = plain.iter().map(|s| s.walk(&ReadOptions::new()).unwrap().end as usize).collect();
    let plain_bytes: u64 = plain_ends.iter().map(|&e| e as u64).sum();
    // Plain entries: (segment, file offset, mutation length).
    let mut plain_entries = Vec::new();
    for (i, s) in plain.iter().enumerate() {
        let mut r = s.reader(&ReadOptions::new()).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            plain_entries.push((i, e.start as usize, e.mutation.len()));
        }
    }
    // LZ4 sections: (segment, payload range, uncompressed length).
    let mut sections = Vec::new();
    let mut lz4_bytes = 0u64;
    for (i, s) in lz4.iter().enumerate() {
        let mut r = s.reader(&ReadOptions::new()).unwrap();
        while let Some(item) = r.next().unwrap() {
            if let Item::Section(sec) = item {
                let payload = sec.file_offset as usize + 12..sec.file_end as usize;
                sections.push((i, payload, (sec.end - sec.content_start) as usize));
            }
        }
        lz4_bytes += r.summary().end;
    }
    let max_section = sections.iter().map(|s| s.2).max().unwrap_or(0);

    let mut g = c.benchmark_group("walk");
    g.sample_size(30);
    g.throughput(Throughput::Bytes(plain_bytes));
    g.bench_function("plain/crc32fast", |b| {
        b.iter(|| plain.iter().zip(&plain_ends).map(|(s, &end)| crc32fast::hash(&s.data()[..end]) as u64).sum::<u64>())
    });
    g.bench_function("plain/crc32fast-per-entry", |b| {
        b.iter(|| {
            let mut x = 0u32;
            for &(i, at, len) in &plain_entries {
                let d = plain[i].data();
                let mut h = crc32fast::Hasher::new();
                h.update(&d[at..at + 4]);
                x ^= h.clone().finalize();
                h.update(&d[at + 8..at + 8 + len]);
                x ^= h.finalize();
            }
            x
        })
    });
    let mut buffers = ReadBuffers::default();
    g.bench_function("plain/walk", |b| b.iter(|| black_box(walk(&plain, &mut buffers))));
    g.throughput(Throughput::Bytes(lz4_bytes));
    g.bench_function("lz4/lz4_flex", |b| {
        let mut buf = vec![0u8; max_section];
        b.iter(|| {
            for (i, payload, len) in &sections {
                let p = &lz4[*i].data()[payload.clone()];
                let n = lz4_flex::block::decompress_into(&p[4..], &mut buf[..*len]).unwrap();
                black_box(n);
            }
        })
    });
    g.bench_function("lz4/walk", |b| b.iter(|| black_box(walk(&lz4, &mut buffers))));
    let schema_of = |capture: &str| {
        Schema::parse(&std::fs::read_to_string(corpus().join(capture).join("schema/schema_internals.cql")).unwrap())
            .unwrap()
    };
    let (plain_schema, lz4_schema) = (schema_of("bench-4.0.0"), schema_of("bench-4.0.0-lz4"));
    let mut decoder = Decoder::new();
    for (name, segs, schema, bytes) in
        [("plain", &plain, &plain_schema, plain_bytes), ("lz4", &lz4, &lz4_schema, lz4_bytes)]
    {
        let (mutations, cells) = decode(segs, schema, &mut decoder, &mut buffers, false);
        let entries = segs.iter().map(|s| s.walk(&ReadOptions::new()).unwrap().entries).sum::<u64>();
        eprintln!("{name}: {bytes} logical bytes, {entries} entries, {mutations} mutations decoded, {cells} cells");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| black_box(decode(segs, schema, &mut decoder, &mut buffers, false)))
        });
        g.bench_function(format!("{name}/decode-digest"), |b| {
            b.iter(|| black_box(decode(segs, schema, &mut decoder, &mut buffers, true)))
        });
        let mut tracker = SchemaTracker::with_bootstrap(Release::Cassandra4, schema);
        // Every entry decodes, Cassandra's own tables included.
        let (all, all_cells) = decode_tracked(segs, &mut tracker, &mut decoder, &mut buffers);
        assert!(all == entries && all_cells >= cells, "{name}: {all} of {entries} entries, {all_cells} cells");
        g.bench_function(format!("{name}/decode-schema-from-log"), |b| {
            b.iter(|| black_box(decode_tracked(segs, &mut tracker, &mut decoder, &mut buffers)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
