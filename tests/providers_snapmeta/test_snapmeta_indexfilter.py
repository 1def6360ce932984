"""The one index-filter syntax: exact names, `*` wildcards, `re:` regexes, include/exclude chains."""

from __future__ import annotations

from mactl.indexfilter import matches, select, split_builtin_exclusions, validate_filters
from mactl.schema.common import IndexFilter

NAMES = ["logs-2024", "logs-2025", "logsx", "metrics", ".kibana", ".tasks", "ilm-history-1", "users"]


def f(names: str | list[str], mode: str = "include") -> IndexFilter:
    return IndexFilter.model_validate({"names": names, "mode": mode})


def test_patterns_match_whole_names() -> None:
    assert matches("logs-2024", "logs-*") and not matches("xlogs-2024", "logs-*")
    assert matches("logs.x", "logs.x") and not matches("logsAx", "logs.x")  # exact: the dot is literal
    assert matches("logs-2024", "re:logs-\\d{4}") and not matches("logs-2024-old", "re:logs-\\d{4}")


def test_chains_need_every_filter() -> None:
    assert select(NAMES, []) == sorted(NAMES)
    assert select(NAMES, [f("logs-*,metrics")]) == ["logs-2024", "logs-2025", "metrics"]
    assert select(NAMES, [f("logs-*,metrics"), f("re:.*2025", "exclude")]) == ["logs-2024", "metrics"]
    assert select(NAMES, [f(["users"], "exclude")]) == [n for n in sorted(NAMES) if n != "users"]


def test_builtin_exclusions_are_reported_and_an_exact_name_wins() -> None:
    kept, excluded = split_builtin_exclusions(NAMES, [])
    assert {e.name for e in excluded} == {".kibana", ".tasks", "ilm-history-1"}
    assert ".kibana" not in kept and "users" in kept
    kept, excluded = split_builtin_exclusions(NAMES, [f(".kibana,users")])
    assert kept == [".kibana", "users"] and excluded == []
    kept, excluded = split_builtin_exclusions(NAMES, [f(".*")])
    assert kept == [] and [e.name for e in excluded] == [".kibana", ".tasks"]


def test_bad_regexes_are_plan_time_problems() -> None:
    problems = validate_filters([f("ok-*"), f("re:(unclosed")])
    assert len(problems) == 1 and "indices[1]" in problems[0] and "re:(unclosed" in problems[0]
