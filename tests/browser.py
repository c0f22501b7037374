"""A headless Chromium driven over the DevTools protocol, for tests of web pages.

No browser driver package: Chromium from Debian (`apt-get install chromium`, see
.ci/run) is started with `--remote-debugging-port=0`, and this module speaks CDP to it
over a websocket with aiohttp (already installed with discord.py). The calls are
synchronous for tests; the websocket lives on an event loop in a thread of its own.

What a page logs as an error (console.error, an uncaught exception, a failed load) is
collected in `Browser.errors`, so a test can assert a page ran clean.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, executable: str, width: int = 1280, height: int = 860) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="moodmoji-chromium-"))
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._loaded = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._call(self._connect(self._page_socket()))
            for domain in ("Page", "Runtime", "Log", "DOM"):
                self.send(f"{domain}.enable")
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except Exception:
            self.close()
            raise

    # --- plumbing ------------------------------------------------------------------

    def _page_socket(self) -> str:
        port_file = self.profile / "DevToolsActivePort"
        give_up = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > give_up:
                raise BrowserError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def _call(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self, url: str) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._event(data["method"], data.get("params", {}))

    def _event(self, method: str, params: dict) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(
                "console: "
                + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(
                f"exception: {details.get('exception', {}).get('description') or details['text']}"
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")

    async def _send(self, method: str, params: dict) -> dict:
        message_id = next(self._ids)
        future = self._loop.create_future()
        self._waiting[message_id] = future
        await self._socket.send_str(
            json.dumps({"id": message_id, "method": method, "params": params})
        )
        return await future

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        answer = self._call(self._send(method, params or {}), timeout)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer["result"]

    # --- what tests use ------------------------------------------------------------

    def goto(self, url: str, timeout: float = 30) -> None:
        self._loaded.clear()
        self.send("Page.navigate", {"url": url})
        if not self._loaded.wait(timeout):
            raise BrowserError(f"{url} did not load in {timeout} s")

    def eval(self, expression: str):
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20, what: str | None = None):
        """Until `expression` is truthy; returns its value."""
        give_up = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > give_up:
                raise BrowserError(f"waited {timeout} s for {what or expression}")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def type(self, selector: str, text: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(text)}")

    def set_files(self, selector: str, paths: list[Path]) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        self.send("DOM.setFileInputFiles", {"nodeId": node, "files": [str(p) for p in paths]})

    def screenshot(self, path: Path, colours: int = 256) -> Path:
        """The whole page as a small PNG (a `colours`-colour palette)."""
        from io import BytesIO

        from PIL import Image

        height = self.eval("document.documentElement.scrollHeight")
        width = self.eval("document.documentElement.clientWidth")
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        image = Image.open(BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Octree keeps the few pixels of a small coloured label; median cut greys them.
        image.quantize(colours, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
        return path

    def close(self) -> None:
        async def shut() -> None:
            if getattr(self, "_socket", None) is not None:
                await self._socket.close()
            if getattr(self, "_session", None) is not None:
                await self._session.close()

        with contextlib.suppress(Exception):
            self._call(shut(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
