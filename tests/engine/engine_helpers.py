"""Helpers for the engine tests: a project folder driven through the CLI, and config builders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mactl.state import LocalStateConfig, StateDocument, open_backend


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    """A folder with a config, a control document for the stand-ins, and a CLI runner."""

    root: Path
    capsys: Any
    control_doc: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_path(self) -> Path:
        return self.root / "calls.jsonl"

    def write(self, text: str, name: str = "mactl.yaml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def control(self, **doc: Any) -> None:
        self.control_doc = {"calls": str(self.calls_path), **doc}
        (self.root / "control.json").write_text(json.dumps(self.control_doc))

    def calls(self, op: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        rows = [json.loads(line) for line in self.calls_path.read_text().splitlines() if line.strip()]
        return [r for r in rows if op is None or r["op"] == op]

    def reset_calls(self) -> None:
        self.calls_path.unlink(missing_ok=True)

    def run(self, *argv: str) -> Result:
        from mactl.cli import app, run_guarded

        self.capsys.readouterr()
        code = run_guarded(app, list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def plan_document(self, *argv: str) -> Result:
        """`mactl plan ARGS -out FILE` then `mactl show -json FILE`: the plan as one JSON document."""
        planned = self.run("plan", *argv, "-out", str(self.root / "document.plan"))
        if planned.code != 0:
            return planned
        return self.run("show", "-json", str(self.root / "document.plan"))

    def events(self, *argv: str) -> tuple[Result, list[dict[str, Any]]]:
        """`mactl ARGS` (with `-json`), and its stdout parsed line by line as UI events."""
        result = self.run(*argv)
        return result, [json.loads(line) for line in result.out.splitlines()]

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / ".mactl" / "state.json").read_text())

    def stored(self) -> StateDocument | None:
        """The state as every reader sees it: state.json with its journal folded in (mid-apply,
        the latest transitions are only in the journal)."""
        return open_backend(LocalStateConfig(path=str(self.root / ".mactl")), base_dir=self.root).read()


def pipeline_config(
    *,
    targets: int = 1,
    indices: int = 1,
    extra_source: str = "",
    metadata_extra: str = "",
    backfill_extra: str = "",
    workflow: str = "",
    variables: str = "",
    target_auth: str = "",
    replayer: bool = True,
) -> str:
    """A config in the seed's `targets` shape: one migration (metadata + backfill) per index."""
    lines = []
    if variables:
        lines.append("variables:")
        lines.append(variables.rstrip())
    lines.append("targets:")
    for t in range(1, targets + 1):
        lines.append(f"  - name: t{t}")
        lines.append(f"    endpoint: http://target{t}:9200")
        if target_auth:
            lines.append(f"    auth: {target_auth}")
    lines += [
        "source-migration-configurations:",
        "  - source:",
        "      name: src",
        "      endpoint: http://source:9200",
        "      snapshotRepository: {type: fs, location: /tmp/engine-repo}",
    ]
    if extra_source:
        lines.append(extra_source.rstrip())
    lines += ["    snapshot-and-migration-configs:", "      - name: snap1", "        migrations:"]
    for i in range(indices):
        lines.append(f"          - name: i{i}")
        lines.append(f"            metadata: {{indices: {{names: idx{i}}}{metadata_extra}}}")
        lines.append(f"            documentBackfillConfigs: [{{name: b0{backfill_extra}}}]")
    if replayer:
        lines.append("    replayer-config: {maxSpeedupFactor: 2.0}")
    if workflow:
        lines.append("workflow:")
        lines.append(workflow.rstrip())
    return "\n".join(lines) + "\n"
