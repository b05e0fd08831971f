"""A page seen in a real browser: headless Chromium driven over the DevTools protocol (websocket-client).

`look(url, screenshot)` loads the page, waits until it and its images have loaded, saves a PNG of the whole page
and returns each image's source with whether it loaded (complete, with a width: a broken image has none).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

from conftest import free_port, limit

# No background traffic: on a closed network Chromium's own connections are refused, many at a time.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
]
IMAGES = "JSON.stringify([...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]))"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def look(url: str, screenshot: Path) -> list[tuple[str, bool]]:
    port = free_port()
    # Chromium's helper processes (renderer, crash handler) can still write to the profile after the browser
    # process is gone: they are ended with it (one process group), and what they leave does not fail the test.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [chromium(), *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            socket = websocket.create_connection(_page_socket(port, browser), timeout=limit(60), suppress_origin=True)
            page = _Page(socket)
            page.call("Page.navigate", url=url)
            deadline = time.monotonic() + limit(60)
            while page.evaluate("document.readyState") != "complete":
                assert time.monotonic() < deadline, f"{url} did not finish loading"
                time.sleep(0.2)
            size = page.evaluate(
                "JSON.stringify([document.documentElement.scrollWidth, document.documentElement.scrollHeight])"
            )
            width, height = json.loads(size)
            page.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
            shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return [tuple(image) for image in json.loads(page.evaluate(IMAGES))]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=limit(30))


def _page_socket(port: int, browser: subprocess.Popen) -> str:
    """The DevTools websocket of the browser's first page, once it listens."""
    deadline = time.monotonic() + limit(60)
    while True:
        assert browser.poll() is None, f"chromium exited with {browser.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        assert time.monotonic() < deadline, "chromium's DevTools port never answered"
        time.sleep(0.2)


class _Page:
    def __init__(self, socket: websocket.WebSocket):
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:  # events arrive between the answers; only this call's answer counts
            message = json.loads(self.socket.recv())
            if message.get("id") == call_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")
