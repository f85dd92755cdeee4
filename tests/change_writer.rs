//! The fast change-format writer gives, byte for byte, what the `Serialize`
//! path gives through serde_json, on every entry of every corpus directory
//! (the captures with their schema file and with the schema from the log,
//! the benchmark captures with theirs): data, system tables, undecodable
//! entries and schema events alike.

mod common;

use std::path::Path;

use cassandra_commitlog::mutation::{ChangeWriter, Context, Decoder};
use cassandra_commitlog::schema::{Release, Schema, SchemaTracker};
use cassandra_commitlog::segment::{ReadOptions, Segment};
use common::{captures, corpus, options_for, segment_files};

/// Compares both writers over every entry of `dir`; returns the entries.
fn compare(dir: &Path, opts: &ReadOptions, schema: Option<&Schema>) -> usize {
    let mut decoder = Decoder::new();
    let mut writer = ChangeWriter::new();
    let mut tracker = SchemaTracker::new(Release::Cassandra4);
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    let mut n = 0;
    for file in segment_files(dir) {
        let seg = Segment::open(&file).unwrap();
        let mut reader = seg.reader(opts).unwrap();
        while let Some(entry) = reader.next_entry().unwrap() {
            let ctx = Context::of_entry(&entry, seg.descriptor(), None);
            fast.clear();
            slow.clear();
            let decoded = match schema {
                Some(s) => decoder.decode(entry.mutation, s, ctx),
                None => tracker.decode(&mut decoder, entry.mutation, ctx).decoded,
            };
            writer.write_line(&mut fast, &decoded);
            match &decoded {
                Ok(m) => serde_json::to_writer(&mut slow, m).unwrap(),
                Err(u) => serde_json::to_writer(&mut slow, &**u).unwrap(),
            }
            slow.push(b'\n');
            if fast != slow {
                panic!(
                    "{} position {}:\nfast {}\nserde {}",
                    file.display(),
                    entry.position,
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&slow)
                );
            }
            n += 1;
        }
    }
    n
}

#[test]
fn the_fast_writer_gives_serdes_bytes_on_every_corpus_directory() {
    let Some(corpus) = corpus() else { return };
    let mut total = 0;
    for capture in captures() {
        let name = capture.file_name().unwrap().to_str().unwrap();
        let opts = options_for(&corpus, name);
        for (dir, report) in
            [("cdc_raw_after_shutdown", "schema_after_phase2"), ("cdc_raw_live", "schema_after_phase1")]
        {
            let schema =
                Schema::parse(&std::fs::read_to_string(capture.join(report).join("schema_internals.cql")).unwrap())
                    .unwrap();
            total += compare(&capture.join(dir), &opts, Some(&schema));
            total += compare(&capture.join(dir), &opts, None);
        }
    }
    for bench in ["bench-4.0.0", "bench-4.0.0-lz4"] {
        let schema =
            Schema::parse(&std::fs::read_to_string(corpus.join(bench).join("schema/schema_internals.cql")).unwrap())
                .unwrap();
        total += compare(&corpus.join(bench).join("cdc_raw"), &ReadOptions::new(), Some(&schema));
    }
    assert!(total > 300_000, "{total} entries compared");
}

/// The writer renders tables' and columns' names once per table; names
/// changed through `Table`'s public fields afterwards (without a method
/// that re-indexes it) are still written as they now read, escaping
/// included, as the serde path writes them.
#[test]
fn names_changed_through_the_public_fields_are_written_as_they_now_read() {
    let text = std::fs::read_to_string("testdata/cdc_schema.cql").unwrap();
    let mut renamed = Schema::new();
    for t in Schema::parse(&text).unwrap().tables() {
        let mut t = t.clone();
        t.keyspace.push_str("_\"ks");
        t.name.push_str("\\t");
        for c in &mut t.columns {
            c.name.push_str("_\"new\n");
        }
        renamed.add_table(t);
    }
    let n = compare(Path::new("testdata/cdc_raw"), &ReadOptions::new(), Some(&renamed));
    assert!(n > 5, "{n} entries");
    // And the names did change in the output.
    let seg = Segment::open("testdata/cdc_raw/CommitLog-7-2000.log").unwrap();
    let mut reader = seg.reader(&ReadOptions::new()).unwrap();
    let entry = reader.next_entry().unwrap().unwrap();
    let (mut decoder, mut out) = (Decoder::new(), Vec::new());
    let decoded = decoder.decode(entry.mutation, &renamed, Context::of_entry(&entry, seg.descriptor(), None));
    ChangeWriter::new().write_line(&mut out, &decoded);
    let line = String::from_utf8(out).unwrap();
    assert!(line.contains(r#"_\"ks""#) && line.contains(r#"_\"new\n":"#), "{line}");
}
