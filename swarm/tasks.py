"""Tasks with an owner: every task a part starts is tracked, and cancelled when it stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from swarm.errors import SwarmError

log = logging.getLogger(__name__)


class TaskOwner:
    """Starts tasks, reports the first one that fails (a :class:`SwarmError`; anything else
    is logged and wrapped as an internal error), and cancels them all on :meth:`close`."""

    def __init__(self, on_failure: Callable[[SwarmError], None]) -> None:
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self.closing:
            coro.close()  # something arriving while we shut down: nothing to start
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Call *fn* now, its failure reported as a spawned task's would be (no task made)."""
        if self.closing:
            return
        try:
            fn(*args)
        except Exception as exc:
            self._report(exc)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if not isinstance(exc, SwarmError):
            log.error("task failed", exc_info=exc)
            exc = SwarmError(f"internal error: {exc!r}")
        self._on_failure(exc)

    async def close(self) -> None:
        """Start nothing more; cancel every task and wait until each has ended."""
        self.closing = True
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
