"""The capture-log interface: what the proxy appends to and what the replayer reads from.

Two backends sit behind it: `file` (an embedded segmented log, `log_file`) and `kafka`
(`log_kafka`). Both are partitioned: a file log has one partition per proxy (each proxy
is the only writer of its partition), a Kafka topic has its own partitions and records
are keyed by connection id. A *position* maps partition names (strings) to the next
offset to read, so "replay from where the snapshot began" is a dict any stage can store.

The functions here take the log description as the `log` block of the capture/replay
stage inputs (a pydantic model or its dict) and dispatch on its `type`.

`current_position(log_inputs)` is what the snapshot stage calls when it begins; its
result is what the replay stage later passes to `open_reader(...).seek(...)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mactl.errors import ConfigError

if TYPE_CHECKING:  # the capture proxy imports this module: it stays free of pydantic
    from typing import TypeAlias

    from mactl.schema.capture import CaptureLog

    # The `log` block of the capture/replay stage inputs, or its dict (e.g. from `--log`).
    LogInputs: TypeAlias = CaptureLog | Mapping[str, Any]

Offsets = dict[str, int]


@dataclass(frozen=True)
class LogEntry:
    """One stored record as read back: where it is, its key, its bytes, when it was stored.

    `corrupt` is set when the stored frame failed its checksum: the replayer dead-letters
    such entries rather than stopping.
    """

    partition: str
    offset: int
    key: str
    payload: bytes
    timestamp: float
    corrupt: bool = False


class LogWriter(Protocol):
    """Appends records for one producer (one proxy)."""

    def submit(self, key: str, payload: bytes) -> Future[tuple[str, int]]:
        """Queue a record; the future resolves to (partition, offset) once it is stored
        as durably as the log's policy asks."""
        ...

    def append(self, key: str, payload: bytes) -> tuple[str, int]: ...

    def append_nowait(self, key: str, payload: bytes) -> tuple[str, int] | None:
        """Store the record on the caller's thread when that needs no wait (a file log
        without per-record fsync), returning (partition, offset); None means use `submit`."""
        ...

    def close(self) -> None: ...


class LogReader(Protocol):
    """Reads every partition of a log for one consumer group."""

    def seek(self, offsets: Offsets) -> None:
        """Start each partition at `offsets[p]`; partitions not named start at 0."""
        ...

    def subscribe(self, on_assign: Callable[[list[str]], None], on_revoke: Callable[[list[str]], None]) -> None:
        """Instead of `seek`: take the partitions the consumer group hands this reader (a
        Kafka log only), each from the group's committed offset; `on_assign`/`on_revoke` are
        called on the polling thread as partitions come and go."""
        ...

    def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[LogEntry]: ...

    def commit(self, offsets: Offsets) -> None:
        """Record, durably, the next offset to read per partition for this group."""
        ...

    def committed(self) -> Offsets | None: ...

    def end_offsets(self, *, cached: bool = False) -> Offsets:
        """The next offset a writer fills, per partition. `cached`: what the reader last
        learnt while reading, without asking the log again (Kafka: a query waits behind the
        consumer's long-polling fetch), leaving out partitions it knows nothing of yet."""
        ...

    def close(self) -> None: ...


class _Backend(Protocol):
    """What a log backend module (`log_file`, `log_kafka`) provides: the modules satisfy it."""

    def init_log(self, cfg: dict[str, Any]) -> None: ...

    def delete_log(self, cfg: dict[str, Any]) -> bool: ...

    def describe(self, cfg: dict[str, Any]) -> dict[str, Any]: ...

    def open_writer(self, cfg: dict[str, Any], producer_id: str) -> LogWriter: ...

    def open_reader(self, cfg: dict[str, Any], group: str) -> LogReader: ...

    def end_offsets(self, cfg: dict[str, Any]) -> Offsets: ...

    def delete_group(self, cfg: dict[str, Any], group: str) -> None: ...


def log_config(log_inputs: object) -> dict[str, Any]:
    """The log block as a plain dict (accepts the pydantic model or a dict)."""
    data: dict[str, Any]
    if hasattr(log_inputs, "model_dump"):
        data = log_inputs.model_dump()
    elif isinstance(log_inputs, dict):
        data = dict(log_inputs)
    else:
        raise ConfigError(f"log: expected a log block, got {type(log_inputs).__name__}")
    data.setdefault("type", "file")
    if data["type"] not in ("file", "kafka"):
        raise ConfigError(f"log.type: unknown capture log type {data['type']!r} (file or kafka)")
    return data


def _backend(log_inputs: LogInputs) -> tuple[_Backend, dict[str, Any]]:
    cfg = log_config(log_inputs)
    if cfg["type"] == "file":
        from mactl.capture import log_file

        return log_file, cfg
    from mactl.capture import log_kafka

    return log_kafka, cfg


def init_log(log_inputs: LogInputs) -> dict[str, Any]:
    """Create the log (folder or topic) if missing; returns `describe(...)`."""
    mod, cfg = _backend(log_inputs)
    mod.init_log(cfg)
    return describe(cfg)


def delete_log(log_inputs: LogInputs) -> bool:
    """Delete the whole log (folder or topic). True if something was deleted."""
    mod, cfg = _backend(log_inputs)
    return bool(mod.delete_log(cfg))


def describe(log_inputs: LogInputs) -> dict[str, Any]:
    """A JSON-able description for stage outputs (no secrets: logs hold none)."""
    mod, cfg = _backend(log_inputs)
    return mod.describe(cfg)


def open_writer(log_inputs: LogInputs, producer_id: str) -> LogWriter:
    mod, cfg = _backend(log_inputs)
    return mod.open_writer(cfg, producer_id)


def open_reader(log_inputs: LogInputs, group: str) -> LogReader:
    mod, cfg = _backend(log_inputs)
    return mod.open_reader(cfg, group)


def end_offsets(log_inputs: LogInputs) -> Offsets:
    mod, cfg = _backend(log_inputs)
    return mod.end_offsets(cfg)


def delete_group(log_inputs: LogInputs, group: str) -> None:
    """Forget a consumer group's committed offsets (a rolled-back replay starts over)."""
    mod, cfg = _backend(log_inputs)
    mod.delete_group(cfg, group)


def current_position(log_inputs: LogInputs) -> dict[str, Any]:
    """Where the log ends right now, as JSON-able data the snapshot stage stores.

    `{"kind": "file"|"kafka", "offsets": {partition: next_offset}, "time": epoch_s,
    "records": total}`. Every record at or after these offsets was stored after this
    call began, so replaying from here misses nothing the snapshot does not hold.
    """
    mod, cfg = _backend(log_inputs)
    started = time.time()
    offsets = mod.end_offsets(cfg)
    return {
        "kind": cfg["type"],
        "offsets": offsets,
        "time": started,
        "records": sum(offsets.values()),
    }


def position_offsets(position: object) -> Offsets:
    """The offsets inside a stored position (accepts a bare offsets dict too)."""
    if not isinstance(position, dict):
        raise ConfigError("capture position: expected a mapping with `offsets`")
    raw = position.get("offsets", position)
    try:
        return {str(p): int(o) for p, o in raw.items()}
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(f"capture position: offsets are not partition → integer: {raw!r}") from None
