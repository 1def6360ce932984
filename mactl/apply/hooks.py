"""What the walk tells the world as it goes: hooks, as in Terraform's `hook.go`.

The walker calls `walk_started`, then per stage `stage_started`, any number of
`stage_progress` and `stage_log`, and `stage_finished`, and `say` for a message meant
for a person, then `walk_finished`. A `Hook` implements the calls it cares about (the
others do nothing); `Hooks` hands each call to several in order. Two kinds ship: the live
display (`mactl.apply.display.ApplyDisplay`) and `StageFilesHook`, which keeps each
stage's progress timeline and log in its folder of the state's working directory (for
`mactl status`, the audit and a person reading the log).

A hook only observes: it never changes the state, the plan or what the walk does next,
and (but for the stage log a provider asked for) a failure to show or write something
never fails a stage.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Mapping, Sequence

from mactl.masking import mask_text
from mactl.providers.base import Progress
from mactl.state.workdir import Workdir


class Hook:
    """Every call the walk makes, each doing nothing; subclasses override what they need.

    `action` is the change's action (`create`, `update`, `replace`), or `rollback` when the
    stage is being undone; `outcome` is `ok` or `FAILED: <message>`.
    """

    def walk_started(self) -> None:
        pass

    def walk_finished(self) -> None:
        pass

    def stage_started(self, address: str, action: str) -> None:
        pass

    def stage_progress(self, address: str, report: Progress) -> None:
        pass

    def stage_log(self, address: str, text: str) -> None:
        pass

    def stage_finished(self, address: str, outcome: str) -> None:
        pass

    def say(self, text: str) -> None:
        pass


class Hooks(Hook):
    """Several hooks as one: each call goes to every hook, in order."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = list(hooks)

    def walk_started(self) -> None:
        for hook in self.hooks:
            hook.walk_started()

    def walk_finished(self) -> None:
        for hook in reversed(self.hooks):
            hook.walk_finished()

    def stage_started(self, address: str, action: str) -> None:
        for hook in self.hooks:
            hook.stage_started(address, action)

    def stage_progress(self, address: str, report: Progress) -> None:
        for hook in self.hooks:
            hook.stage_progress(address, report)

    def stage_log(self, address: str, text: str) -> None:
        for hook in self.hooks:
            hook.stage_log(address, text)

    def stage_finished(self, address: str, outcome: str) -> None:
        for hook in self.hooks:
            hook.stage_finished(address, outcome)

    def say(self, text: str) -> None:
        for hook in self.hooks:
            hook.say(text)


class StageFilesHook(Hook):
    """Each stage's progress timeline and log, in its folder (`Workdir.stage(address)`), masked.

    The timeline gets a line when a run starts (so the first report already gives a
    rate), then at most one a second, plus the final report; `mactl status` (another
    process) and the audit's plots read it. The stage's folder must exist (the walker
    makes it when it builds the stage's context).
    """

    def __init__(self, workdir: Workdir, secrets: Collection[str]) -> None:
        self.workdir = workdir
        self.secrets = [s for s in secrets if s]
        self._lock = threading.Lock()
        self._last_written: dict[str, float] = {}

    def stage_started(self, address: str, action: str) -> None:
        with self._lock:
            self._last_written[address] = 0.0
        phase = "rollback" if action == "rollback" else "apply"
        self._timeline(address, {"at": time.time(), "done": 0, "total": None, "unit": "", "message": phase})

    def stage_progress(self, address: str, report: Progress) -> None:
        now = time.time()
        final = report.total is not None and report.done >= report.total
        with self._lock:
            if now - self._last_written.get(address, 0.0) < 1.0 and not final:
                return
            self._last_written[address] = now
        line = {
            "at": now,
            "done": report.done,
            "total": report.total,
            "unit": report.unit,
            "message": mask_text(report.message, self.secrets),
        }
        self._timeline(address, line)

    def stage_log(self, address: str, text: str) -> None:
        with self.workdir.stage(address).log.open("a") as file:
            file.write(mask_text(text, self.secrets).rstrip("\n") + "\n")

    def _timeline(self, address: str, line: Mapping[str, object]) -> None:
        try:
            with self.workdir.stage(address).progress.open("a") as file:
                file.write(json.dumps(line) + "\n")
        except OSError:
            pass  # the timeline is a nicety; never fail a stage over it
