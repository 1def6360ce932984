"""Retrying a call to the target through outages: backoff on 429, 5xx and connection errors.

The target may restart, throttle or drop off the network for a while in the middle of a
backfill; a worker waits it out (up to a deadline) instead of failing the shard. Anything
else (a 400, a 404, a conflict) is returned to the caller immediately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from mactl.errors import ProviderError
from mactl.retrying import backoff_delay, retrying

__all__ = ["RETRYABLE_STATUS", "TargetUnavailable", "backoff_delay", "is_retryable", "with_retry"]

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


def with_retry(
    call: Callable[[], T], *, deadline_s: float, what: str, sleep: Callable[[float], object] = time.sleep
) -> T:
    """`call()`, retried on retryable failures until `deadline_s` seconds have passed.

    The one retry loop of `mactl.retrying`, with the backfill's wider idea of retryable
    (any 5xx) and its own error type.
    """
    return retrying(call, what, retry_for_s=deadline_s, transient=is_retryable, give_up=TargetUnavailable, sleep=sleep)
