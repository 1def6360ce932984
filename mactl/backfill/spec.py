"""`JobSpec`: everything a worker process needs to take part in one backfill stage.

The provider builds it from the stage inputs; `mactl worker ADDR` builds the same one
from the same config, so both land on the same working-state index and generation.
It travels to worker processes on stdin (never in a file: it may carry a password).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr

from mactl.schema.backfill import BackfillInputs
from mactl.schema.common import ClusterRef, IndexFilter, SnapshotRepository, TransformSpec
from mactl.state.workdir import StageFiles


@dataclass(frozen=True)
class JobSpec:
    address: str
    target: ClusterRef
    coordinator: ClusterRef
    repository: SnapshotRepository
    snapshot: str
    indices: list[IndexFilter]
    transforms: list[TransformSpec]
    sample_percent: float | None
    sample_max_docs: int | None
    state_index: str
    gen: str
    deadletter: str
    deadletter_endpoint: str | None = None
    transforms_base_dir: str | None = None
    max_batch_docs: int = 1000
    max_batch_bytes: int = 10 * 1024 * 1024
    max_in_flight: int = 2
    max_throughput_mbps: float | None = None  # megabits per second for the whole stage
    throughput_share: int = 1  # how many workers share that budget: each sends at most 1/share of it
    lease_seconds: float = 60.0
    retry_deadline_s: float = 600.0
    on_unmigratable: str = "fail"  # `fail` or `skip` an index the reader cannot rebuild

    def with_deadletter(self, location: str) -> JobSpec:
        return replace(self, deadletter=location)

    def shared_by(self, workers: int) -> JobSpec:
        """This spec for one of `workers` worker processes splitting the stage's throughput cap."""
        return replace(self, throughput_share=max(1, workers))

    @property
    def worker_bytes_per_s(self) -> float | None:
        """One worker's byte-rate cap: the stage's megabits per second, split evenly."""
        if not self.max_throughput_mbps:
            return None
        return self.max_throughput_mbps * 1_000_000 / 8 / max(1, self.throughput_share)

    def to_json(self) -> bytes:
        return orjson.dumps({k: _reveal(v) for k, v in self.__dict__.items()})

    def without_secrets(self) -> tuple[bytes, dict[str, str]]:
        """This spec as JSON with every secret left out, and the secrets by dotted path.

        What a Kubernetes Job carries: the JSON goes into the pod template, the secrets into
        a Secret the pods reference (`with_secrets` puts them back inside the pod)."""
        found: dict[str, str] = {}
        public = {k: _hide(v, k, found) for k, v in self.__dict__.items()}
        return orjson.dumps(public), found

    @classmethod
    def with_secrets(cls, public: bytes, secrets: dict[str, str]) -> JobSpec:
        """The spec `without_secrets` split, whole again."""
        raw = orjson.loads(public)
        for path, value in secrets.items():
            *parents, last = path.split(".")
            node = raw
            for part in parents:
                node = node[part]
            node[last] = value
        return cls.from_json(orjson.dumps(raw))

    @classmethod
    def from_json(cls, data: bytes) -> JobSpec:
        raw = orjson.loads(data)
        raw["target"] = ClusterRef.model_validate(raw["target"])
        raw["coordinator"] = ClusterRef.model_validate(raw["coordinator"])
        raw["repository"] = SnapshotRepository.model_validate(raw["repository"])
        raw["indices"] = [IndexFilter.model_validate(f) for f in raw["indices"]]
        raw["transforms"] = [TransformSpec.model_validate(t) for t in raw["transforms"]]
        return cls(**raw)


def _reveal(value: Any) -> Any:
    """JSON-able form with secrets in clear: only ever sent over a pipe to a child process."""
    if isinstance(value, BaseModel):
        return {k: _reveal(v) for k, v in value.model_dump(by_alias=True).items()}
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def _hide(value: Any, path: str, found: dict[str, str]) -> Any:
    """JSON-able form with every secret replaced by None and collected in `found` by path."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, SecretStr):
        found[path] = value.get_secret_value()
        return None
    if isinstance(value, dict):
        return {k: _hide(v, f"{path}.{k}", found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hide(v, f"{path}.{i}", found) for i, v in enumerate(value)]
    return value


def state_index_name(address: str) -> str:
    """The working-state index of one stage: readable prefix, hashed address for uniqueness."""
    slug = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")[:60]
    digest = hashlib.sha1(address.encode()).hexdigest()[:8]
    return f"mactl-backfill-{slug}-{digest}"


def generation(inputs: BackfillInputs, snapshot_uuid: str | None = None) -> str:
    """Hash of the inputs that decide which documents land where (see `leases`), and of
    the snapshot's UUID when the snapshot stage recorded one: a new snapshot under the
    same name holds other documents and must not inherit the old one's finished units."""
    data = inputs.model_dump(mode="json", include={"repository", "snapshotName", "indices", "transforms", "sample"})
    if snapshot_uuid:
        data["snapshotUuid"] = snapshot_uuid
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def build_spec(
    address: str,
    inputs: BackfillInputs,
    *,
    workdir: Path,
    transforms_base_dir: Path | None = None,
    snapshot: str | None = None,
    snapshot_uuid: str | None = None,
) -> JobSpec:
    """The spec for the backfill stage `address` with its validated `inputs`."""
    deadletter = inputs.deadLetter.location if inputs.deadLetter else str(StageFiles(workdir).backfill_dead_letters)
    return JobSpec(
        address=address,
        target=inputs.target,
        coordinator=inputs.coordinator or inputs.target,
        repository=inputs.repository,
        snapshot=snapshot or inputs.snapshotName,
        indices=list(inputs.indices),
        transforms=list(inputs.transforms),
        sample_percent=inputs.sample.percent if inputs.sample else None,
        sample_max_docs=inputs.sample.maxDocsPerIndex if inputs.sample else None,
        state_index=state_index_name(address),
        gen=generation(inputs, snapshot_uuid),
        deadletter=deadletter,
        deadletter_endpoint=inputs.deadLetter.endpoint if inputs.deadLetter else None,
        transforms_base_dir=str(transforms_base_dir) if transforms_base_dir else None,
        max_batch_docs=inputs.maxBatchDocs,
        max_batch_bytes=inputs.maxBatchBytes,
        max_in_flight=inputs.maxInFlight,
        max_throughput_mbps=inputs.maxThroughputMbps,
        throughput_share=inputs.workers or os.cpu_count() or 1,
        lease_seconds=inputs.leaseSeconds,
        retry_deadline_s=inputs.retryTimeoutSeconds,
        on_unmigratable=inputs.onUnmigratable,
    )
