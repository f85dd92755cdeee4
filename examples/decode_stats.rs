//! Decodes every mutation of the given segments against a schema, touching
//! every value (keys, clustering values, cell values and paths), one segment
//! mapped at a time, and prints what it saw and the process's peak memory.
//!
//! ```text
//! cargo run --release --example decode_stats -- --schema FILE.cql [--key ALIAS=HEX]... SEGMENT...
//! ```
//!
//! Prints one JSON object: `segments`, `entries`, `mutations` (decoded),
//! `undecodable` (unknown tables included), `cells`, `invalid_values`,
//! `peak_rss_kib` (Linux `VmHWM`; `null` elsewhere). Speed is measured by
//! the criterion benchmarks, not here.

use std::process::ExitCode;

#[path = "common/mod.rs"]
mod common;

use cassandra_commitlog::mutation::{Context, Decoder, Mutation};
use cassandra_commitlog::schema::Schema;
use cassandra_commitlog::segment::{ReadOptions, Segment};
use serde_json::json;

#[derive(Default)]
struct Counts {
    cells: u64,
    invalid: u64,
}

fn touch(m: &Mutation<'_>, c: &mut Counts) {
    let mut check = |ok: bool| c.invalid += u64::from(!ok);
    for u in m.updates() {
        for kv in u.partition_key() {
            check(kv.is_ok_and(|(_, v)| v.validate().is_ok()));
        }
        for row in u.all_rows() {
            for (_, v) in row.clustering() {
                check(v.is_none_or(|v| v.is_ok_and(|v| v.validate().is_ok())));
            }
            for col in row.columns() {
                for cell in col.cells() {
                    c.cells += 1;
                    check(cell.path().is_none_or(|p| p.is_ok()));
                    check(cell.value().is_none_or(|v| v.is_ok_and(|v| v.validate().is_ok())));
                }
            }
        }
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut schema, mut opts, mut files) = (None, ReadOptions::new(), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--schema" => schema = args.next(),
            "--key" => match args.next().as_deref().and_then(common::parse_key) {
                Some((alias, key)) => opts = opts.key(alias, key),
                None => return ExitCode::from(2),
            },
            _ => files.push(a),
        }
    }
    let Some(schema) = schema.and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| Schema::parse(&t).ok()) else {
        eprintln!("usage: decode_stats --schema FILE.cql [--key ALIAS=HEX]... SEGMENT...");
        return ExitCode::from(2);
    };
    let mut decoder = Decoder::new();
    let mut counts = Counts::default();
    let (mut entries, mut mutations, mut undecodable) = (0u64, 0u64, 0u64);
    for f in &files {
        let seg = match Segment::open(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("decode_stats: {e}");
                return ExitCode::from(1);
            }
        };
        let mut reader = match seg.reader(&opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("decode_stats: {e}");
                return ExitCode::from(1);
            }
        };
        while let Ok(Some(e)) = reader.next_entry() {
            entries += 1;
            let ctx = Context::of_entry(&e, seg.descriptor(), None);
            match decoder.decode(e.mutation, &schema, ctx) {
                Ok(m) => {
                    mutations += 1;
                    touch(&m, &mut counts);
                }
                Err(_) => undecodable += 1,
            }
        }
    }
    let out = json!({
        "segments": files.len(), "entries": entries, "mutations": mutations, "undecodable": undecodable,
        "cells": counts.cells, "invalid_values": counts.invalid, "peak_rss_kib": peak_rss_kib(),
    });
    println!("{out}");
    ExitCode::SUCCESS
}
