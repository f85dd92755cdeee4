//! What the examples share: command-line keys and listing segment files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cassandra_commitlog::segment::SegmentName;

/// Parses `ALIAS=HEX` (an encryption key given on the command line).
pub fn parse_key(spec: &str) -> Option<(String, Vec<u8>)> {
    let (alias, hex) = spec.rsplit_once('=')?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((alias.to_owned(), bytes))
}

/// The segment files of every path, in the order given: a file as given,
/// or a directory's `CommitLog-*.log` files by id; each with its segment id
/// (`i64::MIN` for a file whose name is not a segment's). The error names
/// the path that could not be listed.
pub fn segment_files(paths: &[PathBuf]) -> Result<Vec<(i64, PathBuf)>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for path in paths {
        files.append(&mut files_of(path).map_err(|e| (path.clone(), e))?);
    }
    Ok(files)
}

fn files_of(path: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    if !path.is_dir() {
        let id = SegmentName::from_path(path).map_or(i64::MIN, |n| n.id);
        return Ok(vec![(id, path.to_owned())]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if let Some(name) = SegmentName::from_path(&p) {
            found.push((name.id, p));
        }
    }
    found.sort();
    Ok(found)
}
