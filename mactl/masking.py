"""Masking secrets before anything leaves the engine's memory.

Stage inputs carry real secrets (a provider needs the password to connect). Before an
input reaches the state, a plan file, a renderer or a log line it passes through here:
every dotted path in `Stage.sensitive_paths` becomes `(sensitive)`, and then the one
masking rule of `mactl.state.masking` applies (every form of a sensitive variable's
value, URL userinfo, credential-named keys and headers): the state writes with the same
rule, so what a plan shows and what the state records agree. The digest that tells the planner
whether a stage changed is taken over the UNMASKED inputs, so a rotated password is
still a change (shown as `(sensitive)`). This module decides nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from typing import Any

import orjson

from mactl.state.masking import SENSITIVE_MASK, Masker, mask_secrets

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
    masked: dict[str, Any] = mask_secrets(out)[0]  # unchanged: the same object, not a copy
    return masked


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


def masker(sensitive_values: Iterable[object]) -> Masker:
    """The `Masker` for these values (built once per set of values: forms are computed up front)."""
    key = frozenset(v for v in sensitive_values if v is not None)
    found = _maskers.get(key)
    if found is None:
        if len(_maskers) > 64:
            _maskers.clear()
        found = _maskers[key] = Masker(key)
    return found


_maskers: dict[frozenset[object], Masker] = {}


def mask_values(value: Any, sensitive_values: Collection[object]) -> Any:
    """`value` with every string holding a sensitive value (in any form) replaced by the mask."""
    if not sensitive_values:
        return value
    found = masker(sensitive_values)
    return found.value(value) if found else value


def mask_text(text: str, sensitive_values: Iterable[object]) -> str:
    """`text` (an error message, a log line) with every sensitive value, in any form, and URL password replaced."""
    return masker(sensitive_values).text(text)


def path_is_sensitive(path: str, sensitive_paths: Collection[str]) -> bool:
    """True if `path` is, or lies inside or above, a sensitive path."""
    for secret in sensitive_paths:
        if path == secret or path.startswith(secret + ".") or secret.startswith(path + "."):
            return True
    return False
