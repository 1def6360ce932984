"""`mactl metadata evaluate ADDR`: the exact JSON a metadata stage would create, writing nothing.

Loads the config, expands the graph, picks the stage at ADDR and runs the metadata
evaluation (source metadata → selection → version transforms → user transforms). Reads
the source (or its snapshot) and the target's version; never writes to any cluster.
"""

from __future__ import annotations

import json

import typer

from mactl.cli.app import app
from mactl.cli.config_cmd import ConfigPathOpt, NoPythonTransformsOpt, VarFileOpt, VarOpt, find_stage, load_from_options
from mactl.errors import ConfigError
from mactl.metadata.evaluate import evaluate
from mactl.metadata.report import render_evaluation

metadata_app = typer.Typer(help="Inspect metadata migrations.", no_args_is_help=True)
app.add_typer(metadata_app, name="metadata")


@metadata_app.command("evaluate")
def evaluate_cmd(
    address: str = typer.Argument(..., help="The metadata stage's address, e.g. metadata.source.snap1.target_1.m0"),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
    from_: str | None = typer.Option(None, "--from", help="Override where metadata is read: snapshot | live."),
) -> None:
    """Show per item the JSON that would be created after all transforms; writes nothing."""
    from mactl.cli.config_cmd import expand_named
    from mactl.schema.metadata import MetadataInputs

    loaded = load_from_options(config, var, var_file)
    stage = find_stage(
        expand_named(loaded),
        address,
        "metadata",
        none_hint="the config has no metadata stage",
    )
    raw = dict(stage.inputs)
    if from_ is not None:
        if from_ not in ("snapshot", "live"):
            raise ConfigError(f"--from must be snapshot or live, not '{from_}'")
        raw["from"] = from_
    inputs = MetadataInputs.model_validate(raw)
    ev = evaluate(inputs, base_dir=loaded.base_dir)
    if as_json:
        typer.echo(json.dumps(ev.to_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_evaluation(address, ev))
