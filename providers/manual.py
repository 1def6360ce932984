"""Manual stage: a step a person does (upgrade clients, deprovision the source).

It does nothing itself: it completes only once approved with `mactl approve ADDR`, and
its instructions are shown in the plan and in `status`. That makes it available now.
"""

from __future__ import annotations

from typing import Any

from mactl.providers.base import BaseProvider, StageContext

from mactl.schema.manual import ManualInputs

Context = StageContext[ManualInputs]


class ManualProvider(BaseProvider[ManualInputs]):
    type = "manual"
    Inputs = ManualInputs
    replace_on = frozenset({"instructions"})

    def apply(self, ctx: Context) -> dict[str, Any]:
        # The walker only calls apply once the stage is approved; approval is the work.
        return {"instructions": ctx.inputs.instructions}

    def rollback(self, ctx: Context) -> None:
        return None
