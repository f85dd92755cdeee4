"""The README's first Python program: follows the repository's CDC fixture
(`testdata/cdc_raw`) and prints each change. Run from the repository's root:
`python python/examples/quickstart.py`."""

import cassandra_commitlog as cl

schema = open("testdata/cdc_schema.cql").read()
watcher = cl.Watcher("testdata/cdc_raw", schema=schema, idle_timeout=1.0)
for event in watcher:
    if isinstance(event, cl.Batch):
        for change in event:
            print(change.kind, f"{change.keyspace}.{change.table}", change.key, change.columns)
        event.ack()  # saves the checkpoint (checkpoint=PATH); cleanup may follow
    else:
        print(event)  # LostSegment, Damaged, Abandoned, IdxMismatch, Cleaned, ...
