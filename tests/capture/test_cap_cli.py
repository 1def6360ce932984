"""Bad input to the capture/replay commands and stage inputs: a clear message, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mactl.providers import capture, replay, switchover
from pydantic import ValidationError

from mactl.schema.capture import CaptureFilters, CaptureInputs, ProxySpec
from mactl.schema.common import ClusterRef
from mactl.schema.replay import ReplayInputs
from mactl.schema.switchover import SwitchoverInputs


def _mactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mactl", *args], capture_output=True, text=True, timeout=60)


def test_capture_proxy_rejects_bad_arguments(tmp_path: Path) -> None:
    bad_source = _mactl("capture-proxy", "--source", "ftp://x", "--log", str(tmp_path))
    assert bad_source.returncode != 0 and "--source" in bad_source.stderr and "Traceback" not in bad_source.stderr
    bad_listen = _mactl(
        "capture-proxy", "--source", "http://127.0.0.1:1", "--listen", "nowhere", "--log", str(tmp_path)
    )
    assert bad_listen.returncode != 0 and "--listen" in bad_listen.stderr and "Traceback" not in bad_listen.stderr
    bad_fsync = _mactl(
        "capture-proxy", "--source", "http://127.0.0.1:1", "--fsync", "sometimes", "--log", str(tmp_path)
    )
    assert bad_fsync.returncode != 0 and "--fsync" in bad_fsync.stderr and "Traceback" not in bad_fsync.stderr


def test_replay_run_rejects_bad_arguments(tmp_path: Path) -> None:
    no_log = _mactl("replay", "run", "--target", "http://127.0.0.1:1")
    assert no_log.returncode != 0 and "--log" in no_log.stderr and "Traceback" not in no_log.stderr
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    bad_spec = _mactl("replay", "run", "--spec", str(spec))
    assert bad_spec.returncode != 0 and "--spec" in bad_spec.stderr and "Traceback" not in bad_spec.stderr


def test_stage_inputs_are_validated_without_network() -> None:
    src = ClusterRef(name="s", endpoint="http://127.0.0.1:1")
    problems = capture.CaptureProvider().validate(
        CaptureInputs(
            source=src,
            proxies=[
                ProxySpec(listen="a:1"),
                ProxySpec(listen="a:1"),
                ProxySpec(listen="nope"),
            ],
            filters=CaptureFilters(skipPaths=["("]),
        )
    )
    assert any("same address" in p for p in problems)
    assert any("proxies[2].listen" in p for p in problems)
    assert any("bad regex" in p for p in problems)
    # Out-of-range rates are refused by the inputs model itself (mactl.schema), naming each field.
    with pytest.raises(ValidationError) as bad:
        ReplayInputs(source=src, target=src, maxSpeedupFactor=0, maxThroughputMbps=-1)
    assert {e["loc"][0] for e in bad.value.errors()} == {"maxSpeedupFactor", "maxThroughputMbps"}
    assert replay.ReplayProvider().validate(ReplayInputs(source=src, target=src)) == []
    assert switchover.SwitchoverProvider().validate(SwitchoverInputs(source=src)) == [
        "target: switchover needs the target the proxies should send traffic to"
    ]


def test_replay_start_point_from_the_snapshot_stage(tmp_path: Path) -> None:
    from cap_helpers import stage_context  # type: ignore[import-not-found]

    src = ClusterRef(name="s", endpoint="http://127.0.0.1:1")
    inputs = ReplayInputs(source=src, target=src)
    shapes = [
        ({"capture_position": {"kind": "file", "offsets": {"p": 3}, "time": 1.0}}, {"p": 3}),
        (
            {
                "capturePosition": {
                    "kind": "capture",
                    "time": "2026-01-01T00:00:00+00:00",
                    "position": {"kind": "kafka", "offsets": {"0": 7, "1": 2}},
                }
            },
            {"0": 7, "1": 2},
        ),
    ]
    for outputs, offsets in shapes:
        ctx = stage_context("replay.s.t", "replay", inputs, tmp_path, upstream={"snapshot.s.snap": outputs})
        assert replay.find_start_position(ctx)["offsets"] == offsets
    timed = stage_context(
        "replay.s.t",
        "replay",
        inputs,
        tmp_path,
        upstream={"snapshot.s.snap": {"capturePosition": {"kind": "time", "time": "2026-01-01T00:00:00+00:00"}}},
    )
    assert replay._start_time(replay.find_start_position(timed)) == 1767225600.0
    assert replay.find_start_position(stage_context("replay.s.t", "replay", inputs, tmp_path)) is None
