//! The mutation digest identifies a write, not its section or position:
//! Cassandra's own mutations, written again through every section kind, at
//! other segment ids and positions, in the 3.0/4.0 and the 5.0 encoding,
//! keep their digests; a change of one cell changes it; and both forms
//! documented in `src/mutation/digest.rs` (the logged bytes, the canonical
//! form where a LIVE deletion time is written) are computed here on their
//! own, with another XXH3 implementation (`xxhash-rust`).

mod common;

use cassandra_commitlog::builder::{
    BuildFormat, CellKind, ColumnSpec, RowSpec, SegmentBuilder, Unfiltered, UpdateSpec, encode_mutation,
};
use cassandra_commitlog::mutation::{Context, Decoder, DeletionTime, Digest, Liveness};
use cassandra_commitlog::schema::{CqlType, Order, Schema, Table};
use cassandra_commitlog::segment::{Compression, ReadOptions, Segment};
use common::{corpus, segment_files};
use uuid::Uuid;

/// A corpus mutation: its updates as specs, the tables and their digests.
struct Logged {
    specs: Vec<UpdateSpec>,
    tables: Vec<(String, String)>,
    digests: Vec<Digest>,
}

/// The capture every test here uses.
const FOLDER: &str = "cassandra-4.0.0/cdc_raw_after_shutdown";

/// Its mutations, decoded with the capture's final schema.
fn logged() -> Option<(Schema, Vec<Logged>)> {
    let corpus = corpus()?;
    let schema_file = corpus.join("cassandra-4.0.0/schema_after_phase2/schema_internals.cql");
    let schema = Schema::parse(&std::fs::read_to_string(schema_file).unwrap()).unwrap();
    let mut out = Vec::new();
    common::each_decoded(&corpus, FOLDER, &schema, |_, _, m| {
        out.push(Logged {
            specs: common::spec::mutation(m),
            tables: m.updates().map(|u| (u.table().keyspace.clone(), u.table().name.clone())).collect(),
            digests: m.updates().map(|u| u.digest()).collect(),
        })
    });
    Some((schema, out))
}

fn formats() -> Vec<BuildFormat> {
    let mut f = vec![BuildFormat::Plain];
    f.extend(Compression::ALL.iter().map(|&c| BuildFormat::Compressed(c)));
    f.push(BuildFormat::Encrypted { alias: "replica".into(), key: (0..32).collect(), iv: [7; 16], chunk_len: 4096 });
    f
}

/// Writes the mutations into one segment (after a padding entry that
/// shifts every position), reads it back, and returns each decoded
/// mutation's digests.
fn rewritten(
    schema: &Schema,
    logged: &[Logged],
    version: i32,
    id: i64,
    format: &BuildFormat,
    pad: usize,
) -> Vec<Vec<Digest>> {
    let mut b = SegmentBuilder::new(version, id, format.clone());
    b.entry(&vec![0xA5; pad]);
    for (i, l) in logged.iter().enumerate() {
        let tables: Vec<&Table> = l.tables.iter().map(|(k, t)| schema.table(k, t).expect("table")).collect();
        let pairs: Vec<_> = tables.into_iter().zip(l.specs.iter()).collect();
        b.entry(&encode_mutation(&pairs, version >= 8));
        if i % 17 == 16 {
            b.sync();
        }
    }
    b.sync();
    let bytes = b.finish();
    let mut opts = ReadOptions::new();
    if let BuildFormat::Encrypted { alias, key, .. } = format {
        opts = opts.key(alias.clone(), key.clone());
    }
    let seg = Segment::from_data(&bytes[..]).unwrap();
    let mut reader = seg.reader(&opts.strict(true)).unwrap();
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut first = true;
    while let Some(entry) = reader.next_entry().unwrap() {
        if std::mem::take(&mut first) {
            continue; // the padding
        }
        let ctx = Context::of_entry(&entry, seg.descriptor(), None);
        let m = decoder.decode(entry.mutation, schema, ctx).expect("a rewritten mutation decodes");
        out.push(m.updates().map(|u| u.digest()).collect());
    }
    out
}

#[test]
fn digests_do_not_depend_on_codec_encryption_position_segment_or_encoding() {
    let Some((schema, logged)) = logged() else { return };
    assert!(logged.len() > 1000, "{} mutations", logged.len());
    // The owned form gives the same digests as the views.
    let corpus = corpus().unwrap();
    let file = &segment_files(&corpus.join(FOLDER))[0];
    let seg = Segment::open(file).unwrap();
    let mut reader = seg.reader(&ReadOptions::new()).unwrap();
    let mut decoder = Decoder::new();
    let schema = std::sync::Arc::new(schema.clone());
    let mut n = 0;
    while let Some(entry) = reader.next_entry().unwrap() {
        let ctx = Context::of_entry(&entry, seg.descriptor(), None);
        let owned = cassandra_commitlog::mutation::OwnedMutation::decode(
            &mut decoder,
            bytes::Bytes::copy_from_slice(entry.mutation),
            schema.clone(),
            ctx,
        );
        if owned.error().is_none() {
            assert_eq!(owned.digests().collect::<Vec<_>>(), logged[n].digests);
            n += 1;
        }
    }
    assert!(n > 100);
    let want: Vec<Vec<Digest>> = logged.iter().map(|l| l.digests.clone()).collect();
    let mut copies = 0;
    for (i, format) in formats().iter().enumerate() {
        for version in [6, 7, 8] {
            let id = 1_900_000_000_000 + i as i64 * 10 + version as i64;
            let got = rewritten(&schema, &logged, version, id, format, 13 + 101 * i);
            assert_eq!(got.len(), want.len(), "{format:?} v{version}");
            for (n, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{format:?} v{version}: mutation {n}");
            }
            copies += 1;
        }
    }
    assert_eq!(copies, 21);
}

fn nth_row(s: &mut UpdateSpec, r: usize) -> &mut RowSpec {
    let mut rows: Vec<&mut RowSpec> = s.static_row.iter_mut().collect();
    rows.extend(s.unfiltereds.iter_mut().filter_map(|u| match u {
        Unfiltered::Row(r) => Some(r),
        Unfiltered::Marker(_) => None,
    }));
    rows.swap_remove(r)
}

/// Ways to change one cell of an update: its value, timestamp, TTL or
/// deletion time, path (up to three columns of each row).
fn one_cell_changes(spec: &UpdateSpec) -> Vec<UpdateSpec> {
    let mut out = Vec::new();
    let rows =
        spec.static_row.iter().count() + spec.unfiltereds.iter().filter(|u| matches!(u, Unfiltered::Row(_))).count();
    for r in 0..rows {
        let n_cols = nth_row(&mut spec.clone(), r).columns.len();
        for c in 0..n_cols.min(3) {
            for change in 0..4 {
                let mut s = spec.clone();
                let row = nth_row(&mut s, r);
                let cell = match &mut row.columns[c].1 {
                    ColumnSpec::Simple(cell) => cell,
                    ColumnSpec::Complex { cells, .. } => match cells.first_mut() {
                        Some(cell) => cell,
                        None => continue,
                    },
                };
                match change {
                    0 if !cell.value.is_empty() => *cell.value.last_mut().unwrap() ^= 1,
                    0 => cell.value.push(0),
                    1 => cell.timestamp += 1,
                    2 => {
                        cell.kind = match cell.kind {
                            CellKind::Live => CellKind::Expiring { ttl: 60, expires_at: 1_800_000_000 },
                            CellKind::Expiring { ttl, expires_at } => CellKind::Expiring { ttl: ttl + 1, expires_at },
                            CellKind::Tombstone { local_deletion_time } => {
                                CellKind::Tombstone { local_deletion_time: local_deletion_time + 1 }
                            }
                        }
                    }
                    _ => match &mut cell.path {
                        Some(p) if !p.is_empty() => *p.last_mut().unwrap() ^= 0x10,
                        _ => continue,
                    },
                }
                out.push(s);
            }
        }
    }
    out
}

#[test]
fn changing_one_cell_changes_the_digest_and_different_writes_never_share_one() {
    let Some((schema, logged)) = logged() else { return };
    let mut decoder = Decoder::new();
    let mut tried = 0;
    for l in &logged {
        for (u, spec) in l.specs.iter().enumerate() {
            let (k, n) = &l.tables[u];
            let table = schema.table(k, n).unwrap();
            for changed in one_cell_changes(spec) {
                let bytes = encode_mutation(&[(table, &changed)], false);
                // A change can make the bytes invalid for the type (a
                // fixed-length value one byte longer): then it is no write.
                let Ok(m) = decoder.decode(&bytes, &schema, Context::default()) else { continue };
                let d = m.updates().next().unwrap().digest();
                assert_ne!(d, l.digests[u], "{k}.{n}: {changed:?}");
                tried += 1;
            }
        }
    }
    assert!(tried > 2000, "{tried} changes tried");
    // Over the whole capture, equal digests only for equal content.
    let mut seen: std::collections::HashMap<Digest, (&UpdateSpec, &(String, String))> = Default::default();
    for l in &logged {
        for (u, d) in l.digests.iter().enumerate() {
            if let Some((spec, table)) = seen.insert(*d, (&l.specs[u], &l.tables[u])) {
                assert_eq!((spec, table), (&l.specs[u], &l.tables[u]), "two writes share {d}");
            }
        }
    }
}

/// Whether Cassandra writes a LIVE deletion time in this update: a row
/// where one complex column has a deletion and another has none (format
/// spec §8.5: the row's HAS_COMPLEX_DELETION flag makes every complex
/// column write one).
fn writes_a_live_deletion_time(u: &cassandra_commitlog::mutation::PartitionUpdate<'_>) -> bool {
    u.all_rows().any(|r| {
        let complex: Vec<bool> =
            r.columns().filter(|c| c.is_complex()).map(|c| c.complex_deletion().is_some()).collect();
        complex.contains(&true) && complex.contains(&false)
    })
}

#[test]
fn an_update_without_a_live_deletion_time_is_digested_over_its_logged_bytes() {
    let Some(corpus) = corpus() else { return };
    let schema_file = corpus.join("cassandra-4.0.0/schema_after_phase2/schema_internals.cql");
    let schema = Schema::parse(&std::fs::read_to_string(schema_file).unwrap()).unwrap();
    let (mut logged_bytes, mut canonical) = (0, 0);
    common::each_decoded(&corpus, FOLDER, &schema, |_, bytes, m| {
        // One update: the mutation is its count (one byte, 1) then its bytes.
        if m.updates().len() != 1 {
            return;
        }
        assert_eq!(bytes[0], 1);
        let u = m.updates().next().unwrap();
        let of_bytes = Digest(xxhash_rust::xxh3::xxh3_128(&bytes[1..]).to_be_bytes());
        if writes_a_live_deletion_time(&u) {
            assert_ne!(u.digest(), of_bytes);
            canonical += 1;
        } else {
            assert_eq!(u.digest(), of_bytes);
            logged_bytes += 1;
        }
    });
    assert!(logged_bytes > 1000, "{logged_bytes} digested over their bytes");
    // No corpus capture writes a LIVE deletion time (format spec §8.4); the
    // test below makes one.
    eprintln!("{logged_bytes} over their bytes, {canonical} canonical");
}

/// The canonical form, written out by hand for one update that writes a
/// LIVE deletion time (`m` has no deletion, `s` has one), and the same update
/// in the 3.0/4.0 and the 5.0 encoding (other bytes, one digest).
#[test]
fn an_update_with_a_live_deletion_time_is_digested_in_the_documented_canonical_form() {
    let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let table = Table::builder("ks", "t")
        .id(id)
        .partition_key("k", CqlType::Int)
        .clustering("c", CqlType::Text, Order::Asc)
        .regular("v", CqlType::Int)
        .regular("s", CqlType::Set { elem: Box::new(CqlType::Int), frozen: false })
        .regular("m", CqlType::Set { elem: Box::new(CqlType::Int), frozen: false })
        .build()
        .unwrap();
    let dt = DeletionTime { timestamp: 5, local_deletion_time: 1_700_000_000 };
    let spec = UpdateSpec {
        table_id: id,
        key: 7i32.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(RowSpec {
            clustering: vec![Some(b"a".to_vec())],
            liveness: Some(Liveness { timestamp: 10, expiry: None }),
            deletion: None,
            columns: vec![
                (
                    "v".into(),
                    ColumnSpec::Simple(cassandra_commitlog::builder::CellSpec {
                        timestamp: 10,
                        kind: CellKind::Expiring { ttl: 30, expires_at: 1_700_000_030 },
                        path: None,
                        value: 9i32.to_be_bytes().to_vec(),
                    }),
                ),
                (
                    "m".into(),
                    ColumnSpec::Complex {
                        deletion: None,
                        cells: vec![cassandra_commitlog::builder::CellSpec {
                            timestamp: 10,
                            kind: CellKind::Live,
                            path: Some(4i32.to_be_bytes().to_vec()),
                            value: vec![],
                        }],
                    },
                ),
                (
                    "s".into(),
                    ColumnSpec::Complex {
                        deletion: Some(dt),
                        cells: vec![cassandra_commitlog::builder::CellSpec {
                            timestamp: 10,
                            kind: CellKind::Live,
                            path: Some(3i32.to_be_bytes().to_vec()),
                            value: vec![],
                        }],
                    },
                ),
            ],
        })],
    };
    let mut decoder = Decoder::new();
    let mut schema = Schema::new();
    schema.add_table(table.clone());
    let signed = encode_mutation(&[(&table, &spec)], false);
    let unsigned = encode_mutation(&[(&table, &spec)], true);
    assert_ne!(signed, unsigned, "5.0 writes the LIVE deletion time otherwise");
    let m = decoder.decode(&signed, &schema, Context::default()).unwrap();
    let got = m.updates().next().unwrap().digest();
    let ctx = Context { unsigned_deletion_times: true, ..Context::default() };
    let m = decoder.decode(&unsigned, &schema, ctx).unwrap();
    assert_eq!(m.updates().next().unwrap().digest(), got);

    let mut c: Vec<u8> = Vec::new();
    let lp = |c: &mut Vec<u8>, b: &[u8]| {
        c.extend((b.len() as u32).to_be_bytes());
        c.extend(b);
    };
    c.extend(id.as_bytes());
    lp(&mut c, &7i32.to_be_bytes());
    c.push(0); // no partition deletion
    c.extend(1u32.to_be_bytes()); // one row
    c.push(0); // not static
    c.extend(1u32.to_be_bytes());
    c.push(1);
    lp(&mut c, b"a");
    c.push(1); // liveness
    c.extend(10i64.to_be_bytes());
    c.push(0); // no expiry
    c.push(0); // no row deletion
    c.extend(3u32.to_be_bytes()); // columns, in header order: simple first
    lp(&mut c, b"v");
    c.push(0); // simple
    c.extend(1u32.to_be_bytes());
    c.push(2); // expiring
    c.extend(10i64.to_be_bytes());
    c.extend(1_700_000_030i64.to_be_bytes());
    c.extend(30u32.to_be_bytes());
    lp(&mut c, &9i32.to_be_bytes());
    lp(&mut c, b"m");
    c.push(1); // complex
    c.push(0); // LIVE: no complex deletion
    c.extend(1u32.to_be_bytes());
    c.push(0); // live
    c.extend(10i64.to_be_bytes());
    lp(&mut c, &4i32.to_be_bytes());
    lp(&mut c, b"");
    lp(&mut c, b"s");
    c.push(1); // complex
    c.push(1);
    c.extend(5i64.to_be_bytes());
    c.extend(1_700_000_000i64.to_be_bytes());
    c.extend(1u32.to_be_bytes());
    c.push(0); // live
    c.extend(10i64.to_be_bytes());
    lp(&mut c, &3i32.to_be_bytes());
    lp(&mut c, b"");
    c.extend(0u32.to_be_bytes()); // no range tombstones
    let want = Digest(xxhash_rust::xxh3::xxh3_128_with_seed(&c, 1).to_be_bytes());
    assert_eq!(got, want);
    assert_ne!(got, Digest(xxhash_rust::xxh3::xxh3_128(&signed[1..]).to_be_bytes()));
    assert_eq!(got.to_hex().len(), 32);
}
