//! Values written as JSON straight into a byte buffer: the bytes their
//! `Serialize` gives through `serde_json` (`json.rs`), without its
//! machinery. Strings are escaped by scanning 32 bytes at a time, integers
//! formatted by `itoa` and floats by `zmij` (the crates `serde_json`
//! formats numbers with), 16-digit timestamps eight digits at a time, uuids
//! and dates in place. The change format's writer
//! (`mutation::ChangeWriter`) is built on these.

use uuid::Uuid;

use super::{Value, ValueError, decimal_string, format_duration, format_time, varint_string};

/// Writes values as JSON (see the module docs); keeps scratch space
/// between calls.
#[derive(Debug, Default)]
pub struct ValueWriter {
    /// Where map keys that are not strings are rendered first.
    scratch: Vec<u8>,
    /// The last date rendered and its `yyyy-mm-dd` (dates repeat: a day is
    /// often a key).
    last_day: Option<(i64, [u8; 10])>,
    /// The day of the last timestamp rendered, and its `yyyy-mm-dd`.
    last_ts_day: Option<(i64, [u8; 10])>,
}

/// Escape classes, as `serde_json` escapes: `0` nothing, `b'u'` as
/// `\u00XX`, otherwise the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
fn escape_byte(out: &mut Vec<u8>, b: u8, class: u8) {
    if class == b'u' {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    } else {
        out.extend_from_slice(&[b'\\', class]);
    }
}

/// The escape mask of a word: non-zero when any of its eight bytes is
/// below 0x20, `"` or `\`.
#[inline(always)]
fn escape_mask(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    w.wrapping_sub(LO * 0x20) & !w & HI | zero(w ^ (LO * b'"' as u64)) | zero(w ^ (LO * b'\\' as u64))
}

/// Whether any byte of a block is below 0x20, `"` or `\\`: a plain loop
/// over a fixed-size block, which the compiler turns into vector compares.
#[inline(always)]
fn block_needs_escape(block: &[u8; 32]) -> bool {
    let mut acc = 0u8;
    for &b in block {
        acc |= u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    }
    acc != 0
}

/// Escapes `s[from..to]` byte by byte into `out`, from `*start` on.
#[inline]
fn escape_run(out: &mut Vec<u8>, s: &[u8], start: &mut usize, from: usize, to: usize) {
    for (j, &b) in s[from..to].iter().enumerate() {
        let class = ESCAPE[b as usize];
        if class != 0 {
            let j = from + j;
            out.extend_from_slice(&s[*start..j]);
            escape_byte(out, b, class);
            *start = j + 1;
        }
    }
}

/// A JSON string: `"`, the text escaped as `serde_json` escapes it, `"`.
/// Text is scanned 32 bytes at a time (vector compares), the rest a word
/// at a time; only a block with a byte to escape is looked at byte by byte.
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    let s = s.as_bytes();
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    let word = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    while i + 32 <= s.len() {
        let block: &[u8; 32] = s[i..i + 32].try_into().expect("32 bytes");
        if block_needs_escape(block) {
            escape_run(out, s, &mut start, i, i + 32);
        }
        i += 32;
    }
    while i + 8 <= s.len() {
        if escape_mask(word(i)) != 0 {
            escape_run(out, s, &mut start, i, i + 8);
        }
        i += 8;
    }
    if i < s.len() {
        // The last bytes, padded with a byte that needs no escape.
        let mut tail = [b'a'; 8];
        tail[..s.len() - i].copy_from_slice(&s[i..]);
        if escape_mask(u64::from_le_bytes(tail)) != 0 {
            escape_run(out, s, &mut start, i, s.len());
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// `"key":` for a key known to need no escaping.
#[inline]
pub(crate) fn key(out: &mut Vec<u8>, k: &'static str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `"name":` for a column or field name.
#[inline]
pub(crate) fn name_key(out: &mut Vec<u8>, name: &str) {
    string(out, name);
    out.push(b':');
}

#[inline]
pub(crate) fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// The eight decimal digits of `n` (below 10^8), most significant first,
/// computed in one register (the fixed-width method of Lemire and Muła).
#[inline]
fn eight_digits(n: u64) -> [u8; 8] {
    // abcdefgh -> abcd << 32 | efgh
    let v = n + ((1 << 32) - 10_000) * ((n * 109_951_163) >> 40);
    // -> ab << 48 | cd << 32 | ef << 16 | gh
    let v = v + ((1 << 16) - 100) * (((v * 10_486) >> 20) & ((0x7f << 32) | 0x7f));
    // -> a << 56 | b << 48 | ... | h
    let v = v + ((1 << 8) - 10) * (((v * 103) >> 10) & ((0xf << 48) | (0xf << 32) | (0xf << 16) | 0xf));
    (v + 0x3030_3030_3030_3030).to_be_bytes()
}

/// A signed 64-bit integer, as `itoa` writes it; numbers of nine digits
/// and more (timestamps, segment ids) eight digits at a time.
#[inline]
pub(crate) fn long(out: &mut Vec<u8>, v: i64) {
    let n = v.unsigned_abs();
    if n < 100_000_000 {
        return int(out, v);
    }
    if v < 0 {
        out.push(b'-');
    }
    let low = n % 100_000_000;
    let high = n / 100_000_000;
    if (10_000_000..100_000_000).contains(&high) {
        // Sixteen digits (every timestamp in microseconds of this century).
        let mut digits = [0u8; 16];
        digits[..8].copy_from_slice(&eight_digits(high));
        digits[8..].copy_from_slice(&eight_digits(low));
        out.extend_from_slice(&digits);
        return;
    }
    if high < 100_000_000 {
        int(out, high);
    } else {
        int(out, high / 100_000_000);
        out.extend_from_slice(&eight_digits(high % 100_000_000));
    }
    out.extend_from_slice(&eight_digits(low));
}

#[inline]
pub(crate) fn boolean(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

#[inline]
pub(crate) fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

/// Every byte as two lower-case hex digits.
pub(crate) static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    t
};

/// A uuid as a quoted, hyphenated, lower-case string (as `Hyphenated`
/// displays it).
#[inline]
pub(crate) fn uuid(out: &mut Vec<u8>, u: &Uuid) {
    let b = u.as_bytes();
    let mut buf = [b'-'; 38];
    buf[0] = b'"';
    buf[37] = b'"';
    let mut at = 1;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        buf[at..at + 2].copy_from_slice(&HEX_PAIRS[*byte as usize]);
        at += 2;
    }
    out.extend_from_slice(&buf);
}

/// Bytes as lower-case hex, with the `0x` prefix or without.
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8], prefix: bool) {
    out.reserve(bytes.len() * 2 + 4);
    out.push(b'"');
    if prefix {
        out.extend_from_slice(b"0x");
    }
    for b in bytes {
        out.extend_from_slice(&HEX_PAIRS[*b as usize]);
    }
    out.push(b'"');
}

/// The two decimal digits of each number below 100.
static DEC_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// A `date` (days since the epoch) as `"yyyy-mm-dd"` (as `format_date`).
fn date(out: &mut Vec<u8>, days: i64) {
    out.push(b'"');
    ymd(out, days);
    out.push(b'"');
}

impl ValueWriter {
    /// A timestamp as [`timestamp`] writes it, built on the stack and
    /// appended at once; the day's digits come from a one-entry cache
    /// (timestamps of one stream mostly share their day).
    fn timestamp(&mut self, out: &mut Vec<u8>, millis: i64) {
        let Some(day) = cached_day(&mut self.last_ts_day, millis.div_euclid(86_400_000)) else {
            return timestamp(out, millis);
        };
        let mut t = *b"\"yyyy-mm-dd hh:mm:ss.fffZ\"";
        t[1..11].copy_from_slice(&day);
        t[11..24].copy_from_slice(&time_of_day(millis.rem_euclid(86_400_000)));
        out.extend_from_slice(&t);
    }

    /// A date, from the one-entry cache when it is the last one written.
    fn date(&mut self, out: &mut Vec<u8>, days: i64) {
        let Some(day) = cached_day(&mut self.last_day, days) else { return date(out, days) };
        let mut t = *b"\"yyyy-mm-dd\"";
        t[1..11].copy_from_slice(&day);
        out.extend_from_slice(&t);
    }
}

/// `yyyy-mm-dd` of a day count (as [`day_digits`]), from a one-entry cache.
#[inline]
fn cached_day(cache: &mut Option<(i64, [u8; 10])>, days: i64) -> Option<[u8; 10]> {
    match cache {
        Some((d, text)) if *d == days => Some(*text),
        _ => {
            let text = day_digits(days)?;
            *cache = Some((days, text));
            Some(text)
        }
    }
}

/// `yyyy-mm-dd` of a day count in the years 0 to 9999 (`None` outside).
fn day_digits(days: i64) -> Option<[u8; 10]> {
    let (y, m, d) = crate::value::civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut text = *b"yyyy-mm-dd";
    text[..2].copy_from_slice(&DEC_PAIRS[(y / 100) as usize]);
    text[2..4].copy_from_slice(&DEC_PAIRS[(y % 100) as usize]);
    text[5..7].copy_from_slice(&DEC_PAIRS[m as usize]);
    text[8..].copy_from_slice(&DEC_PAIRS[d as usize]);
    Some(text)
}

/// `yyyy-mm-dd` of a day count, as `format_date` writes it.
fn ymd(out: &mut Vec<u8>, days: i64) {
    if let Some(text) = day_digits(days) {
        return out.extend_from_slice(&text);
    }
    // Outside four digits: the general form, rare.
    let (y, m, d) = crate::value::civil_from_days(days);
    if y < 0 {
        out.push(b'-');
    }
    let digits = itoa::Buffer::new().format(y.unsigned_abs()).to_owned();
    for _ in digits.len()..4 {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
    out.push(b'-');
    out.extend_from_slice(&DEC_PAIRS[m as usize]);
    out.push(b'-');
    out.extend_from_slice(&DEC_PAIRS[d as usize]);
}

/// ` hh:mm:ss.fff` of the milliseconds into a day.
fn time_of_day(ms: i64) -> [u8; 13] {
    let mut t = *b" hh:mm:ss.fff";
    t[1..3].copy_from_slice(&DEC_PAIRS[(ms / 3_600_000) as usize]);
    t[4..6].copy_from_slice(&DEC_PAIRS[(ms / 60_000 % 60) as usize]);
    t[7..9].copy_from_slice(&DEC_PAIRS[(ms / 1000 % 60) as usize]);
    let f = ms % 1000;
    t[10] = b'0' + (f / 100) as u8;
    t[11..].copy_from_slice(&DEC_PAIRS[(f % 100) as usize]);
    t
}

/// A `timestamp` as `"yyyy-mm-dd hh:mm:ss.fffZ"` (as `format_timestamp`).
pub(crate) fn timestamp(out: &mut Vec<u8>, millis: i64) {
    out.push(b'"');
    ymd(out, millis.div_euclid(86_400_000));
    out.extend_from_slice(&time_of_day(millis.rem_euclid(86_400_000)));
    out.extend_from_slice(b"Z\"");
}

/// A float as the crate's `Serialize` writes it: NaN and infinities as
/// strings, finite values in their shortest round-trip form.
pub(crate) fn float(out: &mut Vec<u8>, v: f64, narrow: Option<f32>) {
    if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else if let Some(f) = narrow {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    }
}

/// A text that needs no escaping, quoted.
pub(crate) fn plain_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

impl ValueWriter {
    /// A writer.
    pub fn new() -> ValueWriter {
        ValueWriter::default()
    }

    /// Appends a value's JSON: the bytes of its `Serialize` through
    /// `serde_json`, for a value whose elements all decode
    /// ([`Value::validate`]); `Err` (and nothing written) otherwise.
    pub fn write_value(&mut self, out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), ValueError> {
        let at = out.len();
        let r = self.value(out, v);
        if r.is_err() {
            out.truncate(at);
        }
        r
    }

    /// Appends a value as an object key, as the change format writes map
    /// keys: its JSON when that is a string, else its JSON text as a string.
    pub fn write_key(&mut self, out: &mut Vec<u8>, k: &Value<'_>) -> Result<(), ValueError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let r = self.value(&mut scratch, k);
        if r.is_ok() {
            if scratch.first() == Some(&b'"') {
                out.extend_from_slice(&scratch);
            } else {
                string(out, std::str::from_utf8(&scratch).unwrap_or_default());
            }
        }
        self.scratch = scratch;
        r
    }

    /// The elements of a list, set, vector or tuple.
    fn array<'v>(
        &mut self,
        out: &mut Vec<u8>,
        items: impl Iterator<Item = Result<Option<Value<'v>>, ValueError>>,
    ) -> Result<(), ValueError> {
        out.push(b'[');
        for (i, v) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.optional(out, v?)?;
        }
        out.push(b']');
        Ok(())
    }

    /// A value, or `null`.
    fn optional(&mut self, out: &mut Vec<u8>, v: Option<Value<'_>>) -> Result<(), ValueError> {
        match v {
            Some(v) => self.value(out, &v),
            None => {
                null(out);
                Ok(())
            }
        }
    }

    /// A value's JSON; a nested element that does not decode is an error
    /// (the caller discards what was written).
    pub(crate) fn value(&mut self, out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), ValueError> {
        match *v {
            Value::Empty => null(out),
            Value::Ascii(t) | Value::Text(t) => string(out, t),
            Value::Int(v) => int(out, v),
            Value::BigInt(v) => long(out, v),
            Value::SmallInt(v) => int(out, v),
            Value::TinyInt(v) => int(out, v),
            Value::Varint(v) => match v.to_i128() {
                Some(n) if i64::try_from(n).is_ok() => int(out, n as i64),
                _ => out.extend_from_slice(varint_string(v.0).as_bytes()),
            },
            Value::Decimal(d) => out.extend_from_slice(decimal_string(d.unscaled.0, d.scale).as_bytes()),
            Value::Float(f) => float(out, f as f64, Some(f)),
            Value::Double(f) => float(out, f, None),
            Value::Boolean(b) => boolean(out, b),
            Value::Uuid(u) | Value::TimeUuid(u) => uuid(out, &u),
            Value::Timestamp(ms) => self.timestamp(out, ms),
            Value::Date(days) => self.date(out, days),
            Value::Time(ns) => plain_string(out, &format_time(ns)),
            Value::Duration(d) => plain_string(out, &format_duration(d.months, d.days, d.nanoseconds)),
            Value::Inet(ip) => {
                use std::io::Write;
                out.push(b'"');
                let _ = write!(out, "{ip}");
                out.push(b'"');
            }
            Value::Blob(b) | Value::Custom(b) => hex(out, b, true),
            Value::Counter(c) => int(out, c.total()),
            Value::List(e) | Value::Set(e) | Value::Vector(e) => self.array(out, e.iter())?,
            Value::Tuple(f) => self.array(out, f.iter().map(|(_, v)| v))?,
            Value::Udt(f) => {
                out.push(b'{');
                for (i, (name, v)) in f.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    name_key(out, name.unwrap_or(""));
                    self.optional(out, v?)?;
                }
                out.push(b'}');
            }
            Value::Map(m) => {
                out.push(b'{');
                for (i, kv) in m.iter().enumerate() {
                    let (k, v) = kv?;
                    if i > 0 {
                        out.push(b',');
                    }
                    match k {
                        // A key that renders as a JSON string is that string;
                        // any other rendering becomes the text of a string.
                        Some(k) => self.write_key(out, &k)?,
                        None => out.extend_from_slice(b"\"null\""),
                    }
                    out.push(b':');
                    self.optional(out, v)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escaping agrees with serde_json on every byte value, alone and in
    /// every position of a word.
    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut texts: Vec<String> = (0u8..128).map(|b| (b as char).to_string()).collect();
        // Every byte value at every place of a 32-byte block, a word and the tail.
        let base = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,";
        for b in 0u8..128 {
            for at in 0..base.len() {
                let mut s = base.to_owned();
                s.insert(at, b as char);
                texts.push(s);
            }
        }
        texts.push("naïve — ünïcödé \u{7f} \u{2028}".to_owned());
        for t in texts {
            let mut out = Vec::new();
            string(&mut out, &t);
            assert_eq!(out, serde_json::to_vec(&t).unwrap(), "{t:?}");
        }
    }

    #[test]
    fn strings_dense_with_escapes_escape_as_serde_json_does() {
        // Many bytes to escape in one block, next to each other, next to
        // multi-byte characters, at every length up to four blocks.
        let alphabet = ['"', '\\', '\n', '\u{1}', '\u{1f}', 'a', ' ', 'é', '\u{7f}', '€', '\t', 'z'];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..40_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (i % 130) as usize;
            let t: String =
                (0..len).map(|k| alphabet[((x >> (k % 60)) as usize ^ k.wrapping_mul(31)) % alphabet.len()]).collect();
            let mut out = b"prefix".to_vec();
            string(&mut out, &t);
            let mut want = b"prefix".to_vec();
            want.extend(serde_json::to_vec(&t).unwrap());
            assert_eq!(out, want, "{t:?}");
        }
    }

    #[test]
    fn longs_render_as_itoa_does() {
        let mut cases = vec![0i64, 1, -1, 99_999_999, 100_000_000, -100_000_000, i64::MIN, i64::MAX];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x as i64);
            cases.push((x >> (x % 64)) as i64);
            cases.push(-((x % 10_000_000_000_000_000) as i64));
        }
        for p in 0..19 {
            let t = 10i64.pow(p);
            cases.extend([t, t - 1, t + 1, -t, 1 - t]);
        }
        for v in cases {
            let mut out = Vec::new();
            long(&mut out, v);
            assert_eq!(out, itoa::Buffer::new().format(v).as_bytes(), "{v}");
        }
        // Every 8-digit block against the arithmetic, on a stride.
        for n in (0..100_000_000u64).step_by(9_973).chain([99_999_999]) {
            assert_eq!(eight_digits(n), *format!("{n:08}").as_bytes().first_chunk::<8>().unwrap(), "{n}");
        }
    }

    #[test]
    fn uuids_render_as_hyphenated_does() {
        for u in [Uuid::nil(), Uuid::max(), "3a3b9380-e732-11f1-a7c5-e72bb5e4b197".parse().unwrap()] {
            let mut out = Vec::new();
            uuid(&mut out, &u);
            assert_eq!(out, format!("\"{}\"", u.hyphenated()).into_bytes());
        }
    }

    #[test]
    fn dates_render_as_the_text_module_does() {
        for days in [0, -1, 1, 2_932_896, 2_932_897, -719_528, -719_529, -2_147_483_648, 2_147_483_647] {
            let mut out = Vec::new();
            date(&mut out, days);
            assert_eq!(out, format!("\"{}\"", crate::value::format_date(days)).into_bytes(), "{days}");
        }
        // The writer's own path (its day cached): repeats, changes, and
        // years outside four digits between them.
        let mut w = ValueWriter::default();
        for days in [0, 0, 20_415, 20_415, -719_529, -719_529, 20_415, 2_932_897, 2_932_897, 0, i32::MIN as i64] {
            let mut out = Vec::new();
            w.value(&mut out, &Value::Date(days)).unwrap();
            assert_eq!(out, format!("\"{}\"", crate::value::format_date(days)).into_bytes(), "{days}");
        }
    }

    #[test]
    fn timestamps_render_as_the_text_module_does() {
        for ms in
            [0, -1, 1, 86_399_999, 1_795_433_791_762, -62_135_596_800_000, 253_402_300_800_000, i64::MIN, i64::MAX]
        {
            let mut out = Vec::new();
            timestamp(&mut out, ms);
            assert_eq!(out, format!("\"{}\"", crate::value::format_timestamp(ms)).into_bytes(), "{ms}");
        }
        // The writer's own path (stack-built, its day cached): runs of
        // one day, day changes, both ways, and years outside four digits.
        let mut w = ValueWriter::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut ms = 1_795_433_791_762i64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = match i % 7 {
                0 => (x >> 1) as i64,
                1 => -((x >> 20) as i64),
                2 => ms.wrapping_add((x % 86_400_000) as i64 * if x & 1 == 0 { 1 } else { -1 }),
                _ => ms.wrapping_add((x % 1000) as i64),
            };
            let mut out = Vec::new();
            w.value(&mut out, &Value::Timestamp(ms)).unwrap();
            assert_eq!(out, format!("\"{}\"", crate::value::format_timestamp(ms)).into_bytes(), "{ms}");
        }
    }
}
