//! Writing segments: headers, sync markers, sections of every kind, and
//! entries with their CRCs, byte for byte as Cassandra writes them.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};

use crate::segment::{Compression, ENTRY_OVERHEAD, SYNC_MARKER_SIZE, header_crc, marker_crc};

/// Default raw chunk size of an encrypted section (Cassandra's
/// `chunk_length_kb` default, 64 KiB).
pub const DEFAULT_CHUNK_LEN: usize = 64 << 10;

/// How the builder stores sections.
#[derive(Clone, Debug)]
pub enum BuildFormat {
    /// Plain sections (memory-mapped segments).
    Plain,
    /// Compressed sections.
    Compressed(Compression),
    /// Encrypted sections: AES/CBC/PKCS5 with LZ4 inside.
    Encrypted {
        /// Alias written in the header.
        alias: String,
        /// AES key (16, 24 or 32 bytes).
        key: Vec<u8>,
        /// IV written in the header and used for every block.
        iv: [u8; 16],
        /// Raw bytes per encrypted block.
        chunk_len: usize,
    },
}

/// The descriptor header of a segment (format spec §2).
pub fn header(version: i32, id: i64, params_json: &str) -> Vec<u8> {
    let params = params_json.as_bytes();
    assert!(params.len() <= u16::MAX as usize, "parameters longer than 65535 bytes");
    let mut out = Vec::with_capacity(18 + params.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(params.len() as u16).to_be_bytes());
    out.extend_from_slice(params);
    out.extend_from_slice(&header_crc(version, id, params).to_be_bytes());
    out
}

/// The parameter JSON Cassandra 3.x/4.x writes for a format (json-simple,
/// keys sorted, `/` escaped).
pub fn params_json(format: &BuildFormat) -> String {
    match format {
        BuildFormat::Plain => "{}".to_owned(),
        BuildFormat::Compressed(c) => {
            format!(r#"{{"compressionClass":"{}","compressionParameters":null}}"#, c.class_name())
        }
        BuildFormat::Encrypted { alias, iv, .. } => {
            let iv: String = iv.iter().map(|b| format!("{b:02x}")).collect();
            format!(r#"{{"encCipher":"AES\/CBC\/PKCS5Padding","encIV":"{iv}","encKeyAlias":"{alias}"}}"#)
        }
    }
}

/// A sync marker at `offset` announcing a section that ends at `next`.
pub fn marker(id: i64, offset: u32, next: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&next.to_be_bytes());
    m[4..].copy_from_slice(&marker_crc(id, offset).to_be_bytes());
    m
}

/// Appends one entry: size, size CRC, mutation, and the mutation CRC that
/// continues the size CRC (format spec §6).
pub fn entry(mutation: &[u8], out: &mut Vec<u8>) {
    let size = (mutation.len() as u32).to_be_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&size);
    out.extend_from_slice(&size);
    out.extend_from_slice(&h.clone().finalize().to_be_bytes());
    out.extend_from_slice(mutation);
    h.update(mutation);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

/// Compresses section content as Cassandra's compressor `codec` does.
pub fn compress(codec: Compression, raw: &[u8]) -> Vec<u8> {
    match codec {
        Compression::Lz4 => lz4_compressor(raw),
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(raw).expect("snappy accepts any input"),
        Compression::Deflate => {
            // DeflateCompressor returns nothing at all for empty input.
            if raw.is_empty() {
                return Vec::new();
            }
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(raw).expect("writing to a Vec");
            z.finish().expect("writing to a Vec")
        }
        Compression::Zstd => ruzstd::encoding::compress_to_vec(raw, ruzstd::encoding::CompressionLevel::Fastest),
        Compression::Noop => raw.to_vec(),
    }
}

/// `LZ4Compressor` output: little-endian length, then a raw LZ4 block.
fn lz4_compressor(raw: &[u8]) -> Vec<u8> {
    let mut out = (raw.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&lz4_flex::block::compress(raw));
    out
}

/// Encrypts section content into blocks (format spec §3.4).
pub fn encrypt(key: &[u8], iv: &[u8; 16], raw: &[u8], chunk_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in raw.chunks(chunk_len.max(1)) {
        let mut plain = (chunk.len() as u32).to_be_bytes().to_vec();
        plain.extend_from_slice(&lz4_compressor(chunk));
        let c = plain.len();
        let cipher = aes_cbc_encrypt(key, iv, &plain);
        out.extend_from_slice(&(cipher.len() as u32).to_be_bytes());
        out.extend_from_slice(&(c as u32).to_be_bytes());
        out.extend_from_slice(&cipher);
    }
    out
}

fn aes_cbc_encrypt(key: &[u8], iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let iv = iv.into();
    match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new(key.into(), iv).encrypt_padded_vec_mut::<Pkcs7>(plain),
        24 => cbc::Encryptor::<aes::Aes192>::new(key.into(), iv).encrypt_padded_vec_mut::<Pkcs7>(plain),
        32 => cbc::Encryptor::<aes::Aes256>::new(key.into(), iv).encrypt_padded_vec_mut::<Pkcs7>(plain),
        n => panic!("AES keys are 16, 24 or 32 bytes, not {n}"),
    }
}

/// Where the builder put a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltSection {
    /// File offset of its marker.
    pub file_offset: u64,
    /// File offset just past it.
    pub file_end: u64,
    /// Logical position of its marker.
    pub start: u64,
    /// Logical end.
    pub end: u64,
    /// Entries in it.
    pub entries: usize,
}

/// Where the builder put an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltEntry {
    /// Logical position of its size field.
    pub start: u64,
    /// Logical position just past it.
    pub position: u64,
}

/// Writes a segment section by section.
///
/// ```
/// use cassandra_commitlog::builder::{BuildFormat, SegmentBuilder};
/// use cassandra_commitlog::segment::{ReadOptions, Segment};
///
/// let mut b = SegmentBuilder::new(7, 42, BuildFormat::Plain);
/// b.entry(b"a mutation of at least 10 bytes");
/// b.sync();
/// let bytes = b.finish();
/// let summary = Segment::from_data(bytes).unwrap().walk(&ReadOptions::new()).unwrap();
/// assert_eq!((summary.sections, summary.entries), (1, 1));
/// ```
#[derive(Clone, Debug)]
pub struct SegmentBuilder {
    id: i64,
    format: BuildFormat,
    out: Vec<u8>,
    logical: u64,
    pending: Vec<u8>,
    pending_entries: usize,
    preallocate: Option<usize>,
    sections: Vec<BuiltSection>,
}

impl SegmentBuilder {
    /// A segment with Cassandra's parameter JSON for `format`.
    pub fn new(version: i32, id: i64, format: BuildFormat) -> SegmentBuilder {
        let params = params_json(&format);
        SegmentBuilder::with_params(version, id, format, &params)
    }

    /// A segment with the given parameter JSON (which should describe `format`).
    pub fn with_params(version: i32, id: i64, format: BuildFormat, params_json: &str) -> SegmentBuilder {
        let out = header(version, id, params_json);
        SegmentBuilder {
            id,
            logical: out.len() as u64,
            format,
            out,
            pending: Vec::new(),
            pending_entries: 0,
            preallocate: None,
            sections: Vec::new(),
        }
    }

    /// Pads the finished file with zeros to `len` bytes, as a memory-mapped
    /// segment is preallocated.
    pub fn preallocate(mut self, len: usize) -> SegmentBuilder {
        self.preallocate = Some(len);
        self
    }

    /// Adds an entry to the open section; returns where it will be.
    pub fn entry(&mut self, mutation: &[u8]) -> BuiltEntry {
        let start = self.logical + SYNC_MARKER_SIZE as u64 + self.pending.len() as u64;
        entry(mutation, &mut self.pending);
        self.pending_entries += 1;
        BuiltEntry { start, position: start + (mutation.len() + ENTRY_OVERHEAD) as u64 }
    }

    /// Adds raw bytes to the open section (for damage and padding).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Closes the open section (possibly empty): writes its marker and data.
    pub fn sync(&mut self) -> BuiltSection {
        let file_offset = self.out.len();
        let raw = std::mem::take(&mut self.pending);
        let raw_len = raw.len();
        // Compressed and encrypted sections start with the raw length.
        let stored = |payload: Vec<u8>| [(raw_len as u32).to_be_bytes().as_slice(), &payload].concat();
        let body = match &self.format {
            BuildFormat::Plain => raw,
            BuildFormat::Compressed(c) => stored(compress(*c, &raw)),
            BuildFormat::Encrypted { key, iv, chunk_len, .. } => stored(encrypt(key, iv, &raw, *chunk_len)),
        };
        let next = file_offset + SYNC_MARKER_SIZE + body.len();
        self.out.extend_from_slice(&marker(self.id, file_offset as u32, next as u32));
        self.out.extend_from_slice(&body);
        let start = self.logical;
        self.logical += (SYNC_MARKER_SIZE + raw_len) as u64;
        let section = BuiltSection {
            file_offset: file_offset as u64,
            file_end: next as u64,
            start,
            end: self.logical,
            entries: std::mem::take(&mut self.pending_entries),
        };
        self.sections.push(section);
        section
    }

    /// The logical position of the next marker.
    pub fn logical_position(&self) -> u64 {
        self.logical
    }

    /// The sections written so far.
    pub fn sections(&self) -> &[BuiltSection] {
        &self.sections
    }

    /// The bytes written so far (without the open section).
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// The finished file. An open section that was never synced is dropped,
    /// as Cassandra's unsynced data is.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(len) = self.preallocate
            && self.out.len() < len
        {
            self.out.resize(len, 0);
        }
        self.out
    }
}
