"""Errors the snapshot reader raises: all are `MactlError`s, so the CLI prints one line."""

from __future__ import annotations

from mactl.errors import MactlError


class SnapshotReaderError(MactlError):
    """The repository or a file in it cannot be read as asked (missing, unknown name...)."""


class CorruptFileError(SnapshotReaderError):
    """A file's checksum or structure is wrong; the message names the file."""


class UnsupportedFormatError(SnapshotReaderError):
    """A version or codec this reader does not know; the message names what was found."""


class RepositoryUnreachableError(SnapshotReaderError):
    """The repository's store did not answer (no connection, a timeout): nothing is known
    about its contents, unlike a missing snapshot or blob, which is an answer."""
