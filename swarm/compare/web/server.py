"""The page of ``swarm compare --web``: an aiohttp server inside compare's own process.

``/`` is the page, ``/compare.js`` and ``/compare.css`` its script and style (files of the
package, ``static/``: no build step, nothing from elsewhere), ``/events`` the run as it goes
(server-sent events, one JSON object each, see :mod:`~swarm.compare.web.model`), and at the end
``/chart.png`` (the chart compare drew) and ``/result.json`` (what ``--json`` prints). Every
answer carries a Content-Security-Policy that runs only the page's own script; the script puts
every figure and name in the page as text.

At the end of the run the server tells each open page the final state, waits (at most
:data:`LINGER` seconds) until they have fetched the chart and the JSON, tells them the run is
over, and closes: the page keeps what it has. Stopped before the end (Ctrl-C), it closes the
streams without a word, and the page says it is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from swarm.compare.web.model import SAMPLE_EVERY, Cursor, LiveRun
from swarm.errors import UsageError

log = logging.getLogger(__name__)

LINGER = 3.0  # seconds the server waits at the end for open pages to fetch the chart and JSON
TICK = 0.5  # seconds between two messages to a page (a comment when there is nothing new)
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_FILES = {"/": "index.html", "/compare.js": "compare.js", "/compare.css": "compare.css"}


def parse_address(text: str) -> tuple[str, int]:
    """``--web [HOST:]PORT``: the host (127.0.0.1 if left out) and the port (0: any)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--web takes [HOST:]PORT, e.g. 8080 or 127.0.0.1:0, not {text!r}")
    return host, int(port)


def _asset(name: str) -> bytes:
    return (resources.files("swarm.compare.web") / "static" / name).read_bytes()


class WebPage:
    """The server of one run's page; :meth:`start`, then :meth:`close` whatever happens."""

    def __init__(self, live: LiveRun, host: str, port: int) -> None:
        self.live = live
        self.host, self.port = host, port
        self.url = ""
        self.chart: Path | None = None
        self.result: bytes | None = None
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ended = False  # the run is over: pages hear 'end' before their stream closes
        self._streams = 0
        self._fetched: dict[str, int] = {"/chart.png": 0, "/result.json": 0}
        self._pages_at_end = 0
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Listen; the page's URL. A port in use is a one-line error (exit 2)."""
        app = web.Application()
        app.on_response_prepare.append(_headers)
        for path in _FILES:
            app.router.add_get(path, self._file)
        app.router.add_get("/events", self._events)
        app.router.add_get("/chart.png", self._chart)
        app.router.add_get("/result.json", self._json)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise UsageError(f"--web {self.host}:{self.port}: {exc.strerror or exc}") from None
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"
        self._sampler = asyncio.ensure_future(self._sample())
        return self.url

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            self.live.sample()

    def finish(self, final: dict[str, Any], chart: Path | None, result: Any) -> None:
        """The run is over: its table (see :func:`~swarm.compare.web.model.table_data`), the
        chart's file (None: none drawn) and the JSON object."""
        self.chart = chart if chart is not None and chart.is_file() else None
        self.result = json.dumps(result, indent=1).encode()
        final = {**final, "chart": self.chart is not None, "json": True}
        self._pages_at_end = self._streams
        self.live.finish(final)

    async def linger(self) -> None:
        """Until every page open at the end has fetched the chart and the JSON, at most
        :data:`LINGER` seconds."""
        wanted = {"/result.json": self._pages_at_end}
        if self.chart is not None:
            wanted["/chart.png"] = self._pages_at_end
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER):
                while any(self._fetched[p] < n for p, n in wanted.items()):
                    await asyncio.sleep(0.05)

    async def close(self, ended: bool) -> None:
        """Close the streams (*ended*: telling the pages the run is over) and the server."""
        self._ended = ended
        self.live.over = True
        self._closing.set()
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        name = _FILES[request.path]
        body = await asyncio.to_thread(_asset, name)
        kind = _TYPES[Path(name).suffix]
        return web.Response(body=body, content_type=kind, charset="utf-8")

    async def _chart(self, request: web.Request) -> web.StreamResponse:
        if self.chart is None:
            raise web.HTTPNotFound(text="no chart (yet)")
        self._fetched["/chart.png"] += 1
        return web.FileResponse(self.chart, headers={"Content-Type": "image/png"})

    async def _json(self, request: web.Request) -> web.Response:
        if self.result is None:
            raise web.HTTPNotFound(text="the run is not over yet")
        self._fetched["/result.json"] += 1
        return web.Response(body=self.result, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        cursor = Cursor()
        self._streams += 1
        try:
            while True:
                closing = self._closing.is_set()
                msgs = self.live.messages(cursor)
                data = "".join(f"data: {json.dumps(m, separators=(',', ':'))}\n\n" for m in msgs)
                if closing and self._ended:
                    data += 'data: {"type":"end"}\n\n'
                await resp.write((data or 'data: {"type":"ping"}\n\n').encode())
                if closing:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK):
                        await self._closing.wait()
        except ConnectionError:
            log.debug("a page's stream closed")
        finally:
            self._streams -= 1
        return resp


async def _headers(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers.setdefault("Cache-Control", "no-store")
