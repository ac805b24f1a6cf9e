"""HTTP download from the central server: ``NAME.part`` until complete, resumed with Range,
optionally verified against a torrent's piece hashes before it takes its real name."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from swarm.central import CentralError
from swarm.create import SourceFile, hash_pieces
from swarm.errors import StorageError, UsageError
from swarm.metainfo import Torrent, safe_path_components
from swarm.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DownloadResult:
    path: Path
    bytes: int  # transferred in this run
    seconds: float
    resumed_from: int


def name_from_url(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
    try:
        (safe,) = safe_path_components([name.encode()], "URL")
    except Exception:
        raise UsageError(f"{url}: the URL does not end in a usable file name") from None
    return safe


def verify_against(path: Path, torrent: Torrent) -> None:
    """Raise StorageError unless *path* has the torrent's length and piece hashes."""
    if len(torrent.files) != 1:
        raise UsageError("--torrent must be a single-file torrent for an HTTP download")
    size = path.stat().st_size
    if size != torrent.length:
        raise StorageError(f"{path.name}: {size} bytes, but the torrent says {torrent.length}")
    hashes = hash_pieces([SourceFile(path, (path.name,), size)], torrent.piece_length)
    bad = sum(1 for a, b in zip(hashes, torrent.piece_hashes, strict=True) if a != b)
    if bad:
        raise StorageError(f"{path.name}: {bad} of {len(hashes)} pieces do not match the torrent")


async def http_download(
    url: str,
    out_dir: Path,
    *,
    torrent: Torrent | None = None,
    max_download_rate: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DownloadResult:
    """Download *url* into *out_dir*; resume a partial ``.part`` file; verify with *torrent*."""
    name = name_from_url(url)
    out_dir = Path(out_dir)
    final = out_dir / name
    part = out_dir / (name + ".part")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out_dir}: {exc.strerror}") from None
    have = part.stat().st_size if part.exists() else 0
    bucket = TokenBucket(max_download_rate) if max_download_rate else None
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    received = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as http:
            async with http.get(url, headers=headers) as resp:
                if resp.status == 416 and have:
                    total = have  # the partial file is already whole
                elif resp.status == 206 and have:
                    total = have + (resp.content_length or 0)
                elif resp.status == 200:
                    have, total = 0, resp.content_length or 0
                elif resp.status == 404:
                    raise UsageError(f"{url}: not found on the server (HTTP 404)")
                else:
                    raise CentralError(f"{url}: the server answered HTTP {resp.status}")
                mode = "r+b" if have else "wb"
                with open(part, mode if part.exists() or mode == "wb" else "wb") as f:
                    f.seek(have)
                    if resp.status != 416:
                        async for chunk in resp.content.iter_chunked(CHUNK):
                            await loop.run_in_executor(None, f.write, chunk)
                            received += len(chunk)
                            if on_progress:
                                on_progress(have + received, total)
                            if bucket is not None:
                                delay = bucket.consume(len(chunk))
                                if delay > 0:
                                    await asyncio.sleep(delay)
                    f.truncate()
    except aiohttp.ClientError as exc:
        raise CentralError(f"{url}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot write {part}: {exc.strerror}") from None
    size = part.stat().st_size
    if total and size != total:
        raise CentralError(f"{url}: the download stopped at {size} of {total} bytes; run again")
    if torrent is not None:
        try:
            await loop.run_in_executor(None, verify_against, part, torrent)
        except StorageError:
            part.unlink(missing_ok=True)  # bad data must not be resumed either
            raise
    os.replace(part, final)
    return DownloadResult(final, received, time.monotonic() - started, have)
