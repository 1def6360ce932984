"""The state layer: what has been done, where it is kept, and who may change it.

`document` defines the state as data (one JSON document: lineage, serial, stages,
history). `backends` store it (local file, S3) with atomic, conditional writes;
`locking` keeps two writers apart. The engine reads and writes state only through
`open_state(...)`/`Backend`; nothing else touches the files or objects. This layer
knows nothing of configs, plans or providers.
"""
