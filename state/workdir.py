"""The state's working directory: the names and paths of a migration's local files.

Beside the state document, a workspace keeps files on the local disk under its working
directory (`Backend.workdir`): one folder per stage (`<workdir>/<address>/`) with the
walker's progress timeline and stage log and what the stage's provider keeps there (the
replayer's status, PID and job spec, dead letters), and the capture fleet registry that
the capture, replay and later workflow stages share. Every such name is spelled here
once; the walker, the providers, `mactl status` and the audit ask this module instead of
joining strings themselves.

This module only names paths: it creates no folder and reads or writes no file, and it
knows nothing of what the files hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CAPTURE_REGISTRY_DIR = "capture-registry"


@dataclass(frozen=True)
class StageFiles:
    """One stage's own folder and the files mactl keeps in it."""

    dir: Path

    @property
    def progress(self) -> Path:
        """The walker's progress timeline (one JSON line per report), read by `mactl status` and the audit."""
        return self.dir / "progress.ndjson"

    @property
    def log(self) -> Path:
        """What the provider logged through `ctx.log`, and a failure's traceback."""
        return self.dir / "stage.log"

    # -- the replay stage's replayer --------------------------------------------------

    @property
    def replayer_status(self) -> Path:
        """The replayer's status document (`Status.to_json()`), rewritten as it runs."""
        return self.dir / "status.json"

    @property
    def replayer_pid(self) -> Path:
        return self.dir / "replayer.pid"

    @property
    def replayer_spec(self) -> Path:
        """The job spec a later stage replays the log's tail with (holds a secret: 0600)."""
        return self.dir / "replayer-spec.json"

    @property
    def replayer_follow_spec(self) -> Path:
        """The job spec of the detached follow-mode replayer (holds a secret: 0600)."""
        return self.dir / "replayer-follow-spec.json"

    @property
    def replayer_log(self) -> Path:
        return self.dir / "replayer.log"

    @property
    def replay_tuples(self) -> Path:
        return self.dir / "tuples.ndjson"

    @property
    def replay_dead_letters(self) -> Path:
        return self.dir / "deadletter.ndjson"

    # -- the backfill stage -----------------------------------------------------------

    @property
    def backfill_dead_letters(self) -> Path:
        """The default dead-letter folder of a backfill without `deadLetter.location`."""
        return self.dir / "deadletter"

    def backfill_worker_log(self, slot: int) -> Path:
        """What the backfill's local worker process in `slot` printed."""
        return self.dir / "workers" / f"worker-{slot}.log"

    def proxy_pid(self, proxy_id: str) -> Path:
        return self.dir / f"proxy-{proxy_id}.pid"

    def proxy_state(self, proxy_id: str) -> Path:
        """A capture proxy's own state (capturing or not, its route), kept across its restarts."""
        return self.dir / f"proxy-{proxy_id}.state.json"

    def proxy_log(self, proxy_id: str) -> Path:
        return self.dir / f"proxy-{proxy_id}.log"

    @property
    def validation_report(self) -> Path:
        """The validate stage's full report (the audit renders it)."""
        return self.dir / "report.json"


@dataclass(frozen=True)
class Workdir:
    """A workspace's working directory (`Backend.workdir`)."""

    root: Path

    @classmethod
    def of_stage(cls, stage_dir: Path) -> Workdir:
        """The working directory a stage's folder (`StageContext.workdir`) belongs to."""
        return cls(stage_dir.parent)

    def stage_dir(self, address: str) -> Path:
        return self.root / address

    def stage(self, address: str) -> StageFiles:
        return StageFiles(self.stage_dir(address))

    def capture_registry(self, source_name: str) -> Path:
        """The capture fleet registry of one source: its proxies, its log and its replayers."""
        return self.root / CAPTURE_REGISTRY_DIR / f"{source_name}.json"
