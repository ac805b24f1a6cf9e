"""Pieces between the wire and the disk: blocks assembled into pieces, each piece hashed and
written, and a small cache of whole pieces for uploading (a piece just verified goes into it).

This is the asyncio face of :class:`~swarm.storage.Storage` (whose methods block): opening,
checking, large pieces and finishing run on the process's disk pool (:mod:`swarm.disk_pool`,
shared by every torrent of the process). A small piece (at most
:data:`INLINE_BYTES`) is hashed, written and read on the event loop: SHA-1 of 16 KiB and a
pwrite into the page cache take tens of microseconds, less than the two thread hops (and the
fight for the GIL between many torrents' threads) they would otherwise cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from swarm.disk_pool import DiskJobs
from swarm.errors import ExistingDataError, StorageError, SwarmError
from swarm.metainfo import Torrent
from swarm.peer_directory import Address
from swarm.storage import Storage

RESUME_SAVE_SECONDS = 10.0
CACHE_BYTES = 32 << 20  # pieces kept in memory for uploading
SPARE_BYTES = 32 << 20  # piece buffers kept for reuse once written
INLINE_BYTES = 64 << 10  # pieces this small are hashed, written and read on the loop
FLUSH_BYTES = 64 << 20  # written since the last flush: the kernel is told to write them out

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Existing:
    """Files found at the torrent's real names when a download opened, and how they checked."""

    paths: list[Path]
    differ: int  # pieces of those files that did not match the torrent
    total: int  # pieces of those files
    complete_size: bool  # every file there at its full size: a finished download, damaged

    def describe(self) -> str:
        more = f" (and {len(self.paths) - 1} more files)" if len(self.paths) > 1 else ""
        return f"{self.paths[0]}{more} exists and {self.differ} of {self.total} pieces differ"


class PieceIO:
    """One torrent's pieces in memory on their way to and from its files."""

    def __init__(self, torrent: Torrent, root: Path) -> None:
        self.torrent = torrent
        self.storage = Storage(torrent, root)
        self._jobs = DiskJobs()
        self._buffers: dict[int, bytearray] = {}
        self._spare: list[bytearray] = []  # written pieces' buffers, reused for new pieces
        self._spare_max = max(1, SPARE_BYTES // torrent.piece_length)
        self._contributors: dict[int, set[bytes]] = {}
        # Whole pieces for uploading: bytes, or a read from disk under way (a future).
        self._cache: OrderedDict[int, bytes | asyncio.Future[bytes]] = OrderedDict()
        self._cache_bytes = 0
        self.existing: Existing | None = None
        # Whether a piece just verified may be asked for soon (a peer is connected): then a
        # copy is kept for uploading; else none is made (a peer reads it from disk later).
        self.keep_for_upload: Callable[[], bool] = lambda: True
        # Told of each verified piece and the peers who sent it (a progress reporter).
        self.on_verified: list[Callable[[int, set[bytes]], None]] = []
        self._resume_dirty = False
        self.peers_to_keep: Callable[[], list[Address]] = list  # saved with the resume data
        self._resume_at = 0.0
        self._unflushed = 0
        self._flushing: asyncio.Future[None] | None = None

    async def _run(self, fn: Callable[..., R], *args: object) -> R:
        return await self._jobs.run(fn, *args)

    # -- opening and closing -----------------------------------------------------------------

    async def open(
        self,
        *,
        seed: bool,
        verify: bool,
        overwrite: bool = True,
        on_check: Callable[[int, int], None] | None = None,
    ) -> list[bool]:
        """Open the data and say which pieces are present. *seed*: the files must be complete
        at their real names (verified unless *verify* is False). Otherwise prepare a download:
        files at the real names are checked as they stand (:attr:`existing`; with *overwrite*
        False, ExistingDataError if they hold other data), our own .part files resume from
        resume data or a check, and files with bad pieces are reopened for writing."""
        st = self.storage
        n = self.torrent.num_pieces
        if seed:
            await self._run(st.open_for_seeding)
            if verify:
                have = await self._run(st.check_all, on_check)
                bad = have.count(False)
                if bad:
                    raise StorageError(
                        f"{bad} of {len(have)} pieces of {st.final_paths[0]} do not match the "
                        "torrent: refusing to seed data that is not the torrent's"
                    )
            return [True] * n
        finals = {i for i, p in enumerate(st.final_paths) if p.is_file()}
        parts = {i for i in range(len(st.final_paths)) if st.part_path(i).is_file()}
        found: list[bool] | None = None
        if finals:
            # Files at the real names are not ours to trust (a finished download since
            # damaged, or a user's own file): check them as they stand before anything moves.
            found = await self._run(st.inspect, on_check)
            self.existing = self._existing(found, finals, overwrite)
        await self._run(st.open_for_download)
        if finals & parts or (parts and not finals):
            # Our own .part files: resume data if it still matches, else a check.
            found = None if finals else await self._run(st.load_resume)
            if found is None:
                found = await self._run(st.check_all, on_check)
        found = found or [False] * n
        if not all(found):
            await self._run(st.reopen_for_repair)
        return found

    def _existing(self, found: list[bool], finals: set[int], overwrite: bool) -> Existing:
        st = self.storage
        touched = st.pieces_of_files(finals)
        differ = sum(1 for i in touched if not found[i])
        paths = [st.final_paths[i] for i in sorted(finals)]
        # Every file that is ever on disk (pad files never are, BEP 47) there at its size.
        complete_size = finals == set(st.disk_files) and all(
            st.final_paths[i].stat().st_size == self.torrent.files[i].length for i in finals
        )
        existing = Existing(paths, differ, len(touched), complete_size)
        if differ and not overwrite:
            raise ExistingDataError(f"{existing.describe()}: not overwriting it (--no-overwrite)")
        return existing

    def _flush_soon(self, written: int) -> None:
        """Every :data:`FLUSH_BYTES` written, the files' written pages go to the disk in a
        thread beside the download (the kernel would hold them until the fsync at the end,
        which then took 2.5-3 s for 1 GiB: a downloader done at the network's speed waited
        that long more)."""
        self._unflushed += written
        if self._unflushed >= FLUSH_BYTES and (self._flushing is None or self._flushing.done()):
            self._unflushed = 0
            paths = [self.storage.part_path(i) for i in self.storage.disk_files]
            self._flushing = asyncio.get_running_loop().run_in_executor(None, _flush, paths)

    async def finalize(self) -> None:
        """Every piece is verified: the files take their real names; resume data goes."""
        if self._flushing is not None:
            await self._flushing
        await self._run(self.storage.finalize)
        self.storage.remove_resume()

    async def save_resume(self, have: list[bool], now: float) -> None:
        """Save resume data if pieces were verified since it was last saved, at most every
        ten seconds (a crash loses at most that much work), the first time ten seconds after
        the first call: saved at the first call, every downloader of a swarm that started
        together saved at once, 1 s in (at N = 100, four processes' disk threads and loops
        busy with 100 saves while the swarm's upload fell from ~70 to ~25 MiB/s)."""
        if not self._resume_at:
            self._resume_at = now + RESUME_SAVE_SECONDS
        if self._resume_dirty and now >= self._resume_at:
            self._resume_dirty = False
            self._resume_at = now + RESUME_SAVE_SECONDS
            await self._run(self.storage.save_resume, list(have), self.peers_to_keep())

    async def saved_peers(self) -> list[Address]:
        """The peers saved with the resume data, to dial again."""
        return await self._run(self.storage.load_resume_peers)

    def abandon(self) -> None:
        """Opening failed: let go of the files without waiting."""
        self.storage.close()

    async def close(self, have: list[bool], complete: bool, peers: Sequence[Address] = ()) -> None:
        """Let the writes already handed to the pool finish, save resume data (with *peers*,
        to dial again), close files."""
        await self._jobs.drain()
        if self._flushing is not None:
            await self._flushing
        if not complete:
            self.storage.save_resume(have, peers)
        self.storage.close()

    # -- downloading -------------------------------------------------------------------------

    def add_block(
        self, index: int, begin: int, block: bytes | memoryview, contributor: bytes
    ) -> None:
        self.piece_buffer(index, contributor)[begin : begin + len(block)] = block

    def piece_buffer(self, index: int, contributor: bytes) -> bytearray:
        """The buffer piece *index* is assembled in (made now if new), *contributor* counted
        among those who sent it: a web seed reads its blocks straight into it (and must write
        only blocks it owns, before the piece is full: then it is hashed and reused)."""
        buf = self._buffers.get(index)
        if buf is None:
            buf = self._buffers[index] = self._new_buffer(self.torrent.piece_size(index))
            self._contributors[index] = {contributor}
        else:
            self._contributors[index].add(contributor)
        return buf

    def inline(self, index: int) -> bool:
        """Whether piece *index* is small enough (:data:`INLINE_BYTES`) to hash, write and
        read on the loop, not in the pool (:meth:`verify_and_write_now`)."""
        return self.torrent.piece_size(index) <= INLINE_BYTES

    def verify_and_write_now(self, index: int) -> tuple[bool, set[bytes]]:
        """:meth:`verify_and_write` for a piece that is :meth:`inline`, with no await."""
        data = self._buffers.pop(index)
        return self._verified(index, data, self._check_and_write(index, data))

    async def verify_and_write(self, index: int) -> tuple[bool, set[bytes]]:
        """Hash the assembled piece and write it if it matches: (ok, the peers who sent it)."""
        if self.inline(index):
            return self.verify_and_write_now(index)
        data = self._buffers.pop(index)
        return self._verified(index, data, await self._run(self._check_and_write, index, data))

    def _verified(self, index: int, data: bytearray, ok: bool) -> tuple[bool, set[bytes]]:
        contributors = self._contributors.pop(index, set())
        if ok:
            for note in self.on_verified:
                note(index, contributors)
            # Peers ask for a piece just verified first (it is new to them): keep a copy for
            # uploading instead of reading it back (the buffer itself is reused, below).
            self._drop_cached(index)
            if self.keep_for_upload():
                self._add_cached(index, bytes(data))
            self._resume_dirty = True
            self._flush_soon(len(data))
        if len(data) == self.torrent.piece_length and len(self._spare) < self._spare_max:
            self._spare.append(data)  # hashed and written: nothing else holds it
        return bool(ok), contributors

    def _new_buffer(self, size: int) -> bytearray:
        """A buffer for a piece of *size* bytes: a written piece's, if one is spare (its old
        bytes are all overwritten before the piece is hashed: every block arrives first)."""
        if size == self.torrent.piece_length and self._spare:
            return self._spare.pop()
        return bytearray(size)

    def _check_and_write(self, index: int, data: bytearray) -> bool:
        if hashlib.sha1(data).digest() != self.torrent.piece_hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    # -- uploading ---------------------------------------------------------------------------

    def cached_block(self, index: int, begin: int, length: int) -> memoryview | None:
        """The block from the piece cache if the piece is in memory already, else None."""
        data = self._cache.get(index)
        if data is None:
            return None
        if isinstance(data, asyncio.Future):  # a read: usable once done well
            if not data.done() or data.cancelled() or data.exception() is not None:
                return None
            data = data.result()
        return memoryview(data)[begin : begin + length]

    async def read_block(self, index: int, begin: int, length: int) -> memoryview:
        """A block to upload, from a small cache of whole pieces read from disk."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
        elif self.inline(index):
            cached = self.storage.read(index)  # a StorageError: nothing cached
            self._add_cached(index, cached)
        else:
            cached = self._jobs.submit(self.storage.read, index)
            self._add_cached(index, cached)
        if isinstance(cached, asyncio.Future):
            try:
                cached = await asyncio.shield(cached)
            except SwarmError:
                self._drop_cached(index)
                raise
        return memoryview(cached)[begin : begin + length]

    def _add_cached(self, index: int, data: bytes | asyncio.Future[bytes]) -> None:
        self._cache[index] = data
        self._cache_bytes += self.torrent.piece_size(index)
        while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
            old, _ = self._cache.popitem(last=False)
            self._cache_bytes -= self.torrent.piece_size(old)

    def _drop_cached(self, index: int) -> None:
        if self._cache.pop(index, None) is not None:
            self._cache_bytes -= self.torrent.piece_size(index)


def _flush(paths: list[Path]) -> None:
    """Write the files' dirty pages out (fdatasync through a descriptor of our own: Linux
    flushes the file, whichever descriptor wrote); a file gone or renamed meanwhile is not
    an error here (the final fsync is the one that counts)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
