//! Per-type boundary values and their JSON, with expected texts worked out
//! by hand from the type definitions (format spec §9, Cassandra's own docs
//! for the ranges), not from the code under test. Then what a whole cell
//! looks like for empty values, pre-2015 and i64::MIN timestamps (9-byte
//! vint deltas) and rows of 64+ columns.

use cassandra_commitlog::builder::{CellKind, CellSpec, ColumnSpec, RowSpec, Unfiltered, UpdateSpec, encode_mutation};
use cassandra_commitlog::mutation::{Context, Decoder, Liveness};
use cassandra_commitlog::schema::{CqlType, Schema};
use cassandra_commitlog::value::{Value, ValueError};

fn render(ty: &str, bytes: &[u8]) -> String {
    let schema = Schema::parse(&format!(
        "CREATE TYPE ks.u (a int, b text); CREATE TABLE ks.t (k int PRIMARY KEY, v {ty}) WITH ID = 00000000-0000-0000-0000-000000000009;"
    ).replace("CREATE TYPE", "CREATE KEYSPACE ks WITH x = 1; CREATE TYPE"))
    .unwrap();
    let t = schema.table("ks", "t").unwrap();
    let v = Value::decode(&t.column("v").unwrap().ty, bytes).unwrap();
    v.validate().unwrap();
    serde_json::to_string(&v).unwrap()
}

fn be<const N: usize>(b: [u8; N]) -> Vec<u8> {
    b.to_vec()
}

#[test]
fn scalars_at_their_boundaries() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("int", be(i32::MIN.to_be_bytes()), "-2147483648"),
        ("bigint", be(i64::MIN.to_be_bytes()), "-9223372036854775808"),
        ("bigint", be(i64::MAX.to_be_bytes()), "9223372036854775807"),
        ("smallint", be(i16::MIN.to_be_bytes()), "-32768"),
        ("tinyint", vec![0x80], "-128"),
        ("boolean", vec![0], "false"),
        ("boolean", vec![7], "true"),
        ("float", be(f32::NAN.to_be_bytes()), "\"NaN\""),
        ("float", be(f32::NEG_INFINITY.to_be_bytes()), "\"-Infinity\""),
        ("float", be((-0.0f32).to_be_bytes()), "-0.0"),
        // 1.1 as a float is 1.10000002384185791015625: its shortest float form is 1.1.
        ("float", be(1.1f32.to_be_bytes()), "1.1"),
        ("double", be(f64::INFINITY.to_be_bytes()), "\"Infinity\""),
        ("double", be((-0.0f64).to_be_bytes()), "-0.0"),
        ("double", be(0.1f64.to_be_bytes()), "0.1"),
        ("double", be(1e300f64.to_be_bytes()), "1e+300"),
        ("text", vec![], "\"\""),
        ("text", "é\"\\\n".as_bytes().to_vec(), "\"é\\\"\\\\\\n\""),
        ("ascii", b"plain".to_vec(), "\"plain\""),
        ("blob", vec![], "\"0x\""),
        ("blob", vec![0x00, 0xab, 0xff], "\"0x00abff\""),
        ("uuid", (0u8..16).collect(), "\"00010203-0405-0607-0809-0a0b0c0d0e0f\""),
        ("timestamp", be((-1i64).to_be_bytes()), "\"1969-12-31 23:59:59.999Z\""),
        // 1442880000000 ms: 2015-09-22, the encoding epoch of timestamps.
        ("timestamp", be(1_442_880_000_000i64.to_be_bytes()), "\"2015-09-22 00:00:00.000Z\""),
        ("date", be(0x8000_0000u32.to_be_bytes()), "\"1970-01-01\""),
        // Cassandra's date range: -5877641-06-23 to 5881580-07-11.
        ("date", be(0u32.to_be_bytes()), "\"-5877641-06-23\""),
        ("date", be(u32::MAX.to_be_bytes()), "\"5881580-07-11\""),
        ("time", be(1i64.to_be_bytes()), "\"00:00:00.000000001\""),
        ("time", be(86_399_999_999_999i64.to_be_bytes()), "\"23:59:59.999999999\""),
        // Spec §9.2's example: 1mo 2d 3s.
        ("duration", vec![0x02, 0x04, 0xf1, 0x65, 0xa0, 0xbc, 0x00], "\"1mo2d3s\""),
        ("inet", vec![127, 0, 0, 1], "\"127.0.0.1\""),
        ("inet", vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "\"2001:db8::1\""),
        ("inet", vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4], "\"::ffff:1.2.3.4\""),
        ("varint", vec![0xff], "-1"),
        // 2^64: beyond 64 bits, written as an exact number token.
        ("varint", vec![0x01, 0, 0, 0, 0, 0, 0, 0, 0], "18446744073709551616"),
        // scale 3, unscaled -1: -0.001.
        ("decimal", vec![0, 0, 0, 3, 0xff], "-0.001"),
        // scale -3, unscaled 1: 1E+3 (BigDecimal.toString).
        ("decimal", vec![0xff, 0xff, 0xff, 0xfd, 1], "1E+3"),
    ];
    for (ty, bytes, want) in cases {
        assert_eq!(render(ty, &bytes), want, "{ty} {bytes:02x?}");
    }
}

#[test]
fn collections_tuples_udts_vectors() {
    let i32v = |n: i32| {
        let mut v = 4i32.to_be_bytes().to_vec();
        v.extend_from_slice(&n.to_be_bytes());
        v
    };
    let text = |s: &str| {
        let mut v = (s.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    let null = (-1i32).to_be_bytes().to_vec();
    let coll = |items: &[Vec<u8>], n: i32| {
        let mut v = n.to_be_bytes().to_vec();
        items.iter().for_each(|i| v.extend_from_slice(i));
        v
    };
    assert_eq!(render("frozen<list<int>>", &coll(&[i32v(1), null.clone(), i32v(-2)], 3)), "[1,null,-2]");
    assert_eq!(render("frozen<set<text>>", &coll(&[text("a"), text("b")], 2)), "[\"a\",\"b\"]");
    // Non-string keys are their JSON text in a string.
    assert_eq!(render("frozen<map<int, text>>", &coll(&[i32v(1), text("one")], 1)), "{\"1\":\"one\"}");
    assert_eq!(render("frozen<map<text, int>>", &coll(&[text("k"), i32v(5)], 1)), "{\"k\":5}");
    let key = [i32v(1), text("x")].concat();
    let tuple_key = coll(&[(key.len() as i32).to_be_bytes().to_vec(), key, i32v(2)], 1);
    assert_eq!(render("frozen<map<frozen<tuple<int, text>>, int>>", &tuple_key), "{\"[1,\\\"x\\\"]\":2}");
    // A tuple with a null, and a UDT value written before a field was added.
    assert_eq!(render("frozen<tuple<int, text, int>>", &[i32v(7), null.clone(), i32v(9)].concat()), "[7,null,9]");
    assert_eq!(render("frozen<u>", &i32v(3)), "{\"a\":3,\"b\":null}");
    let floats: Vec<u8> = [1.0f32, 2.5, -0.0].iter().flat_map(|f| f.to_be_bytes()).collect();
    assert_eq!(render("vector<float, 3>", &floats), "[1.0,2.5,-0.0]");
    let texts: Vec<u8> = [b"ab".as_slice(), b"c"].iter().flat_map(|t| [&[t.len() as u8][..], t].concat()).collect();
    assert_eq!(render("vector<text, 2>", &texts), "[\"ab\",\"c\"]");
}

#[test]
fn bad_bytes_are_errors_not_panics() {
    let int = CqlType::Int;
    assert!(matches!(Value::decode(&int, &[1, 2, 3]), Err(ValueError::Length { found: 3, .. })));
    assert!(matches!(Value::decode(&CqlType::Text, &[0xff]), Err(ValueError::Utf8 { at: 0 })));
    assert!(matches!(Value::decode(&CqlType::Ascii, b"ok\x80"), Err(ValueError::Ascii { at: 2 })));
    assert!(matches!(Value::decode(&CqlType::Time, &(-1i64).to_be_bytes()), Err(ValueError::Range { .. })));
    assert!(matches!(Value::decode(&CqlType::Inet, &[1, 2, 3, 4, 5]), Err(ValueError::Length { .. })));
    let list = CqlType::List { elem: Box::new(CqlType::Int), frozen: true };
    assert!(matches!(Value::decode(&list, &[0, 0, 0, 2, 0, 0, 0, 4, 1]), Err(ValueError::Truncated { .. })));
    assert!(matches!(Value::decode(&list, &[0x7f, 0xff, 0xff, 0xff]), Err(ValueError::Truncated { .. })));
    // A negative element count, and a count cut short, for lists and maps alike.
    let map = CqlType::Map { key: Box::new(CqlType::Int), value: Box::new(CqlType::Int), frozen: true };
    for ty in [&list, &map] {
        assert!(matches!(Value::decode(ty, &[0xff, 0xff, 0xff, 0xfe]), Err(ValueError::Range { found: -2, .. })));
        assert!(matches!(Value::decode(ty, &[0, 0, 1]), Err(ValueError::Truncated { at: 0, .. })));
    }
    // Empty is a value of text and blob only.
    assert_eq!(Value::decode(&int, &[]), Ok(Value::Empty));
    assert_eq!(Value::decode(&CqlType::Text, &[]), Ok(Value::Text("")));
}

#[test]
fn validate_finds_bad_nested_elements() {
    // Collections decode their elements lazily: `decode` accepts the
    // framing, `validate` finds the element that is not of its type.
    let list = CqlType::List { elem: Box::new(CqlType::Int), frozen: true };
    // [1, <3-byte int>]
    let bad = [0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3];
    let v = Value::decode(&list, &bad).unwrap();
    assert!(matches!(v.validate(), Err(ValueError::Length { found: 3, .. })));
    let good = [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1];
    assert_eq!(Value::decode(&list, &good).unwrap().validate(), Ok(()));
    // {1: "\xff"}: the value is not UTF-8.
    let map = CqlType::Map { key: Box::new(CqlType::Int), value: Box::new(CqlType::Text), frozen: true };
    let bad = [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0xff];
    assert!(matches!(Value::decode(&map, &bad).unwrap().validate(), Err(ValueError::Utf8 { at: 0 })));
    // ((<2-byte int>)): a tuple inside a tuple, the bad field two levels down.
    let inner = CqlType::Tuple(vec![CqlType::Int]);
    let outer = CqlType::Tuple(vec![inner]);
    let bad = [0, 0, 0, 6, 0, 0, 0, 2, 1, 2];
    assert!(matches!(Value::decode(&outer, &bad).unwrap().validate(), Err(ValueError::Length { found: 2, .. })));
    // Scalars were checked when decoded.
    assert_eq!(Value::decode(&CqlType::Int, &[0, 0, 0, 1]).unwrap().validate(), Ok(()));
}

fn table_schema() -> Schema {
    let mut cql = String::from(
        "CREATE KEYSPACE ks WITH x = 1; CREATE TABLE ks.t (k int PRIMARY KEY, i int, s text) WITH ID = 00000000-0000-0000-0000-000000000001; CREATE TABLE ks.w (k int PRIMARY KEY",
    );
    for i in 0..70 {
        cql.push_str(&format!(", c{i:02} int"));
    }
    cql.push_str(") WITH ID = 00000000-0000-0000-0000-000000000002;");
    Schema::parse(&cql).unwrap()
}

fn one_row(table: u8, columns: Vec<(String, ColumnSpec)>, liveness: Option<Liveness>) -> UpdateSpec {
    UpdateSpec {
        table_id: format!("00000000-0000-0000-0000-00000000000{table}").parse().unwrap(),
        key: 1i32.to_be_bytes().to_vec(),
        deletion: None,
        static_row: None,
        unfiltereds: vec![Unfiltered::Row(RowSpec { clustering: vec![], liveness, deletion: None, columns })],
    }
}

fn live(ts: i64, value: Vec<u8>) -> ColumnSpec {
    ColumnSpec::Simple(CellSpec { timestamp: ts, kind: CellKind::Live, path: None, value })
}

fn decode_json(schema: &Schema, u: &UpdateSpec) -> (Vec<u8>, serde_json::Value) {
    let t = schema.table_by_id(&u.table_id).unwrap();
    let bytes = encode_mutation(&[(t, u)], false);
    let mut d = Decoder::new();
    let m = d.decode(&bytes, schema, Context::default()).unwrap();
    let json =
        serde_json::to_value(serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&m).unwrap()).unwrap())
            .unwrap();
    (bytes, json)
}

#[test]
fn empty_values_and_old_timestamps_in_cells() {
    let schema = table_schema();
    // An int cell with no value bytes (Cassandra accepts it): null, marked empty.
    // Timestamps 1 (1970, before the 2015-09-22 encoding epoch) and i64::MIN
    // are written as 9-byte vint deltas.
    let u = one_row(
        1,
        vec![("i".into(), live(1, vec![])), ("s".into(), live(i64::MIN, vec![]))],
        Some(Liveness { timestamp: -5, expiry: None }),
    );
    let (bytes, json) = decode_json(&schema, &u);
    let cells = &json["updates"][0]["rows"][0]["cells"];
    assert_eq!(cells["i"], serde_json::json!({"timestamp": 1, "value": null, "empty": true}));
    assert_eq!(cells["s"], serde_json::json!({"timestamp": i64::MIN, "value": ""}));
    assert_eq!(json["updates"][0]["rows"][0]["liveness"], serde_json::json!({"timestamp": -5}));
    // The header's minimum timestamp is i64::MIN: its delta from the 2015
    // epoch wraps to a 9-byte vint (first byte 0xff).
    let header_at = 1 + 16 + 1 + 4 + 1;
    assert_eq!(bytes[header_at], 0xff);
}

#[test]
fn rows_of_64_and_more_columns() {
    let schema = table_schema();
    for present in [vec![3usize, 7, 64, 69], (0..70).filter(|i| i % 13 != 0).collect(), (0..70).collect()] {
        let columns =
            present.iter().map(|&i| (format!("c{i:02}"), live(10, (i as i32).to_be_bytes().to_vec()))).collect();
        let (_, json) = decode_json(&schema, &one_row(2, columns, None));
        let cells = json["updates"][0]["rows"][0]["cells"].as_object().unwrap();
        let got: Vec<usize> = cells.keys().map(|k| k[1..].parse().unwrap()).collect();
        assert_eq!(got, present);
        for (k, v) in cells {
            assert_eq!(v["value"], k[1..].parse::<i64>().unwrap());
        }
    }
}

/// `to_json` is exact beyond 64 bits; the expected digits are 2^100 and
/// 2^100 / 1000 written out by hand (Python: `str(2**100)`).
#[test]
fn to_json_is_exact_for_huge_varints_and_decimals() {
    let mut two_pow_100 = vec![0x10u8];
    two_pow_100.extend([0u8; 12]);
    let schema = Schema::parse(
        "CREATE KEYSPACE ks WITH x = 1; CREATE TABLE ks.t (k int PRIMARY KEY, a varint, b decimal, c frozen<list<varint>>) WITH ID = 00000000-0000-0000-0000-00000000000a;",
    )
    .unwrap();
    let ty = |c: &str| schema.table("ks", "t").unwrap().column(c).unwrap().ty.clone();
    let varint = ty("a");
    let v = Value::decode(&varint, &two_pow_100).unwrap();
    assert_eq!(v.to_json().unwrap(), "1267650600228229401496703205376");
    let mut negative = vec![0xf0u8];
    negative.extend([0u8; 12]);
    assert_eq!(Value::decode(&varint, &negative).unwrap().to_json().unwrap(), "-1267650600228229401496703205376");
    let decimal = ty("b");
    let mut d = 3i32.to_be_bytes().to_vec();
    d.extend(&two_pow_100);
    assert_eq!(Value::decode(&decimal, &d).unwrap().to_json().unwrap(), "1267650600228229401496703205.376");
    // Nested: a frozen list of varints keeps every digit too.
    let list = ty("c");
    let mut l = 1i32.to_be_bytes().to_vec();
    l.extend((two_pow_100.len() as i32).to_be_bytes());
    l.extend(&two_pow_100);
    assert_eq!(Value::decode(&list, &l).unwrap().to_json().unwrap(), "[1267650600228229401496703205376]");
    // A value whose nested bytes are bad is an error, not a panic.
    let mut bad = l.clone();
    bad.truncate(l.len() - 1);
    assert!(Value::decode(&list, &bad).and_then(|v| v.to_json()).is_err());
}
