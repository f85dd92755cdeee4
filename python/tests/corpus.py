"""Test helpers, written from the corpus README without the package's code:
where the corpus is, the values of `final_state.jsonl` (what the DataStax
driver returned) as the Python values the package should give, and a
materializer that rebuilds tables from changes with Cassandra's rules."""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import uuid
from collections import Counter
from pathlib import Path

from cassandra_commitlog.types import Date, Duration, Time

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
EPOCH = dt.datetime(1970, 1, 1)

CAPTURES = [
    "cassandra-4.0.0",
    "cassandra-4.0-alpha4",
    "cassandra-4.0.0-lz4",
    "cassandra-4.0.0-zstd",
    "cassandra-4.0.0-encrypted",
]


def keys_for(capture: str) -> dict:
    """The AES keys the corpus README gives for a capture."""
    keys = {}
    text = (CORPUS / "README.md").read_text()
    section = text.split("## Keys for the encrypted sets", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`") and cells[1].strip("`") == capture:
            keys[cells[2].strip("`")] = bytes.fromhex(cells[3].split("`")[1])
    return keys


def read_times() -> dict:
    """(capture, phase) -> the Unix time the final states were read."""
    out = {}
    for line in (CORPUS / "README.md").read_text().splitlines():
        m = re.match(r"\| `(cassandra-[^`]+)` \| (\d+) \| (\d+) \|", line)
        if m:
            out[(m.group(1), 1)] = int(m.group(2))
            out[(m.group(1), 2)] = int(m.group(3))
    return out


# ---------- CQL types, parsed from their text ----------


def parse_type(text: str):
    """A CQL type text as a tree: (name, [argument trees])."""
    text = text.strip()
    m = re.match(r"^(\w+)\s*<(.*)>$", text, re.S)
    if not m:
        return (text, [])
    name, inner = m.group(1), m.group(2)
    if name == "frozen":
        return parse_type(inner)
    args, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(parse_type(inner[start:i]))
            start = i + 1
    args.append(parse_type(inner[start:]))
    return (name, args)


class Schema:
    """A capture's columns and user types (columns.json, types.json)."""

    def __init__(self, folder: Path, keyspace: str):
        self.columns = {}
        for c in json.loads((folder / "columns.json").read_text()):
            if c.get("keyspace", keyspace) == keyspace:
                self.columns.setdefault(c["table"], []).append(c)
        self.types = {t["type"]: t for t in json.loads((folder / "types.json").read_text())}
        self.keyspace = keyspace

    def ordered(self, table: str, kind: str) -> list:
        cols = [c for c in self.columns[table] if c["kind"] == kind]
        return sorted(cols, key=lambda c: c["position"])

    def type_of(self, table: str, column: str):
        for c in self.columns[table]:
            if c["column"] == column:
                return parse_type(c["type"])
        raise KeyError(column)


# ---------- final_state.jsonl values to Python values ----------


def from_driver(schema: Schema, ty, v):
    """A value of `final_state.jsonl` (the driver's, JSON-encoded as the
    corpus README says) as the Python value expected of the package."""
    if v is None:
        return None
    name, args = ty
    if name in schema.types:
        udt = schema.types[name]
        fields = v["tuple"] if isinstance(v, dict) else v
        out = {}
        for fname, ftype, fv in zip(udt["field_names"], udt["field_types"], fields):
            if fv is not None:
                out[fname] = from_driver(schema, parse_type(ftype), fv)
        return out
    if name in ("text", "ascii", "varchar"):
        return v
    if name in ("int", "bigint", "smallint", "tinyint", "varint", "counter"):
        return int(v)
    if name == "boolean":
        return bool(v)
    if name in ("float", "double"):
        return float(v)
    if name == "decimal":
        return decimal.Decimal(v["decimal"] if isinstance(v, dict) else str(v))
    if name == "blob":
        return bytes.fromhex(v["hex"])
    if name in ("uuid", "timeuuid"):
        return uuid.UUID(v)
    if name == "inet":
        return ipaddress.ip_address(v)
    if name == "timestamp":
        return EPOCH + dt.timedelta(milliseconds=v["timestamp_ms"])
    if name == "date":
        return Date(dt.date.fromisoformat(v["date"]))
    if name == "time":
        return Time(v["time_nanos"])
    if name == "duration":
        d = v["duration"]
        return Duration(d["months"], d["days"], d["nanos"])
    if name == "list":
        return [from_driver(schema, args[0], x) for x in v]
    if name == "set":
        items = v["set"] if isinstance(v, dict) else literal(v, "SortedSet")
        return {freeze(from_driver(schema, args[0], x)) for x in items}
    if name == "map":
        items = v["map"] if isinstance(v, dict) else literal(v, "OrderedMapSerializedKey")
        return {freeze(from_driver(schema, args[0], k)): from_driver(schema, args[1], x) for k, x in items}
    if name == "tuple":
        return tuple(from_driver(schema, t, x) for t, x in zip(args, v["tuple"]))
    raise ValueError(f"type {ty}")


def literal(text: str, wrapper: str):
    """The elements inside `SortedSet([...])` or `OrderedMapSerializedKey([...])`."""
    assert text.startswith(wrapper + "(") and text.endswith(")"), text
    return ast.literal_eval(text[len(wrapper) + 1 : -1])


def freeze(v):
    """A value usable as a set element or map key (as the package freezes them)."""
    if isinstance(v, list):
        return tuple(freeze(x) for x in v)
    if isinstance(v, set):
        return frozenset(v)
    if isinstance(v, dict):
        return tuple((freeze(k), freeze(x)) for k, x in v.items())
    return v


def final_state(capture_folder: Path, state_file: Path, schema: Schema) -> dict:
    """Table -> Counter of canonical rows (`row_count` for the bulk table)."""
    out = {}
    for line in state_file.read_text().splitlines():
        r = json.loads(line)
        table = r["table"]
        if "row_count" in r:
            out[table] = r["row_count"]
            continue
        row = {c: from_driver(schema, schema.type_of(table, c), v) for c, v in r["row"].items()}
        out.setdefault(table, Counter())[canon(row)] += 1
    return out


def canon(v):
    """A hashable, comparable form: NaN equal to itself, containers by value,
    the exact type kept (an int is not a bool, a float not an int)."""
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")
    if isinstance(v, dict):
        # An absent entry and a null one are the same (a row's null column,
        # a UDT's unset field).
        items = ((canon(k), canon(x)) for k, x in v.items() if x is not None)
        return ("dict", tuple(sorted(items, key=repr)))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted((canon(x) for x in v), key=repr)))
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, tuple(canon(x) for x in v))
    if isinstance(v, decimal.Decimal):
        return ("decimal", v.as_tuple())
    return (type(v).__name__, v)


# ---------- Cassandra's rules ----------


def timeuuid_order(u: uuid.UUID):
    """TimeUUIDType order: the timestamp, then the rest as signed bytes."""
    return (u.time, tuple(b - 256 if b > 127 else b for b in u.bytes[8:]))


class Cell:
    __slots__ = ("ts", "value", "tombstone", "expires_at")

    def __init__(self, c):
        self.ts, self.value, self.tombstone, self.expires_at = c.timestamp, c.value, c.tombstone, c.expires_at

    def wins_over(self, other: "Cell") -> bool:
        if self.ts != other.ts:
            return self.ts > other.ts
        return self.tombstone and not other.tombstone

    def live(self, deleted: int, now: int) -> bool:
        return not self.tombstone and self.ts > deleted and (self.expires_at is None or self.expires_at > now)


class Row:
    def __init__(self, key=()):
        self.key = key  # the clustering values, as given
        self.liveness = None  # (timestamp, expires_at)
        self.deletion = -(2**63)
        self.cells = {}
        self.complex = {}  # column -> [deletion ts, {path: Cell}]
        self.counters = {}  # column -> [latest timestamp, {counter id: (clock, count)}]


class Partition:
    def __init__(self, key=()):
        self.key = key  # the partition key values, as given
        self.deletion = -(2**63)
        self.rts = []
        self.static = Row()
        self.rows = {}


class Tables:
    """Tables rebuilt from changes, read as `SELECT *` at a time."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.tables = {}

    def apply(self, ch) -> None:
        if ch.keyspace != self.schema.keyspace or ch.table not in self.schema.columns:
            return
        s = self.schema
        pk_values = tuple(ch.key[c["column"]] for c in s.ordered(ch.table, "partition_key"))
        pk = freeze(list(pk_values))
        p = self.tables.setdefault(ch.table, {}).setdefault(pk, Partition(pk_values))
        if ch.kind == "delete_partition":
            p.deletion = max(p.deletion, ch.deletion["timestamp"])
            return
        if ch.kind == "delete_range":
            r = ch.range
            p.rts.append((r["start"], r["end"], ch.deletion["timestamp"]))
            return
        if ch.is_static:
            row = p.static
        else:
            ck_values = tuple(ch.key[c["column"]] for c in s.ordered(ch.table, "clustering"))
            row = p.rows.setdefault(freeze(list(ck_values)), Row(ck_values))
        if ch.liveness is not None:
            new = (ch.liveness["timestamp"], ch.liveness["expires_at"])
            if row.liveness is None or new[0] >= row.liveness[0]:
                row.liveness = new
        if ch.deletion is not None:
            row.deletion = max(row.deletion, ch.deletion["timestamp"])
        for column, ts in ch.replaced.items():
            slot = row.complex.setdefault(column, [-(2**63), {}])
            slot[0] = max(slot[0], ts)
        for c in ch.cells:
            if c.dropped:
                continue
            if c.shards is not None:
                latest, shards = row.counters.setdefault(c.column, [c.timestamp, {}])
                row.counters[c.column][0] = max(latest, c.timestamp)
                for cid, clock, count in c.shards:
                    if cid not in shards or clock > shards[cid][0]:
                        shards[cid] = (clock, count)
                continue
            new = Cell(c)
            if c.path is None:
                old = row.cells.get(c.column)
                if old is None or new.wins_over(old):
                    row.cells[c.column] = new
            else:
                slot = row.complex.setdefault(c.column, [-(2**63), {}])
                key = freeze(c.path)
                old = slot[1].get(key)
                if old is None or new.wins_over(old):
                    slot[1][key] = new

    def _compare(self, table: str, ck: tuple, bound: list) -> int:
        """The row's clustering against a bound prefix, in clustering order."""
        cols = self.schema.ordered(table, "clustering")
        for col, a, b in zip(cols, ck, bound):
            if a == b:
                continue
            c = -1 if a < b else 1
            return -c if col["clustering_order"] == "desc" else c
        return 0

    def _covered(self, table: str, ck: tuple, p: Partition) -> int:
        deleted = -(2**63)
        for start, end, ts in p.rts:
            s = self._compare(table, ck, start["clustering"])
            e = self._compare(table, ck, end["clustering"])
            after = s > 0 or (s == 0 and start["inclusive"])
            before = e < 0 or (e == 0 and end["inclusive"])
            if after and before:
                deleted = max(deleted, ts)
        return deleted

    def _columns(self, table: str, row: Row, deleted: int, now: int, kind: str) -> dict:
        out = {}
        for col in self.schema.columns[table]:
            if col["kind"] != kind:
                continue
            name = col["column"]
            if name in row.counters:
                latest, shards = row.counters[name]
                if latest > deleted:
                    out[name] = sum(count for _, count in shards.values())
            elif name in row.cells:
                c = row.cells[name]
                if c.live(deleted, now):
                    out[name] = c.value
            elif name in row.complex:
                floor, cells = row.complex[name]
                floor = max(floor, deleted)
                live = {k: c for k, c in cells.items() if c.live(floor, now)}
                if not live:
                    continue
                ty = self.schema.type_of(table, name)
                if ty[0] == "list":
                    out[name] = [live[k].value for k in sorted(live, key=timeuuid_order)]
                elif ty[0] == "set":
                    out[name] = set(live)
                elif ty[0] == "map":
                    out[name] = {k: c.value for k, c in live.items()}
                else:
                    out[name] = {k: c.value for k, c in live.items() if c.value is not None}
        return out

    def rows(self, table: str, now: int) -> list:
        s = self.schema
        pk_cols = [c["column"] for c in s.ordered(table, "partition_key")]
        ck_cols = [c["column"] for c in s.ordered(table, "clustering")]
        all_cols = [c["column"] for c in s.columns[table]]
        out = []
        for p in self.tables.get(table, {}).values():
            statics = self._columns(table, p.static, p.deletion, now, "static")
            live_rows = 0
            for row in p.rows.values():
                ck = row.key
                deleted = max(p.deletion, self._covered(table, ck, p), row.deletion)
                marker = row.liveness is not None and row.liveness[0] > deleted and (
                    row.liveness[1] is None or row.liveness[1] > now
                )
                cells = self._columns(table, row, deleted, now, "regular")
                if not marker and not cells:
                    continue
                live_rows += 1
                r = {c: None for c in all_cols}
                r.update(zip(pk_cols, p.key))
                r.update(zip(ck_cols, ck))
                r.update(statics)
                r.update(cells)
                out.append(r)
            if live_rows == 0 and statics:
                r = {c: None for c in all_cols}
                r.update(zip(pk_cols, p.key))
                r.update(statics)
                out.append(r)
        return out

    def state(self, now: int, row_counts=()) -> dict:
        out = {}
        for table in self.schema.columns:
            rows = self.rows(table, now)
            if table in row_counts:
                out[table] = len(rows)
            elif rows:
                out[table] = Counter(canon(r) for r in rows)
        return out
