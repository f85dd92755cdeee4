//! CQL types (format spec §9) and user-defined types.

use std::fmt;
use std::sync::Arc;

/// A CQL type, as columns, collection elements and UDT fields carry them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CqlType {
    /// `ascii`
    Ascii,
    /// `text` (and its alias `varchar`)
    Text,
    /// `int`
    Int,
    /// `bigint`
    BigInt,
    /// `smallint`
    SmallInt,
    /// `tinyint`
    TinyInt,
    /// `varint`
    Varint,
    /// `decimal`
    Decimal,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `boolean`
    Boolean,
    /// `uuid`
    Uuid,
    /// `timeuuid`
    TimeUuid,
    /// `timestamp`
    Timestamp,
    /// `date`
    Date,
    /// `time`
    Time,
    /// `duration`
    Duration,
    /// `inet`
    Inet,
    /// `blob`
    Blob,
    /// `counter`
    Counter,
    /// `list<T>`, frozen or not.
    List {
        /// Element type.
        elem: Box<CqlType>,
        /// Whether the whole list is one cell.
        frozen: bool,
    },
    /// `set<T>`, frozen or not.
    Set {
        /// Element type.
        elem: Box<CqlType>,
        /// Whether the whole set is one cell.
        frozen: bool,
    },
    /// `map<K, V>`, frozen or not.
    Map {
        /// Key type.
        key: Box<CqlType>,
        /// Value type.
        value: Box<CqlType>,
        /// Whether the whole map is one cell.
        frozen: bool,
    },
    /// `tuple<...>` (always frozen).
    Tuple(Vec<CqlType>),
    /// A user-defined type, frozen or not.
    Udt {
        /// Its definition.
        def: Arc<UserType>,
        /// Whether the whole value is one cell.
        frozen: bool,
    },
    /// `vector<T, n>` (Cassandra 5.0).
    Vector {
        /// Element type.
        elem: Box<CqlType>,
        /// Number of elements.
        dim: u32,
    },
    /// A custom type (`'org.example.MyType'`), read as bytes.
    Custom(String),
}

/// A user-defined type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct UserType {
    /// Keyspace.
    pub keyspace: String,
    /// Name.
    pub name: String,
    /// Fields in declaration order: name and type.
    pub fields: Vec<(String, CqlType)>,
}

/// Deepest type nesting the schema parser accepts (values are decoded
/// recursively along the type, so the type's depth bounds the recursion).
pub const MAX_TYPE_DEPTH: usize = 32;

impl CqlType {
    /// Bytes of a value when the type has a fixed length (format spec §9.1):
    /// such values are written without a length.
    pub fn fixed_len(&self) -> Option<usize> {
        match self {
            CqlType::Boolean => Some(1),
            CqlType::Int | CqlType::Float => Some(4),
            CqlType::BigInt | CqlType::Double | CqlType::Timestamp => Some(8),
            CqlType::Uuid | CqlType::TimeUuid => Some(16),
            CqlType::Vector { elem, dim } => elem.fixed_len().and_then(|l| l.checked_mul(*dim as usize)),
            _ => None,
        }
    }

    /// Whether a column of this type stores one cell per element or field
    /// (non-frozen collections and UDTs).
    pub fn is_multi_cell(&self) -> bool {
        matches!(
            self,
            CqlType::List { frozen: false, .. }
                | CqlType::Set { frozen: false, .. }
                | CqlType::Map { frozen: false, .. }
                | CqlType::Udt { frozen: false, .. }
        )
    }

    /// Whether an empty (zero-length) value has a rendering of its own:
    /// `""` for text, `"0x"` for a blob. For every other type an empty value
    /// is not a value of the type.
    pub fn empty_is_a_value(&self) -> bool {
        matches!(self, CqlType::Ascii | CqlType::Text | CqlType::Blob | CqlType::Custom(_))
    }

    /// The same type, frozen (`frozen<...>` of a collection or UDT).
    pub fn frozen(self) -> CqlType {
        match self {
            CqlType::List { elem, .. } => CqlType::List { elem, frozen: true },
            CqlType::Set { elem, .. } => CqlType::Set { elem, frozen: true },
            CqlType::Map { key, value, .. } => CqlType::Map { key, value, frozen: true },
            CqlType::Udt { def, .. } => CqlType::Udt { def, frozen: true },
            other => other,
        }
    }

    /// The type with every user type replaced by a tuple of its fields, as
    /// Cassandra stores a dropped column's type (`UserType.expandUserTypes`:
    /// the column stays readable after the type itself is dropped).
    pub fn expand_user_types(&self) -> CqlType {
        let e = |t: &CqlType| Box::new(t.expand_user_types());
        match self {
            CqlType::List { elem, frozen } => CqlType::List { elem: e(elem), frozen: *frozen },
            CqlType::Set { elem, frozen } => CqlType::Set { elem: e(elem), frozen: *frozen },
            CqlType::Map { key, value, frozen } => CqlType::Map { key: e(key), value: e(value), frozen: *frozen },
            CqlType::Tuple(ts) => CqlType::Tuple(ts.iter().map(CqlType::expand_user_types).collect()),
            CqlType::Udt { def, .. } => CqlType::Tuple(def.fields.iter().map(|(_, t)| t.expand_user_types()).collect()),
            CqlType::Vector { elem, dim } => CqlType::Vector { elem: e(elem), dim: *dim },
            other => other.clone(),
        }
    }

    /// How deeply types nest inside this one (1 for a scalar).
    pub fn depth(&self) -> usize {
        1 + match self {
            CqlType::List { elem, .. } | CqlType::Set { elem, .. } | CqlType::Vector { elem, .. } => elem.depth(),
            CqlType::Map { key, value, .. } => key.depth().max(value.depth()),
            CqlType::Tuple(ts) => ts.iter().map(CqlType::depth).max().unwrap_or(0),
            CqlType::Udt { def, .. } => def.fields.iter().map(|(_, t)| t.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// The CQL name of a scalar type (`None` for parameterized types).
    pub fn scalar_name(&self) -> Option<&'static str> {
        Some(match self {
            CqlType::Ascii => "ascii",
            CqlType::Text => "text",
            CqlType::Int => "int",
            CqlType::BigInt => "bigint",
            CqlType::SmallInt => "smallint",
            CqlType::TinyInt => "tinyint",
            CqlType::Varint => "varint",
            CqlType::Decimal => "decimal",
            CqlType::Float => "float",
            CqlType::Double => "double",
            CqlType::Boolean => "boolean",
            CqlType::Uuid => "uuid",
            CqlType::TimeUuid => "timeuuid",
            CqlType::Timestamp => "timestamp",
            CqlType::Date => "date",
            CqlType::Time => "time",
            CqlType::Duration => "duration",
            CqlType::Inet => "inet",
            CqlType::Blob => "blob",
            CqlType::Counter => "counter",
            _ => return None,
        })
    }

    /// The scalar type a CQL name denotes (`varchar` is `text`).
    pub fn from_scalar_name(name: &str) -> Option<CqlType> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "varchar" { "text" } else { lower.as_str() };
        SCALARS.iter().find(|t| t.scalar_name() == Some(lower)).cloned()
    }
}

/// Every scalar type: [`CqlType::scalar_name`] names them, and
/// [`CqlType::from_scalar_name`] reads the names back.
static SCALARS: [CqlType; 20] = [
    CqlType::Ascii,
    CqlType::Text,
    CqlType::Int,
    CqlType::BigInt,
    CqlType::SmallInt,
    CqlType::TinyInt,
    CqlType::Varint,
    CqlType::Decimal,
    CqlType::Float,
    CqlType::Double,
    CqlType::Boolean,
    CqlType::Uuid,
    CqlType::TimeUuid,
    CqlType::Timestamp,
    CqlType::Date,
    CqlType::Time,
    CqlType::Duration,
    CqlType::Inet,
    CqlType::Blob,
    CqlType::Counter,
];

impl fmt::Display for CqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = |f: &mut fmt::Formatter<'_>, frozen: bool| if frozen { f.write_str("frozen<") } else { Ok(()) };
        let close = |f: &mut fmt::Formatter<'_>, frozen: bool| if frozen { f.write_str(">") } else { Ok(()) };
        if let Some(name) = self.scalar_name() {
            return f.write_str(name);
        }
        match self {
            CqlType::List { elem, frozen } => {
                open(f, *frozen)?;
                write!(f, "list<{elem}>")?;
                close(f, *frozen)
            }
            CqlType::Set { elem, frozen } => {
                open(f, *frozen)?;
                write!(f, "set<{elem}>")?;
                close(f, *frozen)
            }
            CqlType::Map { key, value, frozen } => {
                open(f, *frozen)?;
                write!(f, "map<{key}, {value}>")?;
                close(f, *frozen)
            }
            CqlType::Tuple(ts) => {
                f.write_str("frozen<tuple<")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(">>")
            }
            CqlType::Udt { def, frozen } => {
                open(f, *frozen)?;
                write!(f, "{}", crate::schema::quote_identifier(&def.name))?;
                close(f, *frozen)
            }
            CqlType::Vector { elem, dim } => write!(f, "vector<{elem}, {dim}>"),
            CqlType::Custom(class) => write!(f, "'{}'", class.replace('\'', "''")),
            _ => unreachable!("scalars are written above"),
        }
    }
}
