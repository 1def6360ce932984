"""The Kafka capture log: a real broker topic, created if missing.

Records are keyed by connection id, so the default partitioner sends every request of
one client connection to one partition and Kafka keeps their order. Producers wait for
`acks=all` (idempotent) before an append is acknowledged, so the proxy answers a client
only once its write is on the broker. Readers use a consumer group with auto-commit off:
the replayer commits the next offset to read itself, after the target answered.
Partitions are named by their number as a string, so positions are JSON objects.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

# NewTopic is documented under confluent_kafka.admin, but that package imports it from
# cimpl without re-exporting it (no `__all__` entry, no `as NewTopic`): a typing bug there.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from mactl.capture.log import LogEntry, Offsets
from mactl.errors import ConfigError, ProviderError

_MAX_MESSAGE = 16 * 1024 * 1024
_TIMEOUT_S = 15.0
# How soon the group hands a dead replayer's partitions to the others (broker minimum: 6 s).
_SESSION_TIMEOUT_MS = 10_000


def _bootstrap(cfg: dict[str, Any]) -> str:
    servers = cfg.get("bootstrapServers")
    if not servers:
        raise ConfigError("log.bootstrapServers: a kafka capture log needs the broker list")
    return str(servers)


def _topic(cfg: dict[str, Any]) -> str:
    return str(cfg.get("topic") or "mactl-capture")


def _admin(cfg: dict[str, Any]) -> AdminClient:
    return AdminClient({"bootstrap.servers": _bootstrap(cfg)})


def _partitions(cfg: dict[str, Any], client: AdminClient | Consumer) -> list[int]:
    # all topics, not `list_topics(topic)`: naming the topic can auto-create it on brokers
    # with auto.create.topics.enable, with the broker's default partition count
    md = client.list_topics(timeout=_TIMEOUT_S)
    topic = md.topics.get(_topic(cfg))
    if topic is None or topic.error is not None:
        return []
    return sorted(topic.partitions)


def init_log(cfg: dict[str, Any]) -> None:
    admin = _admin(cfg)
    wanted = max(1, int(cfg.get("partitions") or 1))
    try:
        existing = _partitions(cfg, admin)
    except KafkaException as exc:
        raise ProviderError(f"kafka {_bootstrap(cfg)}: cannot list topics: {exc}") from None
    if existing:
        return
    topic = NewTopic(
        _topic(cfg), num_partitions=wanted, replication_factor=-1, config={"max.message.bytes": str(_MAX_MESSAGE)}
    )
    fut = admin.create_topics([topic], operation_timeout=_TIMEOUT_S)[_topic(cfg)]
    try:
        fut.result(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise ProviderError(f"kafka: cannot create topic {_topic(cfg)}: {exc}") from None
    deadline = time.monotonic() + _TIMEOUT_S
    while time.monotonic() < deadline and len(_partitions(cfg, admin)) < wanted:
        time.sleep(0.1)


def delete_log(cfg: dict[str, Any]) -> bool:
    admin = _admin(cfg)
    if not _partitions(cfg, admin):
        return False
    fut = admin.delete_topics([_topic(cfg)], operation_timeout=_TIMEOUT_S)[_topic(cfg)]
    try:
        fut.result(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return False
        raise ProviderError(f"kafka: cannot delete topic {_topic(cfg)}: {exc}") from None
    return True


def describe(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "kafka",
        "bootstrapServers": _bootstrap(cfg),
        "topic": _topic(cfg),
        "partitions": int(cfg.get("partitions") or 1),
    }


class KafkaLogWriter:
    """Idempotent producer; a thread serves delivery callbacks, which resolve futures."""

    def __init__(self, cfg: dict[str, Any], producer_id: str) -> None:
        self._topic = _topic(cfg)
        self._producer = Producer(
            {
                "bootstrap.servers": _bootstrap(cfg),
                "client.id": f"mactl-proxy-{producer_id}",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "message.max.bytes": _MAX_MESSAGE,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def submit(self, key: str, payload: bytes) -> Future[tuple[str, int]]:
        fut: Future[tuple[str, int]] = Future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                fut.set_exception(ProviderError(f"kafka delivery failed: {err}"))
            elif (offset := msg.offset()) is None:  # a delivered record always has one
                fut.set_exception(ProviderError("kafka delivery report without an offset"))
            else:
                fut.set_result((str(msg.partition()), offset))

        try:
            self._producer.produce(self._topic, value=payload, key=key.encode(), on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            fut.set_exception(ProviderError(f"kafka produce failed: {exc}"))
        return fut

    def append(self, key: str, payload: bytes) -> tuple[str, int]:
        return self.submit(key, payload).result(timeout=60)

    def append_nowait(self, key: str, payload: bytes) -> None:
        """Never: a record is stored only once the brokers acknowledge it (`submit`)."""

    def close(self) -> None:
        self._producer.flush(30)
        self._stop.set()
        self._thread.join(timeout=5)


def open_writer(cfg: dict[str, Any], producer_id: str) -> KafkaLogWriter:
    init_log(cfg)
    return KafkaLogWriter(cfg, producer_id)


class KafkaLogReader:
    """A consumer for one group with manual commits: explicitly assigned partitions (`seek`),
    or the ones the group's coordinator hands it (`subscribe`, replayers sharing a group)."""

    def __init__(self, cfg: dict[str, Any], group: str) -> None:
        self._cfg = cfg
        self._topic = _topic(cfg)
        self._subscribed = False
        self._consumer = Consumer(
            {
                "bootstrap.servers": _bootstrap(cfg),
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "session.timeout.ms": _SESSION_TIMEOUT_MS,
            }
        )

    def _all_partitions(self) -> list[int]:
        return _partitions(self._cfg, self._consumer)

    def seek(self, offsets: Offsets) -> None:
        assignment = [
            TopicPartition(self._topic, p, int(offsets.get(str(p), OFFSET_BEGINNING))) for p in self._all_partitions()
        ]
        if not assignment:
            raise ProviderError(f"kafka: topic {self._topic} does not exist")
        self._consumer.assign(assignment)

    def subscribe(self, on_assign: Callable[[list[str]], None], on_revoke: Callable[[list[str]], None]) -> None:
        """Join the group: Kafka spreads the topic's partitions over its members, each read
        from the group's committed offset (the earliest one when none is committed)."""

        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_assign([str(tp.partition) for tp in partitions])

        def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke([str(tp.partition) for tp in partitions])

        self._subscribed = True
        self._consumer.subscribe([self._topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[LogEntry]:
        out: list[LogEntry] = []
        for msg in self._consumer.consume(num_messages=max_records, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ProviderError(f"kafka consume failed: {err}")
            offset = msg.offset()
            if offset is None:  # a consumed record always has one
                raise ProviderError(f"kafka consume returned a record without an offset (partition {msg.partition()})")
            key = msg.key() or b""
            out.append(
                LogEntry(
                    str(msg.partition()),
                    offset,
                    key.decode(errors="replace"),
                    msg.value() or b"",
                    msg.timestamp()[1] / 1000.0,
                )
            )
        return out

    def commit(self, offsets: Offsets) -> None:
        if not offsets:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, int(p), int(o)) for p, o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException:
            if not self._subscribed:
                raise
            # The group is rebalancing: these partitions may be another member's now. The
            # next commit (after the revoke callback) says what is still ours.

    def committed(self) -> Offsets | None:
        tps = [TopicPartition(self._topic, p) for p in self._all_partitions()]
        if not tps:
            return None
        found = {
            str(tp.partition): tp.offset for tp in self._consumer.committed(tps, timeout=_TIMEOUT_S) if tp.offset >= 0
        }
        return found or None

    def end_offsets(self, *, cached: bool = False) -> Offsets:
        if not cached:
            return _watermarks(self._consumer, self._topic, self._all_partitions())
        # The high watermark each fetch response brought (no request: a query would wait
        # behind the consumer's long-polling fetch, about half a second a partition).
        # The partitions are the ones assigned to this consumer (local; listing the topic's
        # would ask the broker too).
        known: Offsets = {}
        for tp in self._consumer.assignment():
            high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high is not None and high[1] >= 0:
                known[str(tp.partition)] = int(high[1])
        return known

    def close(self) -> None:
        self._consumer.close()


def _watermarks(consumer: Consumer, topic: str, partitions: list[int]) -> Offsets:
    return {
        str(p): int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)[1]) for p in partitions
    }


def open_reader(cfg: dict[str, Any], group: str) -> KafkaLogReader:
    return KafkaLogReader(cfg, group)


def end_offsets(cfg: dict[str, Any]) -> Offsets:
    consumer = Consumer(
        {
            "bootstrap.servers": _bootstrap(cfg),
            "group.id": f"mactl-position-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        return _watermarks(consumer, _topic(cfg), _partitions(cfg, consumer))
    finally:
        consumer.close()


def delete_group(cfg: dict[str, Any], group: str, timeout: float = 30.0) -> None:
    """Delete the group's committed offsets, and see that they are gone.

    Kafka refuses while the group has members: a replayer killed outright stays one until
    its session times out (`_SESSION_TIMEOUT_MS`), so this tries again until the offsets
    are gone, and fails naming why after `timeout` seconds. Before, a refusal was ignored
    and a replay's rollback said the offsets were forgotten while the group kept them.
    """
    deadline = time.monotonic() + timeout
    while True:
        why = try_delete_group(cfg, group)
        view = GroupView(cfg, group)
        try:
            left = view.committed()
        finally:
            view.close()
        if not left:
            return
        if time.monotonic() >= deadline:
            raise ProviderError(
                f"kafka: consumer group {group} still has committed offsets {left} after {timeout:.0f}s "
                f"({why or 'deleted, yet still there'})",
                hint="another consumer may still be in the group: stop it, then run the rollback again",
            )
        time.sleep(1.0)


def try_delete_group(cfg: dict[str, Any], group: str) -> str | None:
    """Delete the group; why not, when it was not deleted (None when it is gone)."""
    admin = _admin(cfg)  # held until the futures resolve: a collected client never resolves them
    futs = admin.delete_consumer_groups([group], request_timeout=_TIMEOUT_S)
    for fut in futs.values():
        try:
            fut.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            # unknown group, or the coordinator is busy: a new replay seeks explicitly anyway
            if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                return str(exc.args[0].str())
        except TimeoutError:
            return "timed out"
    return None


# -- the consumer group, seen from outside it (the Kubernetes replay's apply) --------------


class GroupView:
    """A consumer group's progress through the topic, read without joining the group: its
    committed offsets, the topic's watermarks, and the records at given offsets."""

    def __init__(self, cfg: dict[str, Any], group: str) -> None:
        self._topic = _topic(cfg)
        self._cfg = cfg
        self._group = _outsider(cfg, group)
        self._peek = _outsider(cfg, f"mactl-peek-{uuid.uuid4().hex[:8]}")

    def partitions(self) -> list[int]:
        return _partitions(self._cfg, self._group)

    def committed(self) -> Offsets:
        """The next offset the group will read per partition, where it committed one."""
        tps = [TopicPartition(self._topic, p) for p in self.partitions()]
        if not tps:
            return {}
        return {str(tp.partition): tp.offset for tp in self._group.committed(tps, timeout=_TIMEOUT_S) if tp.offset >= 0}

    def watermarks(self) -> tuple[Offsets, Offsets]:
        """(first offset still stored, next offset to be written) per partition."""
        first: Offsets = {}
        end: Offsets = {}
        for p in self.partitions():
            low, high = self._group.get_watermark_offsets(TopicPartition(self._topic, p), timeout=_TIMEOUT_S)
            first[str(p)], end[str(p)] = int(low), int(high)
        return first, end

    def read_at(self, positions: Offsets, timeout: float = 5.0) -> dict[str, LogEntry]:
        """Per partition, the first record at or after its offset in `positions`."""
        if not positions:
            return {}
        self._peek.assign([TopicPartition(self._topic, int(p), int(o)) for p, o in positions.items()])
        found: dict[str, LogEntry] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(found) < len(positions) and time.monotonic() < deadline:
                for msg in self._peek.consume(num_messages=len(positions), timeout=0.5):
                    offset, partition = msg.offset(), str(msg.partition())
                    if msg.error() is not None or offset is None or partition in found:
                        continue
                    if offset >= positions.get(partition, 0):
                        key = (msg.key() or b"").decode(errors="replace")
                        stamp = msg.timestamp()[1] / 1000.0
                        found[partition] = LogEntry(partition, offset, key, msg.value() or b"", stamp)
        finally:
            self._peek.unassign()
        return found

    def close(self) -> None:
        self._group.close()
        self._peek.close()


def _outsider(cfg: dict[str, Any], group: str) -> Consumer:
    """A consumer that reads or sets a group's offsets without joining it."""
    return Consumer(
        {
            "bootstrap.servers": _bootstrap(cfg),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def set_group_offsets(cfg: dict[str, Any], group: str, offsets: Offsets, timeout: float = 60.0) -> None:
    """Commit `offsets` for `group` from outside it. The coordinator accepts that only while
    the group has no members, so this waits out the session of members that just went away."""
    if not offsets:
        return
    consumer = _outsider(cfg, group)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                consumer.commit(
                    offsets=[TopicPartition(_topic(cfg), int(p), int(o)) for p, o in offsets.items()],
                    asynchronous=False,
                )
                return
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise ProviderError(
                        f"kafka: cannot set the offsets of consumer group {group}: {exc}",
                        hint="is a replayer of this group still running somewhere?",
                    ) from None
                time.sleep(1.0)
    finally:
        consumer.close()


# -- a topic of NDJSON lines (a replay Job's tuples and dead letters) -------------------------


class KafkaLineSink:
    """Each `write` (one NDJSON line) becomes a record keyed `key`; `flush` returns once the
    brokers have every line written so far, so offsets committed after it never get ahead."""

    def __init__(self, cfg: dict[str, Any], key: str) -> None:
        self._topic = _topic(cfg)
        self._key = key.encode()
        self._producer = Producer(
            {
                "bootstrap.servers": _bootstrap(cfg),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 50,
                "message.max.bytes": _MAX_MESSAGE,
            }
        )
        self.closed = False

    def write(self, data: bytes, /) -> int:
        while True:
            try:
                self._producer.produce(self._topic, value=data.rstrip(b"\n"), key=self._key)
                self._producer.poll(0)
                return len(data)
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def flush(self) -> None:
        left = self._producer.flush(30)
        if left:
            raise ProviderError(f"kafka: {left} line(s) for topic {self._topic} not delivered in 30s")

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True


def read_lines(cfg: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Every record of the topic, from its start to its end as of now: (key, value)."""
    reader = KafkaLogReader(cfg, f"mactl-lines-{uuid.uuid4().hex[:8]}")
    try:
        end = reader.end_offsets()
        if not any(end.values()):
            return
        reader.seek({})
        position = {p: 0 for p in end}
        idle_since = time.monotonic()
        while any(position[p] < end[p] for p in end):
            batch = reader.poll(1000, 0.5)
            if not batch:
                if time.monotonic() - idle_since > _TIMEOUT_S:
                    raise ProviderError(f"kafka: topic {_topic(cfg)} stopped before its end offsets {end}")
                continue
            idle_since = time.monotonic()
            for entry in batch:
                position[entry.partition] = entry.offset + 1
                if entry.offset < end.get(entry.partition, 0):
                    yield entry.key, entry.payload
    finally:
        reader.close()
