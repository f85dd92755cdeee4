"""On every corpus capture, the changes the package gives, rebuilt into
tables with Cassandra's rules (an independent materializer in
`corpus.py`), equal what Cassandra's `SELECT *` returned through the
DataStax driver (`final_state.jsonl`), compared as typed Python values."""

import shutil

import pytest

import cassandra_commitlog as cl
from corpus import CAPTURES, Schema, Tables, final_state, keys_for, read_times


def changes_of(cdc_raw, keys=None):
    """Every change a watcher gives of a directory, read until idle."""
    w = cl.Watcher(str(cdc_raw), keys=keys, idle_timeout=0.3)
    out = []
    for event in w:
        if isinstance(event, cl.Batch):
            assert not event.losses, event.losses
            assert not event.errors, event.errors
            out.extend(event)
            event.ack()
        else:
            assert not isinstance(event, (cl.Damaged, cl.LostSegment)), event
    return out


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("phase", [1, 2])
def test_a_capture_rebuilds_the_tables_cassandra_returned(corpus, capture, phase):
    folder = corpus / capture
    state = folder / f"schema_after_phase{phase}"
    schema = Schema(state, "cdc_test")
    cdc_raw = folder / ("cdc_raw_live" if phase == 1 else "cdc_raw_after_shutdown")
    tables = Tables(schema)
    changes = changes_of(cdc_raw, keys_for(capture))
    for ch in changes:
        tables.apply(ch)
    want = final_state(folder, state / "final_state.jsonl", schema)
    got = tables.state(read_times()[(capture, phase)], row_counts={"bulk"})
    assert set(got) == set(want)
    for table in want:
        assert got[table] == want[table], f"{capture} phase {phase}: table {table}"


@pytest.mark.parametrize(
    "capture,keyspace,folder",
    [
        ("cassandra-4.0.0-crash-plain", "crash", "cdc_raw_final"),
        ("cassandra-4.0.0-crash-lz4rollover", "crash", "cdc_raw_final"),
        ("cassandra-4.0.0-rf3", "rf3", "node1/cdc_raw_final"),
        ("cassandra-4.0.0-rf3", "rf3", "node2/cdc_raw_final"),
        ("cassandra-4.0.0-rf3", "rf3", "node3/cdc_raw_final"),
    ],
)
def test_crash_and_replica_captures_rebuild_the_tables(corpus, tmp_path, capture, keyspace, folder):
    import json

    cap = corpus / capture
    schema = Schema(cap / "schema", keyspace)
    copy = tmp_path / "cdc_raw"
    shutil.copytree(cap / folder, copy)
    tables = Tables(schema)
    for ch in changes_of(copy):
        tables.apply(ch)
    now = json.loads((cap / "read_time.json").read_text())["read_time_s"]
    want = final_state(cap, cap / "final_state.jsonl", schema)
    got = tables.state(now)
    for table in want:
        assert got.get(table) == want[table], f"{capture}/{folder}: table {table}"
