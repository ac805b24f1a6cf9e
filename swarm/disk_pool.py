"""One thread pool per process for every torrent's blocking disk work.

A process may run many torrents (``swarm fetch-group`` runs K downloaders, each its own
session). A pool per torrent would put 2K threads in the fight for the GIL; one shared pool of
:data:`DISK_THREADS` keeps that bounded whatever K is. Each user tracks its own work on it
(:class:`DiskJobs`), so closing one torrent waits for that torrent's writes only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

DISK_THREADS = 4

R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def shared_pool() -> ThreadPoolExecutor:
    """The process's disk pool, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix="disk")
        return _pool


class DiskJobs:
    """One owner's jobs on the shared pool: run them, and wait for those still running."""

    def __init__(self) -> None:
        self._pool = shared_pool()
        self._running: set[concurrent.futures.Future[object]] = set()

    def submit(self, fn: Callable[..., R], *args: object) -> asyncio.Future[R]:
        """Start *fn(*args)* on the pool; the loop's future for its result."""
        job = self._pool.submit(fn, *args)
        self._running.add(job)  # type: ignore[arg-type]
        job.add_done_callback(self._running.discard)
        return asyncio.wrap_future(job)

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        return await self.submit(fn, *args)

    async def drain(self) -> None:
        """Wait until every job started here has finished (or was cancelled unstarted)."""
        running = list(self._running)
        if running:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, concurrent.futures.wait, running)
