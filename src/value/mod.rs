//! Stage 4: typed CQL values borrowed from the segment (format spec §9), and
//! their JSON rendering ([`json`]).
//!
//! A [`Value`] is a view: decoding one reads and checks the bytes but copies
//! nothing; collections, tuples and UDTs are iterators over their elements.

pub mod json;
mod text;
pub(crate) mod write;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use uuid::Uuid;

use crate::schema::{CqlType, UserType};

pub(crate) use text::civil_from_days;
pub use text::{decimal_string, format_date, format_duration, format_time, format_timestamp, varint_string};
pub use write::ValueWriter;

/// Why bytes are not a value of their type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A value of the wrong length.
    #[error("{ty} value of {found} bytes (expected {expected})")]
    Length {
        /// The type.
        ty: &'static str,
        /// The lengths it can have.
        expected: &'static str,
        /// The length found.
        found: usize,
    },
    /// Text that is not UTF-8.
    #[error("text is not UTF-8 (byte {at})")]
    Utf8 {
        /// Offset of the first bad byte.
        at: usize,
    },
    /// ASCII with a byte above 0x7f.
    #[error("ascii has a non-ASCII byte at {at}")]
    Ascii {
        /// Offset of the byte.
        at: usize,
    },
    /// A collection, tuple or UDT that ends inside an element.
    #[error("{ty} value cut short at byte {at}")]
    Truncated {
        /// The type.
        ty: &'static str,
        /// Offset where an element was expected.
        at: usize,
    },
    /// A number outside its type's range (a time of day past midnight...).
    #[error("{ty} {found} is out of range")]
    Range {
        /// The type.
        ty: &'static str,
        /// The value found.
        found: i64,
    },
    /// Bytes left after the last element.
    #[error("{ty} value has {len} bytes after its last element")]
    Trailing {
        /// The type.
        ty: &'static str,
        /// How many bytes.
        len: usize,
    },
    /// A UDT field index the type does not have (a field added after the
    /// schema the reader knows).
    #[error("no field {index} in type {ty}")]
    NoSuchField {
        /// The UDT name.
        ty: String,
        /// The index found.
        index: i16,
    },
}

/// A `duration`: months, days and nanoseconds, each with its own sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    /// Months.
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Nanoseconds.
    pub nanoseconds: i64,
}

/// A `varint`: two's complement big-endian bytes of any length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Varint<'a>(pub &'a [u8]);

impl Varint<'_> {
    /// The value, when it fits 128 bits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.0.len() > 16 {
            return None;
        }
        let fill = if self.0.first().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
        let mut bytes = [fill; 16];
        bytes[16 - self.0.len()..].copy_from_slice(self.0);
        Some(i128::from_be_bytes(bytes))
    }
}

impl std::fmt::Display for Varint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&varint_string(self.0))
    }
}

/// A `decimal`: unscaled × 10^(−scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal<'a> {
    /// The scale.
    pub scale: i32,
    /// The unscaled value.
    pub unscaled: Varint<'a>,
}

impl std::fmt::Display for Decimal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&decimal_string(self.unscaled.0, self.scale))
    }
}

/// A typed value, borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// A zero-length value of a type for which that is not a value
    /// (anything but text, ascii and blob): Cassandra accepts it.
    Empty,
    /// `ascii`
    Ascii(&'a str),
    /// `text`
    Text(&'a str),
    /// `int`
    Int(i32),
    /// `bigint`
    BigInt(i64),
    /// `smallint`
    SmallInt(i16),
    /// `tinyint`
    TinyInt(i8),
    /// `varint`
    Varint(Varint<'a>),
    /// `decimal`
    Decimal(Decimal<'a>),
    /// `float`
    Float(f32),
    /// `double`
    Double(f64),
    /// `boolean`
    Boolean(bool),
    /// `uuid`
    Uuid(Uuid),
    /// `timeuuid`
    TimeUuid(Uuid),
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// `date`: days since the Unix epoch.
    Date(i64),
    /// `time`: nanoseconds since midnight.
    Time(i64),
    /// `duration`
    Duration(Duration),
    /// `inet`
    Inet(IpAddr),
    /// `blob`
    Blob(&'a [u8]),
    /// A counter context (format spec §8.10).
    Counter(CounterContext<'a>),
    /// A frozen `list`.
    List(Elements<'a>),
    /// A frozen `set`.
    Set(Elements<'a>),
    /// A frozen `map`.
    Map(Entries<'a>),
    /// A `tuple`.
    Tuple(Fields<'a>),
    /// A frozen UDT.
    Udt(Fields<'a>),
    /// A `vector`.
    Vector(Elements<'a>),
    /// A custom type's bytes.
    Custom(&'a [u8]),
}

fn ty_name(ty: &CqlType) -> &'static str {
    ty.scalar_name().unwrap_or(match ty {
        CqlType::List { .. } => "list",
        CqlType::Set { .. } => "set",
        CqlType::Map { .. } => "map",
        CqlType::Tuple(_) => "tuple",
        CqlType::Udt { .. } => "udt",
        CqlType::Vector { .. } => "vector",
        _ => "custom",
    })
}

fn fixed<const N: usize>(ty: &'static str, expected: &'static str, b: &[u8]) -> Result<[u8; N], ValueError> {
    b.try_into().map_err(|_| ValueError::Length { ty, expected, found: b.len() })
}

impl<'a> Value<'a> {
    /// Decodes `bytes` as a value of `ty` (the plain serialization, as in a
    /// cell, a key component or a collection element).
    #[inline(always)]
    pub fn decode(ty: &'a CqlType, bytes: &'a [u8]) -> Result<Value<'a>, ValueError> {
        // The common scalars in line: a value that comes back through
        // memory is copied in other pieces than it was written in, which
        // stalls the load (store forwarding); these come back in registers.
        // A wrong length goes on to the complete decode, which says why.
        macro_rules! in_line {
            ($variant:ident, $make:expr) => {
                if let Ok(b) = bytes.try_into() {
                    return Ok(Value::$variant($make(b)));
                }
            };
        }
        match ty {
            CqlType::Text => {
                return match utf8_checked(bytes) {
                    Some(s) => Ok(Value::Text(s)),
                    None => Err(utf8_error(bytes)),
                };
            }
            CqlType::Blob => return Ok(Value::Blob(bytes)),
            CqlType::Int => in_line!(Int, i32::from_be_bytes),
            CqlType::BigInt => in_line!(BigInt, i64::from_be_bytes),
            CqlType::Timestamp => in_line!(Timestamp, i64::from_be_bytes),
            CqlType::Date => in_line!(Date, |b| u32::from_be_bytes(b) as i64 - (1i64 << 31)),
            CqlType::Boolean => in_line!(Boolean, |[b]: [u8; 1]| b != 0),
            CqlType::Uuid => in_line!(Uuid, Uuid::from_bytes),
            CqlType::TimeUuid => in_line!(TimeUuid, Uuid::from_bytes),
            CqlType::Double => in_line!(Double, f64::from_be_bytes),
            _ => {}
        }
        Value::decode_any(ty, bytes)
    }

    /// [`decode`](Self::decode) of every type, out of line.
    fn decode_any(ty: &'a CqlType, bytes: &'a [u8]) -> Result<Value<'a>, ValueError> {
        if bytes.is_empty() && !ty.empty_is_a_value() {
            return Ok(Value::Empty);
        }
        Ok(match ty {
            CqlType::Ascii => {
                if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
                    return Err(ValueError::Ascii { at });
                }
                Value::Ascii(utf8(bytes)?)
            }
            CqlType::Text => Value::Text(utf8(bytes)?),
            CqlType::Int => Value::Int(i32::from_be_bytes(fixed("int", "4", bytes)?)),
            CqlType::BigInt => Value::BigInt(i64::from_be_bytes(fixed("bigint", "8", bytes)?)),
            CqlType::SmallInt => Value::SmallInt(i16::from_be_bytes(fixed("smallint", "2", bytes)?)),
            CqlType::TinyInt => Value::TinyInt(i8::from_be_bytes(fixed("tinyint", "1", bytes)?)),
            CqlType::Varint => Value::Varint(Varint(bytes)),
            CqlType::Decimal => {
                if bytes.len() < 5 {
                    return Err(ValueError::Length { ty: "decimal", expected: "at least 5", found: bytes.len() });
                }
                let scale = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                Value::Decimal(Decimal { scale, unscaled: Varint(&bytes[4..]) })
            }
            CqlType::Float => Value::Float(f32::from_be_bytes(fixed("float", "4", bytes)?)),
            CqlType::Double => Value::Double(f64::from_be_bytes(fixed("double", "8", bytes)?)),
            CqlType::Boolean => Value::Boolean(fixed::<1>("boolean", "1", bytes)?[0] != 0),
            CqlType::Uuid => Value::Uuid(Uuid::from_bytes(fixed("uuid", "16", bytes)?)),
            CqlType::TimeUuid => Value::TimeUuid(Uuid::from_bytes(fixed("timeuuid", "16", bytes)?)),
            CqlType::Timestamp => Value::Timestamp(i64::from_be_bytes(fixed("timestamp", "8", bytes)?)),
            CqlType::Date => Value::Date(u32::from_be_bytes(fixed("date", "4", bytes)?) as i64 - (1i64 << 31)),
            CqlType::Time => {
                let ns = i64::from_be_bytes(fixed("time", "8", bytes)?);
                if !(0..86_400_000_000_000).contains(&ns) {
                    return Err(ValueError::Range { ty: "time", found: ns });
                }
                Value::Time(ns)
            }
            CqlType::Duration => Value::Duration(decode_duration(bytes)?),
            CqlType::Inet => match bytes.len() {
                4 => Value::Inet(IpAddr::V4(Ipv4Addr::from(fixed::<4>("inet", "4 or 16", bytes)?))),
                16 => Value::Inet(IpAddr::V6(Ipv6Addr::from(fixed::<16>("inet", "4 or 16", bytes)?))),
                n => return Err(ValueError::Length { ty: "inet", expected: "4 or 16", found: n }),
            },
            CqlType::Blob => Value::Blob(bytes),
            CqlType::Custom(_) => Value::Custom(bytes),
            CqlType::Counter => Value::Counter(CounterContext::parse(bytes)?),
            CqlType::List { elem, .. } => Value::List(Elements::frozen(elem, bytes)?),
            CqlType::Set { elem, .. } => Value::Set(Elements::frozen(elem, bytes)?),
            CqlType::Map { key, value, .. } => Value::Map(Entries::new(key, value, bytes)?),
            CqlType::Tuple(types) => Value::Tuple(Fields::new(FieldTypes::Tuple(types), bytes)?),
            CqlType::Udt { def, .. } => Value::Udt(Fields::new(FieldTypes::Udt(def), bytes)?),
            CqlType::Vector { elem, dim } => Value::Vector(Elements::vector(elem, *dim, bytes)?),
        })
    }
}

/// UTF-8 validation (SIMD where the CPU has it); the slower standard check
/// runs only to say where invalid text goes wrong.
fn utf8(bytes: &[u8]) -> Result<&str, ValueError> {
    utf8_checked(bytes).ok_or_else(|| utf8_error(bytes))
}

/// The check alone: its result comes back in registers.
#[inline]
fn utf8_checked(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Where invalid text goes wrong.
#[cold]
fn utf8_error(bytes: &[u8]) -> ValueError {
    ValueError::Utf8 { at: std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to()) }
}

fn decode_duration(bytes: &[u8]) -> Result<Duration, ValueError> {
    let bad = || ValueError::Length { ty: "duration", expected: "three signed vints", found: bytes.len() };
    let (months, a) = crate::mutation::vint::read_signed_vint(bytes).ok_or_else(bad)?;
    let (days, b) = crate::mutation::vint::read_signed_vint(&bytes[a..]).ok_or_else(bad)?;
    let (nanoseconds, c) = crate::mutation::vint::read_signed_vint(&bytes[a + b..]).ok_or_else(bad)?;
    if a + b + c != bytes.len() {
        return Err(ValueError::Trailing { ty: "duration", len: bytes.len() - a - b - c });
    }
    let months = i32::try_from(months).map_err(|_| ValueError::Range { ty: "duration", found: months })?;
    let days = i32::try_from(days).map_err(|_| ValueError::Range { ty: "duration", found: days })?;
    Ok(Duration { months, days, nanoseconds })
}

/// Reads an `i32` length and that many bytes (−1: null) from `bytes[*at..]`.
fn read_i32_value<'a>(ty: &'static str, bytes: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, ValueError> {
    let head = bytes.get(*at..*at + 4).ok_or(ValueError::Truncated { ty, at: *at })?;
    let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if len < 0 {
        *at += 4;
        return Ok(None);
    }
    let start = *at + 4;
    let v = bytes.get(start..start + len as usize).ok_or(ValueError::Truncated { ty, at: *at })?;
    *at = start + len as usize;
    Ok(Some(v))
}

/// A frozen collection's `i32` element count, refused if negative, and the
/// bytes after it.
fn element_count<'a>(
    ty: &'static str,
    size_ty: &'static str,
    bytes: &'a [u8],
) -> Result<(usize, &'a [u8]), ValueError> {
    let (head, rest) = bytes.split_first_chunk::<4>().ok_or(ValueError::Truncated { ty, at: 0 })?;
    let n = i32::from_be_bytes(*head);
    usize::try_from(n).map(|n| (n, rest)).map_err(|_| ValueError::Range { ty: size_ty, found: n as i64 })
}

/// The elements of a frozen list or set, or of a vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elements<'a> {
    elem: &'a CqlType,
    bytes: &'a [u8],
    count: usize,
    /// `Some(n)`: a vector of fixed-size elements of `n` bytes; `Some(0)`:
    /// a vector of vint-prefixed elements; `None`: a frozen collection.
    vector: Option<usize>,
}

impl<'a> Elements<'a> {
    fn frozen(elem: &'a CqlType, bytes: &'a [u8]) -> Result<Elements<'a>, ValueError> {
        let (count, bytes) = element_count("collection", "collection size", bytes)?;
        let e = Elements { elem, bytes, count, vector: None };
        e.check()?;
        Ok(e)
    }

    fn vector(elem: &'a CqlType, dim: u32, bytes: &'a [u8]) -> Result<Elements<'a>, ValueError> {
        let e = Elements { elem, bytes, count: dim as usize, vector: Some(elem.fixed_len().unwrap_or(0)) };
        e.check()?;
        Ok(e)
    }

    /// Walks the elements once, so that iterating later cannot fail on framing.
    fn check(&self) -> Result<(), ValueError> {
        let mut it = self.raw();
        for _ in 0..self.count {
            it.next_raw()?;
        }
        if it.at != self.bytes.len() {
            return Err(ValueError::Trailing { ty: ty_name(self.elem), len: self.bytes.len() - it.at });
        }
        Ok(())
    }

    fn raw(&self) -> RawElements<'a> {
        RawElements { bytes: self.bytes, at: 0, vector: self.vector }
    }

    /// The element type.
    pub fn elem_type(&self) -> &'a CqlType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The elements (`None` for a null element), each decoded on demand.
    pub fn iter(&self) -> impl Iterator<Item = Result<Option<Value<'a>>, ValueError>> + 'a {
        let mut raw = self.raw();
        let elem = self.elem;
        (0..self.count).map(move |_| raw.next_raw()?.map(|b| Value::decode(elem, b)).transpose())
    }
}

struct RawElements<'a> {
    bytes: &'a [u8],
    at: usize,
    vector: Option<usize>,
}

impl<'a> RawElements<'a> {
    fn next_raw(&mut self) -> Result<Option<&'a [u8]>, ValueError> {
        match self.vector {
            None => read_i32_value("collection", self.bytes, &mut self.at),
            Some(0) => {
                let (len, n) = crate::mutation::vint::read_unsigned_vint(&self.bytes[self.at..])
                    .ok_or(ValueError::Truncated { ty: "vector", at: self.at })?;
                let start = self.at + n;
                let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l));
                let v = end
                    .and_then(|e| self.bytes.get(start..e))
                    .ok_or(ValueError::Truncated { ty: "vector", at: self.at })?;
                self.at = start + v.len();
                Ok(Some(v))
            }
            Some(size) => {
                let v = self
                    .bytes
                    .get(self.at..self.at + size)
                    .ok_or(ValueError::Truncated { ty: "vector", at: self.at })?;
                self.at += size;
                Ok(Some(v))
            }
        }
    }
}

/// The entries of a frozen map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entries<'a> {
    key: &'a CqlType,
    value: &'a CqlType,
    bytes: &'a [u8],
    count: usize,
}

/// One map entry: key and value, `None` where null.
pub type Entry<'a> = (Option<Value<'a>>, Option<Value<'a>>);

impl<'a> Entries<'a> {
    fn new(key: &'a CqlType, value: &'a CqlType, bytes: &'a [u8]) -> Result<Entries<'a>, ValueError> {
        let (count, bytes) = element_count("map", "map size", bytes)?;
        let e = Entries { key, value, bytes, count };
        let mut at = 0;
        for _ in 0..e.count {
            read_i32_value("map", e.bytes, &mut at)?;
            read_i32_value("map", e.bytes, &mut at)?;
        }
        if at != e.bytes.len() {
            return Err(ValueError::Trailing { ty: "map", len: e.bytes.len() - at });
        }
        Ok(e)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Key type and value type.
    pub fn types(&self) -> (&'a CqlType, &'a CqlType) {
        (self.key, self.value)
    }

    /// The entries, decoded on demand.
    pub fn iter(&self) -> impl Iterator<Item = Result<Entry<'a>, ValueError>> + 'a {
        let (bytes, key, value) = (self.bytes, self.key, self.value);
        let mut at = 0;
        (0..self.count).map(move |_| {
            let k = read_i32_value("map", bytes, &mut at)?;
            let v = read_i32_value("map", bytes, &mut at)?;
            Ok((k.map(|b| Value::decode(key, b)).transpose()?, v.map(|b| Value::decode(value, b)).transpose()?))
        })
    }
}

/// Component types of a tuple, or fields of a UDT.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldTypes<'a> {
    /// A tuple's component types.
    Tuple(&'a [CqlType]),
    /// A UDT.
    Udt(&'a UserType),
}

impl<'a> FieldTypes<'a> {
    /// Number of components.
    pub fn len(&self) -> usize {
        match self {
            FieldTypes::Tuple(t) => t.len(),
            FieldTypes::Udt(u) => u.fields.len(),
        }
    }

    /// Whether there are no components.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th component's name (UDT fields only) and type.
    pub fn get(&self, i: usize) -> Option<(Option<&'a str>, &'a CqlType)> {
        match self {
            FieldTypes::Tuple(t) => t.get(i).map(|t| (None, t)),
            FieldTypes::Udt(u) => u.fields.get(i).map(|(n, t)| (Some(n.as_str()), t)),
        }
    }
}

/// The components of a tuple or frozen UDT. Trailing components may be
/// absent (values written before `ALTER TYPE ... ADD`): they read as null.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fields<'a> {
    types: FieldTypes<'a>,
    bytes: &'a [u8],
    present: usize,
}

impl<'a> Fields<'a> {
    fn new(types: FieldTypes<'a>, bytes: &'a [u8]) -> Result<Fields<'a>, ValueError> {
        let mut at = 0;
        let mut present = 0;
        while at < bytes.len() {
            if present == types.len() {
                return Err(ValueError::Trailing { ty: "tuple", len: bytes.len() - at });
            }
            read_i32_value("tuple", bytes, &mut at)?;
            present += 1;
        }
        Ok(Fields { types, bytes, present })
    }

    /// The component types.
    pub fn types(&self) -> FieldTypes<'a> {
        self.types
    }

    /// Every declared component in order: its name (UDT fields), and its
    /// value (`None` when null or absent).
    pub fn iter(&self) -> impl Iterator<Item = (Option<&'a str>, Result<Option<Value<'a>>, ValueError>)> + 'a {
        let (types, bytes, present) = (self.types, self.bytes, self.present);
        let mut at = 0;
        (0..types.len()).map(move |i| {
            let (name, ty) = types.get(i).expect("index below len");
            if i >= present {
                return (name, Ok(None));
            }
            let v = read_i32_value("tuple", bytes, &mut at).and_then(|b| b.map(|b| Value::decode(ty, b)).transpose());
            (name, v)
        })
    }
}

/// How a counter shard came to be in a context (format spec §8.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShardKind {
    /// A global shard: the node's running total (what 2.1+ writes).
    Global,
    /// A local shard (pre-2.1 data).
    Local,
    /// A remote shard (pre-2.1 data).
    Remote,
}

impl ShardKind {
    /// `"global"`, `"local"` or `"remote"`.
    pub fn name(self) -> &'static str {
        match self {
            ShardKind::Global => "global",
            ShardKind::Local => "local",
            ShardKind::Remote => "remote",
        }
    }
}

/// One shard of a counter context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// The counter id of the node that owns the shard.
    pub counter_id: Uuid,
    /// Logical clock.
    pub clock: i64,
    /// Count (for a global shard, that node's total).
    pub count: i64,
    /// Kind.
    pub kind: ShardKind,
}

/// A counter cell's context: a header of shard kinds, then 32-byte shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CounterContext<'a> {
    header: &'a [u8],
    shards: &'a [u8],
}

const SHARD_LEN: usize = 32;

impl<'a> CounterContext<'a> {
    /// Parses a context.
    pub fn parse(bytes: &'a [u8]) -> Result<CounterContext<'a>, ValueError> {
        let head =
            bytes.get(0..2).ok_or(ValueError::Length { ty: "counter", expected: "at least 2", found: bytes.len() })?;
        let h = (i16::from_be_bytes([head[0], head[1]]) as i32).unsigned_abs() as usize;
        let header = bytes.get(2..2 + 2 * h).ok_or(ValueError::Truncated { ty: "counter", at: 2 })?;
        let shards = &bytes[2 + 2 * h..];
        if !shards.len().is_multiple_of(SHARD_LEN) {
            return Err(ValueError::Trailing { ty: "counter", len: shards.len() % SHARD_LEN });
        }
        Ok(CounterContext { header, shards })
    }

    fn kind(&self, index: usize) -> ShardKind {
        for e in self.header.chunks_exact(2) {
            let e = i16::from_be_bytes([e[0], e[1]]);
            if e < 0 && (e as i32 - i16::MIN as i32) as usize == index {
                return ShardKind::Global;
            }
            if e >= 0 && e as usize == index {
                return ShardKind::Local;
            }
        }
        ShardKind::Remote
    }

    /// The shards.
    pub fn shards(&self) -> impl ExactSizeIterator<Item = Shard> + '_ {
        self.shards.chunks_exact(SHARD_LEN).enumerate().map(|(i, s)| Shard {
            counter_id: Uuid::from_bytes(s[..16].try_into().expect("16 bytes")),
            clock: i64::from_be_bytes(s[16..24].try_into().expect("8 bytes")),
            count: i64::from_be_bytes(s[24..32].try_into().expect("8 bytes")),
            kind: self.kind(i),
        })
    }

    /// The counter's value in this context: the sum of its shards' counts.
    pub fn total(&self) -> i64 {
        self.shards().fold(0i64, |t, s| t.wrapping_add(s.count))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The types [`Value::decode`] decodes in line, and three it does not.
    fn types() -> Vec<CqlType> {
        use CqlType::*;
        vec![Text, Blob, Int, BigInt, Timestamp, Date, Boolean, Uuid, TimeUuid, Double, Ascii, Float, SmallInt]
    }

    proptest! {
        /// The in-line path gives what the complete decode gives, for
        /// values of every length around the fixed ones (wrong lengths and
        /// empty values included) and text that is not UTF-8.
        #[test]
        fn decode_in_line_matches_the_complete_decode(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            for ty in types() {
                for len in 0..=bytes.len() {
                    let b = &bytes[..len];
                    let (fast, full) = (Value::decode(&ty, b), Value::decode_any(&ty, b));
                    // Floats compare by their bits (a NaN is not equal to itself).
                    let same = match (&fast, &full) {
                        (Ok(Value::Double(x)), Ok(Value::Double(y))) => x.to_bits() == y.to_bits(),
                        (Ok(Value::Float(x)), Ok(Value::Float(y))) => x.to_bits() == y.to_bits(),
                        _ => fast == full,
                    };
                    prop_assert!(same, "{:?} of {:?}: {:?} vs {:?}", ty, b, fast, full);
                }
            }
        }
    }
}
