"""kill -9 during `mactl destroy`, then rerun: nothing left, nothing extra deleted (CI).

After an apply to completion, `destroy` (every third one `destroy -target ADDR`) is
killed (SIGKILL to its whole process group) once the rollback of a stage of each
type has started — validate, replay, backfill, metadata, snapshot, capture, in destroy's
order — and run again. After each kill the state must be readable (`mactl state list`),
the dead run's lock removable, and `mactl plan` must say what is left to undo (not
"No changes", no traceback). The last destroy must leave nothing of mactl's on either
cluster and no proxy or replayer process, while the two indices planted on the target
before the apply (one mactl never selects; one it selects that was there first, with
documents of its own) keep exactly their own documents. `MACTL_KILL_SEED` replays a kill
plan; `bench/kill_harness.py --destroy-kills N` runs more.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import kh_harness as kh
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_kill_9_during_destroy_then_rerun_leaves_nothing_and_deletes_nothing_extra(
    tmp_path: Path, es710: Any, os2: Any
) -> None:
    seed = int(os.environ.get("MACTL_KILL_SEED") or random.SystemRandom().randrange(1, 10**6))
    kills = int(os.environ.get("MACTL_DESTROY_KILL_COUNT") or 6)
    print(f"destroy kill harness seed: MACTL_KILL_SEED={seed}")
    figures = kh.run_destroy(tmp_path, es710.url, os2.url, Path(es710.repo_dir), kills=kills, seed=seed)
    print(figures.table())
    assert figures.destroy_kills >= kills
    assert figures.destroy_reruns >= figures.destroy_kills and figures.destroy_cycles >= 1
    assert figures.plans_after_destroy_kill >= 1
    assert figures.state_unreadable == 0 and figures.stale_locks_left == 0
    assert figures.leftovers == [] and figures.extra_deletions == []
    # Aimed at every stage type's rollback; most land inside one (validate's undoes nothing,
    # so a kill aimed at it may land in replay's, or between the two).
    landed = {t for t in figures.destroy_kills_by_type if t in kh.STAGE_TYPES}
    assert len(landed) >= 3, f"seed {seed}: destroy kills landed in {dict(figures.destroy_kills_by_type)}"
