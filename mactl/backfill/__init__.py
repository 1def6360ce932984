"""RFS backfill: move every live document of a snapshot's shards to the target cluster.

The pieces, each in a module of its own:
- `spec`: `JobSpec`, everything a worker needs, built from the stage inputs;
- `units`: what a work unit is (one index shard of the snapshot);
- `prepare`: registers a stage's units and sampling thresholds in its working-state index;
- `leases`: who owns which unit, with optimistic concurrency (`if_seq_no`/`if_primary_term`);
- `sampling`, `doc_transforms`: which documents go, and in what shape;
- `bulk`, `retry`: batched, throttled `_bulk` writes that wait out target outages;
- `deadletter`: rejected documents as NDJSON in a folder or on S3;
- `worker`: one process's claim / read / write / checkpoint loop;
- `coordinator`: what `apply` runs (start local worker processes, watch the leases);
- `progress`, `verify`: docs/s and ETA, and the exit check on the target's counts;
- `resend`, `rollback`: `resend-failed`, and undoing what the stage wrote.

This package must not read or write the mactl state document and must not parse the
user's config: the provider and the CLI hand it a `JobSpec`. Snapshot bytes are read only
through `mactl.snapshot_reader` (see `source`).
"""
