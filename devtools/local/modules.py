"""Extra modules assembled into the integ-test distributions, which ship only transport-netty4.

Maven Central has the module jars (`<org>.plugin:reindex-client`, `lang-painless`,
`analysis-common`, `mapper-extras-client`) but not the module folders a full distribution
carries. A module folder is: the jar, its runtime dependencies that the server's own `lib/`
does not already provide, a `plugin-descriptor.properties`, and a `plugin-security.policy`
when the code needs permissions. We write those two files ourselves; the descriptor copies
the keys and the server/java versions of the distribution's own transport-netty4 descriptor.

Central has all four for OpenSearch 2.x, but only reindex and mapper-extras for ES 7.10.2 and
OpenSearch 1.3 (no lang-painless or analysis-common jars there), so: the 2.x target gets
`_reindex` (also from a remote cluster on loopback), `_delete_by_query`, `_update_by_query`,
painless scripts and the common analyzers; the sources get reindex/by-query and the extra field
types. `.mactl-modules` in each unpacked distribution lists what was added and why
anything is missing. repository-s3 is on Maven Central neither as a jar nor as a zip, so S3
snapshot repositories are not available on these clusters. OpenSearch 3's integ-test zip ships
these modules itself (they are left as they are), and Elastic publishes no module jars for
ES 8/9, so those get none.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.local import maven
from devtools.local.errors import LocalServiceError

if TYPE_CHECKING:
    from devtools.local.distributions import Distribution


@dataclass(frozen=True)
class ModuleSpec:
    name: str  # the module folder and plugin name
    artifact: str  # artifactId under <org>.plugin on Maven Central
    plugin_class: str  # relative to the org package, e.g. "painless.PainlessPlugin"
    description: str
    extends: tuple[str, ...] = ()
    #: policy grants: None means "all code of the module"; otherwise a jar's codebase name.
    grants: dict[str | None, tuple[str, ...]] = field(default_factory=dict)


# Order matters: a module comes after the modules it extends.
MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "lang-painless",
        "lang-painless",
        "painless.PainlessPlugin",
        "Painless scripting language (assembled by devtools.local from Maven Central jars).",
        grants={
            None: (
                'java.lang.RuntimePermission "createClassLoader"',  # compiles scripts to classes
                'java.lang.RuntimePermission "getClassLoader"',  # finds allow-listed classes
            )
        },
    ),
    ModuleSpec(
        "analysis-common",
        "analysis-common",
        "analysis.common.CommonAnalysisPlugin",
        "Common analyzers, tokenizers and filters (assembled by devtools.local from Maven Central jars).",
        extends=("lang-painless",),
    ),
    ModuleSpec(
        "mapper-extras",
        "mapper-extras-client",
        "index.mapper.MapperExtrasPlugin",
        "Extra field types: scaled_float, token_count, rank_feature… (assembled by devtools.local).",
    ),
    ModuleSpec(
        "reindex",
        "reindex-client",
        "index.reindex.ReindexPlugin",
        "_reindex (also from remote), _update_by_query, _delete_by_query (assembled by devtools.local).",
        grants={
            None: ('java.net.SocketPermission "*", "connect"',),  # reindex from remote
            # the REST client asks for the default proxy selector
            "opensearch-rest-client": ('java.net.NetPermission "getProxySelector"',),
            "elasticsearch-rest-client": ('java.net.NetPermission "getProxySelector"',),
            "httpasyncclient": ('java.net.NetPermission "getProxySelector"',),
        },
    ),
)

_VERSIONED_JAR = re.compile(r"^(?P<base>.+?)-\d[\w.\-]*\.jar$")


def _base_name(jar: str) -> str:
    """`httpclient-4.5.14.jar` -> `httpclient` (the name policy codebases use, too)."""
    match = _VERSIONED_JAR.match(jar)
    return match.group("base") if match else jar.removesuffix(".jar")


def _org(dist: Distribution) -> str:
    return "org.elasticsearch" if dist.product == "elasticsearch" else "org.opensearch"


def _template_descriptor(home: Path) -> list[tuple[str, str]]:
    text = (home / "modules" / "transport-netty4" / "plugin-descriptor.properties").read_text()
    return [
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in text.splitlines())
        if key.strip() and not key.startswith("#")
    ]


def _descriptor(spec: ModuleSpec, classname: str, template: list[tuple[str, str]]) -> str:
    own = {
        "description": spec.description,
        "name": spec.name,
        "classname": classname,
        "extended.plugins": ",".join(spec.extends),
        "custom.foldername": "",
        "has.native.controller": "false",
    }
    lines = [f"{key}={own.get(key, value)}" for key, value in template]
    return "# written by devtools.local.modules\n" + "\n".join(lines) + "\n"


def _policy(spec: ModuleSpec, jars: list[str]) -> str | None:
    present = {_base_name(j) for j in jars}
    blocks = []
    for codebase, permissions in spec.grants.items():
        if codebase is not None and codebase not in present:
            continue
        head = "grant {" if codebase is None else f'grant codeBase "${{codebase.{codebase}}}" {{'
        blocks.append(head + "\n" + "".join(f"  permission {p};\n" for p in permissions) + "};\n")
    return "// written by devtools.local.modules\n" + "\n".join(blocks) if blocks else None


def _check_class(jar: Path, classname: str) -> None:
    entry = classname.replace(".", "/") + ".class"
    with zipfile.ZipFile(jar) as zf:
        if entry not in zf.namelist():
            raise LocalServiceError(f"{jar.name} has no {classname}; the module layout of this version differs")


def install_extra_modules(dist: Distribution, home: Path) -> list[str]:
    """Assemble MODULES into `home/modules` (an unpacked distribution); return their names."""
    org = _org(dist)
    template = _template_descriptor(home)
    provided = {_base_name(p.name) for p in (home / "lib").glob("*.jar")}
    installed: list[str] = []
    skipped: list[str] = []
    shipped = installed_modules(home)
    for spec in MODULES:
        folder = home / "modules" / spec.name
        staging = home / "modules" / f".{spec.name}.fetch"
        if spec.name in shipped:  # OpenSearch 3's integ-test zip carries the full module set
            installed.append(spec.name)
            continue
        if any(parent not in installed for parent in spec.extends):
            skipped.append(f"{spec.name} (needs {', '.join(spec.extends)})")
            continue
        if not maven.exists(f"{org}.plugin", spec.artifact, dist.version):
            skipped.append(f"{spec.name} ({org}.plugin:{spec.artifact}:{dist.version} is not on Maven Central)")
            continue
        maven.copy_dependencies(
            [(f"{org}.plugin", spec.artifact, dist.version)],
            staging,
            label=f"{org}.plugin:{spec.artifact}:{dist.version} (module {spec.name}, with dependencies)",
        )
        inherited = set(provided)
        for parent in spec.extends:
            inherited |= {_base_name(p.name) for p in (home / "modules" / parent).glob("*.jar")}
        folder.mkdir()
        jars = []
        for jar in sorted(staging.glob("*.jar")):
            if _base_name(jar.name) in inherited:
                continue
            shutil.copy2(jar, folder / jar.name)
            jars.append(jar.name)
        shutil.rmtree(staging)
        classname = f"{org}.{spec.plugin_class}"
        _check_class(folder / f"{spec.artifact}-{dist.version}.jar", classname)
        (folder / "plugin-descriptor.properties").write_text(_descriptor(spec, classname, template))
        if (policy := _policy(spec, jars)) is not None:
            (folder / "plugin-security.policy").write_text(policy)
        installed.append(spec.name)
    (home / ".mactl-modules").write_text(
        "".join(f"{'shipped' if name in shipped else 'added'} {name}\n" for name in installed)
        + "".join(f"missing {why}\n" for why in skipped)
    )
    return installed


def installed_modules(home: Path) -> set[str]:
    modules = home / "modules"
    return {p.name for p in modules.iterdir() if p.is_dir()} if modules.is_dir() else set()


def extra_settings(dist: Distribution, home: Path) -> dict[str, str]:
    """Node settings the installed extra modules need."""
    settings: dict[str, str] = {}
    if "reindex" in installed_modules(home):
        # Reindex from remote only reaches allow-listed hosts; every local cluster is on loopback.
        key = (
            "reindex.remote.allowlist"
            if dist.product == "opensearch" and not dist.version.startswith("1.")
            else "reindex.remote.whitelist"
        )
        settings[key] = '["127.0.0.1:*", "localhost:*"]'
    return settings
