"""The watcher from Python: resuming from its checkpoint without repeats,
cleanup only of acknowledged segments, losses as objects, errors as
exceptions that say where."""

import json
import os
import shutil

import pytest

import cassandra_commitlog as cl


def copy(corpus, folder, tmp_path):
    dst = tmp_path / "cdc_raw"
    shutil.copytree(corpus / folder, dst)
    for f in dst.iterdir():
        os.chmod(f, 0o644)
    return dst


def ident(ch):
    return (ch.segment_id, ch.position, ch.digest, ch.kind, repr(ch.key))


def test_a_watcher_resumes_after_its_checkpoint_without_repeats(corpus, tmp_path):
    d = copy(corpus, "cassandra-4.0.0-lz4/cdc_raw_after_shutdown", tmp_path)
    everything = []
    for e in cl.Watcher(str(d), idle_timeout=0.3, max_batch=50):
        if isinstance(e, cl.Batch):
            everything.extend(ident(c) for c in e)
    assert len(everything) > 1500
    cp = tmp_path / "cp.json"
    seen, runs = [], 0
    while True:
        runs += 1
        w = cl.Watcher(str(d), checkpoint=str(cp), idle_timeout=0.3, max_batch=50)
        batches = 0
        for e in w:
            if not isinstance(e, cl.Batch):
                continue
            seen.extend(ident(c) for c in e)
            e.ack()
            batches += 1
            if batches == 7:
                break  # a consumer stopped (and restarted) after 7 batches
        w.close()
        if batches < 7:
            break
    assert runs > 3
    assert seen == everything, "the runs together give every change once, in order"


def test_cleanup_only_after_ack(corpus, tmp_path):
    d = copy(corpus, "cassandra-4.0.0/cdc_raw_after_shutdown", tmp_path)
    cleaned = []
    w = cl.Watcher(str(d), idle_timeout=0.3, cleanup=lambda log, idx: (cleaned.append(str(log)), os.remove(log), os.remove(idx)))
    first = next(e for e in w if isinstance(e, cl.Batch))
    assert not cleaned, "nothing acknowledged: nothing cleaned"
    first.ack()
    for e in w:
        if isinstance(e, cl.Batch):
            e.ack()
    idx_left = [f for f in os.listdir(d) if f.endswith("_cdc.idx")]
    assert idx_left == [] and len(cleaned) == 7, (idx_left, cleaned)
    assert w.metrics()["lag_bytes"] == 0


def test_a_damaged_entry_is_a_loss_not_an_exception(corpus, tmp_path):
    d = copy(corpus, "cassandra-4.0.0/cdc_raw_after_shutdown", tmp_path)
    seg = sorted(f for f in d.iterdir() if f.name.endswith(".log"))[0]
    data = bytearray(seg.read_bytes())
    data[20 + 8 + 12 + 30] ^= 0x40  # inside the first entry's mutation
    seg.write_bytes(bytes(data))
    r = cl.read_segment(str(seg))
    assert len(r.losses) == 1
    loss = r.losses[0]
    assert isinstance(loss, cl.Loss) and "CRC" in loss.detail and loss.start == 28 and loss.end > loss.start
    events = [e for e in cl.Watcher(str(d), idle_timeout=0.3) if isinstance(e, cl.Batch)]
    assert sum(len(b.losses) for b in events) == 1


def test_errors_say_where(corpus, tmp_path):
    with pytest.raises(cl.CommitLogError) as e:
        cl.read_segment(str(tmp_path / "CommitLog-7-123.log"))
    assert e.value.file.endswith("CommitLog-7-123.log") and e.value.segment_id == 123
    seg = corpus / "cassandra-4.0.0-encrypted/cdc_raw_after_shutdown/CommitLog-7-1795434207345.log"
    with pytest.raises(cl.CommitLogError, match="testing:1") as e:
        cl.read_segment(str(seg))  # no key for its alias
    assert e.value.segment_id == 1795434207345
    with pytest.raises(cl.CommitLogError) as e:
        cl.Watcher(str(tmp_path / "missing"))
    assert e.value.file.endswith("missing")
    with pytest.raises(ValueError, match="schema"):
        cl.Watcher(str(tmp_path), schema="CREATE TABLE nope")
    for bad in [-1.0, float("inf"), float("nan")]:
        with pytest.raises(ValueError, match="idle_timeout"):
            cl.Watcher(str(tmp_path), idle_timeout=bad)
        with pytest.raises(ValueError, match="abandoned_after"):
            cl.Watcher(str(tmp_path), abandoned_after=bad)


def test_read_segment_gives_entries_changes_and_schema_events(corpus):
    seg = corpus / "cassandra-4.0.0/cdc_raw_after_shutdown/CommitLog-7-1795433791762.log"
    r = cl.read_segment(str(seg))
    assert r.tail == "clean" and not r.losses
    changes = [c for e in r.entries for c in e.changes]
    assert any(c.table == "scalars" for c in changes)
    ddl = [ev for e in r.entries for ev in e.schema_events if isinstance(ev, cl.SchemaChange)]
    assert any("scalars" in ev.created for ev in ddl)
    system = cl.read_segment(str(seg), include_system=True)
    assert sum(len(e.changes) for e in system.entries) > len(changes)


def test_batches_of_any_size_give_the_same_changes(corpus):
    # A batch is decoded by another thread 256 entries at a time: batches
    # of 200 entries (one chunk each), of a chunk and one, and of sixteen
    # chunks give the same changes in the same order.
    capture = corpus / "bench-4.0.0"
    schema = (capture / "schema" / "schema_internals.cql").read_text()

    def changes(max_batch):
        got, sizes = [], []
        for e in cl.Watcher(str(capture / "cdc_raw"), schema=schema, idle_timeout=0.0, max_batch=max_batch):
            if isinstance(e, cl.Batch):
                sizes.append(len(e))
                got.extend((ch.segment_id, ch.position, ch.kind, ch.table, repr(ch.key), repr(ch.columns)) for ch in e)
        return got, sizes

    reference, _ = changes(200)
    # Each of the capture's entries (the corpus's reference walk) is one
    # statement of one row: one change each.
    entries = sum(
        r["entries"]
        for r in map(json.loads, (corpus / "reference_counts.jsonl").read_text().splitlines())
        if r["folder"] == "bench-4.0.0/cdc_raw"
    )
    assert len(reference) == entries == 132_120
    for max_batch in (257, 4096):
        got, sizes = changes(max_batch)
        assert max(sizes) > 256, "a batch of more than one chunk"
        assert got == reference, max_batch


def test_the_gil_is_released_while_segments_are_read_and_decoded(corpus):
    # A Python thread counts while the main thread is inside one call that
    # reads and decodes a 32 MiB segment (66,074 entries), then one that
    # makes a watcher's first batch: the count moves at least ten times as
    # fast as during a call that holds the GIL throughout (sorting a list).
    import random
    import threading
    import time

    capture = corpus / "bench-4.0.0"
    schema = (capture / "schema" / "schema_internals.cql").read_text()
    segment = sorted((capture / "cdc_raw").glob("*.log"))[0]
    count, stop = [0], threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    def rate(call):
        before, t = count[0], time.perf_counter()
        result = call()
        return result, (count[0] - before) / (time.perf_counter() - t)

    numbers = list(range(2_000_000))
    random.Random(1).shuffle(numbers)
    t = threading.Thread(target=counter)
    t.start()
    try:
        _, holding = rate(numbers.sort)
        read, reading = rate(lambda: cl.read_segment(str(segment), schema=schema))
        w = cl.Watcher(str(capture / "cdc_raw"), schema=schema, idle_timeout=0.0)
        batch, batching = rate(lambda: next(w))
    finally:
        stop.set()
        t.join()
    assert sum(len(e.changes) for e in read.entries) == 66_074
    assert isinstance(batch, cl.Batch) and len(batch) == 4096
    assert reading > 10 * holding, (reading, holding)
    assert batching > 10 * holding, (batching, holding)
