"""Can this executor's Job be run at all? Asked before apply rolls anything back.

A backfill or replay on `executor: {type: kubernetes}` needs, at run time: a kubeconfig that
loads, an API server that answers, the namespace, the service account and the Secrets the
pods reference, and the right to create, read, scale and delete the Job and its Secret and
to list its pods. Finding any of that out after `apply` has rolled the stage back leaves
the target emptied and the migration stuck, so the preflight (and `plan`, as a warning)
asks first.

It only reads: `GET` of the namespace, service account and Secrets (a 403 there means
"cannot tell", not a problem: RBAC may hide them from the runner while the pods can still
use them), and one SelfSubjectAccessReview per permission, which asks the API server's own
authorizer (RBAC, webhooks...) and so is right where reading Roles would guess. Each
request has the preflight's timeout and no retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mactl.errors import MactlError
from mactl.schema.executor import KubernetesExecutor
from mactl.state.masking import mask_url_password


@dataclass(frozen=True)
class Permission:
    """One thing the stage does to the cluster (a SelfSubjectAccessReview's resource attributes)."""

    verb: str
    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}"


# What `JobControl` does: create/adopt/scale/delete the Job, write and delete its Secret, and
# look at its pods (`pods/log`, read only for a failed pod's last lines, is not required).
NEEDED = (
    Permission("create", "batch", "jobs"),
    Permission("get", "batch", "jobs"),
    Permission("patch", "batch", "jobs"),
    Permission("delete", "batch", "jobs"),
    Permission("create", "", "secrets"),
    Permission("patch", "", "secrets"),
    Permission("delete", "", "secrets"),
    Permission("list", "", "pods"),
)


def job_problems(executor: KubernetesExecutor, config_dir: Path | None, timeout_s: float) -> list[str]:
    """Why the stage's Job could not be run now (one line each), or [] when it could."""
    from mactl.executors.kubernetes import api_client

    where = f"executor kubernetes (namespace {executor.namespace})"
    try:
        api = api_client(executor, config_dir, retries=0)
    except MactlError as exc:
        return [exc.message]
    server = mask_url_password(str(api.configuration.host))[0]
    try:
        problems = _namespace_objects(api, executor, timeout_s)
        if problems and problems[0].startswith("namespace "):
            return [f"{where}: {problems[0]}"]  # nothing else can be asked of a missing namespace
        denied = [str(p) for p in NEEDED if not _allowed(api, executor.namespace, p, timeout_s)]
    except _Unreachable as exc:
        return [f"{where}: the API server {server} is not reachable: {exc}"]
    except _Refused as exc:
        return [f"{where}: the API server {server} {exc}"]
    if denied:
        problems.append(f"not allowed to {', '.join(denied)} in namespace {executor.namespace}")
    return [f"{where}: {p}" for p in problems]


class _Unreachable(Exception):
    pass


class _Refused(Exception):
    pass


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(...)`; its `ApiException` on 404 and 403 (missing, or cannot tell); other failures
    as `_Unreachable`/`_Refused`."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status in (403, 404):
            return exc
        if exc.status == 401:
            raise _Refused("refused the credentials (HTTP 401)") from None
        raise _Refused(f"answered HTTP {exc.status} ({exc.reason})") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _Unreachable(_cause(exc)) from None


def _missing(found: Any) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(found, ApiException) and found.status == 404


def _namespace_objects(api: Any, executor: KubernetesExecutor, timeout_s: float) -> list[str]:
    """The namespace, service account and Secrets the pods need, where the runner may see them."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    ns = executor.namespace
    if _missing(_call(core.read_namespace, ns, _request_timeout=timeout_s)):
        return [f"namespace {ns} does not exist"]
    problems: list[str] = []
    account = executor.serviceAccount
    if account and _missing(_call(core.read_namespaced_service_account, account, ns, _request_timeout=timeout_s)):
        problems.append(f"service account {account} does not exist (the Job's pods could not be created)")
    for name in executor.secretRefs:
        if _missing(_call(core.read_namespaced_secret, name, ns, _request_timeout=timeout_s)):
            problems.append(f"secret {name} (in secretRefs) does not exist (the pods could not start)")
    return problems


def _allowed(api: Any, namespace: str, permission: Permission, timeout_s: float) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=permission.verb, group=permission.group, resource=permission.resource
            )
        )
    )
    answer = _call(client.AuthorizationV1Api(api).create_self_subject_access_review, review, _request_timeout=timeout_s)
    if isinstance(answer, ApiException):
        return True  # the review API itself is hidden: cannot tell, so do not block on it
    return bool(answer.status.allowed)


def _cause(exc: BaseException) -> str:
    """The line worth showing: urllib3 wraps "connection refused" in two layers of pool text."""
    reason: object = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Failed to establish a new connection: ", "Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = text.strip("'\" ")
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1].rstrip("'\" ")
    return _short(text)


def _short(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
