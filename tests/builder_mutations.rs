//! The mutation builder is checked against Cassandra: every corpus mutation
//! of a known table, decoded and written again by the builder, gives
//! Cassandra's bytes exactly (encoding stats, column order, flags, deltas).

mod common;

use cassandra_commitlog::builder::encode_mutation;
use cassandra_commitlog::schema::Schema;
use common::corpus;

#[test]
fn reencoding_decoded_corpus_mutations_gives_cassandras_bytes() {
    let Some(corpus) = corpus() else { return };
    let mut checked = 0;
    for (folder, schema_file) in [
        ("cassandra-4.0.0/cdc_raw_after_shutdown", "cassandra-4.0.0/schema_after_phase2/schema_internals.cql"),
        ("cassandra-4.0.0-lz4/cdc_raw_after_shutdown", "cassandra-4.0.0-lz4/schema_after_phase2/schema_internals.cql"),
        (
            "cassandra-4.0-alpha4/cdc_raw_after_shutdown",
            "cassandra-4.0-alpha4/schema_after_phase2/schema_internals.cql",
        ),
        ("bench-4.0.0/cdc_raw", "bench-4.0.0/schema/schema_internals.cql"),
    ] {
        let schema = Schema::parse(&std::fs::read_to_string(corpus.join(schema_file)).unwrap()).unwrap();
        common::each_decoded(&corpus, folder, &schema, |file, mutation, m| {
            let specs = common::spec::mutation(m);
            let tables: Vec<_> = m.updates().map(|u| u.table()).collect();
            let pairs: Vec<_> = tables.iter().copied().zip(specs.iter()).collect();
            let bytes = encode_mutation(&pairs, false);
            if bytes != mutation {
                let at = bytes.iter().zip(mutation).position(|(a, b)| a != b).unwrap_or(bytes.len());
                panic!("{} position {}: first difference at byte {at}", file.display(), m.position());
            }
            checked += 1;
        });
    }
    assert!(checked > 100_000, "{checked}");
}
