"""`mactl snapshot ls|show|dump`: look into a snapshot repository without any cluster.

Thin rendering over `mactl.snapshot_reader`; it never writes to the repository.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, NotRequired, TypedDict

import orjson
import typer
from rich.console import Console
from rich.table import Table

from mactl.cli.app import app
from mactl.errors import ConfigError
from mactl.snapshot_reader import Repository, SnapshotReaderError, open_repository, smile
from mactl.snapshot_reader.repository import sourceless_reason

snapshot_app = typer.Typer(
    help="Look into a snapshot repository (fs path or s3://bucket/prefix).", no_args_is_help=True
)
app.add_typer(snapshot_app, name="snapshot")

_REPO_HELP = "The repository: a folder path or s3://bucket/prefix."
_ENDPOINT_HELP = "S3 endpoint URL (MinIO, moto, a VPC endpoint)."


def _open(repo: str, endpoint: str | None, region: str | None) -> Repository:
    if not repo:
        raise ConfigError("--repo is empty: give a folder path or s3://bucket/prefix")
    return open_repository(repo, s3_endpoint=endpoint, s3_region=region)


def _when(millis: int | None) -> str:
    if not millis:
        return "-"
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@snapshot_app.command("ls")
def ls_cmd(
    repo: str = typer.Option(..., "--repo", help=_REPO_HELP),
    s3_endpoint: str | None = typer.Option(None, "--s3-endpoint", help=_ENDPOINT_HELP),
    s3_region: str | None = typer.Option(None, "--s3-region"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the snapshots with state, date and index count."""
    repository = _open(repo, s3_endpoint, s3_region)
    snaps = repository.snapshots()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "uuid": s.uuid,
                        "state": s.state,
                        "start_time": s.start_time,
                        "end_time": s.end_time,
                        "version": s.version,
                        "indices": len(s.indices),
                    }
                    for s in snaps
                ],
                indent=2,
            )
        )
        return
    table = Table(box=None)
    for col in ("snapshot", "state", "started", "indices", "version"):
        table.add_column(col)
    for s in snaps:
        table.add_row(s.name, s.state, _when(s.start_time), str(len(s.indices)), s.version or "-")
    Console(width=200).print(table)


class _ShardRow(TypedDict):
    """One shard in `snapshot show`: its counts, or why it is missing (partial snapshots)."""

    shard: int
    live_docs: NotRequired[int]
    size_bytes: NotRequired[int]
    missing: NotRequired[str]


def _show_data(repository: Repository, name: str) -> dict[str, Any]:
    snap = repository.snapshot(name)
    indices = []
    for index in snap.indices:
        meta = repository.index_metadata(snap, index)
        shards: list[_ShardRow] = []
        for shard in range(meta.number_of_shards):
            try:
                shards.append(
                    {
                        "shard": shard,
                        "live_docs": repository.live_doc_count(snap, index, shard),
                        "size_bytes": repository.shard_size(snap, index, shard),
                    }
                )
            except SnapshotReaderError as err:
                if snap.state == "SUCCESS":
                    raise
                shards.append({"shard": shard, "missing": str(err)})
        indices.append(
            {
                "index": index,
                "shards": meta.number_of_shards,
                "types": meta.types if meta.types != ["_doc"] else [],
                "live_docs": sum(s.get("live_docs", 0) for s in shards),
                "size_bytes": sum(s.get("size_bytes", 0) for s in shards),
                "shard_details": shards,
                "aliases": sorted(meta.aliases),
                # why the snapshot holds no `_source` for this index (disabled, synthetic), or null
                "source_missing": sourceless_reason(meta),
            }
        )
    glob = repository.global_metadata(snap)
    return {
        "snapshot": snap.name,
        "uuid": snap.uuid,
        "state": snap.state,
        "version": snap.version,
        "start_time": snap.start_time,
        "end_time": snap.end_time,
        "missing_shards": repository.missing_shards(snap) if snap.state != "SUCCESS" else [],
        "indices": indices,
        "templates": sorted(glob.templates),
        "index_templates": sorted(glob.index_templates),
        "component_templates": sorted(glob.component_templates),
    }


@snapshot_app.command("show")
def show_cmd(
    repo: str = typer.Option(..., "--repo", help=_REPO_HELP),
    snapshot: str = typer.Option(..., "--snapshot", help="The snapshot's name."),
    s3_endpoint: str | None = typer.Option(None, "--s3-endpoint", help=_ENDPOINT_HELP),
    s3_region: str | None = typer.Option(None, "--s3-region"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a snapshot's indices (shards, live docs, sizes) and its templates."""
    data = _show_data(_open(repo, s3_endpoint, s3_region), snapshot)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console(width=200)
    console.print(
        f"snapshot [bold]{data['snapshot']}[/] ({data['state']}, {data['version'] or 'version unknown'}, "
        f"started {_when(data['start_time'])})",
        highlight=False,
    )
    for line in data["missing_shards"]:
        console.print(f"  missing shard {line}", style="yellow", highlight=False)
    table = Table(box=None)
    for col in ("index", "shards", "live docs", "size", "aliases", "_source"):
        table.add_column(col)
    for ix in data["indices"]:
        table.add_row(
            ix["index"],
            str(ix["shards"]),
            str(ix["live_docs"]),
            f"{ix['size_bytes'] / 1e6:.1f} MB",
            ", ".join(ix["aliases"]) or "-",
            "stored" if ix["source_missing"] is None else "none: " + ix["source_missing"].split(":")[0],
        )
    console.print(table)
    for key, label in (
        ("templates", "legacy templates"),
        ("index_templates", "index templates"),
        ("component_templates", "component templates"),
    ):
        console.print(f"{label}: {', '.join(data[key]) or '-'}", highlight=False)


def _source_json(source: bytes, where: str) -> Any:
    if source[:3] == smile.HEADER:
        return smile.decode(source)
    try:
        return orjson.loads(source)
    except orjson.JSONDecodeError:
        raise SnapshotReaderError(
            f"{where}: _source is not JSON or SMILE (CBOR/YAML sources are not supported yet)"
        ) from None


@snapshot_app.command("dump")
def dump_cmd(
    repo: str = typer.Option(..., "--repo", help=_REPO_HELP),
    snapshot: str = typer.Option(..., "--snapshot", help="The snapshot's name."),
    index: list[str] = typer.Option([], "--index", help="Only this index (repeatable; default: all)."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Stop after N documents."),
    s3_endpoint: str | None = typer.Option(None, "--s3-endpoint", help=_ENDPOINT_HELP),
    s3_region: str | None = typer.Option(None, "--s3-region"),
) -> None:
    """Write every live document as NDJSON: _index, _id, _type (typed indices), _routing (when set), _source."""
    repository = _open(repo, s3_endpoint, s3_region)
    snap = repository.snapshot(snapshot)
    names = index or snap.indices
    for name in names:
        if name not in snap.indices:
            raise ConfigError(
                f"--index {name}: snapshot {snap.name!r} has no such index; it has: {', '.join(snap.indices)}"
            )
    out = sys.stdout.buffer
    written = 0
    for name in names:
        if (missing := sourceless_reason(repository.index_metadata(snap, name))) is not None:
            typer.echo(f"warning: index {name}: no documents to dump: {missing.split(':')[0]}", err=True)
            continue
        for shard in range(repository.shard_count(snap, name)):
            if limit is not None and written >= limit:
                break
            for doc in repository.documents(snap, name, shard):
                if limit is not None and written >= limit:
                    break
                rec: dict[str, Any] = {"_index": doc.index, "_id": doc.id}
                if doc.type is not None:
                    rec["_type"] = doc.type
                if doc.routing is not None:
                    rec["_routing"] = doc.routing
                rec["_source"] = _source_json(doc.source, f"{name}[{shard}] doc {doc.id}")
                out.write(orjson.dumps(rec) + b"\n")
                written += 1
    out.flush()
