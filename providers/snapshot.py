"""Snapshot stage: takes a snapshot of the source (or imports an existing one).

The snapshot is the fixed point every later stage reads from: metadata and backfill
read its files, and the replayer starts from the capture position recorded when it
began. So apply records enough to find it again without the source (repository kind and
location, uuid) and rollback only ever deletes a snapshot mactl itself created.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from mactl.providers.base import BaseProvider, Fact, PreflightContext, Progress, StageContext
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.cluster import client_for, cluster_version, version_tuple
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


def _supports_metadata(version: tuple[str, str]) -> bool:
    """Snapshot `metadata` exists since Elasticsearch 7.3 and in every OpenSearch."""
    distribution, number = version
    return distribution == "opensearch" or version_tuple(number) >= (7, 3)


def _marker_of(info: dict[str, Any]) -> dict[str, Any]:
    meta = info.get("metadata")
    found = meta.get("mactl") if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else {}


def _is_ours(info: dict[str, Any], address: str, recorded: Any) -> bool:
    """Did this stage make `info`? Its marker names this stage and a run recorded before
    the create request (in the checkpoint, or in the outputs once complete).

    A source without snapshot metadata (Elasticsearch before 7.3) carries no marker: the
    request recorded for this very name before it was sent is then the only evidence.
    """
    if not isinstance(recorded, dict) or recorded.get("name") != info.get("snapshot"):
        return False
    marker = _marker_of(info)
    if not recorded.get("marked"):
        return not marker
    return marker.get("stage") == address and bool(marker.get("run")) and marker.get("run") == recorded.get("run")


def _requested(ctx: Context) -> dict[str, Any] | None:
    """The create request recorded before it was sent, from the checkpoint or outputs."""
    for source in (ctx.checkpoint_data or {}, ctx.prior_outputs or {}):
        found = source.get("requested")
        if isinstance(found, dict) and found.get("name"):
            return dict(found)
    if (ctx.checkpoint_data or {}).get("started"):
        # recorded by an older mactl, after the request and without a marker
        return {"name": ctx.inputs.snapshotName, "run": None, "marked": False}
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
        prior = ctx.prior_outputs or {}
        checkpoint = dict(ctx.checkpoint_data or {})
        registered = self._registered_by_mactl(ctx, client, inputs)
        repo = register_repository(client, inputs)
        requested = _requested(ctx)
        existing = _describe(client, repo, inputs.snapshotName)
        if existing is not None:
            if prior.get("uuid") == existing.get("uuid") and existing.get("state") == "SUCCESS":
                # An update in place (e.g. a new rate limit): the snapshot itself stands.
                return {
                    **prior,
                    "repository": repository_description(inputs.repository, repo),
                    "repositoryRegisteredByMactl": registered,
                }
            if not _is_ours(existing, ctx.address, requested):
                raise ProviderError(
                    f"snapshot '{inputs.snapshotName}' already exists in repository '{repo}' and mactl did not create it",
                    hint="choose another snapshotName, or import it with `existingSnapshot`",
                )
            # Started by an earlier run of this stage that was killed: adopt it, whatever
            # it became while mactl was away.
            state = existing.get("state")
            if state in ("IN_PROGRESS", "STARTED", "INIT"):
                ctx.log(f"snapshot {inputs.snapshotName}: started by an earlier run, still running; waiting for it")
                info = self._wait(ctx, client, repo, inputs.snapshotName)
            else:
                info = existing
            if info.get("state") == "SUCCESS":
                ctx.log(f"snapshot {inputs.snapshotName}: started by an earlier run; adopted")
                return self._finish(
                    ctx, client, repo, info, inputs, version, requested=requested, registered=registered
                )
            ctx.log(
                f"snapshot {inputs.snapshotName}: an earlier run's attempt ended {info.get('state')}; deleting it and retaking"
            )
            self._delete(client, repo, inputs.snapshotName)
        selected = self._select(client, inputs)
        capture = checkpoint.get("capturePosition") if requested else None
        if capture is None:
            capture = _capture_position(ctx)
        marked = _supports_metadata(version)
        requested = {"name": inputs.snapshotName, "run": uuid.uuid4().hex, "marked": marked}
        body: dict[str, Any] = {
            "indices": ",".join(selected),
            "include_global_state": inputs.includeGlobalState,
            "ignore_unavailable": False,
            "partial": False,
        }
        if marked:
            body["metadata"] = {"mactl": {"stage": ctx.address, "run": requested["run"]}}
        # Recorded BEFORE the request: a kill at any point after it leaves a snapshot a
        # rerun (or a rollback) can recognise as this stage's by its marker.
        ctx.checkpoint(
            {
                "requested": requested,
                "capturePosition": capture,
                "repositoryRegisteredByMactl": registered,
            }
        )
        ctx.log(f"snapshot {inputs.snapshotName}: {len(selected)} indices into repository {repo}")
        try:
            client.snapshot.create(repository=repo, snapshot=inputs.snapshotName, body=body, wait_for_completion=False)
        except TransportError as exc:
            raise ProviderError(f"snapshot '{inputs.snapshotName}' could not start: {_reason(exc)}") from None
        ctx.checkpoint(
            {
                "requested": requested,
                "started": True,
                "capturePosition": capture,
                "repositoryRegisteredByMactl": registered,
            }
        )
        info = self._wait(ctx, client, repo, inputs.snapshotName)
        return self._finish(
            ctx,
            client,
            repo,
            info,
            inputs,
            version,
            capture_position=capture,
            requested=requested,
            registered=registered,
        )

    def _registered_by_mactl(self, ctx: Context, client: OpenSearch, inputs: SnapshotInputs) -> bool:
        """Whether this stage registered the repository (so rollback may deregister it).

        Once recorded (checkpoint or outputs) the first answer stands: a rerun finds the
        repository registered by its own earlier run.
        """
        for source in (ctx.checkpoint_data or {}, ctx.prior_outputs or {}):
            if "repositoryRegisteredByMactl" in source:
                return bool(source["repositoryRegisteredByMactl"])
        try:
            client.snapshot.get_repository(repository=repository_name(inputs))
        except NotFoundError:
            return True
        except TransportError as exc:
            if exc.status_code == 404:
                return True
            raise ProviderError(
                f"cannot read snapshot repository '{repository_name(inputs)}': {_reason(exc)}"
            ) from None
        return False

    @staticmethod
    def _delete(client: OpenSearch, repo: str, name: str) -> None:
        try:
            client.snapshot.delete(repository=repo, snapshot=name)
        except NotFoundError:
            return
        except TransportError as exc:
            if exc.status_code == 404:
                return
            raise ProviderError(f"cannot delete snapshot '{name}': {_reason(exc)}") from None

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
        requested: dict[str, Any] | None = None,
        registered: bool = False,
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
        outputs = _outputs(
            info,
            inputs=inputs,
            repo_name=repo,
            created=True,
            source_version=version,
            capture_position=capture_position,
        )
        outputs["requested"] = requested
        outputs["repositoryRegisteredByMactl"] = registered
        return outputs

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

    def adopt(self, ctx: Context, import_id: str | None) -> dict[str, Any]:
        """`import`: take over a snapshot that already exists, as if this stage had taken it.

        It must be what the stage would make: its name, in the stage's repository (already
        registered on the source: nothing is written), finished (SUCCESS), holding exactly
        the indices the stage's filters select on the source now, with the same global
        state choice. Otherwise `ProviderError` says what differs. From then on the stage
        owns it: a rollback deletes it. Replay starts from the capture stage's own start
        position (the capture must have been running before the snapshot was taken).
        """
        inputs = ctx.inputs
        if inputs.existing:
            raise ProviderError(
                f"snapshot '{inputs.snapshotName}' is an existingSnapshot: mactl reads it and never owns it",
                hint="drop the import, or drop existingSnapshot to let the stage own (and roll back) the snapshot",
            )
        if import_id is not None and import_id != inputs.snapshotName:
            raise ProviderError(
                f"the stage's snapshot is named '{inputs.snapshotName}', not '{import_id}'",
                hint="import the stage's own name, or rename the snapshot entry with a `moved` block",
            )
        client = client_for(inputs.source)
        version = cluster_version(client)
        repo = repository_name(inputs)
        try:
            client.snapshot.get_repository(repository=repo)
        except NotFoundError:
            raise ProviderError(
                f"repository '{repo}' is not registered on source '{inputs.source.name}', so no snapshot can be "
                "imported from it",
                hint="register it, or name the registered repository in snapshotRepository.name",
            ) from None
        info = _describe(client, repo, inputs.snapshotName)
        if info is None:
            raise ProviderError(f"snapshot '{inputs.snapshotName}' is not in repository '{repo}': nothing to import")
        differences: list[str] = []
        if info.get("state") != "SUCCESS":
            differences.append(f"it is {info.get('state')}, not SUCCESS")
        selected = set(self._select(client, inputs))
        held = set(info.get("indices") or [])
        if selected - held:
            differences.append(f"it lacks indices the stage selects: {', '.join(sorted(selected - held))}")
        if held - selected:
            differences.append(f"it holds indices the stage does not select: {', '.join(sorted(held - selected))}")
        if bool(info.get("include_global_state")) != inputs.includeGlobalState:
            differences.append(
                f"includeGlobalState is {bool(info.get('include_global_state'))} in it, {inputs.includeGlobalState} "
                "in the config"
            )
        if differences:
            raise ProviderError(
                f"snapshot '{inputs.snapshotName}' in repository '{repo}' is not what the stage would take: "
                + "; ".join(differences),
                hint="change the stage's `indices`/`includeGlobalState` to match it, or let the stage take its own",
            )
        outputs = _outputs(
            info,
            inputs=inputs,
            repo_name=repo,
            created=True,  # owned from now on: a rollback deletes it (by its uuid)
            source_version=version,
            capture_position=_capture_start_position(ctx),
        )
        outputs["imported"] = True
        outputs["repositoryRegisteredByMactl"] = False
        return outputs

    def rollback(self, ctx: Context) -> None:
        """Delete the snapshot this stage created, and the repository if it registered it.

        "Created" is proven by the recorded uuid, or by the marker in the snapshot's
        metadata matching the request recorded before it was sent: a stage killed before
        it recorded completion still removes the snapshot it started.
        """
        prior = ctx.prior_outputs or {}
        requested = _requested(ctx)
        if prior and not prior.get("createdByMactl") and requested is None:
            ctx.log(f"snapshot {prior.get('name')}: imported, not created by mactl; left in place")
            return
        inputs = ctx.inputs
        name = prior.get("name") or (requested or {}).get("name")
        if not name:
            return
        client = client_for(inputs.source)
        repo = (prior.get("repository") or {}).get("name") or repository_name(inputs)
        info = _describe(client, repo, name)
        if info is not None:
            by_uuid = bool(prior.get("uuid")) and info.get("uuid") == prior.get("uuid")
            if by_uuid or _is_ours(info, ctx.address, requested):
                self._delete(client, repo, name)
            else:
                ctx.log(f"snapshot {name}: not the one this stage made (another uuid or marker); left in place")
                return
        registered = prior.get(
            "repositoryRegisteredByMactl", (ctx.checkpoint_data or {}).get("repositoryRegisteredByMactl")
        )
        if registered or repo == f"mactl-{inputs.source.name}":
            # mactl's own default name: every snapshot stage of this source shares it
            self._deregister_if_empty(ctx, client, repo)

    @staticmethod
    def _deregister_if_empty(ctx: Context, client: OpenSearch, repo: str) -> None:
        """Remove the repository registration mactl made, once no snapshot is left in it
        (another stage of the same source may still use it)."""
        try:
            left = client.snapshot.get(repository=repo, snapshot="_all").get("snapshots") or []
        except NotFoundError:
            return
        except TransportError as exc:
            if exc.status_code == 404:
                return
            raise ProviderError(f"cannot list snapshots in repository '{repo}': {_reason(exc)}") from None
        if left:
            ctx.log(f"repository {repo}: {len(left)} snapshot(s) left in it; registration kept")
            return
        try:
            client.snapshot.delete_repository(repository=repo)
        except NotFoundError:
            return

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
