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
