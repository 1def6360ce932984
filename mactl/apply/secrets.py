"""A removed stage's inputs with its secrets put back, so that it can be rolled back.

The state never holds a secret, so a stage that left the config has only its masked
inputs. It usually shares its clusters with stages still in the config: a top-level
field whose masked value equals a current stage's masked field gets that stage's real
value (its password). This is a best-effort guess, made only for removed stages.

It must not write anything, log a secret, or be used for a stage still in the config
(whose real inputs the graph has).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson

from mactl.graph.expand import StageGraph
from mactl.masking import mask_inputs


def _key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class SecretRestorer:
    def __init__(self, graph: StageGraph, secrets: Collection[str]) -> None:
        self.graph = graph
        self.secrets = [s for s in secrets if s]
        self._index: dict[tuple[str, bytes], Any] | None = None

    def _fields(self) -> dict[tuple[str, bytes], Any]:
        """(field, masked value) → real value, over every current stage with something masked."""
        if self._index is None:
            index: dict[tuple[str, bytes], Any] = {}
            for stage in self.graph.stages.values():
                masked = mask_inputs(stage.inputs, stage.sensitive_paths, self.secrets)
                for key, value in stage.inputs.items():
                    if masked.get(key) is not value:
                        index.setdefault((key, _key(masked.get(key))), value)
            self._index = index
        return self._index

    def restore(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """`inputs` (masked, as recorded) with each field a current stage unmasks replaced."""
        fields = self._fields()
        out = dict(inputs)
        for key, value in inputs.items():
            real = fields.get((key, _key(value)))
            if real is not None:
                out[key] = real
        return out
