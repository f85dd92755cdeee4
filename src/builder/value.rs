//! Writing values: an owned value model and its serialization per CQL type
//! (format spec §9).

use std::net::IpAddr;

use crate::mutation::vint::{write_unsigned_vint, zigzag_encode};
use crate::schema::CqlType;

/// An owned CQL value, to be serialized by [`Val::encode`].
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// `ascii`
    Ascii(String),
    /// `text`
    Text(String),
    /// `int`
    Int(i32),
    /// `bigint`
    BigInt(i64),
    /// `smallint`
    SmallInt(i16),
    /// `tinyint`
    TinyInt(i8),
    /// `varint` (written in its minimal two's complement form)
    Varint(i128),
    /// `decimal`: unscaled × 10^(−scale)
    Decimal {
        /// Scale.
        scale: i32,
        /// Unscaled value.
        unscaled: i128,
    },
    /// `float`
    Float(f32),
    /// `double`
    Double(f64),
    /// `boolean`
    Boolean(bool),
    /// `uuid` or `timeuuid`
    Uuid([u8; 16]),
    /// `timestamp` (ms)
    Timestamp(i64),
    /// `date` (days since the epoch)
    Date(i64),
    /// `time` (ns since midnight)
    Time(i64),
    /// `duration`
    Duration {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Nanoseconds.
        nanos: i64,
    },
    /// `inet`
    Inet(IpAddr),
    /// `blob` (also a custom type's bytes)
    Blob(Vec<u8>),
    /// A counter context of global shards: (counter id, clock, count).
    Counter(Vec<([u8; 16], i64, i64)>),
    /// A frozen list (`None`: a null element).
    List(Vec<Option<Val>>),
    /// A frozen set.
    Set(Vec<Val>),
    /// A frozen map.
    Map(Vec<(Val, Val)>),
    /// A tuple or frozen UDT, component by component (`None`: null).
    Fields(Vec<Option<Val>>),
    /// A vector.
    Vector(Vec<Val>),
}

/// Minimal two's complement big-endian bytes (`BigInteger.toByteArray`).
pub fn varint_bytes(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

fn push_i32_value(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn elem_types(ty: &CqlType) -> Vec<&CqlType> {
    match ty {
        CqlType::Tuple(ts) => ts.iter().collect(),
        CqlType::Udt { def, .. } => def.fields.iter().map(|(_, t)| t).collect(),
        _ => Vec::new(),
    }
}

impl Val {
    /// The value's plain serialization as a value of `ty`.
    ///
    /// Panics when the value does not fit the type (a builder bug, not input).
    pub fn encode(&self, ty: &CqlType) -> Vec<u8> {
        let mut out = Vec::new();
        match (self, ty) {
            (Val::Ascii(s) | Val::Text(s), _) => out.extend_from_slice(s.as_bytes()),
            (Val::Int(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::BigInt(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::SmallInt(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::TinyInt(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::Varint(v), _) => out = varint_bytes(*v),
            (Val::Decimal { scale, unscaled }, _) => {
                out.extend_from_slice(&scale.to_be_bytes());
                out.extend_from_slice(&varint_bytes(*unscaled));
            }
            (Val::Float(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::Double(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::Boolean(v), _) => out.push(u8::from(*v)),
            (Val::Uuid(u), _) => out.extend_from_slice(u),
            (Val::Timestamp(v), _) => out.extend_from_slice(&v.to_be_bytes()),
            (Val::Date(days), _) => out.extend_from_slice(&((*days + (1i64 << 31)) as u32).to_be_bytes()),
            (Val::Time(ns), _) => out.extend_from_slice(&ns.to_be_bytes()),
            (Val::Duration { months, days, nanos }, _) => {
                write_unsigned_vint(zigzag_encode(*months as i64), &mut out);
                write_unsigned_vint(zigzag_encode(*days as i64), &mut out);
                write_unsigned_vint(zigzag_encode(*nanos), &mut out);
            }
            (Val::Inet(IpAddr::V4(a)), _) => out.extend_from_slice(&a.octets()),
            (Val::Inet(IpAddr::V6(a)), _) => out.extend_from_slice(&a.octets()),
            (Val::Blob(b), _) => out.extend_from_slice(b),
            (Val::Counter(shards), _) => {
                out.extend_from_slice(&(shards.len() as i16).to_be_bytes());
                for i in 0..shards.len() {
                    out.extend_from_slice(&((i as i32 + i16::MIN as i32) as i16).to_be_bytes());
                }
                for (id, clock, count) in shards {
                    out.extend_from_slice(id);
                    out.extend_from_slice(&clock.to_be_bytes());
                    out.extend_from_slice(&count.to_be_bytes());
                }
            }
            (Val::List(items), CqlType::List { elem, .. }) => {
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                for v in items {
                    push_i32_value(&mut out, v.as_ref().map(|v| v.encode(elem)).as_deref());
                }
            }
            (Val::Set(items), CqlType::Set { elem, .. }) => {
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                for v in items {
                    push_i32_value(&mut out, Some(&v.encode(elem)));
                }
            }
            (Val::Map(entries), CqlType::Map { key, value, .. }) => {
                out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
                for (k, v) in entries {
                    push_i32_value(&mut out, Some(&k.encode(key)));
                    push_i32_value(&mut out, Some(&v.encode(value)));
                }
            }
            (Val::Fields(fields), _) => {
                let types = elem_types(ty);
                for (v, t) in fields.iter().zip(types) {
                    push_i32_value(&mut out, v.as_ref().map(|v| v.encode(t)).as_deref());
                }
            }
            (Val::Vector(items), CqlType::Vector { elem, .. }) => {
                for v in items {
                    let b = v.encode(elem);
                    if elem.fixed_len().is_none() {
                        write_unsigned_vint(b.len() as u64, &mut out);
                    }
                    out.extend_from_slice(&b);
                }
            }
            (v, t) => panic!("builder: {v:?} is not a value of {t}"),
        }
        out
    }
}
