"""Benchmark: the kill harness at scale: `kill -9` of `mactl apply` N times, then the figures.

    eval "$(scripts/clusters env)" && python bench/kill_harness.py --kills 60 --seed 1 [--json]
    python bench/kill_harness.py --kills 0 --destroy-kills 36 --seed 1    # kills during destroy only

Runs `tests/killharness/kh_harness.py` (the same harness CI runs with 20 kills) against
the local clusters: kills of the whole `mactl apply` process group (SIGKILL) at seeded
random points in every stage type (capture, snapshot, metadata, backfill, replay,
validate), each followed by force-unlock and a rerun; each cycle of kills ends with an
apply to completion, a document-by-document comparison of target and source and a
`destroy` that must leave nothing of mactl's behind. Prints a table: kills per stage type,
reruns, documents lost/duplicated, state unreadable count, stale locks left. Exits 1
(naming the seed) on the first problem.

`--destroy-kills N` then kills `mactl destroy` N times (`run_destroy`, the harness CI runs
with 6): after an apply to completion, at the start of each stage type's rollback plus a
random moment (every third one `destroy -target ADDR`), each kill followed by `mactl state
list`, force-unlock (or, every other time, the plan's `-lock-takeover-stale`), a `plan` that
must say what is left, and a rerun (once a cycle an apply, the documents compared); the last destroy
must leave nothing of mactl's (indices, templates, snapshots, proxy and replayer
processes) and keep two indices planted on the target before the apply exactly as they
were. Its table adds: kills per rollback stage type, reruns, plans, extra deletions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "killharness"))

import kh_harness as kh  # noqa: E402 - found through the path above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=60, help="kills of `mactl apply` (0: none)")
    parser.add_argument("--destroy-kills", type=int, default=0, help="kills of `mactl destroy` (after the apply kills)")
    parser.add_argument(
        "--kafka", action="store_true", help="destroy kills with a Kafka capture log (MACTL_TEST_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument("--destroy-per-cycle", type=int, default=6, help="destroy kills per apply … destroy cycle")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 1_000_000)
    parser.add_argument("--per-cycle", type=int, default=7, help="kills before each apply-to-completion and destroy")
    parser.add_argument("--types", default=",".join(kh.STAGE_TYPES), help="stage types to kill in (comma-separated)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    types = tuple(t for t in args.types.split(",") if t)
    unknown = [t for t in types if t not in kh.STAGE_TYPES]
    if unknown or not types:
        print(f"--types: unknown stage type(s) {', '.join(unknown) or '(none given)'}", file=sys.stderr)
        return 2
    es = os.environ.get("MACTL_TEST_ES710_URL", "http://127.0.0.1:19200")
    target = os.environ.get("MACTL_TEST_OS2_URL", "http://127.0.0.1:29200")
    repo_root = Path(os.environ.get("MACTL_TEST_REPO_DIR", "/tmp/mactl-dev/repo"))
    print(
        f"kill harness: {args.kills} apply kills, {args.destroy_kills} destroy kills, seed {args.seed} "
        f"(MACTL_KILL_SEED={args.seed})",
        flush=True,
    )
    started = time.monotonic()
    figures = kh.Figures(args.seed)
    destroy = kh.Figures(args.seed)
    with tempfile.TemporaryDirectory(prefix="mactl-kill-") as tmp:
        try:
            if args.kills:
                figures = kh.run(
                    Path(tmp) / "apply",
                    es,
                    target,
                    repo_root,
                    kills=args.kills,
                    seed=args.seed,
                    per_cycle=args.per_cycle,
                    types=types,
                )
            if args.destroy_kills:
                destroy = kh.run_destroy(
                    Path(tmp) / "destroy",
                    es,
                    target,
                    repo_root,
                    kills=args.destroy_kills,
                    seed=args.seed,
                    per_cycle=args.destroy_per_cycle,
                    types=types,
                    kafka=os.environ.get("MACTL_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092") if args.kafka else None,
                )
        except kh.HarnessFailure as err:
            print(f"FAILED: {err}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started
    if args.json:
        print(
            json.dumps(
                {
                    "seed": figures.seed,
                    "kills": figures.kills,
                    "killsByStageType": dict(figures.kills_by_type),
                    "reruns": figures.reruns,
                    "cycles": figures.cycles,
                    "documentsChecked": figures.docs_checked,
                    "documentsLost": figures.docs_lost,
                    "documentsDuplicated": figures.docs_duplicated,
                    "documentsDifferent": figures.docs_different,
                    "stateUnreadable": figures.state_unreadable,
                    "staleLocksLeft": figures.stale_locks_left,
                    "leftBehind": figures.leftovers,
                    "destroyKills": destroy.destroy_kills,
                    "destroyKillsByStageType": dict(destroy.destroy_kills_by_type),
                    "destroyKillsTargeted": destroy.destroy_kills_targeted,
                    "destroyReruns": destroy.destroy_reruns,
                    "destroyCycles": destroy.destroy_cycles,
                    "plansAfterDestroyKill": destroy.plans_after_destroy_kill,
                    "staleLockTakeovers": destroy.stale_lock_takeovers,
                    "appliesAfterDestroyKill": destroy.applies_after_destroy_kill,
                    "destroyStateUnreadable": destroy.state_unreadable,
                    "destroyStaleLocksLeft": destroy.stale_locks_left,
                    "destroyLeftBehind": destroy.leftovers,
                    "extraDeletions": destroy.extra_deletions,
                    "seconds": round(elapsed, 1),
                }
            )
        )
    else:
        if args.kills:
            print(figures.table())
        if args.destroy_kills:
            print(destroy.table())
        print(f"{'elapsed':30}  {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
