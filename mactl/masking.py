"""Masking secrets before anything leaves the engine's memory.

Stage inputs carry real secrets (a provider needs the password to connect). Before an
input reaches the state, a plan file, a renderer or a log line it passes through here:
every dotted path in `Stage.sensitive_paths` becomes `(sensitive)`, and so does any
string containing the value of a sensitive variable. The digest that tells the planner
whether a stage changed is taken over the UNMASKED inputs, so a rotated password is
still a change (shown as `(sensitive)`). This module decides nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from typing import Any

import orjson

from mactl.state.masking import SENSITIVE_MASK

# The engine's mask is the state layer's: its own guard (`mactl.state.masking.MASKS`)
# must recognise values the engine already masked, or it would count them again.
SENSITIVE = SENSITIVE_MASK


def inputs_digest(inputs: Any) -> str:
    """A stable hash of unmasked inputs (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()


def mask_inputs(
    inputs: dict[str, Any], sensitive_paths: Collection[str], sensitive_values: Collection[str] = ()
) -> dict[str, Any]:
    """A copy of `inputs` with every sensitive path and sensitive value masked.

    Only the containers along a masked path are copied; the rest is shared with
    `inputs` (stage inputs are read-only), which keeps masking 12,000 stages cheap.
    """
    out = inputs
    for path in sensitive_paths:
        out = _mask_path(out, path.split("."))
    if sensitive_values:
        out = mask_values(out, sensitive_values)
    return out


def _mask_path(value: Any, parts: list[str]) -> Any:
    if not parts:
        return SENSITIVE if value is not None else None
    head, rest = parts[0], parts[1:]
    key: str | int
    if isinstance(value, dict) and head in value:
        key = head
    elif isinstance(value, list) and head.isdigit() and int(head) < len(value):
        key = int(head)
    else:
        return value
    new = _mask_path(value[key], rest)
    if new is value[key]:
        return value
    # Copy only the container on the masked path (dict or list alike); the rest stays shared.
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = new
    return copy


def mask_values(value: Any, sensitive_values: Collection[str]) -> Any:
    """`value` with every string containing a sensitive value replaced by the mask."""
    secrets = [s for s in sensitive_values if s]
    if not secrets:
        return value
    return _mask_values(value, secrets)


def _mask_values(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return SENSITIVE if any(s in value for s in secrets) else value
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            new = _mask_values(item, secrets)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return changed if changed is not None else value
    if isinstance(value, list):
        items = [_mask_values(item, secrets) for item in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    return value


def mask_text(text: str, sensitive_values: Iterable[str]) -> str:
    """`text` (an error message, a log line) with every sensitive value replaced."""
    for secret in sensitive_values:
        if secret and secret in text:
            text = text.replace(secret, SENSITIVE)
    return text


def path_is_sensitive(path: str, sensitive_paths: Collection[str]) -> bool:
    """True if `path` is, or lies inside or above, a sensitive path."""
    for secret in sensitive_paths:
        if path == secret or path.startswith(secret + ".") or secret.startswith(path + "."):
            return True
    return False
