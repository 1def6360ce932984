"""State in S3 (or an S3-compatible store), one key prefix per workspace.

With `key: mactl/state.json` the objects are:

    mactl/state.json                          the `default` workspace's state
    mactl/state.json.lock                     its lock
    mactl/backups/state.json.N                its last 10 versions
    mactl/state.json.journal/<serial>         journal chunks (`mactl.state.journal`), named by their first serial
    mactl/workspaces/NAME/state.json(.lock)   workspace NAME, same layout below its prefix

S3 cannot append to an object, so the journal is a series of chunk objects: an `append`
rewrites the current chunk with one more entry (`If-Match` its last ETag) until it holds
`JOURNAL_CHUNK_ENTRIES` entries, then starts the next one (`If-None-Match: *`). A
transition therefore costs one PUT of at most a chunk's bytes (and the lock check's GET),
the same at any state size, and a reader fetches the document and one object per chunk.
A PUT is atomic, so a chunk is never torn. Compaction stores the merged document, then
deletes the chunks; chunks whose entries the document already holds are skipped.

Every write is conditional on the ETag of the object that was read (`If-Match`), and
the first one on its absence (`If-None-Match: *`), so a concurrent writer gets a 412
and a `StateConflict` rather than silently overwriting. The serial, lineage and
history length ride along as object metadata, so checking a write needs a HEAD, not a
download. The lock object is created with `If-None-Match: *`, refreshed by its holder
with `If-Match`, and deleted only if it is still the one we wrote.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from mactl.state.backend import LockInfo, StateConflict, check_conditional_write, decode_stored, restore_hint
from mactl.state.config import S3StateConfig
from mactl.state.document import StateDocument, decode_document, encode_document, mask_document
from mactl.state.journal import (
    Header,
    Transition,
    decode_journal,
    encode_entry,
    encode_header,
    fold,
    mask_transition,
    should_compact,
)
from mactl.state.locking import DEFAULT_HEARTBEAT_S, BackendLocking, HeldLock, lock_from_json, lock_to_json

from mactl.errors import LockError, StateError

log = logging.getLogger(__name__)

BACKUPS_KEPT = 10
JOURNAL_CHUNK_ENTRIES = 64  # entries per journal object: a transition PUTs at most this many
_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def s3_client(config: S3StateConfig) -> Any:
    """A client for the configured store. Credentials come from the usual AWS chain; a custom
    `endpoint` with none configured (moto, a local MinIO in a test) gets placeholder ones."""
    kwargs: dict[str, Any] = {"region_name": config.region}
    if config.endpoint:
        kwargs["endpoint_url"] = config.endpoint
        kwargs["config"] = botocore.config.Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}
        )
        if boto3.session.Session().get_credentials() is None:
            kwargs["aws_access_key_id"] = "testing"
            kwargs["aws_secret_access_key"] = "testing"
    return boto3.client("s3", **kwargs)


def _code(err: botocore.exceptions.ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def workspace_prefix(config: S3StateConfig, workspace: str) -> str:
    """The key of `workspace`'s state: `key` itself for `default`, else below `workspaces/NAME/`."""
    folder, name = posixpath.split(config.key)
    if workspace == "default":
        return config.key
    return posixpath.join(folder, "workspaces", workspace, name)


@dataclass(frozen=True)
class _Stored:
    etag: str  # the document object's
    serial: int  # with the journal folded in
    lineage: str
    history_len: int
    doc_size: int = 0


@dataclass
class _Chunk:
    """The journal object this backend appends to (it wrote every byte of it)."""

    key: str
    etag: str
    data: bytes
    entries: int
    last_serial: int


class S3Store:
    """Thin, error-translating access to one bucket; every failure becomes a `StateError`."""

    def __init__(self, config: S3StateConfig, client: Any | None = None) -> None:
        self.config = config
        self.client = client or s3_client(config)
        self.bucket = config.bucket

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def call(self, operation: str, key: str, **kwargs: Any) -> Any:
        return self.invoke(operation, Key=key, **kwargs)

    def invoke(self, operation: str, **kwargs: Any) -> Any:
        """One S3 request. `ClientError`s other than a missing bucket are left to the caller
        (it knows which codes are expected); everything else becomes a `StateError`."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as err:
            if _code(err) == "NoSuchBucket":
                raise StateError(
                    f"S3 bucket {self.bucket!r} does not exist (state.bucket)",
                    hint="create it first, or fix `state.bucket` in the config",
                ) from None
            raise
        except botocore.exceptions.NoCredentialsError:
            raise StateError(
                f"no AWS credentials found for the S3 state in bucket {self.bucket!r}",
                hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is available",
            ) from None
        except botocore.exceptions.BotoCoreError as err:
            raise StateError(f"S3 request to {self.config.endpoint or 'AWS'} failed (state.endpoint): {err}") from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            resp = self.call("get_object", key)
        except botocore.exceptions.ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise StateError(f"cannot read {self.url(key)}: {err}") from None
        return resp["Body"].read(), resp["ETag"]

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.call("head_object", key)  # type: ignore[no-any-return]
        except botocore.exceptions.ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise StateError(f"cannot read {self.url(key)}: {err}") from None

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            try:
                resp = self.invoke("list_objects_v2", Prefix=prefix, **token)
            except botocore.exceptions.ClientError as err:
                raise StateError(f"cannot list {self.url(prefix)}: {err}") from None
            keys.extend(obj["Key"] for obj in resp.get("Contents", []))
            if not resp.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": resp["NextContinuationToken"]}

    def list_folders(self, prefix: str) -> list[str]:
        """The immediate sub-'folders' of `prefix` (which ends with '/')."""
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            try:
                resp = self.invoke("list_objects_v2", Prefix=prefix, Delimiter="/", **token)
            except botocore.exceptions.ClientError as err:
                raise StateError(f"cannot list {self.url(prefix)}: {err}") from None
            names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in resp.get("CommonPrefixes", []))
            if not resp.get("IsTruncated"):
                return names
            token = {"ContinuationToken": resp["NextContinuationToken"]}

    def delete(self, key: str) -> None:
        try:
            self.call("delete_object", key)
        except botocore.exceptions.ClientError as err:
            raise StateError(f"cannot delete {self.url(key)}: {err}") from None


class S3LockStore:
    """The lock object of one workspace: `<state key>.lock`."""

    def __init__(self, store: S3Store, key: str) -> None:
        self.store = store
        self.key = key
        self._etag: str | None = None

    def describe(self) -> str:
        return self.store.url(self.key)

    def _read(self) -> tuple[LockInfo, str] | None:
        got = self.store.get(self.key)
        if got is None:
            return None
        data, etag = got
        return lock_from_json(data, self.describe()), etag

    def current(self) -> LockInfo | None:
        got = self._read()
        return got[0] if got else None

    def try_create(self, info: LockInfo) -> LockInfo | None:
        while True:
            self._etag = None
            try:
                resp = self.store.call(
                    "put_object", self.key, Body=lock_to_json(info), IfNoneMatch="*", ContentType="application/json"
                )
            except botocore.exceptions.ClientError as err:
                if _code(err) not in _CONDITION_FAILED:
                    raise StateError(f"cannot create the lock {self.describe()}: {err}") from None
            else:
                self._etag = resp["ETag"]
            got = self._read()
            if got is None:
                continue  # released between our attempt and the read: try again
            holder, etag = got
            if holder.id == info.id:  # ours (or our PUT went through and a retry of it got the 412)
                self._etag = etag
                return None
            # Someone else's. After a "successful" create this means the store let two
            # conditional creates through (moto can; S3 cannot): the later one won.
            self._etag = None
            return holder

    def refresh(self, info: LockInfo) -> bool:
        if self._etag is None:
            return False
        try:
            resp = self.store.call(
                "put_object", self.key, Body=lock_to_json(info), IfMatch=self._etag, ContentType="application/json"
            )
        except botocore.exceptions.ClientError as err:
            if _code(err) in _CONDITION_FAILED | _MISSING:
                return False
            raise
        self._etag = resp["ETag"]
        return True

    def remove(self, lock_id: str) -> LockInfo:
        got = self._read()
        if got is None:
            raise LockError(f"there is no state lock at {self.describe()}")
        holder, etag = got
        if holder.id != lock_id:
            raise LockError(
                f"the state lock at {self.describe()} has ID {holder.id}, not {lock_id}",
                hint="force-unlock needs the exact ID shown by `mactl lock status`",
            )
        try:
            self.store.call("delete_object", self.key, IfMatch=etag)
        except botocore.exceptions.ClientError as err:
            if _code(err) in _CONDITION_FAILED:
                raise LockError(f"the state lock at {self.describe()} changed while it was being removed") from None
            raise StateError(f"cannot delete the lock {self.describe()}: {err}") from None
        if self._etag == etag:
            self._etag = None
        return holder


class S3Backend(BackendLocking):
    """One workspace's state in S3. See the module docstring for the layout and guarantees."""

    def __init__(
        self,
        config: S3StateConfig,
        workspace: str,
        workdir: Path,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        client: Any | None = None,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self._workdir = workdir
        self.heartbeat_s = heartbeat_s
        self.store = S3Store(config, client)
        self.key = workspace_prefix(config, workspace)
        folder, name = posixpath.split(self.key)
        self.backup_prefix = posixpath.join(folder, "backups", name) + "."
        self._lock_store = S3LockStore(self.store, self.key + ".lock")
        self._held: HeldLock | None = None
        self._stored: _Stored | None = None
        self._write_mutex = threading.Lock()
        self.journal_prefix = self.key + ".journal/"
        self._chunk: _Chunk | None = None
        self._journal_keys: list[str] = []  # the chunks seen by the last read, for compaction to delete
        self._journal_bytes = 0

    @property
    def workdir(self) -> Path:
        self._workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._workdir

    @property
    def workdir_path(self) -> Path:
        """The working folder's path, without creating it (a plan only reads from it)."""
        return self._workdir

    def describe(self) -> str:
        return self.store.url(self.key)

    # -- reading -------------------------------------------------------------------

    def read(self) -> StateDocument | None:
        """The document with the journal's chunks folded in.

        The chunks are listed before the document is fetched: a compaction in between only
        moves the document forward. A chunk deleted before we fetched it was folded in
        already (the document is read again to be sure, at most a few times).
        """
        for _ in range(5):
            keys = self._chunk_keys()
            got = self.store.get(self.key)
            doc: StateDocument | None = None
            etag = ""
            if got is not None:
                data, etag = got
                doc = decode_stored(data, self.describe(), "object", self._restore_hint)
            doc_size = len(got[0]) if got is not None else 0
            chunks = self._read_chunks(keys, doc.serial if doc is not None else 0)
            if chunks is None:
                continue  # compacted while we read: look again
            header, entries, journal_bytes = chunks
            merged = fold(doc, header, entries, self.store.url(self.journal_prefix))
            self._journal_keys = [key for key, _ in keys]
            self._journal_bytes = journal_bytes
            if merged is None:
                self._stored = None
                return None
            self._stored = _Stored(etag, merged.serial, merged.lineage, len(merged.history), doc_size)
            return merged
        raise StateError(f"the state at {self.describe()} kept changing while it was read", hint="try again")

    def _chunk_keys(self) -> list[tuple[str, int]]:
        """The journal's chunk objects and their first serials, in order."""
        found = []
        for key in self.store.list_keys(self.journal_prefix):
            suffix = key[len(self.journal_prefix) :]
            if re.fullmatch(r"\d+", suffix):
                found.append((key, int(suffix)))
        return sorted(found, key=lambda kv: kv[1])

    def _read_chunks(
        self, keys: list[tuple[str, int]], doc_serial: int
    ) -> tuple[Header | None, list[dict[str, Any]], int] | None:
        header: Header | None = None
        entries: list[dict[str, Any]] = []
        size = 0
        for i, (key, _) in enumerate(keys):
            if i + 1 < len(keys) and keys[i + 1][1] - 1 <= doc_serial:
                continue  # every entry of this chunk is in the document already
            got = self.store.get(key)
            if got is None:
                return None
            chunk = decode_journal(got[0], self.store.url(key))
            if chunk.header is None or chunk.torn:
                raise StateError(f"state journal chunk {self.store.url(key)} is damaged")
            if header is not None and chunk.header.lineage != header.lineage:
                raise StateError(f"state journal chunk {self.store.url(key)} belongs to another lineage")
            header = header or chunk.header
            entries.extend(chunk.entries)
            size += len(got[0])
        return header, entries, size

    def _restore_hint(self) -> str:
        return restore_hint(
            self.versions(),
            "aws s3 cp",
            self.describe(),
            f"no backups exist below {self.store.url(self.backup_prefix)}; fix or remove {self.describe()}",
        )

    def _stored_now(self, serial: int) -> _Stored | None:
        """What is stored, from the cache when it is the serial the caller read (the ETag
        condition on the PUT catches it if that is stale), else from a HEAD (or a whole
        read when a journal exists, whose entries the HEAD does not see)."""
        if self._stored is not None and self._stored.serial == serial:
            return self._stored
        head = self.store.head(self.key)
        meta = head.get("Metadata", {}) if head is not None else {}
        if head is None or "serial" not in meta or self._chunk_keys():
            self.read()
            return self._stored
        return _Stored(head["ETag"], int(meta["serial"]), meta.get("lineage", ""), int(meta.get("history-len", "0")))

    # -- writing -------------------------------------------------------------------

    def write(self, doc: StateDocument, *, replace: bool = False) -> StateDocument:
        with self._write_mutex:  # the apply walker's threads share one backend and its ETag cache
            return self._write(doc, replace)

    def _write(self, doc: StateDocument, replace: bool) -> StateDocument:
        if self._held is not None:
            self._held.check()
        masked, _ = mask_document(doc)
        stored = self._stored_now(doc.serial)
        seen = None if stored is None else (stored.serial, stored.lineage, stored.history_len)
        check_conditional_write(seen, doc, self.describe(), replace)
        new = masked.model_copy(update={"serial": doc.serial + 1})
        data = encode_document(new)
        condition: dict[str, str] = {"IfMatch": stored.etag} if stored else {"IfNoneMatch": "*"}
        try:
            resp = self._put_document(data, new, condition)
        except botocore.exceptions.ClientError as err:
            if _code(err) not in _CONDITION_FAILED:
                raise StateError(f"cannot write {self.describe()}: {err}") from None
            head = self.store.head(self.key)
            if head is not None and head["ETag"].strip('"') == hashlib.md5(data).hexdigest():
                resp = head  # a retried PUT of ours: the first attempt did go through
            else:
                self._stored = None
                now = head.get("Metadata", {}).get("serial", "?") if head else "none"
                raise StateConflict(
                    f"state at {self.describe()} changed since it was read at serial {doc.serial} (now serial {now})",
                    hint="another run wrote the state; read it again and retry",
                ) from None
        self._check_not_overtaken(new.serial, resp["ETag"], doc.serial)
        self._stored = _Stored(resp["ETag"], new.serial, new.lineage, len(new.history), len(data))
        self._drop_journal()
        self._backup(new.serial, data)
        self._prune()
        return new

    # -- the journal ---------------------------------------------------------------

    def append(self, lineage: str, serial: int, transitions: Sequence[Transition]) -> int:
        if not transitions:
            return serial
        with self._write_mutex:
            if self._held is not None:
                self._held.check()
            stored = self._stored if self._stored is not None and self._stored.serial == serial else None
            if stored is None and serial != 0:
                stored = self._stored_now(serial)
            stored_serial = stored.serial if stored is not None else 0
            if stored_serial != serial or (stored is not None and stored.lineage != lineage):
                raise StateConflict(
                    f"state at {self.describe()} moved to serial {stored_serial} since it was read (at serial {serial})",
                    hint="another run wrote the state; read it again and retry",
                )
            lock_id = self._held.info.id if self._held is not None else ""
            entry = encode_entry(serial + 1, lock_id, [mask_transition(t) for t in transitions])
            chunk = self._chunk
            if chunk is not None and chunk.last_serial == serial and chunk.entries < JOURNAL_CHUNK_ENTRIES:
                key, body, condition = chunk.key, chunk.data + entry, {"IfMatch": chunk.etag}
                entries = chunk.entries + 1
            else:
                key = f"{self.journal_prefix}{serial + 1:012d}"
                body, condition, entries = encode_header(lineage, serial) + entry, {"IfNoneMatch": "*"}, 1
            try:
                resp = self.store.call("put_object", key, Body=body, ContentType="application/x-ndjson", **condition)
            except botocore.exceptions.ClientError as err:
                if _code(err) not in _CONDITION_FAILED | _MISSING:  # missing: compacted by another run
                    raise StateError(f"cannot append to {self.store.url(key)}: {err}") from None
                self._stored, self._chunk = None, None
                raise StateConflict(
                    f"state journal {self.store.url(key)} was written by another run since serial {serial}",
                    hint="another run wrote the state; read it again and retry",
                ) from None
            if chunk is None or key != chunk.key:
                self._journal_keys.append(key)
            self._chunk = _Chunk(key, resp["ETag"], body, entries, serial + 1)
            self._journal_bytes += len(entry)
            history_len = (stored.history_len if stored is not None else 0) + sum(
                t.history is not None for t in transitions
            )
            doc_size = stored.doc_size if stored is not None else 0
            self._stored = _Stored(
                stored.etag if stored is not None else "", serial + 1, lineage, history_len, doc_size
            )
            if should_compact(self._journal_bytes, doc_size):
                self._compact()
        return serial + 1

    def compact(self) -> None:
        with self._write_mutex:
            if not self._journal_keys and self._stored is not None:
                return  # the last read or append saw no journal, and we appended none since
            if self._held is not None:
                self._held.check()
            self._compact()

    def _compact(self) -> None:
        merged = self.read()
        if not self._journal_keys:
            return
        stored = self._stored
        if merged is not None and stored is not None:
            head = self.store.head(self.key)
            doc_serial = int(head.get("Metadata", {}).get("serial", "-1")) if head is not None else 0
            if doc_serial != merged.serial:
                masked, _ = mask_document(merged)
                data = encode_document(masked)
                condition: dict[str, str] = {"IfMatch": stored.etag} if head is not None else {"IfNoneMatch": "*"}
                try:
                    resp = self._put_document(data, merged, condition)
                except botocore.exceptions.ClientError as err:
                    if _code(err) not in _CONDITION_FAILED:
                        raise StateError(f"cannot write {self.describe()}: {err}") from None
                    self._stored = None
                    raise StateConflict(
                        f"state at {self.describe()} changed while its journal was being folded in",
                        hint="another run wrote the state; read it again and retry",
                    ) from None
                self._stored = _Stored(resp["ETag"], merged.serial, merged.lineage, len(merged.history), len(data))
                self._backup(merged.serial, data)
                self._prune()
        self._drop_journal()

    def _put_document(self, data: bytes, doc: StateDocument, condition: dict[str, str]) -> Any:
        """PUT the encoded `doc` under `condition` (IfMatch/IfNoneMatch), with the object
        metadata a later conditional write compares without downloading the document."""
        return self.store.call(
            "put_object",
            self.key,
            Body=data,
            ContentType="application/json",
            Metadata={"serial": str(doc.serial), "lineage": doc.lineage, "history-len": str(len(doc.history))},
            **condition,
        )

    def _drop_journal(self) -> None:
        """Delete the journal chunks the stored document now holds (after it is stored)."""
        keys = self._journal_keys or [key for key, _ in self._chunk_keys()]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                self.store.invoke("delete_objects", Delete={"Objects": batch, "Quiet": True})
            except botocore.exceptions.ClientError as err:
                raise StateError(
                    f"cannot delete the journal below {self.store.url(self.journal_prefix)}: {err}"
                ) from None
        self._journal_keys, self._chunk, self._journal_bytes = [], None, 0

    def _check_not_overtaken(self, serial: int, etag: str, read_serial: int) -> None:
        """Defence in depth for stores whose conditional PUT is not atomic.

        S3 evaluates `If-Match` atomically, so two writers can never both store the same
        serial. moto checks and stores in two steps without a lock (measured: 1 in 20
        bursts of ten simultaneous PUTs let two through), and the later one silently
        replaces the earlier. A HEAD right after our PUT catches that: the same serial
        under another ETag means our write was replaced, so we report a conflict and the
        caller retries on top of the winner, instead of losing its update.
        """
        head = self.store.head(self.key)
        if head is None:
            return
        if head.get("Metadata", {}).get("serial") == str(serial) and head["ETag"] != etag:
            self._stored = None
            raise StateConflict(
                f"state at {self.describe()} was written at serial {serial} by another writer at the same time "
                f"(both read serial {read_serial})",
                hint="read it again and retry",
            )

    def _backup(self, serial: int, data: bytes) -> None:
        """Keep the version just written as `backups/<name>.<serial>`.

        Only the writer that won `serial` writes that key, so backups never contend. A
        server-side copy avoids uploading the state twice; but the state object may
        already have moved on (a faster writer), and moto ignores
        `x-amz-copy-source-if-match`, so the copy is checked and replaced by our bytes
        if it is not ours.
        """
        key = f"{self.backup_prefix}{serial}"
        try:
            self.store.call("copy_object", key, CopySource={"Bucket": self.store.bucket, "Key": self.key})
            head = self.store.head(key)
            if head is not None and head.get("Metadata", {}).get("serial") == str(serial):
                return
            self.store.call(
                "put_object",
                key,
                Body=data,
                ContentType="application/json",
                Metadata={"serial": str(serial)},
            )
        except (botocore.exceptions.ClientError, StateError) as err:
            # The state itself is safely written; a missing backup must not make the
            # caller believe the write failed (it would retry into a StateConflict).
            log.warning("state serial %s was written to %s, but its backup failed: %s", serial, self.describe(), err)

    def _backup_serials(self) -> list[tuple[int, str]]:
        found = []
        for key in self.store.list_keys(self.backup_prefix):
            suffix = key[len(self.backup_prefix) :]
            if re.fullmatch(r"\d+", suffix):
                found.append((int(suffix), key))
        return sorted(found, reverse=True)

    def _prune(self) -> None:
        for _, key in self._backup_serials()[BACKUPS_KEPT:]:
            self.store.delete(key)

    def versions(self) -> Iterator[str]:
        return (self.store.url(key) for _, key in self._backup_serials())

    def read_version(self, version: str) -> StateDocument:
        key = version.removeprefix(f"s3://{self.store.bucket}/")
        got = self.store.get(key)
        if got is None:
            raise StateError(f"no backup at {version}")
        return decode_document(got[0], version)

    def exists(self) -> bool:
        return self.store.head(self.key) is not None

    def delete_all(self) -> None:
        if self.workspace == "default":
            raise StateError("the default workspace cannot be deleted")
        for _, key in self._backup_serials():
            self.store.delete(key)
        self._drop_journal()
        self.store.delete(self.key)


def list_s3_workspaces(config: S3StateConfig, client: Any | None = None) -> list[str]:
    store = S3Store(config, client)
    folder, _ = posixpath.split(config.key)
    prefix = posixpath.join(folder, "workspaces") + "/"
    return sorted(store.list_folders(prefix))
