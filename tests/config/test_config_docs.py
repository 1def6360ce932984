"""The example in docs/config.md loads and expands as the page says."""

from __future__ import annotations

import re
from pathlib import Path

from mactl.config import load_config
from mactl.graph.expand import expand

DOC = Path(__file__).parents[2] / "docs" / "config.md"


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    path = tmp_path / "mactl.yaml"
    path.write_text(example.group(1))
    loaded = load_config(path, env={"MACTL_VAR_admin_password": "pw-from-env"})
    graph = expand(loaded.config)
    assert loaded.sensitive_values == {"pw-from-env"}
    assert set(graph.stages) == {
        "capture.es",
        "snapshot.es.daily",
        "snapshot.es.snap2",
        "metadata.es.daily.prod.m0",
        "backfill.es.daily.prod.m0.b0",
        "replay.es.prod",
        "validate.es.prod",
        "switchover.swing_proxy",
        "manual.upgrade_clients",
        "teardown.tools",
    }
    assert graph.stages["snapshot.es.snap2"].inputs["repository"]["name"] == "my-registered-repo"
    assert graph.stages["backfill.es.daily.prod.m0.b0"].lifecycle.rollback == "manual"
    assert graph.stages["metadata.es.daily.prod.m0"].inputs["indices"] == [
        {"names": ["logs-*", r"re:^metrics-\d+$"], "mode": "include"},
        {"names": ["logs-2024"], "mode": "include"},
    ]
