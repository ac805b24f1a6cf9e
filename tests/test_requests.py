"""The request policy, initial seeding and the peer directory, without sockets: fake peers
around real :class:`PeerState` objects, a fake clock."""

from __future__ import annotations

import random

import pytest

from swarm import wire
from swarm.initial_seeding import InitialSeeding
from swarm.peer_directory import SETTLE_SECONDS, STRIKES_TO_BAN, PeerDirectory
from swarm.peer_state import PeerState, Torrent
from swarm.picker import BLOCK_SIZE, PiecePicker
from swarm.requests import MIN_QUEUE, REJECT_MEMORY_SECONDS, RequestPolicy

NUM = 8
PIECE = 2 * BLOCK_SIZE
IH = b"\x07" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakePeer:
    """A connection as the policy and the directory see it, recording what it was told."""

    def __init__(
        self,
        name: str,
        have: list[bool] | None = None,
        *,
        rate: float = 0.0,
        outgoing: bool = True,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.peer_id = name.encode().ljust(20, b"-")
        self.address = address or ("127.0.0.1", 1000 + len(name))
        self.outgoing = outgoing
        self.listen_address: tuple[str, int] | None = None
        self.download_rate = rate
        self.closed = False
        self.reason = ""
        self.asked: list[tuple[int, int, int]] = []
        self.cancelled: list[tuple[int, int, int]] = []
        self.state = PeerState(b"-SW0100-ourselves000", info_hash=IH)
        if have is not None:
            hs = wire.Handshake(wire.make_reserved(), IH, self.peer_id).encode()
            self.state.receive(hs, 0.0)
            self.state.attach(Torrent(IH, NUM, PIECE, NUM * PIECE, [False] * NUM))
            self.state.peer_has = list(have)
            self.state.peer_count = sum(have)
            self.state.peer_choking = False

    def request(self, blocks: list[tuple[int, int, int]]) -> None:
        self.asked += blocks
        self.state.request(blocks)

    def cancel(self, index: int, begin: int, length: int) -> None:
        self.cancelled.append((index, begin, length))
        self.state.cancel(index, begin, length)

    def set_interested(self, value: bool) -> None:
        self.state.interested(value)

    def close(self, reason: str = "") -> None:
        self.closed, self.reason = True, reason

    async def closed_wait(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{self.peer_id!r}>"


def policy(*peers: FakePeer, clock: Clock | None = None) -> tuple[RequestPolicy, set[FakePeer]]:
    picker = PiecePicker(NUM, PIECE, NUM * PIECE, rng=random.Random(1))
    live = set(peers)
    return RequestPolicy(picker, live, clock=clock or Clock()), live  # type: ignore[arg-type]


ALL = [True] * NUM


def test_a_bitfield_counts_the_peer_makes_us_interested_and_asks() -> None:
    p = FakePeer("a", ALL)
    rp, _ = policy(p)
    rp.bitfield(p, ALL)  # type: ignore[arg-type]
    assert rp.picker.seeds == 1
    assert p.state.am_interested
    assert len(p.asked) == MIN_QUEUE  # no rate yet: the least queue


def prime(rp: RequestPolicy, p: FakePeer, clock: Clock, per_s: float) -> None:
    """*p* has been sending blocks (not asked through *rp*) at *per_s* for half a second."""
    pipe = rp.pipeline(p)  # type: ignore[arg-type]
    for _ in range(int(per_s / 2)):
        clock.now += 1 / per_s
        pipe.arrived(999, 0, BLOCK_SIZE, clock.now)


def test_queue_depth_follows_the_measured_pipeline_within_what_the_peer_accepts() -> None:
    clock = Clock()
    p = FakePeer("a", ALL)
    rp, _ = policy(p, clock=clock)
    assert rp.queue_depth(p) == MIN_QUEUE  # type: ignore[arg-type]  # nothing measured yet
    prime(rp, p, clock, 400)
    assert 85 <= rp.queue_depth(p) <= 102  # type: ignore[arg-type]  # 0.25 s of 400/s + 2
    p.state.remote_reqq = 10
    assert rp.queue_depth(p) == 10  # type: ignore[arg-type]
    p.state.snubbed = True
    assert rp.queue_depth(p) == 1  # type: ignore[arg-type]


def test_the_policy_times_its_requests_and_forgets_withdrawn_ones() -> None:
    clock = Clock()
    p = FakePeer("a", ALL)
    rp, live = policy(p, clock=clock)
    prime(rp, p, clock, 40)
    rp.bitfield(p, ALL)  # type: ignore[arg-type]
    asked = list(p.asked)
    for block in asked[:2]:  # each answered after 0.3 s
        clock.now += 0.3
        p.state.receive(wire.encode(wire.Piece(block[0], block[1], bytes(block[2]))), 1.0)
        rp.block_arrived(p, *block)  # type: ignore[arg-type]
    pipe = rp.pipeline(p)  # type: ignore[arg-type]
    assert pipe.delay == pytest.approx(0.275, rel=0.1)  # 0.3 s less a block's 25 ms
    p.state.peer_choking = True
    rp.choked(p)  # type: ignore[arg-type]
    for block in asked[-2:]:  # withdrawn at the choke, then they came late: no samples
        clock.now += 3.0
        rp.block_arrived(p, *block)  # type: ignore[arg-type]
    assert pipe.delay < 0.275
    live.discard(p)
    rp.peer_gone(p)  # type: ignore[arg-type]
    assert rp.pipeline(p) is not pipe  # type: ignore[arg-type]  # its measurements went with it


def test_asks_in_batches_only_when_half_the_queue_has_drained() -> None:
    p = FakePeer("a", ALL)
    rp, _ = policy(p)
    rp.bitfield(p, ALL)  # type: ignore[arg-type]
    first = list(p.asked)
    rp.fill(p)  # type: ignore[arg-type]
    assert p.asked == first  # 4 out, depth 4: nothing more yet
    for index, begin, length in first[:3]:
        p.state.receive(wire.encode(wire.Piece(index, begin, bytes(length))), 1.0)
        rp.block_arrived(p, index, begin, length)  # type: ignore[arg-type]
    rp.fill(p)  # type: ignore[arg-type]
    assert len(p.asked) == 4 + 3


def deliver_first_blocks(rp: RequestPolicy, p: FakePeer) -> set[tuple[int, int, int]]:
    """*p* sends the first block of each piece it was asked for; the rest it still owes."""
    firsts = [b for b in p.asked if b[1] == 0]
    for index, begin, length in firsts:
        p.state.receive(wire.encode(wire.Piece(index, begin, bytes(length))), 1.0)
        assert rp.block_arrived(p, index, begin, length)  # type: ignore[arg-type]
    return {b for b in p.asked if b[1] != 0}


@pytest.mark.parametrize("how", ["choke", "snub"])
def test_a_peer_that_chokes_or_snubs_us_loses_its_requests_to_another(how: str) -> None:
    a, b = FakePeer("a", ALL), FakePeer("b", ALL)
    rp, _ = policy(a, b)
    rp.bitfield(a, ALL)  # type: ignore[arg-type]
    owed = deliver_first_blocks(rp, a)
    if how == "choke":
        a.state.peer_choking = True
        rp.choked(a)  # type: ignore[arg-type]
        assert a.state.requests_out == {}
    else:
        a.state.snubbed = True
        rp.snubbed(a)  # type: ignore[arg-type]
        assert len(a.state.requests_out) <= 1  # one at a time from now on
    rp.bitfield(b, ALL)  # type: ignore[arg-type]
    still_a = {(i, begin, n) for (i, begin), n in a.state.requests_out.items()}
    assert owed and owed <= set(b.asked) | still_a  # started pieces are finished first


def test_a_rejected_piece_is_not_asked_of_that_peer_for_a_while() -> None:
    clock = Clock()
    only = [i == 3 for i in range(NUM)]
    p = FakePeer("a", only)
    rp, _ = policy(p, clock=clock)
    rp.bitfield(p, only)  # type: ignore[arg-type]
    asked = list(p.asked)
    assert {i for i, _, _ in asked} == {3}
    p.asked.clear()
    for index, begin, length in asked:
        assert p.state.receive(wire.encode(wire.Reject(index, begin, length)), 1.0)
    rp.rejected(p, asked)  # type: ignore[arg-type]
    assert p.asked == []  # the only piece it has was rejected just now
    clock.now += REJECT_MEMORY_SECONDS + 0.1
    rp.fill(p)  # type: ignore[arg-type]
    assert (3, 0, BLOCK_SIZE) in p.asked


def test_blocks_a_peer_rejected_go_to_a_peer_that_has_the_piece() -> None:
    only3 = [i == 3 for i in range(NUM)]
    a, b = FakePeer("a", only3), FakePeer("bb", only3)
    c = FakePeer("ccc", [i == 5 for i in range(NUM)])
    rp, _ = policy(a, b, c)
    rp.bitfield(a, only3)  # type: ignore[arg-type]
    rp.bitfield(b, only3)  # type: ignore[arg-type]  # piece 3 is all asked of a already
    rp.bitfield(c, [i == 5 for i in range(NUM)])  # type: ignore[arg-type]
    asked = list(a.asked)
    assert {i for i, _, _ in asked} == {3} and b.asked == []
    for index, begin, length in asked:
        assert a.state.receive(wire.encode(wire.Reject(index, begin, length)), 1.0)
    rp.rejected(a, asked)  # type: ignore[arg-type]  # one read's rejects, together
    assert sorted(b.asked) == sorted(asked)
    assert {i for i, _, _ in c.asked} == {5}


def test_end_game_block_arriving_cancels_the_other_copies() -> None:
    a, b = FakePeer("a", ALL), FakePeer("b", ALL)
    rp, _ = policy(a, b)
    for i in range(1, NUM):
        rp.picker.set_have(i)  # piece 0 is the last one missing
    rp.bitfield(a, ALL)  # type: ignore[arg-type]
    rp.bitfield(b, ALL)  # type: ignore[arg-type]
    # Piece 0 has two blocks, both asked of a; in end-game b is asked for them too.
    assert sorted(a.asked) == sorted(b.asked) == [(0, 0, BLOCK_SIZE), (0, BLOCK_SIZE, BLOCK_SIZE)]
    b.state.receive(wire.encode(wire.Piece(0, 0, bytes(BLOCK_SIZE))), 1.0)
    assert rp.block_arrived(b, 0, 0, BLOCK_SIZE)  # type: ignore[arg-type]
    assert a.cancelled == [(0, 0, BLOCK_SIZE)]
    assert not rp.block_arrived(a, 0, 0, BLOCK_SIZE)  # type: ignore[arg-type]  # a late copy


def test_a_peer_leaving_is_uncounted_and_its_blocks_released() -> None:
    half = [i < NUM // 2 for i in range(NUM)]
    a = FakePeer("a", half)
    rp, live = policy(a)
    rp.bitfield(a, half)  # type: ignore[arg-type]
    assert rp.picker.availability[:2] == [1, 1]
    live.discard(a)
    rp.peer_gone(a)  # type: ignore[arg-type]
    assert rp.picker.availability == [0] * NUM and rp.picker.partial == {}


def test_have_that_completes_a_peer_counts_it_as_a_seed() -> None:
    almost = [i != 5 for i in range(NUM)]
    a = FakePeer("a", almost)
    rp, _ = policy(a)
    rp.bitfield(a, almost)  # type: ignore[arg-type]
    a.state.receive(wire.encode(wire.Have(5)), 1.0)
    rp.have(a, 5)  # type: ignore[arg-type]
    assert rp.picker.seeds == 1 and rp.picker.availability == [0] * NUM


def test_seeds_are_closed_once_we_are_complete() -> None:
    a, b = FakePeer("a", ALL), FakePeer("b", [False] * NUM)
    rp, _ = policy(a, b)
    for i in range(NUM):
        rp.picker.set_have(i)
    rp.bitfield(a, ALL)  # type: ignore[arg-type]
    assert a.closed and a.reason == "both of us are seeds"
    b.state.interested(True)
    rp.download_complete()
    assert not b.closed and not b.state.am_interested


# -- initial seeding -------------------------------------------------------------------------


def test_initial_seeding_turns_a_second_asker_away_for_a_while() -> None:
    now = [0.0]
    s = InitialSeeding(3, hold=10.0, clock=lambda: now[0])
    serving = {"a", "b"}
    assert not s.defer("a", 0, serving.__contains__)  # a owns piece 0
    assert s.defer("b", 0, serving.__contains__)  # b: get it from a
    now[0] = 9.5
    assert s.defer("b", 0, serving.__contains__)  # and again, as long as the hold lasts
    assert s.defer("c", 0, serving.__contains__)  # c's hold starts now
    now[0] = 10.0
    assert not s.defer("b", 0, serving.__contains__)  # then b is served: nobody starves
    assert s.defer("c", 0, serving.__contains__)
    serving.discard("a")  # a is choked now: the next asker takes piece 0 over
    assert not s.defer("c", 0, serving.__contains__)
    s.sent([(0, 0, 1), (1, 0, 1)])
    assert not s.done
    s.sent([(2, 0, 1)])
    assert s.done and not s.defer("d", 1, serving.__contains__)
    s.reset(done=False)
    assert not s.done


# -- the peer directory ----------------------------------------------------------------------


def test_directory_dials_within_the_limit_and_backs_off() -> None:
    clock = Clock()
    d: PeerDirectory[FakePeer] = PeerDirectory(
        b"-SW0100-ourselves000", max_peers=2, max_outgoing=2, clock=clock
    )
    d.add([("127.0.0.1", p) for p in (1, 2, 3)] + [("127.0.0.1", 9)])
    assert d.to_dial(lambda: True, ("127.0.0.1", 9)) == [("127.0.0.1", 1), ("127.0.0.1", 2)]
    assert d.to_dial(lambda: True, ("127.0.0.1", 9)) == []  # two dials in flight: the limit
    d.dialled(("127.0.0.1", 1), ok=False)
    d.dialled(("127.0.0.1", 2), ok=False)
    # Both failed: back off; the third is next, never ourselves.
    assert d.to_dial(lambda: True, ("127.0.0.1", 9)) == [("127.0.0.1", 3)]
    clock.now += 4.1
    assert ("127.0.0.1", 1) in d.to_dial(lambda: True, ("127.0.0.1", 9))
    assert d.to_dial(lambda: False, ("127.0.0.1", 9)) == []  # the session is full


def test_directory_counts_a_dial_that_connected_once_toward_its_outgoing_limit() -> None:
    """A dial that connected is a peer of ours until it closes, not also a dial in flight:
    with 3 of 4 outgoing connections made, one more may be dialled (the double count stopped
    every downloader of a compare at N = 100 at about half its outgoing limit)."""
    d: PeerDirectory[FakePeer] = PeerDirectory(
        b"-SW0100-ourselves000", max_peers=8, max_outgoing=4, clock=Clock()
    )
    us = ("127.0.0.1", 9)
    d.add([("127.0.0.1", p) for p in range(1, 7)])
    first = d.to_dial(lambda: True, us)
    assert len(first) == 4
    for addr in first[:3]:  # three connect (the fourth is still dialling)
        assert d.admit(FakePeer(f"p{addr[1]}", address=addr))
    assert d.to_dial(lambda: True, us) == []  # 3 connected + 1 in flight: the limit
    d.dialled(first[3], ok=False)  # the fourth failed
    assert len(d.to_dial(lambda: True, us)) == 1


def test_directory_dials_past_its_share_once_settled_while_few_dial_it() -> None:
    """A torrent that nobody dials (it announced last in a swarm that started at once) has
    only its own dials: from :data:`SETTLE_SECONDS` on it dials more while it holds fewer
    than *dial_under* connections (the texts' scenario: its last copies 132-135 s -> 115 s)."""
    clock = Clock()
    d: PeerDirectory[FakePeer] = PeerDirectory(
        b"-SW0100-ourselves000", max_peers=25, max_outgoing=7, dial_under=14, clock=clock
    )
    plain: PeerDirectory[FakePeer] = PeerDirectory(
        b"-SW0100-ourselves000", max_peers=25, max_outgoing=7, clock=clock
    )
    us = ("127.0.0.1", 9)
    for x in (d, plain):
        x.add([("127.0.0.1", p) for p in range(1, 41)])
        for addr in x.to_dial(lambda: True, us):
            assert x.admit(FakePeer(f"p{addr[1]}", address=addr))
        assert len(x.peers) == 7
        assert x.to_dial(lambda: True, us) == []  # its share, and too soon to dial on
    clock.now += SETTLE_SECONDS
    more = d.to_dial(lambda: True, us)
    assert len(more) == 7  # up to 14 in all
    assert plain.to_dial(lambda: True, us) == []  # without dial_under: its share only
    for addr in more:
        assert d.admit(FakePeer(f"p{addr[1]}", address=addr))
    assert d.to_dial(lambda: True, us) == []
    d.admit(FakePeer("in", outgoing=False))  # a peer that dials us counts toward the 14 too
    d.remove(next(p for p in d.peers if p.outgoing))
    assert d.to_dial(lambda: True, us) == []  # 14 held: no dial


def test_directory_keeps_one_of_two_crossed_connections_on_both_sides() -> None:
    low, high = b"-AA0001-aaaaaaaaaaaa", b"-ZZ0001-zzzzzzzzzzzz"
    for ours, theirs in ((low, high), (high, low)):
        d: PeerDirectory[FakePeer] = PeerDirectory(ours)
        out, inc = FakePeer("x", outgoing=True), FakePeer("x", outgoing=False)
        out.peer_id = inc.peer_id = theirs
        assert d.admit(out)
        kept_new = d.admit(inc)
        # The survivor is the connection opened by the peer with the lower id.
        assert kept_new == (theirs < ours)
        assert (out.closed, inc.closed) == ((True, False) if kept_new else (False, True))


def test_directory_swaps_a_crossed_connection_at_the_limit_and_forgets_a_closed_one() -> None:
    """The kept one of two crossed connections replaces the other, even with the directory
    full (both were closed when the new one was also counted against the limit); once the
    kept one has gone, the same peer may connect again."""
    low, high = b"-AA0001-aaaaaaaaaaaa", b"-ZZ0001-zzzzzzzzzzzz"
    d: PeerDirectory[FakePeer] = PeerDirectory(high, max_peers=1)
    out, inc = FakePeer("x", outgoing=True), FakePeer("x", outgoing=False)
    out.peer_id = inc.peer_id = low
    assert d.admit(out)
    assert d.admit(inc)  # the lower id (theirs) opened it: it stays, ours goes
    assert out.closed and not inc.closed
    d.remove(out)
    assert d.peers == {inc}
    third = FakePeer("x", outgoing=False)
    third.peer_id = low
    assert not d.admit(third) and third.reason == "duplicate connection"  # both incoming
    d.remove(inc)
    again = FakePeer("x", outgoing=True)
    again.peer_id = low
    assert d.admit(again) and d.peers == {again}


def test_directory_bans_a_lone_liar_at_once_and_accomplices_after_strikes() -> None:
    d: PeerDirectory[FakePeer] = PeerDirectory(b"-SW0100-ourselves000")
    liar, a, b = FakePeer("liar"), FakePeer("a"), FakePeer("b")
    for p in (liar, a, b):
        assert d.admit(p)
    assert d.blame({liar.peer_id}) == [liar]
    for _ in range(STRIKES_TO_BAN - 1):
        assert d.blame({a.peer_id, b.peer_id}) == []
    assert set(d.blame({a.peer_id, b.peer_id})) == {a, b}
    again = FakePeer("liar")
    assert not d.admit(again) and again.reason == "banned peer"


def test_a_verified_piece_ends_interest_only_in_peers_that_had_it_and_nothing_more() -> None:
    only0 = [True] + [False] * (NUM - 1)
    only1 = [False, True] + [False] * (NUM - 2)
    a, b, c = FakePeer("a", only0), FakePeer("b", only1), FakePeer("c", [False] * NUM)
    rp, _ = policy(a, b, c)
    for p in (a, b, c):
        p.state.interested(True)  # c: as if it had had something (rechecked at the tick)
        p.state.peer_choking = True  # a choked peer's slot is not held: no hurry
    assert rp.interesting(a)  # type: ignore[arg-type]  # counted before piece 0 is ours
    rp.picker.set_have(0)
    rp.lose_interest(0)
    assert a.state.am_interested  # told at the next tick, not at once
    rp.drop_interest()
    assert not a.state.am_interested  # had piece 0, and nothing else we want
    assert b.state.am_interested  # lacks piece 0, has one we want
    assert not c.state.am_interested  # has nothing


def test_a_peer_that_unchokes_us_with_nothing_we_lack_loses_our_interest_at_once() -> None:
    # Its upload slot is ours while we are interested; kept to the next tick, the slot idles.
    only0 = [True] + [False] * (NUM - 1)
    a, b = FakePeer("a", only0), FakePeer("b", only0)
    rp, _ = policy(a, b)
    a.state.interested(True)  # a unchokes us (FakePeer's default)
    b.state.interested(True)
    b.state.peer_choking = True
    assert rp.interesting(a) and rp.interesting(b)  # type: ignore[arg-type]
    rp.picker.set_have(0)
    rp.lose_interest(0)
    assert not a.state.am_interested  # at once: it unchokes us
    assert b.state.am_interested  # it chokes us: the next tick tells it
    b.state.peer_choking = False
    rp.unchoked(b)  # type: ignore[arg-type]  # unchoked with nothing for us: not interested
    assert not b.state.am_interested and not b.asked


def test_a_have_of_a_piece_we_do_not_want_asks_nothing() -> None:
    p = FakePeer("a", [False] * NUM)
    rp, _ = policy(p)
    rp.picker.set_have(3)
    p.state.receive(wire.encode(wire.Have(3)), 1.0)
    rp.have(p, 3)  # type: ignore[arg-type]
    assert not p.state.am_interested and p.asked == []
    p.state.receive(wire.encode(wire.Have(4)), 1.0)
    rp.have(p, 4)  # type: ignore[arg-type]
    assert p.state.am_interested and p.asked  # a piece we want: interest and requests


def test_a_peer_that_closes_us_at_once_is_dialled_again_ever_later() -> None:
    """A full peer accepts and closes at once: that is a failed dial (backing off), not a
    connection that worked (redialled after RECONNECT_SECONDS)."""
    import asyncio

    from swarm.peer_directory import RECONNECT_SECONDS, SHORT_LIVED_SECONDS

    clock = Clock()
    d: PeerDirectory[FakePeer] = PeerDirectory(b"-SW0100-ourselves000", clock=clock)
    addr = ("127.0.0.1", 7)
    d.add([addr])
    lasts: list[float] = []

    class Lasting(FakePeer):
        async def closed_wait(self) -> None:
            clock.now += lasts[-1]  # the connection lasted this long

    async def connect(a: tuple[str, int]) -> FakePeer:
        return Lasting("x")

    waits = []
    for lasted in (0.1, 0.1, 0.1, SHORT_LIVED_SECONDS + 1):
        lasts.append(lasted)
        assert d.to_dial(lambda: True, ("127.0.0.1", 9)) == [addr]
        asyncio.run(d.dial(addr, connect))
        waits.append(d.candidates[addr].next_try - clock.now)
        clock.now = d.candidates[addr].next_try
    assert waits[:3] == [4.0, 8.0, 16.0]  # refused three times: ever longer
    assert waits[3] == RECONNECT_SECONDS  # a connection that lasted: back soon, as before


def test_a_pick_that_found_nothing_is_not_repeated_until_a_block_is_freed_or_a_piece_came() -> None:
    have = [True, True] + [False] * (NUM - 2)
    a, b = FakePeer("a", have), FakePeer("b", have)
    rp, _ = policy(a, b)
    rp.bitfield(a, have)  # type: ignore[arg-type]
    rp.bitfield(b, have)  # type: ignore[arg-type]
    assert a.asked and not b.asked  # a took all four blocks of the two pieces
    # b holds piece 7 unbeknown to the policy: a pick would find it, so none looks again.
    b.state.peer_has[7] = True
    for _ in range(3):
        rp.fill(b)  # type: ignore[arg-type]
    assert not b.asked  # one pick found nothing; the next three did not look again
    b.state.peer_has[7] = False
    # A block a was asked for is freed (a choked us): b looks again and takes it.
    a.state.peer_choking = True
    rp.choked(a)  # type: ignore[arg-type]
    assert b.asked
    # b got a new piece we want: it is worth a pick again.
    b.state.receive(wire.encode(wire.Have(5)), 1.0)
    b.state.requests_out.clear()
    rp.have(b, 5)  # type: ignore[arg-type]
    assert (5, 0, BLOCK_SIZE) in b.asked


def test_a_have_tops_up_only_a_peer_we_ask_nothing_of() -> None:
    have = [True] + [False] * (NUM - 1)
    p = FakePeer("a", have)
    rp, _ = policy(p)
    rp.bitfield(p, have)  # type: ignore[arg-type]
    asked = len(p.asked)
    assert asked == 2  # both blocks of piece 0
    p.state.receive(wire.encode(wire.Have(3)), 1.0)
    rp.have(p, 3)  # type: ignore[arg-type]
    assert len(p.asked) == asked  # busy: the next block it sends tops it up
    p.state.withdraw()
    p.state.receive(wire.encode(wire.Have(4)), 1.0)
    rp.have(p, 4)  # type: ignore[arg-type]
    assert len(p.asked) > asked


def test_directory_dials_half_its_limit_and_not_a_peer_that_dialled_us() -> None:
    d: PeerDirectory[FakePeer] = PeerDirectory(b"-SW0100-ourselves000", max_peers=6)
    d.add([("127.0.0.1", p) for p in range(1, 9)])
    incoming = FakePeer("in", outgoing=False, address=("127.0.0.1", 50000))
    incoming.listen_address = ("127.0.0.1", 1)  # said in its extension handshake
    assert d.admit(incoming)
    dialled = d.to_dial(lambda: True, ("127.0.0.1", 9))
    assert dialled == [("127.0.0.1", 2), ("127.0.0.1", 3), ("127.0.0.1", 4)]  # 3 of 6
