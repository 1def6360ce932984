"""Snapshot stage: takes a snapshot of the source (or imports an existing one).

The snapshot is the fixed point every later stage reads from: metadata and backfill
read its files, and the replayer starts from the capture position recorded when it
began. So apply records enough to find it again without the source (repository kind and
location, uuid) and rollback only ever deletes a snapshot mactl itself created.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from mactl.providers.base import BaseProvider, Fact, PreflightContext, Progress, StageContext
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.cluster import client_for, cluster_version
from mactl.errors import ProviderError
from mactl.indexfilter import select, validate_filters
from mactl.schema.common import SnapshotRepository
from mactl.schema.snapshot import SnapshotInputs

POLL_INTERVAL_S = 1.0
Context = StageContext[SnapshotInputs]


def repository_name(inputs: SnapshotInputs) -> str:
    """The name the repository is registered under on the source."""
    return inputs.repository.name or f"mactl-{inputs.source.name}"


def repository_description(repo: SnapshotRepository, registered_as: str) -> dict[str, Any]:
    """What a reader needs to find the snapshot's files without the source cluster."""
    desc: dict[str, Any] = {"type": repo.type, "name": registered_as}
    if repo.type == "fs":
        desc["location"] = repo.location
    else:
        desc.update(bucket=repo.bucket, basePath=repo.basePath or "", region=repo.region, endpoint=repo.endpoint)
    return desc


def _repo_settings(inputs: SnapshotInputs, *, readonly: bool) -> dict[str, Any]:
    repo = inputs.repository
    settings: dict[str, Any] = {"compress": repo.compress}
    if repo.type == "fs":
        settings["location"] = repo.location
    else:
        settings["bucket"] = repo.bucket
        if repo.basePath:
            settings["base_path"] = repo.basePath
        if repo.endpoint:
            settings["endpoint"] = repo.endpoint
            if repo.endpoint.startswith("http://"):
                settings["protocol"] = "http"
            settings["path_style_access"] = True
        if repo.region:
            settings["region"] = repo.region
    if inputs.maxSnapshotRateMbPerNode is not None:
        settings["max_snapshot_bytes_per_sec"] = f"{int(inputs.maxSnapshotRateMbPerNode * 1024 * 1024)}b"
    if readonly:
        settings["readonly"] = True
    return settings


def _path_repo(client: OpenSearch) -> list[str]:
    found = client.nodes.info(metric="settings", filter_path="nodes.*.settings.path.repo")
    paths: list[str] = []
    for node in (found.get("nodes") or {}).values():
        value = node.get("settings", {}).get("path", {}).get("repo")
        paths.extend([value] if isinstance(value, str) else list(value or []))
    return paths


def _has_s3_plugin(client: OpenSearch) -> bool:
    info = client.nodes.info(metric="plugins", filter_path="nodes.*.plugins.name")
    nodes = (info.get("nodes") or {}).values()
    return bool(nodes) and all(any(p.get("name") == "repository-s3" for p in n.get("plugins", [])) for n in nodes)


def register_repository(client: OpenSearch, inputs: SnapshotInputs, *, readonly: bool = False) -> str:
    """Register (or re-register) the repository and check every node can reach it."""
    repo = inputs.repository
    name = repository_name(inputs)
    if repo.type == "fs":
        roots = _path_repo(client)
        location = PurePosixPath(repo.location or "")
        if location.is_absolute() and not any(location.is_relative_to(r) for r in roots):
            allowed = ", ".join(roots) or "(none: path.repo is not set)"
            raise ProviderError(
                f"snapshot repository location {repo.location} is not under the source's path.repo",
                hint=f"use a folder under {allowed}",
            )
    elif not _has_s3_plugin(client):
        raise ProviderError(
            f"source '{inputs.source.name}' has no repository-s3 plugin, so it cannot write an s3 snapshot repository",
            hint="install the repository-s3 plugin on every source node, or use an fs repository",
        )
    body = {"type": repo.type, "settings": _repo_settings(inputs, readonly=readonly)}
    try:
        client.snapshot.create_repository(repository=name, body=body)
        client.snapshot.verify_repository(repository=name)
    except TransportError as exc:
        raise ProviderError(f"snapshot repository '{name}' is not usable: {_reason(exc)}") from None
    return name


def _reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        cause = (err.get("root_cause") or [{}])[0]
        return str(cause.get("reason") or err.get("reason") or exc.error)
    return str(err or exc.error)


def _describe(client: OpenSearch, repo: str, name: str) -> dict[str, Any] | None:
    try:
        found = client.snapshot.get(repository=repo, snapshot=name)
    except NotFoundError:
        return None
    except TransportError as exc:
        if exc.status_code == 404 or "snapshot_missing" in str(exc.error):
            return None
        raise ProviderError(f"cannot read snapshot '{name}' from repository '{repo}': {_reason(exc)}") from None
    snaps = found.get("snapshots") or []
    return snaps[0] if snaps else None


def _outputs(
    info: dict[str, Any],
    *,
    inputs: SnapshotInputs,
    repo_name: str,
    created: bool,
    source_version: tuple[str, str],
    capture_position: Any,
) -> dict[str, Any]:
    shards = info.get("shards") or {}
    return {
        "name": info["snapshot"],
        "uuid": info.get("uuid"),
        "state": info.get("state"),
        "indices": sorted(info.get("indices") or []),
        "shardCount": shards.get("total", 0),
        "startTime": info.get("start_time"),
        "endTime": info.get("end_time"),
        "includeGlobalState": info.get("include_global_state"),
        "sourceDistribution": source_version[0],
        "sourceVersion": source_version[1],
        "snapshotVersion": info.get("version"),
        "repository": repository_description(inputs.repository, repo_name),
        "createdByMactl": created,
        "capturePosition": capture_position,
    }


def _capture_position(ctx: Context) -> Any:
    """Where the replayer must start: the capture log's end right now, or the wall clock.

    Taken BEFORE the snapshot starts: a request that lands during the snapshot is then
    replayed (idempotently) rather than lost. When the log cannot be asked, the capture
    stage's own start position is the safe fallback (it replays more, never less).
    """
    now = datetime.now(UTC).isoformat()
    for out in ctx.upstream_of_type("capture"):
        if out.get("log") is not None:
            try:
                from mactl.capture.log import current_position

                return {"kind": "capture", "position": current_position(out["log"]), "time": now}
            except Exception as exc:  # noqa: BLE001 - any log failure falls back, and says so
                ctx.log(f"capture log position unavailable ({exc}); using the capture stage's start position")
        if out.get("position") is not None:
            return {"kind": "capture", "position": out["position"], "time": now, "fallback": "capture start"}
    return {"kind": "time", "time": now}


def _capture_start_position(ctx: Context) -> Any:
    """The capture stage's own start position: earlier than any snapshot, so safe."""
    now = datetime.now(UTC).isoformat()
    for out in ctx.upstream_of_type("capture"):
        if out.get("position") is not None:
            return {"kind": "capture", "position": out["position"], "time": now, "fallback": "capture start"}
    return None


class SnapshotProvider(BaseProvider[SnapshotInputs]):
    type = "snapshot"
    Inputs = SnapshotInputs
    replace_on = frozenset({"source", "repository", "snapshotName", "existing", "indices", "includeGlobalState"})
    available = True

    def validate(self, inputs: SnapshotInputs) -> list[str]:
        problems = validate_filters(inputs.indices)
        if inputs.maxSnapshotRateMbPerNode is not None and inputs.maxSnapshotRateMbPerNode <= 0:
            problems.append("maxSnapshotRateMbPerNode must be positive")
        return problems

    def preflight(self, inputs: SnapshotInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem

        problem = cluster_problem(inputs.source, "source", ctx)
        return [problem] if problem else []

    def apply(self, ctx: Context) -> dict[str, Any]:
        inputs = ctx.inputs
        client = client_for(inputs.source)
        version = cluster_version(client)
        if inputs.existing:
            return self._import(ctx, client, inputs, version)
        repo = register_repository(client, inputs)
        prior = ctx.prior_outputs or {}
        existing = _describe(client, repo, inputs.snapshotName)
        if existing is not None:
            if prior.get("uuid") == existing.get("uuid") and existing.get("state") == "SUCCESS":
                # An update in place (e.g. a new rate limit): the snapshot itself stands.
                return {**prior, "repository": repository_description(inputs.repository, repo)}
            if existing.get("state") == "IN_PROGRESS" and (ctx.checkpoint_data or {}).get("started"):
                info = self._wait(ctx, client, repo, inputs.snapshotName)
                return self._finish(ctx, client, repo, info, inputs, version)
            raise ProviderError(
                f"snapshot '{inputs.snapshotName}' already exists in repository '{repo}' and mactl did not create it",
                hint="choose another snapshotName, or import it with `existingSnapshot`",
            )
        selected = self._select(client, inputs)
        capture = _capture_position(ctx)
        body: dict[str, Any] = {
            "indices": ",".join(selected),
            "include_global_state": inputs.includeGlobalState,
            "ignore_unavailable": False,
            "partial": False,
        }
        ctx.log(f"snapshot {inputs.snapshotName}: {len(selected)} indices into repository {repo}")
        try:
            client.snapshot.create(repository=repo, snapshot=inputs.snapshotName, body=body, wait_for_completion=False)
        except TransportError as exc:
            raise ProviderError(f"snapshot '{inputs.snapshotName}' could not start: {_reason(exc)}") from None
        ctx.checkpoint({"started": True, "capturePosition": capture})
        info = self._wait(ctx, client, repo, inputs.snapshotName)
        return self._finish(ctx, client, repo, info, inputs, version, capture_position=capture)

    def _select(self, client: OpenSearch, inputs: SnapshotInputs) -> list[str]:
        """The user's filters only. Built-in exclusions (system indices…) are applied, and
        listed, by the stages that read the snapshot: a later metadata or backfill stage
        that names such an index exactly can then still find it in the snapshot."""
        live = client.indices.get(index="*", expand_wildcards="open,hidden", filter_path="*.settings.index.uuid")
        selected = select(live.keys(), inputs.indices)
        if not selected:
            raise ProviderError(
                f"snapshot '{inputs.snapshotName}': the index selection matches no index on '{inputs.source.name}'",
                hint="check the `indices` filters of this snapshot",
            )
        return selected

    def _wait(self, ctx: Context, client: OpenSearch, repo: str, name: str) -> dict[str, Any]:
        """Poll until the snapshot is finalised, reporting shards done/total.

        `_status` can report every shard done while the snapshot itself is still being
        finalised (`GET _snapshot` says IN_PROGRESS), so the end state is read from the
        latter.
        """
        while True:
            status = client.snapshot.status(repository=repo, snapshot=name)
            snap = (status.get("snapshots") or [{}])[0]
            stats = snap.get("shards_stats") or {}
            total = stats.get("total") or 0
            done = (stats.get("done") or 0) + (stats.get("failed") or 0)
            ctx.progress(Progress(done=done, total=total or None, unit="shards", message=f"snapshot {name}"))
            if snap.get("state") not in ("IN_PROGRESS", "STARTED", "INIT", None):
                info = _describe(client, repo, name)
                if info is None:
                    raise ProviderError(f"snapshot '{name}' disappeared from repository '{repo}' while it was running")
                if info.get("state") not in ("IN_PROGRESS", "STARTED", "INIT"):
                    return info
            if ctx.cancelled.is_set():
                raise ProviderError(
                    f"snapshot '{name}' interrupted; it keeps running on the source and a rerun resumes waiting"
                )
            time.sleep(POLL_INTERVAL_S)

    def _finish(
        self,
        ctx: Context,
        client: OpenSearch,
        repo: str,
        info: dict[str, Any],
        inputs: SnapshotInputs,
        version: tuple[str, str],
        *,
        capture_position: Any = None,
    ) -> dict[str, Any]:
        """Outputs of a finished snapshot.

        The capture position must be the one read BEFORE the snapshot began (passed in, or
        from the checkpoint of an interrupted run): reading it now would skip the writes
        made while the snapshot ran, which are in neither the snapshot nor the replay.
        """
        state = info.get("state")
        if state != "SUCCESS":
            failures = info.get("failures") or []
            named = (
                ", ".join(f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason')}" for f in failures)
                or "none reported"
            )
            raise ProviderError(f"snapshot '{info.get('snapshot')}' ended {state}; failed shards: {named}")
        if capture_position is None:
            capture_position = (ctx.checkpoint_data or {}).get("capturePosition")
        if capture_position is None:
            # No position was recorded before this snapshot began (it was started by an
            # older run): the capture stage's own start is earlier still, so nothing is lost.
            capture_position = _capture_start_position(ctx)
        return _outputs(
            info,
            inputs=inputs,
            repo_name=repo,
            created=True,
            source_version=version,
            capture_position=capture_position,
        )

    def _import(
        self, ctx: Context, client: OpenSearch, inputs: SnapshotInputs, version: tuple[str, str]
    ) -> dict[str, Any]:
        repo = repository_name(inputs)
        try:
            client.snapshot.get_repository(repository=repo)
        except NotFoundError:
            repo = register_repository(client, inputs, readonly=True)
        info = _describe(client, repo, inputs.snapshotName)
        if info is None:
            raise ProviderError(f"existing snapshot '{inputs.snapshotName}' is not in repository '{repo}'")
        if info.get("state") != "SUCCESS":
            raise ProviderError(
                f"existing snapshot '{inputs.snapshotName}' is {info.get('state')}, not SUCCESS; mactl will not migrate from it"
            )
        return _outputs(
            info,
            inputs=inputs,
            repo_name=repo,
            created=False,
            source_version=version,
            capture_position=None,
        )

    def rollback(self, ctx: Context) -> None:
        prior = ctx.prior_outputs or {}
        if not prior.get("createdByMactl"):
            ctx.log(f"snapshot {prior.get('name')}: imported, not created by mactl; left in place")
            return
        inputs = ctx.inputs
        client = client_for(inputs.source)
        repo = (prior.get("repository") or {}).get("name") or repository_name(inputs)
        info = _describe(client, repo, prior["name"])
        if info is None:
            return
        if prior.get("uuid") and info.get("uuid") != prior["uuid"]:
            ctx.log(f"snapshot {prior['name']} now has another uuid: someone else made it; left in place")
            return
        try:
            client.snapshot.delete(repository=repo, snapshot=prior["name"])
        except NotFoundError:
            return
        except TransportError as exc:
            raise ProviderError(f"cannot delete snapshot '{prior['name']}': {_reason(exc)}") from None

    def read(self, ctx: Context) -> dict[str, Any] | None:
        """The snapshot as it is now: None when it was deleted outside mactl."""
        prior = ctx.prior_outputs
        if prior is None:
            return None
        inputs = ctx.inputs
        client = client_for(inputs.source)
        repo = (prior.get("repository") or {}).get("name") or repository_name(inputs)
        info = _describe(client, repo, prior["name"])
        if info is None:
            return None
        current = dict(prior)
        current["uuid"] = info.get("uuid")
        current["state"] = info.get("state")
        current["indices"] = sorted(info.get("indices") or [])
        return current

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]:
        """The snapshot's uuid: another snapshot under the same name is not the one every
        later stage was built from, so the stage is redone with them."""
        return {f"snapshot {outputs.get('name')}": Fact(outputs.get("uuid"), redo=True)}
