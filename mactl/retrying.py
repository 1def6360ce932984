"""Waiting out transient cluster errors: one mechanism for every stage.

A cluster that restarts, throttles (429) or sits behind a proxy that answers 502/503/504
for a while must not fail a stage at once. `retrying(call, what)` calls again with
backoff for a bounded time (`retry_for_s`, default `DEFAULT_RETRY_FOR_S`, or the
`MACTL_RETRY_FOR_S` environment variable), saying in one line what it is waiting for
("target http://localhost:29200 unreachable (connection refused); retrying for 1m50s
more"), and gives up with one line (`ClusterUnavailable`), never a raw exception repr.
Anything else (400, 404, a mapping conflict) is raised at once.

`RetryingTransport` puts this under every request of an opensearch-py client, which is
how `mactl.cluster.client_for` builds them. Where the waiting line goes is set by the
apply walker for the stage running on the current thread (`reporting_to(ctx.log)`); a
client remembers the reporter of the thread that made it, so threads a provider starts
report through it too. The backfill's own retries (`mactl.backfill.retry`) use
`retrying` as well.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from opensearchpy import Transport
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, TransportError

from mactl.errors import ProviderError

T = TypeVar("T")
Say = Callable[[str], None]

DEFAULT_RETRY_FOR_S = 120.0
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_SAY_EVERY_S = 5.0  # at most one waiting line this often per call

_reporter: ContextVar[Say | None] = ContextVar("mactl_retry_reporter", default=None)
_patience: ContextVar[float | None] = ContextVar("mactl_retry_patience", default=None)


class ClusterUnavailable(ProviderError):
    """A cluster kept failing with transient errors for longer than the retry time."""


def default_retry_for_s() -> float:
    """How long to wait out transient errors: `MACTL_RETRY_FOR_S` seconds, else 120; never
    longer than a `waiting_at_most` block around the call allows."""
    limit = DEFAULT_RETRY_FOR_S
    raw = os.environ.get("MACTL_RETRY_FOR_S", "").strip()
    if raw:
        try:
            limit = max(0.0, float(raw))
        except ValueError:
            pass
    cap = _patience.get()
    return limit if cap is None else min(limit, cap)


@contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    """Calls in this block (on this thread) wait out transient errors for at most `seconds`.

    For looks taken on the side, like `plan`'s refresh: a stage that must finish its work
    waits two minutes for a restarting cluster, but a preview should say at once that a
    cluster does not answer rather than sit silent for minutes."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


@contextmanager
def reporting_to(say: Say | None) -> Iterator[None]:
    """Send the waiting lines of clients made (and calls retried) in this block to `say`."""
    token = _reporter.set(say)
    try:
        yield
    finally:
        _reporter.reset(token)


def current_reporter() -> Say | None:
    return _reporter.get()


def is_transient(exc: BaseException) -> bool:
    """Connection refused/reset, timeouts, 429, 502, 503, 504: worth waiting out."""
    if isinstance(exc, OSConnectionError):  # includes ConnectionTimeout
        return True
    if isinstance(exc, TransportError):
        return isinstance(exc.status_code, int) and exc.status_code in TRANSIENT_STATUS
    return False


def describe(exc: BaseException) -> str:
    """A few words for what went wrong, never the exception's repr."""
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    if isinstance(exc, OSConnectionError):
        text = f"{exc.info!s} {exc.error!s}".lower()
        for needle, words in (
            ("refused", "connection refused"),
            ("reset", "connection reset"),
            ("name or service not known", "host name not found"),
            ("nodename nor servname", "host name not found"),
            ("no route", "no route to host"),
            ("timed out", "timed out"),
            ("remote end closed", "connection closed"),
            ("ssl", "TLS error"),
        ):
            if needle in text:
                return f"unreachable ({words})"
        return "unreachable"
    if isinstance(exc, TransportError):
        return f"answered HTTP {exc.status_code}"
    return type(exc).__name__


def format_seconds(seconds: float) -> str:
    """110 → "1m50s", 45 → "45s", 3600 → "60m0s"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    return f"{whole // 60}m{whole % 60}s"


def backoff_delay(attempt: int, *, base: float = 0.25, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter: spreads retrying callers out in time."""
    return random.uniform(base, min(cap, base * (2**attempt)))


def retrying(
    call: Callable[[], T],
    what: str,
    *,
    retry_for_s: float | None = None,
    say: Say | None = None,
    transient: Callable[[BaseException], bool] = is_transient,
    give_up: Callable[[str], Exception] = ClusterUnavailable,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`call()`, called again with backoff on transient failures for up to `retry_for_s`.

    `what` names the cluster ("target http://host:9200"). Each wait is said (at most
    every few seconds) through `say`, or the reporter of `reporting_to`; after the time
    is up, `give_up(one line)` is raised. Non-transient errors are raised at once.
    """
    limit = default_retry_for_s() if retry_for_s is None else retry_for_s
    report = say or _reporter.get() or _to_stderr
    started = time.monotonic()
    attempt = 0
    last_said = float("-inf")
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not transient(exc):
                raise
            elapsed = time.monotonic() - started
            delay = backoff_delay(attempt)
            if elapsed + delay > limit:
                raise give_up(
                    f"{what} {describe(exc)}; gave up after retrying for {format_seconds(max(elapsed, limit))}"
                ) from None
            now = time.monotonic()
            if now - last_said >= _SAY_EVERY_S:
                last_said = now
                try:
                    report(f"{what} {describe(exc)}; retrying for {format_seconds(limit - elapsed)} more")
                except Exception:  # noqa: BLE001, S110 - a display problem must not fail the call
                    pass
            sleep(delay)
            attempt += 1


def _to_stderr(line: str) -> None:
    """Where waiting lines go outside a stage (plan's refresh, `mactl backfill …`, workers' logs)."""
    import sys

    print(line, file=sys.stderr, flush=True)


class RetryingTransport(Transport):
    """An opensearch-py transport whose every request goes through `retrying`.

    Extra keyword arguments (taken before the rest reach `Transport`): `retry_what`
    (how messages name the cluster), `retry_for_s` (None: the default) and `retry_say`
    (None: the reporter of the thread that builds the client).
    """

    def __init__(self, hosts: Any, **kwargs: Any) -> None:
        self.retry_what: str = kwargs.pop("retry_what", "cluster")
        self.retry_for_s: float | None = kwargs.pop("retry_for_s", None)
        say: Say | None = kwargs.pop("retry_say", None)
        self.retry_say: Say | None = say if say is not None else _reporter.get()
        super().__init__(hosts, **kwargs)

    def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: int | float | None = None,
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        def once() -> Any:
            return Transport.perform_request(
                self, method, url, params=params, body=body, timeout=timeout, ignore=ignore, headers=headers
            )

        if self.retry_for_s == 0:
            return once()
        return retrying(once, self.retry_what, retry_for_s=self.retry_for_s, say=self.retry_say)
