"""The search example (`examples/search_sync.py`) on a real capture: the
full-text index it keeps holds exactly the rows of Cassandra's `SELECT *`
(`final_state.jsonl`, through the same JSON form), after upserts,
collection adds and removes, row, partition and range deletions (a DESC
clustering column among them); restarted, it goes on from its checkpoint."""

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import tantivy  # noqa: F401 (the example's index: `pip install ./python[examples]`)
from corpus import Schema, from_driver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "search_sync.py"


def load_example():
    spec = importlib.util.spec_from_file_location("search_sync", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_sync"] = module
    spec.loader.exec_module(module)
    return module


def indexed(ex, index_dir: Path, schema: Schema) -> dict:
    """Table -> sorted JSON of every row the index holds, statics merged."""
    ix = tantivy.Index(ex.schema(), path=str(index_dir))
    s = ix.searcher()
    docs = [s.doc(a) for _, a in s.search(tantivy.Query.all_query(), 1_000_000).hits]
    rows, statics = {}, {}
    for d in docs:
        doc_id, row = d["doc_id"][0], json.loads(d["data"][0])["row"]
        table = d["table"][0].split(".", 1)[1]
        row = {k: ex.column_value(v) for k, v in row.items()}
        if doc_id.endswith(":static"):
            statics[(table, d["partition"][0])] = row
        else:
            rows.setdefault(table, []).append((d["partition"][0], row))
    out = {}
    for table, cols in schema.columns.items():
        names = [c["column"] for c in cols]
        static_names = [c["column"] for c in cols if c["kind"] == "static"]
        full = []
        partitions_with_rows = set()
        for partition, row in rows.get(table, []):
            partitions_with_rows.add(partition)
            r = {n: row.get(n) for n in names}
            r.update({n: v for n, v in statics.get((table, partition), {}).items() if n in static_names})
            full.append(r)
        for (t, partition), srow in statics.items():
            if t == table and partition not in partitions_with_rows and any(srow.get(n) is not None for n in static_names):
                full.append({n: srow.get(n) for n in names})
        out[table] = sorted(json.dumps(r, sort_keys=True) for r in full)
    return out


def expected(ex, state: Path, schema: Schema) -> dict:
    out = {}
    for line in state.read_text().splitlines():
        r = json.loads(line)
        if "row_count" in r:
            out[r["table"]] = r["row_count"]
            continue
        row = {c: ex.plain(from_driver(schema, schema.type_of(r["table"], c), v)) for c, v in r["row"].items()}
        out.setdefault(r["table"], []).append(json.dumps(row, sort_keys=True))
    return {t: sorted(v) if isinstance(v, list) else v for t, v in out.items()}


def test_the_index_holds_the_rows_cassandra_returned(corpus, tmp_path):
    ex = load_example()
    capture = corpus / "cassandra-4.0.0"
    src = tmp_path / "cdc_raw"
    shutil.copytree(capture / "cdc_raw_after_shutdown", src)
    for f in src.iterdir():
        os.chmod(f, 0o644)
    index_dir, cp = tmp_path / "index", tmp_path / "cp.json"
    index_dir.mkdir()
    n = ex.sync(str(src), str(index_dir), str(cp), idle_exit=0.3)
    assert n > 1500
    # Restarted: nothing new to apply, nothing applied twice.
    assert ex.sync(str(src), str(index_dir), str(cp), idle_exit=0.3) == 0
    schema = Schema(capture / "schema_after_phase2", "cdc_test")
    got = indexed(ex, index_dir, schema)
    want = expected(ex, capture / "schema_after_phase2" / "final_state.jsonl", schema)
    for table, rows in want.items():
        if isinstance(rows, int):
            assert len(got[table]) == rows, table
        else:
            assert got[table] == rows, table
