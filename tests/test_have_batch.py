"""Our haves in batches (swarm/have_batch.py): one write per peer for the pieces verified in
one window, none for a piece the peer has; a real event loop, fake connections."""

from __future__ import annotations

import asyncio

from swarm import wire
from swarm.have_batch import HaveBatcher


class State:
    def __init__(self, has: list[bool]) -> None:
        self.peer_has = has


class Peer:
    def __init__(self, has: list[bool]) -> None:
        self.state = State(has)
        self.closed = False
        self.writes: list[tuple[wire.Message, ...]] = []
        self.sent = asyncio.Event()

    def send(self, *msgs: wire.Message) -> None:
        self.writes.append(msgs)
        self.sent.set()


def test_one_write_per_peer_with_only_the_pieces_it_lacks() -> None:
    async def main() -> None:
        a = Peer([False, False, False, False])
        b = Peer([True, False, True, False])
        seed = Peer([True] * 4)
        batcher = HaveBatcher({a, b, seed}, delay=60.0)
        for i in (0, 1, 2):
            batcher.add(i)
        assert not a.writes  # held until the window ends or a flush
        batcher.flush()
        assert a.writes == [(wire.Have(0), wire.Have(1), wire.Have(2))]
        assert b.writes == [(wire.Have(1),)]
        assert seed.writes == []  # a seed lacks nothing: it hears nothing
        batcher.flush()  # nothing pending: nothing sent
        assert len(a.writes) == 1

    asyncio.run(main())


def test_the_window_sends_by_itself_and_close_drops_what_is_pending() -> None:
    async def main() -> None:
        a = Peer([False, False])
        batcher = HaveBatcher({a}, delay=0.01)
        batcher.add(1)
        async with asyncio.timeout(5):
            await a.sent.wait()
        assert a.writes == [(wire.Have(1),)]
        slow = HaveBatcher({a}, delay=60.0)
        slow.add(0)
        slow.close()
        slow.flush()
        assert a.writes == [(wire.Have(1),)]

    asyncio.run(main())


def test_a_closed_peer_is_not_written_to() -> None:
    async def main() -> None:
        a = Peer([False])
        a.closed = True
        batcher = HaveBatcher({a}, delay=60.0)
        batcher.add(0)
        batcher.flush()
        assert a.writes == []

    asyncio.run(main())
