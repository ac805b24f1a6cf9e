"""``swarm serve-central``: a file, or every file of a folder, over HTTP/1.1 (aiohttp).

GET and HEAD with single byte ranges and conditional requests, decided as data in
:mod:`swarm.central.protocol`; an index page at ``/``.

Bodies go out with ``os.sendfile`` on the connection's socket on any event loop
(:mod:`swarm.central.sendfile`). With ``max_upload_rate`` the body is sent in 64 KiB slices,
each after the one :class:`~swarm.ratelimit.RateLimiter` shared by every connection allows
it, so the server's total upload is capped.

Only the served files can be reached: a request path whose segments are not all plain names
(:func:`~swarm.central.protocol.split_request_path`: no ``..``, no ``.``, no empty or hidden
segment, no encoded separator, valid percent-encoded UTF-8) is a 404; so is a file whose real
path (symlinks followed) leaves the folder.

A web seed (BEP 19): :attr:`CentralServer.webseed_url` is the base URL to give
``swarm create --webseed`` or ``swarm seed --webseed``. A single-file torrent's file is at
base + its name, which is where the file is served. A multi-file torrent's file is at base +
the torrent's name + ``/`` + its path in the torrent; the torrent's name is the served folder's
name (``swarm create`` names it so), so a folder's files are also found under
``/FOLDER/...``: ``/album/cd1/01.flac`` is ``cd1/01.flac`` of the folder ``album``, unless the
folder holds an ``album/cd1/01.flac`` of its own, which is served first.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import mimetypes
import os
import stat
from pathlib import Path

from aiohttp import web

from swarm.central.protocol import (
    Plan,
    make_etag,
    parse_range,
    plan_response,
    quote_path,
    split_request_path,
)
from swarm.central.sendfile import Sendfile, wait_write_buffer_empty
from swarm.errors import CentralError, UsageError
from swarm.ratelimit import RateLimiter
from swarm.units import format_size

# The protocol's names stay importable from here, as they were before it had a module.
__all__ = [
    "CentralServer",
    "Plan",
    "make_etag",
    "parse_range",
    "plan_response",
    "serve_central",
    "split_request_path",
]

log = logging.getLogger(__name__)

THROTTLED_SLICE = 64 * 1024  # bytes sent per token-bucket grant when the upload is capped


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
        # A multi-file torrent of the folder is named after it (swarm create: the real
        # path's name), and BEP 19 puts that name first in its files' URLs.
        self._root_name = None if self._only else self._root.name
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
        real = self._inside(parts)
        if real is None and len(parts) > 1 and parts[0] == self._root_name:
            real = self._inside(parts[1:])  # BEP 19: web seed base + torrent name + path
        return real

    def _inside(self, parts: tuple[str, ...]) -> Path | None:
        """The regular file at *parts* under the root, its real path inside the root."""
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
                if split_request_path("/" + quote_path(parts)) != parts:
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
    def webseed_url(self) -> str:
        """The URL to give a torrent as its web seed (BEP 19): the base URL, to which a
        single-file torrent adds its name and a multi-file one its name and each file's path
        (the folder's name is the torrent's: see the module's docstring)."""
        return self.url

    @property
    def urls(self) -> list[str]:
        """The URL of every served file."""
        return [self.url + quote_path(tuple(rel.split("/"))) for rel, _ in self.files()]

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
            await wait_write_buffer_empty(request)
            out = os.dup(
                sock.fileno()
            )  # our own fd: the loop may watch it apart from the transport
            try:
                sender = Sendfile(out, fd)
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
            await request.writer.write(chunk)
            offset += len(chunk)

    async def _index(self) -> web.Response:
        files = await asyncio.get_running_loop().run_in_executor(None, self.files)
        rows = "".join(
            f'<tr><td><a href="/{quote_path(tuple(rel.split("/")))}">{html.escape(rel)}</a></td>'
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
        bound: tuple[str, int] = self._runner.addresses[0]  # (host, port[, flow, scope])
        self._bound_port = bound[1]
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
