"""Built-in stage type → its inputs model.

The config blocks and their checks read the schemas from here, without loading any
provider; each built-in provider's `Inputs` is the same class (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

from mactl.schema.backfill import BackfillInputs
from mactl.schema.capture import CaptureInputs
from mactl.schema.common import Model
from mactl.schema.disable_capture import DisableCaptureInputs
from mactl.schema.manual import ManualInputs
from mactl.schema.metadata import MetadataInputs
from mactl.schema.replay import ReplayInputs
from mactl.schema.snapshot import SnapshotInputs
from mactl.schema.switchover import SwitchoverInputs
from mactl.schema.teardown import TeardownInputs
from mactl.schema.validate import ValidateInputs

BUILTIN_INPUTS: Mapping[str, type[Model]] = {
    "capture": CaptureInputs,
    "snapshot": SnapshotInputs,
    "metadata": MetadataInputs,
    "backfill": BackfillInputs,
    "replay": ReplayInputs,
    "validate": ValidateInputs,
    "manual": ManualInputs,
    "switchover": SwitchoverInputs,
    "disable_capture": DisableCaptureInputs,
    "teardown": TeardownInputs,
}
