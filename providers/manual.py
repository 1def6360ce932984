"""Manual stage: a step a person does (upgrade clients, deprovision the source).

It does nothing itself: it completes only once approved with `mactl approve ADDR`, and
its instructions are shown in the plan and in `status`. That makes it available now.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mactl.providers.base import BaseProvider, StageContext

from mactl.config.common import Model


class Inputs(Model):
    instructions: str


class ManualProvider(BaseProvider):
    type = "manual"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"instructions"})

    def apply(self, ctx: StageContext) -> dict[str, Any]:
        # The walker only calls apply once the stage is approved; approval is the work.
        return {"instructions": ctx.inputs.instructions}  # type: ignore[attr-defined]

    def rollback(self, ctx: StageContext) -> None:
        return None
