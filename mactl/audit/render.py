"""Validation reports as text (terminal), JSON (scripts), markdown (PRs) and HTML (a page).

Every renderer takes the list of reports `mactl.audit.model.reports_from_state` returns
and works from them alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from mactl.audit import svg

Report = dict[str, Any]


def _verdict(ok: bool) -> str:
    return "PASSED" if ok else "FAILED"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "?"


def _cell(check: dict[str, Any] | None, kind: str) -> str:
    if check is None:
        return "-"
    mark = "ok" if check["passed"] else "FAIL"
    if check.get("skipped"):
        return "skipped"
    if kind == "count":
        return f"{mark} {check.get('target')}/{check.get('expected')}"
    if kind == "sample":
        return f"{mark} {check.get('matched', 0)}/{check.get('checked', 0)}"
    return mark


def summary_rows(report: Report) -> list[list[str]]:
    rows = []
    for row in report["indices"]:
        c = row["checks"]
        rows.append(
            [
                row["index"],
                _cell(c.get("count"), "count"),
                _cell(c.get("sample"), "sample"),
                _cell(c.get("mappings"), "mappings"),
            ]
        )
    return rows


LEDGER_HEADS = (
    ("live", "live"),
    ("written", "written"),
    ("deadLettered", "dead-lettered"),
    ("skippedBySampling", "skipped (sample)"),
    ("droppedByTransform", "dropped (transform)"),
    ("notMigratable", "not migratable"),
    ("unaccounted", "unaccounted"),
)


def ledger_rows(report: Report) -> list[list[str]]:
    """The document ledger: per source index, the snapshot's live top-level documents and
    where each went; the last cells are the verdict and the top dead-letter reasons."""
    rows = []
    for row in report.get("ledger") or []:
        reasons = ", ".join(f"{k} {v}" for k, v in list((row.get("deadLetterReasons") or {}).items())[:3])
        rows.append(
            [
                row["index"],
                *(f"{int(row.get(key, 0) or 0):,}" for key, _ in LEDGER_HEADS),
                "ok" if row["passed"] else "FAIL",
                reasons or str(row.get("notMigratableReason") or ""),
            ]
        )
    return rows


def render_text(reports: Sequence[Report]) -> str:
    out: list[str] = []
    for r in reports:
        out.append(
            f"{r['address']}: {_verdict(r['passed'])}  ({r['source']} → {r['target']}, {_when(r.get('finishedAt'))})"
        )
        width = max([5, *(len(x["index"]) for x in r["indices"])])
        out.append(
            f"  {'index'.ljust(width)}  {'count (target/expected)':24}  {'sample (matched/checked)':24}  mappings"
        )
        for name, count, sample, mappings in summary_rows(r):
            out.append(f"  {name.ljust(width)}  {count:24}  {sample:24}  {mappings}")
        for row in r["indices"]:
            if note := (row["checks"].get("sample") or {}).get("note"):
                out.append(f"  note: {row['index']}: sample: {note}")
        lrows = ledger_rows(r)
        if lrows:
            out.append(
                "  document ledger (snapshot live top-level = written + dead-lettered + skipped + dropped + not migratable):"
            )
            lw = max([5, *(len(x[0]) for x in lrows)])
            heads = [h for _, h in LEDGER_HEADS]
            out.append(
                "    " + "index".ljust(lw) + "  " + "  ".join(h.rjust(max(len(h), 7)) for h in heads) + "  result"
            )
            for cells in lrows:
                nums = "  ".join(c.rjust(max(len(h), 7)) for c, h in zip(cells[1:8], heads, strict=True))
                tail = f"  {cells[8]}" + (f"  {cells[9]}" if cells[9] else "")
                out.append("    " + cells[0].ljust(lw) + "  " + nums + tail)
        for q in r["queries"]:
            out.append(
                f"  query {q['name']!r} on {q['index']}: {'ok' if q['passed'] else 'FAIL'} "
                f"(hits {q['sourceHits']} vs {q['targetHits']}; {q.get('detail', '')})"
            )
        for rp in r["replay"]:
            out.append(
                f"  replay {rp['address']}: {'ok' if rp['passed'] else 'FAIL'}: {rp.get('requests', 0)} requests, "
                f"status match {_pct(rp.get('statusMatchRate'))}, latency ratio "
                f"{'n/a' if rp.get('latencyRatio') is None else format(rp['latencyRatio'], '.2f')}"
            )
        for f in r["failures"]:
            out.append(f"  failed: {f}")
    return "\n".join(out) + "\n"


def render_json(reports: Sequence[Report]) -> str:
    return (
        json.dumps({"passed": all(r["passed"] for r in reports), "reports": list(reports)}, indent=2, default=str)
        + "\n"
    )


def render_markdown(reports: Sequence[Report]) -> str:
    out: list[str] = []
    for r in reports:
        icon = "✅" if r["passed"] else "❌"
        out += [
            f"### {icon} `{r['address']}`: {_verdict(r['passed'])}",
            "",
            f"{r['source']} → {r['target']}, finished {_when(r.get('finishedAt'))}. "
            f"Thresholds: `{json.dumps(r['thresholds'], sort_keys=True)}`",
            "",
            "| index | count (target/expected) | sample (matched/checked) | mappings |",
            "|---|---|---|---|",
        ]
        out += [f"| `{a}` | {b} | {c} | {d} |" for a, b, c, d in summary_rows(r)]
        lrows = ledger_rows(r)
        if lrows:
            out += [
                "",
                "Document ledger (snapshot live top-level = written + dead-lettered + skipped + dropped + not migratable):",
                "",
                "| index | " + " | ".join(h for _, h in LEDGER_HEADS) + " | result | reasons |",
                "|---|" + "---:|" * len(LEDGER_HEADS) + "---|---|",
            ]
            out += [f"| `{c[0]}` | " + " | ".join(c[1:]) + " |" for c in lrows]
        if r["queries"]:
            out += ["", "| query | index | source hits | target hits | result |", "|---|---|---|---|---|"]
            out += [
                f"| {q['name']} | `{q['index']}` | {q['sourceHits']} | {q['targetHits']} | "
                f"{'ok' if q['passed'] else 'FAIL: ' + q.get('detail', '')} |"
                for q in r["queries"]
            ]
        for rp in r["replay"]:
            out += [
                "",
                f"Replay `{rp['address']}`: {rp.get('requests', 0)} requests, status match "
                f"{_pct(rp.get('statusMatchRate'))}, latency ratio "
                f"{'n/a' if rp.get('latencyRatio') is None else format(rp['latencyRatio'], '.2f')}.",
            ]
        if r["failures"]:
            out += ["", "**Failed checks:**", *[f"- {f}" for f in r["failures"]]]
        out.append("")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}
.ok{color:#2a7d2a}.fail{color:#c0392b;font-weight:bold}pre{background:#f6f6f6;padding:6px;white-space:pre-wrap}
h1 .ok,h2 .ok{font-size:.8em}.empty{color:#777}"""


def _cls(ok: bool) -> str:
    return "ok" if ok else "fail"


def render_html(reports: Sequence[Report]) -> str:
    """One self-contained page: tables, failures, and three inline SVG plots per report."""
    body: list[str] = [
        f"<h1>mactl validation audit <span class='{_cls(all(r['passed'] for r in reports))}'>"
        f"{_verdict(all(r['passed'] for r in reports))}</span></h1>"
    ]
    for r in reports:
        body.append(
            f"<h2><code>{escape(r['address'])}</code> <span class='{_cls(r['passed'])}'>{_verdict(r['passed'])}</span></h2>"
        )
        body.append(
            f"<p>{escape(r['source'])} → {escape(r['target'])}; finished {_when(r.get('finishedAt'))}; "
            f"thresholds <code>{escape(json.dumps(r['thresholds'], sort_keys=True))}</code>; "
            f"sample size {r.get('sampleSize')}</p>"
        )
        if r["failures"]:
            body.append(
                "<h3>Failed checks</h3><ul>"
                + "".join(f"<li class='fail'>{escape(f)}</li>" for f in r["failures"])
                + "</ul>"
            )
        body.append(
            "<h3>Indices</h3><table><tr><th>index</th><th>count target/expected</th><th>basis</th>"
            "<th>sample matched/checked</th><th>mappings &amp; settings</th></tr>"
        )
        for row in r["indices"]:
            c = row["checks"]
            count, sample, maps = c.get("count") or {}, c.get("sample"), c.get("mappings")
            body.append(
                f"<tr><td><code>{escape(row['index'])}</code></td>"
                f"<td class='{_cls(count.get('passed', False))}'>{count.get('target')}/{count.get('expected')}</td>"
                f"<td>{escape(str(count.get('basis', '')))}</td>"
                f"<td class='{_cls(sample['passed']) if sample else ''}'>{_cell(sample, 'sample')}"
                + (
                    "".join(
                        f"<pre>{escape(m['id'])}: {escape(m['diff'])}</pre>"
                        for m in (sample or {}).get("mismatches", [])
                    )
                )
                + f"</td><td class='{_cls(maps['passed']) if maps else ''}'>"
                f"{escape(_cell(maps, 'mappings'))}{'' if not maps or maps['passed'] else '<pre>' + escape(maps.get('detail', '')) + '</pre>'}</td></tr>"
            )
        body.append("</table>")
        lrows = ledger_rows(r)
        if lrows:
            body.append(
                "<h3>Document ledger</h3><p>snapshot live top-level documents = written + dead-lettered + "
                "skipped by sampling + dropped by a transform + not migratable</p><table><tr><th>index</th>"
                + "".join(f"<th>{escape(h)}</th>" for _, h in LEDGER_HEADS)
                + "<th>result</th><th>reasons</th></tr>"
            )
            for c in lrows:
                body.append(
                    f"<tr><td><code>{escape(c[0])}</code></td>"
                    + "".join(f"<td>{escape(x)}</td>" for x in c[1:8])
                    + f"<td class='{_cls(c[8] == 'ok')}'>{c[8]}</td><td>{escape(c[9])}</td></tr>"
                )
            body.append("</table>")
        labels = [row["index"] for row in r["indices"]]
        expected = [(row["checks"].get("count") or {}).get("expected") for row in r["indices"]]
        actual = [(row["checks"].get("count") or {}).get("target") for row in r["indices"]]
        body.append("<h3>Documents per index: source (expected) vs target</h3>")
        body.append(
            svg.bars("documents per index", labels, [("source (expected)", expected), ("target", actual)], "documents")
        )
        body.append("<h3>Backfill throughput</h3>")
        body.append(svg.lines("backfill docs/s over time", list((r.get("backfillTimelines") or {}).items()), "docs/s"))
        body.append("<h3>Replay lag</h3>")
        body.append(
            svg.lines("replay lag over time", [(rp["address"], rp.get("lag") or []) for rp in r["replay"]], "lag (s)")
        )
        if r["replay"]:
            body.append(
                "<table><tr><th>replay</th><th>requests</th><th>status match</th><th>median latency ms (source/target)</th>"
                "<th>latency ratio</th><th>status mismatches</th></tr>"
            )
            for rp in r["replay"]:
                lat = rp.get("latencyMsMedian") or {}
                body.append(
                    f"<tr><td><code>{escape(rp['address'])}</code></td><td>{rp.get('requests', 0)}</td>"
                    f"<td class='{_cls(rp['passed'])}'>{_pct(rp.get('statusMatchRate'))}</td>"
                    f"<td>{_ms(lat.get('source'))} / {_ms(lat.get('target'))}</td>"
                    f"<td>{'n/a' if rp.get('latencyRatio') is None else format(rp['latencyRatio'], '.2f')}</td>"
                    f"<td>{escape(json.dumps(rp.get('mismatchedStatuses') or {}))}</td></tr>"
                )
            body.append("</table>")
        if r["queries"]:
            body.append(
                "<h3>Query parity</h3><table><tr><th>query</th><th>index</th><th>source hits</th>"
                "<th>target hits</th><th>result</th></tr>"
            )
            for q in r["queries"]:
                body.append(
                    f"<tr><td>{escape(q['name'])}</td><td><code>{escape(q['index'])}</code></td>"
                    f"<td>{q['sourceHits']}</td><td>{q['targetHits']}</td>"
                    f"<td class='{_cls(q['passed'])}'>{escape(q.get('detail', ''))}</td></tr>"
                )
            body.append("</table>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>mactl validation audit</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
