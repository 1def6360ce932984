"""The state journal: appends are O(1), readers see document + journal merged, and a kill
at any point (a torn last line, between append and compaction, mid-compaction) leaves a
state that reads back exactly what was acknowledged. Both backends; S3 on moto's server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mactl.state import LocalStateConfig, S3StateConfig, StateDocument, open_backend
from mactl.state.backend import Backend, StateConflict
from mactl.state.document import HistoryEntry
from mactl.state.journal import Transition
from mactl.state.local import LocalBackend

from mactl.errors import LockError, StateError


def _open(config: LocalStateConfig | S3StateConfig, tmp_path: Path) -> Backend:
    return open_backend(config, base_dir=tmp_path)


def _start(address: str, serial: int) -> Transition:
    return Transition(
        address=address,
        fields={"type": "backfill", "status": "running", "inputs": {"index": address, "password": "hunter2"}},
        history=HistoryEntry(who="t@h", operation="apply", address=address, result="started", serial=serial),
    )


def _done(address: str, docs: int) -> Transition:
    return Transition(address=address, fields={"status": "complete", "outputs": {"documents": docs}})


def test_appends_are_read_back_merged_and_compaction_keeps_the_serial(
    any_state: LocalStateConfig | S3StateConfig, tmp_path: Path
) -> None:
    backend = _open(any_state, tmp_path)
    doc = backend.write(StateDocument())  # serial 1, a document to extend
    serial = doc.serial
    for i in range(5):
        serial = backend.append(doc.lineage, serial, [_start(f"s{i}", serial + 1)])
        serial = backend.append(doc.lineage, serial, [_done(f"s{i}", i * 10)])
    assert serial == 11

    seen = _open(any_state, tmp_path).read()  # a fresh reader: status, state show, plan
    assert seen is not None and seen.serial == 11 and seen.lineage == doc.lineage
    assert [(a, r.status, r.outputs) for a, r in seen.stages.items()] == [
        (f"s{i}", "complete", {"documents": i * 10}) for i in range(5)
    ]
    assert seen.stages["s0"].inputs["password"] != "hunter2"  # masked by the state layer itself
    assert [h.address for h in seen.history] == [f"s{i}" for i in range(5)]

    backend.compact()
    again = _open(any_state, tmp_path).read()
    assert again == seen  # same state, same serial: only where it is kept changed
    backend.compact()  # idempotent
    assert _open(any_state, tmp_path).read() == seen
    if isinstance(backend, LocalBackend):
        assert not backend.journal.exists()
        assert StateDocument.model_validate_json(backend.path.read_bytes()) == seen


def test_a_stale_append_is_refused_and_a_full_write_folds_the_journal_in(
    any_state: LocalStateConfig | S3StateConfig, tmp_path: Path
) -> None:
    backend = _open(any_state, tmp_path)
    doc = backend.write(StateDocument())
    serial = backend.append(doc.lineage, doc.serial, [_start("a", 2)])
    other = _open(any_state, tmp_path)
    current = other.read()
    assert current is not None and current.serial == serial
    current.stages.pop("a")
    stored = other.write(current)  # `state rm`: read merged, write whole
    assert stored.serial == serial + 1
    with pytest.raises(StateConflict):
        backend.append(doc.lineage, serial, [_done("a", 1)])  # read before the write: refused
    after = _open(any_state, tmp_path).read()
    assert after is not None and after.serial == serial + 1 and "a" not in after.stages
    # the new writer appends on top of what it wrote
    assert other.append(stored.lineage, stored.serial, [_start("b", 4)]) == serial + 2


def test_a_writer_that_lost_the_lock_cannot_append(any_state: LocalStateConfig | S3StateConfig, tmp_path: Path) -> None:
    backend = _open(any_state, tmp_path)
    doc = backend.write(StateDocument())
    with backend.lock("apply", heartbeat_s=3600) as info:
        serial = backend.append(doc.lineage, doc.serial, [_start("a", 2)])
        _open(any_state, tmp_path).force_unlock(info.id)
        with pytest.raises(LockError):
            backend.append(doc.lineage, serial, [_done("a", 1)])
    seen = _open(any_state, tmp_path).read()
    assert seen is not None and seen.serial == serial and seen.stages["a"].status == "running"


def test_lock_release_compacts(any_state: LocalStateConfig | S3StateConfig, tmp_path: Path) -> None:
    backend = _open(any_state, tmp_path)
    doc = backend.write(StateDocument())
    with backend.lock("apply", heartbeat_s=3600):
        serial = backend.append(doc.lineage, doc.serial, [_start("a", 2), _done("a", 7)])
    if isinstance(backend, LocalBackend):
        assert not backend.journal.exists()
        stored = StateDocument.model_validate_json(backend.path.read_bytes())
    else:
        from mactl.state.s3 import S3Backend

        assert isinstance(backend, S3Backend)
        assert backend.store.list_keys(backend.journal_prefix) == []
        stored = StateDocument.model_validate_json(backend.store.get(backend.key)[0])  # type: ignore[index]
    assert stored.serial == serial and stored.stages["a"].outputs == {"documents": 7}


def test_the_journal_is_compacted_once_it_outgrows_the_document(tmp_path: Path) -> None:
    backend = open_backend(LocalStateConfig(path=str(tmp_path / ".mactl")), base_dir=tmp_path)
    assert isinstance(backend, LocalBackend)
    doc = backend.write(StateDocument())
    serial, big = doc.serial, {"blob": "x" * 200_000}
    for i in range(8):  # 1.6 MB appended: past the 1 MB floor, once
        serial = backend.append(
            doc.lineage, serial, [Transition(address=f"s{i}", fields={"type": "t", "outputs": big})]
        )
    assert backend.journal.stat().st_size < 1_000_000
    seen = open_backend(LocalStateConfig(path=str(tmp_path / ".mactl")), base_dir=tmp_path).read()
    assert seen is not None and seen.serial == serial and len(seen.stages) == 8


def test_local_torn_last_line_is_ignored_and_cut_off_by_the_next_append(tmp_path: Path) -> None:
    config = LocalStateConfig(path=str(tmp_path / ".mactl"))
    backend = open_backend(config, base_dir=tmp_path)
    assert isinstance(backend, LocalBackend)
    doc = backend.write(StateDocument())
    serial = backend.append(doc.lineage, doc.serial, [_start("a", 2)])
    with backend.journal.open("ab") as file:  # a writer killed mid-line
        file.write(b'{"s":3,"lock":"","t":[{"a":"a","set":{"status":"compl')
    reader = open_backend(config, base_dir=tmp_path)
    seen = reader.read()
    assert seen is not None and seen.serial == serial and seen.stages["a"].status == "running"
    # the next run appends on top of what was acknowledged; the torn bytes are gone
    assert reader.append(seen.lineage, seen.serial, [_done("a", 3)]) == serial + 1
    final = open_backend(config, base_dir=tmp_path).read()
    assert final is not None and final.serial == serial + 1 and final.stages["a"].status == "complete"
    lines = backend.journal.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)  # header and two whole entries


def test_local_damage_before_the_last_line_is_an_error_not_skipped(tmp_path: Path) -> None:
    config = LocalStateConfig(path=str(tmp_path / ".mactl"))
    backend = open_backend(config, base_dir=tmp_path)
    assert isinstance(backend, LocalBackend)
    doc = backend.write(StateDocument())
    serial = backend.append(doc.lineage, doc.serial, [_start("a", 2)])
    backend.append(doc.lineage, serial, [_done("a", 3)])
    lines = backend.journal.read_bytes().split(b"\n")
    lines[1] = lines[1][:20]
    backend.journal.write_bytes(b"\n".join(lines))
    with pytest.raises(StateError, match="damaged"):
        open_backend(config, base_dir=tmp_path).read()


_KILLER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from mactl.state import LocalStateConfig, StateDocument, open_backend
    from mactl.state.journal import Transition
    import mactl.state.local as local

    folder, where = Path(sys.argv[1]), sys.argv[2]
    backend = open_backend(LocalStateConfig(path=str(folder / ".mactl")), base_dir=folder)
    doc = backend.read()
    serial = backend.append(doc.lineage, doc.serial, [Transition(address="k", fields={"status": "complete"})])
    print(serial, flush=True)
    real_unlink = Path.unlink
    def die_on_journal_unlink(self, missing_ok=False):
        if self.name == local.JOURNAL_FILE and where == "before-journal-removed":
            os._exit(9)  # the document is stored, the journal not yet removed
        return real_unlink(self, missing_ok=missing_ok)
    Path.unlink = die_on_journal_unlink
    real_replace = os.replace
    def die_on_document_replace(src, dst):
        if str(dst).endswith(local.STATE_FILE) and where == "before-document-stored":
            os._exit(9)  # the merged document is in a temp file, not yet renamed
        return real_replace(src, dst)
    os.replace = die_on_document_replace
    backend.compact()
    """
)


@pytest.mark.parametrize("where", ["before-document-stored", "before-journal-removed"])
def test_local_kill_during_compaction_reads_back_the_same_state(tmp_path: Path, where: str) -> None:
    config = LocalStateConfig(path=str(tmp_path / ".mactl"))
    backend = open_backend(config, base_dir=tmp_path)
    assert isinstance(backend, LocalBackend)
    doc = backend.write(StateDocument())
    backend.append(doc.lineage, doc.serial, [Transition(address="k", fields={"type": "manual", "status": "running"})])
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(tmp_path), where],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    acknowledged = int(proc.stdout.split()[0])
    assert backend.journal.exists()  # the kill landed before the journal was removed
    seen = open_backend(config, base_dir=tmp_path).read()
    assert seen is not None and seen.serial == acknowledged and seen.stages["k"].status == "complete"
    # the next run compacts again (idempotent) and appends on top
    reader = open_backend(config, base_dir=tmp_path)
    reader.read()
    reader.compact()
    assert not backend.journal.exists()
    again = open_backend(config, base_dir=tmp_path).read()
    assert again == seen
    assert reader.append(seen.lineage, seen.serial, [_done("k", 1)]) == acknowledged + 1


@pytest.mark.s3
def test_s3_journal_rolls_over_chunks_and_a_leftover_chunk_is_skipped(s3_state: S3StateConfig, tmp_path: Path) -> None:
    from mactl.state.s3 import JOURNAL_CHUNK_ENTRIES, S3Backend

    backend = open_backend(s3_state, base_dir=tmp_path)
    assert isinstance(backend, S3Backend)
    doc = backend.write(StateDocument())
    serial = doc.serial
    for i in range(JOURNAL_CHUNK_ENTRIES + 3):
        serial = backend.append(doc.lineage, serial, [_start(f"s{i}", serial + 1)])
    keys = backend.store.list_keys(backend.journal_prefix)
    assert len(keys) == 2  # one full chunk, one started
    first_chunk = backend.store.get(keys[0])
    assert first_chunk is not None
    seen = open_backend(s3_state, base_dir=tmp_path).read()
    assert seen is not None and seen.serial == serial and len(seen.stages) == JOURNAL_CHUNK_ENTRIES + 3
    backend.compact()
    assert backend.store.list_keys(backend.journal_prefix) == []
    # a compaction killed after storing the document but before deleting a chunk
    backend.store.call("put_object", keys[0], Body=first_chunk[0])
    again = open_backend(s3_state, base_dir=tmp_path).read()
    assert again == seen
