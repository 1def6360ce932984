"""Helpers of the console's browser tests: run `mactl ui` as a user would, and drive headless Chromium.

A module of its own (not conftest) so both test files and the conftest can import it.
Chromium and its driver come from Debian's packages (`apt-get install chromium
chromium-driver`, done by scripts/test); Selenium is pointed at that driver, so nothing is
downloaded at test time.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The map's colours for a stage's status (mactl.graph.render.KNOWN_STYLES' fills), as the browser reports them.
FILL = {
    "pending": "rgb(255, 255, 255)",
    "running": "rgb(227, 242, 253)",
    "complete": "rgb(212, 237, 218)",
    "awaiting_approval": "rgb(237, 231, 246)",
    "rolled_back": "rgb(238, 238, 238)",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shots_dir() -> Path:
    """Where the tests save their screenshots (MACTL_UI_SHOTS, or a folder under the temp dir)."""
    folder = Path(os.environ.get("MACTL_UI_SHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "mactl-ui-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class RunningConsole:
    proc: subprocess.Popen[str]
    url: str  # the printed link (with ?token= when bound elsewhere)
    base: str  # http://host:port
    token: str | None


@contextmanager
def console(
    cwd: Path, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[RunningConsole]:
    """`mactl ui ARGS` in `cwd` until the block ends; waits for its printed link."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mactl", "ui", "--port", str(port), "--host", host, "--poll-ms", "300", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://\S+)", line)
        assert found, f"mactl ui printed {line!r}; rest: {proc.stdout.read() if proc.poll() is not None else ''}"
        url = found.group(1)
        token = re.search(r"token=(\S+)", url)
        base = url.split("/?")[0].rstrip("/")
        deadline = time.monotonic() + 30
        while True:  # the link is printed just before the server starts answering
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield RunningConsole(proc, url, base, token.group(1) if token else None)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium() -> Any:
    """Headless Chromium from Debian's packages, driven by its own chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


MAP_NODES_JS = """
return Array.from(document.querySelectorAll('#map g.stage')).map(g => [
  g.getAttribute('data-address'), g.getAttribute('data-status'),
  getComputedStyle(g.querySelector('path, polygon')).fill]);
"""


def map_nodes(driver: Any) -> dict[str, tuple[str, str]]:
    """address → (status, fill) of every stage node the map in `driver` draws."""
    return {a: (s, f) for a, s, f in driver.execute_script(MAP_NODES_JS)}


def wait_for(driver: Any, css: str, text: str = "", timeout: float = 30) -> Any:
    """The element `css` once it is on the page (and holds `text`): pages load and refresh asynchronously."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if text in element.text:
                return element
        return False

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(found)
