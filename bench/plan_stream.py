"""What `plan -json` (the UI event stream) costs next to the text plan and the plan document.

Builds the 12k-stage seed-shaped plan of `bench/plan_scale.py` once (2,000 indices, 3
targets, against an empty state), then renders it, in the same process, as text
(`render_text`), as the one JSON document (`render_json`, what `show -json` prints) and
as the `-json` event stream (`EventStream.plan`, one masked, flushed line per change)
into a file, best of `--rounds`. Reported as ratios against the text render of the same
run, so the figures hold on a busy machine too.

    python bench/plan_stream.py [--indices 2000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_scale import write_config  # noqa: E402

from mactl.config.loader import load_config  # noqa: E402
from mactl.graph.expand import expand  # noqa: E402
from mactl.plan.builder import PlanOptions, build_plan  # noqa: E402
from mactl.plan.definition import Plan  # noqa: E402
from mactl.plan.events import EventStream  # noqa: E402
from mactl.plan.render_json import render_json  # noqa: E402
from mactl.plan.render_text import render_text  # noqa: E402


def best(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def stream_to(path: Path, plan: Plan) -> None:
    with path.open("w") as out:
        EventStream(out).plan(plan, "plan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--indices", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loaded = load_config(write_config(folder, args.indices), env={})
        plan = build_plan(expand(loaded.config, validate_inputs=False), None, PlanOptions(refresh=False))
        out = folder / "events.jsonl"
        text = best(lambda: render_text(plan), args.rounds)
        document = best(lambda: render_json(plan), args.rounds)
        stream = best(lambda: stream_to(out, plan), args.rounds)
        lines = len(out.read_text().splitlines())
    result = {
        "stages": len(plan.changes),
        "events": lines,
        "text_s": round(text, 3),
        "document_s": round(document, 3),
        "stream_s": round(stream, 3),
        "stream_per_text": round(stream / text, 2),
        "stream_per_document": round(stream / document, 2),
    }
    if args.json:
        print(orjson.dumps(result).decode())
        return
    for key, value in result.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
