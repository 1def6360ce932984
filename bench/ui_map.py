"""How the console's map scales: page load of `mactl ui` at 30, 1k and 12k stages in headless Chromium.

Uses bench/plan_scale.py's seed-shaped config (6·N + 8 stages). For each size it starts
`mactl ui`, then measures in Chromium: the first load of `/` (server time to the first
byte, and until the page's load event, with the map laid out and coloured), a second
load (the layout cached), and one live refresh (`/api/status`). Past the console's
GROUP_ABOVE stages the map is the grouped view. The 30-stage run is the peer: each
figure is also given as a ratio against it, never as an absolute limit.

    python bench/ui_map.py            # 30, 1k, 12k
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ui"))

from plan_scale import write_config  # noqa: E402
from ui_helpers import chromium, console  # noqa: E402

SIZES = {"30": 4, "1k": 166, "12k": 2000}
TIMING_JS = """
const n = performance.getEntriesByType('navigation')[0];
return [n.responseStart - n.requestStart, n.loadEventEnd - n.startTime,
        document.querySelectorAll('#map g.stage[data-status]').length];
"""
STATUS_JS = """
const t0 = performance.now();
const r = await fetch('/api/status', {cache: 'no-store'});
await r.json();
return performance.now() - t0;
"""


def measure(folder: Path, indices: int) -> dict[str, float]:
    config = write_config(folder, indices)
    driver = chromium()
    try:
        with console(folder, "-c", str(config)) as ui:
            out: dict[str, float] = {}
            for run in ("first", "second"):
                driver.get(ui.base + "/")
                deadline = time.monotonic() + 120
                while driver.execute_script("return document.readyState") != "complete":
                    if time.monotonic() > deadline:
                        raise TimeoutError("page did not load")
                    time.sleep(0.05)
                server, load, nodes = driver.execute_script(TIMING_JS)
                out[f"{run}_server_ms"], out[f"{run}_load_ms"], out["nodes"] = server, load, nodes
            out["status_ms"] = driver.execute_async_script(
                "const done = arguments[0];" + "(async () => {" + STATUS_JS + "})().then(done);"
            )
            return out
    finally:
        driver.quit()


def main() -> None:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mactl-bench-ui-") as tmp:
        for name, indices in SIZES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            results[name] = measure(folder, indices)
    peer = results["30"]
    print(f"{'stages':>7} {'nodes':>6} {'1st server':>11} {'1st load':>9} {'2nd load':>9} {'refresh':>8}  ratios vs 30")
    for name, indices in SIZES.items():
        r = results[name]
        ratio = r["second_load_ms"] / peer["second_load_ms"]
        print(
            f"{6 * indices + 8:>7} {r['nodes']:>6.0f} {r['first_server_ms']:>9.0f}ms {r['first_load_ms']:>7.0f}ms "
            f"{r['second_load_ms']:>7.0f}ms {r['status_ms']:>6.0f}ms  load ×{ratio:.1f}"
        )


if __name__ == "__main__":
    main()
