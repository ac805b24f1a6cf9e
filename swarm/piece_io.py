"""Pieces between the wire and the disk: blocks assembled into pieces, each piece hashed and
written on a worker thread, and a small cache of whole pieces read back for uploading.

This is the asyncio face of :class:`~swarm.storage.Storage` (whose methods block): it owns the
thread pool that every disk read, write and hash of one torrent runs on, so the event loop
never waits for the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from swarm.errors import StorageError, SwarmError
from swarm.metainfo import Torrent
from swarm.storage import Storage

RESUME_SAVE_SECONDS = 10.0
CACHE_BYTES = 32 << 20  # pieces kept in memory for uploading
DISK_THREADS = 2

R = TypeVar("R")


class PieceIO:
    """One torrent's pieces in memory on their way to and from its files."""

    def __init__(self, torrent: Torrent, root: Path) -> None:
        self.torrent = torrent
        self.storage = Storage(torrent, root)
        self._pool = ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix="disk")
        self._buffers: dict[int, bytearray] = {}
        self._contributors: dict[int, set[bytes]] = {}
        self._cache: OrderedDict[int, asyncio.Future[bytes]] = OrderedDict()
        self._cache_bytes = 0
        self._resume_dirty = False
        self._resume_at = 0.0

    async def _run(self, fn: Callable[..., R], *args: object) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- opening and closing -----------------------------------------------------------------

    async def open(
        self, *, seed: bool, verify: bool, on_check: Callable[[int, int], None] | None
    ) -> list[bool]:
        """Open the data and say which pieces are present. *seed*: the files must be complete
        at their real names (verified unless *verify* is False). Otherwise prepare a download,
        resuming what is there (from resume data, else by checking every piece)."""
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
        existed = any(p.exists() or p.with_name(p.name + ".part").exists() for p in st.final_paths)
        await self._run(st.open_for_download)
        found: list[bool] | None = None
        if existed:
            found = await self._run(st.load_resume)
            if found is None:
                found = await self._run(st.check_all, on_check)
        return found or [False] * n

    async def finalize(self) -> None:
        """Every piece is verified: the files take their real names; resume data goes."""
        await self._run(self.storage.finalize)
        self.storage.remove_resume()

    async def save_resume(self, have: list[bool], now: float) -> None:
        """Save resume data if pieces were verified since it was last saved, at most every
        ten seconds (a crash loses at most that much work)."""
        if self._resume_dirty and now >= self._resume_at:
            self._resume_dirty = False
            self._resume_at = now + RESUME_SAVE_SECONDS
            await self._run(self.storage.save_resume, list(have))

    async def close(self, have: list[bool], complete: bool) -> None:
        """Let the writes already handed to the pool finish, save resume data, close files."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        if not complete:
            self.storage.save_resume(have)
        self.storage.close()

    # -- downloading -------------------------------------------------------------------------

    def add_block(self, index: int, begin: int, block: bytes, contributor: bytes) -> None:
        buf = self._buffers.get(index)
        if buf is None:
            buf = self._buffers[index] = bytearray(self.torrent.piece_size(index))
        buf[begin : begin + len(block)] = block
        self._contributors.setdefault(index, set()).add(contributor)

    async def verify_and_write(self, index: int) -> tuple[bool, set[bytes]]:
        """Hash the assembled piece and write it if it matches: (ok, the peers who sent it)."""
        data = self._buffers.pop(index)
        ok = await self._run(self._check_and_write, index, data)
        contributors = self._contributors.pop(index, set())
        if ok:
            self._drop_cached(index)
            self._resume_dirty = True
        return bool(ok), contributors

    def _check_and_write(self, index: int, data: bytearray) -> bool:
        if hashlib.sha1(data).digest() != self.torrent.piece_hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    # -- uploading ---------------------------------------------------------------------------

    def cached_block(self, index: int, begin: int, length: int) -> memoryview | None:
        """The block from the piece cache if the piece is in memory already, else None."""
        fut = self._cache.get(index)
        if fut is None or not fut.done() or fut.cancelled() or fut.exception() is not None:
            return None
        return memoryview(fut.result())[begin : begin + length]

    async def read_block(self, index: int, begin: int, length: int) -> memoryview:
        """A block to upload, from a small cache of whole pieces read from disk."""
        fut = self._cache.get(index)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._pool, self.storage.read, index)
            self._cache[index] = fut
            self._cache_bytes += self.torrent.piece_size(index)
            while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
                old, _ = self._cache.popitem(last=False)
                self._cache_bytes -= self.torrent.piece_size(old)
        else:
            self._cache.move_to_end(index)
        try:
            data = await asyncio.shield(fut)
        except SwarmError:
            self._drop_cached(index)
            raise
        return memoryview(data)[begin : begin + length]

    def _drop_cached(self, index: int) -> None:
        if self._cache.pop(index, None) is not None:
            self._cache_bytes -= self.torrent.piece_size(index)
