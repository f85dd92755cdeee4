//! Property tests: vints against a naive reference at every length
//! boundary; every CQL type's values through the builder and back; whole
//! mutations through encode, segment framing and decode; byte flips that
//! must never make the decoder panic.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use cassandra_commitlog::builder::{
    BuildFormat, CellKind, CellSpec, ColumnSpec, MarkerSpec, RowSpec, SegmentBuilder, Unfiltered, UpdateSpec, Val,
    column_order, encode_mutation,
};
use cassandra_commitlog::mutation::vint::{read_unsigned_vint, unsigned_vint_size, write_unsigned_vint};
use cassandra_commitlog::mutation::{ChangeWriter, Context, Decoder, DeletionTime, Liveness};
use cassandra_commitlog::schema::{CqlType, Order, Schema, Table, UserType};
use cassandra_commitlog::segment::{Compression, ReadOptions, Segment};
use cassandra_commitlog::value::Value;
use proptest::prelude::*;

// ---------- vints ----------

/// The plainest reading of format spec §7.1.
fn naive_vint(v: u64) -> Vec<u8> {
    let n = (1..=8usize).find(|&n| v < 1u64.checked_shl(7 * n as u32).unwrap_or(u64::MAX)).unwrap_or(9);
    if n == 9 {
        let mut out = vec![0xff];
        out.extend_from_slice(&v.to_be_bytes());
        return out;
    }
    let mut out = v.to_be_bytes()[8 - n..].to_vec();
    for bit in 0..n - 1 {
        out[0] |= 0x80 >> bit;
    }
    out
}

fn naive_read(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let mut ones = 0;
    while ones < 8 && first & (0x80 >> ones) != 0 {
        ones += 1;
    }
    let rest = b.get(1..1 + ones)?;
    let mut v = (first as u64) & (0xffu64 >> (ones + 1));
    for &x in rest {
        v = v << 8 | x as u64;
    }
    Some((v, 1 + ones))
}

#[test]
fn vints_at_every_length_boundary() {
    let mut values = vec![0u64, u64::MAX, i64::MAX as u64, i64::MIN as u64];
    for k in 1..=9u32 {
        let b = 1u64.checked_shl(7 * k).unwrap_or(0);
        values.extend([b.wrapping_sub(1), b, b.wrapping_add(1)]);
    }
    for v in values {
        let mut out = Vec::new();
        write_unsigned_vint(v, &mut out);
        assert_eq!(out, naive_vint(v), "{v}");
        assert_eq!(unsigned_vint_size(v), out.len());
        assert_eq!(read_unsigned_vint(&out), Some((v, out.len())));
        assert_eq!(read_unsigned_vint(&out[..out.len() - 1]), None, "{v}: one byte short");
    }
}

proptest! {
    #[test]
    fn vints_match_the_naive_reference(v in any::<u64>(), shift in 0u32..64) {
        let v = v >> shift;
        let mut out = Vec::new();
        write_unsigned_vint(v, &mut out);
        prop_assert_eq!(&out, &naive_vint(v));
        prop_assert_eq!(read_unsigned_vint(&out), Some((v, out.len())));
    }

    #[test]
    fn vint_reading_matches_the_naive_reference(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
        prop_assert_eq!(read_unsigned_vint(&bytes), naive_read(&bytes));
    }
}

// ---------- values ----------

fn udt(n: usize, fields: Vec<CqlType>) -> CqlType {
    let def = UserType {
        keyspace: "ks".into(),
        name: format!("u{n}"),
        fields: fields.into_iter().enumerate().map(|(i, t)| (format!("f{i}"), t)).collect(),
    };
    CqlType::Udt { def: Arc::new(def), frozen: true }
}

fn scalar_type() -> impl Strategy<Value = CqlType> {
    prop_oneof![
        Just(CqlType::Ascii),
        Just(CqlType::Text),
        Just(CqlType::Int),
        Just(CqlType::BigInt),
        Just(CqlType::SmallInt),
        Just(CqlType::TinyInt),
        Just(CqlType::Varint),
        Just(CqlType::Decimal),
        Just(CqlType::Float),
        Just(CqlType::Double),
        Just(CqlType::Boolean),
        Just(CqlType::Uuid),
        Just(CqlType::TimeUuid),
        Just(CqlType::Timestamp),
        Just(CqlType::Date),
        Just(CqlType::Time),
        Just(CqlType::Duration),
        Just(CqlType::Inet),
        Just(CqlType::Blob),
    ]
}

fn any_type() -> impl Strategy<Value = CqlType> {
    scalar_type().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| CqlType::List { elem: Box::new(t), frozen: true }),
            inner.clone().prop_map(|t| CqlType::Set { elem: Box::new(t), frozen: true }),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| CqlType::Map {
                key: Box::new(k),
                value: Box::new(v),
                frozen: true
            }),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(CqlType::Tuple),
            (proptest::collection::vec(inner.clone(), 1..4), 0usize..100).prop_map(|(f, n)| udt(n, f)),
            (inner, 1u32..5).prop_map(|(t, dim)| CqlType::Vector { elem: Box::new(t), dim }),
        ]
    })
}

fn val_of(ty: &CqlType) -> BoxedStrategy<Val> {
    match ty {
        CqlType::Ascii => "[ -~]{0,12}".prop_map(Val::Ascii).boxed(),
        CqlType::Text => ".{0,12}".prop_map(Val::Text).boxed(),
        CqlType::Int => any::<i32>().prop_map(Val::Int).boxed(),
        CqlType::BigInt => any::<i64>().prop_map(Val::BigInt).boxed(),
        CqlType::SmallInt => any::<i16>().prop_map(Val::SmallInt).boxed(),
        CqlType::TinyInt => any::<i8>().prop_map(Val::TinyInt).boxed(),
        CqlType::Varint => any::<i128>().prop_map(Val::Varint).boxed(),
        CqlType::Decimal => {
            (any::<i32>(), any::<i128>()).prop_map(|(scale, unscaled)| Val::Decimal { scale, unscaled }).boxed()
        }
        CqlType::Float => any::<u32>().prop_map(|b| Val::Float(f32::from_bits(b))).boxed(),
        CqlType::Double => any::<u64>().prop_map(|b| Val::Double(f64::from_bits(b))).boxed(),
        CqlType::Boolean => any::<bool>().prop_map(Val::Boolean).boxed(),
        CqlType::Uuid | CqlType::TimeUuid => any::<[u8; 16]>().prop_map(Val::Uuid).boxed(),
        CqlType::Timestamp => any::<i64>().prop_map(Val::Timestamp).boxed(),
        CqlType::Date => (i32::MIN as i64..=i32::MAX as i64).prop_map(Val::Date).boxed(),
        CqlType::Time => (0i64..86_400_000_000_000).prop_map(Val::Time).boxed(),
        CqlType::Duration => (any::<i32>(), any::<i32>(), any::<i64>())
            .prop_map(|(months, days, nanos)| Val::Duration { months, days, nanos })
            .boxed(),
        CqlType::Inet => prop_oneof![
            any::<[u8; 4]>().prop_map(|b| Val::Inet(IpAddr::V4(Ipv4Addr::from(b)))),
            any::<[u8; 16]>().prop_map(|b| Val::Inet(IpAddr::V6(Ipv6Addr::from(b)))),
        ]
        .boxed(),
        CqlType::Blob => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Val::Blob).boxed(),
        CqlType::List { elem, .. } => {
            proptest::collection::vec(proptest::option::of(val_of(elem)), 0..4).prop_map(Val::List).boxed()
        }
        CqlType::Set { elem, .. } => proptest::collection::vec(val_of(elem), 0..4).prop_map(Val::Set).boxed(),
        CqlType::Map { key, value, .. } => {
            proptest::collection::vec((val_of(key), val_of(value)), 0..4).prop_map(Val::Map).boxed()
        }
        CqlType::Tuple(types) => fields(types.to_vec()),
        CqlType::Udt { def, .. } => fields(def.fields.iter().map(|(_, t)| t.clone()).collect()),
        CqlType::Vector { elem, dim } => {
            proptest::collection::vec(val_of(elem), *dim as usize).prop_map(Val::Vector).boxed()
        }
        other => panic!("no strategy for {other}"),
    }
}

fn fields(types: Vec<CqlType>) -> BoxedStrategy<Val> {
    types.iter().map(|t| proptest::option::of(val_of(t))).collect::<Vec<_>>().prop_map(Val::Fields).boxed()
}

/// A decoded value back in the builder's model, floats compared by bits.
fn to_val(v: &Value<'_>) -> Val {
    let opt = |x: Result<Option<Value<'_>>, _>| x.unwrap().map(|v| to_val(&v));
    match *v {
        Value::Ascii(s) => Val::Ascii(s.into()),
        Value::Text(s) => Val::Text(s.into()),
        Value::Int(x) => Val::Int(x),
        Value::BigInt(x) => Val::BigInt(x),
        Value::SmallInt(x) => Val::SmallInt(x),
        Value::TinyInt(x) => Val::TinyInt(x),
        Value::Varint(x) => Val::Varint(x.to_i128().unwrap()),
        Value::Decimal(d) => Val::Decimal { scale: d.scale, unscaled: d.unscaled.to_i128().unwrap() },
        Value::Float(x) => Val::Float(x),
        Value::Double(x) => Val::Double(x),
        Value::Boolean(x) => Val::Boolean(x),
        Value::Uuid(u) | Value::TimeUuid(u) => Val::Uuid(*u.as_bytes()),
        Value::Timestamp(x) => Val::Timestamp(x),
        Value::Date(x) => Val::Date(x),
        Value::Time(x) => Val::Time(x),
        Value::Duration(d) => Val::Duration { months: d.months, days: d.days, nanos: d.nanoseconds },
        Value::Inet(ip) => Val::Inet(ip),
        Value::Blob(b) => Val::Blob(b.to_vec()),
        Value::List(e) => Val::List(e.iter().map(opt).collect()),
        Value::Set(e) => Val::Set(e.iter().map(|x| to_val(&x.unwrap().unwrap())).collect()),
        Value::Vector(e) => Val::Vector(e.iter().map(|x| to_val(&x.unwrap().unwrap())).collect()),
        Value::Map(m) => Val::Map(
            m.iter()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (to_val(&k.unwrap()), to_val(&v.unwrap()))
                })
                .collect(),
        ),
        Value::Tuple(f) | Value::Udt(f) => Val::Fields(f.iter().map(|(_, x)| opt(x)).collect()),
        ref other => panic!("unexpected {other:?}"),
    }
}

/// Equality with floats compared by their bits (NaN == NaN, 0.0 != -0.0).
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
        (Val::Double(x), Val::Double(y)) => x.to_bits() == y.to_bits(),
        (Val::List(x), Val::List(y)) | (Val::Fields(x), Val::Fields(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| match (p, q) {
                    (Some(p), Some(q)) => same(p, q),
                    (None, None) => true,
                    _ => false,
                })
        }
        (Val::Set(x), Val::Set(y)) | (Val::Vector(x), Val::Vector(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(&p.0, &q.0) && same(&p.1, &q.1))
        }
        _ => a == b,
    }
}

fn typed_value() -> impl Strategy<Value = (CqlType, Val)> {
    any_type().prop_flat_map(|t| val_of(&t).prop_map(move |v| (t.clone(), v)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_type_round_trips_through_the_builder((ty, val) in typed_value()) {
        let bytes = val.encode(&ty);
        let decoded = Value::decode(&ty, &bytes);
        // A zero-length encoding of a type without an empty value (an empty
        // vector of nothing...) decodes as Empty by design.
        if bytes.is_empty() && !ty.empty_is_a_value() {
            prop_assert_eq!(decoded, Ok(Value::Empty));
        } else {
            let decoded = decoded.unwrap();
            decoded.validate().unwrap();
            let back = to_val(&decoded);
            prop_assert!(same(&back, &val), "{:?} != {:?}", back, val);
            // Rendering never fails on a valid value, and the fast writer
            // gives serde_json's bytes.
            let slow = serde_json::to_vec(&decoded).unwrap();
            let mut fast = Vec::new();
            ChangeWriter::new().write_value(&mut fast, &decoded).unwrap();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
        }
    }
}

// ---------- mutations ----------

fn test_schema() -> Schema {
    let mut cql = String::from(
        "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'};
         CREATE TYPE ks.addr (street text, zip int);
         CREATE TABLE ks.t (
             p1 text, p2 int, c1 int, c2 text, st text static, ist int static,
             a int, b text, d double, ts timestamp, blb blob, u uuid,
             l list<int>, s set<text>, m map<text, bigint>, ad addr, gone bigint,
             PRIMARY KEY ((p1, p2), c1, c2)
         ) WITH ID = 00000000-0000-0000-0000-000000000001 AND CLUSTERING ORDER BY (c1 ASC, c2 DESC);
         ALTER TABLE ks.t DROP gone USING TIMESTAMP 1500000000000000;
         CREATE TABLE ks.w (k int PRIMARY KEY",
    );
    // A table with 70 regular columns: rows with subsets of 64+ columns.
    for i in 0..70 {
        cql.push_str(&format!(", c{i:02} int"));
    }
    cql.push_str(") WITH ID = 00000000-0000-0000-0000-000000000002;");
    Schema::parse(&cql).unwrap()
}

fn deletion() -> impl Strategy<Value = DeletionTime> {
    ((i64::MIN + 1)..i64::MAX, any::<i32>())
        .prop_map(|(timestamp, ldt)| DeletionTime { timestamp, local_deletion_time: ldt as i64 })
}

fn cell_kind() -> impl Strategy<Value = CellKind> {
    prop_oneof![
        3 => Just(CellKind::Live),
        1 => (1i32..1_000_000, any::<i32>()).prop_map(|(ttl, at)| CellKind::Expiring { ttl, expires_at: at as i64 }),
        1 => any::<i32>().prop_map(|at| CellKind::Tombstone { local_deletion_time: at as i64 }),
    ]
}

fn simple_cell(ty: CqlType, ts: i64) -> impl Strategy<Value = CellSpec> {
    (cell_kind(), val_of(&ty), any::<bool>(), -3i64..3).prop_map(move |(kind, v, empty, dt)| {
        let value = if matches!(kind, CellKind::Tombstone { .. }) || empty { Vec::new() } else { v.encode(&ty) };
        CellSpec { timestamp: ts.wrapping_add(dt), kind, path: None, value }
    })
}

fn element_cells(ty: CqlType, ts: i64) -> impl Strategy<Value = Vec<CellSpec>> {
    let path_and_value: BoxedStrategy<(Vec<u8>, Vec<u8>)> = match &ty {
        CqlType::List { elem, .. } => (any::<[u8; 16]>(), val_of(elem))
            .prop_map({
                let elem = (**elem).clone();
                move |(p, v)| (p.to_vec(), v.encode(&elem))
            })
            .boxed(),
        CqlType::Set { elem, .. } => val_of(elem)
            .prop_map({
                let elem = (**elem).clone();
                move |v| (v.encode(&elem), Vec::new())
            })
            .boxed(),
        CqlType::Map { key, value, .. } => (val_of(key), val_of(value))
            .prop_map({
                let (k, vt) = ((**key).clone(), (**value).clone());
                move |(a, b)| (a.encode(&k), b.encode(&vt))
            })
            .boxed(),
        CqlType::Udt { def, .. } => (0i16..def.fields.len() as i16, val_of(&def.fields[0].1))
            .prop_map({
                let def = def.clone();
                move |(i, _)| {
                    let v = match &def.fields[i as usize].1 {
                        CqlType::Int => Val::Int(i as i32),
                        _ => Val::Text(format!("f{i}")),
                    };
                    (i.to_be_bytes().to_vec(), v.encode(&def.fields[i as usize].1))
                }
            })
            .boxed(),
        other => panic!("not complex: {other}"),
    };
    proptest::collection::vec((path_and_value, cell_kind(), -2i64..2), 0..4).prop_map(move |cells| {
        cells
            .into_iter()
            .map(|((path, value), kind, dt)| {
                let value = if matches!(kind, CellKind::Tombstone { .. }) { Vec::new() } else { value };
                CellSpec { timestamp: ts.wrapping_add(dt), kind, path: Some(path), value }
            })
            .collect()
    })
}

fn column(table: &Table, name: &str, ts: i64) -> BoxedStrategy<(String, ColumnSpec)> {
    let ty = table.column(name).map(|c| c.ty.clone()).unwrap_or_else(|| table.dropped[0].ty.clone());
    let name = name.to_owned();
    if ty.is_multi_cell() {
        (proptest::option::of(deletion()), element_cells(ty, ts))
            .prop_map(move |(deletion, cells)| (name.clone(), ColumnSpec::Complex { deletion, cells }))
            .boxed()
    } else {
        simple_cell(ty, ts).prop_map(move |c| (name.clone(), ColumnSpec::Simple(c))).boxed()
    }
}

fn row(table: Arc<Table>, names: Vec<&'static str>, clustering: bool) -> impl Strategy<Value = RowSpec> {
    let ts = any::<i64>();
    let most = names.len().min(4);
    (ts, proptest::sample::subsequence(names, 0..=most), any::<bool>(), proptest::option::of(deletion()), any::<bool>())
        .prop_flat_map(move |(ts, cols, expiring, del, shadowable)| {
            let columns: Vec<_> = cols.iter().map(|n| column(&table, n, ts)).collect();
            let ck = if clustering {
                (proptest::option::of(any::<i32>()), proptest::option::of("[a-z]{0,3}"))
                    .prop_map(|(a, b)| vec![a.map(|a| a.to_be_bytes().to_vec()), b.map(|b| b.into_bytes())])
                    .boxed()
            } else {
                Just(Vec::new()).boxed()
            };
            let liveness =
                proptest::option::of((any::<bool>(), 1i32..100_000, any::<i32>()).prop_map(move |(e, ttl, at)| {
                    Liveness { timestamp: ts, expiry: (e && expiring).then_some((ttl, at as i64)) }
                }));
            (ck, liveness, columns).prop_map(move |(clustering, liveness, columns)| RowSpec {
                clustering,
                liveness,
                deletion: del.map(|d| (d, shadowable)),
                columns,
            })
        })
}

fn marker() -> impl Strategy<Value = MarkerSpec> {
    (prop::sample::select(vec![0u8, 1, 2, 5, 6, 7]), 0usize..=2, any::<i32>(), "[a-z]{0,2}", deletion(), deletion())
        .prop_map(|(kind, len, c1, c2, d1, d2)| {
            let values = [Some(c1.to_be_bytes().to_vec()), Some(c2.into_bytes())].into_iter().take(len).collect();
            MarkerSpec { kind, values, deletion: d1, start_deletion: matches!(kind, 2 | 5).then_some(d2) }
        })
}

const T_COLUMNS: [&str; 11] = ["a", "b", "d", "ts", "blb", "u", "l", "s", "m", "ad", "gone"];

fn update_t(t: Arc<Table>) -> impl Strategy<Value = UpdateSpec> {
    let statics = proptest::option::of(row(t.clone(), vec!["st", "ist"], false));
    let unfiltereds = proptest::collection::vec(
        prop_oneof![3 => row(t.clone(), T_COLUMNS.to_vec(), true).prop_map(Unfiltered::Row), 1 => marker().prop_map(Unfiltered::Marker)],
        0..5,
    );
    ("[a-z]{0,6}", any::<i32>(), proptest::option::of(deletion()), statics, unfiltereds).prop_map(
        move |(p1, p2, deletion, static_row, unfiltereds)| UpdateSpec {
            table_id: t.id,
            key: cassandra_commitlog::builder::composite_key(&[p1.as_bytes(), &p2.to_be_bytes()]),
            deletion,
            static_row,
            unfiltereds,
        },
    )
}

fn update_w(w: Arc<Table>) -> impl Strategy<Value = UpdateSpec> {
    let names: Vec<&'static str> = (0..70).map(|i| &*Box::leak(format!("c{i:02}").into_boxed_str())).collect();
    let rows = (any::<i64>(), proptest::sample::subsequence(names.clone(), 0..=70), any::<i32>()).prop_map(
        move |(ts, cols, v)| {
            let columns = cols
                .into_iter()
                .map(|n| {
                    let cell =
                        CellSpec { timestamp: ts, kind: CellKind::Live, path: None, value: v.to_be_bytes().to_vec() };
                    (n.to_owned(), ColumnSpec::Simple(cell))
                })
                .collect();
            RowSpec {
                clustering: Vec::new(),
                liveness: Some(Liveness { timestamp: ts, expiry: None }),
                deletion: None,
                columns,
            }
        },
    );
    (any::<i32>(), rows).prop_map(move |(k, r)| UpdateSpec {
        table_id: w.id,
        key: k.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(r)],
    })
}

/// What decoding a spec must give back: columns in Cassandra's order.
fn normalized(mut u: UpdateSpec, table: &Table) -> UpdateSpec {
    let sort = |r: &mut RowSpec| {
        r.columns.sort_by(|a, b| {
            let complex = |n: &str| table.column(n).is_some_and(|c| c.ty.is_multi_cell());
            column_order((&a.0, complex(&a.0)), (&b.0, complex(&b.0)))
        })
    };
    u.static_row.iter_mut().for_each(sort);
    for x in &mut u.unfiltereds {
        if let Unfiltered::Row(r) = x {
            sort(r);
        }
    }
    u
}

/// The same spec with every local deletion time read as an unsigned 32-bit
/// number (format spec §8.9).
fn unsigned_ldts(mut u: UpdateSpec) -> UpdateSpec {
    let fix = |t: &mut i64| *t = *t as u32 as i64;
    let del = |d: &mut DeletionTime| fix(&mut d.local_deletion_time);
    let cell = |c: &mut CellSpec| match &mut c.kind {
        CellKind::Expiring { expires_at, .. } => fix(expires_at),
        CellKind::Tombstone { local_deletion_time } => fix(local_deletion_time),
        CellKind::Live => {}
    };
    let row = |r: &mut RowSpec| {
        if let Some(l) = &mut r.liveness
            && let Some((_, at)) = &mut l.expiry
        {
            fix(at);
        }
        if let Some((d, _)) = &mut r.deletion {
            del(d);
        }
        for (_, c) in &mut r.columns {
            match c {
                ColumnSpec::Simple(c) => cell(c),
                ColumnSpec::Complex { deletion, cells } => {
                    deletion.iter_mut().for_each(del);
                    cells.iter_mut().for_each(cell);
                }
            }
        }
    };
    u.deletion.iter_mut().for_each(del);
    u.static_row.iter_mut().for_each(row);
    for x in &mut u.unfiltereds {
        match x {
            Unfiltered::Row(r) => row(r),
            Unfiltered::Marker(m) => {
                del(&mut m.deletion);
                m.start_deletion.iter_mut().for_each(del);
            }
        }
    }
    u
}

fn formats() -> impl Strategy<Value = BuildFormat> {
    prop_oneof![
        Just(BuildFormat::Plain),
        prop::sample::select(Compression::ALL.to_vec()).prop_map(BuildFormat::Compressed),
        Just(BuildFormat::Encrypted { alias: "k".into(), key: vec![5; 16], iv: [6; 16], chunk_len: 200 }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<UpdateSpec>> {
    let schema = test_schema();
    let t = Arc::new(schema.table("ks", "t").unwrap().clone());
    let w = Arc::new(schema.table("ks", "w").unwrap().clone());
    proptest::collection::vec(prop_oneof![3 => update_t(t).boxed(), 1 => update_w(w).boxed()], 1..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutations_survive_encode_frame_decode(updates in mutations(), format in formats(), v8 in any::<bool>()) {
        let schema = test_schema();
        let pairs: Vec<_> = updates.iter().map(|u| (schema.table_by_id(&u.table_id).unwrap(), u)).collect();
        let bytes = encode_mutation(&pairs, v8);
        let mut b = SegmentBuilder::new(if v8 { 8 } else { 7 }, 77, format);
        b.entry(&bytes);
        b.sync();
        let segment = b.finish();
        let seg = Segment::from_data(&segment[..]).unwrap();
        let mut reader = seg.reader(&ReadOptions::new().key("k", vec![5; 16]).strict(true)).unwrap();
        let entry = reader.next_entry().unwrap().unwrap();
        prop_assert_eq!(entry.mutation, &bytes[..]);
        let mut decoder = Decoder::new();
        let ctx = Context::of_entry(&entry, seg.descriptor(), None);
        let m = decoder.decode(entry.mutation, &schema, ctx).map_err(|u| u.error.to_string()).unwrap();
        let back = common::spec::mutation(&m);
        let want: Vec<_> = updates.into_iter().map(|u| {
            let t = schema.table_by_id(&u.table_id).unwrap();
            let u = normalized(u, t);
            // Descriptor 8 (messaging 13) reads local deletion times unsigned.
            if v8 { unsigned_ldts(u) } else { u }
        }).collect();
        prop_assert_eq!(back, want);
        let slow = serde_json::to_vec(&m).unwrap();
        let mut fast = Vec::new();
        ChangeWriter::new().write_mutation(&mut fast, &m);
        prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
    }

    #[test]
    fn flipped_bytes_never_panic(updates in mutations(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let schema = test_schema();
        let pairs: Vec<_> = updates.iter().map(|u| (schema.table_by_id(&u.table_id).unwrap(), u)).collect();
        let mut bytes = encode_mutation(&pairs, false);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let mut decoder = Decoder::new();
        let mut writer = ChangeWriter::new();
        for len in [bytes.len(), cut.index(bytes.len() + 1)] {
            let decoded = decoder.decode(&bytes[..len], &schema, Context::default());
            let mut slow = match &decoded {
                Ok(m) => serde_json::to_vec(m).unwrap(),
                Err(u) => serde_json::to_vec(&**u).unwrap(),
            };
            slow.push(b'\n');
            // Damaged values take the same `invalid` form in both writers.
            let mut fast = Vec::new();
            writer.write_line(&mut fast, &decoded);
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
        }
    }
}

#[test]
fn tables_of_the_property_tests_are_what_they_claim() {
    let schema = test_schema();
    let t = schema.table("ks", "t").unwrap();
    assert_eq!(t.clustering_column(1).unwrap().kind, cassandra_commitlog::schema::ColumnKind::Clustering(Order::Desc));
    assert_eq!(t.dropped.len(), 1);
    assert_eq!(schema.table("ks", "w").unwrap().columns.len(), 71);
}

proptest! {
    /// `Dedup` against the plainest window: a list of the last `capacity`
    /// distinct pairs passed as first copies.
    #[test]
    fn dedup_matches_a_naive_window(capacity in 1usize..8, stream in proptest::collection::vec((0u8..6, 0u32..3), 0..200)) {
        use cassandra_commitlog::mutation::{Dedup, Digest};
        let mut dedup = Dedup::new(capacity);
        let mut window: Vec<(u8, u32)> = Vec::new();
        for (d, change) in stream {
            let naive = !window.contains(&(d, change));
            if naive {
                window.push((d, change));
                if window.len() > capacity {
                    window.remove(0);
                }
            }
            prop_assert_eq!(dedup.first(Digest([d; 16]), change), naive);
            prop_assert_eq!(dedup.len(), window.len());
        }
    }

    /// A digest's hex digits name it back.
    #[test]
    fn a_digest_reads_back_from_its_hex(bytes in any::<[u8; 16]>()) {
        use cassandra_commitlog::mutation::Digest;
        let d = Digest(bytes);
        prop_assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        prop_assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        prop_assert_eq!(Digest::from_hex(&d.to_hex()[1..]), None);
    }
}
