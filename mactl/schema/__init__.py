"""Schemas: the typed shapes every other package agrees on. The bottom floor of mactl.

- one module per stage type holds its inputs model (`snapshot.SnapshotInputs`,
  `backfill.BackfillInputs`, …) and its sub-models (`backfill.Sample`, `capture.FileLog`, …);
- `common`: the building blocks shared with the config file (`Model`, `Auth`,
  `ClusterRef`, `IndexFilter`, `SnapshotRepository`, `TransformSpec`, `LifecycleConfig`);
- `stage`: the plain data of the stage contract (`Progress`; `StageView`, what a library
  may read of a running stage);
- `stages`: each built-in stage type's inputs model.

Where a config block sets a stage's inputs, the model is split in two: `XUserInputs`,
the fields a user writes in that block (the config block class extends it), and a
private `_XWiring` base with what mactl derives from the enclosing config (source,
target, repository…). `class XInputs(XUserInputs, _XWiring)` puts the wiring fields
first. So the config, the providers and the libraries share one definition of every
field, default and limit.

The rule: modules here import only the standard library, pydantic and other
`mactl.schema` modules (`mactl.errors` at most); never `mactl.config`,
`mactl.providers`, `mactl.state` or a library. So everything else can import the typed
inputs without import loops. Validation that needs no network (types, limits,
cross-field checks) lives on the models; checks that need provider logic stay in the
provider's `validate()`. `tests/test_layering.py` enforces the rule.
"""
