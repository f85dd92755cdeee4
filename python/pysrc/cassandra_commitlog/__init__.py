"""Apache Cassandra's CDC change stream as Python objects.

`read_segment(path)` reads one commit-log segment; `Watcher(cdc_raw,
checkpoint=...)` follows a `cdc_raw` directory, yielding `Batch` objects of
`Change` objects (and events), each batch acknowledged with `ack()` once
processed. Values are the Python types the DataStax `cassandra-driver`
returns (see the README's Python section for the mapping).
"""

from . import types
from ._native import (
    Abandoned,
    Batch,
    Cell,
    Change,
    Cleaned,
    CleanupFailed,
    CommitLogError,
    Damaged,
    Entry,
    IdxBackwards,
    IdxMalformed,
    IdxMismatch,
    Loss,
    LostSegment,
    SchemaChange,
    SchemaNotApplied,
    SegmentRead,
    Truncation,
    Watcher,
    read_segment,
)
from .types import Date, Duration, Time

__all__ = [
    "Abandoned",
    "Batch",
    "Cell",
    "Change",
    "Cleaned",
    "CleanupFailed",
    "CommitLogError",
    "Damaged",
    "Date",
    "Duration",
    "Entry",
    "IdxBackwards",
    "IdxMalformed",
    "IdxMismatch",
    "Loss",
    "LostSegment",
    "SchemaChange",
    "SchemaNotApplied",
    "SegmentRead",
    "Time",
    "Truncation",
    "Watcher",
    "read_segment",
    "types",
]
