"""Give auto-id writes the `_id` the source chose, so replay stays idempotent.

A client that indexes without an id (`POST /logs/_doc`, or a `_bulk` `index`/`create`
action with no `_id`) lets the cluster pick one. Replayed as captured, the target would
pick a different id: the target's documents would no longer match the source's by `_id`
(so validation by `_id` fails) and a record sent twice after a replayer restart would
create a second document. The capture record holds the source's answer, which names the
id it chose, so the replayer rewrites such a request into an explicit-id write:
`PUT /logs/_doc/<id>`, or the bulk action with `_id` set (a `create` becomes an `index`,
so that sending it twice overwrites instead of failing with a conflict).

Anything this module cannot read with certainty (a compressed request body, an answer
without ids because of `filter_path`, a count mismatch between actions and items) is
left exactly as captured.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from mactl.capture.record import Record

# POST /index/_doc[/] or, on ES 6, POST /index/type[/]: an index request with no id.
_SINGLE = re.compile(r"^/(?P<index>[^/_?][^/?]*)/(?P<type>_doc|[^/_?][^/?]*)/?(?P<query>\?.*)?$")
_BULK = re.compile(r"^(/[^/?]+){0,2}/_bulk/?(\?.*)?$")


@dataclass(frozen=True, slots=True)
class Pinned:
    """The rewritten request and how many documents got the source's id."""

    method: str
    path: str
    body: bytes
    documents: int


def pin_source_ids(rec: Record) -> Pinned | None:
    """The request with the source's ids filled in, or None to replay it as captured."""
    request_encoding = (rec.header("content-encoding") or "identity").strip().lower()
    if rec.status not in (200, 201) or request_encoding not in ("", "identity"):
        return None
    if rec.method in ("POST", "PUT") and _BULK.match(rec.path):
        return _pin_bulk(rec)
    match = _SINGLE.match(rec.path) if rec.method == "POST" else None  # never `/_bulk`: types cannot start with `_`
    if match:
        answer = _answer(rec)
        doc_id = answer.get("_id") if isinstance(answer, dict) else None
        if isinstance(doc_id, str) and doc_id:
            path = f"/{match['index']}/{match['type']}/{quote(doc_id, safe='')}{match['query'] or ''}"
            return Pinned("PUT", path, rec.body, 1)
    return None


def _answer(rec: Record) -> object:
    body = rec.response_body
    encoding = next((v for k, v in rec.response_headers if k.lower() == "content-encoding"), "").lower()
    try:
        if "gzip" in encoding:
            body = gzip.decompress(body)
        elif "deflate" in encoding:
            body = zlib.decompress(body)
        return orjson.loads(body)
    except (OSError, zlib.error, orjson.JSONDecodeError, EOFError):
        return None


def _pin_bulk(rec: Record) -> Pinned | None:
    answer = _answer(rec)
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        return None
    lines = rec.body.split(b"\n")
    out: list[bytes] = []
    item_no = 0
    pinned = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            out.append(line)
            i += 1
            continue
        try:
            action = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(action, dict) or len(action) != 1:
            return None
        ((op, meta),) = action.items()
        has_source = op in ("index", "create", "update")
        if item_no >= len(items):
            return None
        item = items[item_no]
        item_no += 1
        result = item.get(op) if isinstance(item, dict) else None
        if (
            op in ("index", "create")
            and isinstance(meta, dict)
            and "_id" not in meta
            and isinstance(result, dict)
            and isinstance(result.get("_id"), str)
            and result.get("status") in (200, 201)
        ):
            line = orjson.dumps({"index": {**meta, "_id": result["_id"]}})
            pinned += 1
        out.append(line)
        i += 1
        if has_source:
            if i >= len(lines):
                return None
            out.append(lines[i])
            i += 1
    if item_no != len(items) or pinned == 0:
        return None
    return Pinned(rec.method, rec.path, b"\n".join(out), pinned)
