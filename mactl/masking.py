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
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson

from mactl.state.masking import SENSITIVE_MASK, Masker, mask_secrets

# The engine's mask is the state layer's: its own guard (`mactl.state.masking.MASKS`)
# must recognise values the engine already masked, or it would count them again.
SENSITIVE = SENSITIVE_MASK


#: The prefix of an `inputs_digest` that hashed big lists on their own; a recorded digest
#: of such inputs without it is a legacy one (`legacy_inputs_digest`), written before.
DIGEST_PREFIX = "2:"
# A list of at least this many items enters a digest as its own digest (see `inputs_digest`).
_DIGEST_LIST_ITEMS = 64
# Inside `shared_digests()`: a big list's digest fragment, by identity (the list held).
_list_digests: ContextVar[dict[int, tuple[list[Any], orjson.Fragment]] | None] = ContextVar(
    "mactl_list_digests", default=None
)


def inputs_digest(inputs: Any) -> str:
    """A stable hash of unmasked inputs (key order does not matter).

    Every list of at least 64 items is hashed on its own and enters the stage's hash as its
    digest: stage inputs share such lists (a snapshot entry's 2,000-name filter is in every
    metadata and backfill stage below it), and inside `shared_digests()` each is hashed once
    for the whole plan, so a stage's digest costs the same whatever the list's length. Such
    a digest starts with `DIGEST_PREFIX`; inputs without a big list keep the legacy digest,
    so what states and plan files recorded for them stays valid.
    """
    condensed = _condensed(inputs, _list_digests.get())
    if condensed is inputs:
        return legacy_inputs_digest(inputs)
    return DIGEST_PREFIX + hashlib.sha256(orjson.dumps(condensed, option=orjson.OPT_SORT_KEYS)).hexdigest()


def legacy_inputs_digest(inputs: Any) -> str:
    """The digest states recorded before `DIGEST_PREFIX`: one hash over all the inputs' JSON."""
    return hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()


def same_digest(recorded: str, digest: str, inputs: Any) -> bool:
    """Whether a recorded digest is that of `inputs` (whose `inputs_digest` is `digest`),
    whichever way it was made: a legacy digest is checked by hashing `inputs` again."""
    if recorded == digest:
        return True
    return (
        digest.startswith(DIGEST_PREFIX)
        and bool(recorded)
        and not recorded.startswith(DIGEST_PREFIX)
        and recorded == legacy_inputs_digest(inputs)
    )


@contextmanager
def shared_digests() -> Iterator[None]:
    """Within this block, a big list is hashed once however many inputs share it.

    Only for values nobody changes meanwhile (a plan's stage inputs are read-only).
    """
    token = _list_digests.set({})
    try:
        yield
    finally:
        _list_digests.reset(token)


def _condensed(value: Any, memo: dict[int, tuple[list[Any], orjson.Fragment]] | None) -> Any:
    """`value` with each big list replaced by its digest (containers copied only where one is)."""
    kind = type(value)
    if kind is dict:
        out = value
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                new = _condensed(item, memo)
                if new is not item:
                    if out is value:
                        out = dict(value)
                    out[key] = new
        return out
    if kind is list:
        if len(value) >= _DIGEST_LIST_ITEMS:
            found = memo.get(id(value)) if memo is not None else None
            if found is not None:
                return found[1]
            digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
            fragment = orjson.Fragment(orjson.dumps({"sha256": digest, "items": len(value)}))
            if memo is not None:
                memo[id(value)] = (value, fragment)
            return fragment
        out = value
        for i, item in enumerate(value):
            if type(item) is dict or type(item) is list:
                new = _condensed(item, memo)
                if new is not item:
                    if out is value:
                        out = list(value)
                    out[i] = new
        return out
    return value


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
