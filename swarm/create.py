"""Make a .torrent from a file or folder: walk it, choose a piece length, hash on every core.

Hashing reads the files through memory maps from worker threads; hashlib releases the GIL
on large buffers, so two threads keep two cores busy, as ``mktorrent -t 2`` does. Speed matters
here (``bench/create`` holds ``swarm create`` to mktorrent's time): nothing on this module's
import path is more than hashing needs; the metainfo code loads while the pieces hash.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm.errors import UsageError

MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 16 * 1024 * 1024
TARGET_MAX_PIECES = 2000
SPAN = 2 * 1024 * 1024  # bytes a worker takes at a time (at least one piece)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file on disk and its place in the torrent."""

    disk_path: Path
    path: tuple[str, ...]  # relative to the torrent's folder (just the name for one file)
    length: int
    pad: bool = False  # a BEP 47 pad file: zeros, not on disk


def align_files(files: list[SourceFile], piece_length: int) -> list[SourceFile]:
    """*files* with BEP 47 pad files between them, laid out as libtorrent 2.0 lays them out
    (``create_torrent`` with ``v1_only | canonical_files_no_tail_padding``): before each
    non-empty file that would not start on a piece boundary, ``.pad/N``, the N zero bytes up
    to it; so no pad after the last file. *files* are in libtorrent's order already (by path,
    component by component: see :func:`collect_files`)."""
    out: list[SourceFile] = []
    offset = 0
    for f in files:
        if f.length and offset % piece_length:
            n = piece_length - offset % piece_length
            out.append(SourceFile(Path(), (".pad", str(n)), n, pad=True))
            offset += n
        out.append(f)
        offset += f.length
    return out


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
        self._mmaps: list[mmap.mmap | None] = []
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        offset = 0
        # Every pad file reads as a slice of one buffer of zeros (pads are under a piece).
        self._zeros = memoryview(bytes(max((f.length for f in files if f.pad), default=0)))
        try:
            for f in files:
                self._offsets.append(offset)
                self._lengths.append(f.length)
                offset += f.length
                self._map(f)
        except OSError as exc:
            self.close()
            where = exc.filename or files[len(self._maps)].disk_path
            raise UsageError(f"cannot read {where}: {exc.strerror}") from None
        except BaseException:
            self.close()
            raise
        self.total = offset

    def _map(self, f: SourceFile) -> None:
        if not f.length or f.pad:
            self._mmaps.append(None)
            self._maps.append(self._zeros[: f.length] if f.pad else None)
            return
        with open(f.disk_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < f.length:
                raise UsageError(f"{f.disk_path}: the file changed size while it was being read")
            m = mmap.mmap(fh.fileno(), f.length, access=mmap.ACCESS_READ)
        self._mmaps.append(m)
        self._maps.append(memoryview(m))

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

    def unmap(self, start: int, length: int) -> None:
        """Drop the page-table entries of a range that is hashed (the bytes stay in the page
        cache). Unmapping is work in proportion to the pages mapped: done here, by the worker
        that read them, it runs on every core while hashing goes on; left to :meth:`close`,
        it was 15-35 ms on one core after the last piece (1 GiB, 262,144 pages)."""
        if not _CAN_UNMAP:
            return
        end = start + length
        i = bisect.bisect_right(self._offsets, start) - 1
        for j in range(max(i, 0), len(self._offsets)):
            fo, fl = self._offsets[j], self._lengths[j]
            if fo >= end:
                break
            m = self._mmaps[j]
            lo = max(start, fo) - fo
            lo -= lo % mmap.PAGESIZE  # madvise wants a page-aligned start
            hi = min(end, fo + fl) - fo
            if m is not None and lo < hi:
                m.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def close(self) -> None:
        for v in self._maps:
            if v is not None:
                v.release()
        self._maps = []
        for mm in self._mmaps:
            try:
                if mm is not None:
                    mm.close()
            except BufferError:  # a view still alive (an error mid-hash): the GC unmaps it
                pass
        self._mmaps = []


# Dropping page-table entries early only saves time: without madvise (Windows), unmap() skips it.
_CAN_UNMAP = hasattr(mmap.mmap, "madvise") and hasattr(mmap, "MADV_DONTNEED")


class Hashing:
    """SHA-1 of every piece of the files' concatenated data, on *threads* threads, started at
    once; :meth:`wait` gives the hashes. A context manager: leaving it stops the workers and
    unmaps the files.

    The workers take the next few pieces (about ``SPAN`` bytes) from a shared counter, so
    both cores stay busy to the last piece whatever each one's speed. hashlib releases the
    GIL while it hashes a large buffer, so the caller's thread may do other work meanwhile
    (``create_torrent`` imports the metainfo code then).
    """

    def __init__(self, files: list[SourceFile], piece_length: int, threads: int | None) -> None:
        self._reader = _Reader(files)
        self.total = self._reader.total
        self.piece_length = piece_length
        self.hashes: list[bytes] = [b""] * -(-self.total // piece_length)
        self._batch = max(1, SPAN // piece_length)  # pieces a worker takes at a time
        self._next = itertools.count(0, self._batch)  # next() is atomic under the GIL
        self._done = [0] * max(1, threads or min(4, os.cpu_count() or 1))  # pieces per worker
        self._stop = False
        self._error: BaseException | None = None
        self._workers = [
            threading.Thread(target=self._work, args=(k,), name=f"hash-{k}", daemon=True)
            for k in range(len(self._done))
        ]
        try:
            for t in self._workers:
                t.start()
        except BaseException:
            self.close()
            raise

    def _work(self, k: int) -> None:
        reader, length, count = self._reader, self.piece_length, len(self.hashes)
        sha1, hashes, done = hashlib.sha1, self.hashes, self._done
        try:
            for first in self._next:
                if first >= count or self._stop:
                    return
                last = min(first + self._batch, count)
                for i in range(first, last):
                    view = reader.view(i * length, min(length, self.total - i * length))
                    hashes[i] = sha1(view).digest()
                    if isinstance(view, memoryview):
                        view.release()
                reader.unmap(first * length, (last - first) * length)
                done[k] += last - first
        except BaseException as exc:
            self._error = exc
            self._stop = True

    def wait(self, on_progress: Callable[[int], None] | None = None) -> list[bytes]:
        """Block until every piece is hashed; *on_progress(bytes_done)* about 10 times a
        second meanwhile and once at the end. A worker's error is raised here."""
        for t in self._workers:
            while t.is_alive():
                t.join(0.1 if on_progress else None)
                if on_progress:
                    on_progress(min(sum(self._done) * self.piece_length, self.total))
        if self._error is not None:
            raise self._error
        if on_progress:
            on_progress(self.total)
        return self.hashes

    def close(self) -> None:
        self._stop = True
        for t in self._workers:
            if t.ident is not None:
                t.join()  # before unmapping: a worker may be reading the maps
        self._reader.close()

    def __enter__(self) -> Hashing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hash_pieces(
    files: list[SourceFile],
    piece_length: int,
    *,
    threads: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """SHA-1 of every piece of the files' concatenated data, hashed on *threads* threads."""
    with Hashing(files, piece_length, threads) as job:
        return job.wait(on_progress)


def _attr(f: SourceFile) -> str:
    """BEP 47 ``attr`` as libtorrent writes it: ``p`` a pad file, ``x`` if the owner may
    execute the file (libtorrent's test, ``S_IXUSR``)."""
    if f.pad:
        return "p"
    return "x" if f.disk_path.stat().st_mode & 0o100 else ""


def check_urls(trackers: list[list[str]] | None, webseeds: list[str] | None = None) -> None:
    """:class:`UsageError` for the first tracker or web seed URL a torrent should not carry
    (see :func:`swarm.metainfo.check_tracker_url`)."""
    if not trackers and not webseeds:
        return  # and metainfo is imported later, while the pieces hash
    from swarm import metainfo

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
    dht_nodes: list[tuple[str, int]] | None = None,
    align: bool = False,
) -> bytes:
    """Build the bytes of a .torrent for the file or folder at *path*.

    *trackers* is a list of tiers (BEP 12); *on_progress(done, total)* reports hashing. A
    tracker or web seed URL no client could use is :class:`UsageError`, before any hashing.
    *dht_nodes* become BEP 5's ``nodes``: DHT nodes a client of a trackerless torrent can
    bootstrap from. *align*: a folder's files each start on a piece boundary, padded as
    libtorrent pads them (:func:`align_files`), executable ones marked ``x`` as libtorrent
    marks them (BEP 47); the same files give libtorrent's info-hash.
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
    single = root.is_file()
    if align and not single:
        files = align_files(files, piece_length)
        total = sum(f.length for f in files)
    with Hashing(files, piece_length, threads) as job:
        # Imported here, not at the top: this thread loads the bencoding and metainfo code
        # while the workers hash (hashlib lets go of the GIL), which takes it off the clock
        # of `swarm create` (bench/create).
        from swarm import metainfo

        hashes = job.wait(progress)
    data = metainfo.build_metainfo(
        name=root.resolve().name,
        piece_length=piece_length,
        piece_hashes=hashes,
        length=total if single else None,
        files=None if single else [(f.path, f.length) for f in files],
        attrs=[_attr(f) for f in files] if align and not single else None,
        trackers=trackers,
        url_list=webseeds,
        private=private,
        comment=comment,
    )
    if not dht_nodes:
        return data
    from swarm.dht_nodes import nodes_value

    torrent = metainfo.parse(data)  # the info bytes stay as they are: same info-hash
    extra = {**torrent.extra, b"nodes": nodes_value(dht_nodes)}
    return dataclasses.replace(torrent, extra=extra).to_bytes()
