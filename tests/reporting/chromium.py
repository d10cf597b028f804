"""Open a page in headless Chromium and ask it, over the DevTools protocol, what a reader would see.

Chromium is found on the PATH (``chromium``, ``chromium-browser``, ``google-chrome``) or installed
with ``apt-get install -y chromium`` when the tests run as root on a machine with apt (a fresh CI
runner). Only where neither can be is the browser test skipped, and never under ``CI=true``.
The protocol is spoken over a websocket with aiohttp (a dev dependency): no playwright or selenium.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from matplotlib.image import imread

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Each chart's div, the data plotly drew in it: traces, and points per trace (_length: what plotly counted).
CHARTS_JS = """JSON.stringify([...document.querySelectorAll('div[id^="figure-"]')].map(d => ({
  id: d.id, plotted: d.classList.contains('js-plotly-plot'), svgs: d.querySelectorAll('svg.main-svg').length,
  traces: (d._fullData || []).map(t => ({type: t.type, name: t.name, points: t._length === undefined ? null : t._length}))
})))"""


def find_chromium() -> str:
    """The browser's path; installs Debian's ``chromium`` package where it can; else skips, or fails under CI."""
    found = next((path for name in NAMES if (path := shutil.which(name))), None)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], check=False, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = next((path for name in NAMES if (path := shutil.which(name))), None)
        if found:
            return found
    reason = "no Chromium on this machine (chromium on the PATH), and it cannot be installed (needs root and apt-get)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class PageView:
    """What the browser saw: errors thrown or logged, each chart's traces, and a screenshot (RGB floats)."""

    errors: list[str] = field(default_factory=list)
    charts: list[dict] = field(default_factory=list)
    screenshot: np.ndarray | None = None


def open_page(path: Path, timeout: float = 45.0, width: int = 1280, height: int = 2400) -> PageView:
    return asyncio.run(asyncio.wait_for(_open(find_chromium(), Path(path).resolve(), width, height), timeout))


async def _open(chromium: str, path: Path, width: int, height: int) -> PageView:
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            port = await _devtools_port(process)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                    target = next(t for t in await answer.json() if t["type"] == "page")
                async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                    return await _inspect(_Protocol(socket), path, width, height)
        finally:
            process.kill()
            await process.wait()


async def _devtools_port(process) -> int:
    while line := await process.stderr.readline():
        if match := re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line):
            return int(match.group(1))
    raise RuntimeError("Chromium exited before it opened its DevTools port")


class _Protocol:
    """Commands and their answers over one page's websocket; events kept as they come."""

    def __init__(self, socket) -> None:
        self.socket, self.events, self._ids = socket, [], itertools.count(1)

    async def send(self, method: str, **params) -> dict:
        number = next(self._ids)
        await self.socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = json.loads((await self.socket.receive()).data)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def until(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(json.loads((await self.socket.receive()).data))


async def _inspect(protocol: _Protocol, path: Path, width: int, height: int) -> PageView:
    for domain in ("Runtime", "Log", "Page"):
        await protocol.send(f"{domain}.enable")
    await protocol.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    await protocol.send("Page.navigate", url=path.as_uri())
    await protocol.until("Page.loadEventFired")
    # Plotly draws in the page's scripts; a frame later every chart is in place.
    await protocol.send("Runtime.evaluate", expression="new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))",
                        awaitPromise=True)
    charts = json.loads((await protocol.send("Runtime.evaluate", expression=CHARTS_JS, returnByValue=True))["result"]["value"])
    shot = await protocol.send("Page.captureScreenshot", format="png")
    view = PageView(charts=charts, screenshot=imread(io.BytesIO(base64.b64decode(shot["data"])), format="png")[..., :3])
    for event in protocol.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            view.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            view.errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            view.errors.append(params["entry"].get("text", ""))
    return view
