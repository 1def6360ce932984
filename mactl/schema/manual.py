"""Inputs of the `manual` stage: a step a person does."""

from __future__ import annotations

from mactl.schema.common import Model


class ManualInputs(Model):
    instructions: str
