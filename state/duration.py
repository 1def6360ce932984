"""Parse the `-lock-timeout` style durations users type: `0`, `30s`, `5m`, `1h30m`, `250ms`."""

from __future__ import annotations

import re

from mactl.errors import ConfigError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, *, name: str = "-lock-timeout") -> float:
    """Seconds in `text`. A bare number means seconds, as Terraform's `-lock-timeout=0` does.

    `name` is the argument the text came from, so a bad value names it.
    """
    value = text.strip().lower()
    if not value:
        raise ConfigError(f"{name}: empty duration", hint="use e.g. 0, 30s, 5m or 1h")
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ConfigError(f"{name}: duration {text!r} is negative")
        return seconds
    pos = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ConfigError(f"{name}: {text!r} is not a duration", hint="use e.g. 0, 30s, 5m, 1h30m or 250ms")
    return total
