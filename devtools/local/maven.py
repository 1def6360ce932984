"""Fetching artifacts from Maven Central with the `mvn` client, and where they land in ~/.m2.

Every failure names the coordinates and says what to try, because a missing proxy setting
or an offline machine is the usual cause and the raw Maven output rarely says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from devtools.local.errors import LocalServiceError


def local_repository() -> Path:
    """The local Maven repository (`MACTL_M2_REPO` overrides ~/.m2/repository)."""
    return Path(os.environ.get("MACTL_M2_REPO") or Path.home() / ".m2" / "repository")


def artifact_path(group: str, artifact: str, version: str, packaging: str) -> Path:
    return local_repository() / group.replace(".", "/") / artifact / version / f"{artifact}-{version}.{packaging}"


def _mvn() -> str:
    found = shutil.which("mvn")
    if not found:
        raise LocalServiceError(
            "Maven (`mvn`) is not on PATH; the harness fetches distributions with it",
            hint="install Maven 3 (e.g. `apt-get install maven`) and Java 17",
        )
    return found


def run_mvn(args: list[str], *, coordinates: str, cwd: Path | None = None) -> None:
    """Run mvn in batch mode; on failure raise an error naming `coordinates`."""
    repo_arg = [f"-Dmaven.repo.local={os.environ['MACTL_M2_REPO']}"] if "MACTL_M2_REPO" in os.environ else []
    cmd = [_mvn(), "-q", "-B", *repo_arg, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        boilerplate = ("[Help 1]", "-e switch", "-X switch", "For more information")
        lines = [
            line.split(" -> [Help")[0]
            for line in (proc.stdout + proc.stderr).strip().splitlines()
            if line.strip() not in ("", "[ERROR]") and not any(b in line for b in boilerplate)
        ]
        tail = "\n".join(lines[-10:])
        raise LocalServiceError(
            f"mvn could not fetch {coordinates} (exit {proc.returncode}):\n{tail}",
            hint=(
                "check that https://repo.maven.apache.org is reachable (proxy in ~/.m2/settings.xml?), "
                f"retry by hand (add -U to retry a failure Maven cached) with: {' '.join(cmd)} ; or pin a version that exists "
                "(MACTL_OS13_VERSION / MACTL_OS2_VERSION, see `scripts/clusters versions --latest`)"
            ),
        )


def fetch(group: str, artifact: str, version: str, packaging: str = "jar") -> Path:
    """Return the artifact's path in the local repository, downloading it once."""
    path = artifact_path(group, artifact, version, packaging)
    if path.is_file():
        return path
    coordinates = f"{group}:{artifact}:{version}:{packaging}"
    run_mvn(["dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false"], coordinates=coordinates)
    if not path.is_file():
        raise LocalServiceError(
            f"mvn reported success for {coordinates} but {path} is missing",
            hint="set MACTL_M2_REPO if your Maven uses a local repository other than ~/.m2/repository",
        )
    return path


def exists(group: str, artifact: str, version: str, packaging: str = "jar") -> bool:
    """Whether Maven Central has the artifact: True after fetching it, False if it is not found.

    Raises for any other failure (network, settings), so "missing" is never a guess.
    """
    try:
        fetch(group, artifact, version, packaging)
    except LocalServiceError as err:
        if "Could not find artifact" in err.message or "was not found in" in err.message:
            return False
        raise
    return True


def copy_dependencies(dependencies: list[tuple[str, str, str]], dest: Path, *, label: str) -> None:
    """Copy the listed artifacts and their runtime dependencies into `dest` (a flat folder).

    Uses a throw-away pom because `dependency:copy-dependencies` works on a project.
    """
    dest.mkdir(parents=True, exist_ok=True)
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in dependencies
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local.mactl</groupId><artifactId>fetch</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{deps}</dependencies></project>"
    )
    work = dest.parent / f".{dest.name}.pom-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        (work / "pom.xml").write_text(pom)
        run_mvn(
            ["dependency:copy-dependencies", f"-DoutputDirectory={dest}", "-DincludeScope=runtime"],
            coordinates=label,
            cwd=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def released_versions(group: str, artifact: str) -> list[str]:
    """Versions Maven Central's metadata lists for an artifact (resolves `RELEASE` once with mvn).

    Only for `scripts/clusters versions --latest`: CI and tests use the pinned versions.
    """
    coordinates = f"{group}:{artifact}:RELEASE:pom"
    run_mvn(["dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false"], coordinates=coordinates)
    folder = local_repository() / group.replace(".", "/") / artifact
    versions: list[str] = []
    for meta in sorted(folder.glob("maven-metadata-*.xml")):
        root = ET.parse(meta).getroot()
        versions += [v.text for v in root.iter("version") if v.text and v.text not in versions]
    return versions


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for plain numeric versions; pre-releases (with letters) sort first."""
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)
