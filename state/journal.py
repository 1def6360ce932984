"""The state's append-only journal: what changed since the document was last written.

Rewriting the whole document at every stage transition costs O(stages) per transition,
so an apply of N stages costs O(N²). Instead the engine appends each transition (or each
group-committed batch of them) to a journal, and the journal is folded into the document
("compacted") at the end of an apply, when the lock is released, and when it grows past
the document's own size (so compaction's O(N) cost is paid at most once per O(N) bytes
appended: O(1) per transition, amortized).

A journal belongs to one document: it names the document's lineage and the serial it
starts from (`base`). Each entry is stored as serial `base + 1`, `base + 2`, … and
carries one or more `Transition`s, so the state a reader sees is the document with
every entry after its serial applied in order, at the last entry's serial. An entry at
or below the document's serial has already been folded in (a compaction that stopped
between writing the document and removing the journal) and is skipped: compaction is
idempotent and a kill at any point leaves a readable, correct state.

The encoding is one JSON object per line (`encode_entry`); the local backend keeps them
in one file, the S3 backend (which cannot append) one object per entry. A last line cut
short by a crash (no newline, or not JSON) is ignored: its writer never returned, so
nobody was told it was stored. Damage anywhere else is an error, never skipped.

This module is pure (no I/O): it encodes entries, decodes them and folds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from mactl.state.document import HistoryEntry, StageRecord, StateDocument
from mactl.state.masking import mask_secrets, mask_url_password
from pydantic import ValidationError

from mactl.errors import StateError

JOURNAL_FORMAT = 1
# Compact once the journal holds more bytes than this or than the document, whichever
# is larger: small states are not rewritten every few transitions, big ones at most
# once per document-size of appended bytes.
COMPACT_MIN_BYTES = 1 << 20
_MASKED_FIELDS = ("inputs", "outputs", "checkpoint")


@dataclass(frozen=True)
class Transition:
    """One change to the state, generic over what the address names (a stage, an instance).

    `fields` are the record's changed fields as JSON values (a record the state does not
    have yet needs at least `type`); `removed` drops the address's record instead.
    `history` is appended to the document's history. Any of the three may be absent.
    """

    address: str | None = None
    fields: Mapping[str, Any] | None = None
    removed: bool = False
    history: HistoryEntry | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.address is not None:
            out["a"] = self.address
        if self.removed:
            out["rm"] = True
        elif self.fields is not None:
            out["set"] = dict(self.fields)
        if self.history is not None:
            out["h"] = self.history.model_dump(mode="json", exclude_none=True)
        return out


def mask_transition(transition: Transition) -> Transition:
    """`transition` with secret-looking values masked, as `mask_document` masks a document:
    the state layer's own guard, whatever the engine passed in."""
    fields = transition.fields
    if fields:
        masked = dict(fields)
        for key in _MASKED_FIELDS:
            if masked.get(key):
                masked[key], _ = mask_secrets(masked[key])
        if isinstance(masked.get("last_error"), str):
            masked["last_error"], _ = mask_url_password(masked["last_error"])
        fields = masked
    history = transition.history
    if history is not None and history.detail and "@" in history.detail:
        detail, n = mask_url_password(history.detail)
        if n:
            history = history.model_copy(update={"detail": detail})
    return Transition(transition.address, fields, transition.removed, history)


def encode_header(lineage: str, base: int) -> bytes:
    """The journal file's first line: whose document it extends, from which serial."""
    return orjson.dumps({"journal": JOURNAL_FORMAT, "lineage": lineage, "base": base}) + b"\n"


def encode_entry(serial: int, lock_id: str, transitions: Sequence[Transition]) -> bytes:
    """One entry, one line: stored as `serial`, written under lock `lock_id`."""
    return orjson.dumps({"s": serial, "lock": lock_id, "t": [t.to_json() for t in transitions]}) + b"\n"


@dataclass(frozen=True)
class Header:
    lineage: str
    base: int


@dataclass
class Entries:
    """The entries read from a journal: raw JSON, in order, and where the valid part ends."""

    header: Header | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    end: int = 0  # bytes of the file that hold whole, valid lines
    torn: int = 0  # bytes after `end`: a last line cut short, ignored

    @property
    def last_serial(self) -> int | None:
        return int(self.entries[-1]["s"]) if self.entries else None


def decode_header(line: bytes, where: str) -> Header:
    try:
        raw = orjson.loads(line)
        if raw.get("journal", 0) > JOURNAL_FORMAT:
            raise StateError(
                f"state journal at {where} has format {raw['journal']}; this mactl reads up to {JOURNAL_FORMAT}",
                hint="upgrade mactl",
            )
        return Header(str(raw["lineage"]), int(raw["base"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise StateError(f"state journal at {where} has a damaged header line") from None


def decode_entry(line: bytes, where: str) -> dict[str, Any] | None:
    """One entry's JSON, or None if `line` is not a whole entry."""
    if not line.endswith(b"\n"):
        return None
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("s"), int) or not isinstance(raw.get("t"), list):
        return None
    return raw


def decode_journal(data: bytes, where: str) -> Entries:
    """Split a journal file into its header and entries; only the last line may be torn.

    Serials must follow each other from `base + 1`: anything else is damage, reported.
    """
    out = Entries()
    if not data:
        return out
    first = data.find(b"\n")
    if first < 0:  # a journal whose creation was cut short: nothing in it was ever stored
        out.torn = len(data)
        return out
    out.header = decode_header(data[: first + 1], where)
    pos = first + 1
    out.end = pos
    expected = out.header.base + 1
    while pos < len(data):
        nl = data.find(b"\n", pos)
        stop = len(data) if nl < 0 else nl + 1
        entry = decode_entry(data[pos:stop], where)
        if entry is None:
            if stop < len(data):
                raise StateError(f"state journal at {where} is damaged at byte {pos} (not its last line)")
            out.torn = stop - pos
            break
        if entry["s"] != expected:
            raise StateError(f"state journal at {where} jumps from serial {expected - 1} to {entry['s']} at byte {pos}")
        out.entries.append(entry)
        expected += 1
        pos = stop
        out.end = pos
    return out


def fold(
    doc: StateDocument | None, header: Header | None, entries: Iterable[dict[str, Any]], where: str
) -> StateDocument | None:
    """`doc` with the journal's entries after its serial applied, at the last entry's serial.

    A journal of another lineage, or one that starts after the document's serial (the
    document it extends is missing), is an error; entries at or below the document's
    serial were already folded in and are skipped.
    """
    if header is None:
        return doc
    base_serial = doc.serial if doc is not None else 0
    if doc is not None and header.lineage != doc.lineage:
        raise StateError(f"state journal at {where} belongs to lineage {header.lineage}, not {doc.lineage}")
    live = [e for e in entries if e["s"] > base_serial]
    if not live:
        return doc
    if live[0]["s"] != base_serial + 1:
        raise StateError(
            f"state journal at {where} starts at serial {live[0]['s']}, but the state document is at {base_serial}",
            hint="the document it extends is missing; restore a backup of the state",
        )
    for before, after in zip(live, live[1:], strict=False):
        if after["s"] != before["s"] + 1:
            raise StateError(f"state journal at {where} jumps from serial {before['s']} to {after['s']}")
    if doc is None:
        doc = StateDocument(lineage=header.lineage)
    stages = dict(doc.stages)
    history = list(doc.history)
    touched: dict[str, dict[str, Any]] = {}
    try:
        for entry in live:
            for raw in entry["t"]:
                address = raw.get("a")
                if raw.get("rm"):
                    stages.pop(address, None)
                    touched.pop(address, None)
                elif "set" in raw and address is not None:
                    current = touched.get(address)
                    if current is None:
                        record = stages.get(address)
                        current = record.model_dump() if record is not None else {}
                    current.update(raw["set"])
                    touched[address] = current
                if "h" in raw:
                    history.append(HistoryEntry.model_validate(raw["h"]))
        for address, fields in touched.items():
            stages[address] = StageRecord.model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(entry)"
        raise StateError(f"state journal at {where} is corrupt: {loc}: {first['msg']}") from None
    except (TypeError, AttributeError, KeyError):
        raise StateError(f"state journal at {where} is corrupt: an entry is not a transition") from None
    return doc.model_copy(update={"serial": live[-1]["s"], "stages": stages, "history": history})


def should_compact(journal_bytes: int, document_bytes: int) -> bool:
    """Whether the journal has grown enough that folding it in is worth a document write."""
    return journal_bytes > max(COMPACT_MIN_BYTES, document_bytes)
