"""The 'teardown' stage of the seed's idealized workflow: remove the migration tooling.

It stops the source's capture proxies and any follow-mode replayers recorded in the
fleet registry (a replay Job on Kubernetes is deleted, pods and Secret with it), deletes the capture log (Kafka topic or log folder; `deleteLog`), and
deletes mactl's working-state indices on the target (the backfill coordination indices,
`workingIndexPatterns`, matched by name and deleted one by one, never by wildcard, and a
Kubernetes replay's status index by its exact name).
Teardown cannot be undone: its rollback does nothing but say so; re-apply the capture and
replay stages to rebuild the tooling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mactl.providers.base import BaseProvider, StageContext

from mactl.errors import ProviderError
from mactl.schema.teardown import TeardownInputs

Context = StageContext[TeardownInputs]


class TeardownProvider(BaseProvider[TeardownInputs]):
    type = "teardown"
    Inputs = TeardownInputs
    replace_on = frozenset({"source", "target"})
    available = True

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.capture import fleet
        from mactl.capture import log as capture_log
        from mactl.capture.fleet_lookup import find_log

        inputs = ctx.inputs
        registry = fleet.read_registry(ctx.workdir, inputs.source.name)
        stopped_proxies = []
        proxies = [{"url": u.rstrip("/")} for u in inputs.proxies] or list(registry.get("proxies") or [])
        for p in proxies:
            doc = fleet.health(p["url"])
            pid = (doc or {}).get("pid") or p.get("pid")
            if fleet.stop(int(pid) if pid else None):
                stopped_proxies.append(p["url"])
        stopped_replayers = []
        replay_status_indices: list[str] = []  # a Kubernetes replay's status documents, by exact name
        for key, value in registry.items():
            if not key.startswith("replayer:") or not value:
                continue
            if value.get("kubernetes"):
                from mactl.executors.kubernetes_replay import delete_registered

                if delete_registered(key.split(":", 1)[1], value):
                    stopped_replayers.append(key.split(":", 1)[1])
                if value.get("statusIndex"):
                    replay_status_indices.append(str(value["statusIndex"]))
                if inputs.deleteLog and value.get("tuplesLog"):  # the pods' tuples go with the log
                    capture_log.delete_log(value["tuplesLog"])
            elif fleet.stop(fleet.read_pid(Path(value["pidFile"]))):
                stopped_replayers.append(key.split(":", 1)[1])
        log_deleted = False
        log_cfg = find_log(ctx, inputs.source.name)
        if inputs.deleteLog and log_cfg:
            log_deleted = capture_log.delete_log(log_cfg)
        indices = self._delete_working_indices(inputs, replay_status_indices) if inputs.target is not None else []
        fleet.update_registry(
            ctx.workdir, inputs.source.name, proxies=[], **{k: None for k in registry if k.startswith("replayer:")}
        )
        ctx.log(
            f"{ctx.address}: stopped {len(stopped_proxies)} proxies, {len(stopped_replayers)} replayers; "
            f"log {'deleted' if log_deleted else 'kept'}; {len(indices)} working indices deleted"
        )
        return {
            "stoppedProxies": stopped_proxies,
            "stoppedReplayers": stopped_replayers,
            "logDeleted": log_deleted,
            "deletedIndices": indices,
        }

    def _delete_working_indices(self, inputs: TeardownInputs, exact_names: list[str]) -> list[str]:
        """The working indices matching `workingIndexPatterns`, and the `exact_names` mactl
        made (a Kubernetes replay's status index) where they exist."""
        from opensearchpy.exceptions import NotFoundError, TransportError

        from mactl.cluster import client_for

        assert inputs.target is not None
        client = client_for(inputs.target)
        deleted: list[str] = []
        for name in exact_names:
            try:
                if client.indices.exists(index=name):
                    client.indices.delete(index=name, ignore_unavailable=True)
                    deleted.append(name)
            except TransportError as exc:
                raise ProviderError(f"teardown: cannot delete {name} on {inputs.target.name}: {exc}") from None
        for pattern in inputs.workingIndexPatterns:
            try:
                names = sorted(client.indices.get(index=pattern, allow_no_indices=True, expand_wildcards="all"))
            except NotFoundError:
                continue
            except TransportError as exc:
                raise ProviderError(f"teardown: cannot list {pattern} on {inputs.target.name}: {exc}") from None
            for name in names:
                client.indices.delete(index=name, ignore_unavailable=True)
                deleted.append(name)
        return deleted

    def rollback(self, ctx: Context) -> None:
        ctx.log(f"{ctx.address}: teardown cannot be undone; re-apply capture and replay to rebuild the tooling")
