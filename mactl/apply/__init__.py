"""Apply: walk a plan through the providers, saving the state at every transition.

`walker` is the glue: what an apply does at each stage, the plan's roll-backs then its
creates/updates/replaces, stopping where the plan marks a gate. It uses `scheduler` (a
generic parallel DAG walk), `recorder` (every state change, written at once), `context`
(the `StageContext` of one change; `secrets` puts a removed stage's secrets back),
`signals` (Ctrl-C once, twice) and `hooks` (what the walk reports; `display` shows it
live, and each stage's progress file and log are written). This package must not decide
what to do (that is the plan), parse configs, or take the state lock (the command
holding the lock calls it).
"""

from mactl.apply.recorder import StateRecorder
from mactl.apply.walker import Walker, WalkResult, check_available

__all__ = ["StateRecorder", "WalkResult", "Walker", "check_available"]
