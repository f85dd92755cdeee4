"""Cassandra's own legacy commit-log test segments (3.0.13, 3.0.29, 3.4
encrypted with AES-128 and AES-256, 4.0.11) read with `read_segment`: the
cell count and additive hash of each set's `hash.txt`, the criterion of
Cassandra's `CommitLogUpgradeTest`, from the changes' cells."""

import pytest

import cassandra_commitlog as cl
from corpus import keys_for

FOLDERS = ["3.0.13-encrypted", "3.0.29-encrypted", "3.4-encrypted", "3.4-encrypted-2015", "4.0.11-encrypted"]


def properties(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_legacy_set_gives_the_cells_and_hash_of_hash_txt(corpus, folder):
    d = corpus / "legacy" / folder
    want = properties((d / "hash.txt").read_text())
    # The table's schema is in the log (the 3.0 sets name the clustering
    # column `name` and type `val` as text, the later ones `col` and blob).
    cells, h = 0, 0
    for log in sorted(d.glob("CommitLog-*.log"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        read = cl.read_segment(str(log), keys=keys_for(f"legacy/{folder}") or None)
        assert not read.losses, read.losses
        for entry in read.entries:
            assert entry.error is None, entry.error
            for ch in entry.changes:
                clustering = [v for k, v in ch.key.items() if k not in ch.partition_key]
                if ch.table != "Standard1" or not clustering or not str(clustering[0]).startswith("name"):
                    continue
                for cell in ch.cells:
                    cells += 1
                    value = cell.value.encode() if isinstance(cell.value, str) else cell.value or b""
                    for i, b in enumerate(value):
                        h = (h + (b << (8 * (i % 4)))) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h  # a Java int
    assert (cells, h) == (int(want["cells"]), int(want["hash"]))
