"""Python-callable metadata transforms used by the tests (`module:function`)."""

from __future__ import annotations

from typing import Any


def add_owner_meta(context: dict[str, Any]) -> dict[str, Any]:
    item = context["item"]
    body = item["body"]
    if item["kind"] == "index":
        body.setdefault("mappings", {}).setdefault("_meta", {})["migrated_from"] = context["source_version"]
    return body


def drop_scratch(context: dict[str, Any]) -> dict[str, Any] | None:
    return None if context["item"]["name"].endswith("scratch") else context["item"]


def explode(context: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("no_such_field")


def semantic_text_as_text(context: dict[str, Any]) -> dict[str, Any]:
    """The transform a `semantic_text` refusal suggests: keep the text, drop the inference."""
    body = context["item"]["body"]
    for spec in (body.get("mappings") or {}).get("properties", {}).values():
        if spec.get("type") == "semantic_text":
            spec.clear()
            spec["type"] = "text"
    return body
