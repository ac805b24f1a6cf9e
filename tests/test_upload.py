"""The upload loop (swarm/upload.py): blocks a peer asked for, within the shared rate limit; a
real event loop, a fake connection and a limiter that records what it was asked."""

from __future__ import annotations

import asyncio
from collections import deque

from swarm.upload import serve

BLOCK = 16 * 1024


class Torrent:
    piece_length = 4 * BLOCK


class State:
    def __init__(self, requests: list[tuple[int, int, int]]) -> None:
        self.torrent = Torrent()
        self.requests_in = deque(requests)
        self.am_choking = False

    def next_request(self) -> tuple[int, int, int] | None:
        return self.requests_in.popleft() if self.requests_in else None

    def withdrawn(self, blocks: list[tuple[int, int, int]]) -> bytes:
        return b"".join(b"reject%d;" % b[0] for b in blocks)


class Conn:
    def __init__(self, requests: list[tuple[int, int, int]]) -> None:
        self.state = State(requests)
        self.wake_upload = asyncio.Event()
        self.write_ok = asyncio.Event()
        self.write_ok.set()
        self.closed = False
        self.written: list[bytes] = []
        self.blocks: list[tuple[int, int, int]] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def write_blocks(self, out: list[bytes | memoryview], sent: list, size: int) -> bool:
        self.blocks += sent
        return True


class Source:
    def cached_block(self, index: int, begin: int, length: int) -> memoryview:
        return memoryview(bytes(length))

    async def read_block(self, index: int, begin: int, length: int) -> memoryview:
        raise AssertionError("every block is cached here")


class Limiter:
    """Holds each batch until the test lets it go; records reservations and refunds."""

    unlimited = False

    def __init__(self) -> None:
        self.reserved: list[int] = []
        self.refunded: list[int] = []

    async def acquire(self, amount: int, rank: int) -> None:
        self.reserved.append(amount)
        await asyncio.sleep(0.05)

    def refund(self, amount: int) -> None:
        self.refunded.append(amount)


def test_blocks_withdrawn_because_we_choked_give_their_upload_back() -> None:
    """Choked while its batch waited for the rate: the peer is told (rejects), and the bytes
    reserved for it go back to the limit for the other peers, instead of the time they stood
    for being lost (at every choking round, a piece's worth per choked peer)."""

    async def main() -> None:
        conn = Conn([(0, 0, BLOCK), (0, BLOCK, BLOCK)])
        limiter = Limiter()
        task = asyncio.create_task(serve(conn, Source(), limiter))  # type: ignore[arg-type]
        async with asyncio.timeout(5):
            while not limiter.reserved:
                await asyncio.sleep(0.001)
        conn.state.am_choking = True  # a choking round, while the batch waits its turn
        async with asyncio.timeout(5):
            while not limiter.refunded:
                await asyncio.sleep(0.001)
        assert limiter.refunded == limiter.reserved == [2 * (BLOCK + 13)]
        assert conn.blocks == [] and conn.written == [b"reject0;reject0;"]
        conn.closed = True
        conn.wake_upload.set()
        await task

    asyncio.run(main())


def test_a_peer_not_choked_gets_its_batch_and_nothing_is_refunded() -> None:
    async def main() -> None:
        conn = Conn([(1, 0, BLOCK), (1, BLOCK, BLOCK), (2, 0, BLOCK)])
        limiter = Limiter()
        task = asyncio.create_task(serve(conn, Source(), limiter))  # type: ignore[arg-type]
        async with asyncio.timeout(5):
            while len(conn.blocks) < 3:
                await asyncio.sleep(0.001)
        assert conn.blocks == [(1, 0, BLOCK), (1, BLOCK, BLOCK), (2, 0, BLOCK)]
        assert limiter.refunded == []
        conn.closed = True
        conn.wake_upload.set()
        await task

    asyncio.run(main())


class Unlimited:
    unlimited = True

    async def acquire(self, amount: int, rank: int) -> None:
        raise AssertionError("no limit: the gate orders the batches")

    def refund(self, amount: int) -> None:
        pass


class Gate:
    """Holds each batch until the test lets it go; records admissions and releases."""

    def __init__(self, waited: bool) -> None:
        self.waited = waited
        self.admitted: list[tuple[int, int]] = []  # (bytes, rank)
        self.released: list[object] = []
        self.go = asyncio.Event()

    async def admit(self, key: object, transport: object, size: int, rank: int) -> None:
        self.admitted.append((size, rank))
        await self.go.wait()

    def release(self, key: object) -> None:
        self.released.append(key)


def test_with_no_limit_a_batch_waits_at_the_uplink_gate_and_a_choked_one_lets_go() -> None:
    """No upload limit: the batch goes through the session's gate, ranked by its piece; the
    gate having made batches wait, a piece's worth at a time (not 256 KiB); choked while it
    waited, the peer gets its rejects and the gate its turn back."""

    async def main() -> None:
        conn = Conn([(7, i * BLOCK, BLOCK) for i in range(8)])
        conn.transport = None
        gate = Gate(waited=True)
        ranks = {7: 3}
        task = asyncio.create_task(
            serve(conn, Source(), Unlimited(), ranks.__getitem__, gate)  # type: ignore[arg-type]
        )
        async with asyncio.timeout(5):
            while not gate.admitted:
                await asyncio.sleep(0.001)
        assert gate.admitted == [(4 * (BLOCK + 13), 3)]  # a piece (4 blocks), not 8 blocks
        conn.state.am_choking = True
        gate.go.set()
        async with asyncio.timeout(5):
            while not gate.released:
                await asyncio.sleep(0.001)
        assert gate.released == [conn] and conn.blocks == []
        assert conn.written[0] == b"reject7;" * 4
        conn.closed = True
        conn.wake_upload.set()
        await task

    asyncio.run(main())
