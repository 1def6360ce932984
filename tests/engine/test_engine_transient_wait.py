"""A stage waiting out a transient cluster error says so on the apply display and in its
log (issue 15 item 5): the walker routes `mactl.retrying`'s waiting line to both."""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import Project, pipeline_config
from engine_standins import STANDINS
from mactl.providers import registry
from mactl.providers.base import StageContext
from mactl.state import open_backend
from mactl.state.workdir import Workdir
from opensearchpy.exceptions import ConnectionError as OSConnectionError

from mactl.retrying import retrying

VALIDATE = "validate.src.t1"


class FlakyValidate(STANDINS["validate"]):  # type: ignore[misc,valid-type]
    """The validate stand-in, whose cluster refuses the first two connections."""

    def apply(self, ctx: StageContext) -> dict[str, Any]:
        failures = [2]

        def call() -> str:
            if failures[0]:
                failures[0] -= 1
                raise OSConnectionError("N/A", "refused", OSError("[Errno 111] Connection refused"))
            return "ok"

        assert retrying(call, "target http://127.0.0.1:9", retry_for_s=60) == "ok"
        return super().apply(ctx)


def test_the_wait_is_shown_on_the_display_and_logged(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "validate", f"{__name__}:FlakyValidate")
    registry.get_provider.cache_clear()
    project.write(pipeline_config(indices=1, replayer=False))
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    line = f"{VALIDATE}: target http://127.0.0.1:9 unreachable (connection refused); retrying for "
    assert line in r.out
    log = Workdir(open_backend(None, base_dir=project.root).workdir).stage(VALIDATE).log.read_text()
    assert "target http://127.0.0.1:9 unreachable (connection refused); retrying for 1m" in log


def test_a_look_on_the_side_waits_at_most_its_own_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan`'s refresh reads run under `waiting_at_most(10)`: a cluster that does not answer
    fails the read after that budget, not after the two minutes a stage's work waits."""
    from mactl.plan.builder import REFRESH_RETRY_FOR_S
    from mactl.retrying import ClusterUnavailable, default_retry_for_s, waiting_at_most

    monkeypatch.delenv("MACTL_RETRY_FOR_S", raising=False)
    assert default_retry_for_s() == 120.0
    clock = [0.0]
    calls = [0]

    def refused() -> str:
        calls[0] += 1
        raise OSConnectionError("N/A", "refused", OSError("[Errno 111] Connection refused"))

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr("mactl.retrying.time.monotonic", lambda: clock[0])
    with waiting_at_most(REFRESH_RETRY_FOR_S):
        assert default_retry_for_s() == REFRESH_RETRY_FOR_S
        with pytest.raises(ClusterUnavailable, match="gave up after retrying for 10s"):
            retrying(refused, "target http://127.0.0.1:9", sleep=sleep, say=lambda line: None)
    assert calls[0] > 1 and 0 < clock[0] <= REFRESH_RETRY_FOR_S
    assert default_retry_for_s() == 120.0  # outside the block, the stage budget again
    monkeypatch.setenv("MACTL_RETRY_FOR_S", "3")
    with waiting_at_most(REFRESH_RETRY_FOR_S):
        assert default_retry_for_s() == 3.0  # the smaller of the two
