"""Development tooling for the mactl repository: local services for the tests and the demo.

What lives here runs from a checkout only (`scripts/clusters`, `scripts/demo`, the pytest
fixtures in `tests/conftest.py`); it is not part of the mactl distribution:

- It is never installed: `pyproject.toml` lists only `mactl.*` packages, so the wheel has no
  `devtools`. The scripts put the repository root on PYTHONPATH; `tests/conftest.py`
  appends it to `sys.path`.
- mactl never imports it, and it imports nothing from mactl: it has its own error type and
  command-line runner, so the migration tool and its test harness can change independently.

The package sits at the top of the repository, so the repository root is its parent folder.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout this package belongs to (devtools/ is a top-level folder of it, never installed).
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
