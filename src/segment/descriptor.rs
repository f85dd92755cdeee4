//! The segment header ("descriptor"), versions 6, 7 and 8 (format spec §2).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

use super::error::{Error, ParamsError};
use crate::location::Location;

/// Descriptor versions this crate reads: Cassandra 3.0–3.11 (6), 4.0–5.0 (7),
/// and 5.0 outside its default compatibility mode (8).
pub const SUPPORTED_VERSIONS: [i32; 3] = [6, 7, 8];

/// Bytes of the fixed part of a header: version, id, parameter length, CRC.
pub(crate) const FIXED_HEADER_LEN: usize = 18;

/// A commit-log compressor (format spec §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// `LZ4Compressor`: little-endian length, then one raw LZ4 block.
    Lz4,
    /// `SnappyCompressor`: raw Snappy.
    Snappy,
    /// `DeflateCompressor`: a zlib stream.
    Deflate,
    /// `ZstdCompressor` (4.0+): one Zstandard frame.
    Zstd,
    /// `NoopCompressor` (4.0+): the bytes as they are.
    Noop,
}

impl Compression {
    /// Every compressor, in the order of this enum.
    pub const ALL: [Compression; 5] =
        [Compression::Lz4, Compression::Snappy, Compression::Deflate, Compression::Zstd, Compression::Noop];

    /// Resolves a `compressionClass` value (short or fully qualified).
    pub fn from_class(class: &str) -> Option<Compression> {
        let short = class.strip_prefix("org.apache.cassandra.io.compress.").unwrap_or(class);
        Some(match short {
            "LZ4Compressor" => Compression::Lz4,
            "SnappyCompressor" => Compression::Snappy,
            "DeflateCompressor" => Compression::Deflate,
            "ZstdCompressor" => Compression::Zstd,
            "NoopCompressor" => Compression::Noop,
            _ => return None,
        })
    }

    /// The class name Cassandra writes for this compressor.
    pub fn class_name(self) -> &'static str {
        match self {
            Compression::Lz4 => "LZ4Compressor",
            Compression::Snappy => "SnappyCompressor",
            Compression::Deflate => "DeflateCompressor",
            Compression::Zstd => "ZstdCompressor",
            Compression::Noop => "NoopCompressor",
        }
    }

    /// Lower-case short name: `lz4`, `snappy`, `deflate`, `zstd`, `noop`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Deflate => "deflate",
            Compression::Zstd => "zstd",
            Compression::Noop => "noop",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The one cipher transformation Cassandra uses for commit logs.
pub const AES_CBC_PKCS5: &str = "AES/CBC/PKCS5Padding";

/// Encryption parameters of a segment (format spec §3.4, §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// Cipher transformation (always [`AES_CBC_PKCS5`] for files this crate reads).
    pub cipher: String,
    /// Key alias in the writer's key provider; the reader is given the key for it.
    pub key_alias: String,
    /// The IV used for every block of the segment.
    pub iv: [u8; 16],
}

/// How the sections of a segment are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionFormat {
    /// Entries stored as they are (memory-mapped and direct-I/O segments).
    Plain,
    /// Sections compressed with a codec.
    Compressed {
        /// The codec.
        codec: Compression,
        /// `compressionClass` as written.
        class: String,
        /// `compressionParameters` (empty when `null`).
        options: BTreeMap<String, String>,
    },
    /// Sections encrypted (with LZ4 inside).
    Encrypted(Encryption),
}

/// A parsed, CRC-checked segment descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Descriptor version (6, 7 or 8).
    pub version: i32,
    /// Segment id.
    pub id: i64,
    /// Header length in bytes (18 + parameter length); the first sync marker
    /// is at this offset.
    pub header_len: usize,
    /// The parameter JSON text as stored.
    pub params_json: String,
    /// How sections are stored.
    pub format: SectionFormat,
}

impl Descriptor {
    /// The messaging version mutations are serialized with: 12 for version 7,
    /// 13 for version 8. Version 6 files carry 10 or 11, which share one byte
    /// format; 11 is returned.
    pub fn messaging_version(&self) -> u32 {
        match self.version {
            6 => 11,
            7 => 12,
            _ => 13,
        }
    }

    /// Whether local deletion times are unsigned (messaging 13, format spec §8.9).
    pub fn unsigned_deletion_times(&self) -> bool {
        self.version >= 8
    }

    /// The compressor, if sections are compressed.
    pub fn compression(&self) -> Option<Compression> {
        match &self.format {
            SectionFormat::Compressed { codec, .. } => Some(*codec),
            _ => None,
        }
    }

    /// The encryption parameters, if sections are encrypted.
    pub fn encryption(&self) -> Option<&Encryption> {
        match &self.format {
            SectionFormat::Encrypted(e) => Some(e),
            _ => None,
        }
    }

    /// Parses and checks the descriptor at the start of `data`.
    ///
    /// The version is checked first, so that a Cassandra 2.x file is refused
    /// by its version rather than by a CRC that means nothing there.
    pub fn parse(data: &[u8], loc: &Location) -> Result<Descriptor, Error> {
        let truncated = |needed: usize| Error::HeaderTruncated {
            loc: loc.clone().at_file(0),
            needed: needed as u64,
            available: data.len() as u64,
        };
        let version = i32::from_be_bytes(data.get(0..4).ok_or_else(|| truncated(4))?.try_into().unwrap_or_default());
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::UnsupportedVersion { loc: loc.clone().at_file(0), found: version });
        }
        let fixed = data.get(0..14).ok_or_else(|| truncated(FIXED_HEADER_LEN))?;
        let id = i64::from_be_bytes(fixed[4..12].try_into().unwrap_or_default());
        let plen = u16::from_be_bytes([fixed[12], fixed[13]]) as usize;
        let header_len = FIXED_HEADER_LEN + plen;
        if data.len() < header_len {
            return Err(truncated(header_len));
        }
        let params = &data[14..14 + plen];
        let found = u32::from_be_bytes(data[14 + plen..header_len].try_into().unwrap_or_default());
        let expected = header_crc(version, id, params);
        let loc = loc.clone().with_segment(id);
        if expected != found {
            return Err(Error::HeaderCrc { loc: loc.at_file(0), expected, found });
        }
        let params_err = |problem| Error::Params { loc: loc.clone().at_file(14), problem };
        let params_json = std::str::from_utf8(params).map_err(|_| params_err(ParamsError::NotUtf8))?.to_owned();
        let format = parse_params(&params_json).map_err(params_err)?;
        Ok(Descriptor { version, id, header_len, params_json, format })
    }
}

/// The descriptor CRC of format spec §2: over the version, the id's low then
/// high word, the parameter length as four bytes, then the parameters.
pub fn header_crc(version: i32, id: i64, params: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&version.to_be_bytes());
    h.update(&(id as u32).to_be_bytes());
    h.update(&((id >> 32) as u32).to_be_bytes());
    h.update(&(params.len() as u32).to_be_bytes());
    h.update(params);
    h.finalize()
}

fn get_str<'a>(obj: &'a serde_json::Map<String, Json>, key: &'static str) -> Result<Option<&'a str>, ParamsError> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(ParamsError::WrongType { key, expected: "a string" }),
    }
}

fn parse_params(text: &str) -> Result<SectionFormat, ParamsError> {
    let json: Json = serde_json::from_str(text).map_err(ParamsError::Json)?;
    let Json::Object(obj) = json else {
        return Err(ParamsError::NotAnObject);
    };
    // Encryption wins over compression when both cipher and alias are present.
    if let (Some(cipher), Some(alias)) = (get_str(&obj, "encCipher")?, get_str(&obj, "encKeyAlias")?) {
        if cipher != AES_CBC_PKCS5 {
            return Err(ParamsError::UnsupportedCipher { cipher: cipher.to_owned() });
        }
        let iv_text = get_str(&obj, "encIV")?.unwrap_or("");
        let iv = decode_hex(iv_text)
            .and_then(|v| <[u8; 16]>::try_from(v).ok())
            .ok_or_else(|| ParamsError::BadIv { iv: iv_text.chars().take(64).collect() })?;
        return Ok(SectionFormat::Encrypted(Encryption { cipher: cipher.to_owned(), key_alias: alias.to_owned(), iv }));
    }
    let Some(class) = get_str(&obj, "compressionClass")? else {
        return Ok(SectionFormat::Plain);
    };
    let codec = Compression::from_class(class)
        .ok_or_else(|| ParamsError::UnknownCompressor { class: class.chars().take(200).collect() })?;
    let mut options = BTreeMap::new();
    match obj.get("compressionParameters") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (k, v) in map {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                options.insert(k.clone(), v);
            }
        }
        Some(_) => {
            return Err(ParamsError::WrongType { key: "compressionParameters", expected: "an object or null" });
        }
    }
    Ok(SectionFormat::Compressed { codec, class: class.to_owned(), options })
}

/// Decodes lower- or upper-case hex.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    bytes.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of format spec §2: a real 4.0 segment, id 1795433373498.
    #[test]
    fn header_crc_matches_spec_example() {
        let bytes = [
            0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0xa2, 0x08, 0x2b, 0x1f, 0x3a, 0x00, 0x02, 0x7b, 0x7d, 0xd2, 0xd8,
            0xf0, 0x29,
        ];
        assert_eq!(header_crc(7, 1795433373498, b"{}"), 0xd2d8f029);
        let d = Descriptor::parse(&bytes, &Location::default()).unwrap();
        assert_eq!(d.version, 7);
        assert_eq!(d.id, 1795433373498);
        assert_eq!(d.header_len, 20);
        assert_eq!(d.format, SectionFormat::Plain);
        // The CRC hashes the low word of the id first: swapping the words must
        // give a different value (the independent computation of the spec).
        let mut h = crc32fast::Hasher::new();
        for w in [7u32, 0x082b1f3a, 0x000001a2, 2] {
            h.update(&w.to_be_bytes());
        }
        h.update(b"{}");
        assert_eq!(h.finalize(), 0xd2d8f029);
    }

    #[test]
    fn refuses_bad_crc_and_versions() {
        let mut bytes = [
            0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0xa2, 0x08, 0x2b, 0x1f, 0x3a, 0x00, 0x02, 0x7b, 0x7d, 0xd2, 0xd8,
            0xf0, 0x29,
        ];
        bytes[19] ^= 1;
        assert!(matches!(
            Descriptor::parse(&bytes, &Location::default()),
            Err(Error::HeaderCrc { expected: 0xd2d8f029, found: 0xd2d8f028, .. })
        ));
        bytes[3] = 5;
        assert!(matches!(
            Descriptor::parse(&bytes, &Location::default()),
            Err(Error::UnsupportedVersion { found: 5, .. })
        ));
        assert!(matches!(
            Descriptor::parse(&bytes[..2], &Location::default()),
            Err(Error::HeaderTruncated { needed: 4, .. })
        ));
    }

    #[test]
    fn params_select_the_section_format() {
        assert_eq!(parse_params("{}").unwrap(), SectionFormat::Plain);
        let lz4 = parse_params(r#"{"compressionClass":"LZ4Compressor","compressionParameters":null}"#).unwrap();
        assert!(matches!(lz4, SectionFormat::Compressed { codec: Compression::Lz4, .. }));
        let full = parse_params(
            r#"{"compressionClass":"org.apache.cassandra.io.compress.ZstdCompressor","compressionParameters":{"compression_level":"3"}}"#,
        )
        .unwrap();
        let SectionFormat::Compressed { codec, options, .. } = full else { panic!("not compressed") };
        assert_eq!(codec, Compression::Zstd);
        assert_eq!(options.get("compression_level").map(String::as_str), Some("3"));
        // json-simple escapes '/' as '\/'; Jackson (5.0) does not.
        let enc = parse_params(
            r#"{"encCipher":"AES\/CBC\/PKCS5Padding","encIV":"4927e54951a0a4e3ad0e8c7ba8bd5b34","encKeyAlias":"testing:1"}"#,
        )
        .unwrap();
        let SectionFormat::Encrypted(e) = enc else { panic!("not encrypted") };
        assert_eq!(e.key_alias, "testing:1");
        assert_eq!(e.iv[0], 0x49);
        assert!(matches!(
            parse_params(r#"{"compressionClass":"BrotliCompressor"}"#),
            Err(ParamsError::UnknownCompressor { .. })
        ));
        assert!(matches!(
            parse_params(r#"{"encCipher":"AES/CBC/PKCS5Padding","encKeyAlias":"k","encIV":"zz"}"#),
            Err(ParamsError::BadIv { .. })
        ));
        assert!(matches!(parse_params("[]"), Err(ParamsError::NotAnObject)));
    }
}
