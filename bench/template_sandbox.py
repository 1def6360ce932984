"""Benchmark: per-document transforms in the template sandbox against a plain Jinja2 environment.

    python bench/template_sandbox.py [--docs 20000] [--rounds 5]

Renders `--docs` small documents through typical document transforms (a field rename
with `{% do %}`, a `dict(...)` merge, an index rename), each template compiled once,
with (a) a plain `jinja2.Environment` configured as mactl's was before the sandbox and
(b) `mactl.templating.transform_environment()` as mactl uses now, both wrapped by
`mactl.transforms` the same way (render, strip, `json.loads`). Rounds alternate; the best
of each is kept. Prints seconds per pass and the ratio b/a.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jinja2

from mactl.templating import DROP_MARKER, compile_template, transform_environment
from mactl.transforms import _wrap_template

TRANSFORMS = {
    "rename-field": (
        "{% if _source.n % 7 == 0 %}{{ DROP }}{% else %}{% set s = dict(_source) %}"
        '{% do s.update({"headline": s.pop("title")}) %}{"_source": {{ s | tojson }}}{% endif %}'
    ),
    "dict-merge": '{"_source": {{ dict(_source, migrated=true) | tojson }}}',
    "index-rename": '{"_index": "{{ _index }}-v2", "_id": "{{ _id }}"}',
}


def plain_environment() -> jinja2.Environment:
    """mactl's environment before the sandbox (mactl/transforms.py `_ENV`)."""
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
    )
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.globals["DROP"] = DROP_MARKER
    return env


def docs(n: int) -> list[dict[str, Any]]:
    return [
        {
            "_index": "logs",
            "_id": str(i),
            "_routing": None,
            "_source": {"n": i, "title": f"doc {i}", "tags": ["a", "b"], "nested": {"x": i * 2, "y": "z"}},
        }
        for i in range(n)
    ]


def run(fn: Any, items: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for context in items:
        fn(dict(context, _source=dict(context["_source"])))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    items = docs(args.docs)
    plain, sandbox = plain_environment(), transform_environment()
    total_a = total_b = 0.0
    for name, source in TRANSFORMS.items():
        before = _wrap_template(name, plain.from_string(source))
        after = _wrap_template(name, compile_template(sandbox, source))
        assert [before(dict(c, _source=dict(c["_source"]))) for c in items[:50]] == [
            after(dict(c, _source=dict(c["_source"]))) for c in items[:50]
        ]
        best_a = best_b = float("inf")
        for _ in range(args.rounds):
            best_a = min(best_a, run(before, items))
            best_b = min(best_b, run(after, items))
        total_a += best_a
        total_b += best_b
        print(f"{name:14} plain {best_a:.3f}s  sandbox {best_b:.3f}s  ratio {best_b / best_a:.2f}")
    print(
        f"{'all':14} plain {total_a:.3f}s  sandbox {total_b:.3f}s  ratio {total_b / total_a:.2f}  ({args.docs:,} docs each)"
    )


if __name__ == "__main__":
    main()
