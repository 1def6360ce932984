"""Rewrite the seed's config shapes into the canonical one, remembering where things came from.

Accepted shapes (all from the seed, `migration-as-a-workflow.md`):
- `targets: [...]` plus `source-migration-configurations: [...]`;
- a single `target: {...}` instead of `targets`;
- a flat single `source` with `static-migration-configs` (and `replayer-config`,
  `capture`, `validation`) at the top level.

Spellings accepted as equals: `snapshot-and-migration-configs` / `static-migration-configs`;
`documentBackfillConfigs` as one object or a list; `indices` as one filter or a list;
`transforms` as one string, one spec, or a list. A snapshot entry either lists
`migrations` or carries one migration's `metadata`/`documentBackfillConfigs` directly
(as the seed's samples do). `indices_toIgnore` (legacy) becomes an `indices` filter
with the opposite mode, and a warning shows the equivalent. The seed's placeholder key
`"No keys are necessary to do this step"` is dropped without complaint.

This module only moves data around and checks the keys of the containers it rewrites;
the values are validated afterwards by the pydantic models, whose error locations map
back to the user's spelling through the recorded `Origins`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mactl.config.issues import ConfigIssue, Loc, Origins, join_path, unknown_key
from mactl.config.model import SnapshotEntry
from mactl.transforms import parse_spec

SEED_PLACEHOLDER = "No keys are necessary to do this step"
SEED_TRANSFORM_PLACEHOLDER = "..."  # the seed's Top-Level Configuration writes `"transforms": "..."`


def _no_transform(spec: Any) -> bool:
    """An empty, null or placeholder transform: the user wrote the key but no transform."""
    if spec is None:
        return True
    return isinstance(spec, str) and spec.strip() in ("", SEED_TRANSFORM_PLACEHOLDER)


def _no_transform_warning(path: str, spec: Any) -> str:
    written = "null" if spec is None else ('the placeholder "..."' if spec.strip() else "empty")
    return f"{path} is {written}: read as no transform. Remove the key, or write a transform there"


SOURCE_LIST_KEY = "source-migration-configurations"
SNAPSHOT_KEYS = ("snapshot-and-migration-configs", "static-migration-configs")
PER_SOURCE_KEYS = ("replayer-config", "capture", "validation")
TOP_KEYS = frozenset(
    {
        "variables",
        "state",
        "targets",
        "target",
        SOURCE_LIST_KEY,
        "source",
        *SNAPSHOT_KEYS,
        *PER_SOURCE_KEYS,
        "workflow",
        "moved",
        "removed",
        "import",
        "allowOutsidePaths",
    }
)
SOURCE_ENTRY_KEYS = frozenset({"source", *SNAPSHOT_KEYS, *PER_SOURCE_KEYS})
# The snapshot entry's own keys come from its model (which follows the snapshot
# provider's inputs); the seed's direct-migration keys and the legacy one are extra.
SNAPSHOT_ENTRY_KEYS = frozenset(
    {info.alias or name for name, info in SnapshotEntry.model_fields.items()}
    | {"indices_toIgnore", "metadata", "documentBackfillConfigs"}
)
# What a snapshot entry keeps as is; the rest is rewritten below.
_SNAPSHOT_OWN_KEYS = SNAPSHOT_ENTRY_KEYS - {
    "migrations",
    "metadata",
    "documentBackfillConfigs",
    "indices_toIgnore",
    "existingSnapshot",
}
MIGRATION_KEYS = frozenset({"name", "metadata", "documentBackfillConfigs"})


@dataclass
class Normalized:
    data: dict[str, Any]
    origins: Origins
    warnings: list[str] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)


def normalize(raw: Any) -> Normalized:
    """Canonical dict for `raw` (already templated). Never raises: problems become issues."""
    out = Normalized(data={}, origins=Origins())
    out.origins.record(("sources",), SOURCE_LIST_KEY)
    if not isinstance(raw, dict):
        out.issues.append(ConfigIssue("", "the config must be a mapping (an object) at the top level"))
        return out
    _Normalizer(out).top(raw)
    return out


class _Normalizer:
    def __init__(self, out: Normalized) -> None:
        self.out = out
        self.origins = out.origins
        self.issues = out.issues

    # -- top level ----------------------------------------------------------------

    def top(self, raw: dict[str, Any]) -> None:
        data = self.out.data
        for key in raw:
            if key not in TOP_KEYS:
                self.issues.append(unknown_key("", str(key), TOP_KEYS))
        for key in ("variables", "state", "workflow", "moved", "removed", "import", "allowOutsidePaths"):
            if key in raw:
                data[key] = raw[key]

        if "targets" in raw and "target" in raw:
            self.issues.append(ConfigIssue("target", "give either `target` or `targets`, not both"))
        if "targets" in raw:
            data["targets"] = raw["targets"]
        elif "target" in raw:
            data["targets"] = [raw["target"]]
            self.origins.record(("targets", 0), "target")
        else:
            self.issues.append(ConfigIssue("targets", "no target: add `targets: [...]` or `target: {endpoint: ...}`"))

        flat_keys = [k for k in (*SNAPSHOT_KEYS, *PER_SOURCE_KEYS) if k in raw]
        if SOURCE_LIST_KEY in raw:
            if "source" in raw:
                self.issues.append(
                    ConfigIssue("source", f"give either `source` (one source) or `{SOURCE_LIST_KEY}`, not both")
                )
            for key in flat_keys:
                self.issues.append(
                    ConfigIssue(key, f"`{key}` belongs inside each `{SOURCE_LIST_KEY}` entry when that list is used")
                )
            entries = raw[SOURCE_LIST_KEY]
            if not isinstance(entries, list):
                data["sources"] = entries  # the model reports the type
                self.origins.record(("sources",), SOURCE_LIST_KEY)
                return
            data["sources"] = [
                self.source_entry(entry, join_path(SOURCE_LIST_KEY, i), ("sources", i))
                for i, entry in enumerate(entries)
            ]
            self.origins.record(("sources",), SOURCE_LIST_KEY)
        elif "source" in raw:
            flat = {k: raw[k] for k in ("source", *flat_keys)}
            data["sources"] = [self.source_entry(flat, "", ("sources", 0))]
        else:
            self.issues.append(
                ConfigIssue(SOURCE_LIST_KEY, f"no source: add `{SOURCE_LIST_KEY}: [...]` or a single `source: {{...}}`")
            )

    # -- one source and what migrates from it ---------------------------------------

    def source_entry(self, entry: Any, path: str, loc: Loc) -> Any:
        self.origins.record(loc, path)
        if not isinstance(entry, dict):
            return entry
        for key in entry:
            if key not in SOURCE_ENTRY_KEYS:
                self.issues.append(unknown_key(path, str(key), SOURCE_ENTRY_KEYS))
        canon: dict[str, Any] = {}
        if "source" in entry:
            canon["source"] = entry["source"]
        snap_keys = [k for k in SNAPSHOT_KEYS if k in entry]
        if len(snap_keys) == 2:
            both = f"give either `{SNAPSHOT_KEYS[0]}` or `{SNAPSHOT_KEYS[1]}`, not both"
            self.issues.append(ConfigIssue(join_path(path, SNAPSHOT_KEYS[1]), both))
        if snap_keys:
            key = snap_keys[0]
            snaps_path = join_path(path, key)
            self.origins.record((*loc, "snapshots"), snaps_path)
            snaps = entry[key]
            if isinstance(snaps, dict):  # one entry written without the list
                canon["snapshots"] = [self.snapshot_entry(snaps, snaps_path, (*loc, "snapshots", 0))]
            elif isinstance(snaps, list):
                canon["snapshots"] = [
                    self.snapshot_entry(s, join_path(snaps_path, i), (*loc, "snapshots", i))
                    for i, s in enumerate(snaps)
                ]
            else:
                canon["snapshots"] = snaps
        if "replayer-config" in entry:
            replayer_path = join_path(path, "replayer-config")
            canon["replayer"] = self.with_transforms(entry["replayer-config"], replayer_path, (*loc, "replayer"))
        if "capture" in entry:
            canon["capture"] = entry["capture"]
            self.origins.record((*loc, "capture"), join_path(path, "capture"))
        if "validation" in entry:
            validation_path = join_path(path, "validation")
            canon["validation"] = self.with_indices(entry["validation"], validation_path, (*loc, "validation"))
        return canon

    def snapshot_entry(self, entry: Any, path: str, loc: Loc) -> Any:
        self.origins.record(loc, path)
        if not isinstance(entry, dict):
            return entry
        for key in entry:
            if key not in SNAPSHOT_ENTRY_KEYS:
                self.issues.append(unknown_key(path, str(key), SNAPSHOT_ENTRY_KEYS))
        canon = self.with_indices({k: v for k, v in entry.items() if k in _SNAPSHOT_OWN_KEYS}, path, loc)
        if "existingSnapshot" in entry:
            existing_path = join_path(path, "existingSnapshot")
            canon["existingSnapshot"] = self.existing_snapshot(
                entry["existingSnapshot"], existing_path, (*loc, "existingSnapshot")
            )
        if "indices_toIgnore" in entry:
            self.legacy_ignore(entry["indices_toIgnore"], canon, path, loc)

        direct = [k for k in ("metadata", "documentBackfillConfigs") if k in entry]
        if "migrations" in entry:
            if direct:
                both = "give either `migrations` or `metadata`/`documentBackfillConfigs` directly, not both"
                self.issues.append(ConfigIssue(join_path(path, direct[0]), both))
            migrations = entry["migrations"]
            mpath = join_path(path, "migrations")
            self.origins.record((*loc, "migrations"), mpath)
            if isinstance(migrations, list):
                canon["migrations"] = [
                    self.migration(m, join_path(mpath, i), (*loc, "migrations", i), MIGRATION_KEYS)
                    for i, m in enumerate(migrations)
                ]
            else:
                canon["migrations"] = migrations
        elif direct:
            # The seed's shape: one migration's blocks sit directly on the snapshot entry.
            canon["migrations"] = [self.migration({k: entry[k] for k in direct}, path, (*loc, "migrations", 0), None)]
        return canon

    def existing_snapshot(self, value: Any, path: str, loc: Loc) -> Any:
        self.origins.record(loc, path)
        if isinstance(value, dict) and isinstance(value.get("repository"), str):
            value = dict(value)
            value["repositoryName"] = value.pop("repository")
            self.origins.record((*loc, "repositoryName"), join_path(path, "repository"))
        return value

    def legacy_ignore(self, value: Any, canon: dict[str, Any], path: str, loc: Loc) -> None:
        ipath = join_path(path, "indices_toIgnore")
        if not isinstance(value, dict):
            self.issues.append(ConfigIssue(ipath, "must be a filter: {names: ..., mode: include|exclude}"))
            return
        for key in value:
            if key not in ("names", "mode"):
                self.issues.append(unknown_key(ipath, str(key), ("names", "mode")))
        mode = value.get("mode", "include")
        if mode not in ("include", "exclude"):
            self.issues.append(ConfigIssue(join_path(ipath, "mode"), f"must be include or exclude (got {mode!r})"))
            return
        names = value.get("names")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        flipped = "exclude" if mode == "include" else "include"
        filters = canon.get("indices")
        if not isinstance(filters, list):
            filters = []
        canon["indices"] = [*filters, {"names": names, "mode": flipped}]
        self.origins.record((*loc, "indices", len(filters)), ipath)
        shown = ", ".join(str(n) for n in names) if isinstance(names, list) else str(names)
        self.out.warnings.append(
            f"{ipath} is a legacy spelling: it {'skips' if mode == 'include' else 'keeps only'} the names it lists. "
            f"Write it as `indices: {{names: [{shown}], mode: {flipped}}}` instead."
        )

    def migration(self, value: Any, path: str, loc: Loc, allowed: frozenset[str] | None) -> Any:
        self.origins.record(loc, path)
        if not isinstance(value, dict):
            return value
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.issues.append(unknown_key(path, str(key), allowed))
        canon: dict[str, Any] = {k: v for k, v in value.items() if k == "name"}
        if "metadata" in value:
            canon["metadata"] = self.stage_block(value["metadata"], join_path(path, "metadata"), (*loc, "metadata"))
        if "documentBackfillConfigs" in value:
            bpath = join_path(path, "documentBackfillConfigs")
            backfills = value["documentBackfillConfigs"]
            self.origins.record((*loc, "backfills"), bpath)
            if isinstance(backfills, dict):
                canon["backfills"] = [self.backfill_block(backfills, bpath, (*loc, "backfills", 0))]
            elif isinstance(backfills, list):
                canon["backfills"] = [
                    self.backfill_block(b, join_path(bpath, i), (*loc, "backfills", i)) for i, b in enumerate(backfills)
                ]
            else:
                canon["backfills"] = backfills
        return canon

    # -- leaf helpers -------------------------------------------------------------

    def backfill_block(self, value: Any, path: str, loc: Loc) -> Any:
        """A backfill block; the deprecated `maxMbps` becomes `maxThroughputMbps` with a warning.

        `maxMbps` used to be applied as megabytes per second per worker; it is now read as
        what its name says, megabits per second for the whole stage, like the replay's.
        """
        value = self.stage_block(value, path, loc)
        if not isinstance(value, dict) or "maxMbps" not in value:
            return value
        value = dict(value)
        old = join_path(path, "maxMbps")
        if "maxThroughputMbps" in value:
            self.issues.append(
                ConfigIssue(old, "give either `maxThroughputMbps` or its deprecated spelling `maxMbps`, not both")
            )
            value.pop("maxMbps")
            return value
        value["maxThroughputMbps"] = value.pop("maxMbps")
        self.origins.record((*loc, "maxThroughputMbps"), old)
        self.out.warnings.append(
            f"{old} is deprecated: write `maxThroughputMbps: {value['maxThroughputMbps']}` instead. It is read as "
            "megabits per second for the whole stage (shared by its workers), as the replay's `maxThroughputMbps`; "
            "before, it was megabytes per second per worker"
        )
        return value

    def stage_block(self, value: Any, path: str, loc: Loc) -> Any:
        """A metadata or backfill block: the seed placeholder dropped, lists made lists."""
        self.origins.record(loc, path)
        if value is None:
            return {}  # `metadata:` with nothing under it means "do it with defaults"
        if not isinstance(value, dict):
            return value
        value = {k: v for k, v in value.items() if k != SEED_PLACEHOLDER}
        return self.with_transforms(self.with_indices(value, path, loc), path, loc)

    def with_indices(self, value: Any, path: str, loc: Loc) -> Any:
        self.origins.record(loc, path)
        if isinstance(value, dict) and isinstance(value.get("indices"), dict):
            value = dict(value)
            value["indices"] = [value["indices"]]
            self.origins.record((*loc, "indices", 0), join_path(path, "indices"))
        return value

    def with_transforms(self, value: Any, path: str, loc: Loc) -> Any:
        self.origins.record(loc, path)
        if not isinstance(value, dict) or "transforms" not in value:
            return value
        value = dict(value)
        tpath = join_path(path, "transforms")
        specs = value["transforms"]
        if _no_transform(specs):  # `transforms: ""`, `null` or the seed's `"..."`: none
            self.out.warnings.append(_no_transform_warning(tpath, specs))
            value["transforms"] = []
        elif isinstance(specs, (str, dict)):  # one transform written without the list
            self.origins.record((*loc, "transforms", 0), tpath)
            value["transforms"] = [self.transform(specs, tpath)]
        elif isinstance(specs, list):
            kept: list[Any] = []
            for i, spec in enumerate(specs):
                if _no_transform(spec):
                    self.out.warnings.append(_no_transform_warning(join_path(tpath, i), spec))
                    continue
                self.origins.record((*loc, "transforms", len(kept)), join_path(tpath, i))
                kept.append(self.transform(spec, join_path(tpath, i)))
            value["transforms"] = kept
        return value

    def transform(self, spec: Any, path: str) -> Any:
        if isinstance(spec, str):
            if not spec.strip():
                self.issues.append(ConfigIssue(path, "an empty transform"))
                return spec
            try:
                return parse_spec(spec).model_dump(exclude_none=True)
            except ValidationError:  # pragma: no cover - shorthand always yields a valid spec
                return spec
        return spec
