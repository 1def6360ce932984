"""mactl: migrations from Elasticsearch/OpenSearch to OpenSearch as a declarative workflow.

A config file describes the desired migration; `mactl plan` expands it into a graph of
stages and diffs it against the recorded state; `mactl apply` walks that plan through
providers that do the real work. See docs/architecture.md for how the pieces fit.
"""

__version__ = "0.1.0"
