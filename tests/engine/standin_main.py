"""`python tests/engine/standin_main.py ARGS…` is `mactl ARGS…` with the stand-in providers.

The kill -9 test needs a real separate process running the real CLI; this wrapper only
swaps the providers (test-only code stays in tests/) and then runs mactl's own `main`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_standins  # noqa: E402

engine_standins.install_globally()

from mactl.cli import main  # noqa: E402

main()
