"""The state document as data: the seed's "map of everything that's been done".

One JSON document per workspace. `lineage` is fixed at creation; `serial` grows by one
on every write, so a plan can tell whether the state moved under it. Stage inputs are
stored with secrets already masked (see `mask`), never in plain text.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

FORMAT_VERSION = 1

StageStatus = Literal["pending", "running", "complete", "failed", "tainted", "awaiting_approval", "left_manual"]


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class StageRecord(BaseModel):
    """What the state knows about one stage.

    `inputs` is what was applied (secrets masked), `inputs_digest` a hash of the
    unmasked inputs so a changed secret is still noticed. `checkpoint` is the provider's
    resume data for a stage that did not finish.
    """

    type: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    inputs_digest: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    status: StageStatus = "pending"
    checkpoint: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    last_error: str | None = None
    approved_by: str | None = None
    depends_on: list[str] = Field(default_factory=list)


class HistoryEntry(BaseModel):
    """One operation: who did what to which stage, when, and how it ended."""

    at: str = Field(default_factory=utcnow)
    who: str
    operation: str  # apply, rollback, approve, state rm, force-unlock, …
    address: str | None = None
    result: str  # ok, failed, interrupted, …
    detail: str | None = None
    serial: int | None = None


class StateDocument(BaseModel):
    format_version: int = FORMAT_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)
