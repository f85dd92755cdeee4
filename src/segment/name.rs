//! Segment file names: `CommitLog-<version>-<id>.log` and the CDC index
//! beside it, `CommitLog-<version>-<id>_cdc.idx` (format spec §1.1, §1.2).

use std::fmt;
use std::path::Path;

const PREFIX: &str = "CommitLog-";
const LOG_SUFFIX: &str = ".log";
const IDX_SUFFIX: &str = "_cdc.idx";

/// The version and id a segment's file name declares.
///
/// Cassandra's pattern is `CommitLog-((\d+)(-\d+)?)\.log`; the form without a
/// version (Cassandra 1.x) is not accepted, exactly as Cassandra 3.0+ refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Descriptor version written in the name (6, 7 or 8 for supported files).
    pub version: i32,
    /// Segment id.
    pub id: i64,
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl SegmentName {
    /// Parses a segment file name (`CommitLog-7-1699285478684.log`).
    pub fn parse(file_name: &str) -> Option<SegmentName> {
        let core = file_name.strip_prefix(PREFIX)?.strip_suffix(LOG_SUFFIX)?;
        Self::parse_core(core)
    }

    /// Parses a CDC index file name (`CommitLog-7-1699285478684_cdc.idx`).
    pub fn parse_cdc_index(file_name: &str) -> Option<SegmentName> {
        let core = file_name.strip_prefix(PREFIX)?.strip_suffix(IDX_SUFFIX)?;
        Self::parse_core(core)
    }

    fn parse_core(core: &str) -> Option<SegmentName> {
        let (version, id) = core.split_once('-')?;
        Some(SegmentName { version: parse_digits(version)?, id: parse_digits(id)? })
    }

    /// Parses the final component of a path as a segment file name.
    pub fn from_path(path: &Path) -> Option<SegmentName> {
        Self::parse(path.file_name()?.to_str()?)
    }

    /// The segment's file name.
    pub fn file_name(&self) -> String {
        format!("{PREFIX}{}-{}{LOG_SUFFIX}", self.version, self.id)
    }

    /// The name of the segment's `_cdc.idx` file.
    pub fn cdc_index_file_name(&self) -> String {
        format!("{PREFIX}{}-{}{IDX_SUFFIX}", self.version, self.id)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}-{}{LOG_SUFFIX}", self.version, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_cassandra_writes() {
        assert_eq!(
            SegmentName::parse("CommitLog-7-1699285478684.log"),
            Some(SegmentName { version: 7, id: 1699285478684 })
        );
        assert_eq!(
            SegmentName::parse_cdc_index("CommitLog-7-1795433791762_cdc.idx"),
            Some(SegmentName { version: 7, id: 1795433791762 })
        );
        let n = SegmentName { version: 6, id: 42 };
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        assert_eq!(n.cdc_index_file_name(), "CommitLog-6-42_cdc.idx");
    }

    #[test]
    fn refuses_other_names() {
        for bad in [
            "CommitLog-1699285478684.log", // 1.x form without a version
            "CommitLog-7-.log",
            "CommitLog--1.log",
            "CommitLog-7-12a.log",
            "CommitLog-7--12.log",
            "CommitLog-7-1.log.tmp",
            "commitlog-7-1.log",
            "CommitLog-7-99999999999999999999.log", // overflows i64
            "CommitLog-7-1_cdc.idx",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }
}
