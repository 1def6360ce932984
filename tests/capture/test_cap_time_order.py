"""The replayer's merge of a log's partitions into stored-time order (`TimeOrder`)."""

from __future__ import annotations

from mactl.capture.log import LogEntry
from mactl.capture.time_order import TimeOrder


def _entry(partition: str, offset: int, stamp: float) -> LogEntry:
    return LogEntry(partition, offset, "k", b"", stamp)


def _order(entries: list[LogEntry]) -> list[tuple[str, int]]:
    return [(e.partition, e.offset) for e in entries]


def test_runs_of_two_partitions_come_out_merged_by_time_each_partition_in_its_order() -> None:
    order = TimeOrder()
    # A consumer's way: all of partition 0's run, then partition 1's.
    order.add([_entry("0", 0, 1.0), _entry("0", 1, 3.0), _entry("0", 2, 3.0), _entry("0", 3, 5.0)], now=0.0)
    order.add([_entry("1", 0, 2.0), _entry("1", 1, 4.0)], now=0.0)
    out = order.take({"0": 4, "1": 2}, now=0.0)
    assert _order(out) == [("0", 0), ("1", 0), ("0", 1), ("0", 2), ("1", 1), ("0", 3)]
    assert len(order) == 0


def test_an_entry_waits_while_a_partition_with_more_to_read_has_nothing_buffered() -> None:
    order = TimeOrder({"0": 0, "1": 0})
    order.add([_entry("0", 0, 5.0), _entry("0", 1, 6.0)], now=10.0)
    assert order.take({"0": 2, "1": 3}, now=10.1) == []  # partition 1 may hold something earlier
    assert len(order) == 2
    order.add([_entry("1", 0, 1.0)], now=10.2)
    # Partition 1's entry goes first; then it has nothing buffered and more to read, so 0 waits.
    assert _order(order.take({"0": 2, "1": 3}, now=10.2)) == [("1", 0)]
    # Held longer than hold_s, they go out anyway: a stalled partition delays, never stops, the rest.
    assert _order(order.take({"0": 2, "1": 3}, now=10.7)) == [("0", 0), ("0", 1)]


def test_a_partition_read_to_its_end_does_not_hold_the_others_back() -> None:
    order = TimeOrder({"1": 3})  # reading partition 1 starts at its end: nothing to wait for
    order.add([_entry("0", 0, 5.0)], now=0.0)
    assert _order(order.take({"0": 1, "1": 3}, now=0.0)) == [("0", 0)]


def test_forgotten_partitions_drop_their_held_entries_and_take_all_drains_the_rest() -> None:
    order = TimeOrder()
    order.add([_entry("0", 0, 2.0), _entry("1", 0, 1.0), _entry("2", 0, 3.0)], now=0.0)
    order.forget({"1"})
    assert len(order) == 2
    assert _order(order.take_all()) == [("0", 0), ("2", 0)] and len(order) == 0
