//! The change format's VALUE rendering: as Cassandra's `SELECT JSON` renders
//! each type, with two deliberate differences so that nothing is lost: NaN
//! and infinities are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`
//! (Cassandra prints `null`), and an empty value of a type for which empty
//! is not a value is `null` (its cell says `"empty": true`).
//!
//! Integers, varints and decimals are exact JSON numbers (with serde_json,
//! numbers beyond 64 bits are written as raw number tokens); map keys that
//! do not render as JSON strings become their JSON text in a string.

use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::{
    Value, ValueError, decimal_string, format_date, format_duration, format_time, format_timestamp, varint_string,
};

/// Writes bytes as `0x` and lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A number token written as it is (exact beyond 64 bits).
fn raw_number<S: Serializer>(s: S, text: String) -> Result<S::Ok, S::Error> {
    match serde_json::value::RawValue::from_string(text) {
        Ok(raw) => raw.serialize(s),
        Err(e) => Err(S::Error::custom(e)),
    }
}

fn float<S: Serializer>(s: S, v: f64, narrow: Option<f32>) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else if let Some(f) = narrow {
        s.serialize_f32(f)
    } else {
        s.serialize_f64(v)
    }
}

impl Value<'_> {
    /// Decodes every nested element, so that rendering cannot fail on the bytes.
    #[inline]
    pub fn validate(&self) -> Result<(), ValueError> {
        // Scalars were checked when decoded: only nested elements remain,
        // and the call for them stays out of line.
        match self {
            Value::List(_) | Value::Set(_) | Value::Vector(_) | Value::Map(_) | Value::Tuple(_) | Value::Udt(_) => {
                self.validate_nested()
            }
            _ => Ok(()),
        }
    }

    fn validate_nested(&self) -> Result<(), ValueError> {
        match self {
            Value::List(e) | Value::Set(e) | Value::Vector(e) => {
                for v in e.iter() {
                    if let Some(v) = v? {
                        v.validate()?;
                    }
                }
            }
            Value::Map(m) => {
                for kv in m.iter() {
                    let (k, v) = kv?;
                    for x in [k, v].into_iter().flatten() {
                        x.validate()?;
                    }
                }
            }
            Value::Tuple(f) | Value::Udt(f) => {
                for (_, v) in f.iter() {
                    if let Some(v) = v? {
                        v.validate()?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The value's JSON text, exact for every type: varints and decimals of
    /// any size are written digit for digit, whatever `serde_json` features
    /// the program enables. This is the path to use.
    ///
    /// `Serialize` gives the same text through a serde_json *writer*
    /// (`to_string`, `to_writer`, `to_vec`). Converting to a
    /// `serde_json::Value` instead (`to_value`) keeps varints and decimals
    /// exact only with serde_json's `arbitrary_precision` feature; without
    /// it, numbers beyond 64 bits become `f64` (`1.2345678901234568e+29`).
    ///
    /// Fails only when the bytes are not a value of the type (a nested
    /// element that does not decode).
    pub fn to_json(&self) -> Result<String, ValueError> {
        let mut out = Vec::new();
        super::ValueWriter::new().write_value(&mut out, self)?;
        Ok(String::from_utf8(out).expect("JSON is UTF-8"))
    }

    /// The rendering of a map key: its JSON string, or its JSON text as a string.
    pub fn key_string(&self) -> Result<String, serde_json::Error> {
        let text = serde_json::to_string(self)?;
        if text.starts_with('"') { serde_json::from_str(&text) } else { Ok(text) }
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Empty => s.serialize_none(),
            Value::Ascii(t) | Value::Text(t) => s.serialize_str(t),
            Value::Int(v) => s.serialize_i32(v),
            Value::BigInt(v) => s.serialize_i64(v),
            Value::SmallInt(v) => s.serialize_i16(v),
            Value::TinyInt(v) => s.serialize_i8(v),
            Value::Varint(v) => match v.to_i128() {
                Some(n) if i64::try_from(n).is_ok() => s.serialize_i64(n as i64),
                _ => raw_number(s, varint_string(v.0)),
            },
            Value::Decimal(d) => raw_number(s, decimal_string(d.unscaled.0, d.scale)),
            Value::Float(v) => float(s, v as f64, Some(v)),
            Value::Double(v) => float(s, v, None),
            Value::Boolean(v) => s.serialize_bool(v),
            Value::Uuid(u) | Value::TimeUuid(u) => s.collect_str(&u.hyphenated()),
            Value::Timestamp(ms) => s.serialize_str(&format_timestamp(ms)),
            Value::Date(days) => s.serialize_str(&format_date(days)),
            Value::Time(ns) => s.serialize_str(&format_time(ns)),
            Value::Duration(d) => s.serialize_str(&format_duration(d.months, d.days, d.nanoseconds)),
            Value::Inet(ip) => s.collect_str(&ip),
            Value::Blob(b) | Value::Custom(b) => s.serialize_str(&hex(b)),
            Value::Counter(c) => s.serialize_i64(c.total()),
            Value::List(e) | Value::Set(e) | Value::Vector(e) => {
                let mut seq = s.serialize_seq(Some(e.len()))?;
                for v in e.iter() {
                    seq.serialize_element(&v.map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
            Value::Tuple(f) => {
                let mut seq = s.serialize_seq(Some(f.types().len()))?;
                for (_, v) in f.iter() {
                    seq.serialize_element(&v.map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
            Value::Udt(f) => {
                let mut map = s.serialize_map(Some(f.types().len()))?;
                for (name, v) in f.iter() {
                    map.serialize_entry(name.unwrap_or(""), &v.map_err(S::Error::custom)?)?;
                }
                map.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for kv in m.iter() {
                    let (k, v) = kv.map_err(S::Error::custom)?;
                    let key = match k {
                        Some(k) => k.key_string().map_err(S::Error::custom)?,
                        None => "null".to_owned(),
                    };
                    map.serialize_entry(&key, &v)?;
                }
                map.end()
            }
        }
    }
}
