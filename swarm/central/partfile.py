"""The disk side of an HTTP download (``swarm fetch http://...``): where the file goes, and the
``NAME.part`` it grows in until it is whole.

:func:`output_paths` checks the output before anything else happens (the words a torrent
source gets for the same mistake). A :class:`PartFile` opens the ``.part``, and makes the
folders it needs, only when the server has answered with a body to write; it keeps the
server's ETag in ``NAME.part.etag`` for the next run's ``If-Range``; and after a failure it
removes a ``.part`` that holds no byte, with the folders it made, while one with bytes stays
to be resumed. The file's bytes themselves are written with :func:`pwrite_all`, off the event
loop, by :mod:`swarm.central.client`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import urllib.parse
from pathlib import Path

import aiofiles
import aiofiles.os

from swarm.create import SourceFile, hash_pieces
from swarm.errors import StorageError, UsageError
from swarm.metainfo import Torrent
from swarm.storage import check_folder

__all__ = [
    "PartFile",
    "check_existing",
    "name_from_url",
    "output_paths",
    "pwrite_all",
    "verify_against",
]

log = logging.getLogger(__name__)

_ETAG_RE = re.compile(r'^"[\x21\x23-\x7e]{0,200}"$')  # a strong entity tag, and a sane one


def name_from_url(url: str) -> str:
    """The file name an http(s) URL's path ends with, percent-decoded; a
    :class:`UsageError` unless it is a plain name (no separator, NUL, ``.`` or ``..``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url}: not an http:// or https:// URL")
    path = parts.path
    try:
        name = urllib.parse.unquote(path.rsplit("/", 1)[-1], errors="strict")
    except UnicodeDecodeError:
        name = ""
    if name in ("", ".", "..") or any(c in name for c in "/\\\x00") or len(name) > 250:
        raise UsageError(f"{url}: the URL does not end in a usable file name")
    return name


def output_paths(url: str, out_dir: Path) -> tuple[Path, Path]:
    """Where *url*'s download goes in the folder *out_dir*: (the file, its ``.part``). A
    :class:`UsageError` in the words a torrent source gets (``OUT is not a folder``) when
    *out_dir*, or the nearest of its parents that is there, is not a folder; checked before
    any connection and without creating anything."""
    name = name_from_url(url)
    out_dir = Path(out_dir)
    check_folder(out_dir)
    final, part = out_dir / name, out_dir / f"{name}.part"
    for path in (final, part):
        if path.is_dir():
            raise UsageError(f"{path} is a folder")
    return final, part


def verify_against(path: Path, torrent: Torrent) -> None:
    """Raise :class:`StorageError` unless *path* has the single-file torrent's length and
    piece hashes (SHA-1 over consecutive piece_length slices)."""
    size = path.stat().st_size
    if size != torrent.length:
        raise StorageError(f"{path.name}: {size} bytes, but the torrent says {torrent.length}")
    bad = _bad_pieces(path, size, torrent)
    if bad:
        raise StorageError(
            f"{path.name}: {bad} of {torrent.num_pieces} pieces do not match the torrent;"
            " the download was discarded"
        )


def check_existing(final: Path, torrent: Torrent | None) -> str | None:
    """What a file already at the download's name is, said before it is overwritten: ``OUT
    exists and 12 of 256 pieces differ`` (or ``exists``, without a torrent to check it
    against); None when it is the torrent's file, whole (the download is already done)."""
    size = final.stat().st_size
    if torrent is None:
        return f"{final} exists"
    if size != torrent.length:
        return f"{final} exists and is {size} bytes, not the torrent's {torrent.length}"
    bad = _bad_pieces(final, size, torrent)
    return f"{final} exists and {bad} of {torrent.num_pieces} pieces differ" if bad else None


def _bad_pieces(path: Path, size: int, torrent: Torrent) -> int:
    hashes = hash_pieces([SourceFile(path, (path.name,), size)], torrent.piece_length)
    return sum(1 for a, b in zip(hashes, torrent.piece_hashes, strict=True) if a != b)


class PartFile:
    """``NAME.part`` and ``NAME.part.etag`` for one run of a download."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.etag_file = path.with_name(path.name + ".etag")
        self.fd: int | None = None
        self._made: list[Path] = []  # the folders this run created, innermost first

    def size(self) -> int:
        """The bytes an earlier run left (0 when there is no ``.part``); anything but a plain
        file there (a symlink, say) is refused, never written through."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"cannot write {self.path}: it is not a plain file")
        return st.st_size

    async def read_etag(self) -> str | None:
        """The ETag an earlier run kept, if it is a sane strong one."""
        try:
            async with aiofiles.open(self.etag_file) as f:
                etag = (await f.read()).strip()
        except (OSError, UnicodeDecodeError):
            return None
        return etag if _ETAG_RE.match(etag) else None

    async def save_etag(self, etag: str | None) -> str | None:
        """Keep the server's ETag for the body now being written (or none); return it if it
        is one to send back as ``If-Range``."""
        kept = etag if etag and _ETAG_RE.match(etag) else None
        try:
            if kept:
                async with aiofiles.open(self.etag_file, "w") as f:
                    await f.write(kept + "\n")
            else:
                await _unlink(self.etag_file)
        except OSError as exc:
            log.debug("cannot keep the ETag in %s: %s", self.etag_file, exc)
        return kept

    def open(self, truncate: bool) -> int:
        """The ``.part``'s descriptor for writing, made (with its folders) on the first call;
        emptied first when *truncate*."""
        if self.fd is None:
            missing, folder = [], self.path.parent
            while folder != folder.parent and not os.path.lexists(folder):
                missing.append(folder)
                folder = folder.parent
            self._made = missing
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                self.fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if truncate:
            os.ftruncate(self.fd, 0)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def finish(self, final: Path) -> None:
        """The whole file takes its real name; the ETag has served."""
        await aiofiles.os.replace(self.path, final)
        await _unlink(self.etag_file)

    async def discard(self) -> None:
        """Bytes that must be fetched again (they failed the torrent's check) go."""
        await _unlink(self.path)

    def clean_up(self) -> None:
        """After a failure: a ``.part`` with no byte in it goes, with its ETag, and so do the
        folders this run made if they are empty. Plain calls, not awaits: this runs also while
        the download is being cancelled (Ctrl-C), when an await would be cut short."""
        try:
            st: os.stat_result | None = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        except OSError:
            return
        if st is None or (stat.S_ISREG(st.st_mode) and st.st_size == 0):
            for path in (self.path, self.etag_file) if st else (self.etag_file,):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        for folder in self._made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write *chunks* one after another at *offset* (gathered: no copy into one buffer)."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.pwritev(fd, views[:1024], offset)  # IOV_MAX is 1024 on Linux
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]


async def _unlink(path: Path) -> None:
    """Remove *path* if it is there (``Path.unlink(missing_ok=True)``, off the event loop)."""
    try:
        await aiofiles.os.unlink(path)
    except FileNotFoundError:
        pass
