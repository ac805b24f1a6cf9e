"""Zero-copy response bodies for the central server: ``os.sendfile`` from a file to a
connection's non-blocking socket, on any event loop.

asyncio's ``loop.sendfile`` is missing from uvloop, whose fallback copies through Python at
half the speed; so the server waits until aiohttp has handed the response head to the
kernel (:func:`wait_write_buffer_empty`), then sends the body on a dup of the socket's fd
with :class:`Sendfile`, waiting on the loop whenever the socket buffer is full.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

__all__ = ["SENDFILE_MAX", "Sendfile", "wait_write_buffer_empty"]

SENDFILE_MAX = 1 << 30  # per os.sendfile call; the kernel stops at the socket buffer anyway


async def wait_write_buffer_empty(request: web.Request) -> None:
    """Wait until the transport has handed everything (the headers) to the kernel, so that
    bytes sent on the socket directly cannot overtake them."""
    transport = request.transport
    assert transport is not None
    if transport.get_write_buffer_size() == 0:
        return
    # With a high-water mark of 0 the protocol is paused until the buffer is empty, and
    # aiohttp's drain() waits for exactly that.
    high, low = transport.get_write_buffer_limits()[::-1]
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await request.writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


class Sendfile:
    """``os.sendfile`` from a file to a non-blocking socket, waiting on the event loop
    whenever the socket buffer is full."""

    def __init__(self, out_fd: int, in_fd: int) -> None:
        self._out = out_fd
        self._in = in_fd

    async def send(self, offset: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] | None = None
        watching = False

        def writable() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        try:
            while count > 0:
                try:
                    sent = os.sendfile(self._out, self._in, offset, min(count, SENDFILE_MAX))
                except BlockingIOError:
                    sent = -1
                if sent == 0:
                    raise EOFError("the file shrank while it was being sent")
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
                waiter = loop.create_future()
                if not watching:
                    loop.add_writer(self._out, writable)
                    watching = True
                await waiter
        finally:
            if watching:
                loop.remove_writer(self._out)
