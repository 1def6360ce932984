"""Variables: declaration, precedence (env < var-files < -var), typing, templating, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mactl.config import ConfigErrors, load_config
from mactl.graph.expand import expand

CONFIG = """\
variables:
  host: {type: string, default: default-host, description: the target host}
  speed: {type: number, default: 1}
  follow: {type: bool, default: false}
  password: {type: string, sensitive: true, default: "d3fault-pw"}
  names: {type: list, default: [a, b]}
target:
  endpoint: "http://{{ var.host }}:9200"
  auth: {type: basic, username: admin, password: "{{ var.password }}"}
source:
  endpoint: "http://src:9200"
  snapshotRepository: {type: fs, location: "/repo/{{ var.host }}"}
static-migration-configs:
  - indices: {names: "{{ var.names }}"}
    metadata:
      transforms: '{"index": "{{ item.name }}-copy"}'
    documentBackfillConfigs: {}
replayer-config:
  maxSpeedupFactor: "{{ var.speed }}"
  follow: "{{ var.follow }}"
"""


@pytest.fixture()
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "mactl.yaml"
    path.write_text(CONFIG)
    return path


def _host(path: Path, **kwargs) -> str:  # noqa: ANN003
    return load_config(path, **kwargs).config.targets[0].endpoint


def test_defaults_apply(config_path: Path) -> None:
    loaded = load_config(config_path, env={})
    assert loaded.config.targets[0].endpoint == "http://default-host:9200"
    assert loaded.config.sources[0].replayer.maxSpeedupFactor == 1.0


def test_precedence_env_then_var_files_in_order_then_vars_in_order(config_path: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("host: file-one\n")
    second = tmp_path / "second.json"
    second.write_text('{"host": "file-two"}')
    env = {"MACTL_VAR_host": "env-host"}
    assert _host(config_path, env=env) == "http://env-host:9200"
    assert _host(config_path, env=env, var_files=[first]) == "http://file-one:9200"
    assert _host(config_path, env=env, var_files=[first, second]) == "http://file-two:9200"
    assert _host(config_path, env=env, var_files=[second, first]) == "http://file-one:9200"
    assert _host(config_path, env=env, var_files=[first, second], var_args=["host=cli-1"]) == "http://cli-1:9200"
    assert _host(config_path, env=env, var_files=[first], var_args=["host=cli-1", "host=cli-2"]) == "http://cli-2:9200"


def test_text_values_take_the_declared_type(config_path: Path) -> None:
    loaded = load_config(config_path, env={"MACTL_VAR_follow": "true"}, var_args=["speed=2.5", "names=[x, y]"])
    replayer = loaded.config.sources[0].replayer
    assert replayer.maxSpeedupFactor == 2.5 and replayer.follow is True
    assert loaded.config.sources[0].snapshots[0].indices[0].names == ["x", "y"]


def test_a_value_of_the_wrong_type_names_variable_and_origin(config_path: Path, tmp_path: Path) -> None:
    var_file = tmp_path / "vars.yaml"
    var_file.write_text("speed: fast\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(config_path, env={}, var_args=["follow=perhaps"], var_files=[var_file])
    message = str(info.value)
    assert "-var follow: variable 'follow' from -var follow=…: expected a bool" in message
    assert f"-var-file {var_file}: speed: variable 'speed' from -var-file {var_file}: expected a number" in message


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"var_args": ["hots=x"]}, "-var hots"),
        ({"env": {"MACTL_VAR_hots": "x"}}, "environment variable MACTL_VAR_hots"),
    ],
)
def test_an_undeclared_variable_is_an_error_naming_it_and_where_it_was_set(config_path: Path, kwargs, where) -> None:  # noqa: ANN001
    kwargs = {"env": {}, **kwargs}
    with pytest.raises(ConfigErrors) as info:
        load_config(config_path, **kwargs)
    message = str(info.value)
    assert "variable 'hots' is not declared (did you mean 'host'?)" in message
    assert where in message


def test_undeclared_variable_in_a_var_file(config_path: Path, tmp_path: Path) -> None:
    var_file = tmp_path / "v.json"
    var_file.write_text('{"speeed": 3}')
    with pytest.raises(ConfigErrors, match=r"variable 'speeed' is not declared \(did you mean 'speed'\?\)"):
        load_config(config_path, env={}, var_files=[var_file])


def test_malformed_var_argument(config_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"-var 'host': expected NAME=VALUE"):
        load_config(config_path, env={}, var_args=["host"])


def test_required_variable_without_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace('default: "d3fault-pw"', "description: no default"))
    with pytest.raises(ConfigErrors, match="variables.password: variable 'password' is required but has no value"):
        load_config(path, env={})
    assert load_config(path, env={"MACTL_VAR_password": "pw"}).config.targets[0].auth.password is not None


def test_transform_templates_are_not_rendered_as_config_templates(config_path: Path) -> None:
    loaded = load_config(config_path, env={})
    spec = loaded.config.sources[0].snapshots[0].migrations[0].metadata.transforms[0]
    assert spec.kind == "jinja" and spec.template == '{"index": "{{ item.name }}-copy"}'


def test_sensitive_values_are_reported_and_marked_in_stage_inputs(config_path: Path) -> None:
    loaded = load_config(config_path, env={}, var_args=["password=hunter2-long"])
    assert loaded.sensitive_values == {"hunter2-long"}
    graph = expand(loaded.config)
    stage = graph.stages["metadata.source.snap1.target_1.m0"]
    assert stage.inputs["target"]["auth"]["password"] == "hunter2-long", "providers need the real value"
    assert "target.auth.password" in stage.sensitive_paths


def test_a_sensitive_variable_inside_a_longer_string_marks_that_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "variables:\n  token: {sensitive: true}\n"
        "target: {endpoint: 'http://t:9200'}\n"
        "source: {endpoint: 'http://s:9200', snapshotRepository: {type: s3, bucket: 'b-{{ var.token }}'}}\n"
        "static-migration-configs: [{metadata: {}}]\n"
    )
    loaded = load_config(path, env={"MACTL_VAR_token": "abc123secret"})
    stage = expand(loaded.config).stages["snapshot.source.snap1"]
    assert stage.inputs["repository"]["bucket"] == "b-abc123secret"
    assert stage.sensitive_paths == {"repository.bucket"}


def test_a_sensitive_value_never_appears_in_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "variables:\n  pw: {sensitive: true}\n"
        "target: {endpoint: 'http://t:9200', auth: {type: '{{ var.pw }}'}}\n"
        "source: {endpoint: 'http://s:9200'}\nstatic-migration-configs: [{metadata: {}}]\n"
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env={"MACTL_VAR_pw": "topsecret99"})
    assert "topsecret99" not in str(info.value)
    assert "target.auth.type: input should be 'none', 'basic' or 'sigv4' (got (sensitive))" in str(info.value)
