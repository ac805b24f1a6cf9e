"""Our haves in batches (swarm/have_batch.py): one write per peer for the pieces verified in
one window (a short one to the peers downloading from us, a longer one to the rest), none for
a piece the peer has; a real event loop, fake connections."""

from __future__ import annotations

import asyncio

from swarm import wire
from swarm.have_batch import HaveBatcher


class State:
    def __init__(self, has: list[bool], downloading: bool) -> None:
        self.peer_has = has
        self.am_choking = not downloading
        self.peer_interested = downloading
        self.requests_in: list[tuple[int, int, int]] = []


class Peer:
    def __init__(self, has: list[bool], downloading: bool = False) -> None:
        self.state = State(has, downloading)
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
        batcher = HaveBatcher({a}, delay=0.01, idle_delay=0.01)
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


def test_the_downloading_hear_within_the_short_window_the_others_within_the_long_one() -> None:
    async def main() -> None:
        fast = Peer([False] * 4, downloading=True)
        slow = Peer([False] * 4)
        busy = Peer([True] * 4, downloading=True)  # a seed we upload to: our upload is busy
        busy.state.requests_in.append((3, 0, 16384))
        batcher = HaveBatcher({fast, slow, busy}, delay=0.01, idle_delay=60.0)
        batcher.add(0)
        batcher.add(1)
        async with asyncio.timeout(5):
            await fast.sent.wait()
        assert fast.writes == [(wire.Have(0), wire.Have(1))]
        assert slow.writes == []  # not downloading from us: it hears at the long window
        batcher._flush(everyone=True)  # the long window ends (as its timer would)
        assert slow.writes == [(wire.Have(0), wire.Have(1))]
        assert fast.writes == [(wire.Have(0), wire.Have(1))]  # told already: nothing again
        batcher.close()

    asyncio.run(main())


def test_each_peer_hears_each_piece_once_whatever_window_it_comes_in() -> None:
    async def main() -> None:
        p = Peer([False] * 4)
        late = Peer([False] * 4)
        batcher = HaveBatcher({p}, delay=60.0, idle_delay=60.0)
        batcher.add(0)
        batcher._flush(everyone=False)  # p did not download then: not told
        p.state.am_choking, p.state.peer_interested = False, True  # now it does
        batcher.add(1)
        batcher._flush(everyone=False)
        assert p.writes == [(wire.Have(0), wire.Have(1))]  # what it missed comes along
        batcher.peers = {p, late}
        batcher.joined(late)  # our bitfield told it of 0 and 1
        batcher.add(2)
        p.state.am_choking = True  # it stops downloading before the next short window
        batcher._flush(everyone=False)
        batcher._flush(everyone=True)
        assert p.writes[1:] == [(wire.Have(2),)]
        assert late.writes == [(wire.Have(2),)]
        batcher._flush(everyone=True)  # nothing new: nothing sent
        assert len(p.writes) == 2 and len(late.writes) == 1
        batcher.close()

    asyncio.run(main())


def test_haves_ride_along_another_write_once_and_only_to_peers_that_joined() -> None:
    async def main() -> None:
        a = Peer([False, True, False])
        stranger = Peer([False] * 3)
        batcher = HaveBatcher({a, stranger}, delay=60.0, idle_delay=60.0)
        batcher.joined(a)
        batcher.add(0)
        batcher.add(1)
        assert batcher.take(stranger) == b""  # never told our bitfield: the window's job
        taken = batcher.take(a)
        assert taken == wire.encode(wire.Have(0))  # it has piece 1: not told
        assert batcher.take(a) == b""  # once
        batcher.flush()
        assert a.writes == []  # heard already: the window sends it nothing
        assert stranger.writes == [(wire.Have(0), wire.Have(1))]
        batcher.close()

    asyncio.run(main())


def test_peers_waiting_for_an_unchoke_hear_at_the_longest_window() -> None:
    async def main() -> None:
        waiting = Peer([False] * 4)  # interested in us, choked
        waiting.state.peer_interested = True
        idle = Peer([False] * 4)  # not interested: a new piece may make it so
        batcher = HaveBatcher({waiting, idle}, delay=60.0, idle_delay=60.0, waiting_delay=60.0)
        batcher.add(0)
        batcher._flush(everyone=True)  # the first idle window: everyone
        batcher.add(1)
        batcher._flush(everyone=True)  # the next, within waiting_delay: not the waiting
        assert idle.writes == [(wire.Have(0),), (wire.Have(1),)]
        assert waiting.writes == [(wire.Have(0),)]
        assert batcher.take(waiting) == wire.encode(wire.Have(1))  # with our unchoke, say
        batcher.add(2)
        batcher.flush()  # we became a seed: everyone at once
        assert waiting.writes[-1] == (wire.Have(2),)
        batcher.close()

    asyncio.run(main())


def test_a_peer_with_requests_queued_hears_with_our_blocks_not_the_short_window() -> None:
    async def main() -> None:
        busy = Peer([False] * 4, downloading=True)
        busy.state.requests_in.append((0, 0, 16384))
        batcher = HaveBatcher({busy}, delay=60.0, idle_delay=60.0)
        batcher.joined(busy)
        batcher.add(1)
        batcher._flush(everyone=False)
        assert busy.writes == []  # our next block write takes it
        assert batcher.take(busy) == wire.encode(wire.Have(1))
        batcher.add(2)
        busy.state.requests_in.clear()  # nothing queued: the window tells it
        batcher._flush(everyone=False)
        assert busy.writes == [(wire.Have(2),)]
        batcher.close()

    asyncio.run(main())


def test_with_our_upload_idle_every_peer_hears_within_the_short_window() -> None:
    """No peer has requests queued with us: a have is the only thing that can make a peer
    ask, so the peers not interested in us hear within the short window too; once a peer has
    requests queued, they hear at the long one again."""

    async def main() -> None:
        uninterested = Peer([False] * 4)
        batcher = HaveBatcher({uninterested}, delay=0.01, idle_delay=60.0)
        batcher.add(0)
        async with asyncio.timeout(5):
            await uninterested.sent.wait()
        assert uninterested.writes == [(wire.Have(0),)]

        asker = Peer([True] * 4, downloading=True)
        asker.state.requests_in.append((0, 0, 16384))
        later = Peer([False] * 4)
        busy = HaveBatcher({later, asker}, delay=0.01, idle_delay=60.0)
        busy.add(1)
        await asyncio.sleep(0.05)  # past the short window: the long one holds it
        assert later.writes == []
        # the long window, already running, is cut short once our upload goes idle
        asker.state.requests_in.clear()
        busy.add(2)
        async with asyncio.timeout(5):
            await later.sent.wait()
        assert later.writes == [(wire.Have(1), wire.Have(2))]
        batcher.close()
        busy.close()

    asyncio.run(main())


def test_a_peer_that_left_with_requests_queued_leaves_our_upload_idle() -> None:
    """The peer last seen with requests queued with us is looked at first: once it has
    closed and left, it no longer counts, though its queue was never emptied."""

    async def main() -> None:
        asker = Peer([True] * 4, downloading=True)
        asker.state.requests_in.append((0, 0, 16384))
        later = Peer([False] * 4)
        peers = {later, asker}
        batcher = HaveBatcher(peers, delay=0.01, idle_delay=60.0)
        batcher.add(1)  # our upload is busy: the long window
        asker.closed = True
        peers.discard(asker)
        batcher.add(2)  # idle now: the short window
        async with asyncio.timeout(5):
            await later.sent.wait()
        assert later.writes == [(wire.Have(1), wire.Have(2))]
        batcher.close()

    asyncio.run(main())
