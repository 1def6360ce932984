"""Checks providers share in their `preflight` hook: a cluster answers, a snapshot can be read,
a Kubernetes executor's Job can be run.

Each returns one line naming what is wrong (endpoints masked), or None. They only read:
`GET /_cluster/health` with a short timeout and no retries (a plain `GET /` answers 405
on some integ-test builds), and the snapshot's entry in the repository's own metadata.
"""

from __future__ import annotations

from mactl.providers.base import PreflightContext
from mactl.state.masking import mask_url_password
from opensearchpy.exceptions import AuthenticationException, AuthorizationException, ConnectionError, TransportError

from mactl.errors import MactlError
from mactl.schema.common import ClusterRef, SnapshotRepository
from mactl.schema.executor import KubernetesExecutor


def masked_endpoint(endpoint: str) -> str:
    """The endpoint with any password in it masked."""
    return mask_url_password(endpoint)[0]


def cluster_problem(ref: ClusterRef, role: str, ctx: PreflightContext) -> str | None:
    """Why `ref` cannot be used now, or None when `GET /_cluster/health` answers."""
    key = f"{role}\0{ref.model_dump_json()}"
    if key not in ctx.probes:
        ctx.probes[key] = _probe(ref, role, ctx.timeout_s)
    return ctx.probes[key]


def _probe(ref: ClusterRef, role: str, timeout_s: float) -> str | None:
    from mactl.cluster import client_for

    where = f"{role} '{ref.name}' ({masked_endpoint(ref.endpoint)})"
    try:
        client = client_for(ref, timeout=timeout_s, retries=0, retry_for=0)
        client.cluster.health()
    except (AuthenticationException, AuthorizationException) as exc:
        return f"{where} refused the credentials (HTTP {exc.status_code})"
    except ConnectionError as exc:
        return f"{where} is not reachable: {_short(exc.info or exc.error)}"
    except TransportError as exc:
        return f"{where} answered HTTP {exc.status_code} to GET /_cluster/health"
    except MactlError as exc:
        return f"{where}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a preflight reports, it does not crash
        return f"{where} is not reachable: {type(exc).__name__}: {_short(exc)}"
    return None


def kubernetes_problems(executor: KubernetesExecutor, ctx: PreflightContext) -> list[str]:
    """Why the executor's Job could not be run now (asked once per cluster and namespace per run)."""
    from mactl.executors.kubernetes_preflight import job_problems

    key = f"kubernetes\0{executor.model_dump_json(include={'kubeconfig', 'context', 'namespace', 'serviceAccount', 'secretRefs'})}"
    if key not in ctx.probes:
        ctx.probes[key] = "\n".join(job_problems(executor, ctx.config_dir, ctx.timeout_s)) or None
    found = ctx.probes[key]
    return found.split("\n") if found else []


def snapshot_problem(repository: SnapshotRepository, snapshot: str, ctx: PreflightContext | None = None) -> str | None:
    """Why snapshot `snapshot` cannot be read from `repository`'s files, or None (read once per run with `ctx`)."""
    if ctx is None:
        return _read_snapshot(repository, snapshot)
    key = f"snapshot\0{repository.model_dump_json()}\0{snapshot}"
    if key not in ctx.probes:
        ctx.probes[key] = _read_snapshot(repository, snapshot)
    return ctx.probes[key]


def _read_snapshot(repository: SnapshotRepository, snapshot: str) -> str | None:
    from mactl.snapshot_reader import open_repository

    try:
        open_repository(repository).snapshot(snapshot)
    except Exception as exc:  # noqa: BLE001 - reader, S3 or filesystem errors alike: report them
        text = exc.message if isinstance(exc, MactlError) else f"{type(exc).__name__}: {exc}"
        return f"snapshot '{snapshot}' cannot be read from the repository {_describe(repository)}: {_short(text)}"
    return None


def _describe(repository: SnapshotRepository) -> str:
    if repository.type == "s3":
        return f"s3://{repository.bucket}/{(repository.basePath or '').strip('/')}"
    return str(repository.location)


def _short(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    text = mask_url_password(text)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
