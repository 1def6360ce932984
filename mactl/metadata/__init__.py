"""Index metadata migration: templates, indices and aliases, from a source to a target.

`items` reads the source's metadata (from snapshot files or the live source) as a list
of `Item`s; `version_transforms` and `user_transforms` reshape them; `evaluate` turns
the stage inputs into the exact bodies that would be sent, without writing anything;
`target` maps items onto the target's REST API (fetch, compare, create, delete);
`report` renders the per-item outcome. Only the metadata provider
(`mactl.providers.metadata`) calls the writing half of `target`. Nothing here touches
state or the plan.
"""
