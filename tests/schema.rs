//! The DDL parser against the corpus: every `schema_internals.cql` must give
//! exactly the tables, ids, columns, kinds, positions, types and clustering
//! orders Cassandra's own `system_schema` rows list beside it; then the
//! parser's handling of the forms `DESCRIBE` prints and of bad input.

mod common;

use std::path::Path;

use cassandra_commitlog::schema::{ColumnKind, CqlType, Order, Schema, SchemaError};
use common::corpus;
use serde_json::Value;

fn schema_dirs(corpus: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for capture in std::fs::read_dir(corpus).unwrap() {
        let capture = capture.unwrap().path();
        if !capture.is_dir() {
            continue;
        }
        for sub in std::fs::read_dir(&capture).unwrap() {
            let sub = sub.unwrap().path();
            if sub.join("schema_internals.cql").is_file() {
                dirs.push(sub);
            }
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn corpus_schemas_match_system_schema() {
    let Some(corpus) = corpus() else { return };
    let dirs = schema_dirs(&corpus);
    assert_eq!(dirs.len(), 12);
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("schema_internals.cql")).unwrap();
        let schema = Schema::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ids: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("table_ids.json")).unwrap()).unwrap();
        let ids = ids.as_array().unwrap();
        assert_eq!(schema.tables().count(), ids.len(), "{}", dir.display());
        for row in ids {
            let t = schema.table(row["keyspace"].as_str().unwrap(), row["table"].as_str().unwrap()).unwrap();
            assert_eq!(t.id.to_string(), row["id"].as_str().unwrap());
            assert!(std::ptr::eq(schema.table_by_id(&t.id).unwrap(), t));
        }
        let ks = ids[0]["keyspace"].as_str().unwrap();
        let columns: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("columns.json")).unwrap()).unwrap();
        let columns = columns.as_array().unwrap();
        let mut count = 0;
        for c in columns {
            let t = schema.table(ks, c["table"].as_str().unwrap()).unwrap();
            let name = c["column"].as_str().unwrap();
            let col = t.column(name).unwrap_or_else(|| panic!("{}.{name}", t.name));
            assert_eq!(col.ty.to_string(), c["type"].as_str().unwrap(), "{}.{name}", t.name);
            let position = c["position"].as_i64().unwrap();
            match (c["kind"].as_str().unwrap(), col.kind) {
                ("partition_key", ColumnKind::PartitionKey) => {
                    assert_eq!(t.partition_key_column(position as usize).unwrap().name, name)
                }
                ("clustering", ColumnKind::Clustering(order)) => {
                    assert_eq!(t.clustering_column(position as usize).unwrap().name, name);
                    let want = if c["clustering_order"] == "desc" { Order::Desc } else { Order::Asc };
                    assert_eq!(order, want);
                }
                ("regular", ColumnKind::Regular) | ("static", ColumnKind::Static) => assert_eq!(position, -1),
                (kind, got) => panic!("{}.{name}: system_schema says {kind}, parsed {got:?}", t.name),
            }
            count += 1;
        }
        assert_eq!(count, schema.tables().map(|t| t.columns.len()).sum::<usize>(), "no extra columns");
        let types: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("types.json")).unwrap()).unwrap();
        for ty in types.as_array().unwrap() {
            let def = schema.user_type(ks, ty["type"].as_str().unwrap()).unwrap();
            let names: Vec<&str> = def.fields.iter().map(|(n, _)| n.as_str()).collect();
            let types: Vec<String> = def.fields.iter().map(|(_, t)| t.to_string()).collect();
            assert_eq!(
                names,
                ty["field_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>()
            );
            assert_eq!(
                types,
                ty["field_types"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>()
            );
        }
    }
}

const DROPS: &str = r#"
-- comments of all three kinds
CREATE KEYSPACE "MixedKs" WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': '3'} AND durable_writes = false;
USE "MixedKs";
/* a UDT using another */
CREATE TYPE IF NOT EXISTS inner_t (a int, "B" text);
CREATE TYPE outer_t (i frozen<inner_t>, l list<frozen<inner_t>>);
CREATE TABLE "Events" (
    "PK" text,
    day date,
    at timeuuid,
    s_val text static,
    v vector<float, 3>,
    m map<text, frozen<list<int>>>,
    o outer_t,
    fo frozen<outer_t>,
    t tuple<int, text>,
    c 'org.apache.cassandra.db.marshal.BytesType',
    gone int,
    again text,
    PRIMARY KEY (("PK", day), at)
) WITH ID = 01234567-89ab-cdef-0123-456789abcdef
    AND CLUSTERING ORDER BY (at DESC)
    AND comment = 'it''s; here'
    AND compaction = {'class': 'x', 'max_threshold': '32'}
    AND speculative_retry = '99p'
    AND extensions = {};
ALTER TABLE "MixedKs"."Events" DROP gone USING TIMESTAMP 1700000000000000;
ALTER TABLE "MixedKs"."Events" DROP again USING TIMESTAMP 1600000000000000;
ALTER TABLE "MixedKs"."Events" ADD again text;
CREATE INDEX ev_idx ON "MixedKs"."Events" (day);
CREATE FUNCTION f (x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$;
CREATE TABLE plain (k int PRIMARY KEY, v varchar) WITH COMPACT STORAGE;
"#;

#[test]
fn describe_forms_quoting_drops_and_skipped_statements() {
    let schema = Schema::parse(DROPS).unwrap();
    let t = schema.table("MixedKs", "Events").unwrap();
    assert_eq!(t.id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(t.partition_key().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["PK", "day"]);
    assert_eq!(t.clustering_column(0).unwrap().kind, ColumnKind::Clustering(Order::Desc));
    assert_eq!(t.column("s_val").unwrap().kind, ColumnKind::Static);
    assert_eq!(t.column("v").unwrap().ty, CqlType::Vector { elem: Box::new(CqlType::Float), dim: 3 });
    assert_eq!(t.column("v").unwrap().ty.fixed_len(), Some(12));
    assert!(t.column("m").unwrap().ty.is_multi_cell());
    assert!(t.column("o").unwrap().ty.is_multi_cell());
    assert!(!t.column("fo").unwrap().ty.is_multi_cell());
    assert_eq!(t.column("t").unwrap().ty.to_string(), "frozen<tuple<int, text>>");
    assert_eq!(t.column("m").unwrap().ty.to_string(), "map<text, frozen<list<int>>>");
    assert_eq!(t.column("c").unwrap().ty, CqlType::Custom("org.apache.cassandra.db.marshal.BytesType".into()));
    // `gone` is dropped; `again` was dropped and added back.
    assert!(t.column("gone").is_none());
    let gone = t.dropped.iter().find(|d| d.name == "gone").unwrap();
    assert_eq!((gone.dropped_at, &gone.ty), (1700000000000000, &CqlType::Int));
    assert_eq!(t.column("again").unwrap().dropped_at, Some(1600000000000000));
    let inner = schema.user_type("MixedKs", "inner_t").unwrap();
    assert_eq!(inner.fields[1].0, "B");
    assert!(schema.table("MixedKs", "plain").is_some());
    assert_eq!(schema.table("MixedKs", "plain").unwrap().column("v").unwrap().ty, CqlType::Text);
}

#[test]
fn errors_say_where_and_what() {
    let err = Schema::parse("CREATE TABLE ks.t (id int PRIMARY KEY, v text;").unwrap_err();
    let SchemaError::Syntax { line: 1, expected, found, .. } = &err else { panic!("{err}") };
    assert_eq!(*expected, "',' or ')'");
    assert!(found.starts_with(';'));
    let err =
        Schema::parse("CREATE KEYSPACE ks WITH x = 1;\n\nCREATE TABLE ks.t (id nosuch PRIMARY KEY);").unwrap_err();
    assert_eq!(err, SchemaError::UnknownType { line: 3, name: "nosuch".into() });
    // Lines keep counting across several statements, comments and blank lines.
    let text = "CREATE KEYSPACE ks WITH x = 1;\nCREATE TABLE ks.a (\n  id int PRIMARY KEY\n);\n-- note\n\nCREATE TABLE ks.b (id int PRIMARY KEY);\nCREATE TABLE ks.c (id int PRIMARY KEY, v nosuch);";
    assert_eq!(Schema::parse(text).unwrap_err(), SchemaError::UnknownType { line: 8, name: "nosuch".into() });
    let err = Schema::parse("CREATE TABLE t (id int PRIMARY KEY);").unwrap_err();
    assert!(matches!(err, SchemaError::NoKeyspace { line: 1, .. }), "{err}");
    let err = Schema::parse("CREATE TABLE ks.t (id int, PRIMARY KEY (nope));").unwrap_err();
    assert!(matches!(err, SchemaError::Table { .. }), "{err}");
    let deep =
        format!("CREATE TABLE ks.t (id int PRIMARY KEY, v {}int{});", "frozen<list<".repeat(40), ">>".repeat(40));
    assert!(Schema::parse(&deep).is_err());
    let err = Schema::parse("CREATE TABLE ks.t (id int PRIMARY KEY) /* never closed").unwrap_err();
    assert!(matches!(err, SchemaError::Syntax { expected: "the end of a comment", .. }), "{err}");
}

#[test]
fn amending_in_code() {
    let mut schema = Schema::parse("CREATE TABLE ks.t (id int PRIMARY KEY, v text, w int);").unwrap();
    let id = "6c622920-f980-11e4-b8a0-e7d448d5e26d".parse().unwrap();
    schema.set_table_id("ks", "t", id).unwrap();
    assert_eq!(schema.table_by_id(&id).unwrap().name, "t");
    schema.amend_table("ks", "t", |t| t.drop_column("w", 42)).unwrap();
    let t = schema.table_by_id(&id).unwrap();
    assert!(t.column("w").is_none() && t.dropped[0].dropped_at == 42);
    assert!(schema.amend_table("ks", "nope", |t| t.drop_column("w", 1)).is_err());
    // ALTER TABLE ... ADD, one column or a parenthesized list.
    schema.load_cql("ALTER TABLE ks.t ADD x int; ALTER TABLE ks.t ADD (y text, z frozen<list<int>>);").unwrap();
    let t = schema.table_by_id(&id).unwrap();
    assert_eq!(t.column("y").unwrap().ty, cassandra_commitlog::schema::CqlType::Text);
    assert_eq!(t.column("z").unwrap().ty.to_string(), "frozen<list<int>>");
    assert!(t.column("x").is_some());
}

/// Dropping a column declared before key columns used to leave the key
/// positions pointing past the shifted columns (a panic on the next lookup).
#[test]
fn dropping_a_column_declared_before_the_keys_keeps_the_keys() {
    let mut t = cassandra_commitlog::schema::Table::builder("ks", "t")
        .regular("a", CqlType::Int)
        .partition_key("k2", CqlType::Text)
        .regular("b", CqlType::Int)
        .partition_key("k1", CqlType::Int)
        .clustering("c", CqlType::Text, Order::Desc)
        .build()
        .unwrap();
    t.drop_column("b", 7).unwrap();
    t.drop_column("a", 8).unwrap();
    let names = |it: &mut dyn Iterator<Item = &cassandra_commitlog::schema::Column>| {
        it.map(|c| c.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&mut t.partition_key()), ["k2", "k1"]);
    assert_eq!(names(&mut t.clustering()), ["c"]);
    assert_eq!(t.clustering_column(0).unwrap().kind, ColumnKind::Clustering(Order::Desc));
    assert_eq!(t.partition_key_column(1).unwrap().ty, CqlType::Int);
    assert_eq!(t.dropped.iter().map(|d| (d.name.as_str(), d.dropped_at)).collect::<Vec<_>>(), [("b", 7), ("a", 8)]);
}

#[test]
fn doubled_quotes_stand_for_one_in_names_and_strings() {
    let s = Schema::parse(r#"CREATE TABLE ks."a""b" (id int PRIMARY KEY, "x""y" text, c 'my''type');"#).unwrap();
    let t = s.table("ks", "a\"b").unwrap();
    assert_eq!(t.column("x\"y").unwrap().ty, CqlType::Text);
    assert_eq!(t.column("c").unwrap().ty, CqlType::Custom("my'type".into()));
    // Never closed: the closing quote is sought to the end of the text.
    for text in [r#"CREATE TABLE ks."t (id int PRIMARY KEY);"#, "CREATE TABLE ks.t (id int PRIMARY KEY, c 'x);"] {
        let err = Schema::parse(text).unwrap_err();
        let end = text.chars().count() + 1;
        assert!(
            matches!(&err, SchemaError::Syntax { line: 1, column, found, .. } if *column == end && found.is_empty()),
            "{err}"
        );
    }
}

/// Option groups nested a hundred thousand deep used to overflow the stack
/// (the skipper recursed once per bracket): now an error, or skipped.
#[test]
fn deeply_nested_options_neither_overflow_nor_fail_when_balanced() {
    let deep = 100_000;
    let open = format!("CREATE TABLE ks.t (id int PRIMARY KEY) WITH x = {};", "{".repeat(deep));
    assert!(matches!(Schema::parse(&open), Err(SchemaError::Syntax { .. })));
    let balanced = format!(
        "CREATE TABLE ks.t (id int PRIMARY KEY) WITH x = {}'v'{} AND y = [1, (a: 'b')];",
        "{[(".repeat(deep / 3),
        ")]}".repeat(deep / 3)
    );
    assert!(Schema::parse(&balanced).unwrap().table("ks", "t").is_some());
}

/// Tables without `WITH ID` all had the nil id, and each replaced the one
/// before it: only the last survived a plain `DESCRIBE` (no internals).
#[test]
fn tables_without_ids_are_all_kept_until_given_one() {
    let mut schema = Schema::parse(
        "CREATE TABLE ks.a (id int PRIMARY KEY); CREATE TABLE ks.b (id int PRIMARY KEY, v text);
         CREATE TABLE ks.a (id int PRIMARY KEY, w int);",
    )
    .unwrap();
    assert_eq!(schema.tables().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(schema.table("ks", "a").unwrap().column("w").is_some(), "a table of the same name is replaced");
    assert!(schema.table_by_id(&cassandra_commitlog::schema::Uuid::nil()).is_none());
    let (a, b) = (
        "00000000-0000-0000-0000-00000000000a".parse().unwrap(),
        "00000000-0000-0000-0000-00000000000b".parse().unwrap(),
    );
    schema.set_table_id("ks", "a", a).unwrap();
    schema.set_table_id("ks", "b", b).unwrap();
    assert_eq!(schema.table_by_id(&a).unwrap().name, "a");
    assert_eq!(schema.table_by_id(&b).unwrap().name, "b");
}

/// Every CQL scalar type name (CQL reference, "Native types") is read and
/// written back the same; `varchar` is another name for `text`.
#[test]
fn scalar_type_names_read_and_write_back() {
    let names = [
        "ascii",
        "bigint",
        "blob",
        "boolean",
        "counter",
        "date",
        "decimal",
        "double",
        "duration",
        "float",
        "inet",
        "int",
        "smallint",
        "text",
        "time",
        "timestamp",
        "timeuuid",
        "tinyint",
        "uuid",
        "varint",
    ];
    for (name, written) in names.iter().map(|n| (*n, *n)).chain([("varchar", "text"), ("BigInt", "bigint")]) {
        let schema = Schema::parse(&format!("CREATE TABLE ks.t (id int PRIMARY KEY, v {name});")).unwrap();
        let ty = &schema.table("ks", "t").unwrap().column("v").unwrap().ty;
        assert_eq!(ty.to_string(), written, "{name}");
        assert_eq!(CqlType::from_scalar_name(name).as_ref(), Some(ty), "{name}");
    }
    assert_eq!(CqlType::from_scalar_name("list"), None);
}
