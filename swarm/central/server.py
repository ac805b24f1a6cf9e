"""``swarm serve-central``: a file, or every file of a folder, over HTTP/1.1 (aiohttp).

GET and HEAD; one byte range per request (RFC 9110 §14: 206 with Content-Range, 416 with
``bytes */LEN``; a malformed or multi-range ``Range`` is ignored and answered with the whole
file, as the RFC allows); ETag, Last-Modified, If-None-Match and If-Range; an index page at
``/``.

Bodies go out with ``os.sendfile`` on the connection's socket on any event loop (asyncio's
``loop.sendfile`` is missing from uvloop, whose fallback copies through Python at half the
speed). With ``max_upload_rate`` the body is sent in 64 KiB slices, each after the one
:class:`~swarm.ratelimit.RateLimiter` shared by every connection allows it, so the server's
total upload is capped.

Only the served files can be reached: the raw request path is split on ``/`` before it is
percent-decoded, and a segment that is empty, ``.``, ``..``, hidden, or decodes to something
holding ``/``, ``\\`` or NUL is a 404; so is a file whose real path (symlinks followed) leaves
the folder.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import mimetypes
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import hdrs, web

from swarm.central import CentralError
from swarm.errors import UsageError
from swarm.ratelimit import RateLimiter
from swarm.units import format_size

__all__ = ["CentralServer", "Plan", "parse_range", "plan_response", "serve_central"]

log = logging.getLogger(__name__)

THROTTLED_SLICE = 64 * 1024  # bytes sent per token-bucket grant when the upload is capped
SENDFILE_MAX = 1 << 30  # per os.sendfile call; the kernel stops at the socket buffer anyway

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


# -- the protocol as data: which status, which bytes, which headers --------------------------


def parse_range(value: str | None, size: int) -> tuple[int, int] | None | bool:
    """The inclusive byte span ``(first, last)`` a ``Range`` header asks for in a
    representation of *size* bytes; ``None`` when the header is absent, malformed or names
    several ranges (to be ignored: the whole file is sent); ``False`` when it is a valid
    single range that no byte satisfies (416)."""
    if value is None:
        return None
    match = _RANGE_RE.match(value)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        if last_text:
            last = int(last_text)
            if last < first:
                return None  # syntactically invalid (RFC 9110 §14.1.1): ignore
            last = min(last, size - 1)
        else:
            last = size - 1
        if first >= size:
            return False
        return first, last
    if not last_text:
        return None  # "bytes=-"
    suffix = int(last_text)
    if suffix == 0 or size == 0:
        return False
    return max(0, size - suffix), size - 1


def make_etag(size: int, mtime_ns: int) -> str:
    """A strong entity tag from the file's size and modification time (aiohttp's form)."""
    return f'"{mtime_ns:x}-{size:x}"'


def _etag_in(etag: str, header: str) -> bool:
    """Whether the If-None-Match list *header* names *etag* (weak comparison) or is ``*``."""
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == opaque for t in header.split(","))


@dataclass(slots=True, frozen=True)
class Plan:
    """What to answer: the status, the headers, and the span of the file to send."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    first: int = 0
    length: int = 0  # bytes of the file to send (0 for HEAD, 304, 416)


def plan_response(
    method: str, request_headers: Mapping[str, str], size: int, mtime_ns: int, content_type: str
) -> Plan:
    """Decide the response to a GET or HEAD of a file of *size* bytes last modified at
    *mtime_ns* (ns since the epoch), given the request's headers."""
    etag = make_etag(size, mtime_ns)
    headers = {
        hdrs.ETAG: etag,
        hdrs.LAST_MODIFIED: formatdate(mtime_ns / 1e9, usegmt=True),
        hdrs.ACCEPT_RANGES: "bytes",
    }
    if_none_match = request_headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None and _etag_in(etag, if_none_match):
        return Plan(304, headers)
    span = parse_range(request_headers.get(hdrs.RANGE), size)
    if span is not None and not _if_range_holds(request_headers.get(hdrs.IF_RANGE), etag, mtime_ns):
        span = None  # the client's copy is stale: send the whole current file
    headers[hdrs.CONTENT_TYPE] = content_type
    if span is False:
        headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
        return Plan(416, headers)
    status, first, last = (200, 0, size - 1) if span is None else (206, *span)
    if status == 206:
        headers[hdrs.CONTENT_RANGE] = f"bytes {first}-{last}/{size}"
    length = last - first + 1
    headers[hdrs.CONTENT_LENGTH] = str(length)
    return Plan(status, headers, first, 0 if method == "HEAD" else length)


def _if_range_holds(if_range: str | None, etag: str, mtime_ns: int) -> bool:
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag  # strong comparison: a weak tag never matches
    try:
        date = parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return int(date.timestamp()) == mtime_ns // 1_000_000_000


def split_request_path(raw_path: str) -> tuple[str, ...] | None:
    """The decoded segments of a raw request target (``/a/b%20c?q``), or None if any segment
    could lead anywhere but to a plain name inside the served folder."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None  # absolute-form or asterisk-form targets: not ours
    if path == "/":
        return ()
    parts: list[str] = []
    for segment in path[1:].split("/"):
        try:
            name = urllib.parse.unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return None
        if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
            return None  # also covers "." and "..", hidden files, and encoded separators
        parts.append(name)
    return tuple(parts)


# -- the server -----------------------------------------------------------------------------


class CentralServer:
    """Serves *path* (a file, or every file of a folder) on *host*:*port* (0: any free port),
    optionally with the total upload capped at *max_upload_rate* bytes per second."""

    def __init__(
        self,
        path: str | Path,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_upload_rate: int | None = None,
    ) -> None:
        p = Path(path)
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        if not (p.is_file() or p.is_dir()):
            raise UsageError(f"{p}: not a regular file or folder")
        # One file: it alone, under its own name, wherever a symlink to it leads.
        self._only: Path | None = p.resolve() if p.is_file() else None
        self._only_name = p.name
        self._root = p.parent.resolve() if self._only else p.resolve()
        self.host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._limiter = RateLimiter(max_upload_rate)
        self._runner: web.AppRunner | None = None

    # -- which files ---------------------------------------------------------------------

    def resolve(self, parts: tuple[str, ...]) -> Path | None:
        """The real path of the served file named by URL segments *parts*, or None."""
        if self._only is not None:
            return self._only if parts == (self._only_name,) else None
        if not parts:
            return None
        try:
            real = Path(os.path.realpath(self._root.joinpath(*parts), strict=True))
            if not real.is_relative_to(self._root) or not stat.S_ISREG(real.stat().st_mode):
                return None
        except (OSError, ValueError):
            return None
        return real

    def files(self) -> list[tuple[str, int]]:
        """Every served file as (URL path relative to the root, size), sorted by path."""
        if self._only is not None:
            try:
                return [(self._only_name, self._only.stat().st_size)]
            except OSError:
                return []
        out: list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(self._root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self._root).parts
            for name in sorted(filenames):
                parts = (*rel_dir, name)
                if split_request_path("/" + _quote(parts)) != parts:
                    continue  # a name no URL can reach (hidden, a backslash in it)
                real = self.resolve(parts)
                if real is not None:
                    try:
                        out.append(("/".join(parts), real.stat().st_size))
                    except OSError:
                        continue
        return out

    @property
    def port(self) -> int:
        """The port listened on (the OS's choice after :meth:`start` when 0 was asked)."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT/``: the index page."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def urls(self) -> list[str]:
        """The URL of every served file."""
        return [self.url + _quote(tuple(rel.split("/"))) for rel, _ in self.files()]

    # -- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        parts = split_request_path(request.raw_path)
        if parts == ():
            return await self._index()
        loop = asyncio.get_running_loop()
        opened = None if parts is None else await loop.run_in_executor(None, self._open, parts)
        if opened is None:
            raise web.HTTPNotFound(text="not found\n")
        fd, st, content_type = opened
        try:
            plan = plan_response(
                request.method, request.headers, st.st_size, st.st_mtime_ns, content_type
            )
            resp = web.StreamResponse(status=plan.status, headers=plan.headers)
            if plan.status in (304, 416) or request.method == "HEAD":
                return resp
            await resp.prepare(request)
            if plan.length:
                await self._send_body(request, fd, plan.first, plan.length)
            await resp.write_eof()
            return resp
        finally:
            os.close(fd)

    def _open(self, parts: tuple[str, ...]) -> tuple[int, os.stat_result, str] | None:
        """Resolve and open a served file (in a worker thread: it touches the disk)."""
        real = self.resolve(parts)
        if real is None:
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)  # the size and date of what was opened, not of what was resolved
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        content_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        return fd, st, content_type

    async def _send_body(self, request: web.Request, fd: int, offset: int, count: int) -> None:
        transport = request.transport
        if transport is None:
            return  # the client has gone
        sock = transport.get_extra_info("socket")
        try:
            if sock is None or not hasattr(os, "sendfile"):
                await self._copy_body(request, fd, offset, count)
                return
            await _wait_write_buffer_empty(request)
            out = os.dup(
                sock.fileno()
            )  # our own fd: the loop may watch it apart from the transport
            try:
                sender = _Sendfile(out, fd)
                if self._limiter.unlimited:
                    await sender.send(offset, count)
                    return
                end = offset + count
                while offset < end:
                    n = min(THROTTLED_SLICE, end - offset)
                    await self._limiter.throttle(n)
                    await sender.send(offset, n)
                    offset += n
            finally:
                os.close(out)
        except (ConnectionError, EOFError, OSError) as exc:
            # A client that hangs up mid-file is routine; a file that shrank while being sent
            # leaves the response short: either way this connection cannot go on.
            log.debug("%s: transfer ended early: %s", request.raw_path, exc)
            transport.close()

    async def _copy_body(self, request: web.Request, fd: int, offset: int, count: int) -> None:
        """The portable path: read slices in a thread and write them through aiohttp."""
        loop = asyncio.get_running_loop()
        end = offset + count
        while offset < end:
            n = min(THROTTLED_SLICE * 4, end - offset)
            chunk = await loop.run_in_executor(None, os.pread, fd, n, offset)
            if not chunk:
                raise EOFError("the file shrank while it was being sent")
            await self._limiter.throttle(len(chunk))
            await request.writer.write(chunk)  # type: ignore[union-attr]
            offset += len(chunk)

    async def _index(self) -> web.Response:
        files = await asyncio.get_running_loop().run_in_executor(None, self.files)
        rows = "".join(
            f'<tr><td><a href="/{_quote(tuple(rel.split("/")))}">{html.escape(rel)}</a></td>'
            f'<td style="text-align:right">{format_size(size)}</td></tr>\n'
            for rel, size in files
        )
        body = (
            "<!doctype html>\n<html><head><meta charset='utf-8'><title>swarm central server"
            "</title></head>\n<body><h1>swarm central server</h1>\n<table>\n"
            f"{rows}</table>\n<p>{len(files)} files</p></body></html>\n"
        )
        return web.Response(text=body, content_type="text/html")

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; raises :class:`CentralError` if the port is taken."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self._requested_port, backlog=1024, reuse_address=True
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            if exc.errno == errno.EADDRINUSE:
                raise CentralError(f"port {self._requested_port} is already in use") from None
            raise CentralError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}"
            ) from None
        server = site._server  # noqa: SLF001 - aiohttp has no public way to the bound port
        assert server is not None
        self._bound_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("serving %s at %s", self._only or self._root, self.url)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CentralServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve_central(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_rate: int | None = None,
) -> None:
    """Serve *path* until cancelled."""
    async with CentralServer(path, host, port, max_upload_rate):
        await asyncio.Event().wait()


# -- plumbing -------------------------------------------------------------------------------


def _quote(parts: tuple[str, ...]) -> str:
    return "/".join(urllib.parse.quote(p, safe="") for p in parts)


async def _wait_write_buffer_empty(request: web.Request) -> None:
    """Wait until the transport has handed everything (the headers) to the kernel, so that
    bytes sent on the socket directly cannot overtake them."""
    transport = request.transport
    assert transport is not None
    if transport.get_write_buffer_size() == 0:
        return
    # With a high-water mark of 0 the protocol is paused until the buffer is empty, and
    # aiohttp's drain() waits for exactly that.
    high, low = transport.get_write_buffer_limits()[::-1]
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await request.writer.drain()  # type: ignore[union-attr]
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


class _Sendfile:
    """``os.sendfile`` from a file to a non-blocking socket, waiting on the event loop
    whenever the socket buffer is full."""

    def __init__(self, out_fd: int, in_fd: int) -> None:
        self._out = out_fd
        self._in = in_fd

    async def send(self, offset: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] | None = None
        watching = False

        def writable() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        try:
            while count > 0:
                try:
                    sent = os.sendfile(self._out, self._in, offset, min(count, SENDFILE_MAX))
                except BlockingIOError:
                    sent = -1
                if sent == 0:
                    raise EOFError("the file shrank while it was being sent")
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
                waiter = loop.create_future()
                if not watching:
                    loop.add_writer(self._out, writable)
                    watching = True
                await waiter
        finally:
            if watching:
                loop.remove_writer(self._out)
