"""Retrying a call to the target through outages: backoff on 429, 5xx and connection errors.

The target may restart, throttle or drop off the network for a while in the middle of a
backfill; a worker waits it out (up to a deadline) instead of failing the shard. Anything
else (a 400, a 404, a conflict) is returned to the caller immediately.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from mactl.errors import ProviderError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class TargetUnavailable(ProviderError):
    """The target kept failing for longer than the retry deadline."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, OSConnectionError):  # includes ConnectionTimeout
        return True
    if isinstance(exc, TransportError):
        return isinstance(exc.status_code, int) and exc.status_code in RETRYABLE_STATUS
    return False


def backoff_delay(attempt: int, *, base: float = 0.25, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter: spreads retrying workers out in time."""
    return random.uniform(base, min(cap, base * (2**attempt)))


def with_retry(
    call: Callable[[], T], *, deadline_s: float, what: str, sleep: Callable[[float], object] = time.sleep
) -> T:
    """`call()`, retried on retryable failures until `deadline_s` seconds have passed."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_retryable(exc):
                raise
            if time.monotonic() - started > deadline_s:
                raise TargetUnavailable(f"{what}: the target kept failing for {deadline_s:.0f}s ({exc})") from None
            sleep(backoff_delay(attempt))
            attempt += 1
