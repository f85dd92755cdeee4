"""Every CQL type's Python value, column by column, against what the
DataStax driver returned for the same column (`final_state.jsonl`): the
type mapping of the README, checked on the corpus's `scalars`,
`collections` and `frozen_key` tables."""

import datetime as dt
import decimal
import ipaddress
import uuid

import cassandra_commitlog as cl
from corpus import Schema, Tables, canon, from_driver, read_times
from test_corpus import changes_of

# CQL type -> the Python type the package gives (README, "Python").
MAPPING = {
    "ascii": str,
    "text": str,
    "varchar": str,
    "tinyint": int,
    "smallint": int,
    "int": int,
    "bigint": int,
    "varint": int,
    "counter": int,
    "boolean": bool,
    "float": float,
    "double": float,
    "decimal": decimal.Decimal,
    "blob": bytes,
    "uuid": uuid.UUID,
    "timeuuid": uuid.UUID,
    "inet": (ipaddress.IPv4Address, ipaddress.IPv6Address),
    "timestamp": dt.datetime,
    "date": cl.Date,
    "time": cl.Time,
    "duration": cl.Duration,
    "list": list,
    "set": set,
    "map": dict,
    "tuple": tuple,
}


def test_every_type_is_the_drivers_value_and_type(corpus):
    capture = corpus / "cassandra-4.0.0"
    state = capture / "schema_after_phase2"
    schema = Schema(state, "cdc_test")
    tables = Tables(schema)
    for ch in changes_of(capture / "cdc_raw_after_shutdown"):
        tables.apply(ch)
    now = read_times()[("cassandra-4.0.0", 2)]
    import json

    driver_rows = [json.loads(line) for line in (state / "final_state.jsonl").read_text().splitlines()]
    seen_types = set()
    for table in ("scalars", "collections", "frozen_key", "counters", "clustered"):
        rows = tables.rows(table, now)
        pk = [c["column"] for c in schema.ordered(table, "partition_key") + schema.ordered(table, "clustering")]
        by_key = {tuple(canon(r[c]) for c in pk): r for r in rows}
        for d in (r for r in driver_rows if r["table"] == table):
            want = {c: from_driver(schema, schema.type_of(table, c), v) for c, v in d["row"].items()}
            got = by_key[tuple(canon(want[c]) for c in pk)]
            for column, w in want.items():
                if w is None:
                    continue
                ty = schema.type_of(table, column)
                name = ty[0] if ty[0] in MAPPING else "udt"
                expected_type = MAPPING.get(name, dict)
                assert isinstance(got[column], expected_type), (table, column, type(got[column]))
                assert type(got[column]) is not bool or name == "boolean", (table, column)
                assert canon(got[column]) == canon(w), (table, column, got[column], w)
                seen_types.add(name)
    # Every type of the corpus's tables was compared.
    assert {"decimal", "varint", "timestamp", "date", "time", "duration", "inet", "udt", "map", "set", "list",
            "tuple", "counter", "blob", "timeuuid"} <= seen_types, seen_types


def test_dates_times_and_durations_behave_as_the_drivers():
    d = cl.Date(19675)
    assert d.date() == dt.date(2023, 11, 14) and str(d) == "2023-11-14" and d == dt.date(2023, 11, 14)
    assert cl.Date(dt.date(1970, 1, 2)).days_from_epoch == 1
    far = cl.Date(2**31)
    assert str(far) == str(2**31)
    t = cl.Time(3723000000004)
    assert (t.hour, t.minute, t.second, t.nanosecond) == (1, 2, 3, 4)
    assert t.time() == dt.time(1, 2, 3) and str(t) == "01:02:03.000000004"
    assert cl.Duration(1, 2, 3) == cl.Duration(1, 2, 3) != cl.Duration(1, 2, 4)
    assert hash(cl.Time(5)) == hash(cl.Time(5))
