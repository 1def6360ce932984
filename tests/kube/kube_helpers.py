"""What the Kubernetes tests share: the control plane they run against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    pods: Path  # where the local node keeps each pod's log

    def api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))
