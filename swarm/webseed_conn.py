"""One keep-alive HTTP/1.1 connection to a web seed, its answers' bodies read straight into
the caller's buffers (an :class:`asyncio.BufferedProtocol`): a web seed's bytes go from the
socket into the piece they belong to in one copy, the kernel's.

Why not aiohttp: its body path (``StreamReader``: a ``bytes`` per read, queued, then copied
into the piece) and its import were, with uvloop's reads, most of a web seed download's time
on the event loop (bench/README.md, webseed). An answer's head is parsed by httptools
(llhttp), as :mod:`swarm.http_get` parses its own; nothing here reads HTTP by hand. A body
framed by ``Content-Length`` is then just a count of bytes after the head, read into the
buffers a :class:`Sink` gives; any other (chunked, or to the end of the connection) goes on
through the parser, its bytes copied into the sink. One request at a time; several range
requests on one connection while the server keeps it alive.

Failures are :class:`ConnError` (refused, reset, closed early, not HTTP) or
:class:`TimeoutError` (connecting, or a silence longer than the time limit while an answer is
awaited: our own pauses for a rate cap do not count).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httptools

from swarm import http_get

__all__ = ["Conn", "ConnError", "Head", "Sink", "connect"]

HEAD_READ = 16 << 10  # a read while a head is awaited (the body's first bytes come with it)


class ConnError(Exception):
    """The connection failed or the server's answer is not HTTP we can read."""


class Sink(Protocol):
    """Where a body's bytes go."""

    def buffer(self, limit: int) -> memoryview:
        """Room for at most *limit* (> 0) next bytes of the body (not empty)."""
        ...

    def written(self, n: int) -> None:
        """*n* bytes landed at the start of the room :meth:`buffer` gave last."""
        ...

    @property
    def done(self) -> bool:
        """Nothing more of the body is wanted (the connection then closes)."""
        ...


def copy_into(sink: Sink, data: bytes | memoryview) -> None:
    """Put *data* into *sink* as if it had been read there."""
    view = memoryview(data)
    while view and not sink.done:
        room = sink.buffer(len(view))
        k = len(room)
        room[:] = view[:k]
        sink.written(k)
        view = view[k:]


class _Headers(dict[str, str]):
    """Header values by lower-cased name; ``get`` in any case (check_response's view)."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(slots=True)
class Head:
    """An answer's status and headers, and how its body is framed."""

    status: int
    headers: _Headers = field(default_factory=_Headers)
    length: int | None = None  # Content-Length, when it alone frames the body
    keep_alive: bool = True


async def connect(
    target: http_get.Target, timeout: float, throttle: Callable[[int], float]
) -> Conn:
    """A connection to *target*'s host (TLS for https), within *timeout* seconds."""
    loop = asyncio.get_running_loop()
    context = http_get.default_ssl_context() if target.https else None
    conn = Conn(timeout, throttle)
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: conn,
                target.host,
                target.port,
                ssl=context,
                server_hostname=target.host if context else None,
            )
    except (OSError, ValueError) as exc:
        raise ConnError(http_get.describe(exc, target)) from None
    conn.key = (target.https, target.host, target.port)
    return conn


class Conn(asyncio.BufferedProtocol):
    """One connection; :meth:`send` a request, then :meth:`read_body` (or :meth:`close`)."""

    def __init__(self, timeout: float, throttle: Callable[[int], float]) -> None:
        self.timeout = timeout
        self.throttle = throttle
        self.key: tuple[bool, str, int] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # it carried an answer before (the server may have closed it since)
        self._loop = asyncio.get_running_loop()
        self._head_buf = memoryview(bytearray(HEAD_READ))
        self._mode = "idle"  # head, body (counted), parse (through httptools), idle
        self._waiter: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head = Head(0)
        self._head_size = 0
        self._early: list[bytes] = []  # body bytes that came with the head
        self._head_done = self._message_done = False
        self._sink: Sink | None = None
        self._left = 0  # body bytes still wanted (counted mode)
        self._last = 0.0  # when bytes last came
        self._paused = False
        self._resume_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio's side ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._mode == "parse" and self._head_done and self._head.length is None:
            self._message_done = True  # a body that ends with the connection
            self._finish()
        elif self._mode != "idle":
            what = "in the middle of the answer" if self._head_done else "without an answer"
            self._fail(ConnError(f"the server closed the connection {what}"))
        self._cancel_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._mode == "body" and self._sink is not None:
            return self._sink.buffer(self._left)
        return self._head_buf

    def buffer_updated(self, nbytes: int) -> None:
        self._last = self._loop.time()
        if self._mode == "body":
            assert self._sink is not None
            self._left -= nbytes
            self._sink.written(nbytes)
            self._throttle(nbytes)
            if not self._left or self._sink.done:
                self._finish()
        elif self._mode in ("head", "parse"):
            self._feed(self._head_buf[:nbytes])
        else:
            self._fail(ConnError("the server sent bytes nobody asked for"))

    def eof_received(self) -> bool:
        return False  # close: connection_lost says what it means

    # -- requests ----------------------------------------------------------------------------

    async def send(self, request: bytes) -> Head:
        """Send *request* (a whole head, no body) and wait for the answer's head."""
        if self.closed or self.transport is None:
            raise ConnError("the server closed the connection")
        self.used = True
        self._parser = httptools.HttpResponseParser(self)
        self._head, self._head_size, self._early = Head(0), 0, []
        self._head_done = self._message_done = False
        self._mode = "head"
        self._resume()  # paused after the last head (its body may have come with it)
        self.transport.write(request)
        await self._wait()
        return self._head

    async def read_body(self, sink: Sink, nbytes: int) -> None:
        """The next *nbytes* of the body into *sink* (fewer if it is :attr:`Sink.done`
        first); a body longer than that leaves the connection unusable (closed)."""
        early, self._early = b"".join(self._early), []
        self._sink = sink
        head = self._head
        if early:
            copy_into(sink, memoryview(early)[:nbytes])
        have = min(len(early), nbytes)
        self._throttle(have)
        if head.length is not None:
            self._left = min(nbytes, head.length) - have
            if head.length > nbytes:
                head.keep_alive = False
            if self._left > 0 and not sink.done:
                self._mode = "body"
                await self._read()
        elif not self._message_done and not sink.done:
            self._left = nbytes - have
            self._mode = "parse"
            await self._read()
        self._sink = None
        if self._left > 0:  # stopped early, or the answer was short
            self.close()
            if not sink.done:
                raise ConnError(f"the answer ended {self._left} bytes short")
        elif not head.keep_alive or (head.length is None and not self._message_done):
            self.close()  # more of the body follows than we read

    def close(self) -> None:
        """Close now (what is under way is left)."""
        self._mode = "idle"
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
        self._cancel_timer()

    @property
    def reusable(self) -> bool:
        return not self.closed and self._mode == "idle" and self._head.keep_alive

    # -- httptools' callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer: the real one follows
        self._head_done = True
        h = self._head
        h.status = status
        h.keep_alive = self._parser.should_keep_alive()
        length = h.headers.get("content-length")
        if length is not None and length.strip().isdigit() and "transfer-encoding" not in h.headers:
            h.length = int(length)

    def on_body(self, body: bytes) -> None:
        if self._mode == "head":
            self._early.append(body)
        elif self._sink is not None and self._left > 0:
            part = body[: self._left]
            self._left -= len(part)
            copy_into(self._sink, part)
            self._throttle(len(part))

    def on_message_complete(self) -> None:
        if not self._head_done:  # a 1xx: parse the next head afresh
            self._head = Head(0)
            return
        self._message_done = True

    # -- inside ------------------------------------------------------------------------------

    def _feed(self, data: memoryview) -> None:
        assert self._parser is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnError("the server switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(ConnError(f"the answer is not HTTP ({exc})"))
            return
        if self._mode == "head":
            self._head_size += len(data)
            if self._head_done:
                assert self.transport is not None
                self.transport.pause_reading()  # until read_body says where the body goes
                self._mode = "idle"
                self._finish()
            elif self._head_size > http_get.MAX_HEAD:
                self._fail(ConnError("the answer's head is too long"))
        elif self._message_done or (self._sink is not None and self._sink.done):
            self._finish()

    async def _read(self) -> None:
        if self.closed:
            self._mode = "idle"
            raise ConnError("the server closed the connection in the middle of the answer")
        self._resume()
        await self._wait()

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        self._last = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._last + self.timeout, self._watch)
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _finish(self) -> None:
        self._mode = "idle"
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _watch(self) -> None:
        """A time limit on silence while an answer is awaited."""
        self._timer = None
        if self._waiter is None:
            return
        now = self._loop.time()
        if self._paused:
            self._last = now
        elif now - self._last >= self.timeout:
            self._fail(TimeoutError())
            return
        self._timer = self._loop.call_at(self._last + self.timeout, self._watch)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _throttle(self, n: int) -> None:
        """A rate cap: reading stops for the delay the bytes cost (the server slows to it)."""
        delay = self.throttle(n)
        if delay <= 0 or self.transport is None:
            return
        now = self._loop.time()
        self._resume_at = max(self._resume_at, now) + delay
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()
            self._loop.call_at(self._resume_at, self._unpause)

    def _unpause(self) -> None:
        if self._loop.time() < self._resume_at:
            self._loop.call_at(self._resume_at, self._unpause)
            return
        self._paused = False
        self._last = self._loop.time()
        if self._mode != "idle":  # a head awaited counts too: send() could not resume it
            self._resume()

    def _resume(self) -> None:
        if self.transport is not None and not self.closed and not self._paused:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
