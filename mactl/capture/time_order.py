"""Hand a capture log's entries to the replayer in stored-time order across partitions.

A log of several partitions (a Kafka topic; a file log written by several proxies) is read
partition by partition: a consumer returns a run of one partition's records, then a run of
the next one's. Replayed in that order, a later request of one connection is queued before
an earlier one of another, and the replayer's cross-connection wait (`_Causality`) then
waits for a request queued behind the one waiting: each such wait ends in its timeout, and a
replay of a multi-partition log crawls.

So the replayer puts what it reads here and takes entries out as a k-way merge of the
partitions' runs by a time stamp of each entry (the replayer's: the record's source response
time; the time it was stored by default), each partition's own order kept. The merge may only
hand out an entry while no partition that could still hold an earlier one is *starved*:
nothing of it buffered although it has more to read (its next offset is below its end).
An entry held longer than `hold_s` goes out anyway, so a partition that stalls (or one
whose start this reader cannot see) delays the others by at most that, never stops them.

Plain data and a merge: no I/O. The replayer gives it the partitions' end offsets.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping

from mactl.capture.log import LogEntry

HOLD_S = 0.5


class TimeOrder:
    """A merge buffer of log entries; not thread-safe (the replayer's read loop owns it)."""

    def __init__(
        self,
        start: Mapping[str, int] | None = None,
        hold_s: float = HOLD_S,
        stamp: Callable[[LogEntry], float] | None = None,
    ) -> None:
        # Per partition, what is held: (entry, when it arrived here, its stamp).
        self._runs: dict[str, deque[tuple[LogEntry, float, float]]] = {}
        self._stamp = stamp or (lambda entry: entry.timestamp)
        # Per partition, the offset after the last entry read (or where reading starts).
        self._next: dict[str, int] = {str(p): int(o) for p, o in (start or {}).items()}
        self._held = 0
        self.hold_s = hold_s

    def __len__(self) -> int:
        return self._held

    def add(self, entries: Iterable[LogEntry], now: float) -> None:
        for entry in entries:
            self._runs.setdefault(entry.partition, deque()).append((entry, now, self._stamp(entry)))
            self._next[entry.partition] = entry.offset + 1
            self._held += 1

    def forget(self, partitions: Collection[str]) -> None:
        """Partitions this reader no longer owns: their held entries are another's to replay."""
        for partition in partitions:
            run = self._runs.pop(partition, None)
            self._held -= len(run) if run else 0
            self._next.pop(partition, None)

    def take(self, ends: Mapping[str, int], now: float) -> list[LogEntry]:
        """The entries that may go out now, oldest first. `ends`: the end offset of each
        partition this reader owns (the next offset a writer will fill)."""
        out: list[LogEntry] = []
        heap = [(run[0][2], partition) for partition, run in self._runs.items() if run]
        heapq.heapify(heap)
        starved = self._starved(ends)
        while heap:
            _stamp, partition = heapq.heappop(heap)
            run = self._runs[partition]
            entry, arrived, _ = run[0]
            if starved and now - arrived < self.hold_s:
                break  # a starved partition may still hold something earlier: wait for it
            run.popleft()
            self._held -= 1
            out.append(entry)
            if run:
                heapq.heappush(heap, (run[0][2], partition))
            elif self._next.get(partition, 0) < ends.get(partition, 0):
                starved = True
        return out

    def take_all(self) -> list[LogEntry]:
        """Everything held, in merge order (when stopping: what was read is replayed)."""
        return self.take({}, float("inf"))

    def _starved(self, ends: Mapping[str, int]) -> bool:
        return any(not self._runs.get(p) and self._next.get(p, 0) < end for p, end in ends.items())
