//! Cassandra's variable-length integers (format spec §7.1, §7.2): the
//! number of leading 1-bits of the first byte says how many bytes follow,
//! big-endian. Not LEB128.

/// Reads an unsigned vint from the start of `buf`: the value and the bytes
/// it took, or `None` if `buf` ends inside it.
#[inline]
pub fn read_unsigned_vint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    if first < 0x80 {
        return Some((first as u64, 1));
    }
    let extra = first.leading_ones() as usize;
    let bytes = buf.get(1..1 + extra)?;
    // For extra == 8 the mask is 0: all 64 bits come from the 8 bytes.
    let mut value = (first as u64) & (0xffu64 >> extra);
    for &b in bytes {
        value = (value << 8) | b as u64;
    }
    Some((value, 1 + extra))
}

/// Bytes the minimal encoding of `value` takes (1 to 9).
pub fn unsigned_vint_size(value: u64) -> usize {
    // 7 value bits per byte up to 8 bytes, then 9 bytes for the full 64.
    let bits = 64 - value.leading_zeros() as usize;
    if bits <= 56 { bits.max(1).div_ceil(7) } else { 9 }
}

/// Appends the minimal encoding of `value`.
pub fn write_unsigned_vint(value: u64, out: &mut Vec<u8>) {
    let size = unsigned_vint_size(value);
    if size == 1 {
        out.push(value as u8);
        return;
    }
    let be = value.to_be_bytes();
    let extra = size - 1;
    if extra == 8 {
        out.push(0xff);
        out.extend_from_slice(&be);
        return;
    }
    // `size` bytes of the value, the first one topped with `extra` 1-bits.
    let field = &be[8 - size..];
    out.push(field[0] | !(0xffu8 >> extra));
    out.extend_from_slice(&field[1..]);
}

/// Zig-zag encoding of a signed value (format spec §7.2).
pub fn zigzag_encode(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Zig-zag decoding.
pub fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads a signed (zig-zag) vint.
pub fn read_signed_vint(buf: &[u8]) -> Option<(i64, usize)> {
    read_unsigned_vint(buf).map(|(u, n)| (zigzag_decode(u), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of format spec §7.1.
    #[test]
    fn spec_examples() {
        let table: [(u64, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x80]),
            (300, &[0x81, 0x2c]),
            (86400, &[0xc1, 0x51, 0x80]),
            (16384, &[0xc0, 0x40, 0x00]),
            (1 << 56, &[0xff, 0x01, 0, 0, 0, 0, 0, 0, 0]),
            (u64::MAX, &[0xff; 9]),
        ];
        for (value, bytes) in table {
            assert_eq!(read_unsigned_vint(bytes), Some((value, bytes.len())), "{value}");
            let mut out = Vec::new();
            write_unsigned_vint(value, &mut out);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(unsigned_vint_size(value), bytes.len());
        }
    }

    #[test]
    fn truncated_and_signed() {
        assert_eq!(read_unsigned_vint(&[]), None);
        assert_eq!(read_unsigned_vint(&[0x81]), None);
        assert_eq!(read_unsigned_vint(&[0xff, 0, 0, 0, 0, 0, 0, 0]), None);
        // 1mo 2d 3s of the spec's duration example: 02 04 f1 65 a0 bc 00.
        let d = [0x02, 0x04, 0xf1, 0x65, 0xa0, 0xbc, 0x00];
        assert_eq!(read_signed_vint(&d), Some((1, 1)));
        assert_eq!(read_signed_vint(&d[1..]), Some((2, 1)));
        assert_eq!(read_signed_vint(&d[2..]), Some((3_000_000_000, 5)));
        for n in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            assert_eq!(zigzag_decode(zigzag_encode(n)), n);
        }
    }
}
