"""Keeps a full-text index (tantivy, in-process) current with a Cassandra
node's `cdc_raw`: one document per row, upserts merged column by column,
deletes of rows, partitions and ranges, TRUNCATE; the index committed and
the checkpoint saved after each batch.

    pip install ./python tantivy
    python python/examples/search_sync.py CDC_RAW_DIR INDEX_DIR CHECKPOINT [--idle-exit SECS]

Each document: `doc_id` (keyspace.table and the primary key), `table`,
`partition` (table and partition key) and `body` (the row's text, indexed
for search), and `data` (the row's columns, stored as JSON). A restart goes
on from the checkpoint; a batch processed again after a crash between the
index commit and the checkpoint is applied again harmlessly (upserts and
deletes are idempotent). TTLs are not applied to the index.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import ipaddress
import json
import math
import uuid

import tantivy

import cassandra_commitlog as cl


def plain(v):
    """A value as JSON can hold it (the index keeps the row as JSON)."""
    if isinstance(v, dict):
        return {str(plain(k)): plain(x) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        return sorted((plain(x) for x in v), key=repr)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(v)
    return str(v)  # Date, Time, Duration


def ident(keyspace: str, table: str, key: dict) -> str:
    return f"{keyspace}.{table}:" + json.dumps(plain(key), sort_keys=True)


def schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    b.add_text_field("table", stored=True, tokenizer_name="raw")
    b.add_text_field("partition", stored=True, tokenizer_name="raw")
    b.add_text_field("body", stored=False)
    b.add_text_field("data", stored=True, tokenizer_name="raw")
    return b.build()


def in_range(row_key: dict, r: dict) -> bool:
    """Whether a row's clustering lies within a range deletion's bounds
    (bounds are clustering prefixes, in clustering order)."""

    def compare(bound) -> int:
        for name, order, b in zip(r["columns"], r["order"], bound):
            a = row_key[name]
            if a != b:
                c = -1 if a < b else 1
                return -c if order == "desc" else c
        return 0

    s, e = compare(r["start"]["clustering"]), compare(r["end"]["clustering"])
    return (s > 0 or (s == 0 and r["start"]["inclusive"])) and (e < 0 or (e == 0 and r["end"]["inclusive"]))


class Index:
    """The index, and this batch's rows not yet committed."""

    def __init__(self, path: str):
        self.schema = schema()
        self.index = tantivy.Index(self.schema, path=path)
        self.writer = self.index.writer()
        self.pending: dict[str, dict | None] = {}  # doc_id -> row, or None: deleted
        self.partition_of: dict[str, tuple] = {}  # doc_id -> keyspace, table, partition

    def searcher(self):
        self.index.reload()
        return self.index.searcher()

    def docs(self, field: str, value: str) -> list[dict]:
        s = self.searcher()
        hits = s.search(tantivy.Query.term_query(self.schema, field, value), 1_000_000).hits
        return [json.loads(s.doc(a)["data"][0]) | {"__id": s.doc(a)["doc_id"][0]} for _, a in hits]

    def row(self, doc_id: str) -> dict | None:
        if doc_id in self.pending:
            return self.pending[doc_id]
        found = self.docs("doc_id", doc_id)
        return found[0]["row"] if found else None

    def upsert(self, ch: cl.Change) -> None:
        """An INSERT or UPDATE: the columns it wrote, over the row's others.
        A non-frozen collection is kept element by element (by its cells'
        paths), so that elements added, removed or replaced are applied
        as Cassandra applies them."""
        doc_id = ident(ch.keyspace, ch.table, ch.key) + (":static" if ch.is_static else "")
        row = dict(self.row(doc_id) or {})
        row.update({k: plain(v) for k, v in ch.key.items()})
        cells: dict[str, list] = {}
        for c in ch.cells:
            cells.setdefault(c.column, []).append(c)
        for name, value in ch.columns.items():
            by_element = name in ch.replaced or any(c.path is not None for c in cells.get(name, ()))
            if not isinstance(value, (list, set, dict)) or not by_element:
                row[name] = plain(value)  # a whole value (frozen, or not a collection)
                continue
            kind = "set" if isinstance(value, set) else "list" if isinstance(value, list) else "map"
            old = row.get(name)
            items = dict(old["items"]) if isinstance(old, dict) and "$c" in old and name not in ch.replaced else {}
            for c in cells.get(name, ()):
                path = json.dumps(plain(c.path))
                if c.tombstone:
                    items.pop(path, None)
                else:
                    items[path] = plain(c.value)
            row[name] = {"$c": kind, "items": items}
        self.pending[doc_id] = row
        self.partition_of[doc_id] = (ch.keyspace, ch.table, ident(ch.keyspace, ch.table, ch.partition_key))

    def delete(self, doc_id: str) -> None:
        self.pending[doc_id] = None

    def commit(self) -> None:
        for doc_id, row in self.pending.items():
            self.writer.delete_documents_by_term("doc_id", doc_id)
            if row is None:
                continue
            keyspace, table, partition = self.partition_of[doc_id]
            body = " ".join(str(v) for v in row.values() if isinstance(v, str))
            self.writer.add_document(
                tantivy.Document(
                    doc_id=doc_id,
                    table=f"{keyspace}.{table}",
                    partition=partition,
                    body=body,
                    data=json.dumps({"row": row}),
                )
            )
        self.writer.commit()
        self.pending.clear()


def sync(cdc_raw: str, index_dir: str, checkpoint: str, idle_exit: float | None, keys=None) -> int:
    index = Index(index_dir)
    changes = 0
    watcher = cl.Watcher(cdc_raw, checkpoint=checkpoint, idle_timeout=idle_exit, keys=keys)
    for event in watcher:
        if not isinstance(event, cl.Batch):
            print(f"search_sync: {event!r}")  # losses, damage, lifecycle: reported
            continue
        for ch in event:
            changes += 1
            if ch.kind in ("insert", "update"):
                index.upsert(ch)  # a static row: one document for its partition
            elif ch.kind == "delete":
                index.delete(ident(ch.keyspace, ch.table, ch.key))
            else:
                # A partition deletion, or a range of its rows: every row of
                # the partition already indexed or pending is looked at.
                index.commit()
                partition = ident(ch.keyspace, ch.table, ch.key)
                for doc in index.docs("partition", partition):
                    row = doc["row"]
                    if doc["__id"].endswith(":static") and ch.kind == "delete_range":
                        continue
                    r = ch.range  # None for a partition deletion
                    if r is None or in_range({n: value_of(row[n], r, n) for n in r["columns"]}, r):
                        index.delete(doc["__id"])
        for ev in event.schema_events:
            if isinstance(ev, cl.Truncation) and ev.table is not None:
                index.commit()
                for doc in index.docs("table", f"{ev.keyspace}.{ev.table}"):
                    index.delete(doc["__id"])
        index.commit()
        event.ack()  # the checkpoint, once the index holds the batch
    return changes


def column_value(stored):
    """A stored column as its value: a collection kept by its elements'
    paths made a list (in its elements' order), a set or a map again."""
    if not (isinstance(stored, dict) and "$c" in stored):
        return stored
    items = {json.loads(p): v for p, v in stored["items"].items()}
    if not items:
        return None  # an empty collection is null in Cassandra
    if stored["$c"] == "list":
        # Cassandra's timeuuid order: the time, then the rest as signed bytes.
        def order_key(p):
            u = uuid.UUID(p)
            return (u.time, tuple(b - 256 if b > 127 else b for b in u.bytes[8:]))

        order = sorted(items, key=order_key)
        return [items[p] for p in order]
    if stored["$c"] == "set":
        return sorted(items, key=repr)
    return {str(k): v for k, v in items.items()}


def value_of(stored, r: dict, name: str):
    """A stored clustering value back in the type of the range's bounds."""
    sample = next((b[r["columns"].index(name)] for b in (r["start"]["clustering"], r["end"]["clustering"])
                   if len(b) > r["columns"].index(name)), None)
    if isinstance(sample, dt.datetime):
        return dt.datetime.fromisoformat(stored)
    if isinstance(sample, uuid.UUID):
        return uuid.UUID(stored)
    if isinstance(sample, bytes):
        return bytes.fromhex(stored[2:])
    if isinstance(sample, decimal.Decimal):
        return decimal.Decimal(stored)
    return stored


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cdc_raw")
    p.add_argument("index_dir")
    p.add_argument("checkpoint")
    p.add_argument("--idle-exit", type=float, default=None)
    p.add_argument("--key", action="append", default=[], help="ALIAS=HEX: an AES key of encrypted segments")
    a = p.parse_args()
    keys = {k.split("=", 1)[0]: bytes.fromhex(k.split("=", 1)[1]) for k in a.key}
    n = sync(a.cdc_raw, a.index_dir, a.checkpoint, a.idle_exit, keys or None)
    print(f"search_sync: {n} changes applied")


if __name__ == "__main__":
    main()
