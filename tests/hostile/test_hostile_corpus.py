"""The hostile-input corpus (issue 19): 300+ broken or malicious inputs, all offline.

Every case runs a real `mactl` command line in-process (through `run_guarded`, as the
console script does) in its own folder and must end with:

- a non-zero exit and no traceback (not even the last guard's "internal error" line);
- an error whose first line starts with `Error:` and names its place (the file, the
  config path or the argument) — each case says which text must appear;
- nothing written: the folder holds exactly the files the case put there, unchanged;
- nothing leaked: the planted secret appears nowhere in the output.

Cases come in families (YAML and JSON shapes, field values, URLs, names, variables,
templates that reshape secrets, damaged state, locks, workspace files, plan files,
output paths, snapshot repositories); inside a family each case is a distinct input
that once crashed, hung, or was accepted, or a close variant of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded

SECRET = "Hostile/Secret-4711"  # the sensitive variable every case declares (a "/" breaks a URL)
SNAPSHOTS = Path(__file__).resolve().parents[1] / "data" / "snapshots"


def base_config() -> dict[str, Any]:
    return {
        "variables": {"pw": {"type": "string", "sensitive": True, "default": SECRET}},
        "state": {"backend": "local", "path": ".mactl"},
        "targets": [
            {
                "name": "os2",
                "endpoint": "http://127.0.0.1:29200",
                "auth": {"type": "basic", "username": "admin", "password": "{{ var.pw }}"},
            }
        ],
        "source": {"endpoint": "http://127.0.0.1:19200", "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [
            {"name": "snap", "indices": {"names": "a"}, "documentBackfillConfigs": [{"name": "b0"}]}
        ],
    }


Setup = Callable[[Path], None]


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: str  # text the error must contain (its place)
    setup: Setup | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _config_with(change: Callable[[dict[str, Any]], None]) -> str:
    config = base_config()
    change(config)
    return json.dumps(config)


def _setter(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node: Any = config
        for key in path[:-1]:
            if isinstance(key, str) and isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        node[path[-1]] = value

    return change


CASES: list[Case] = []


def add(case: Case) -> None:
    CASES.append(case)


def validate_json(case_id: str, change: Callable[[dict[str, Any]], None], expect: str) -> None:
    add(Case(case_id, ["validate", "-c", "c.json"], expect, files={"c.json": _config_with(change)}))


# --- 1. file shapes: YAML and JSON that crashed, hung or ate memory -------------------------

_BOMB_LEVELS = "\n".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" if i else 'l0: &l0 ["lol","lol","lol","lol","lol"]'
    for i in range(10)
)
SHAPES: dict[str, tuple[str, str | bytes]] = {
    "alias-loop-seq": ("c.yaml", "a: &a [*a]\n"),
    "alias-loop-map": ("c.yaml", "a: &a {b: *a}\n"),
    "alias-loop-nested": ("c.yaml", "a: &a\n  b:\n    c: [1, *a]\n"),
    "alias-loop-merge": ("c.yaml", "a: &a\n  <<: *a\n"),
    "alias-bomb-9x9": ("c.yaml", _BOMB_LEVELS),
    "alias-bomb-wide": ("c.yaml", "a: &a [" + ",".join(["x"] * 1000) + "]\nb: &b [" + ",".join(["*a"] * 1001) + "]\n"),
    "complex-key-seq": ("c.yaml", "? [a, b]\n: 1\n"),
    "complex-key-map": ("c.yaml", "? {a: 1}\n: 1\n"),
    "complex-key-flow": ("c.yaml", "{[1]: x}\n"),
    "complex-key-nested": ("c.yaml", "targets:\n  ? [x]\n  : y\n"),
    "deep-yaml-flow-10000": ("c.yaml", "a: " + "[" * 10000 + "]" * 10000 + "\n"),
    "deep-yaml-flow-150": ("c.yaml", "a: " + "[" * 150 + "]" * 150 + "\n"),
    "deep-yaml-block-200": ("c.yaml", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x\n"),
    "deep-yaml-map-flow": ("c.yaml", "a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
    "deep-json-10000": ("c.json", "[" * 10000 + "]" * 10000),
    "deep-json-100000": ("c.json", "[" * 100000 + "]" * 100000),
    "deep-json-objects": ("c.json", '{"a":' * 3000 + "1" + "}" * 3000),
    "deep-json-101": ("c.json", '{"targets": ' + "[" * 101 + "]" * 101 + "}"),
    "binary-file": ("c.yaml", bytes(range(256)) * 4),
    "nul-in-text": ("c.yaml", "targets: []\x00\n"),
    "latin1-file": ("c.yaml", "name: caf\xe9\n".encode("latin-1")),
    "utf16-file": ("c.yaml", "targets: []\n".encode("utf-16")),
    "empty-file": ("c.yaml", ""),
    "only-comments": ("c.yaml", "# nothing\n# here\n"),
    "top-level-list": ("c.yaml", "- a\n- b\n"),
    "top-level-scalar": ("c.yaml", "hello\n"),
    "top-level-number": ("c.json", "42"),
    "top-level-null": ("c.json", "null"),
    "json-trailing-comma": ("c.json", '{"targets": [],}'),
    "json-unclosed": ("c.json", '{"targets": ['),
    "json-nan-literal": ("c.json", '{"targets": NaN}'),
    "json-duplicate-key": ("c.json", '{"targets": [], "targets": []}'),
    "yaml-duplicate-key": ("c.yaml", "targets: []\ntargets: []\n"),
    "yaml-tab-indent": ("c.yaml", "targets:\n\t- a\n"),
    "yaml-unclosed-quote": ("c.yaml", 'targets: "abc\n'),
    "yaml-python-tag": ("c.yaml", "a: !!python/object/apply:os.system ['id']\n"),
    "yaml-unknown-tag": ("c.yaml", "a: !secret x\n"),
    "yaml-binary-tag": ("c.yaml", "targets: !!binary aGVsbG8=\n"),
    "yaml-set": ("c.yaml", "targets: !!set {a, b}\n"),
    "yaml-two-documents": ("c.yaml", "a: 1\n---\nb: 2\n"),
    "yaml-null-key": ("c.yaml", "null: 1\ntargets: []\n"),
    "yaml-int-keys": ("c.yaml", "1: a\n2: b\n"),
}
for _id, (_name, _content) in SHAPES.items():
    add(Case(f"shape-{_id}", ["validate", "-c", _name], _name, files={_name: _content}))


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "c.yaml")


def _folder_config(folder: Path) -> None:
    (folder / "c.yaml").mkdir()


def _symlink_to_dev(folder: Path) -> None:
    (folder / "c.yaml").symlink_to("/dev/zero")


def _dangling(folder: Path) -> None:
    (folder / "c.yaml").symlink_to(folder / "nowhere.yaml")


for _id, _setup in {
    "fifo": _fifo,
    "folder": _folder_config,
    "dev-zero": _symlink_to_dev,
    "dangling": _dangling,
}.items():
    add(Case(f"config-is-{_id}", ["validate", "-c", "c.yaml"], "c.yaml", setup=_setup))
add(Case("config-missing", ["validate", "-c", "missing.yaml"], "missing.yaml"))
add(Case("config-none-in-folder", ["validate"], "no config file"))
for _cmd in (["plan", "-refresh=false"], ["graph"], ["status"], ["state", "list"], ["lock", "status"]):
    add(Case(f"fifo-via-{_cmd[0]}-{_cmd[-1]}", [*_cmd, "-c", "c.yaml"], "c.yaml", setup=_fifo))
    add(
        Case(
            f"alias-loop-via-{_cmd[0]}-{_cmd[-1]}", [*_cmd, "-c", "c.yaml"], "c.yaml", files={"c.yaml": "a: &a [*a]\n"}
        )
    )


# --- 2. numbers: finite and in range ----------------------------------------------------------

_REPLAY = ["source-migration-configurations", 0, "replayer-config"]
NUMBERS: dict[str, tuple[list[str | int], str]] = {
    "maxBatchDocs": (["static-migration-configs", 0, "documentBackfillConfigs", 0, "maxBatchDocs"], "maxBatchDocs"),
    "maxBatchBytes": (["static-migration-configs", 0, "documentBackfillConfigs", 0, "maxBatchBytes"], "maxBatchBytes"),
    "maxInFlight": (["static-migration-configs", 0, "documentBackfillConfigs", 0, "maxInFlight"], "maxInFlight"),
    "workers": (["static-migration-configs", 0, "documentBackfillConfigs", 0, "workers"], "workers"),
    "maxThroughputMbps": (
        ["static-migration-configs", 0, "documentBackfillConfigs", 0, "maxThroughputMbps"],
        "maxThroughputMbps",
    ),
    "leaseSeconds": (["static-migration-configs", 0, "documentBackfillConfigs", 0, "leaseSeconds"], "leaseSeconds"),
    "retryTimeoutSeconds": (
        ["static-migration-configs", 0, "documentBackfillConfigs", 0, "retryTimeoutSeconds"],
        "retryTimeoutSeconds",
    ),
}
BAD_NUMBERS: dict[str, Any] = {"nan": "nan", "inf": "inf", "-inf": "-inf", "negative": -1, "zero": 0}
for _field, (_path, _expect) in NUMBERS.items():
    for _bad_id, _bad in BAD_NUMBERS.items():
        # YAML spells NaN and infinity (.nan, .inf); JSON cannot, so the JSON text is read as YAML.
        _yaml_value = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}.get(_bad_id, str(_bad))
        _cfg = base_config()
        _setter(_path, "@@NUM@@")(_cfg)
        _text = json.dumps(_cfg)
        add(
            Case(
                f"number-{_field}-{_bad_id}",
                ["validate", "-c", "c.yaml"],
                _expect,
                files={"c.yaml": _text.replace("@@NUM@@", _yaml_value)},
            )
        )


def _replay_config(key: str, value: str) -> str:
    config = base_config()
    source = config.pop("source")
    migrations = config.pop("static-migration-configs")
    config["source-migration-configurations"] = [
        {"source": source, "snapshot-and-migration-configs": migrations, "replayer-config": {key: "@@NUM@@"}}
    ]
    return json.dumps(config).replace('"@@NUM@@"', value)


for _key in ("maxSpeedupFactor", "maxLagSeconds", "lagWindowSeconds", "timeoutSeconds", "workers"):
    for _bad_id, _value in {"nan": ".nan", "inf": ".inf", "negative": "-5"}.items():
        add(
            Case(
                f"replay-{_key}-{_bad_id}",
                ["validate", "-c", "c.yaml"],
                _key,
                files={"c.yaml": _replay_config(_key, _value)},
            )
        )

for _key, _value in {"partitions": "0", "segmentBytes": "-1"}.items():
    _cfg = base_config()
    _source = _cfg.pop("source")
    _migrations = _cfg.pop("static-migration-configs")
    _log: dict[str, Any] = {"type": "kafka", "bootstrapServers": "127.0.0.1:1"} if _key == "partitions" else {}
    _log = _log or {"type": "file", "path": "cap"}
    _log[_key] = "@@NUM@@"
    _cfg["source-migration-configurations"] = [
        {"source": _source, "snapshot-and-migration-configs": _migrations, "capture": {"log": _log}}
    ]
    add(
        Case(
            f"capture-{_key}-{_value}",
            ["validate", "-c", "c.yaml"],
            _key,
            files={"c.yaml": json.dumps(_cfg).replace('"@@NUM@@"', _value)},
        )
    )
for _bad_id, _value in {"nan": ".nan", "inf": ".inf", "negative": "-3", "zero": "0"}.items():
    _cfg = base_config()
    _cfg["static-migration-configs"][0]["maxSnapshotRateMbPerNode"] = "@@NUM@@"
    add(
        Case(
            f"snapshot-rate-{_bad_id}",
            ["validate", "-c", "c.yaml"],
            "maxSnapshotRateMbPerNode",
            files={"c.yaml": json.dumps(_cfg).replace('"@@NUM@@"', _value)},
        )
    )


# --- 3. URLs: parsed strictly, everywhere one is taken ----------------------------------------

BAD_URLS = {
    "port-70000": "http://127.0.0.1:70000",
    "port-65536": "http://127.0.0.1:65536",
    "port-negative": "http://127.0.0.1:-1",
    "port-letters": "http://127.0.0.1:abc",
    "port-zero": "http://127.0.0.1:0",
    "ipv6-unclosed": "http://[::1",
    "ipv6-garbage": "http://[zz]:9200",
    "space-in-host": "http://local host:9200",
    "space-trailing": "http://localhost:9200 ",
    "newline": "http://localhost:9200\nX-Injected: 1",
    "tab": "http://local\thost",
    "no-host": "http://",
    "no-host-port": "http://:9200",
    "ftp-scheme": "ftp://localhost",
    "file-scheme": "file:///etc/passwd",
    "no-scheme": "localhost:9200",
    "javascript": "javascript:alert(1)",
    "empty": "",
}
URL_PLACES: dict[str, list[str | int]] = {
    "target": ["targets", 0, "endpoint"],
    "source": ["source", "endpoint"],
}
for _place, _path in URL_PLACES.items():
    for _bad_id, _url in BAD_URLS.items():
        validate_json(f"url-{_place}-{_bad_id}", _setter(_path, _url), "endpoint")
for _bad_id in ("port-70000", "ipv6-unclosed", "space-in-host", "ftp-scheme", "no-host"):
    _repo = {"type": "s3", "bucket": "b", "endpoint": BAD_URLS[_bad_id]}
    validate_json(f"url-repository-{_bad_id}", _setter(["source", "snapshotRepository"], _repo), "endpoint")
    _dead = {"location": "s3://b/p", "endpoint": BAD_URLS[_bad_id]}
    validate_json(
        f"url-deadletter-{_bad_id}",
        _setter(["static-migration-configs", 0, "documentBackfillConfigs", 0, "deadLetter"], _dead),
        "deadLetter",
    )


# --- 4. names ------------------------------------------------------------------------------------

BAD_NAMES = {
    "300-chars": "s" * 300,
    "41-chars": "s" * 41,
    "space": "my source",
    "dot": "a.b",
    "slash": "a/b",
    "dotdot": "..",
    "unicode": "sourcé",
    "empty": "",
    "newline": "a\nb",
    "nul": "a\x00b",
}
for _place, _path in {
    "source": ["source", "name"],
    "target": ["targets", 0, "name"],
    "snapshot": ["static-migration-configs", 0, "name"],
    "backfill": ["static-migration-configs", 0, "documentBackfillConfigs", 0, "name"],
}.items():
    for _bad_id, _name in BAD_NAMES.items():
        validate_json(f"name-{_place}-{_bad_id}", _setter(_path, _name), "name")


def _two_targets(config: dict[str, Any]) -> None:
    config["targets"].append(dict(config["targets"][0]))


validate_json("name-duplicate-target", _two_targets, "targets")
validate_json(
    "bucket-empty-repository", _setter(["source", "snapshotRepository"], {"type": "s3", "bucket": ""}), "bucket"
)
validate_json("bucket-missing-repository", _setter(["source", "snapshotRepository"], {"type": "s3"}), "bucket")
validate_json(
    "fs-location-empty", _setter(["source", "snapshotRepository"], {"type": "fs", "location": ""}), "location"
)
validate_json(
    "deadletter-location-empty",
    _setter(["static-migration-configs", 0, "documentBackfillConfigs", 0, "deadLetter"], {"location": ""}),
    "deadLetter",
)
validate_json("state-s3-no-bucket", _setter(["state"], {"backend": "s3"}), "state")
validate_json("state-unknown-backend", _setter(["state"], {"backend": "ftp"}), "state")
validate_json("auth-unknown-type", _setter(["targets", 0, "auth", "type"], "kerberos"), "auth")


# --- 5. variables --------------------------------------------------------------------------------

VAR_CASES: dict[str, tuple[list[str], dict[str, str | bytes], str]] = {
    "var-undeclared": (["-var", "nope=1"], {}, "nope"),
    "var-no-equals": (["-var", "pw"], {}, "-var"),
    "var-empty-name": (["-var", "=x"], {}, "-var"),
    "var-file-missing": (["-var-file", "v.yaml"], {}, "v.yaml"),
    "var-file-list": (["-var-file", "v.yaml"], {"v.yaml": "- 1\n"}, "v.yaml"),
    "var-file-binary": (["-var-file", "v.yaml"], {"v.yaml": b"\xff\xfe\x00\x01"}, "v.yaml"),
    "var-file-alias-loop": (["-var-file", "v.yaml"], {"v.yaml": "pw: &a [*a]\n"}, "v.yaml"),
    "var-file-deep": (["-var-file", "v.json"], {"v.json": "[" * 5000 + "]" * 5000}, "v.json"),
    "var-file-bomb": (["-var-file", "v.yaml"], {"v.yaml": _BOMB_LEVELS}, "v.yaml"),
    "var-file-undeclared": (["-var-file", "v.yaml"], {"v.yaml": "other: 1\n"}, "other"),
    "var-file-wrong-type": (["-var-file", "v.yaml"], {"v.yaml": "pw: [1, 2]\n"}, "pw"),
    "var-file-complex-key": (["-var-file", "v.yaml"], {"v.yaml": "? [a]\n: 1\n"}, "v.yaml"),
}
for _id, (_args, _files, _expect) in VAR_CASES.items():
    add(Case(_id, ["validate", "-c", "c.json", *_args], _expect, files={"c.json": json.dumps(base_config()), **_files}))
add(
    Case(
        "var-file-is-folder",
        ["validate", "-c", "c.json", "-var-file", "vars"],
        "vars",
        files={"c.json": json.dumps(base_config())},
        setup=lambda f: (f / "vars").mkdir(),
    )
)
add(
    Case(
        "var-file-is-fifo",
        ["validate", "-c", "c.json", "-var-file", "v.yaml"],
        "v.yaml",
        files={"c.json": json.dumps(base_config())},
        setup=lambda f: os.mkfifo(f / "v.yaml"),
    )
)
add(
    Case(
        "var-env-wrong-type",
        ["validate", "-c", "c.json"],
        "MACTL_VAR_n",
        files={"c.json": _config_with(_setter(["variables", "n"], {"type": "number", "default": 1}))},
        env={"MACTL_VAR_n": "not-a-number"},
    )
)


def _declare(name: str, decl: Any) -> Callable[[dict[str, Any]], None]:
    return _setter(["variables", name], decl)


validate_json("var-decl-bad-name", _declare("1x", {"type": "string"}), "variables")
validate_json("var-decl-bad-type", _declare("x", {"type": "tuple"}), "variables.x")
validate_json("var-decl-default-mismatch", _declare("x", {"type": "number", "default": "abc"}), "variables.x")
validate_json("var-decl-not-mapping", _setter(["variables"], ["a"]), "variables")
validate_json("var-required-missing", _declare("x", {"type": "string"}), "variables.x")
validate_json("var-undeclared-ref", _setter(["targets", 0, "endpoint"], "{{ var.nope }}"), "nope")


# --- 6. templates that would reshape or leak a sensitive value -----------------------------------

RESHAPES = {
    "reverse": "{{ var.pw | reverse }}",
    "upper": "{{ var.pw | upper }}",
    "lower": "{{ var.pw | lower }}",
    "slice": "{{ var.pw[1:] }}",
    "index": "{{ var.pw[0] }}",
    "concat": "{{ var.pw ~ 'x' }}",
    "replace": "{{ var.pw | replace('-', '') }}",
    "list": "{{ var.pw | list }}",
    "join": "{{ var.pw | join(',') }}",
    "b64-like": "{{ var.pw | string | reverse }}",
    "length": "{{ var.pw | length }}",
    "if": "{% if var.pw %}x{% endif %}",
    "for": "{% for c in var.pw %}{{ c }}{% endfor %}",
    "set": "{% set x = var.pw %}{{ x }}",
    "compare": "{{ var.pw == 'a' }}",
    "format": "{{ '%s' | format(var.pw) }}",
    "dynamic-key": "{{ var['p' ~ 'w'] }}",
    "var-whole": "{{ var }}",
    "var-items": "{{ var.items() | list }}",
    "var-filter": "{{ var | tojson }}",
    "urlencode-then-reverse": "{{ var.pw | urlencode | reverse }}",
    "tojson-args": "{{ var.pw | tojson(2) }}",
    "title": "{{ var.pw | title }}",
    "center": "{{ var.pw | center(40) }}",
    "wordwrap": "{{ var.pw | wordwrap(3) }}",
}
for _id, _template in RESHAPES.items():
    for _place, _path in {"username": ["targets", 0, "auth", "username"], "endpoint": ["source", "endpoint"]}.items():
        _value = _template if _place == "username" else f"http://evil.example/?q={_template}"
        _where = "targets[0].auth.username" if _place == "username" else "source.endpoint"
        validate_json(f"sensitive-{_id}-in-{_place}", _setter(_path, _value), _where)


for _id, _url in {
    "query": "http://evil.example/?q={{ var.pw }}",
    "path": "http://evil.example/{{ var.pw }}",
    "fragment": "http://evil.example/#{{ var.pw }}",
    "host": "http://{{ var.pw }}.evil.example:9200",
    "port-side": "http://evil.example:9200/{{ var.pw | urlencode }}",
    "after-userinfo": "http://u:p@evil.example/{{ var.pw }}",
}.items():
    validate_json(f"sensitive-in-url-{_id}", _setter(["source", "endpoint"], _url), "source.endpoint")


# --- 7. damaged state, locks, workspace files ---------------------------------------------------

STATE_CMDS = [["plan", "-refresh=false"], ["state", "list"], ["status"], ["lock", "status"], ["history"]]


def _state_case(case_id: str, setup: Setup, expect: str, commands: list[list[str]] = STATE_CMDS) -> None:
    for cmd in commands:
        add(
            Case(
                f"{case_id}-{'-'.join(c.strip('-').split('=')[0] for c in cmd)}",
                [*cmd, "-c", "c.json"],
                expect,
                setup=setup,
                files={"c.json": json.dumps(base_config())},
            )
        )


def _put(name: str, content: str | bytes) -> Setup:
    def setup(folder: Path) -> None:
        _write(folder, {f".mactl/{name}": content})

    return setup


def _mkdir(name: str) -> Setup:
    return lambda folder: (folder / ".mactl" / name).mkdir(parents=True)


def _mkfifo(name: str) -> Setup:
    def setup(folder: Path) -> None:
        (folder / ".mactl").mkdir(exist_ok=True)
        os.mkfifo(folder / ".mactl" / name)

    return setup


_READS_STATE = [["plan", "-refresh=false"], ["state", "list"], ["status"], ["history"]]
_state_case("state-is-folder", _mkdir("state.json"), "state.json", _READS_STATE)
_state_case("state-is-fifo", _mkfifo("state.json"), "state.json", _READS_STATE)
for _id, _content in {
    "binary": b"\x00\xff\x10garbage",
    "list": "[1, 2]",
    "truncated": '{"version": 1, "lineage": "x", "serial": ',
    "wrong-types": '{"version": "one", "lineage": 5, "serial": "x", "stages": []}',
    "deep": "[" * 5000 + "]" * 5000,
    "empty": "",
    "null": "null",
}.items():
    _state_case(
        f"state-{_id}",
        _put("state.json", _content),
        "state.json",
        [["plan", "-refresh=false"], ["state", "list"], ["status"]],
    )
for _id, _content in {
    "list": "[1, 2]",
    "pid-string": json.dumps(
        {"id": "x", "who": "w", "pid": "one", "operation": "o", "created_at": "", "heartbeat_at": ""}
    ),
    "binary": b"\xff\x00\x01",
    "null": "null",
    "number": "42",
}.items():
    # A damaged lock is reported as an unreadable lock held by someone: plan must refuse to run.
    add(
        Case(
            f"lock-{_id}-plan",
            ["plan", "-refresh=false", "-lock-timeout=0s", "-c", "c.json"],
            "lock",
            setup=_put("state.json.lock", _content),
            files={"c.json": json.dumps(base_config())},
        )
    )
add(
    Case(
        "lock-is-folder-plan",
        ["plan", "-refresh=false", "-c", "c.json"],
        "state.json.lock",
        setup=_mkdir("state.json.lock"),
        files={"c.json": json.dumps(base_config())},
    )
)
add(
    Case(
        "lock-is-folder-status",
        ["lock", "status", "-c", "c.json"],
        "state.json.lock",
        setup=_mkdir("state.json.lock"),
        files={"c.json": json.dumps(base_config())},
    )
)
for _id, _content in {
    "binary": b"\xff\xfe\x00bin",
    "dotdot": "../../etc",
    "slash": "a/b",
    "long": "w" * 300,
    "spaces": "my workspace",
    "nul": "a\x00b",
}.items():
    _state_case(f"environment-{_id}", _put("environment", _content), "environment", STATE_CMDS[:3])
_state_case("environment-is-folder", _mkdir("environment"), "environment", STATE_CMDS[:3])
_state_case("mactl-folder-is-file", lambda f: (f / ".mactl").write_text("x"), ".mactl", STATE_CMDS[:1])


# --- 8. plan files ------------------------------------------------------------------------------


def _plan_file(change: Callable[[dict[str, Any]], None] | None, raw: str | bytes | None = None) -> Setup:
    def setup(folder: Path) -> None:
        if raw is not None:
            _write(folder, {"p.bin": raw})
            return
        data: dict[str, Any] = {
            "format": "mactl-plan",
            "file_version": 2,
            "lineage": None,
            "serial": 0,
            "workspace": "default",
            "config_path": str(folder / "c.json"),
            "config_digest": "x",
            "variables": {},
            "sensitive_variables": [],
            "mode": "normal",
            "refreshed": False,
            "options": {},
            "warnings": [],
            "stage_count": 1,
            "changes": [{"address": "snapshot.source.snap", "type": "snapshot", "action": "create", "reason": "new"}],
        }
        if change is not None:
            change(data)
        _write(folder, {"p.bin": json.dumps(data)})

    return setup


PLAN_DAMAGE: dict[str, Callable[[dict[str, Any]], None]] = {
    "action-42": lambda d: d["changes"][0].update(action=42),
    "action-unknown": lambda d: d["changes"][0].update(action="explode"),
    "changes-not-list": lambda d: d.update(changes={"a": 1}),
    "change-not-object": lambda d: d.update(changes=[1]),
    "change-missing-address": lambda d: d["changes"][0].pop("address"),
    "change-unknown-field": lambda d: d["changes"][0].update(extra=1),
    "attributes-garbage": lambda d: d["changes"][0].update(attributes=[1, 2]),
    "attributes-wrong-keys": lambda d: d["changes"][0].update(attributes=[{"x": 1}]),
    "depends-on-number": lambda d: d["changes"][0].update(depends_on=5),
    "gated-without-approval": lambda d: d["changes"][0].update(gated=True),
    "serial-string": lambda d: d.update(serial="1"),
    "lineage-number": lambda d: d.update(lineage=5),
    "variables-list": lambda d: d.update(variables=[1]),
    "sensitive-not-names": lambda d: d.update(sensitive_variables=[1]),
    "mode-unknown": lambda d: d.update(mode="chaos"),
    "file-version-future": lambda d: d.update(file_version=99),
    "file-version-old": lambda d: d.update(file_version=1),
    "file-version-string": lambda d: d.update(file_version="2"),
    "format-wrong": lambda d: d.update(format="terraform"),
    "missing-changes": lambda d: d.pop("changes"),
    "missing-lineage": lambda d: d.pop("lineage"),
    "before-not-object": lambda d: d["changes"][0].update(before=[1]),
}
PLAN_RAW: dict[str, str | bytes] = {
    "binary": b"\x00\x01\x02\xff",
    "empty": b"",
    "json-list": "[1, 2]",
    "deep": "[" * 10000 + "]" * 10000,
    "truncated": '{"format": "mactl-plan", "changes": [',
}
for _cmd in (["show"], ["show", "--json"], ["apply"]):
    for _id, _change in PLAN_DAMAGE.items():
        add(
            Case(
                f"planfile-{_id}-{'-'.join(c.strip('-') for c in _cmd)}",
                [*_cmd, "p.bin"],
                "p.bin",
                setup=_plan_file(_change),
                files={"c.json": json.dumps(base_config())},
            )
        )
    for _id, _raw in PLAN_RAW.items():
        add(
            Case(
                f"planfile-raw-{_id}-{'-'.join(c.strip('-') for c in _cmd)}",
                [*_cmd, "p.bin"],
                "p.bin",
                setup=_plan_file(None, _raw),
                files={"c.json": json.dumps(base_config())},
            )
        )
add(Case("planfile-missing-show", ["show", "nope.bin"], "nope.bin"))
add(Case("planfile-is-folder-show", ["show", "pdir"], "pdir", setup=lambda f: (f / "pdir").mkdir()))
add(Case("planfile-is-fifo-show", ["show", "p.bin"], "p.bin", setup=lambda f: os.mkfifo(f / "p.bin")))


# --- 9. output paths ----------------------------------------------------------------------------

for _id, _out in {
    "missing-folder": "nodir/p.bin",
    "deep-missing-folder": "a/b/c/p.bin",
    "is-folder": "outdir",
    "under-a-file": "afile/p.bin",
    "empty-name": "",
}.items():

    def _out_setup(folder: Path) -> None:
        (folder / "outdir").mkdir()
        (folder / "afile").write_text("x")

    add(
        Case(
            f"out-{_id}",
            ["plan", "-refresh=false", "-c", "c.json", "-out", _out],
            _out or "-out",
            setup=_out_setup,
            files={"c.json": json.dumps(base_config())},
        )
    )


# --- 10. snapshot repositories ------------------------------------------------------------------


def _repo(content: str | bytes | None, *, extra: Callable[[Path], None] | None = None) -> Setup:
    def setup(folder: Path) -> None:
        shutil.copytree(SNAPSHOTS / "ES_7_10_Single", folder / "r")
        index = max((p for p in (folder / "r").glob("index-*") if p.name[6:].isdigit()), key=lambda p: int(p.name[6:]))
        if content is not None:
            (index.write_bytes if isinstance(content, bytes) else index.write_text)(content)  # type: ignore[operator]
        if extra is not None:
            extra(folder / "r")

    return setup


REPO_DAMAGE: dict[str, str | bytes] = {
    "list": "[1, 2]",
    "snapshots-number": '{"snapshots": 5}',
    "snapshot-entry-number": '{"snapshots": [1]}',
    "snapshot-name-number": '{"snapshots": [{"name": 5, "uuid": "u"}]}',
    "snapshot-uuid-null": '{"snapshots": [{"name": "x", "uuid": null}]}',
    "indices-list": '{"snapshots": [], "indices": []}',
    "index-entry-number": '{"snapshots": [{"name": "x", "uuid": "u"}], "indices": {"a": 5}}',
    "index-snapshots-number": '{"snapshots": [], "indices": {"a": {"id": "i", "snapshots": 3}}}',
    "broken-json": '{"snapshots": [',
    "deep": "{" + '"a":[' * 5000 + "]" * 5000 + "}",
    "binary": b"\x00\x01\xff",
    "empty": b"",
}
for _id, _content in REPO_DAMAGE.items():
    add(Case(f"repo-{_id}-ls", ["snapshot", "ls", "--repo", "r"], "index-", setup=_repo(_content)))
    add(
        Case(
            f"repo-{_id}-show", ["snapshot", "show", "--repo", "r", "--snapshot", "x"], "index-", setup=_repo(_content)
        )
    )
add(Case("repo-missing", ["snapshot", "ls", "--repo", "nowhere"], "nowhere"))
add(Case("repo-empty-folder", ["snapshot", "ls", "--repo", "r"], "r", setup=lambda f: (f / "r").mkdir()))
add(Case("repo-is-file", ["snapshot", "ls", "--repo", "r"], "r", setup=lambda f: (f / "r").write_text("x")))
add(Case("repo-empty-arg", ["snapshot", "ls", "--repo", ""], "--repo"))


# --- 11. paths mactl writes stay under the config's folder; names differ beyond case -----------

_DL = ["static-migration-configs", 0, "documentBackfillConfigs", 0, "deadLetter"]
PATHS: dict[str, tuple[list[str | int], Any, str]] = {
    "state-dotdot": (["state", "path"], "../escaped", "state.path"),
    "state-dotdot-deep": (["state", "path"], "a/../../escaped", "state.path"),
    "state-parent": (["state", "path"], "..", "state.path"),
    "state-absolute": (["state", "path"], "@TMP@/abs-state", "state.path"),
    "deadletter-dotdot": (_DL, {"location": "../dl"}, "deadLetter"),
    "deadletter-absolute": (_DL, {"location": "@TMP@/abs-dl"}, "deadLetter"),
}
for _id, (_path, _value, _expect) in PATHS.items():
    for _cmd in (["validate"], ["plan", "-refresh=false"]):
        add(
            Case(
                f"path-{_id}-{_cmd[0]}",
                [*_cmd, "-c", "c.json"],
                _expect,
                files={"c.json": _config_with(_setter(_path, _value))},
            )
        )


def _capture_path(path: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        source = config.pop("source")
        migrations = config.pop("static-migration-configs")
        config["source-migration-configurations"] = [
            {
                "source": source,
                "snapshot-and-migration-configs": migrations,
                "capture": {"log": {"type": "file", "path": path}},
            }
        ]

    return change


# A password with a '/' breaks the URL: the error must not quote the fragments around it.
validate_json(
    "url-password-with-slash",
    _setter(["source", "endpoint"], "http://admin:{{ var.pw }}@127.0.0.1:19200"),
    "source.endpoint",
)
validate_json("path-capture-log-dotdot", _capture_path("../../cap"), "capture.log.path")
validate_json("path-capture-log-absolute", _capture_path("@TMP@/cap"), "capture.log.path")


def _second(kind: str, name: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        if kind == "snapshot":
            entry = json.loads(json.dumps(config["static-migration-configs"][0]))
            entry["name"] = name
            config["static-migration-configs"].append(entry)
        elif kind == "target":
            config["targets"].append({"name": name, "endpoint": "http://127.0.0.1:19201"})
        else:
            backfills = config["static-migration-configs"][0]["documentBackfillConfigs"]
            backfills.append({"name": name})

    return change


for _kind, _name in (("snapshot", "Snap"), ("snapshot", "SNAP"), ("target", "OS2"), ("backfill", "B0")):
    validate_json(f"name-collides-{_kind}-{_name}", _second(_kind, _name), "name")


# --- the test -----------------------------------------------------------------------------------


def test_the_corpus_is_big_and_distinct() -> None:
    assert len(CASES) >= 300, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` (files and folders alike), with its size and mtime."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        # A folder's own mtime moves when a lock file comes and goes; its entries are compared.
        out[str(path.relative_to(folder))] = (0, 0) if path.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("MACTL_")]:
        monkeypatch.delenv(key)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MACTL_VAR_pw", SECRET)
    work = tmp_path / "w"
    work.mkdir()
    _write(work, {k: v.replace("@TMP@", str(tmp_path)) if isinstance(v, str) else v for k, v in case.files.items()})
    if case.setup is not None:
        case.setup(work)
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    code = run_guarded(app, case.argv)
    out = capsys.readouterr()
    both = out.out + out.err
    assert code != 0, f"accepted: {case.argv}\n{both[-2000:]}"
    assert "Traceback" not in both and "internal error" not in both, both[-3000:]
    error = next((line for line in out.err.splitlines() if line.startswith("Error")), "")
    assert error, f"no Error: line on stderr:\n{out.err[-2000:]}"
    assert case.expect in out.err, f"the error does not name {case.expect!r}:\n{out.err[-2000:]}"
    assert SECRET not in both and "Hostile" not in both  # nor a fragment of it
    assert _tree(tmp_path) == before, "something was written on failure"
