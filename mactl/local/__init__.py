"""Real local services for development, tests and the demo: ES 7.10.2, OpenSearch 1.3 and 2.x,
a moto S3 server and a KRaft Kafka broker, all on loopback, without Docker.

It fetches distributions with `mvn` from Maven Central, unpacks each once into a cache, and
starts, checks and stops the services by PID. The CLI behind `scripts/clusters` is
`python -m mactl.local`; `tests/conftest.py` uses the same functions.

It must not be imported by the migration engine (config, graph, plan, apply, providers):
mactl migrates clusters it is pointed at and never starts them itself.
"""

from __future__ import annotations

from mactl.local.clusters import CLUSTERS, ClusterSpec
from mactl.local.errors import LocalServiceError
from mactl.local.instance import Instance, Status
from mactl.local.services import (
    SERVICE_NAMES,
    start_services,
    status_of,
    stop_services,
)

__all__ = [
    "CLUSTERS",
    "ClusterSpec",
    "Instance",
    "LocalServiceError",
    "SERVICE_NAMES",
    "Status",
    "start_services",
    "status_of",
    "stop_services",
]
