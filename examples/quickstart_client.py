"""A client of the quickstart's source that writes through the capture proxy.

It waits for the proxy (started by the capture stage) to answer, then for `--seconds`
creates products, updates existing ones and deletes a few of its own, so the snapshot
misses some writes and the replay stage has real traffic to carry over. Prints one JSON
line with what it did.

    python examples/quickstart_client.py --proxy http://127.0.0.1:19210 --index demo-products --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def _call(url: str, method: str, path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _call(url, "GET", "/") == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"the capture proxy at {url} did not answer within {timeout:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", default="http://127.0.0.1:19210")
    ap.add_argument("--index", default="demo-products")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0, help="writes per second")
    ap.add_argument("--wait", type=float, default=300.0, help="how long to wait for the proxy")
    args = ap.parse_args()
    url = args.proxy.rstrip("/")
    wait_for(url, args.wait)
    created = updated = deleted = 0
    i = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        _call(
            url,
            "PUT",
            f"/{args.index}/_doc/live-{i:05d}",
            {
                "sku": f"live-{i:05d}",
                "name": "live product",
                "price": float(i % 90) + 0.5,
                "stock": i,
                "tags": ["live"],
            },
        )
        created += 1
        if i % 3 == 0:
            _call(url, "POST", f"/{args.index}/_update/SKU-{i % 1000:05d}", {"doc": {"stock": 1000 + i}})
            updated += 1
        if i % 10 == 9:
            _call(url, "DELETE", f"/{args.index}/_doc/live-{i - 5:05d}")
            deleted += 1
        i += 1
        time.sleep(1.0 / args.rate)
    _call(url, "POST", f"/{args.index}/_refresh")
    print(json.dumps({"created": created, "updated": updated, "deleted": deleted}))


if __name__ == "__main__":
    main()
