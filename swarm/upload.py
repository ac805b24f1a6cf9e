"""Serving one peer's requests: its queued requests in order, within the upload rate limit.

Unthrottled, several blocks go out in one write (one system call); under a rate limit, at most
a piece's worth at a time (up to :data:`THROTTLED_BATCH`) so that the peers sharing the limit
take turns: the piece is of use to the peer only once all its blocks are there, so they lose
nothing by coming together. One block a write cost a write, a timer and a read at the other
end per 16 KiB (at N = 100, 32 KiB pieces, a sixth of a downloader's time); two blocks of two
16 KiB pieces a write delayed the first one (N = 8: 4.71 s against 4.62 s). With no limit, the
session's :class:`~swarm.uplink.UplinkGate` keeps the same order on a slow uplink (a piece's
worth a batch while it makes batches wait). The connection
(:class:`~swarm.peer.PeerConnection`) runs :func:`serve` as its upload task and does the
writing; this module holds the loop, which is most of an uploader's per-block work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from swarm import wire
from swarm.peer_state import Block, PeerState
from swarm.ratelimit import RateLimiter
from swarm.uplink import UplinkGate

UNTHROTTLED_BATCH = 256 * 1024  # bytes of blocks per write when no upload limit applies
THROTTLED_BATCH = 64 * 1024  # and at most under one (a piece's worth, if less)


class BlockSource(Protocol):
    """Where the blocks we upload come from (the torrent's pieces in memory or on disk)."""

    def cached_block(self, index: int, begin: int, length: int) -> memoryview | None: ...
    async def read_block(self, index: int, begin: int, length: int) -> memoryview: ...


class Uploader(Protocol):
    """A connection as its upload task sees it."""

    state: PeerState
    transport: Any  # its transport (the uplink gate reads its socket's send queue)
    wake_upload: asyncio.Event  # set when a request is queued
    write_ok: asyncio.Event  # clear while the peer does not read what we send

    @property
    def closed(self) -> bool: ...
    def write(self, data: bytes) -> None: ...
    def write_blocks(self, out: list[bytes | memoryview], sent: list[Block], size: int) -> bool:
        """Write the blocks; False if the connection is going."""
        ...


async def serve(
    conn: Uploader,
    source: BlockSource,
    limiter: RateLimiter,
    rank: Callable[[int], int] = lambda index: 0,
    gate: UplinkGate | None = None,
) -> None:
    """Upload the blocks *conn*'s peer asks for, until the connection closes; under a limit,
    or through *gate* with none, a batch whose piece has the lowest *rank* (how many of our
    peers have it) goes first."""
    state = conn.state
    wake, write_ok = conn.wake_upload, conn.write_ok
    piece = state.torrent.piece_length if state.torrent is not None else 1
    limited = not limiter.unlimited
    gate = None if limited else gate
    small = min(THROTTLED_BATCH, piece)
    header = wire.encode_piece_header
    while not conn.closed:
        if not state.requests_in:
            wake.clear()
            await wake.wait()
            continue
        batch_bytes = small if limited or (gate is not None and gate.waited) else UNTHROTTLED_BATCH
        out: list[bytes | memoryview] = []
        sent: list[Block] = []
        size = 0
        while size < batch_bytes and (req := state.next_request()) is not None:
            index, begin, length = req
            block = source.cached_block(index, begin, length)
            if block is None:
                block = await source.read_block(index, begin, length)
            out.append(header(index, begin, length))
            out.append(block)
            sent.append(req)
            size += length
            if conn.closed or state.am_choking:
                break
        reserved = size + 13 * len(sent)
        if sent and limited:
            await limiter.acquire(reserved, rank(sent[0][0]))
        if not write_ok.is_set():
            await write_ok.wait()
        if gate is not None and sent and not conn.closed and not state.am_choking:
            await gate.admit(conn, conn.transport, reserved, rank(sent[0][0]))
            if conn.closed or state.am_choking:
                gate.release(conn)  # not written after all: the next batch need not wait for it
        if conn.closed:
            limiter.refund(reserved)
            return
        if state.am_choking:
            # We choked the peer while these were on their way: withdraw them, and the
            # upload they would have taken goes to the others.
            conn.write(state.withdrawn(sent))
            limiter.refund(reserved)
            continue
        if not conn.write_blocks(out, sent, size):
            return
