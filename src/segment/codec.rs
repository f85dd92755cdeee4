//! Section codecs: the five compressors of format spec §4 and the encrypted
//! sections of §3.4. Every function decodes into a caller-owned buffer of
//! exactly the length the section declares, so nothing read from disk can
//! make it allocate more than the reader's section cap.

use std::sync::Arc;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyInit};

use super::descriptor::Compression;

/// Why a section's payload could not be turned back into entries.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SectionError {
    /// The declared uncompressed length is over the reader's cap.
    #[error("declared length {len} exceeds the cap of {cap} bytes")]
    TooLarge {
        /// Length declared in the section header.
        len: u64,
        /// The reader's cap ([`ReadOptions::max_section_len`](super::ReadOptions::max_section_len)).
        cap: u64,
    },
    /// The payload is shorter than its own framing needs.
    #[error("payload of {found} bytes is shorter than the {expected} its framing needs")]
    ShortPayload {
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The LZ4 little-endian length prefix differs from the declared length.
    #[error("LZ4 length prefix says {found} bytes, the section header {expected}")]
    Lz4Prefix {
        /// Length from the section (or chunk) header.
        expected: u64,
        /// Length in the LZ4 prefix.
        found: u64,
    },
    /// The LZ4 block is invalid.
    #[error("LZ4: {0}")]
    Lz4(#[source] Arc<lz4_flex::block::DecompressError>),
    /// The Snappy data is invalid.
    #[error("Snappy: {0}")]
    Snappy(#[source] snap::Error),
    /// The zlib stream is invalid.
    #[error("Deflate: {0}")]
    Deflate(#[source] flate2::DecompressError),
    /// The Zstandard frame is invalid.
    #[error("Zstd: {0}")]
    Zstd(#[source] Arc<ruzstd::decoding::errors::FrameDecoderError>),
    /// The Zstandard content checksum does not match.
    #[error("Zstd content checksum: expected {expected:#010x}, found {found:#010x}")]
    ZstdChecksum {
        /// Checksum of the decoded bytes.
        expected: u32,
        /// Checksum stored in the frame.
        found: u32,
    },
    /// The payload decoded to a length other than the declared one.
    #[error("decoded to {found} bytes, the header declares {expected}")]
    LengthMismatch {
        /// Declared length.
        expected: u64,
        /// Decoded length.
        found: u64,
    },
    /// The compressed stream ends before its payload does: the section's
    /// `next` does not point where its data ends.
    #[error("the compressed stream ends {len} bytes before the section does")]
    TrailingPayload {
        /// Bytes left after the stream.
        len: u64,
    },
    /// The payload goes on decoding past the declared length.
    #[error("decodes to more than the {expected} bytes the header declares")]
    Overrun {
        /// Declared length.
        expected: u64,
    },
    /// An encrypted block's ciphertext length is not a positive multiple of
    /// 16 or runs past the section.
    #[error("cipher block of {len} bytes at payload offset {offset} (16-byte multiple needed, {available} bytes left)")]
    CipherLength {
        /// Payload offset of the block header.
        offset: u64,
        /// Ciphertext length claimed.
        len: u64,
        /// Bytes left in the section.
        available: u64,
    },
    /// A block did not decrypt to valid PKCS#5 padding (wrong key or damage).
    #[error("block at payload offset {offset} does not decrypt to valid padding (wrong key or damaged)")]
    Padding {
        /// Payload offset of the block header.
        offset: u64,
    },
    /// A block's plaintext is shorter than the length its header claims.
    #[error("block at payload offset {offset} claims {expected} plaintext bytes, decrypted to {found}")]
    ChunkLength {
        /// Payload offset of the block header.
        offset: u64,
        /// Length claimed.
        expected: u64,
        /// Length decrypted.
        found: u64,
    },
}

/// Reusable decoder state (the Zstd decoder keeps its buffers between sections).
#[derive(Default)]
pub(crate) struct Codecs {
    zstd: Option<ruzstd::decoding::FrameDecoder>,
}

impl Codecs {
    /// Decodes `payload` into `out`, which is exactly the declared length.
    pub(crate) fn decompress(
        &mut self,
        codec: Compression,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(), SectionError> {
        let expected = out.len() as u64;
        let found = match codec {
            Compression::Lz4 => return lz4_into(payload, out),
            Compression::Snappy => {
                let n = snap::raw::decompress_len(payload).map_err(SectionError::Snappy)?;
                if n as u64 != expected {
                    return Err(SectionError::LengthMismatch { expected, found: n as u64 });
                }
                snap::raw::Decoder::new().decompress(payload, out).map_err(SectionError::Snappy)?
            }
            Compression::Deflate => {
                // Cassandra writes no zlib stream at all for an empty section.
                if payload.is_empty() && out.is_empty() {
                    return Ok(());
                }
                let mut z = flate2::Decompress::new(true);
                let status =
                    z.decompress(payload, out, flate2::FlushDecompress::Finish).map_err(SectionError::Deflate)?;
                if status != flate2::Status::StreamEnd {
                    return Err(if z.total_out() == expected {
                        SectionError::Overrun { expected }
                    } else {
                        SectionError::LengthMismatch { expected, found: z.total_out() }
                    });
                }
                if z.total_in() != payload.len() as u64 {
                    return Err(SectionError::TrailingPayload { len: payload.len() as u64 - z.total_in() });
                }
                z.total_out() as usize
            }
            Compression::Zstd => {
                if payload.is_empty() && out.is_empty() {
                    return Ok(());
                }
                let dec = self.zstd.get_or_insert_with(ruzstd::decoding::FrameDecoder::new);
                // A frame's window never needs to exceed twice its content;
                // bound the allocation by what the section declares.
                dec.set_max_window_size((expected * 2).max(1 << 17));
                let n = dec.decode_all(payload, out).map_err(|e| SectionError::Zstd(Arc::new(e)))?;
                if let (Some(found), Some(expected)) = (dec.get_checksum_from_data(), dec.get_calculated_checksum())
                    && found != expected
                {
                    return Err(SectionError::ZstdChecksum { expected, found });
                }
                n
            }
            Compression::Noop => {
                if payload.len() != out.len() {
                    return Err(SectionError::LengthMismatch { expected, found: payload.len() as u64 });
                }
                out.copy_from_slice(payload);
                payload.len()
            }
        };
        if found as u64 != expected {
            return Err(SectionError::LengthMismatch { expected, found: found as u64 });
        }
        Ok(())
    }
}

/// The content length a compressed payload's own framing states, read
/// without decoding it: `LZ4Compressor`'s length prefix, Snappy's length
/// varint, a Zstd frame's content size; `None` where the framing states
/// none (a zlib stream, a Zstd frame written without its content size, a
/// Noop payload). A second witness of the length the section
/// header declares: where the two disagree, decoding says which is right.
pub(crate) fn framed_len(codec: Compression, payload: &[u8]) -> Option<u64> {
    match codec {
        Compression::Lz4 => payload.first_chunk::<4>().map(|p| u32::from_le_bytes(*p) as u64),
        Compression::Snappy => snap::raw::decompress_len(payload).ok().map(|n| n as u64),
        // Cassandra writes no stream at all for an empty section.
        Compression::Deflate | Compression::Zstd if payload.is_empty() => Some(0),
        Compression::Zstd => zstd_content_size(payload),
        // A Noop payload's length is `next`'s: no second witness.
        Compression::Deflate | Compression::Noop => None,
    }
}

/// The `Frame_Content_Size` of a Zstd frame header (RFC 8878 §3.1.1.1),
/// when the frame has one. zstd-jni, which Cassandra's `ZstdCompressor`
/// uses, always writes it.
fn zstd_content_size(frame: &[u8]) -> Option<u64> {
    let (magic, rest) = frame.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*magic) != 0xFD2F_B528 {
        return None;
    }
    let (&fhd, rest) = rest.split_first()?;
    let single_segment = fhd & 0x20 != 0;
    let dict_len = [0, 1, 2, 4][(fhd & 0x03) as usize];
    let fcs_len = match fhd >> 6 {
        0 if single_segment => 1,
        0 => return None,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let at = usize::from(!single_segment) + dict_len;
    let field = rest.get(at..at + fcs_len)?;
    let mut le = [0u8; 8];
    le[..fcs_len].copy_from_slice(field);
    let n = u64::from_le_bytes(le);
    Some(if fcs_len == 2 { n + 256 } else { n })
}

impl Codecs {
    /// The length `payload` decodes to, found by decoding it whole without
    /// keeping the output (at most `cap` bytes): for codecs whose framing
    /// states no length, when the declared one proved wrong. `None` when
    /// the payload is not one complete stream of at most `cap` bytes.
    pub(crate) fn measure(&mut self, codec: Compression, payload: &[u8], cap: u64) -> Option<u64> {
        match codec {
            Compression::Deflate => {
                let mut z = flate2::Decompress::new(true);
                let mut out = Vec::new();
                loop {
                    out.clear();
                    out.reserve(1 << 16);
                    let consumed = z.total_in() as usize;
                    let status =
                        z.decompress_vec(&payload[consumed..], &mut out, flate2::FlushDecompress::None).ok()?;
                    if z.total_out() > cap {
                        return None;
                    }
                    match status {
                        flate2::Status::StreamEnd => {
                            return (z.total_in() == payload.len() as u64).then_some(z.total_out());
                        }
                        _ if out.is_empty() && z.total_in() as usize == consumed => return None,
                        _ => {}
                    }
                }
            }
            Compression::Zstd => {
                use ruzstd::decoding::BlockDecodingStrategy;
                let dec = self.zstd.get_or_insert_with(ruzstd::decoding::FrameDecoder::new);
                dec.set_max_window_size(cap.saturating_mul(2).max(1 << 17));
                let mut input = payload;
                let mut total = 0u64;
                while !input.is_empty() {
                    dec.init(&mut input).ok()?;
                    loop {
                        dec.decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(1 << 20)).ok()?;
                        let finished = dec.is_finished();
                        total += dec.collect().map_or(0, |v| v.len() as u64);
                        if total > cap {
                            return None;
                        }
                        if finished {
                            break;
                        }
                    }
                    if let (Some(a), Some(b)) = (dec.get_checksum_from_data(), dec.get_calculated_checksum())
                        && a != b
                    {
                        return None;
                    }
                }
                Some(total)
            }
            Compression::Noop => None,
            _ => framed_len(codec, payload).filter(|&n| n <= cap),
        }
    }
}

/// `LZ4Compressor` output: a little-endian length, then one raw block.
fn lz4_into(payload: &[u8], out: &mut [u8]) -> Result<(), SectionError> {
    let expected = out.len() as u64;
    let Some((prefix, block)) = payload.split_first_chunk::<4>() else {
        return Err(SectionError::ShortPayload { expected: 4, found: payload.len() as u64 });
    };
    let declared = u32::from_le_bytes(*prefix) as u64;
    if declared != expected {
        return Err(SectionError::Lz4Prefix { expected, found: declared });
    }
    let n = lz4_flex::block::decompress_into(block, out).map_err(|e| SectionError::Lz4(Arc::new(e)))?;
    if n as u64 != expected {
        return Err(SectionError::LengthMismatch { expected, found: n as u64 });
    }
    Ok(())
}

/// An AES key schedule for one of the three key sizes.
#[derive(Clone)]
pub(crate) enum AesKey {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

impl AesKey {
    pub(crate) fn new(key: &[u8]) -> Option<AesKey> {
        Some(match key.len() {
            16 => AesKey::Aes128(aes::Aes128::new_from_slice(key).ok()?),
            24 => AesKey::Aes192(aes::Aes192::new_from_slice(key).ok()?),
            32 => AesKey::Aes256(aes::Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// The first 16 plaintext bytes of a CBC chain: one block decrypted
    /// and XORed with the IV.
    fn first_block(&self, iv: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
        use aes::cipher::BlockDecrypt;
        let mut b = aes::Block::from(*block);
        match self {
            AesKey::Aes128(k) => k.decrypt_block(&mut b),
            AesKey::Aes192(k) => k.decrypt_block(&mut b),
            AesKey::Aes256(k) => k.decrypt_block(&mut b),
        }
        let mut out: [u8; 16] = b.into();
        for (o, v) in out.iter_mut().zip(iv) {
            *o ^= v;
        }
        out
    }

    /// Decrypts one CBC block chain in place with a fresh IV; returns the
    /// unpadded plaintext length.
    fn decrypt(&self, iv: &[u8; 16], buf: &mut [u8]) -> Option<usize> {
        use aes::cipher::InnerIvInit;
        let iv = iv.into();
        let res = match self {
            AesKey::Aes128(k) => cbc::Decryptor::inner_iv_init(k.clone(), iv).decrypt_padded_mut::<Pkcs7>(buf),
            AesKey::Aes192(k) => cbc::Decryptor::inner_iv_init(k.clone(), iv).decrypt_padded_mut::<Pkcs7>(buf),
            AesKey::Aes256(k) => cbc::Decryptor::inner_iv_init(k.clone(), iv).decrypt_padded_mut::<Pkcs7>(buf),
        };
        res.ok().map(<[u8]>::len)
    }
}

/// The plaintext length an encrypted section's blocks hold (the sum of
/// their raw chunk lengths), read by decrypting only each block's first
/// 16 bytes: a second witness of the length the section header declares.
/// Fails when the blocks do not end exactly where the section does.
pub(crate) fn encrypted_len(key: &AesKey, iv: &[u8; 16], payload: &[u8]) -> Result<u64, SectionError> {
    let mut p = 0usize;
    let mut total = 0u64;
    while p < payload.len() {
        let offset = p as u64;
        let Some(head) = payload.get(p..p + 8) else {
            return Err(SectionError::ShortPayload { expected: 8, found: (payload.len() - p) as u64 });
        };
        let e = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        p += 8;
        let available = payload.len() - p;
        if e == 0 || !e.is_multiple_of(16) || e > available {
            return Err(SectionError::CipherLength { offset, len: e as u64, available: available as u64 });
        }
        let first = key.first_block(iv, payload[p..p + 16].try_into().expect("16 bytes"));
        total += u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as u64;
        p += e;
    }
    Ok(total)
}

/// Decrypts an encrypted section (format spec §3.4): blocks of
/// `[u32 E][u32 C][E bytes]` until the end of `payload`, each an independent
/// AES/CBC/PKCS5 chain with the segment's IV, whose plaintext is
/// `[u32 BE raw length][LZ4Compressor output]`. Appends the raw bytes to
/// `out`, which must end up exactly `total` bytes long.
pub(crate) fn decrypt_section(
    key: &AesKey,
    iv: &[u8; 16],
    payload: &[u8],
    total: usize,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<(), SectionError> {
    out.clear();
    let mut p = 0usize;
    while p < payload.len() {
        let offset = p as u64;
        let Some(head) = payload.get(p..p + 8) else {
            return Err(SectionError::ShortPayload { expected: 8, found: (payload.len() - p) as u64 });
        };
        let e = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let c = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        p += 8;
        let available = payload.len() - p;
        if e == 0 || !e.is_multiple_of(16) || e > available {
            return Err(SectionError::CipherLength { offset, len: e as u64, available: available as u64 });
        }
        scratch.clear();
        scratch.extend_from_slice(&payload[p..p + e]);
        p += e;
        let plain_len = key.decrypt(iv, scratch).ok_or(SectionError::Padding { offset })?;
        if c > plain_len || c < 8 {
            return Err(SectionError::ChunkLength { offset, expected: c as u64, found: plain_len as u64 });
        }
        let chunk = &scratch[..c];
        let raw = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        let start = out.len();
        if raw > total - start {
            return Err(SectionError::LengthMismatch { expected: total as u64, found: (start + raw) as u64 });
        }
        out.resize(start + raw, 0);
        lz4_into(&chunk[4..], &mut out[start..])?;
    }
    if out.len() != total {
        return Err(SectionError::LengthMismatch { expected: total as u64, found: out.len() as u64 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| if i % 50 < 25 { b'x' } else { (i * 7 % 251) as u8 }).collect()
    }

    fn decode(codec: Compression, payload: &[u8], len: usize) -> Result<Vec<u8>, SectionError> {
        let mut out = vec![0u8; len];
        Codecs::default().decompress(codec, payload, &mut out)?;
        Ok(out)
    }

    #[test]
    fn every_codec_round_trips_including_empty() {
        for codec in Compression::ALL {
            for len in [0, 1, 100, 70_000] {
                let raw = sample(len);
                let payload = builder::compress(codec, &raw);
                assert_eq!(decode(codec, &payload, len).unwrap(), raw, "{codec} {len}");
            }
        }
    }

    #[test]
    fn empty_sections_as_cassandra_writes_them() {
        // LZ4Compressor on nothing: length 0 and a block of one empty token.
        assert_eq!(decode(Compression::Lz4, &[0, 0, 0, 0, 0], 0).unwrap(), b"");
        // zstd-jni's empty frame, as found in a real 4.0 segment (13 bytes).
        let zstd_empty = [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51];
        assert_eq!(decode(Compression::Zstd, &zstd_empty, 0).unwrap(), b"");
        // DeflateCompressor writes no stream at all.
        assert_eq!(decode(Compression::Deflate, &[], 0).unwrap(), b"");
        assert_eq!(decode(Compression::Snappy, &[0], 0).unwrap(), b"");
        assert_eq!(decode(Compression::Noop, &[], 0).unwrap(), b"");
    }

    #[test]
    fn declared_lengths_are_enforced() {
        let raw = sample(1000);
        for codec in Compression::ALL {
            let payload = builder::compress(codec, &raw);
            assert!(decode(codec, &payload, 999).is_err(), "{codec}: shorter than the data");
            assert!(decode(codec, &payload, 1001).is_err(), "{codec}: longer than the data");
        }
        let lz4 = builder::compress(Compression::Lz4, &raw);
        assert!(matches!(
            decode(Compression::Lz4, &lz4, 999),
            Err(SectionError::Lz4Prefix { expected: 999, found: 1000 })
        ));
        assert!(matches!(decode(Compression::Lz4, &lz4[..3], 1000), Err(SectionError::ShortPayload { .. })));
        let deflate = builder::compress(Compression::Deflate, &raw);
        assert!(matches!(decode(Compression::Deflate, &deflate, 999), Err(SectionError::Overrun { expected: 999 })));
        assert!(matches!(
            decode(Compression::Deflate, &deflate[..deflate.len() - 6], 1000),
            Err(SectionError::LengthMismatch { .. }) | Err(SectionError::Deflate(_))
        ));
    }

    #[test]
    fn zstd_checksum_is_verified() {
        let raw = sample(500);
        let mut frame = builder::compress(Compression::Zstd, &raw);
        // Frame header descriptor bit 2: content checksum present (as zstd-jni
        // writes it for Cassandra); the checksum is the frame's last 4 bytes.
        assert_ne!(frame[4] & 0x04, 0);
        let n = frame.len();
        frame[n - 1] ^= 0xff;
        assert!(matches!(decode(Compression::Zstd, &frame, 500), Err(SectionError::ZstdChecksum { .. })));
    }

    #[test]
    fn encrypted_sections_decrypt_and_refuse_damage() {
        let key = [0x11u8; 16];
        let iv = [0x22u8; 16];
        let raw = sample(5000);
        let payload = builder::encrypt(&key, &iv, &raw, 1024);
        let aes = AesKey::new(&key).unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        decrypt_section(&aes, &iv, &payload, raw.len(), &mut out, &mut scratch).unwrap();
        assert_eq!(out, raw);
        // Wrong key: the padding does not check out.
        let other = AesKey::new(&[0x12u8; 16]).unwrap();
        assert!(matches!(
            decrypt_section(&other, &iv, &payload, raw.len(), &mut out, &mut scratch),
            Err(SectionError::Padding { offset: 0 }) | Err(SectionError::ChunkLength { .. })
        ));
        // A total that is not the sum of the chunks.
        assert!(matches!(
            decrypt_section(&aes, &iv, &payload, raw.len() + 1, &mut out, &mut scratch),
            Err(SectionError::LengthMismatch { .. })
        ));
        // Cut inside a block header, and a ciphertext length past the end.
        assert!(matches!(
            decrypt_section(&aes, &iv, &payload[..4], raw.len(), &mut out, &mut scratch),
            Err(SectionError::ShortPayload { .. })
        ));
        let mut bad = payload.clone();
        bad[..4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
        assert!(matches!(
            decrypt_section(&aes, &iv, &bad, raw.len(), &mut out, &mut scratch),
            Err(SectionError::CipherLength { .. })
        ));
        assert!(AesKey::new(&[0u8; 15]).is_none());
        assert!(AesKey::new(&[0u8; 24]).is_some() && AesKey::new(&[0u8; 32]).is_some());
    }
}

#[cfg(test)]
mod witness_tests {
    use super::*;
    use crate::builder;

    /// A payload followed by bytes of the next section (a `next` pointing
    /// too far) must not decode: decoding success is what proves `next`.
    #[test]
    fn trailing_bytes_after_a_stream_are_refused_by_every_codec() {
        let raw: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
        for codec in Compression::ALL {
            if codec == Compression::Noop {
                continue;
            }
            let mut payload = builder::compress(codec, &raw);
            for extra in [&[0u8; 8][..], &[0x00, 0x00, 0x00, 0xd9, 0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4]] {
                let base = payload.len();
                payload.extend_from_slice(extra);
                let mut out = vec![0u8; raw.len()];
                let r = Codecs::default().decompress(codec, &payload, &mut out);
                assert!(r.is_err(), "{codec} with {} trailing bytes decoded", extra.len());
                payload.truncate(base);
            }
        }
    }

    #[test]
    fn framed_lengths_and_measure_agree_with_the_content() {
        let raw: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for codec in Compression::ALL {
            let payload = builder::compress(codec, &raw);
            if let Some(n) = framed_len(codec, &payload) {
                assert_eq!(n, raw.len() as u64, "{codec}");
            }
            if codec == Compression::Noop {
                // A Noop payload states no length and measures none: its
                // length is its own.
                assert_eq!(Codecs::default().measure(codec, &payload, 1 << 20), None);
                continue;
            }
            assert_eq!(Codecs::default().measure(codec, &payload, 1 << 20), Some(raw.len() as u64), "{codec}");
            assert_eq!(Codecs::default().measure(codec, &payload, 1000), None, "{codec} over the cap");
            let cut = &payload[..payload.len() - 3];
            if matches!(codec, Compression::Deflate | Compression::Zstd) {
                assert_eq!(Codecs::default().measure(codec, cut, 1 << 20), None, "{codec} truncated");
            }
        }
    }
}
