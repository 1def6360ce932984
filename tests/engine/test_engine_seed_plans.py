"""Plans for the seed's three sample configs, pinned in text, JSON and markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from mactl.config.loader import load_config
from mactl.graph.expand import expand
from mactl.plan.builder import PlanOptions, build_plan
from mactl.plan.render_json import render_json
from mactl.plan.render_markdown import render_markdown
from mactl.plan.render_text import render_text

SEED = Path(__file__).resolve().parents[1] / "data" / "seed"
SAMPLES = ["top-level-filled.jsonc", "sample-single-target.json", "sample-single.json"]


def _plan(name: str):
    loaded = load_config(SEED / name, env={})
    plan = build_plan(expand(loaded.config), None, PlanOptions(refresh=False), sensitive_values=loaded.sensitive_values)
    plan.config_path = name
    return plan


@pytest.mark.parametrize("name", SAMPLES)
def test_seed_sample_plan_text(name: str, snapshot) -> None:
    assert render_text(_plan(name)) == snapshot


@pytest.mark.parametrize("name", SAMPLES)
def test_seed_sample_plan_json(name: str, snapshot) -> None:
    assert render_json(_plan(name)) == snapshot


@pytest.mark.parametrize("name", SAMPLES)
def test_seed_sample_plan_markdown(name: str, snapshot) -> None:
    md = render_markdown(_plan(name))
    assert len(md) < 65_000
    assert md == snapshot


def test_the_three_shapes_plan_the_same_stages() -> None:
    plans = [_plan(n) for n in SAMPLES]
    addresses = [[c.address for c in p.changes] for p in plans]
    assert addresses[1] == addresses[2]
    assert addresses[0] == addresses[1]


def test_markdown_is_truncated_under_the_limit_with_a_note() -> None:
    plan = _plan("sample-single.json")
    md = render_markdown(plan, limit=3000)
    assert len(md) < 3000
    assert "truncated to stay under 3,000 characters" in md
    assert md.rstrip().endswith("</details>")
    assert md.startswith("### mactl plan: Plan: 6 to create")
