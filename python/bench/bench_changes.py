"""Changes per second through the Python API, against the way a Python
user reads the change stream today: the `dump` example's JSON lines piped
into `json.loads`. Both on the benchmark captures (`bench-4.0.0`, plain,
132,120 changes; `bench-4.0.0-lz4`, 198,212), alternated in one run, the
best of `--rounds` each; every change's key and columns are materialized
as Python objects on both sides.

    python python/bench/bench_changes.py [--dump target/release/examples/dump] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import cassandra_commitlog as cl

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def python_api(capture: Path) -> int:
    schema = (capture / "schema" / "schema_internals.cql").read_text()
    n = 0
    for event in cl.Watcher(str(capture / "cdc_raw"), schema=schema, idle_timeout=0.0):
        if isinstance(event, cl.Batch):
            for ch in event:
                ch.key, ch.columns  # noqa: B018 (the objects a consumer reads)
                n += 1
    return n


def dump_json(capture: Path, dump: str) -> int:
    schema = capture / "schema" / "schema_internals.cql"
    cmd = [dump, "--schema", str(schema), "--schema-from-log", str(capture / "cdc_raw")]
    n = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        for line in p.stdout:
            d = json.loads(line)
            if d.get("keyspace", "").startswith("system"):
                continue  # Cassandra's own tables (the API leaves them out too)
            for u in d.get("updates", ()):
                n += len(u.get("rows", ())) + len(u.get("range_tombstones", ())) + (1 if u.get("partition_deletion") else 0)
    return n


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--dump", default=str(ROOT / "target" / "release" / "examples" / "dump"))
    a.add_argument("--rounds", type=int, default=3)
    args = a.parse_args()
    print("| capture | changes | Python API | dump + json.loads | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name in ("bench-4.0.0", "bench-4.0.0-lz4"):
        capture = CORPUS / name
        best = {"api": float("inf"), "json": float("inf")}
        counts = {}
        for _ in range(args.rounds):
            for kind, run in (("api", lambda: python_api(capture)), ("json", lambda: dump_json(capture, args.dump))):
                t = time.perf_counter()
                counts[kind] = run()
                best[kind] = min(best[kind], time.perf_counter() - t)
        assert counts["api"] == counts["json"], counts
        n = counts["api"]
        api, js = n / best["api"], n / best["json"]
        print(f"| `{name}` | {n:,} | {best['api']:.2f} s, {api:,.0f}/s | {best['json']:.2f} s, {js:,.0f}/s | {api / js:.2f}x |")


if __name__ == "__main__":
    main()
