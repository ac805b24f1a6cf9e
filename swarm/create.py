"""Make a .torrent from a file or folder: walk it, choose a piece length, hash on every core.

Hashing reads the files through memory maps from worker threads; hashlib releases the GIL
on large buffers, so two threads keep two cores busy, as ``mktorrent -t 2`` does.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from swarm import metainfo
from swarm.errors import UsageError

MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 16 * 1024 * 1024
TARGET_MAX_PIECES = 2000
SPAN = 8 * 1024 * 1024  # bytes one worker hashes per task


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file on disk and its place in the torrent."""

    disk_path: Path
    path: tuple[str, ...]  # relative to the torrent's folder (just the name for one file)
    length: int


def auto_piece_length(total: int) -> int:
    """The smallest power of two in 16 KiB..16 MiB that keeps the piece count at or under
    about 2,000 (so 1 GiB gets 1 MiB pieces, as mktorrent and Transmission choose)."""
    length = MIN_PIECE_LENGTH
    while length < MAX_PIECE_LENGTH and -(-total // length) > TARGET_MAX_PIECES:
        length *= 2
    return length


def collect_files(root: Path) -> list[SourceFile]:
    """The files to put in a torrent of *root*, in a stable (sorted) order. Hidden files and
    symlinks are left out of folders, as mainstream tools do."""
    if not root.exists():
        raise UsageError(f"{root}: no such file or folder")
    if root.is_file():
        return [SourceFile(root, (root.name,), root.stat().st_size)]
    if not root.is_dir():
        raise UsageError(f"{root}: not a regular file or folder")
    out: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath, fname)
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).parts
            for part in rel:
                try:
                    part.encode()
                except UnicodeEncodeError:
                    shown = str(full).encode("utf-8", "backslashreplace").decode()
                    raise UsageError(f"{shown}: the file name is not valid UTF-8") from None
            out.append(SourceFile(full, rel, full.stat().st_size))
    if not out:
        raise UsageError(f"{root}: the folder has no files to share")
    out.sort(key=lambda f: f.path)  # one order for any walk: by path, component by component
    return out


class _Reader:
    """Byte ranges of the concatenation of several files (the torrent's data stream).

    Each file is memory-mapped: hashing straight from the page cache skips a copy per byte,
    which is most of the gap between a Python hasher and mktorrent. A range inside one file
    is a zero-copy view; a piece that spans files is joined from its parts.
    """

    def __init__(self, files: list[SourceFile]) -> None:
        self._maps: list[memoryview | None] = []
        self._mmaps: list[mmap.mmap] = []
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        offset = 0
        try:
            for f in files:
                self._offsets.append(offset)
                self._lengths.append(f.length)
                offset += f.length
                self._maps.append(self._map(f) if f.length else None)
        except OSError as exc:
            self.close()
            where = exc.filename or files[len(self._maps)].disk_path
            raise UsageError(f"cannot read {where}: {exc.strerror}") from None
        except BaseException:
            self.close()
            raise
        self.total = offset

    def _map(self, f: SourceFile) -> memoryview:
        with open(f.disk_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < f.length:
                raise UsageError(f"{f.disk_path}: the file changed size while it was being read")
            m = mmap.mmap(fh.fileno(), f.length, access=mmap.ACCESS_READ)
        if hasattr(m, "madvise"):
            m.madvise(mmap.MADV_SEQUENTIAL)
        self._mmaps.append(m)
        return memoryview(m)

    def view(self, start: int, length: int) -> memoryview | bytes:
        end = start + length
        i = bisect.bisect_right(self._offsets, start) - 1  # the last file starting <= start
        fo, fl = self._offsets[i], self._lengths[i]
        if fo <= start and end <= fo + fl:
            m = self._maps[i]
            assert m is not None
            return m[start - fo : end - fo]
        parts = []
        for j in range(i, len(self._offsets)):
            fo, fl = self._offsets[j], self._lengths[j]
            if fo >= end:
                break
            lo, hi = max(start, fo), min(end, fo + fl)
            if lo < hi:
                m = self._maps[j]
                assert m is not None
                parts.append(m[lo - fo : hi - fo])
        return b"".join(parts)

    def close(self) -> None:
        for m in self._maps:
            if m is not None:
                m.release()
        self._maps = []
        for mm in self._mmaps:
            try:
                mm.close()
            except BufferError:  # a view still alive (an error mid-hash): the GC unmaps it
                pass
        self._mmaps = []


def hash_pieces(
    files: list[SourceFile],
    piece_length: int,
    *,
    threads: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """SHA-1 of every piece of the files' concatenated data, hashed on *threads* threads."""
    reader = _Reader(files)
    total = reader.total
    span = max(piece_length, SPAN - SPAN % piece_length)
    threads = threads or min(4, os.cpu_count() or 1)

    def work(start: int) -> list[bytes]:
        end = min(start + span, total)
        return [
            hashlib.sha1(reader.view(i, min(piece_length, end - i))).digest()
            for i in range(start, end, piece_length)
        ]

    hashes: list[bytes] = []
    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash") as pool:
            pending: list[tuple[int, Future[list[bytes]]]] = []
            starts: Iterator[int] = iter(range(0, total, span))
            # Keep a bounded window of spans in flight so memory stays small.
            for start in starts:
                pending.append((start, pool.submit(work, start)))
                if len(pending) >= threads * 2:
                    hashes.extend(_finish(pending.pop(0), span, total, on_progress))
            while pending:
                hashes.extend(_finish(pending.pop(0), span, total, on_progress))
    finally:
        reader.close()
    return hashes


def _finish(
    item: tuple[int, Future[list[bytes]]],
    span: int,
    total: int,
    on_progress: Callable[[int], None] | None,
) -> list[bytes]:
    start, fut = item
    result = fut.result()
    if on_progress:
        on_progress(min(start + span, total))
    return result


def check_urls(trackers: list[list[str]] | None, webseeds: list[str] | None = None) -> None:
    """:class:`UsageError` for the first tracker or web seed URL a torrent should not carry
    (see :func:`swarm.metainfo.check_tracker_url`)."""
    for tier in trackers or []:
        for url in tier:
            metainfo.check_tracker_url(url)
    for url in webseeds or []:
        metainfo.check_web_seed_url(url)


def create_torrent(
    path: str | Path,
    *,
    trackers: list[list[str]] | None = None,
    piece_length: int | None = None,
    webseeds: list[str] | None = None,
    private: bool = False,
    comment: str | None = None,
    threads: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """Build the bytes of a .torrent for the file or folder at *path*.

    *trackers* is a list of tiers (BEP 12); *on_progress(done, total)* reports hashing. A
    tracker or web seed URL no client could use is :class:`UsageError`, before any hashing.
    """
    check_urls(trackers, webseeds)
    root = Path(path)
    files = collect_files(root)
    total = sum(f.length for f in files)
    if total == 0:
        raise UsageError(f"{root}: nothing to share (every file is empty)")
    if piece_length is None:
        piece_length = auto_piece_length(total)
    elif piece_length < MIN_PIECE_LENGTH or piece_length & (piece_length - 1):
        raise UsageError(
            f"piece length must be a power of two of at least 16 KiB, not {piece_length}"
        )
    progress = (lambda done: on_progress(done, total)) if on_progress else None
    hashes = hash_pieces(files, piece_length, threads=threads, on_progress=progress)
    single = root.is_file()
    return metainfo.build_metainfo(
        name=root.resolve().name,
        piece_length=piece_length,
        piece_hashes=hashes,
        length=total if single else None,
        files=None if single else [(f.path, f.length) for f in files],
        trackers=trackers,
        url_list=webseeds,
        private=private,
        comment=comment,
    )
