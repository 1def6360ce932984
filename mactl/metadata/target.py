"""Reading, comparing, creating and deleting metadata items on the target cluster.

The metadata provider decides WHAT to do; this module knows HOW each item kind maps onto
the target's REST API, and how to compare an existing item with the one mactl would
create (so a conflict shows a readable deepdiff instead of a bare "already exists").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from deepdiff import DeepDiff
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.metadata.items import normalise_settings
from mactl.metadata.written_back import canonical_aliases, comparable_mappings

_PATHS = {
    "legacy_template": "/_template/{name}",
    "component_template": "/_component_template/{name}",
    "index_template": "/_index_template/{name}",
    "index": "/{name}",
    "pipeline": "/_ingest/pipeline/{name}",
}


class CreateFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def error_reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        cause = (err.get("root_cause") or [{}])[0]
        reason = cause.get("reason") or err.get("reason")
        outer = err.get("reason")
        if outer and reason and outer != reason and "Failed to parse mapping" in outer:
            return f"{outer}"
        return str(reason or exc.error)
    return str(err or exc.error)


def existing_index_names(client: OpenSearch) -> set[str]:
    rows = client.cat.indices(h="index", format="json", expand_wildcards="all")
    return {r["index"] for r in rows}


def fetch(client: OpenSearch, kind: str, name: str) -> dict[str, Any] | None:
    """The item as the target has it, in the same shape mactl creates, or None."""
    try:
        if kind == "index":
            found = client.indices.get(index=name, flat_settings=True)
            body = found.get(name) or next(iter(found.values()))
            return {
                "settings": body.get("settings", {}),
                "mappings": body.get("mappings", {}),
                "aliases": body.get("aliases", {}),
            }
        if kind == "pipeline":
            found = client.transport.perform_request("GET", _PATHS[kind].format(name=name))
            # GET _ingest/pipeline/<id> maps the id to the pipeline's body
            return cast("dict[str, Any] | None", (found or {}).get(name))
        if kind == "legacy_template":
            found = client.indices.get_template(name=name, flat_settings=True)
            # opensearch-py is untyped: GET _template maps each template name to its body
            raw = cast("dict[str, Any] | None", found.get(name))
            if raw is None:
                return None
            raw["settings"] = normalise_settings(raw.get("settings"))
            return raw
        key, inner = (
            ("component_templates", "component_template")
            if kind == "component_template"
            else ("index_templates", "index_template")
        )
        found = client.transport.perform_request(
            "GET", _PATHS[kind].format(name=name), params={"flat_settings": "true"}
        )
        for entry in found.get(key) or []:
            if entry["name"] == name:
                # untyped response: each entry is {"name": ..., "<kind>": {template body}}
                body = cast(dict[str, Any], entry[inner])
                tmpl = body.get("template")
                if isinstance(tmpl, dict) and "settings" in tmpl:
                    tmpl["settings"] = normalise_settings(tmpl["settings"])
                return body
        return None
    except NotFoundError:
        return None


def _settings_view(settings: dict[str, Any]) -> dict[str, Any]:
    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, bool):
            return str(v).lower()
        return str(v)

    return {k: norm(v) for k, v in settings.items()}


def _written_back(left: dict[str, Any], right: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two bodies' mappings and aliases in one form, what the target writes back by itself
    left out (`mactl.metadata.written_back`)."""
    left, right = dict(left), dict(right)
    if "mappings" in left:
        left["mappings"], right["mappings"] = comparable_mappings(left["mappings"], right.get("mappings"))
    for side in (left, right):
        if "aliases" in side:
            side["aliases"] = canonical_aliases(side["aliases"])
    return left, right


def _comparable(kind: str, desired: dict[str, Any], actual: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Views of both sides restricted to what mactl sets, so cluster-added keys don't count,
    with mappings and aliases in one form, so what the target writes back by itself (its
    defaults, its spelling of a value) doesn't count either."""

    def settings_pair(d: dict[str, Any], a: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        dv = _settings_view(normalise_settings(d))
        av = _settings_view(normalise_settings(a))
        return dv, {k: av.get(k, "<unset>") for k in dv}

    if kind in ("index", "legacy_template"):
        ds, as_ = settings_pair(desired.get("settings") or {}, actual.get("settings") or {})
        left = {**desired, "settings": ds}
        right = {k: actual.get(k) for k in desired}
        right["settings"] = as_
        if kind == "index":
            right["aliases"] = {
                k: (actual.get("aliases") or {}).get(k, "<missing>") for k in desired.get("aliases") or {}
            }
        return _written_back(left, right)
    left = dict(desired)
    right = {k: actual.get(k) for k in desired}
    dt, at = desired.get("template"), actual.get("template")
    if isinstance(dt, dict):
        at = at if isinstance(at, dict) else {}
        ds, as_ = settings_pair(dt.get("settings") or {}, at.get("settings") or {})
        left["template"], right["template"] = _written_back(
            {**dt, "settings": ds}, {**{k: at.get(k) for k in dt}, "settings": as_}
        )
    return left, right


def differences(kind: str, desired: dict[str, Any], actual: dict[str, Any]) -> str:
    """'' when the target already has what mactl would create; else a readable deepdiff."""
    left, right = _comparable(kind, desired, actual)
    diff = DeepDiff(left, right, ignore_order=True, verbose_level=2)
    if not diff:
        return ""
    return diff.pretty() or str(diff)


# How the target names a setting it refuses (OpenSearch 2.19 answers all three ways).
_REFUSED_SETTING = re.compile(
    r"unknown setting \[([^\]]+)\]|Setting \[([^\]]+)\] was removed|Setting (\S+) was removed"
)


def create(client: OpenSearch, kind: str, name: str, body: dict[str, Any]) -> list[str]:
    """Create one item. Returns notes for settings the target refused and mactl dropped."""
    return create_as(client, kind, name, body)[1]


def create_as(client: OpenSearch, kind: str, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Create one item. Returns the body as created and notes for the settings dropped from it.

    "Drop settings the target rejects" is learnt by trying: when the target answers
    `unknown setting [x]`, mactl drops `x`, says so in the report, and tries again. The
    body returned lacks them: it is what the target was asked to hold, so what a later
    comparison (validation's mappings check) must expect.
    """
    dropped: list[str] = []
    for _attempt in range(20):
        try:
            if kind == "index":
                client.indices.create(index=name, body=body)
            elif kind == "legacy_template":
                client.indices.put_template(name=name, body=body)
            else:
                client.transport.perform_request("PUT", _PATHS[kind].format(name=name), body=body)
            return body, [f"drop-rejected-settings: target refused {', '.join(dropped)}; dropped"] if dropped else []
        except TransportError as exc:
            reason = error_reason(exc)
            match = _REFUSED_SETTING.search(reason)
            refused = next((g for g in match.groups() if g), None) if match else None
            settings = _settings_of(kind, body)
            if refused and settings is not None and refused in settings:
                dropped.append(refused)
                body = _without_setting(kind, body, refused)
                continue
            raise CreateFailed(f"the target refused it: {reason}") from None
    raise CreateFailed(f"the target kept refusing settings: {', '.join(dropped)}")


def _settings_of(kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "pipeline":
        return None
    if kind in ("index", "legacy_template"):
        return body.get("settings")
    tmpl = body.get("template")
    return tmpl.get("settings") if isinstance(tmpl, dict) else None


def _without_setting(kind: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    body = dict(body)
    if kind in ("index", "legacy_template"):
        body["settings"] = {k: v for k, v in body["settings"].items() if k != key}
    else:
        tmpl = dict(body["template"])
        tmpl["settings"] = {k: v for k, v in tmpl["settings"].items() if k != key}
        body["template"] = tmpl
    return body


def delete(client: OpenSearch, kind: str, name: str) -> None:
    """Delete one item; an item already gone is fine."""
    try:
        if kind == "index":
            client.indices.delete(index=name, expand_wildcards="none")
        elif kind == "legacy_template":
            client.indices.delete_template(name=name)
        else:
            client.transport.perform_request("DELETE", _PATHS[kind].format(name=name))
    except NotFoundError:
        return


def delete_indices(client: OpenSearch, names: Iterable[str], batch: int = 50) -> None:
    """Delete exact index names in batches (one request per batch keeps 1,000 fast)."""
    pending = sorted(names)
    for i in range(0, len(pending), batch):
        chunk = pending[i : i + batch]
        try:
            client.indices.delete(index=",".join(chunk), expand_wildcards="none", ignore_unavailable=True)
        except NotFoundError:
            continue
