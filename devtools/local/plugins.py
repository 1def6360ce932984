"""Optional plugins unpacked into a distribution: the OpenSearch k-NN plugin, where it is served.

A plugin runs only on the exact OpenSearch version it was built for, and Maven Central serves
`org.opensearch.plugin:opensearch-knn` for a few versions only (2.19.1.0 and 3.5.0.0 when this
was written), which is why the os3 pin is 3.5.0. The plugin zip from Maven Central carries the
Java code but not the native faiss/nmslib libraries of the release bundles, so the `lucene`
engine works and the native engines do not: `.mactl-plugins` in the unpacked distribution
says what was added and what is missing.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.local import maven
from devtools.local.errors import LocalServiceError

if TYPE_CHECKING:
    from devtools.local.distributions import Distribution

KNN_GROUP = "org.opensearch.plugin"
KNN_ARTIFACT = "opensearch-knn"


def knn_version(dist: Distribution) -> str | None:
    """The k-NN plugin version built for `dist` (OpenSearch X.Y.Z -> X.Y.Z.0), if any applies."""
    if dist.product != "opensearch" or dist.version.startswith("1."):
        return None
    return f"{dist.version}.0"


def _unpack_plugin(zip_path: Path, folder: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = folder / info.filename
            if not target.resolve().is_relative_to(folder.resolve()):
                raise LocalServiceError(f"{zip_path} has an entry outside its folder: {info.filename}")
        zf.extractall(folder)


def install_plugins(dist: Distribution, home: Path) -> list[str]:
    """Unpack the plugins served for `dist` into `home/plugins`; return their names."""
    notes: list[str] = []
    installed: list[str] = []
    version = knn_version(dist)
    if version is not None:
        if maven.exists(KNN_GROUP, KNN_ARTIFACT, version, "zip"):
            folder = home / "plugins" / KNN_ARTIFACT
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            _unpack_plugin(maven.artifact_path(KNN_GROUP, KNN_ARTIFACT, version, "zip"), folder)
            installed.append(KNN_ARTIFACT)
            notes.append(f"added {KNN_ARTIFACT} {version} (lucene engine; no native faiss/nmslib libraries)")
        else:
            notes.append(f"missing {KNN_ARTIFACT} ({KNN_GROUP}:{KNN_ARTIFACT}:{version}:zip is not on Maven Central)")
    (home / ".mactl-plugins").write_text("".join(f"{line}\n" for line in notes))
    return installed
