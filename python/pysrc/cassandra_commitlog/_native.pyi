"""Type stubs of the extension module (`cassandra_commitlog._native`).

Values (`Change.key`, `Change.columns`, `Cell.value`) are the Python types
the DataStax `cassandra-driver` returns for each CQL type; see the README's
Python section for the table. They are typed `Any` here.
"""

import datetime
from collections.abc import Callable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Optional, Union, final

__all__ = [
    "CommitLogError",
    "read_segment",
    "Watcher",
    "Batch",
    "Change",
    "Cell",
    "Loss",
    "Entry",
    "SegmentRead",
    "SchemaChange",
    "Truncation",
    "SchemaNotApplied",
    "LostSegment",
    "Damaged",
    "Abandoned",
    "IdxMismatch",
    "IdxBackwards",
    "IdxMalformed",
    "Cleaned",
    "CleanupFailed",
    "Date",
    "Time",
    "Duration",
]

_StrPath = Union[str, PathLike[str]]

#: A CQL value as the driver gives it (int, str, bytes, float, bool,
#: decimal.Decimal, uuid.UUID, datetime.datetime, ipaddress addresses,
#: Date, Time, Duration, list, set, dict, tuple, None).
_Value = Any

_ChangeKind = Literal["insert", "update", "delete", "delete_partition", "delete_range"]

class CommitLogError(Exception):
    """An error of the reader: its message says where and what."""

    #: The file, where known.
    file: Optional[str]
    #: The segment's id, where known.
    segment_id: Optional[int]
    #: The file offset, where known.
    offset: Optional[int]
    #: The logical commit-log position, where known.
    position: Optional[int]

@final
class Change:
    """One change: a row written or deleted, a partition or a range deleted."""

    #: `insert` (a row with its marker), `update`, `delete` (a row),
    #: `delete_partition` or `delete_range`.
    @property
    def kind(self) -> _ChangeKind: ...
    @property
    def keyspace(self) -> str: ...
    @property
    def table(self) -> str: ...
    #: The static row (`key` then holds the partition key only).
    @property
    def is_static(self) -> bool: ...
    #: The primary key of a row change (a clustering column of a deleted
    #: row prefix may be None); the partition key otherwise.
    @property
    def key(self) -> dict[str, _Value]: ...
    #: The partition key: the first columns of `key`.
    @property
    def partition_key(self) -> dict[str, _Value]: ...
    #: Each column written: its value; a non-frozen collection: the live
    #: elements written (see `replaced`); None: deleted or null.
    @property
    def columns(self) -> dict[str, _Value]: ...
    #: Non-frozen collections the write replaced whole (not only added
    #: to): column -> the timestamp of the deletion that cleared them.
    @property
    def replaced(self) -> dict[str, int]: ...
    #: A range deletion's bounds, else None: `{"start": {"clustering":
    #: [...], "inclusive": bool}, "end": {...}, "columns": [names],
    #: "order": ["asc" | "desc", ...]}`.
    @property
    def range(self) -> Optional[dict[str, Any]]: ...
    #: The row marker an `INSERT` writes: `{"timestamp", "ttl",
    #: "expires_at"}`, or None.
    @property
    def liveness(self) -> Optional[dict[str, Optional[int]]]: ...
    #: A deletion's `{"timestamp", "local_deletion_time"}`, or None.
    @property
    def deletion(self) -> Optional[dict[str, int]]: ...
    #: The write's timestamp (microseconds since the epoch).
    @property
    def timestamp(self) -> Optional[int]: ...
    #: The row's (or its first expiring cell's) TTL in seconds.
    @property
    def ttl(self) -> Optional[int]: ...
    #: The partition update's digest (32 hex digits): the same on every
    #: replica, to drop the copies of a replicated write.
    @property
    def digest(self) -> str: ...
    @property
    def segment_id(self) -> int: ...
    #: The entry's commit-log position (the logical offset just past it).
    @property
    def position(self) -> int: ...
    #: Every cell of the change as written (decoded when asked).
    @property
    def cells(self) -> list[Cell]: ...

@final
class Cell:
    """One cell of a change."""

    column: str
    #: A collection element's path (list: its time-based id as a UUID; set:
    #: the element; map: the key; UDT: the field name), else None.
    path: Optional[_Value]
    #: The value; None for a tombstone.
    value: Optional[_Value]
    #: Microseconds since the epoch.
    timestamp: int
    ttl: Optional[int]
    #: Expiry, seconds since the epoch.
    expires_at: Optional[int]
    tombstone: bool
    #: A tombstone's deletion time, seconds since the epoch.
    local_deletion_time: Optional[int]
    #: A cell of a dropped column.
    dropped: bool
    #: A counter cell's shards: `(counter_id, clock, count)`, else None.
    shards: Optional[list[tuple[Any, int, int]]]

@final
class Loss:
    """Data that could not be read: an entry, the rest of a section, a section."""

    segment_id: int
    #: First logical position lost.
    start: int
    #: Logical position just past the loss.
    end: int
    #: What was found.
    detail: str
    #: File offset of the section's sync marker.
    section_offset: int
    #: A notice of damage read around (nothing lost).
    repaired: bool

@final
class SchemaChange:
    """The schema changed (a DDL in the log)."""

    keyspace: str
    version: int
    created: list[str]
    altered: list[str]
    dropped: list[str]
    types: list[str]
    segment_id: Optional[int]
    position: Optional[int]

@final
class Truncation:
    """A `TRUNCATE`: a sink clears its copy of the table."""

    keyspace: Optional[str]
    table: Optional[str]
    table_id: str
    #: The commit-log position Cassandra recorded with it.
    truncated_segment_id: int
    truncated_position: int
    #: Milliseconds since the epoch.
    truncated_at: Optional[int]
    segment_id: Optional[int]
    position: Optional[int]

@final
class SchemaNotApplied:
    """A schema mutation that could not be applied (decoding goes on)."""

    error: str

_SchemaEvent = Union[SchemaChange, Truncation, SchemaNotApplied]

@final
class Entry:
    """One entry of a segment: its changes, and what its decoding found."""

    segment_id: int
    position: int
    changes: list[Change]
    schema_events: list[_SchemaEvent]
    #: Why (part of) the entry did not decode, if it did not.
    error: Optional[str]

@final
class SegmentRead:
    """What `read_segment` found."""

    segment_id: int
    entries: list[Entry]
    losses: list[Loss]
    #: How the walk ended: `clean`, `truncated` or `corrupt`.
    tail: str
    tail_detail: str

def read_segment(
    path: _StrPath,
    keys: Optional[Mapping[str, bytes]] = None,
    schema: Optional[str] = None,
    include_system: bool = False,
) -> SegmentRead:
    """Reads one segment whole: its entries decoded into changes (the schema
    from the log, started from `schema`, CQL `DESCRIBE` text, if given), and
    what was lost. `keys`: alias -> AES key, for encrypted segments.
    Raises `CommitLogError` when the file cannot be opened or is not a
    segment; damage is a `Loss`, not an exception."""

@final
class Batch:
    """A batch of changes: the newly durable part of one segment. Iterate it
    for its changes; `ack()` once they are processed."""

    segment_id: int
    #: Consumed before this batch: `(segment_id, position)`.
    start: tuple[int, int]
    #: Consumed with this batch.
    end: tuple[int, int]
    #: The batch finishes its segment.
    completed: bool
    changes: list[Change]
    #: Schema changes and truncations the batch's last entry made.
    schema_events: list[_SchemaEvent]
    #: Data lost to damage in the batch's range.
    losses: list[Loss]
    #: Entries that did not decode, and why.
    errors: list[str]
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Change]: ...
    def ack(self) -> None:
        """Saves the checkpoint (durably, with the schema state) and
        acknowledges the batch: its segment may then be cleaned up."""

@final
class LostSegment:
    """A segment holding CDC data vanished before it was finished."""

    segment_id: int
    from_position: int
    to_position: Optional[int]

@final
class Damaged:
    """A segment is damaged where its data was durable, or unreadable: not
    read further, its files kept."""

    segment_id: int
    position: int
    detail: str

@final
class Abandoned:
    """A segment a crash left unfinished was read to its end and is finished."""

    segment_id: int
    #: The offset its idx stayed at.
    idx_offset: int
    #: Where its entries end.
    read_to: int

@final
class IdxMismatch:
    """A completed segment ends elsewhere than its idx says (a replay
    writes the physical length)."""

    segment_id: int
    idx_offset: int
    end: int
    file_len: int
    #: `PhysicalLength` (the replay's rewrite) or `Other`.
    cause: str

@final
class IdxBackwards:
    """An idx offset went backwards: ignored."""

    segment_id: int
    previous: int
    found: int

@final
class IdxMalformed:
    """An idx file not in Cassandra's format: ignored until it is."""

    detail: str

@final
class Cleaned:
    """A finished, acknowledged segment was cleaned up."""

    segment_id: int

@final
class CleanupFailed:
    """The cleanup hook failed; it is tried again later."""

    segment_id: int
    error: str

_Event = Union[Batch, LostSegment, Damaged, Abandoned, IdxMismatch, IdxBackwards, IdxMalformed, Cleaned, CleanupFailed]

@final
class Watcher:
    """Follows a `cdc_raw` directory: iterate it for batches and events.

    - `checkpoint`: a file to resume from and save to (on `Batch.ack()`);
    - `schema_from_log`: follow the schema in the log (DDLs), starting from
      `schema` (CQL `DESCRIBE` text) if given; with False, `schema` is
      required and fixed;
    - `keys`: alias -> AES key, for encrypted segments;
    - `cleanup`: what to do with a finished, acknowledged segment:
      `"delete"`, `"archive:DIR"` or a callable `(log_path, idx_path)`;
      None keeps the files;
    - `idle_timeout`: seconds with nothing new after which iteration stops
      (None: follow for ever);
    - `abandoned_after`: seconds a crash-left segment waits, once a newer
      one is complete, before it is read to its end (None: never);
    - `include_system`: also Cassandra's own keyspaces;
    - `max_batch`: entries in a batch at most.
    """

    def __new__(
        cls,
        cdc_raw: _StrPath,
        checkpoint: Optional[_StrPath] = None,
        schema_from_log: bool = True,
        schema: Optional[str] = None,
        keys: Optional[Mapping[str, bytes]] = None,
        cleanup: Union[None, str, Callable[[Path, Path], Any]] = None,
        idle_timeout: Optional[float] = None,
        abandoned_after: Optional[float] = 10.0,
        include_system: bool = False,
        max_batch: int = 4096,
    ) -> Watcher: ...
    def __iter__(self) -> Watcher: ...
    def __next__(self) -> _Event: ...
    def metrics(self) -> dict[str, Any]:
        """Consumed and durable positions, lag, segments awaiting cleanup,
        damaged, abandoned, and the segment the abandonment rule holds back."""
    def close(self) -> None:
        """Stops watching (files are closed; batches already given stay valid)."""

@final
class Date:
    """A CQL `date`: days since 1970-01-01 (as `cassandra.util.Date`)."""

    def __new__(cls, value: Union[int, datetime.date, Date]) -> Date: ...
    @property
    def days_from_epoch(self) -> int: ...
    def date(self) -> datetime.date:
        """The `datetime.date` (ValueError outside years 1 to 9999)."""

@final
class Time:
    """A CQL `time`: nanoseconds since midnight (as `cassandra.util.Time`)."""

    def __new__(cls, value: Union[int, datetime.time, Time]) -> Time: ...
    @property
    def nanosecond_time(self) -> int: ...
    @property
    def hour(self) -> int: ...
    @property
    def minute(self) -> int: ...
    @property
    def second(self) -> int: ...
    @property
    def nanosecond(self) -> int: ...
    def time(self) -> datetime.time:
        """The `datetime.time` (microseconds: the nanoseconds below are cut)."""

@final
class Duration:
    """A CQL `duration` (as `cassandra.util.Duration`)."""

    def __new__(cls, months: int = 0, days: int = 0, nanoseconds: int = 0) -> Duration: ...
    @property
    def months(self) -> int: ...
    @property
    def days(self) -> int: ...
    @property
    def nanoseconds(self) -> int: ...
