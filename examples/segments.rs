//! Walks commit-log segments and prints one JSON object per segment.
//!
//! ```text
//! cargo run --release --example segments -- [--key ALIAS=HEX]... PATH...
//! ```
//!
//! PATH is a segment file or a directory (its `CommitLog-*.log` files, in
//! segment-id order). Exit status 0 when every file was examined, damaged
//! ones included; 2 on bad arguments or a directory that cannot be listed.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cassandra_commitlog::cdc::{IdxState, read_cdc_index};
use cassandra_commitlog::segment::{ReadOptions, Segment, SegmentName};
use serde_json::{Value, json};

fn usage() -> ExitCode {
    eprintln!("usage: segments [--key ALIAS=HEX]... PATH...");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut opts = ReadOptions::new();
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--key" {
            let Some(spec) = args.next() else { return usage() };
            match common::parse_key(&spec) {
                Some((alias, key)) => opts = opts.key(alias, key),
                None => {
                    eprintln!("segments: --key wants ALIAS=HEX, got {spec:?}");
                    return ExitCode::from(2);
                }
            }
        } else if arg.starts_with("--") {
            return usage();
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    if paths.is_empty() {
        return usage();
    }
    let files = match common::segment_files(&paths) {
        Ok(f) => f,
        Err((path, e)) => {
            eprintln!("segments: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    for (_, file) in files {
        println!("{}", examine(&file, &opts));
    }
    ExitCode::SUCCESS
}

fn examine(path: &Path, opts: &ReadOptions) -> Value {
    let name = SegmentName::from_path(path);
    let mut out = json!({
        "file": path.display().to_string(),
        "version": name.map(|n| n.version),
        "segment_id": name.map(|n| n.id),
        "compression": null,
        "encrypted": null,
        "sections": null,
        "entries": null,
        "bad_entries": null,
        "end": null,
        "tail": null,
        "idx": idx_json(path),
    });
    let segment = match Segment::open(path) {
        Ok(s) => s,
        Err(e) => {
            out["error"] = json!(e.to_string());
            return out;
        }
    };
    let d = segment.descriptor();
    out["version"] = json!(d.version);
    out["segment_id"] = json!(d.id);
    out["compression"] = json!(d.compression().map(|c| c.name()));
    out["encrypted"] = json!(d.encryption().is_some());
    out["file_len"] = json!(segment.data().len());
    let summary = match segment.walk(opts) {
        Ok(s) => s,
        Err(e) => {
            out["error"] = json!(e.to_string());
            return out;
        }
    };
    out["sections"] = json!(summary.sections);
    out["entries"] = json!(summary.entries);
    out["bad_entries"] = json!(summary.bad_entries);
    out["end"] = json!(summary.end);
    out["tail"] = json!(summary.tail.map(|t| t.class_name()));
    if let Some(t) = summary.tail.filter(|t| t.class_name() != "clean") {
        out["tail_detail"] = json!(t.to_string());
    }
    if summary.lost_sections > 0 {
        out["lost_sections"] = json!(summary.lost_sections);
    }
    if !summary.losses.is_empty() {
        out["losses"] = summary
            .losses
            .iter()
            .map(|l| json!({"start": l.start, "end": l.end, "section_file_offset": l.section_file_offset, "what": l.kind.to_string()}))
            .collect();
    }
    out
}

fn idx_json(segment: &Path) -> Value {
    let Some(name) = SegmentName::from_path(segment) else {
        return Value::Null;
    };
    let idx = segment.with_file_name(name.cdc_index_file_name());
    match read_cdc_index(&idx) {
        Ok(IdxState::Ready(i)) => json!({"offset": i.offset, "completed": i.completed}),
        Ok(IdxState::Missing | IdxState::NotReady) => Value::Null,
        Err(e) => json!({"error": e.to_string()}),
    }
}
