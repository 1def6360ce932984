"""Both backends (local folder, S3 on moto's server): conditional writes, lineage, history,
backups, workspaces, corrupt state, and secrets never stored in plain text."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
from mactl.state import (
    LocalStateConfig,
    S3StateConfig,
    StageRecord,
    StateConflict,
    StateDocument,
    current_workspace,
    delete_workspace,
    list_workspaces,
    new_workspace,
    open_backend,
    select_workspace,
)

from mactl.errors import StateError

AnyState = LocalStateConfig | S3StateConfig


def _raw(config: AnyState, key_or_path: str) -> bytes:
    """The stored bytes, read behind the backend's back."""
    if isinstance(config, LocalStateConfig):
        return Path(key_or_path).read_bytes()
    client = boto3.client("s3", endpoint_url=config.endpoint, region_name="us-east-1")
    return client.get_object(Bucket=config.bucket, Key=key_or_path)["Body"].read()  # type: ignore[no-any-return]


def _location(config: AnyState, backend: object) -> str:
    return str(backend.path) if isinstance(config, LocalStateConfig) else backend.key  # type: ignore[attr-defined]


def test_first_write_then_conditional_writes(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    assert backend.read() is None
    doc = StateDocument()
    doc.record(who="ann@h", operation="apply", result="ok")
    first = backend.write(doc)
    assert first.serial == 1 and first.lineage == doc.lineage
    # a second writer that read serial 1 and a first one that moves on: the slower one conflicts
    other = open_backend(any_state, base_dir=tmp_path)
    stale = other.read()
    assert stale is not None and stale.serial == 1
    second = backend.write(first)
    assert second.serial == 2
    stale.record(who="bob@h", operation="apply", result="ok")
    with pytest.raises(StateConflict, match="serial"):
        other.write(stale)
    # a writer that never read (serial 0) cannot clobber an existing state either
    with pytest.raises(StateConflict):
        open_backend(any_state, base_dir=tmp_path).write(StateDocument())
    assert backend.read() == second


def test_another_lineage_and_shrinking_history_are_refused(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    doc = StateDocument()
    for i in range(3):
        doc.record(who="ann@h", operation="apply", result="ok", detail=str(i))
    doc = backend.write(doc)
    foreign = StateDocument(serial=doc.serial)
    with pytest.raises(StateConflict, match="lineage"):
        backend.write(foreign)
    shorter = doc.model_copy(update={"history": doc.history[:1]})
    with pytest.raises(StateError, match="append-only"):
        backend.write(shorter)
    assert backend.write(shorter, replace=True).serial == doc.serial + 1  # `state push --force`


def test_last_ten_versions_are_kept_as_backups(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    doc = StateDocument()
    for i in range(14):
        doc.record(who="ann@h", operation="apply", result="ok", detail=f"write {i}")
        doc = backend.write(doc)
    versions = list(backend.versions())
    assert len(versions) == 10
    serials = [backend.read_version(v).serial for v in versions]
    assert serials == sorted(serials, reverse=True)
    assert serials[0] in (13, 14)  # local keeps the replaced versions, S3 the written ones
    assert all(len(backend.read_version(v).history) == backend.read_version(v).serial for v in versions)


def test_secrets_are_never_stored_in_plain_text(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    doc = StateDocument()
    doc.stages["backfill.source.snap1.target_1.m0.b0"] = StageRecord(
        type="backfill",
        inputs={
            "target": {
                "endpoint": "https://t:9200",
                "auth": {"type": "basic", "username": "admin", "password": "pw-PLAIN-1"},
            },
            "s3": {"accessKey": "AKIA-PLAIN-2", "secret_key": "sk-PLAIN-3"},
            "headers": {"Authorization": "Bearer PLAIN-4"},
            "settings": {"analysis": {"tokenizer": "standard"}},
        },
        outputs={"sessionToken": "PLAIN-5"},
        checkpoint={"api_key": "PLAIN-6"},
    )
    stored = backend.write(doc)
    raw = _raw(any_state, _location(any_state, backend))
    assert b"PLAIN" not in raw
    assert raw.count(b"(sensitive)") == 6
    assert b'"tokenizer":"standard"' in raw and b'"username":"admin"' in raw
    record = stored.stages["backfill.source.snap1.target_1.m0.b0"]
    assert record.inputs["target"]["auth"]["password"] == "(sensitive)"
    assert record.checkpoint == {"api_key": "(sensitive)"}


def test_workspaces_have_their_own_state_and_lock(any_state: AnyState, tmp_path: Path) -> None:
    default = open_backend(any_state, base_dir=tmp_path)
    default.write(StateDocument(stages={"capture.source": StageRecord(type="capture")}))
    prod = new_workspace(any_state, "prod", tmp_path)
    assert list_workspaces(any_state, tmp_path) == ["default", "prod"]
    assert current_workspace(any_state, tmp_path) == "default"
    select_workspace(any_state, "prod", tmp_path)
    selected = open_backend(any_state, base_dir=tmp_path)
    assert selected.workspace == "prod" and selected.describe() == prod.describe() != default.describe()
    doc = selected.read()
    assert doc is not None and doc.stages == {} and doc.history[0].operation == "workspace new"
    assert selected.workdir == tmp_path / ".mactl" / "work" / "prod"  # local files, even for S3 state
    assert selected.workdir.is_dir()
    with selected.lock("apply"):
        assert default.lock_info() is None  # each workspace has its own lock
        with default.lock("apply"):
            pass
    if isinstance(any_state, S3StateConfig):
        assert prod.key == "mactl/workspaces/prod/state.json"  # a key prefix per workspace
    else:
        assert Path(prod.describe()) == Path(any_state.path) / "workspaces" / "prod" / "state.json"
    with pytest.raises(StateError, match="already exists"):
        new_workspace(any_state, "prod", tmp_path)
    with pytest.raises(StateError, match="is selected"):
        delete_workspace(any_state, "prod", tmp_path)
    select_workspace(any_state, "default", tmp_path)
    delete_workspace(any_state, "prod", tmp_path)
    assert list_workspaces(any_state, tmp_path) == ["default"]
    with pytest.raises(StateError, match="cannot be deleted"):
        delete_workspace(any_state, "default", tmp_path)


def test_deleting_a_workspace_with_stages_needs_force(local_state: LocalStateConfig, tmp_path: Path) -> None:
    backend = new_workspace(local_state, "pre-prod", tmp_path)
    doc = backend.read()
    assert doc is not None
    doc.stages["snapshot.s.x"] = StageRecord(type="snapshot", status="complete")
    backend.write(doc)
    with pytest.raises(StateError, match="still records 1 stage"):
        delete_workspace(local_state, "pre-prod", tmp_path)
    delete_workspace(local_state, "pre-prod", tmp_path, force=True)
    assert list_workspaces(local_state, tmp_path) == ["default"]


def test_selected_workspace_that_vanished_is_an_error(local_state: LocalStateConfig, tmp_path: Path) -> None:
    new_workspace(local_state, "gone", tmp_path)
    select_workspace(local_state, "gone", tmp_path)
    shutil.rmtree(Path(local_state.path) / "workspaces" / "gone")
    with pytest.raises(StateError, match="does not exist"):
        open_backend(local_state, base_dir=tmp_path)


@pytest.mark.parametrize("name", ["", "../up", "a/b", "-x", "x" * 70, "with space"])
def test_bad_workspace_names_are_refused(local_state: LocalStateConfig, tmp_path: Path, name: str) -> None:
    with pytest.raises(Exception, match="workspace name"):
        new_workspace(local_state, name, tmp_path)


def _history_doc(backend: object, writes: int) -> StateDocument:
    doc = StateDocument()
    for i in range(writes):
        doc.record(who="ann@h", operation="apply", result="ok", detail=f"write {i}")
        doc = backend.write(doc)  # type: ignore[attr-defined]
    return doc


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_local_state_points_at_backups_and_is_never_overwritten(
    local_state: LocalStateConfig, tmp_path: Path, damage: str
) -> None:
    backend = open_backend(local_state, base_dir=tmp_path)
    good = _history_doc(backend, 4)
    state_file = backend.path
    data = state_file.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": b"\x00\xffnot json", "empty": b""}[damage]
    state_file.write_bytes(damaged)

    fresh = open_backend(local_state, base_dir=tmp_path)
    with pytest.raises(StateError) as err:
        fresh.read()
    message = str(err.value)
    assert str(state_file) in message and "will not write over it" in message
    assert "backups/state.3.json" in message  # the newest backup, named in the hint
    for writer in (fresh, backend):  # neither a fresh backend nor one that read it before may write
        with pytest.raises(StateError):
            writer.write(good)
    assert state_file.read_bytes() == damaged

    # the hint's advice works
    newest = next(fresh.versions())
    shutil.copyfile(newest, state_file)
    restored = fresh.read()
    assert restored is not None and restored.serial == 3 and len(restored.history) == 3


@pytest.mark.s3
def test_corrupt_s3_state_points_at_backups_and_is_never_overwritten(s3_state: S3StateConfig, tmp_path: Path) -> None:
    backend = open_backend(s3_state, base_dir=tmp_path)
    good = _history_doc(backend, 3)
    client = boto3.client("s3", endpoint_url=s3_state.endpoint, region_name="us-east-1")
    client.put_object(Bucket=s3_state.bucket, Key=backend.key, Body=b'{"serial": 3, "stages": {')
    fresh = open_backend(s3_state, base_dir=tmp_path)
    with pytest.raises(StateError) as err:
        fresh.read()
    assert "corrupt" in str(err.value) and "mactl/backups/state.json.3" in str(err.value)
    with pytest.raises(StateError):
        fresh.write(good)
    with pytest.raises(StateError):  # the cached ETag is stale: the conditional PUT refuses
        backend.write(good)
    assert _raw(s3_state, backend.key) == b'{"serial": 3, "stages": {'


@pytest.mark.s3
def test_missing_bucket_is_a_clear_error(s3_state: S3StateConfig, tmp_path: Path) -> None:
    config = s3_state.model_copy(update={"bucket": s3_state.bucket + "-missing"})
    with pytest.raises(StateError, match="does not exist"):
        open_backend(config, base_dir=tmp_path).read()


@pytest.mark.s3
def test_a_write_replaced_by_a_simultaneous_one_is_a_conflict(
    s3_state: S3StateConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's conditional PUT is check-then-store: two simultaneous writers can both get 200.
    Inject exactly that interleaving (the rival's PUT lands right after ours) and check that
    ours is reported as a conflict rather than silently lost."""
    from mactl.state.document import encode_document

    backend = open_backend(s3_state, base_dir=tmp_path)
    backend.write(StateDocument())
    rival_doc = open_backend(s3_state, base_dir=tmp_path).read()
    assert rival_doc is not None
    rival_doc.record(who="rival@h", operation="apply", result="ok")
    rival_stored = rival_doc.model_copy(update={"serial": 2})
    real_call = backend.store.call

    def call_then_rival_lands(operation: str, key: str, **kwargs: object) -> object:
        response = real_call(operation, key, **kwargs)
        if operation == "put_object" and key == backend.key:
            real_call(
                "put_object",
                key,
                Body=encode_document(rival_stored),
                Metadata={"serial": "2", "lineage": rival_stored.lineage, "history-len": "1"},
            )
        return response

    monkeypatch.setattr(backend.store, "call", call_then_rival_lands)
    mine = backend.read()
    assert mine is not None
    mine.record(who="me@h", operation="apply", result="ok")
    with pytest.raises(StateConflict, match="at the same time"):
        backend.write(mine)
    monkeypatch.setattr(backend.store, "call", real_call)
    again = backend.read()
    assert again is not None and [e.who for e in again.history] == ["rival@h"]
    again.record(who="me@h", operation="apply", result="ok")
    assert [e.who for e in backend.write(again).history] == ["rival@h", "me@h"]  # the retry keeps both
