"""A generic walk of a dependency graph: each vertex once every vertex it waits for succeeded.

Like Terraform's `dag/walk.go`. The caller gives the vertices (in the order ready ones
are preferred), what each waits for, and a `visit` function called, on the scheduler's
thread, for each vertex when it is ready and a slot is free. `visit` says what it did:

- `Done()`: it finished there and then, successfully: its dependents may start;
- `Held(reason)`: it stops there without failing: its dependents never start (`reason`);
- `Run(work)`: `work()` runs on a daemon thread of its own, at most `parallelism` at a
  time; it returns None on success or an error message. A failure stops the walk: no
  new vertex starts, the running ones finish, and the failed vertex's dependents are
  reported as blocked.

`cancel()` (safe from a signal handler) stops the walk the same way, for this walk and
every later one of the same scheduler. The scheduler knows nothing of stages, plans,
providers or the state: what a vertex means is the caller's business.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Done:
    """The visit finished on the scheduler's thread, successfully."""


@dataclass(frozen=True)
class Held:
    """The vertex stops here, not failed; its dependents do not start, for `reason`."""

    reason: str


@dataclass(frozen=True)
class Run:
    """Run `work` on a thread of its own: it returns None on success, else an error message."""

    work: Callable[[], str | None]


Step = Done | Held | Run


@dataclass
class WalkOutcome(Generic[K]):
    """What one walk did. `blocked` maps each vertex that never started because a vertex it
    (transitively) waits for failed or was held, to why; `unvisited` lists, when the walk
    stopped, every vertex it never visited (blocked ones included)."""

    succeeded: list[K] = field(default_factory=list)
    held: list[K] = field(default_factory=list)
    failed: dict[K, str] = field(default_factory=dict)
    blocked: dict[K, str] = field(default_factory=dict)
    unvisited: list[K] = field(default_factory=list)
    stopped: bool = False


class Scheduler(Generic[K]):
    def __init__(self, parallelism: int, *, poll_s: float = 0.5) -> None:
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self.parallelism = parallelism
        self.poll_s = poll_s  # how often the waiting thread wakes (a signal handler runs then)
        self._stopping = False
        self._running: dict[K, threading.Thread] = {}

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> list[K]:
        """The vertices whose work was started and whose end the walk has not seen yet."""
        return list(self._running)

    def cancel(self) -> None:
        """Start nothing more (running work is not interrupted). Safe from a signal handler."""
        self._stopping = True

    def walk(
        self, vertices: Sequence[K], waits: Mapping[K, Collection[K]], visit: Callable[[K], Step]
    ) -> WalkOutcome[K]:
        """Visit every vertex of `vertices` after the ones it waits for (among `vertices`)."""
        outcome: WalkOutcome[K] = WalkOutcome()
        order = {v: i for i, v in enumerate(vertices)}
        remaining = {v: {w for w in waits.get(v, ()) if w in order} for v in vertices}
        dependents: dict[K, list[K]] = {}
        for v, needs in remaining.items():
            for w in needs:
                dependents.setdefault(w, []).append(v)
        ready = [v for v in vertices if not remaining[v]]
        blocked: set[K] = set()
        visited: set[K] = set()
        events: queue.Queue[tuple[K, str | None]] = queue.Queue()

        def release(vertex: K) -> None:
            for dep in dependents.get(vertex, ()):
                remaining[dep].discard(vertex)
                if not remaining[dep] and dep not in blocked:
                    ready.append(dep)

        def block(vertex: K, why: str) -> None:
            stack = [vertex]
            while stack:
                for dep in dependents.get(stack.pop(), ()):
                    if dep not in blocked:
                        blocked.add(dep)
                        outcome.blocked.setdefault(dep, why)
                        stack.append(dep)

        def run(vertex: K, work: Callable[[], str | None]) -> None:
            try:
                error = work()
            except BaseException as exc:  # noqa: BLE001 - a vertex's failure is reported, never lost
                error = f"{type(exc).__name__}: {exc}"
            events.put((vertex, error))

        while True:
            ready.sort(key=order.__getitem__, reverse=True)
            while ready and not self._stopping and len(self._running) < self.parallelism:
                vertex = ready.pop()
                visited.add(vertex)
                step = visit(vertex)
                if isinstance(step, Done):
                    outcome.succeeded.append(vertex)
                    release(vertex)
                elif isinstance(step, Held):
                    outcome.held.append(vertex)
                    block(vertex, step.reason)
                else:
                    thread = threading.Thread(target=run, args=(vertex, step.work), name=f"mactl-{vertex}", daemon=True)
                    self._running[vertex] = thread
                    thread.start()
            if not self._running:
                break
            try:
                vertex, error = events.get(timeout=self.poll_s)
            except queue.Empty:
                continue
            self._running.pop(vertex, None)
            if error is None:
                outcome.succeeded.append(vertex)
                release(vertex)
            else:
                self._stopping = True
                outcome.failed[vertex] = error
                block(vertex, f"{vertex} failed")
        if self._stopping:
            outcome.stopped = True
            outcome.unvisited = [v for v in vertices if v not in visited]
        return outcome
