"""Setting a stage up on the working-state index: units, sampling thresholds, generation.

Run by `apply` before it starts workers, and by every `mactl worker` that joins (it is
create-if-absent, so whoever comes first writes and everyone reads the same result).
"""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch

from mactl.backfill.leases import LeaseStore
from mactl.backfill.sampling import percent_threshold, smallest_hashes_threshold
from mactl.backfill.spec import JobSpec
from mactl.backfill.units import WorkUnit, list_units, unmigratable_indices
from mactl.cluster import client_for
from mactl.errors import ProviderError


def coordinator_client(spec: JobSpec, **extra: Any) -> OpenSearch:
    return client_for(spec.coordinator, **extra)


def lease_store(spec: JobSpec, client: OpenSearch | None = None) -> LeaseStore:
    return LeaseStore(
        client or coordinator_client(spec),
        spec.state_index,
        spec.gen,
        lease_seconds=spec.lease_seconds,
        retry_deadline_s=spec.retry_deadline_s,
    )


def thresholds(spec: JobSpec, repo: Any, units: list[WorkUnit]) -> dict[str, str | None]:
    """Per index: the sampling hash threshold (as a decimal string; None keeps everything)."""
    indices = sorted({u.index for u in units})
    if spec.sample_percent is not None:
        t = percent_threshold(spec.sample_percent)
        return {i: None if t is None else str(t) for i in indices}
    if spec.sample_max_docs is not None:
        out: dict[str, str | None] = {}
        for index in indices:
            ids = (doc.id for u in units if u.index == index for doc in repo.documents(spec.snapshot, index, u.shard))
            t = smallest_hashes_threshold(ids, spec.sample_max_docs)
            out[index] = None if t is None else str(t)
        return out
    return {i: None for i in indices}


def prepare(spec: JobSpec, repo: Any, store: LeaseStore) -> dict[str, Any]:
    """Make sure the stage's generation is registered; return its meta document."""
    meta = store.read_meta()
    if meta is not None:
        return meta
    units, excluded = list_units(repo, spec.snapshot, spec.indices)  # fails early on a bad repository
    unmigratable = unmigratable_indices(repo, spec.snapshot, sorted({u.index for u in units}))
    refuse_unmigratable(spec, unmigratable)
    store.ensure_index()
    meta = {
        "address": spec.address,
        "snapshot": spec.snapshot,
        "units": [{"index": u.index, "shard": u.shard, "total": u.total} for u in units],
        "excluded": excluded,
        "unmigratable": unmigratable,
        "thresholds": thresholds(spec, repo, units),
    }
    meta = store.register(units, meta)
    store.drop_other_generations()
    return meta


def refuse_unmigratable(spec: JobSpec, unmigratable: dict[str, str]) -> None:
    """Stop before any document is written when an index cannot be rebuilt and the config
    did not say to skip such indices. (Skipped, their documents are read and counted in
    the ledger's "not migratable" column.)"""
    if not unmigratable or spec.on_unmigratable == "skip":
        return
    raise ProviderError(
        f"{spec.address}: {len(unmigratable)} selected index(es) cannot be backfilled: "
        + "; ".join(f"{i}: {why}" for i, why in sorted(unmigratable.items()))
        + "; nothing was written",
        hint="leave them out with `onUnmigratable: skip` in the backfill config (they are counted as not migratable), "
        "or exclude them with `indices`",
    )
