//! Cassandra's own legacy commit-log test segments (3.0.13, 3.0.29, 3.4
//! encrypted with AES-128 and AES-256, 4.0.11): the cell count and additive
//! hash of `hash.txt`, Cassandra's `CommitLogUpgradeTest` criterion, from the
//! decoded mutations. The table is built in code, as the test's schema is.

mod common;

use cassandra_commitlog::mutation::{Context, Decoder};
use cassandra_commitlog::schema::{CqlType, Order, Schema, Table};
use cassandra_commitlog::segment::Segment;
use common::{corpus, options_for, segment_files};

fn properties(text: &str) -> impl Fn(&str) -> String + '_ {
    move |key| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{key} in hash.txt"))
            .trim()
            .to_owned()
    }
}

#[test]
fn legacy_sets_give_the_cells_and_hash_of_hash_txt() {
    let Some(corpus) = corpus() else { return };
    for folder in ["3.0.13-encrypted", "3.0.29-encrypted", "3.4-encrypted", "3.4-encrypted-2015", "4.0.11-encrypted"] {
        let dir = corpus.join("legacy").join(folder);
        let text = std::fs::read_to_string(dir.join("hash.txt")).unwrap();
        let prop = properties(&text);
        let (cells_want, hash_want): (u64, i32) = (prop("cells").parse().unwrap(), prop("hash").parse().unwrap());
        // The test maker's table: dense, ascii key and clustering, blob values.
        let table = Table::builder("Keyspace1", "Standard1")
            .id(prop("cfid").parse().unwrap())
            .partition_key("key", CqlType::Ascii)
            .clustering("col", CqlType::Ascii, Order::Asc)
            .regular("val", CqlType::Blob)
            .regular("val0", CqlType::Blob)
            .build()
            .unwrap();
        let mut schema = Schema::new();
        schema.add_table(table);
        let opts = options_for(&corpus, &format!("legacy/{folder}"));
        let (mut cells, mut hash, mut other_tables) = (0u64, 0i32, 0u64);
        let mut decoder = Decoder::new();
        for file in segment_files(&dir) {
            let seg = Segment::open(&file).unwrap();
            let mut reader = seg.reader(&opts.clone().strict(true)).unwrap();
            while let Some(entry) = reader.next_entry().unwrap() {
                let ctx = Context::of_entry(&entry, seg.descriptor(), None);
                let m = match decoder.decode(entry.mutation, &schema, ctx) {
                    Ok(m) => m,
                    Err(u) if u.error.is_unknown_table() => {
                        other_tables += 1;
                        continue;
                    }
                    Err(u) => panic!("{folder}: {}", u.error),
                };
                for update in m.updates() {
                    for row in update.rows() {
                        let first = row.clustering_bytes().next().flatten().unwrap_or_default();
                        if !first.starts_with(b"name") {
                            continue;
                        }
                        for col in row.columns() {
                            for cell in col.cells() {
                                cells += 1;
                                for (i, &b) in cell.value_bytes().iter().enumerate() {
                                    hash = hash.wrapping_add((b as i32) << (8 * (i % 4)));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!((cells, hash), (cells_want, hash_want), "{folder}");
        assert!(other_tables > 0, "{folder}: the system tables' mutations are skipped, not decoded");
    }
}
