"""The one masking rule: what counts as a secret, and how it is hidden, in every output and file.

Every writer uses this module (the engine through `mactl.masking`): plan renderers, plan
files, the state and its backups, logs, stderr messages, status and audit. The rule:

- a value of a sensitive variable is masked in every form it can be rendered into (raw,
  URL-encoded, JSON-escaped, base64; a number also as a number): a string containing one
  becomes the mask, and so does a number equal to one (`Masker`);
- the userinfo of any URL is masked (`http://admin:pw@host` → `http://admin:(sensitive)@host`,
  a password holding `@` included; a bare `token@host` → `(sensitive)@host`);
- a string under a key named like a credential is masked: `password`, `secretKey`,
  `x-api-key`, and the header names `Authorization`, `Cookie` and `X-Amz-*` (so the values of
  `capture.filters.skipHeaders` for those headers are masked too).

The engine hands stage inputs over with secrets already masked; this module makes sure
nothing that *looks* like a secret slips through anyway (a provider output holding a
token, an input path the config layer did not mark sensitive). Keys are split into
words (`secretKey`, `secret_key`, `x-api-key` all become words) so that `tokenizer` or
`token_count` settings are not mistaken for credentials; only string values are masked,
so index mappings with a field called `password` keep their structure.
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

SENSITIVE_MASK = "(sensitive)"
MASKS = frozenset({SENSITIVE_MASK, "********"})

_SECRET_WORDS = frozenset(
    {"password", "passwd", "secret", "token", "authorization", "apikey", "credential", "cookie", "cookies"}
)
_SECRET_PAIRS = frozenset({("access", "key"), ("secret", "key"), ("api", "key"), ("private", "key")})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# The userinfo of a URL runs to the LAST `@` before the host (a password may hold `@`).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s\"'<>]*)@")
_key_cache: dict[str, bool] = {}
# Inside `shared_values_masked()`: masked results of big lists, by identity. Stage inputs
# share nested values between stages (a snapshot entry's 2,000-name filter sits in every
# metadata and backfill stage below it), so a plan would otherwise walk the same list
# once per stage. Holds the list itself too, so its id cannot be reused meanwhile.
_shared_memo: ContextVar[dict[tuple[int, bool], tuple[list[Any], list[Any], int]] | None] = ContextVar(
    "mactl_masking_shared_memo", default=None
)
_MEMO_MIN_LEN = 32


@contextmanager
def shared_values_masked() -> Iterator[None]:
    """Within this block, a list is masked once however many values share it.

    Only for values nobody changes meanwhile (a plan's stage inputs are read-only).
    """
    token = _shared_memo.set({})
    try:
        yield
    finally:
        _shared_memo.reset(token)


def is_secret_key(key: str) -> bool:
    """True if a mapping key names a credential (`password`, `secretKey`, `x-api-key`, …)."""
    cached = _key_cache.get(key)
    if cached is not None:
        return cached
    if key[:6].lower() == "x-amz-":  # AWS signing headers: the signature, the session token
        _key_cache[key] = True
        return True
    words = [w.lower() for w in _WORD.findall(key)]
    secret = any(w in _SECRET_WORDS or (w.endswith("s") and w[:-1] in _SECRET_WORDS) for w in words) or any(
        pair in _SECRET_PAIRS for pair in zip(words, words[1:])
    )
    if len(_key_cache) < 10_000:
        _key_cache[key] = secret
    return secret


def mask_url_password(text: str) -> tuple[str, int]:
    """`https://user:pw@host` -> `https://user:(sensitive)@host`, wherever it appears in `text`."""
    if "@" not in text or "://" not in text:
        return text, 0

    def hide(match: re.Match[str]) -> str:
        user, colon, password = match.group(2).partition(":")
        if (password if colon else user) in MASKS:
            return match.group(0)
        return f"{match.group(1)}{user}:{SENSITIVE_MASK}@" if colon else f"{match.group(1)}{SENSITIVE_MASK}@"

    masked, count = _URL_USERINFO.subn(hide, text)
    return (masked, count) if masked != text else (text, 0)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# A numeric secret this short is only masked where a whole value equals it: masking every
# string that contains `42` would hide half a plan and still tell nothing.
_SHORT_NUMBER = 4


def secret_text(value: object) -> str | None:
    """The text of one sensitive value (a number as JSON writes it), or None for nothing to mask."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return value if isinstance(value, str) and value else None


def secret_forms(secret: str) -> set[str]:
    """Every form `secret` can be rendered into: raw, URL-encoded, JSON-escaped, base64."""
    raw = secret.encode("utf-8")
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        html.escape(secret),
    }
    return {form for form in forms if form}


class Masker:
    """Masks the values of sensitive variables (every form) and URL userinfo in text and JSON values."""

    def __init__(self, secrets: Iterable[object]) -> None:
        texts = {t for t in (secret_text(s) for s in secrets) if t is not None}
        self.numbers = {t for t in texts if _NUMBER.fullmatch(t)}
        self.forms = sorted(
            {f for t in texts if not (t in self.numbers and len(t) < _SHORT_NUMBER) for f in secret_forms(t)},
            key=len,
            reverse=True,
        )
        self.exact = {t for t in self.numbers if len(t) < _SHORT_NUMBER}

    def __bool__(self) -> bool:
        return bool(self.forms or self.numbers)

    def text(self, text: str) -> str:
        """`text` (a message, a log line, a rendered plan) with every secret form and URL password replaced."""
        for form in self.forms:
            if form in text:
                text = text.replace(form, SENSITIVE_MASK)
        return mask_url_password(text)[0]

    def hides(self, text: str) -> bool:
        """True if a string value must be masked as a whole: it holds a secret in some form."""
        return text in self.exact or any(form in text for form in self.forms)

    def value(self, value: Any) -> Any:
        """`value` with every string holding a secret, and every number equal to one, replaced by the mask.

        Containers are copied only along changed paths; an unchanged value is returned as is.
        """
        kind = type(value)
        if kind is str:
            return SENSITIVE_MASK if value not in MASKS and self.hides(value) else value
        if kind is bool or value is None:
            return value
        if kind is int or kind is float:
            return SENSITIVE_MASK if self.numbers and json.dumps(value) in self.numbers else value
        if isinstance(value, dict):
            changed: dict[Any, Any] | None = None
            for key, item in value.items():
                new = self.value(item)
                if new is not item:
                    if changed is None:
                        changed = dict(value)
                    changed[key] = new
            return changed if changed is not None else value
        if isinstance(value, (list, tuple)):
            items = [self.value(item) for item in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        return value


def mask_secrets(value: Any, *, under_secret: bool = False) -> tuple[Any, int]:
    """`value` with every string under a secret-looking key replaced by the mask.

    A string (or a list of strings) directly under a secret-looking key is masked; a
    mapping under one is judged by its own keys, so `{"password": {"type": "keyword"}}`
    in index mappings keeps its shape. A password inside a URL (`https://u:pw@host`) is
    masked wherever it appears.

    Returns the masked value and how many strings were masked. Values already masked,
    empty strings and non-strings are kept. The input is not modified: a masked copy is
    built only along paths that change, so the common case (nothing to mask) allocates
    nothing. This runs over every stage on every state write, hence the plain loops.
    """
    kind = type(value)
    if kind is str:
        if under_secret and value and value not in MASKS:
            return SENSITIVE_MASK, 1
        return mask_url_password(value) if "@" in value else (value, 0)
    if kind is dict:
        return _mask_dict(value)
    if kind is list:
        return _mask_list(value, under_secret)
    if isinstance(value, dict):  # subclasses: rare, take the general path
        return _mask_dict(dict(value))
    if isinstance(value, (list, tuple)):
        return _mask_list(list(value), under_secret)
    if isinstance(value, str):
        return mask_secrets(str(value), under_secret=under_secret)
    return value, 0


def _secret(key: str) -> bool:
    cached = _key_cache.get(key)
    return cached if cached is not None else is_secret_key(key)


def _mask_dict(value: dict[str, Any]) -> tuple[dict[str, Any], int]:
    changed: dict[str, Any] | None = None
    count = 0
    new: object  # the masked item: a string, or a masked copy of a dict or list
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if item and _secret(key):
                if item in MASKS:
                    continue
                new, n = SENSITIVE_MASK, 1
            elif "@" in item:
                new, n = mask_url_password(item)
            else:
                continue
        elif kind is dict:
            new, n = _mask_dict(item)  # judged by its own keys: a mapping's `password` field stays
        elif kind is list:
            new, n = _mask_list(item, _secret(key))
        elif kind in (int, float, bool) or item is None:
            continue
        else:
            new, n = mask_secrets(item, under_secret=_secret(key))
        if n:
            if changed is None:
                changed = dict(value)
            changed[key] = new
            count += n
    return (changed if changed is not None else value), count


def _mask_list(value: list[Any], under_secret: bool) -> tuple[list[Any], int]:
    memo = _shared_memo.get() if len(value) >= _MEMO_MIN_LEN else None
    if memo is not None:
        found = memo.get((id(value), under_secret))
        if found is not None:
            return found[1], found[2]
        masked, count = _mask_list_items(value, under_secret)
        memo[(id(value), under_secret)] = (value, masked, count)
        return masked, count
    return _mask_list_items(value, under_secret)


def _mask_list_items(value: list[Any], under_secret: bool) -> tuple[list[Any], int]:
    changed: list[Any] | None = None
    count = 0
    for i, item in enumerate(value):
        kind = type(item)
        if kind in (int, float, bool) or item is None:
            continue
        if kind is str and not under_secret and "@" not in item:
            continue
        new, n = mask_secrets(item, under_secret=under_secret)
        if n:
            if changed is None:
                changed = list(value)
            changed[i] = new
            count += n
    return (changed if changed is not None else value), count
