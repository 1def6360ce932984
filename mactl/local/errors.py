"""The one error the local harness raises: it says what failed and what to try."""

from __future__ import annotations

from mactl.errors import MactlError


class LocalServiceError(MactlError):
    """A local service could not be fetched, started, reached or stopped."""
