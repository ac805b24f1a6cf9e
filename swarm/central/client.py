"""HTTP download from the central server (``swarm fetch http://...``).

The body goes to ``NAME.part`` in the output folder and takes its real name only when it is
whole (and, given a torrent, matches every piece hash). A ``.part`` left by an interrupted
run is resumed with ``Range: bytes=N-``; the server's ETag, kept beside it in
``NAME.part.etag``, goes out as ``If-Range`` so that a file changed on the server is fetched
again from the start (a 200 answer) instead of being spliced onto stale bytes.

Nothing is made on disk, not even the output folder, until the server has answered with a
body to write (:func:`~swarm.central.protocol.read_answer` reads the answer from its status
and headers; :class:`~swarm.central.partfile.PartFile` is the disk side). The length is
checked against the torrent from that first answer, and a failed run leaves nothing behind
but a ``.part`` with bytes to resume. Redirects are followed here, not by aiohttp, so that
each way they go wrong (a loop, a ``Location`` that is not http) is one plain sentence.

The body's writes run on one worker thread per download, in order, a few megabytes ahead of
the network at most, so the event loop never waits for the disk and the disk never waits for
the loop. (aiofiles' file objects, with one write in flight on a shared file position, took
1.3-1.45x the time: 256 MiB over 127.0.0.1, median 0.86-0.96 s against 0.66 s in
``bench/central/client.py``.) The small file work around the body, the ETag beside the
``.part`` and the final rename, goes through aiofiles, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yarl
from aiohttp import hdrs

from swarm.central.partfile import (
    PartFile,
    check_existing,
    name_from_url,
    output_paths,
    pwrite_all,
    verify_against,
)
from swarm.central.protocol import Answer, read_answer
from swarm.errors import CentralError, ExistingDataError, StorageError, SwarmError, UsageError
from swarm.metainfo import Torrent
from swarm.ratelimit import RateLimiter

__all__ = ["DownloadResult", "http_download", "name_from_url", "output_paths", "verify_against"]

log = logging.getLogger(__name__)

WRITE_SIZE = 1 << 20  # bytes gathered per disk write
WRITES_AHEAD = 4  # writes queued on the worker thread before the network waits for the disk
READ_BUFFER = 4 << 20  # aiohttp's per-response buffer; its 64 KiB default stalls the socket
PROGRESS_INTERVAL = 0.1  # seconds between on_progress calls
MAX_REDIRECTS = 10
CONNECT_TIMEOUT, READ_TIMEOUT = 15, 60  # seconds
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What OpenSSL says when the other end answers a TLS hello in plain HTTP ("HTTP/1.1 400").
_PLAIN_HTTP_TLS_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}


@dataclass(slots=True, frozen=True)
class DownloadResult:
    """A finished download: where the file is, the bytes moved in this run, the run's
    duration, the offset it resumed from (0 for a fresh start), and whether the file was
    already there and whole."""

    path: Path
    bytes: int
    seconds: float
    resumed_from: int
    already_complete: bool = False  # the file was there, the torrent's: nothing was fetched


async def http_download(
    url: str,
    out_dir: Path,
    *,
    torrent: Torrent | None = None,
    max_download_rate: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    overwrite: bool = True,
    on_existing: Callable[[str], None] | None = None,
) -> DownloadResult:
    """Download *url* into *out_dir* under the URL's file name, resuming a ``.part`` file
    left there, verifying against the single-file *torrent* if given. *on_progress(done,
    total)* is called every 100 ms or so (total is 0 while unknown).

    A file already at the URL's name is checked against the torrent first: if it is the
    torrent's, nothing is fetched (``already_complete``). Otherwise *on_existing* gets the one
    line to show before it is overwritten, or, with *overwrite* False, it is kept and
    :class:`ExistingDataError` (exit 2) raised; all before any connection."""
    if torrent is not None and len(torrent.files) != 1:
        raise UsageError("an HTTP download can be checked only against a single-file torrent")
    final, part_path = output_paths(url, out_dir)
    started = time.monotonic()
    if final.is_file():
        found = await asyncio.get_running_loop().run_in_executor(
            None, check_existing, final, torrent
        )
        if found is None:
            size = final.stat().st_size
            return DownloadResult(final, 0, time.monotonic() - started, size, True)
        if not overwrite:
            raise ExistingDataError(f"{found}: not overwriting it (--no-overwrite)")
        if on_existing is not None:
            on_existing(f"{found}: it will be overwritten; --no-overwrite to stop")
    part = PartFile(part_path)
    have = part.size()
    etag = await part.read_etag() if have else None
    job = _Download(url, part, torrent, RateLimiter(max_download_rate), on_progress)
    try:
        try:
            resumed_from, total = await job.run(have, etag)
        finally:
            part.close()
        size = part.size()
        if size != total:
            raise CentralError(f"{url}: the download stopped at {size} of {total} bytes; run again")
        if torrent is not None:
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, verify_against, part.path, torrent)
            except StorageError:
                await part.discard()  # neither complete-looking nor to be resumed
                raise
        await part.finish(final)
    except BaseException:
        part.clean_up()
        raise
    return DownloadResult(final, job.received, time.monotonic() - started, resumed_from)


class _Download:
    """One run of a download into a ``.part`` file, opened (and its folder made) only when
    the server answers with a body to write."""

    def __init__(
        self,
        url: str,
        part: PartFile,
        torrent: Torrent | None,
        limiter: RateLimiter,
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        self.url = url
        self.part = part
        self.torrent = torrent
        self.limiter = limiter
        self.on_progress = on_progress
        self.received = 0
        self.etag: str | None = None

    async def run(self, have: int, etag: str | None) -> tuple[int, int]:
        """Fetch what is missing; return (offset resumed from, total length)."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
        )
        # A fresh connection per request: a download makes a few at most (redirects, the
        # rest of a short range), and a kept-alive one the server has since closed would
        # fail the next request for nothing.
        connector = aiohttp.TCPConnector(force_close=True)
        self.etag = etag
        try:
            async with aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                read_bufsize=READ_BUFFER,
            ) as http:
                return await self._rounds(http, have)
        except aiohttp.ClientSSLError as exc:
            raise _tls_error(self.url, exc) from None
        except aiohttp.ClientConnectorError as exc:
            err = exc.os_error
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise CentralError(
                f"{self.url}: cannot connect to {exc.host}:{exc.port} ({reason})"
            ) from None
        except aiohttp.ServerDisconnectedError:
            raise CentralError(
                f"{self.url}: the server closed the connection without an answer"
            ) from None
        except aiohttp.ClientPayloadError:
            raise CentralError(
                f"{self.url}: the server closed the connection mid-file; run again to resume"
            ) from None
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise CentralError(
                f"{self.url}: the server sent nothing for {READ_TIMEOUT} s; run again to resume"
            ) from None
        except aiohttp.ClientError as exc:
            raise CentralError(f"{self.url}: {type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def _rounds(self, http: aiohttp.ClientSession, have: int) -> tuple[int, int]:
        start: int | None = None
        restarted = False
        while True:
            answer, end = await self._request(http, have)
            if answer.action == "restart":
                if restarted:
                    raise CentralError(f"{self.url}: the server will not resume ({answer.why})")
                log.info("%s: asking for the whole file: the server sent %s", self.url, answer.why)
                restarted, have, self.etag = True, 0, None
                continue
            start = answer.first if start is None else start
            total = next(n for n in (answer.total, self._expect, end) if n is not None)
            if end >= total:
                return start, total
            if answer.length is None or end != answer.first + answer.length:
                raise CentralError(
                    f"{self.url}: the download stopped at {end} of {total} bytes; run again"
                )
            have = end  # the server sent less than the range asked for (RFC 9110 allows it)

    @property
    def _expect(self) -> int | None:
        """The file's length as the torrent gives it (None without a torrent)."""
        return self.torrent.length if self.torrent is not None else None

    async def _request(self, http: aiohttp.ClientSession, have: int) -> tuple[Answer, int]:
        """Ask for the bytes from *have* on; write what comes; (the answer, end offset)."""
        headers: dict[str, str] = {hdrs.ACCEPT_ENCODING: "identity"}
        if have:
            headers[hdrs.RANGE] = f"bytes={have}-"
            if self.etag:
                headers[hdrs.IF_RANGE] = self.etag
        async with self._get(http, headers) as resp:
            answer = read_answer(self.url, resp.status, resp.reason or "", resp.headers, have)
            if answer.action == "restart":
                return answer, have
            self._check_length(answer.total)
            if answer.action == "whole":
                return answer, have
            fd = self.part.open(truncate=answer.first == 0)
            if answer.first == 0:
                self.etag = await self.part.save_etag(resp.headers.get(hdrs.ETAG))
            # The body ends where its length says; without one (it ends with the connection),
            # at the file's length, or the torrent's, checked as the bytes come.
            if answer.length is not None:
                limit: int | None = answer.first + answer.length
            else:
                limit = answer.total if answer.total is not None else self._expect
            by_torrent = answer.total is None and answer.length is None and limit is not None
            total = answer.total if answer.total is not None else self._expect
            end = await self._receive(resp, fd, answer.first, limit, by_torrent, total or 0)
            return answer, end

    @contextlib.asynccontextmanager
    async def _get(
        self, http: aiohttp.ClientSession, headers: dict[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET the URL, following up to MAX_REDIRECTS redirects; the final response."""
        url = yarl.URL(self.url)
        for _ in range(MAX_REDIRECTS + 1):
            async with http.get(url, headers=headers, allow_redirects=False) as resp:
                location = resp.headers.get(hdrs.LOCATION)
                if resp.status not in _REDIRECTS or location is None:
                    yield resp
                    return
            try:
                url = resp.url.join(yarl.URL(location))
            except ValueError:
                url = yarl.URL()
            if url.scheme not in ("http", "https") or not url.host:
                raise CentralError(f"{self.url}: redirected to {location}, not an http(s) URL")
        raise CentralError(f"{self.url}: redirected more than {MAX_REDIRECTS} times")

    def _check_length(self, total: int | None) -> None:
        if self.torrent is not None and total is not None and total != self.torrent.length:
            raise UsageError(
                f"{self.url}: the server's file is {total} bytes, the torrent's"
                f" {self.torrent.name} {self.torrent.length}: --torrent is not this URL's torrent"
            )

    async def _receive(
        self,
        resp: aiohttp.ClientResponse,
        fd: int,
        offset: int,
        limit: int | None,
        by_torrent: bool,
        total: int,
    ) -> int:
        """Write the body at *offset* onwards, never past *limit* (a limit the torrent set
        when *by_torrent*); return the offset after its last byte. *total* (0: unknown) is
        for on_progress."""
        pending: list[Future[None]] = []
        buffer: list[bytes] = []
        buffered = 0
        last_report = 0.0
        with ThreadPoolExecutor(1, thread_name_prefix="http-write") as disk:
            try:
                async for chunk in resp.content.iter_any():
                    if limit is not None and offset + buffered + len(chunk) > limit:
                        # The bytes up to the limit are good ones: kept below, like any cut.
                        buffer.append(chunk[: limit - offset - buffered])
                        buffered = limit - offset
                        raise self._too_long(limit, by_torrent)
                    await self.limiter.throttle(len(chunk))
                    buffer.append(chunk)
                    buffered += len(chunk)
                    self.received += len(chunk)
                    # progress counts what came, written or still gathered for its write (a
                    # MiB at a time: counted by writes, a small file would show no progress)
                    now = time.monotonic()
                    if self.on_progress is not None and now - last_report >= PROGRESS_INTERVAL:
                        last_report = now
                        self.on_progress(offset + buffered, total)
                    if buffered < WRITE_SIZE:
                        continue
                    pending.append(disk.submit(pwrite_all, fd, buffer, offset))
                    offset += buffered
                    buffer = []  # the queued write owns the old list
                    buffered = 0
                    if len(pending) >= WRITES_AHEAD:
                        await asyncio.wrap_future(pending.pop(0))
                if buffered:
                    pending.append(disk.submit(pwrite_all, fd, buffer, offset))
                    offset += buffered
                    buffered = 0
                for fut in pending:
                    await asyncio.wrap_future(fut)
            except OSError as exc:
                raise StorageError(f"cannot write the download: {exc.strerror or exc}") from None
            except BaseException:
                # Cut short (a dropped connection, Ctrl-C): what came is good; keep it to resume.
                if buffered:
                    disk.submit(pwrite_all, fd, buffer, offset)
                raise
            # Leaving the executor waits for writes still queued (also when cancelled): the
            # .part file then ends exactly where its last byte was written, ready to resume.
        if self.on_progress is not None:
            self.on_progress(offset, total)
        return offset

    def _too_long(self, limit: int, by_torrent: bool) -> SwarmError:
        if by_torrent and self.torrent is not None:
            return UsageError(
                f"{self.url}: the server sends more than the {limit} bytes of the torrent's"
                f" {self.torrent.name}: --torrent is not this URL's torrent"
            )
        return CentralError(f"{self.url}: the server sent more bytes than it announced")


def _tls_error(url: str, exc: aiohttp.ClientSSLError) -> SwarmError:
    """One line for a failed TLS handshake; bad input (exit 2) when the server plainly
    answered in plain HTTP, so that the URL's https:// is the mistake."""
    where = f"{exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        err: BaseException = exc.certificate_error
    else:
        err = exc.os_error
    reason = getattr(err, "reason", None) or ""
    if reason in _PLAIN_HTTP_TLS_REASONS:
        plain = "http://" + url.split("://", 1)[1]
        return UsageError(
            f"{url}: the server at {where} does not speak TLS (plain HTTP?): try {plain}"
        )
    detail = getattr(err, "verify_message", None) or reason.replace("_", " ").lower() or err
    return CentralError(f"{url}: no TLS connection to {where} ({detail})")
