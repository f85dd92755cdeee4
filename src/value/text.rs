//! Text forms of values as Cassandra's `SELECT JSON` writes them: exact
//! integers and decimals, proleptic Gregorian timestamps and dates, times of
//! day, durations.

use std::fmt::Write;

/// A `varint` (two's complement big-endian bytes) in decimal, exactly.
pub fn varint_string(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".to_owned();
    }
    if bytes.len() <= 16 {
        return super::Varint(bytes).to_i128().expect("16 bytes fit").to_string();
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut mag = bytes.to_vec();
    if negative {
        // Two's complement: invert and add one.
        let mut carry = true;
        for b in mag.iter_mut().rev() {
            *b = !*b;
            if carry {
                let (v, c) = b.overflowing_add(1);
                *b = v;
                carry = c;
            }
        }
    }
    // Repeated division by 10^9, most significant byte first.
    let mut limbs = Vec::new();
    let mut start = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    while start < mag.len() {
        let mut rem = 0u64;
        for b in &mut mag[start..] {
            let cur = (rem << 8) | *b as u64;
            *b = (cur / 1_000_000_000) as u8;
            rem = cur % 1_000_000_000;
        }
        limbs.push(rem);
        while start < mag.len() && mag[start] == 0 {
            start += 1;
        }
    }
    let mut out = String::with_capacity(limbs.len() * 9 + 1);
    if negative {
        out.push('-');
    }
    let mut it = limbs.iter().rev();
    let _ = write!(out, "{}", it.next().copied().unwrap_or(0));
    for limb in it {
        let _ = write!(out, "{limb:09}");
    }
    out
}

/// A `decimal` as Java's `BigDecimal.toString` writes it: plain notation
/// unless the scale is negative or the adjusted exponent is below −6.
pub fn decimal_string(unscaled: &[u8], scale: i32) -> String {
    let full = varint_string(unscaled);
    let (negative, digits) = match full.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, full.as_str()),
    };
    let n = digits.len() as i64;
    let scale = scale as i64;
    let adjusted = -scale + (n - 1);
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if scale >= 0 && adjusted >= -6 {
        if scale == 0 {
            out.push_str(digits);
        } else if n > scale {
            let (int, frac) = digits.split_at((n - scale) as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            for _ in 0..scale - n {
                out.push('0');
            }
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "E{}{adjusted}", if adjusted >= 0 { "+" } else { "" });
    }
    out
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        let _ = write!(out, "-{:04}-{m:02}-{d:02}", -y);
    } else {
        let _ = write!(out, "{y:04}-{m:02}-{d:02}");
    }
}

/// A `timestamp` (ms since the epoch) as `yyyy-mm-dd hh:mm:ss.fffZ`.
pub fn format_timestamp(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let ms = millis.rem_euclid(86_400_000);
    let mut out = String::with_capacity(24);
    write_date(&mut out, days);
    let _ = write!(out, " {:02}:{:02}:{:02}.{:03}Z", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    out
}

/// A `date` (days since the epoch) as `yyyy-mm-dd`.
pub fn format_date(days: i64) -> String {
    let mut out = String::with_capacity(10);
    write_date(&mut out, days);
    out
}

/// A `time` (ns since midnight) as `hh:mm:ss.nnnnnnnnn`.
pub fn format_time(nanos: i64) -> String {
    let s = nanos / 1_000_000_000;
    format!("{:02}:{:02}:{:02}.{:09}", s / 3600, s / 60 % 60, s % 60, nanos % 1_000_000_000)
}

/// A `duration` as Cassandra writes it (`1y2mo3d4h5m6s7ms8us9ns`, a leading
/// `-` when any part is negative, zero parts left out).
pub fn format_duration(months: i32, days: i32, nanos: i64) -> String {
    fn part(out: &mut String, value: u64, unit_size: u64, unit: &str) -> u64 {
        if value == 0 || value < unit_size {
            return value;
        }
        let _ = write!(out, "{}{unit}", value / unit_size);
        value % unit_size
    }
    let mut out = String::new();
    if months < 0 || days < 0 || nanos < 0 {
        out.push('-');
    }
    let rest = part(&mut out, months.unsigned_abs() as u64, 12, "y");
    part(&mut out, rest, 1, "mo");
    part(&mut out, days.unsigned_abs() as u64, 1, "d");
    if nanos != 0 {
        let mut rest = nanos.unsigned_abs();
        for (size, unit) in [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ] {
            rest = part(&mut out, rest, size, unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(n: i128) -> Vec<u8> {
        // Minimal two's complement, as BigInteger.toByteArray writes it.
        let bytes = n.to_be_bytes();
        let mut start = 0;
        while start < 15
            && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
                || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
        {
            start += 1;
        }
        bytes[start..].to_vec()
    }

    #[test]
    fn varints_exactly() {
        for n in [0i128, 1, -1, 127, 128, -128, -129, i64::MIN as i128, i128::MAX, i128::MIN] {
            assert_eq!(varint_string(&be(n)), n.to_string());
        }
        // Larger than 128 bits: 2^200 and -(2^200), computed independently.
        let mut big = vec![0x01];
        big.extend(std::iter::repeat_n(0u8, 25));
        assert_eq!(varint_string(&big), "1606938044258990275541962092341162602522202993782792835301376");
        let mut neg = vec![0xff];
        neg.extend(std::iter::repeat_n(0u8, 25));
        assert_eq!(varint_string(&neg), "-1606938044258990275541962092341162602522202993782792835301376");
    }

    #[test]
    fn decimals_as_bigdecimal_tostring() {
        assert_eq!(decimal_string(&be(-1), 3), "-0.001");
        assert_eq!(decimal_string(&be(12345678901234567), 12), "12345.678901234567");
        assert_eq!(decimal_string(&be(0), 3), "0.000");
        assert_eq!(decimal_string(&be(5), 0), "5");
        assert_eq!(decimal_string(&be(1), -3), "1E+3");
        assert_eq!(decimal_string(&be(123), -2), "1.23E+4");
        assert_eq!(decimal_string(&be(1), 7), "1E-7");
        assert_eq!(decimal_string(&be(1), 6), "0.000001");
        assert_eq!(decimal_string(&be(-12), 10), "-1.2E-9");
    }

    #[test]
    fn timestamps_and_dates_proleptic() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(format_timestamp(-1000), "1969-12-31 23:59:59.000Z");
        assert_eq!(format_timestamp(1_700_000_000_123), "2023-11-14 22:13:20.123Z");
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999Z");
        // 2000-02-29 (leap day of a year divisible by 400).
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29 00:00:00.000Z");
        // Proleptic Gregorian before 1582: 0001-01-01 is day -719162.
        assert_eq!(format_date(-719_162), "0001-01-01");
        assert_eq!(format_date(-719_163), "0000-12-31");
        assert_eq!(format_date(-719_529), "-0001-12-31");
        assert_eq!(format_date(2_932_896), "9999-12-31");
        assert_eq!(format_date(2_932_897), "10000-01-01");
        assert_eq!(format_timestamp(i64::MIN), "-292275055-05-16 16:47:04.192Z");
        assert_eq!(format_timestamp(i64::MAX), "292278994-08-17 07:12:55.807Z");
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(format_time(0), "00:00:00.000000000");
        assert_eq!(format_time(3_723_000_000_004), "01:02:03.000000004");
        assert_eq!(format_duration(1, 2, 3_000_000_000), "1mo2d3s");
        assert_eq!(format_duration(-1, -2, -3), "-1mo2d3ns");
        assert_eq!(format_duration(14, 0, 3_600_000_000_001), "1y2mo1h1ns");
        assert_eq!(format_duration(0, 0, 0), "");
        assert_eq!(format_duration(i32::MIN, 0, i64::MIN), "-178956970y8mo2562047h47m16s854ms775us808ns");
    }
}
