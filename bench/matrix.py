"""The version matrix: every source into every target, end to end through `mactl apply`.

    eval "$(scripts/clusters env)" && python bench/matrix.py [--markdown] [--json FILE]
    python bench/matrix.py --source es8=http://127.0.0.1:19202 --target os3=http://127.0.0.1:29201

Sources default to ES 7.10, ES 8.x, OpenSearch 1.3 and 2.19, targets to OpenSearch 2.19
and 3.x (and the k-NN instance when `scripts/clusters` runs one), each read from its
`MACTL_TEST_<NAME>_URL` variable; a cluster without a URL is reported as not running.
Each pair runs `devtools.local.pairs.run_pair` (snapshot, metadata, backfill, validate;
documents compared by scroll on both sides; vectors and k-NN parity from ES 8 into a
target with the k-NN plugin), one pair after another (the machine is small), and the
table says for each: passed or why not, documents, the worst k-NN overlap, seconds, and
the built-in rules that fired. A source and target that are the same cluster are skipped.
Exit status 1 when a pair that ran failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))

from devtools.local.pairs import Cluster, PairResult, run_pair  # noqa: E402

SOURCES = ("es710", "es8", "os13", "os2")
TARGETS = ("os2", "os3", "osknn")


def _from_env(names: tuple[str, ...]) -> list[tuple[str, str | None]]:
    return [(n, os.environ.get(f"MACTL_TEST_{n.upper()}_URL")) for n in names]


def _parse(pairs: list[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for raw in pairs:
        name, _, url = raw.partition("=")
        out.append((name, url or None))
    return out


def table(rows: list[PairResult | tuple[str, str, str]], markdown: bool) -> str:
    heads = ["source", "target", "versions", "result", "documents", "k-NN overlap", "s", "rules fired"]
    lines: list[list[str]] = []
    for r in rows:
        if isinstance(r, tuple):
            lines.append([r[0], r[1], "", r[2], "", "", "", ""])
            continue
        lines.append(
            [
                r.source,
                r.target,
                f"{r.source_version.split('/')[-1]} → {r.target_version.split('/')[-1]}",
                "PASS" if r.passed else f"FAIL: {r.detail}",
                ", ".join(f"{k} {v}" for k, v in r.documents.items()),
                "" if r.vector_overlap is None else f"{r.vector_overlap:.0%}",
                f"{r.seconds:.0f}",
                ", ".join(r.rules),
            ]
        )
    if markdown:
        out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*heads), fmt.format(*("-" * w for w in widths)), *(fmt.format(*line) for line in lines)]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", action="append", default=[], help="NAME=URL (repeatable; default: the env's)")
    ap.add_argument("--target", action="append", default=[], help="NAME=URL (repeatable; default: the env's)")
    ap.add_argument("--repo-dir", default=os.environ.get("MACTL_TEST_REPO_DIR", "/var/lib/mactl/local/repo"))
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--json", type=Path, help="also write every pair's result to this file")
    args = ap.parse_args()
    sources = _parse(args.source) if args.source else _from_env(SOURCES)
    targets = _parse(args.target) if args.target else _from_env(TARGETS)
    targets = [t for t in targets if t[1] or t[0] != "osknn"]  # the k-NN instance is optional
    repo_root = Path(args.repo_dir) / "matrix"
    repo_root.mkdir(parents=True, exist_ok=True)
    repo_root.chmod(0o777)
    rows: list[PairResult | tuple[str, str, str]] = []
    for sname, surl in sources:
        for tname, turl in targets:
            if not surl or not turl:
                rows.append((sname, tname, f"not run: {sname if not surl else tname} is not running"))
            elif surl.rstrip("/") == turl.rstrip("/"):
                rows.append((sname, tname, "not run: the same cluster"))
            else:
                print(f"{sname} → {tname} …", file=sys.stderr, flush=True)
                rows.append(run_pair(Cluster(sname, surl), Cluster(tname, turl), repo_root))
    print(table(rows, args.markdown))
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) if isinstance(r, PairResult) else list(r) for r in rows], indent=2, default=str)
        )
    return 1 if any(isinstance(r, PairResult) and not r.passed for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
