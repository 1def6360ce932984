"""The embedded file log: offsets, segments, consumer offsets, torn tails, corruption."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mactl.capture import log as capture_log
from mactl.capture.record import Record, RecordDecodeError, decode, encode


def _rec(i: int, conn: str = "c1") -> Record:
    body = b'{"index":{"_id":"%d"}}\n{"n":%d}\n' % (i, i)
    return Record(
        conn,
        i,
        time.time(),
        time.time(),
        "POST",
        "/cap-x/_bulk",
        [("Content-Type", "application/x-ndjson")],
        body,
        200,
        [("content-type", "application/json")],
        b'{"errors":false}',
        "p",
    )


def _read_all(cfg: dict[str, Any], start: dict[str, int] | None = None, group: str = "g") -> list[Any]:
    reader = capture_log.open_reader(cfg, group)
    reader.seek(start or {})
    out = []
    while batch := reader.poll(1000, 0.05):
        out.extend(batch)
    reader.close()
    return out


def test_record_round_trips_bytes_exactly() -> None:
    rec = _rec(7)
    rec.body = bytes(range(256)) * 3  # not UTF-8, not JSON: must survive byte for byte
    assert decode(encode(rec)) == rec
    with pytest.raises(RecordDecodeError):
        decode(encode(rec)[:-5])
    with pytest.raises(RecordDecodeError):
        decode(b"\x09garbage")


def test_offsets_segments_and_positions(tmp_path: Path) -> None:
    cfg = {"type": "file", "path": str(tmp_path), "segmentBytes": 4096, "fsync": "always"}
    assert capture_log.current_position(cfg)["offsets"] == {}
    writer = capture_log.open_writer(cfg, "proxy-a")
    futures = [writer.submit("c1", encode(_rec(i))) for i in range(200)]
    assert [f.result()[1] for f in futures] == list(range(200))
    position = capture_log.current_position(cfg)
    assert position["kind"] == "file" and position["offsets"] == {"proxy-a": 200}
    writer.close()
    segments = sorted((tmp_path / "partitions" / "proxy-a").glob("*.seg"))
    assert len(segments) > 5  # rolled at 4 KiB
    entries = _read_all(cfg, {"proxy-a": 137})
    assert [e.offset for e in entries] == list(range(137, 200))
    assert decode(entries[0].payload).seq == 137


def test_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    cfg = {"type": "file", "path": str(tmp_path), "fsync": "always"}
    writer = capture_log.open_writer(cfg, "p")
    for i in range(10):
        writer.append("c1", encode(_rec(i)))
    writer.close()
    segment = next((tmp_path / "partitions" / "p").glob("*.seg"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + whole[:30])  # a crash in the middle of the 11th frame
    assert capture_log.current_position(cfg)["offsets"] == {"p": 10}
    assert len(_read_all(cfg)) == 10  # readers never see half a record
    writer = capture_log.open_writer(cfg, "p")
    assert writer.append("c1", encode(_rec(10))) == ("p", 10)
    writer.close()
    assert segment.read_bytes().startswith(whole)  # the torn 30 bytes are gone, record 10 follows
    assert [decode(e.payload).seq for e in _read_all(cfg)] == list(range(11))


def test_corrupt_frame_is_reported_not_fatal(tmp_path: Path) -> None:
    cfg = {"type": "file", "path": str(tmp_path), "fsync": "never"}
    writer = capture_log.open_writer(cfg, "p")
    for i in range(3):
        writer.append("c1", encode(_rec(i)))
    writer.close()
    segment = next((tmp_path / "partitions" / "p").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    frame = len(data) // 3
    data[frame + 40] ^= 0xFF  # flip a bit inside the 2nd record's payload
    segment.write_bytes(bytes(data))
    entries = _read_all(cfg)
    assert [(e.offset, e.corrupt) for e in entries] == [(0, False), (1, True), (2, False)]


def test_consumer_offsets_and_one_writer_per_partition(tmp_path: Path) -> None:
    cfg = {"type": "file", "path": str(tmp_path)}
    writer = capture_log.open_writer(cfg, "p")
    with pytest.raises(Exception, match="already has a writer"):
        capture_log.open_writer(cfg, "p")
    writer.close()
    reader = capture_log.open_reader(cfg, "grp")
    assert reader.committed() is None
    reader.commit({"p": 5})
    reader.commit({"q": 2})
    assert capture_log.open_reader(cfg, "grp").committed() == {"p": 5, "q": 2}
    capture_log.delete_group(cfg, "grp")
    assert capture_log.open_reader(cfg, "grp").committed() is None
