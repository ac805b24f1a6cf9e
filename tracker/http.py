"""The HTTP shell of the tracker: /announce, /scrape (BEP 3, 48), /stats (JSON) and / (a live
page of the swarms, with its script at /page.js: :mod:`tracker.page`), as an asyncio protocol
over httptools (llhttp, the parser behind Node.js and uvicorn).

Why not aiohttp here: an announce is a few dict lookups and one small bencoded answer, so the
per-request cost of a full framework (request objects, header multidicts, tasks) is most of the
work. This shell does only what a tracker needs: the raw request target (``info_hash`` and
``peer_id`` are arbitrary bytes under their percent-encoding), the client's address,
keep-alive and pipelining, and bounds on what a client may send.

Every malformed announce gets HTTP 200 with a bencoded failure reason, which is what clients
read and show; unknown paths get 404; a request that is not HTTP gets 400 and a close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import cast

import httptools

from tracker import page, protocol
from tracker.errors import RequestError
from tracker.state import TrackerState

__all__ = ["HTTPTracker", "HTTPTrackerProtocol", "answer_bytes"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
"""Most bytes one request (line, headers and any body) may take before the connection closes."""
MAX_TARGET = 2 * protocol.MAX_QUERY + 1024
"""Longer request targets are not kept; such an announce gets 'query string too long'."""
IDLE_TIMEOUT = 60.0
"""Seconds a keep-alive connection may sit idle before it is closed."""
MAX_CONNECTIONS = 20_000
STATS_REUSE = 20
"""A /stats body is reused for this many times as long as it took to make (at most 1 s)."""

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}
_BENCODED = b"text/plain"
_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"
_SCRIPT = b"text/javascript; charset=utf-8"
# The page runs only its own script (/page.js): an injected inline script or event handler
# would not run even if escaping failed.
_CSP = (
    b"Content-Security-Policy: default-src 'none'; script-src 'self'; connect-src 'self'; "
    b"style-src 'unsafe-inline'; img-src 'self'\r\n"
)


def _head(status: int, content_type: bytes, length: int, keep_alive: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status,
        _REASONS[status],
        content_type,
        length,
        _CSP if content_type is _HTML else b"",
        b"" if keep_alive else b"Connection: close\r\n",
    )


_OK_BENCODED = {
    keep: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%sContent-Length: "
    % (b"" if keep else b"Connection: close\r\n")
    for keep in (False, True)
}


def answer_bytes(status: int, content_type: bytes, body: bytes, keep_alive: bool) -> bytes:
    """The whole answer: status line, headers and *body*."""
    if status == 200 and content_type is _BENCODED:  # every announce: no formatting
        return b"".join((_OK_BENCODED[keep_alive], str(len(body)).encode(), b"\r\n\r\n", body))
    return _head(status, content_type, len(body), keep_alive) + body


class HTTPTracker:
    """The request handler for one :class:`TrackerState`: a request target in, an answer out.

    No sockets here: :meth:`respond` is what the protocol calls, and what tests can call.
    """

    def __init__(
        self,
        state: TrackerState,
        interval: int,
        min_interval: int,
        allow_ip_param: bool = False,
        names: Mapping[bytes, str] | None = None,
    ) -> None:
        self.state = state
        self.interval = interval
        self.min_interval = min_interval
        self.allow_ip_param = allow_ip_param
        self.names: Mapping[bytes, str] = names or {}  # info-hash -> the torrent's name
        self.connections: set[HTTPTrackerProtocol] = set()
        self._stats: tuple[float, bytes] | None = None  # (reused until, body)

    def respond(self, target: bytes, remote: str) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for a GET of the raw *target* from *remote*."""
        path, _, query = target.partition(b"?")
        if not path.startswith(b"/"):
            # absolute-form (a request through a proxy): keep only the path and the query
            try:
                url = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                return 400, _BENCODED, b"bad request target\n"
            path, query = url.path or b"/", url.query or b""
        try:
            if path == b"/announce":
                return 200, _BENCODED, self.announce(query, remote)
            if path == b"/scrape":
                return 200, _BENCODED, self.scrape(query)
            if path == b"/stats":
                return 200, _JSON, self.stats_body()
            if path == b"/":
                return 200, _HTML, self.page().encode()
            if path == b"/page.js":
                return 200, _SCRIPT, page.SCRIPT.encode()
        except Exception:  # a bug: log it, but a client still gets an answer it can read
            log.exception("tracker request %r failed", path[:100])
            return 200, _BENCODED, protocol.failure("internal tracker error")
        return 404, _BENCODED, b"not found\n"

    def stats_body(self) -> bytes:
        """``/stats`` as JSON. Every open page asks for it each second, and on a big tracker
        it takes a while (100,000 torrents: about 40 ms), so a body is reused for
        :data:`STATS_REUSE` times as long as it took to make (at most a second): however many
        pages are open, ``/stats`` takes at most about 5% of the tracker's time, and a small
        tracker's answer is fresh."""
        now = time.monotonic()
        cached = self._stats
        if cached is not None and now < cached[0]:
            return cached[1]
        body = json.dumps(page.snapshot(self.state, self.names)).encode()
        done = time.monotonic()
        self._stats = (done + min(1.0, STATS_REUSE * (done - now)), body)
        return body

    def announce(self, query: bytes, remote: str) -> bytes:
        """The bencoded answer to an announce with the raw *query* from address *remote*."""
        try:
            a, compact, no_peer_id = protocol.parse_announce(
                query, remote, allow_ip_param=self.allow_ip_param
            )
            if compact:
                packed = self.state.announce_compact(a)
                return protocol.compact_response(packed, self.interval, self.min_interval)
            result = self.state.announce(a)
        except RequestError as exc:
            return protocol.failure(str(exc))
        return protocol.announce_response(
            result, self.interval, self.min_interval, compact, no_peer_id
        )

    def scrape(self, query: bytes) -> bytes:
        """The bencoded answer to a scrape (BEP 48)."""
        try:
            hashes = protocol.parse_scrape(query)
        except RequestError as exc:
            return protocol.failure(str(exc))
        return protocol.scrape_response(self.state.scrape(hashes))

    def page(self) -> str:
        """The live page at ``/`` (:mod:`tracker.page`): totals, then each torrent's swarm and
        peers, named where the tracker was told the torrent's name (``names``)."""
        return page.render(page.snapshot(self.state, self.names))

    def sweep_idle(self, now: float) -> None:
        """Close keep-alive connections that have been idle longer than :data:`IDLE_TIMEOUT`."""
        for conn in [c for c in self.connections if now - c.last_active > IDLE_TIMEOUT]:
            conn.close()


class HTTPTrackerProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer each in order."""

    __slots__ = (
        "handler",
        "parser",
        "transport",
        "remote",
        "target",
        "target_len",
        "received",
        "last_active",
        "paused",
    )

    def __init__(self, handler: HTTPTracker) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.target: list[bytes] = []
        self.target_len = 0
        self.received = 0
        self.last_active = time.monotonic()
        self.paused = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport, but has its methods)
        self.transport = t = cast(asyncio.Transport, transport)
        if len(self.handler.connections) >= MAX_CONNECTIONS:
            t.abort()
            return
        self.handler.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.remote = protocol.normalize_ip(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self.received += len(data)
        if self.received > MAX_REQUEST_BYTES:
            self._error(400)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._error(400)
        except httptools.HttpParserError:
            self._error(400)

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.target = []
        self.target_len = 0

    def on_url(self, url: bytes) -> None:
        self.target_len += len(url)
        if self.target_len <= MAX_TARGET:
            self.target.append(url)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self.received = 0
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        if method not in (b"GET", b"HEAD"):
            status, ctype, body = 405, _BENCODED, b"only GET and HEAD\n"
        elif self.target_len > MAX_TARGET:
            status, ctype, body = 200, _BENCODED, protocol.failure("query string too long")
        else:
            target = self.target[0] if len(self.target) == 1 else b"".join(self.target)
            status, ctype, body = self.handler.respond(target, self.remote)
        if method == b"HEAD":
            transport.write(_head(status, ctype, len(body), keep_alive))
        else:
            transport.write(answer_bytes(status, ctype, body, keep_alive))
        if not keep_alive:
            transport.close()

    # helpers

    def _error(self, status: int) -> None:
        if self.transport is not None and not self.transport.is_closing():
            body = b"bad request\n"
            self.transport.write(_head(status, _BENCODED, len(body), False) + body)
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
