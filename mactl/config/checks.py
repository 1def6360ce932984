"""After validation: fill in generated names, then the checks that span several fields.

Names: where the user gives none, sources are `source` (or `source_<n>` by position
when more than one is unnamed), targets `target_<n>`, snapshot entries `snap<n>`
(1-based), migrations `m<n>` and backfills `b<n>` (0-based), as the issue's addresses
show. Positions rather than counters keep a name stable when a later entry is added.

Checks that a single field cannot make: names unique where they share an address
segment, `existingSnapshot.repository` given as a name needing a repository location,
workflow steps naming real sources and targets, a kafka capture log under a replayer on
Kubernetes (its pods cannot read this host's files), a region for sigv4 auth (a switchover to
a sigv4 target needs it too: the proxies sign for that region), index filter regexes that compile,
transform templates (inline or `.j2` files) that parse and pass the template sandbox's
checks (`mactl.templating`), Python transforms refused when `MACTL_NO_PYTHON_TRANSFORMS`
is set, and `lifecycle.ignoreChanges` naming real input fields. A source without `snapshotRepository` gets a filesystem repository at
`mactl-<source>` (relative paths resolve under the cluster's `path.repo`), with a
warning, so the seed's samples plan as written.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from mactl.config.issues import ConfigIssue, Loc, Origins, did_you_mean
from mactl.config.model import Config, StageBlock, TargetConfig
from mactl.schema.capture import FileLog
from mactl.schema.common import IndexFilter, LifecycleConfig, SnapshotRepository, TransformSpec
from mactl.schema.stages import BUILTIN_INPUTS
from mactl.state.config import LocalStateConfig

AddIssue = Callable[[Loc, str], None]


def assign_names(config: Config) -> None:
    unnamed_sources = sum(1 for sm in config.sources if sm.source.name is None)
    for i, sm in enumerate(config.sources):
        if sm.source.name is None:
            sm.source.name = "source" if unnamed_sources == 1 else f"source_{i + 1}"
        for j, snap in enumerate(sm.snapshots):
            if snap.name is None:
                snap.name = f"snap{j + 1}"
            for k, migration in enumerate(snap.migrations):
                if migration.name is None:
                    migration.name = f"m{k}"
                for n, backfill in enumerate(migration.backfills):
                    if backfill.name is None:
                        backfill.name = f"b{n}"
    for i, target in enumerate(config.targets):
        if target.name is None:
            target.name = f"target_{i + 1}"


def default_repositories(config: Config, origins: Origins, warnings: list[str]) -> None:
    for i, sm in enumerate(config.sources):
        if sm.source.snapshotRepository is not None:
            continue
        needs = [s for s in sm.snapshots if s.existingSnapshot is None or s.existingSnapshot.repository is None]
        if not needs:
            continue
        location = f"mactl-{sm.source.name}"
        sm.source.snapshotRepository = SnapshotRepository(type="fs", location=location)
        warnings.append(
            f"{origins.user_path(('sources', i, 'source'))}: no snapshotRepository given; using a filesystem "
            f"repository at '{location}' (relative to the cluster's path.repo). Set "
            "`snapshotRepository: {type: fs, location: ...}` or `{type: s3, bucket: ...}` to choose."
        )


@dataclass(frozen=True)
class TransformRules:
    """How transforms are checked: where template files are read from, and whether Python is allowed."""

    base_dir: Path | None = None
    allow_python: bool = True


def check(
    config: Config, origins: Origins, *, base_dir: Path | None = None, allow_python: bool = True
) -> list[ConfigIssue]:
    from mactl.transforms import DOCUMENT_NAMES, METADATA_NAMES, REPLAY_NAMES

    issues: list[ConfigIssue] = []
    rules = TransformRules(base_dir, allow_python)

    def add(loc: Loc, message: str) -> None:
        issues.append(ConfigIssue(origins.user_path(loc), message))

    _paths(config, add)
    _unique([(("sources", i, "source"), sm.source.name) for i, sm in enumerate(config.sources)], "source", add, origins)
    _unique([(("targets", i), t.name) for i, t in enumerate(config.targets)], "target", add, origins)
    clusters: list[tuple[Loc, TargetConfig]] = [(("targets", i), t) for i, t in enumerate(config.targets)]
    clusters += [(("sources", i, "source"), sm.source) for i, sm in enumerate(config.sources)]
    for loc, cluster in clusters:
        if cluster.auth.type == "sigv4" and not cluster.auth.region:
            add((*loc, "auth", "region"), "sigv4 auth needs the AWS region of the domain (e.g. us-east-1)")
    for i, sm in enumerate(config.sources):
        sloc: Loc = ("sources", i)
        _unique([((*sloc, "snapshots", j), s.name) for j, s in enumerate(sm.snapshots)], "snapshot entry", add, origins)
        for j, snap in enumerate(sm.snapshots):
            eloc: Loc = (*sloc, "snapshots", j)
            _unique(
                [((*eloc, "migrations", k), m.name) for k, m in enumerate(snap.migrations)], "migration", add, origins
            )
            ex = snap.existingSnapshot
            if ex is not None and ex.repositoryName and ex.repository is None and sm.source.snapshotRepository is None:
                add(
                    (*eloc, "existingSnapshot", "repositoryName"),
                    f"repository '{ex.repositoryName}' is a registered name, but mactl also needs its location: "
                    "set source.snapshotRepository, or give `repository` as {type, location|bucket, ...}",
                )
            if ex is not None and ex.repository is not None and ex.repositoryName:
                add((*eloc, "existingSnapshot", "repositoryName"), "give `repository` once")
            _filters(snap.indices, (*eloc, "indices"), add)
            _stage_block(snap, eloc, "snapshot", add)
            for k, migration in enumerate(snap.migrations):
                mloc: Loc = (*eloc, "migrations", k)
                backfills = [((*mloc, "backfills", n), b.name) for n, b in enumerate(migration.backfills)]
                _unique(backfills, "backfill", add, origins)
                if migration.metadata is not None:
                    _filters(migration.metadata.indices, (*mloc, "metadata", "indices"), add)
                    _transforms(
                        migration.metadata.transforms, (*mloc, "metadata", "transforms"), add, rules, METADATA_NAMES
                    )
                    _stage_block(migration.metadata, (*mloc, "metadata"), "metadata", add)
                for n, backfill in enumerate(migration.backfills):
                    bloc: Loc = (*mloc, "backfills", n)
                    _filters(backfill.indices, (*bloc, "indices"), add)
                    _transforms(backfill.transforms, (*bloc, "transforms"), add, rules, DOCUMENT_NAMES)
                    _stage_block(backfill, bloc, "backfill", add)
        if sm.replayer is not None:
            _transforms(sm.replayer.transforms, (*sloc, "replayer", "transforms"), add, rules, REPLAY_NAMES)
            _stage_block(sm.replayer, (*sloc, "replayer"), "replay", add)
            log_type = sm.capture.log.type if sm.capture is not None else "file"
            if sm.replayer.executor is not None and sm.replayer.executor.type == "kubernetes" and log_type != "kafka":
                # the pods share the capture log through a Kafka consumer group; a file log is on this host
                add(
                    (*sloc, "replayer", "executor"),
                    f"a Kubernetes replayer needs a kafka capture log; log.type is {log_type}",
                )
        if sm.capture is not None:
            _stage_block(sm.capture, (*sloc, "capture"), "capture", add)
        _filters(sm.validation.indices, (*sloc, "validation", "indices"), add)
        _stage_block(sm.validation, (*sloc, "validation"), "validate", add)

    source_names = [sm.source.name for sm in config.sources if sm.source.name is not None]
    target_names = [t.name for t in config.targets if t.name is not None]
    seen_steps: dict[str, int] = {}
    for i, step in enumerate(config.workflow):
        wloc: Loc = ("workflow", i)
        address = f"{step.type}.{step.name}"
        if address in seen_steps:
            add((*wloc, "name"), f"stage '{address}' is already defined at workflow[{seen_steps[address]}]")
        seen_steps.setdefault(address, i)
        _stage_block(step, wloc, step.type, add)
        if step.source is not None and step.source not in source_names:
            add((*wloc, "source"), f"no source named '{step.source}'{did_you_mean(step.source, source_names)}")
        elif step.source is None and step.type != "manual" and len(source_names) > 1:
            add((*wloc, "source"), f"a {step.type} stage needs `source` when there are several sources")
        if step.target is not None and step.target not in target_names:
            add((*wloc, "target"), f"no target named '{step.target}'{did_you_mean(step.target, target_names)}")
    return issues


def _unique(named: Iterable[tuple[Loc, str | None]], what: str, add: AddIssue, origins: Origins) -> None:
    """Each (location of the named thing, its name): a repeated name is reported at its `name`.

    Names are compared without case: they become snapshot names (which the cluster
    lower-cases) and folder names (case-insensitive on some file systems).
    """
    first: dict[str, tuple[Loc, str]] = {}
    for loc, name in named:
        if name is None:
            continue
        key = name.lower()
        if key in first:
            earlier, spelled = first[key]
            same = "" if spelled == name else f" (as '{spelled}': names must differ in more than upper/lower case)"
            add(
                (*loc, "name"),
                f"{what} name '{name}' is already used at {origins.user_path(earlier)}{same} "
                "(names, given or generated, must be unique: stage addresses are built from them)",
            )
        else:
            first[key] = (loc, name)


# Characters an index name can never hold (Elasticsearch and OpenSearch refuse them), so
# a filter naming one matches nothing; `*` is the wildcard and `re:` patterns are regexes.
_NEVER_IN_INDEX_NAMES = frozenset('\\/?"<>| ,#:')


def replayer_warnings(config: Config, origins: Origins, warnings: list[str]) -> None:
    """Warn when a Kubernetes replayer has more pods than the capture topic has partitions:
    Kafka gives each partition to one member of the group, so the extra pods stay idle."""
    for i, sm in enumerate(config.sources):
        executor = sm.replayer.executor if sm.replayer is not None else None
        if executor is None or executor.type != "kubernetes" or sm.capture is None or sm.capture.log.type != "kafka":
            continue
        partitions = sm.capture.log.partitions
        if executor.replicas > partitions:
            where = origins.user_path(("sources", i, "replayer", "executor", "replicas"))
            warnings.append(
                f"{where}: {executor.replicas} replayer pods share the capture topic's {partitions} partition(s): "
                f"{executor.replicas - partitions} will have nothing to replay (give capture.log more partitions)"
            )


def filter_warnings(config: Config, origins: Origins, warnings: list[str]) -> None:
    """Warn about index filter names that can never match an index: a typo that would migrate nothing."""
    lists: list[tuple[Loc, list[IndexFilter]]] = []
    for i, sm in enumerate(config.sources):
        sloc: Loc = ("sources", i)
        lists.append(((*sloc, "validation", "indices"), sm.validation.indices))
        for j, snap in enumerate(sm.snapshots):
            eloc: Loc = (*sloc, "snapshots", j)
            lists.append(((*eloc, "indices"), snap.indices))
            for k, migration in enumerate(snap.migrations):
                mloc: Loc = (*eloc, "migrations", k)
                if migration.metadata is not None:
                    lists.append(((*mloc, "metadata", "indices"), migration.metadata.indices))
                for n, backfill in enumerate(migration.backfills):
                    lists.append(((*mloc, "backfills", n, "indices"), backfill.indices))
    for loc, filters in lists:
        for f, flt in enumerate(filters):
            for n, name in enumerate(flt.names):
                why = _never_matches(name)
                if why:
                    where = origins.user_path((*loc, f, "names", n))
                    warnings.append(f"{where}: {name!r} can never match an index: {why}")


def _never_matches(name: str) -> str | None:
    if name.startswith("re:"):
        return None
    if name != name.lower():
        return "index names are lower-case"
    bad = sorted(set(name) & _NEVER_IN_INDEX_NAMES)
    if bad:
        return f"index names cannot contain {' '.join(repr(c) for c in bad)}"
    if name[:1] in ("-", "+") or (name[:1] == "_" and name != "_all"):
        return f"index names cannot start with {name[0]!r}"
    return None


def _paths(config: Config, add: AddIssue) -> None:
    """Files mactl writes stay under the config's folder, unless absolute and `allowOutsidePaths: true`.

    A relative path that climbs out (`../..`) is always refused: the config's folder is
    what a reviewer looks at, and a pull request's config must not make even
    `plan -refresh=false` create folders elsewhere.
    """
    places: list[tuple[Loc, str | None]] = []
    if isinstance(config.state, LocalStateConfig):
        places.append((("state", "path"), config.state.path))
    for i, sm in enumerate(config.sources):
        if sm.capture is not None and isinstance(sm.capture.log, FileLog):
            places.append((("sources", i, "capture", "log", "path"), sm.capture.log.path))
        for j, snap in enumerate(sm.snapshots):
            for k, migration in enumerate(snap.migrations):
                for n, backfill in enumerate(migration.backfills):
                    if backfill.deadLetter is not None:
                        loc: Loc = (
                            "sources",
                            i,
                            "snapshots",
                            j,
                            "migrations",
                            k,
                            "backfills",
                            n,
                            "deadLetter",
                            "location",
                        )
                        places.append((loc, backfill.deadLetter.location))
    for loc, value in places:
        if value is None or "://" in value:
            continue  # s3://… is not a local path
        if "\x00" in value:
            add(loc, "a path may not contain NUL characters")
        elif PurePosixPath(value).is_absolute():
            if not config.allowOutsidePaths:
                add(
                    loc,
                    f"{value!r} is an absolute path: files mactl writes stay under the config's folder unless "
                    "the config sets `allowOutsidePaths: true`",
                )
        elif ".." in PurePosixPath(posixpath.normpath(value)).parts:
            add(loc, f"{value!r} leaves the config's folder: relative paths must stay under it")


def _filters(filters: list[IndexFilter], loc: Loc, add: AddIssue) -> None:
    for i, flt in enumerate(filters):
        if not flt.names:
            add((*loc, i, "names"), "an index filter needs at least one name, wildcard or re: pattern")
        for j, name in enumerate(flt.names):
            if name.startswith("re:"):
                try:
                    re.compile(name[3:])
                except re.error as exc:
                    add((*loc, i, "names", j), f"invalid regular expression {name[3:]!r}: {exc}")


def _transforms(
    specs: list[TransformSpec], loc: Loc, add: AddIssue, rules: TransformRules, names: frozenset[str]
) -> None:
    for i, spec in enumerate(specs):
        if spec.codeDigest is not None:
            add((*loc, i, "codeDigest"), "set by mactl (the hash of the transform's code file), not in the config")
        if spec.kind == "jinja":
            if bool(spec.template) == bool(spec.file):
                add((*loc, i), "a jinja transform needs exactly one of `template` or `file`")
            elif spec.template:
                problem = _template_problem(spec.template, names)
                if problem:
                    add((*loc, i), f"transform template {problem}")
            elif spec.file and rules.base_dir is not None:
                problem = _file_problem(rules.base_dir / spec.file, names)
                if problem:
                    add((*loc, i), f"transform file {spec.file}: {problem}")
        elif not spec.callable or ":" not in spec.callable:
            add((*loc, i), "a python transform needs `callable: package.module:function`")
        elif not rules.allow_python:
            from mactl.transforms import python_refusal

            add((*loc, i), python_refusal(spec.callable))


@lru_cache(maxsize=4096)
def _template_problem(template: str, names: frozenset[str]) -> str | None:
    """Syntax and sandbox problems of a transform template (cached: configs repeat them a lot)."""
    from mactl.templating import check_template, transform_environment

    problem = check_template(transform_environment(), template, names=names)
    return None if problem is None else problem.where()


def _file_problem(path: Path, names: frozenset[str]) -> str | None:
    try:
        text = path.read_text()
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    except UnicodeDecodeError:
        return "cannot read it (not UTF-8 text)"
    return _template_problem(text, names)


def _stage_block(block: StageBlock, loc: Loc, stage_type: str, add: AddIssue) -> None:
    lifecycle: LifecycleConfig | None = block.lifecycle
    if lifecycle is None or not lifecycle.ignoreChanges:
        return
    fields = {info.alias or name for name, info in BUILTIN_INPUTS[stage_type].model_fields.items()}
    for i, dotted in enumerate(lifecycle.ignoreChanges):
        head = dotted.split(".", 1)[0]
        if head not in fields:
            message = f"'{head}' is not an input of a {stage_type} stage{did_you_mean(head, fields)}"
            add((*loc, "lifecycle", "ignoreChanges", i), message)
