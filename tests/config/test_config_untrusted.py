"""Untrusted configs (issue 19): templates render in a sandbox, Python transforms can be refused.

CI runs `mactl validate` and `mactl plan` on pull requests' configs with credentials in
the environment, so a config must not be able to run code or read files through a
template. Every classic server-side template injection payload, in every place a
template can be (a config string, an inline or `.j2` metadata transform, an inline or
`.j2` document transform), is refused by `mactl validate` with one line naming the
config path and a non-zero exit code, and has no side effect. What a validate cannot
see (names built at render time, sizes from the data) is refused by the sandbox when the
transform runs. Python transforms are refused, before their module is imported, with
`--no-python-transforms` or `MACTL_NO_PYTHON_TRANSFORMS=1`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mactl.backfill.doc_transforms import DocumentTransformer
from mactl.cli import app
from mactl.cli.app import run_guarded
from mactl.errors import ConfigError
from mactl.metadata.items import Item
from mactl.metadata.user_transforms import UserTransforms
from mactl.metadata.version_transforms import ItemFailed
from mactl.schema.common import TransformSpec
from mactl.templating import FILTERS, TESTS, config_environment, transform_environment
from mactl.transforms import NO_PYTHON_ENV, TransformError, compile_chain, compile_transform

MARK = "MARKFILE"  # replaced by a path under tmp_path: a payload that ran would create it

PAYLOADS = {
    "cycler-popen": "{{ cycler.__init__.__globals__.os.popen('touch MARKFILE').read() }}",
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "template-reference": "{{ self._TemplateReference__context }}",
    "flask-config": "{{ config.items() }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('touch MARKFILE').read() }}",
    "flask-request": "{{ request.application.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "request-alone": "{{ request }}",
    "getitem-dunder": "{{ ''['__class__'] }}",
    "attr-filter": "{{ x | attr('__class__') }}",
    "map-attribute": "{{ [1] | map(attribute='__class__') | list }}",
    "include-file": "{% include '/etc/passwd' %}",
    "import-module": "{% import 'os' as x %}{{ x.popen('touch MARKFILE') }}",
    "from-import": "{% from 'os' import popen %}",
    "extends-file": "{% extends '/etc/passwd' %}",
    "huge-range": "{% for i in range(10**9) %}{% endfor %}",
    "huge-string": "{{ 'x' * 10**9 }}",
    "huge-power": "{{ 10 ** 100000 }}",
    "huge-format": "{{ '%0999999999d' % 1 }}",
    "huge-format-filter": "{{ '%0999999999d' | format(1) }}",
}
PLACES = ("config-string", "metadata-inline", "metadata-file", "document-inline", "document-file")


def _config(place: str, payload: str, tmp_path: Path) -> Path:
    """A config with `payload` in one place, written as JSON (no YAML quoting to get wrong)."""
    metadata: dict[str, Any] = {}
    backfill: dict[str, Any] = {"name": "b0"}
    target: dict[str, Any] = {"endpoint": "http://localhost:9200"}
    if place == "config-string":
        target["endpoint"] = f"http://{payload}:9200"
    elif place.endswith("-file"):
        (tmp_path / "t.j2").write_text(payload)
        (metadata if place.startswith("metadata") else backfill)["transforms"] = "t.j2"
    else:
        (metadata if place.startswith("metadata") else backfill)["transforms"] = [
            {"kind": "jinja", "template": payload}
        ]
    config = {
        "targets": [target],
        "source": {"endpoint": "http://localhost:9201", "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [
            {"indices": {"names": "a"}, "metadata": metadata, "documentBackfillConfigs": [backfill]}
        ],
    }
    path = tmp_path / "mactl.json"
    path.write_text(json.dumps(config))
    return path


EXPECTED_PATH = {
    "config-string": "targets[0].endpoint",
    "metadata-inline": "static-migration-configs[0].metadata.transforms",
    "metadata-file": "static-migration-configs[0].metadata.transforms",
    "document-inline": "static-migration-configs[0].documentBackfillConfigs[0].transforms",
    "document-file": "static-migration-configs[0].documentBackfillConfigs[0].transforms",
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_validate_refuses_template_injection(
    name: str, place: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mark = tmp_path / "pwned"
    path = _config(place, PAYLOADS[name].replace(MARK, str(mark)), tmp_path)
    code = run_guarded(app, ["validate", "-c", str(path)])
    out = capsys.readouterr()
    assert code != 0
    assert not mark.exists()
    errors = [line for line in out.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.err
    assert "Traceback" not in out.err + out.out
    assert EXPECTED_PATH[place] in errors[0]
    if place.endswith("-file"):
        assert "transform file t.j2" in errors[0]
    assert str(tmp_path / "passwd") not in errors[0] and "root:" not in errors[0]  # nothing read


@pytest.mark.parametrize("name", ["cycler-popen", "include-file", "huge-range"])
def test_validate_refuses_through_the_console_command(name: str, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    path = _config("metadata-inline", PAYLOADS[name].replace(MARK, str(mark)), tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mactl", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "refused" in done.stderr and "Traceback" not in done.stderr
    assert not mark.exists()


def test_validate_explains_a_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config("metadata-inline", PAYLOADS["cycler-popen"], tmp_path)
    assert run_guarded(app, ["validate", "-c", str(path)]) == 1
    assert (
        "static-migration-configs[0].metadata.transforms[0]: transform template line 1: refused: "
        "attribute '__globals__' is not allowed (Python's private names are not reachable)"
    ) in capsys.readouterr().err
    path = _config("config-string", "{{ 'a'.__class__ }}", tmp_path)
    assert run_guarded(app, ["validate", "-c", str(path)]) == 1
    assert "targets[0].endpoint: template refused: attribute '__class__' is not allowed" in capsys.readouterr().err
    path = _config("document-inline", "{{ request }}", tmp_path)
    assert run_guarded(app, ["validate", "-c", str(path)]) == 1
    assert "unknown name 'request' (this template sees: " in capsys.readouterr().err


# --- at render time: what a validate cannot see ------------------------------------------

RUNTIME_PAYLOADS = {
    "built-dunder-key": "{% set k = '__cla' ~ 'ss__' %}{{ _source[k] }}",
    "built-dunder-map": "{% set k = '__cla' ~ 'ss__' %}{{ [1] | map(attribute=k) | list }}",
    "str-format": "{{ '{0.__class__}'.format(_source) }}",
    "format-width-from-data": "{{ ('%0' ~ _source.n ~ 'd') | format(1) }}",
    "type-attribute": "{{ dict.fromkeys([1]) }}",
    "range-from-data": "{{ range(_source.n) | list | length }}",
    "repeat-from-data": "{{ _source.title * _source.n }}",
    "power-from-data": "{{ _source.n ** _source.n }}",
    "grow-in-place": "{% set l = [1] %}{% for i in range(40) %}{% do l.extend(l) %}{% endfor %}{{ l | length }}",
    "huge-output": "{% for i in range(10000) %}{{ _source.big }}{% endfor %}",
    "self-block": "{% block x %}{% endblock %}{{ self.x() }}",
}


@pytest.mark.parametrize("name", sorted(RUNTIME_PAYLOADS))
def test_document_transforms_are_sandboxed_when_they_run(name: str) -> None:
    transformer = DocumentTransformer([TransformSpec(kind="jinja", template=RUNTIME_PAYLOADS[name])])
    source = {"n": 10**9, "title": "t", "big": "x" * 10_000}
    with pytest.raises(TransformError) as err:
        transformer.apply("idx", "1", None, source)
    message = err.value.message
    assert "\n" not in message and message.startswith("transform inline template, line ")
    assert "refused" in message or "unsafe" in message or "not allowed" in message


def test_metadata_and_replay_transforms_are_sandboxed_when_they_run() -> None:
    payload = "{% set k = '__cla' ~ 'ss__' %}{{ item[k] }}"
    user = UserTransforms([TransformSpec(kind="jinja", template=payload)])
    with pytest.raises(ItemFailed, match="index 'logs': transform inline template, line 1: refused: access to"):
        user.run(Item("index", "logs", {}), source_version="7.10.2", target_version="2.19.0")
    with pytest.raises(ConfigError, match="refused: attribute '__class__' is not allowed"):
        compile_chain([TransformSpec(kind="jinja", template="{{ request.path.__class__ }}")])
    replay = compile_chain([TransformSpec(kind="jinja", template="{% set k = '__cla' ~ 'ss__' %}{{ request[k] }}")])
    with pytest.raises(TransformError, match="refused: access to attribute '__class__' of 'dict' object is unsafe"):
        replay({"request": {"path": "/x"}}, lambda result, context: context)


def test_compiling_refuses_what_validate_refuses() -> None:
    for name in ("cycler-popen", "include-file", "huge-string", "mro-subclasses"):
        with pytest.raises(ConfigError, match=r"^transform inline template, line 1: refused: "):
            compile_transform(TransformSpec(kind="jinja", template=PAYLOADS[name]))


def test_config_strings_cannot_change_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "variables: {names: {default: [a]}}\n"
        "target: {endpoint: 'http://h{{ var.names.append(1) }}:9200'}\n"
        "source: {endpoint: 'http://s:9200', snapshotRepository: {type: fs, location: /r}}\n"
    )
    assert run_guarded(app, ["validate", "-c", str(path)]) == 1
    assert "target.endpoint: template refused: access to attribute 'append' of 'list' object is unsafe" in (
        capsys.readouterr().err
    )


# --- what legitimate templates use keeps working -----------------------------------------


def test_legitimate_transforms_still_work() -> None:
    rename = (
        "{% if _source.n % 2 == 0 %}{{ DROP }}{% else %}{% set s = dict(_source) %}"
        '{% do s.update({"headline": s.pop("title")}) %}{"_source": {{ s | tojson }}}{% endif %}'
    )
    loops = (
        "{% set out = [] %}{% for k, v in _source.items() | sort %}{% if k.startswith('ti') %}"
        "{% do out.append(k ~ '=' ~ v | string | upper) %}{% endif %}{% endfor %}"
        '{"_source": {"joined": {{ out | join(",") | tojson }}, "n": {{ range(3) | sum }},'
        ' "tags": {{ _source.tags | map("lower") | list | tojson }}, "first": {{ loop_first | default(1) }},'
        ' "label": {{ "%s-%03d" | format(_source.title, 7) | tojson }}}}'
    )
    transformer = DocumentTransformer([TransformSpec(kind="jinja", template=rename)])
    assert transformer.apply("i", "1", None, {"n": 2, "title": "t"}) is None
    out = transformer.apply("i", "1", None, {"n": 1, "title": "t"})
    assert out is not None and out.source == {"n": 1, "headline": "t"}
    out = DocumentTransformer([TransformSpec(kind="jinja", template=loops)]).apply(
        "i", "1", None, {"title": "ab", "tags": ["X", "Y"], "zz": 1}
    )
    assert out is not None and out.source == {
        "joined": "title=AB",
        "n": 3,
        "tags": ["x", "y"],
        "first": 1,
        "label": "ab-007",
    }
    meta = UserTransforms(
        [TransformSpec(kind="jinja", template='{"name": "{{ item.name }}-v2", "body": {{ item.body | tojson }}}')]
    )
    new, _ = meta.run(Item("index", "logs", {"a": 1}), source_version="7", target_version="2")
    assert new is not None and new.name == "logs-v2"
    replay = compile_chain(
        [TransformSpec(kind="jinja", template='{"path": {{ request.path | tojson }}, "id": {{ request.body._id }}}')]
    )
    assert replay({"request": {"path": "/x", "body": {"_id": 7}}}, lambda r, c: c) == {"path": "/x", "id": 7}
    with pytest.raises(TransformError, match="refused: access to attribute '_length' of 'LoopContext' object"):
        compile_chain([TransformSpec(kind="jinja", template="{% for x in [1] %}{{ loop._length }}{% endfor %}")])(
            {"request": {"path": "/x"}}, lambda r, c: c
        )


def test_the_allow_lists_are_exactly_what_the_environments_have() -> None:
    for env in (transform_environment(), config_environment()):
        assert sorted(env.filters) == sorted(FILTERS)
        assert sorted(env.tests) == sorted(TESTS)
        assert not {"cycler", "joiner", "namespace", "lipsum"} & set(env.globals)
    assert sorted(transform_environment().globals) == ["DROP", "dict", "range"]
    assert sorted(config_environment().globals) == ["dict", "range"]


# --- Python transforms ------------------------------------------------------------------


@pytest.fixture()
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A transform module that leaves a mark when imported; restores the switch afterwards."""
    mark = tmp_path / "imported"
    (tmp_path / "mactl_evil_transform.py").write_text(
        f"from pathlib import Path\nPath({str(mark)!r}).touch()\n\ndef fix(ctx):\n    return {{'_source': {{'ok': 1}}}}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(NO_PYTHON_ENV, "0")  # recorded, so whatever the CLI flag sets is undone
    monkeypatch.delitem(sys.modules, "mactl_evil_transform", raising=False)
    return mark


def _python_config(tmp_path: Path) -> Path:
    path = tmp_path / "mactl.yaml"
    path.write_text(
        "target: {endpoint: 'http://t:9200'}\n"
        "source: {endpoint: 'http://s:9200', snapshotRepository: {type: fs, location: /r}}\n"
        "static-migration-configs:\n"
        "  - indices: {names: a}\n"
        "    documentBackfillConfigs: {transforms: 'mactl_evil_transform:fix'}\n"
    )
    return path


PYTHON_REFUSED = (
    "static-migration-configs[0].documentBackfillConfigs.transforms: Python transform mactl_evil_transform:fix "
    "refused: it would run code with mactl's privileges, and Python transforms are disabled"
)


def test_no_python_transforms_flag_refuses_them(
    evil_module: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _python_config(tmp_path)
    assert run_guarded(app, ["validate", "-c", str(path)]) == 0
    capsys.readouterr()
    assert run_guarded(app, ["validate", "-c", str(path), "--no-python-transforms"]) == 1
    err = capsys.readouterr().err
    assert PYTHON_REFUSED in err and len([x for x in err.splitlines() if x.startswith("Error:")]) == 1
    assert run_guarded(app, ["plan", "-c", str(path), "-no-python-transforms"]) == 1
    assert PYTHON_REFUSED in capsys.readouterr().err
    assert not evil_module.exists()


def test_the_environment_variable_refuses_them(
    evil_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _python_config(tmp_path)
    monkeypatch.setenv(NO_PYTHON_ENV, "1")
    assert run_guarded(app, ["validate", "-c", str(path)]) == 1
    assert PYTHON_REFUSED in capsys.readouterr().err
    spec = TransformSpec(kind="python", callable="mactl_evil_transform:fix")
    with pytest.raises(ConfigError, match="Python transform mactl_evil_transform:fix refused"):
        DocumentTransformer([spec])
    assert not evil_module.exists()  # refused before the import
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "mactl", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, NO_PYTHON_ENV: "1"},
    )
    assert done.returncode == 1 and PYTHON_REFUSED in done.stderr and "Traceback" not in done.stderr
    assert not evil_module.exists()


def test_without_the_switch_python_transforms_still_run(evil_module: Path) -> None:
    spec = TransformSpec(kind="python", callable="mactl_evil_transform:fix")
    out = DocumentTransformer([spec]).apply("i", "1", None, {"a": 1})
    assert out is not None and out.source == {"ok": 1}
    assert evil_module.exists()
