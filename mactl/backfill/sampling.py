"""Deterministic document sampling by `_id`, so a larger sample is a superset of a smaller one.

Every `_id` maps to a 64-bit hash. `percent: p` keeps the ids whose hash is below
`p/100 * 2**64`; `maxDocsPerIndex: n` keeps the n smallest hashes of the index (found by a
pre-pass, stored as a threshold). Both are monotone: raising p or n only moves the
threshold up, so 1% ⊂ 10% ⊂ 100% and the documents already written stay valid.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass

HASH_SPACE = 1 << 64


def id_hash(doc_id: str) -> int:
    """A stable 64-bit hash of an `_id` (same on every host and Python version)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Sampler:
    """Keeps a document when its id hash is at most `threshold` (None: keep everything)."""

    threshold: int | None = None

    def keep(self, doc_id: str) -> bool:
        return self.threshold is None or id_hash(doc_id) <= self.threshold


def percent_threshold(percent: float) -> int | None:
    """The inclusive hash threshold for `percent`; None for 100% (no sampling)."""
    if percent >= 100:
        return None
    return int(HASH_SPACE * (percent / 100.0)) - 1


def smallest_hashes_threshold(ids: Iterable[str], n: int) -> int | None:
    """The threshold that keeps exactly the `n` smallest id hashes; None if there are <= n ids."""
    if n <= 0:
        return -1
    largest_of_smallest: list[int] = []  # a max-heap (negated) of the n smallest hashes
    count = 0
    for doc_id in ids:
        count += 1
        h = -id_hash(doc_id)
        if len(largest_of_smallest) < n:
            heapq.heappush(largest_of_smallest, h)
        elif h > largest_of_smallest[0]:
            heapq.heapreplace(largest_of_smallest, h)
    if count <= n:
        return None
    return -largest_of_smallest[0]
