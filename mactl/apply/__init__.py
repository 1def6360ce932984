"""Apply: walk a plan through the providers, saving the state at every transition.

`walker` runs the plan's roll-backs then its creates/updates/replaces, in parallel
where dependencies allow, stops at approval gates, and handles failures and Ctrl-C so
that nothing finished is lost; `display` shows the running stages live. This package
must not decide what to do (that is the plan), parse configs, or take the state lock
(the command holding the lock calls it).
"""

from mactl.apply.walker import StateRecorder, Walker, WalkResult, check_available

__all__ = ["StateRecorder", "WalkResult", "Walker", "check_available"]
