"""Cluster credentials stay in the config: what the state records of a cluster instead.

A stage's inputs name its clusters (`source`, `target`, `coordinator`: `{name, endpoint,
auth, insecure}`). Providers need the full reference, with its password; the state, a
plan and a plan file do not, and must not hold it even masked. So what is recorded is
`without_credentials(inputs)`: each cluster reduced to its name and a non-secret
fingerprint (the endpoint without userinfo, the auth type, and sigv4's region and
service). When a stage that left the config must be rolled back, `with_credentials`
puts the config's current reference for that cluster name back (`ClusterBook`); when
the config no longer has it, `missing_clusters` says which one, so the plan can refuse
before anything runs.

Nothing here reads the state or the environment; the config's values (variables,
environment, files) are resolved by the loader before they reach the references.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

# Inputs fields that hold a cluster reference, and where the config declares that cluster.
CLUSTER_FIELDS: dict[str, tuple[str, ...]] = {
    "source": ("source",),
    "target": ("target",),
    "coordinator": ("target", "source"),
}


def _is_ref(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and "endpoint" in value


def endpoint_fingerprint(endpoint: Any) -> Any:
    """The endpoint without any `user:password@` (the rest identifies the cluster)."""
    if not isinstance(endpoint, str) or "@" not in endpoint:
        return endpoint
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return endpoint.rsplit("@", 1)[-1]
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def auth_fingerprint(auth: Any) -> Any:
    """What the auth block says without any credential: its type (sigv4: region and service too)."""
    if not isinstance(auth, dict):
        return auth
    kept: dict[str, Any] = {"type": auth.get("type", "none")}
    if kept["type"] == "sigv4":
        kept["region"] = auth.get("region")
        kept["service"] = auth.get("service", "es")
    return kept


def reference(ref: Mapping[str, Any]) -> dict[str, Any]:
    """One cluster reference as recorded: no username, no password, no URL userinfo."""
    out = dict(ref)
    if "endpoint" in out:
        out["endpoint"] = endpoint_fingerprint(out["endpoint"])
    if "auth" in out:
        out["auth"] = auth_fingerprint(out["auth"])
    return out


# id(cluster dict) → (that dict, its reference). Stages share one dict per cluster (see
# `mactl.graph.inputs`), so 12,000 stages reduce a handful of clusters once each; the
# original is kept in the entry so its id cannot be reused while cached.
_REDUCED: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


def _reduced(value: dict[str, Any]) -> dict[str, Any]:
    found = _REDUCED.get(id(value))
    if found is not None and found[0] is value:
        return found[1]
    if len(_REDUCED) > 256:
        _REDUCED.clear()
    reduced = reference(value)
    if reduced == value:
        reduced = value  # nothing to drop: callers keep the original (no copy)
    _REDUCED[id(value)] = (value, reduced)
    return reduced


def without_credentials(inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every cluster reference reduced to `reference`; `inputs` itself when
    none holds anything to drop (inputs are shared and read-only: nothing is edited, and
    the reduced references are shared too)."""
    out = inputs
    for key in CLUSTER_FIELDS:
        value = inputs.get(key)
        if not _is_ref(value):
            continue
        reduced = _reduced(value)
        if reduced is not value:
            if out is inputs:
                out = dict(inputs)
            out[key] = reduced
    return out


@dataclass
class ClusterBook:
    """The config's clusters by role and name, as full references (with credentials)."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def find(self, key: str, name: str) -> dict[str, Any] | None:
        for role in CLUSTER_FIELDS.get(key, ()):
            found = (self.sources if role == "source" else self.targets).get(name)
            if found is not None:
                return found
        return None


def _needs_secret(ref: Mapping[str, Any]) -> bool:
    auth = ref.get("auth")
    return isinstance(auth, dict) and auth.get("type", "none") == "basic"


def missing_clusters(recorded: Mapping[str, Any], book: ClusterBook) -> list[tuple[str, str]]:
    """(role, name) of each cluster a recorded stage needs credentials for that the config
    no longer declares. A cluster without credentials (auth none; sigv4, whose keys come
    from the AWS chain) is never missing: the recorded endpoint is enough."""
    found: list[tuple[str, str]] = []
    for key in CLUSTER_FIELDS:
        value = recorded.get(key)
        if _is_ref(value) and book.find(key, value["name"]) is None and _needs_secret(value):
            found.append((CLUSTER_FIELDS[key][0], value["name"]))
    return found


def with_credentials(recorded: Mapping[str, Any], book: ClusterBook) -> dict[str, Any]:
    """A recorded stage's inputs with each cluster the config declares put back in full
    (endpoint and auth as the config says now); the others as recorded."""
    out = dict(recorded)
    for key in CLUSTER_FIELDS:
        value = recorded.get(key)
        if _is_ref(value):
            current = book.find(key, value["name"])
            if current is not None:
                out[key] = current
    return out
