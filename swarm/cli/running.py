"""Running a command's asyncio work until it ends or a signal stops it: SIGINT and SIGTERM
set a *stop* event, the exit code says which ended it, and the commands that move data run on
uvloop with a garbage collector that runs less often (:func:`run_until_signal`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import asyncio

    from swarm.torrent import TorrentController

T = TypeVar("T")

# What a command's *main* returns when a signal cut its work short (a download not finished):
# :func:`run_until_signal` turns it into 128 + the signal's number, as shells report a command
# killed by a signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM. A command whose work is to run
# until it is stopped (seed, tracker, serve-central) returns 0 instead: that is its normal end.
INTERRUPTED = -1


def run_until_signal(
    main: Callable[[asyncio.Event], Awaitable[int | None]], fast_loop: bool = False
) -> int:
    """Run *main(stop)* on a fresh event loop; SIGINT and SIGTERM set *stop*. *main* returns
    an exit code, or :data:`INTERRUPTED` (exit 130 for SIGINT, 143 for SIGTERM). With
    *fast_loop* (the commands that move data), on uvloop's event loop where it is installed
    (much faster sockets), with the garbage collector tuned (:func:`_fast_loop`)."""
    import asyncio
    import signal

    received: list[int] = []

    async def runner() -> int | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            received.append(sig)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    with asyncio.Runner(loop_factory=_fast_loop() if fast_loop else None) as r:
        code = r.run(runner()) or 0
    if code == INTERRUPTED:
        return 128 + (received[0] if received else signal.SIGINT)
    return code


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> asyncio.Future[T] | None:
    """Run *work* until it is done (its finished future) or *stop* is set first (None: the
    work is cancelled, and waited for, so whatever it started is closed)."""
    import asyncio

    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task


async def first_of(*waits: Awaitable[object]) -> None:
    """Until the first of *waits* is done; the others are cancelled."""
    import asyncio

    futures = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f in futures:
            f.cancel()


async def wait_stop(stop: asyncio.Event, t: TorrentController) -> None:
    """Until Ctrl-C (or SIGTERM), or until the torrent stops by itself (raising why)."""
    await first_of(stop.wait(), t.stopped.wait())
    if t.failed is not None:
        raise t.failed


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed, and a garbage collector that runs less often:
    what start-up made is frozen out of its scans, and the youngest objects are collected after
    50,000 new ones rather than 700 (at N = 100 a downloader process spent a tenth of its time
    in collections; this took 4% off its CPU and its time, 8 of 8 alternated pairs, for 8 MiB
    more memory). Cycles are still collected, later."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
