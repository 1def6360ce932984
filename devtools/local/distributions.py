"""Which Elasticsearch/OpenSearch versions the harness runs, fetching them, unpacking them once.

The versions are pinned here, in `PINNED_VERSIONS`, so CI never depends on a metadata
look-up. To bump: run `scripts/clusters versions --latest`, edit the constant, and run the
tests. `MACTL_<NAME>_VERSION` overrides a pin for one run (e.g. `MACTL_OS2_VERSION=2.19.1`).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from devtools.local import maven
from devtools.local.errors import LocalServiceError
from devtools.local.paths import cache_dir

#: The one place versions are chosen. ES 7.10.2 runs on OpenJDK 17; 1.3.20 is the last 1.3
#: release; 2.19.6 is the newest 2.x release on Maven Central when this was written.
#: 8.19.21 is the newest ES 8 integ-test zip Maven Central serves; OpenSearch 3.5.0 is the
#: newest 3.x whose k-NN plugin (opensearch-knn 3.5.0.0) is served too: a plugin runs only on
#: the exact version it was built for. ES 9.5.0 (newest 9.x zip tried) runs on the Java 25 JDK
#: here, as does 9.2.0; 9.0.0 does not (its entitlement self-test fails on Java 25, and Java 17
#: is too old for it).
PINNED_VERSIONS: dict[str, str] = {
    "es710": "7.10.2",
    "os13": "1.3.20",
    "os2": "2.19.6",
    "es8": "8.19.21",
    "os3": "3.5.0",
    "es9": "9.5.0",
}

#: Version ranges `--latest` looks in, per cluster name.
VERSION_LINES: dict[str, str] = {"es710": "7.10.", "os13": "1.3.", "os2": "2.", "es8": "8.", "os3": "3.", "es9": "9."}

#: Bumped when the unpacked layout changes (e.g. extra modules), so caches are rebuilt.
LAYOUT_VERSION = "2"  # 2: extra modules (devtools.local.modules)


@dataclass(frozen=True)
class Distribution:
    product: str  # "elasticsearch" | "opensearch"
    version: str

    @property
    def group(self) -> str:
        org = "org.elasticsearch" if self.product == "elasticsearch" else "org.opensearch"
        return f"{org}.distribution.integ-test-zip"

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.product}:{self.version}:zip"

    @property
    def home(self) -> Path:
        """Where the unpacked distribution lives (shared, read-only for the instances)."""
        return cache_dir() / "dist" / f"{self.product}-{self.version}"


def version_for(name: str) -> str:
    return os.environ.get(f"MACTL_{name.upper()}_VERSION") or PINNED_VERSIONS[name]


def fetch_zip(dist: Distribution) -> Path:
    return maven.fetch(dist.group, dist.product, dist.version, "zip")


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the Unix modes (zipfile drops them, and bin/ must stay executable)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise LocalServiceError(f"{zip_path} has an entry outside its folder: {info.filename}")
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)


def ensure_unpacked(dist: Distribution) -> Path:
    """Fetch the zip if needed and unpack it once into the cache; return the home folder.

    Unpacks into a temporary sibling and renames it into place, so a half-unpacked folder is
    never mistaken for a ready one, and two processes racing each end with a complete copy.
    """
    home = dist.home
    marker = home / ".mactl-layout"
    if marker.is_file() and marker.read_text().strip() == LAYOUT_VERSION:
        return home
    zip_path = fetch_zip(dist)
    parent = home.parent
    parent.mkdir(parents=True, exist_ok=True)
    for p in (parent.parent, parent):
        p.chmod(0o755)
    work = parent / f".{home.name}.unpack-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _extract(zip_path, work)
        (top,) = [p for p in work.iterdir() if p.is_dir()]
        from devtools.local.modules import install_extra_modules  # late: optional second step
        from devtools.local.plugins import install_plugins

        install_extra_modules(dist, top)
        install_plugins(dist, top)
        (top / ".mactl-layout").write_text(LAYOUT_VERSION + "\n")
        for path in [top, *top.rglob("*")]:
            if path.is_dir():
                path.chmod(path.stat().st_mode | 0o755)
            else:
                path.chmod(path.stat().st_mode | 0o444)
        if home.exists():
            shutil.rmtree(home)
        top.rename(home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return home


def latest_versions() -> dict[str, list[str]]:
    """Newest versions Maven Central lists per cluster line (needs network; not used by CI)."""
    found: dict[str, list[str]] = {}
    for product in ("elasticsearch", "opensearch"):
        group = Distribution(product, "0").group
        versions = maven.released_versions(group, product)
        for name, line in VERSION_LINES.items():
            if (product == "elasticsearch") == name.startswith("es"):
                found[name] = sorted((v for v in versions if v.startswith(line)), key=maven.version_key)
    return found
