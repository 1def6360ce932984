"""The state layer's own defence against storing secrets in plain text.

The engine hands stage inputs over with secrets already masked; this module makes sure
nothing that *looks* like a secret slips through anyway (a provider output holding a
token, an input path the config layer did not mark sensitive). Keys are split into
words (`secretKey`, `secret_key`, `x-api-key` all become words) so that `tokenizer` or
`token_count` settings are not mistaken for credentials; only string values are masked,
so index mappings with a field called `password` keep their structure.
"""

from __future__ import annotations

import re
from typing import Any

SENSITIVE_MASK = "(sensitive)"
MASKS = frozenset({SENSITIVE_MASK, "********"})

_SECRET_WORDS = frozenset({"password", "passwd", "secret", "token", "authorization", "apikey", "credential"})
_SECRET_PAIRS = frozenset({("access", "key"), ("secret", "key"), ("api", "key"), ("private", "key")})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL_USERINFO = re.compile(r"(\w+://[^/\s:@]+):([^/\s@]+)@")
_key_cache: dict[str, bool] = {}


def is_secret_key(key: str) -> bool:
    """True if a mapping key names a credential (`password`, `secretKey`, `x-api-key`, …)."""
    cached = _key_cache.get(key)
    if cached is not None:
        return cached
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
    masked, count = _URL_USERINFO.subn(
        lambda m: f"{m.group(1)}:{SENSITIVE_MASK}@" if m.group(2) not in MASKS else m.group(0), text
    )
    return (masked, count) if masked != text else (text, 0)


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
