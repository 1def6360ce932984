"""Stage addresses as values: their parts, and renaming one name inside them.

`<type>.<source>[.<snapshot>[.<target>.<migration>[.<backfill>]]]` for the pipeline,
`replay|validate.<source>.<target>`, and `<type>.<name>` for workflow steps. An address
may end in an instance key (`metadata.es.snap.os2.m0["rw-pmc"]`); the key is kept as
is and never split, since index names may hold dots.

Pure string work: nothing here knows the config or the state.
"""

from __future__ import annotations

PIPELINE_TYPES = frozenset({"capture", "snapshot", "metadata", "backfill", "replay", "validate"})
WORKFLOW_TYPES = frozenset({"manual", "switchover", "disable_capture", "teardown"})
STAGE_TYPES = PIPELINE_TYPES | WORKFLOW_TYPES

# For each kind of name a `moved` block can rename: stage type → the address segment that holds it.
NAME_SEGMENTS: dict[str, dict[str, int]] = {
    "snapshot": {"snapshot": 2, "metadata": 2, "backfill": 2},
    "target": {"metadata": 3, "backfill": 3, "replay": 2, "validate": 2},
    "migration": {"metadata": 4, "backfill": 4},
    "backfill": {"backfill": 5},
    "step": {t: 1 for t in WORKFLOW_TYPES},
}


def split_instance(address: str) -> tuple[str, str]:
    """(stage address, instance key with its brackets or "")."""
    at = address.find("[")
    return (address, "") if at < 0 else (address[:at], address[at:])


def stage_type(address: str) -> str:
    """The first segment: the stage's type (as written; may not be a known type)."""
    return split_instance(address)[0].split(".", 1)[0]


def is_stage_address(address: str) -> bool:
    """Whether `address` is shaped like a stage address: a known type and non-empty parts."""
    stage, _ = split_instance(address)
    parts = stage.split(".")
    return parts[0] in STAGE_TYPES and len(parts) >= 2 and all(parts)


def rename(address: str, kind: str, old: str, new: str) -> str | None:
    """`address` with the `kind` name `old` replaced by `new`, or None when it holds no such name."""
    stage, instance = split_instance(address)
    parts = stage.split(".")
    index = NAME_SEGMENTS.get(kind, {}).get(parts[0])
    if index is None or index >= len(parts) or parts[index] != old:
        return None
    parts[index] = new
    return ".".join(parts) + instance


def names_of_kind(addresses: list[str] | set[str] | dict[str, object], kind: str) -> set[str]:
    """Every `kind` name that appears in `addresses`."""
    found: set[str] = set()
    for address in addresses:
        parts = split_instance(address)[0].split(".")
        index = NAME_SEGMENTS.get(kind, {}).get(parts[0])
        if index is not None and index < len(parts):
            found.add(parts[index])
    return found
