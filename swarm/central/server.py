"""``swarm serve-central``: a file, or every file of a folder, over HTTP/1.1 (aiohttp).

GET and HEAD, single byte ranges (206, 416 as RFC 9110 says), ETag and Last-Modified,
sendfile when unthrottled, an index page. With ``max_upload_rate`` every response is written
in small chunks through one token bucket shared by all clients, so the server's total upload
is capped. Only the served files can be reached: anything else, traversal attempts and
symlinks that lead out of the folder included, is a 404.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import os
import urllib.parse
from email.utils import formatdate
from pathlib import Path

from aiohttp import hdrs, web

from swarm.central import CentralError
from swarm.errors import UsageError
from swarm.ratelimit import RateLimiter
from swarm.units import format_size

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class CentralServer:
    """Serves *path* (a file or a folder) on *host*:*port* (0: any free port)."""

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
        self.single = p.is_file()
        self.root = (p.parent if self.single else p).resolve()
        self.only = p.resolve() if self.single else None
        self.host = host
        self._port = port
        self.limiter = RateLimiter(max_upload_rate)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- which files -------------------------------------------------------------------

    def files(self) -> list[Path]:
        if self.only is not None:
            return [self.only]
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                f = self.resolve(str(Path(dirpath, name).relative_to(self.root)))
                if f is not None:
                    out.append(f)
        return out

    def resolve(self, rel: str) -> Path | None:
        """The served file at URL path *rel* (already percent-decoded), or None."""
        if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
            return None
        parts = rel.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if self.only is not None and real != self.only:
            return None
        if not real.is_relative_to(self.root) or not real.is_file():
            return None
        return real

    def url_for(self, f: Path) -> str:
        rel = f.relative_to(self.root).as_posix()
        return self.url + urllib.parse.quote(rel)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def urls(self) -> list[str]:
        return [self.url_for(f) for f in self.files()]

    # -- serving -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        rel = request.match_info.get("path", "")
        if rel == "":
            return self.index()
        f = self.resolve(rel)
        if f is None:
            raise web.HTTPNotFound(text="not found\n")
        if self.limiter.unlimited:
            # aiohttp's FileResponse: sendfile, Range, If-Range, ETag, Last-Modified, 416.
            return web.FileResponse(f, chunk_size=256 * 1024)
        return await self.throttled(request, f)

    def index(self) -> web.Response:
        rows = []
        for f in self.files():
            rel = f.relative_to(self.root).as_posix()
            rows.append(
                f'<tr><td><a href="/{urllib.parse.quote(rel)}">{html.escape(rel)}</a></td>'
                f"<td>{format_size(f.stat().st_size)}</td></tr>"
            )
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>swarm central server"
            "</title></head><body><h1>swarm central server</h1><table>"
            + "".join(rows)
            + "</table></body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    async def throttled(self, request: web.Request, f: Path) -> web.StreamResponse:
        st = f.stat()
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}"'
        headers = {
            hdrs.ETAG: etag,
            hdrs.LAST_MODIFIED: formatdate(st.st_mtime, usegmt=True),
            hdrs.ACCEPT_RANGES: "bytes",
            hdrs.CONTENT_TYPE: "application/octet-stream",
        }
        if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
            return web.Response(status=304, headers=headers)
        first, last, status = 0, size - 1, 200
        use_range = hdrs.RANGE in request.headers
        if_range = request.headers.get(hdrs.IF_RANGE)
        if if_range is not None and if_range != etag:
            use_range = False
        if use_range:
            try:
                rng = request.http_range  # aiohttp parses 'bytes=a-b', 'a-', '-n'
            except ValueError:
                rng = None  # malformed or multiple ranges: answer with the whole file
            if rng is not None and (rng.start is not None or rng.stop is not None):
                start = rng.start if rng.start is not None else 0
                if start < 0:
                    first = max(0, size + start)
                else:
                    first = start
                    last = min(size, rng.stop) - 1 if rng.stop is not None else size - 1
                if first >= size or first > last:
                    headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
                    return web.Response(status=416, headers=headers)
                status = 206
                headers[hdrs.CONTENT_RANGE] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        await resp.prepare(request)
        if request.method == "HEAD" or length <= 0:
            await resp.write_eof()
            return resp
        loop = asyncio.get_running_loop()
        fd = os.open(f, os.O_RDONLY)
        try:
            pos, end = first, last + 1
            while pos < end:
                n = min(CHUNK, end - pos)
                chunk = await loop.run_in_executor(None, os.pread, fd, n, pos)
                if not chunk:
                    break
                await self.limiter.throttle(len(chunk))
                await resp.write(chunk)
                pos += len(chunk)
        finally:
            os.close(fd)
        await resp.write_eof()
        return resp

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise CentralError(f"port {self._port} is already in use") from None
            raise CentralError(
                f"cannot listen on {self.host}:{self._port}: {exc.strerror}"
            ) from None
        server = site._server  # noqa: SLF001 - the bound port of a port-0 site
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_central(
    path: str | Path, host: str = "127.0.0.1", port: int = 8000, max_upload_rate: int | None = None
) -> None:
    """Serve until cancelled."""
    server = CentralServer(path, host, port, max_upload_rate)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
