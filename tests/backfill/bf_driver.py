"""Runs one backfill stage's `apply` (or `rollback`) the way the engine does, in its own process.

    python bf_driver.py apply|rollback INPUTS.json WORKDIR ADDRESS

The tests run it as a subprocess so they can kill -9 the whole apply (this process and
its worker processes) at any moment. Prints the stage outputs as JSON on the last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mactl.providers.backfill import BackfillProvider
from mactl.providers.base import StageContext

from mactl.schema.backfill import BackfillInputs


def main() -> int:
    op, inputs_path, workdir, address = sys.argv[1:5]
    prior = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
    inputs = BackfillInputs.model_validate(json.loads(Path(inputs_path).read_text()))
    ctx = StageContext(
        address=address,
        type="backfill",
        inputs=inputs,
        prior_outputs=prior,
        upstream={},
        checkpoint_data=None,
        workdir=Path(workdir),
        log=lambda m: print(f"log: {m}", file=sys.stderr),
    )
    provider = BackfillProvider()
    if op == "apply":
        outputs = provider.apply(ctx)
        print(json.dumps(outputs))
    else:
        provider.rollback(ctx)
        print("{}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
