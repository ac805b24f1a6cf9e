"""The piece picker as pure logic, with fake peers."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm.picker import BLOCK_SIZE, RANDOM_FIRST, Block, PiecePicker


def check(p: PiecePicker) -> None:
    """The free list's invariants: pieces we may start, ordered by availability in buckets."""
    order, start, avail = p._order, p._start, p.availability  # noqa: SLF001
    assert start[0] == 0 and start[-1] == len(order)
    for b in range(len(start) - 1):
        assert start[b] <= start[b + 1]
        for at in range(start[b], start[b + 1]):
            assert max(avail[order[at]], 0) == b and p._pos[order[at]] == at  # noqa: SLF001
    free = [i for i in range(p.num_pieces) if p.wanted(i) and i not in p.partial]
    assert sorted(order) == free
    assert p._open == {i for i, q in p.partial.items() if q.open()}  # noqa: SLF001


def picker(
    num_pieces: int = 8, piece_length: int = 4 * BLOCK_SIZE, total: int | None = None
) -> PiecePicker:
    total = total if total is not None else num_pieces * piece_length
    return PiecePicker(num_pieces, piece_length, total, rng=random.Random(7))


def complete_piece(p: PiecePicker, peer: str, index: int) -> None:
    blocks = [b for b in p.pick(peer, [i == index for i in range(p.num_pieces)], 100)]
    for i, begin, _ in blocks:
        assert i == index
        p.block_received(peer, i, begin)
    assert p.piece_full(index)
    p.start_verify(index)
    p.piece_verified(index)


def test_blocks_cover_a_piece_and_last_piece_is_short() -> None:
    p = picker(num_pieces=3, piece_length=2 * BLOCK_SIZE, total=4 * BLOCK_SIZE + 100)
    blocks = p.pick("a", [False, False, True], 10)
    assert blocks == [(2, 0, 100)]
    blocks = p.pick("a", [True, True, True], 10)
    assert sorted(blocks) == [
        (0, 0, BLOCK_SIZE),
        (0, BLOCK_SIZE, BLOCK_SIZE),
        (1, 0, BLOCK_SIZE),
        (1, BLOCK_SIZE, BLOCK_SIZE),
    ]


def test_rarest_first_after_random_start() -> None:
    p = picker(num_pieces=10)
    everything = [True] * 10
    for i in range(RANDOM_FIRST):
        p.set_have(i)
    # Piece 7 is held by one peer, the rest by three.
    for _ in range(3):
        p.peer_bitfield([i != 7 for i in range(10)])
    p.peer_bitfield(everything[:7] + [True] + everything[8:])
    first = p.pick("a", everything, 1)
    assert first[0][0] == 7


def test_started_pieces_are_finished_before_new_ones() -> None:
    p = picker(num_pieces=6)
    for i in range(RANDOM_FIRST):
        p.set_have(i)
    p.peer_bitfield([True] * 6)
    one = p.pick("a", [True] * 6, 1)
    index = one[0][0]
    more = p.pick("b", [True] * 6, 3)
    assert {i for i, _, _ in more} == {index}


def test_released_blocks_go_back_to_the_pool() -> None:
    p = picker(num_pieces=2)
    blocks = p.pick("a", [True, False], 3)
    p.pick("c", [True, False], 1)  # the piece's last block, so the piece stays started
    p.release("a", blocks)
    again = p.pick("b", [True, True], 3)
    assert sorted(again) == sorted(blocks)


def test_endgame_asks_a_second_peer_and_reports_who_to_cancel() -> None:
    p = picker(num_pieces=1)
    blocks = p.pick("a", [True], 10)
    assert len(blocks) == 4
    assert p.in_endgame
    dup = p.pick("b", [True], 10)
    assert sorted(dup) == sorted(blocks)
    accepted, cancel = p.block_received("b", 0, 0)
    assert accepted and cancel == {"a"}
    accepted, _ = p.block_received("a", 0, 0)
    assert not accepted  # a duplicate is not counted twice


def test_no_endgame_while_unrequested_blocks_remain() -> None:
    p = picker(num_pieces=4)
    p.pick("a", [True, False, False, False], 10)
    assert not p.in_endgame
    assert p.pick("b", [True, False, False, False], 10) == []


def test_failed_piece_is_fetched_again() -> None:
    p = picker(num_pieces=1)
    for i, begin, _ in p.pick("a", [True], 10):
        p.block_received("a", i, begin)
    p.start_verify(0)
    assert p.pick("a", [True], 10) == []  # pending: nothing to ask for
    p.piece_failed(0)
    assert len(p.pick("b", [True], 10)) == 4


def test_verified_pieces_complete_the_torrent() -> None:
    p = picker(num_pieces=3)
    for i in range(3):
        complete_piece(p, "a", i)
    assert p.complete
    assert p.pick("a", [True] * 3, 10) == []


def test_unrequested_blocks_and_bad_offsets_are_refused() -> None:
    p = picker(num_pieces=2)
    assert p.block_received("a", 0, 0) == (False, set())
    p.pick("a", [True, False], 1)
    assert p.block_received("a", 0, 5)[0] is False


def test_interest_and_availability_bookkeeping() -> None:
    p = picker(num_pieces=3)
    p.set_have(0)
    assert not p.interesting([True, False, False])
    assert p.interesting([False, True, False])
    p.peer_bitfield([True, True, True])
    assert p.seeds == 1 and p.availability == [0, 0, 0]
    p.peer_bitfield([False, True, False])
    p.peer_have(2)
    assert p.availability == [0, 1, 1]
    p.peer_bitfield([False, True, False], -1)
    assert p.availability == [0, 0, 1]


# -- rarest first kept in buckets (issue 14, item 2) -----------------------------------------


def past_random_start(p: PiecePicker) -> None:
    """Have the last RANDOM_FIRST pieces, so rarest first applies to the others."""
    for i in range(p.num_pieces - RANDOM_FIRST, p.num_pieces):
        p.set_have(i)


def bits(n: int, *indices: int) -> list[bool]:
    return [i in indices for i in range(n)]


def new_pieces(p: PiecePicker, peer: str, has: list[bool], times: int) -> list[int]:
    """The next *times* new pieces picked for *peer*, each asked for whole."""
    out = []
    for _ in range(times):
        blocks = p.pick(peer, has, 4)
        assert len(blocks) == 4 and len({i for i, _, _ in blocks}) == 1
        out.append(blocks[0][0])
    return out


def test_rarest_first_follows_have_bitfield_leave_and_seed() -> None:
    p = picker(num_pieces=12)
    past_random_start(p)
    everything = [True] * 12
    a = [True] * 8 + [False] * 4
    b = bits(12, 0, 1, 2)
    p.peer_bitfield(a)
    p.peer_bitfield(b)  # 0, 1, 2: two peers; 3..7: one
    p.peer_bitfield(everything)  # a seed: counted apart, ranks nothing
    assert p.seeds == 1 and p.availability[:8] == [2, 2, 2, 1, 1, 1, 1, 1]
    for i in (3, 4, 5, 6):
        b[i] = True
        p.peer_have(i)
    assert new_pieces(p, "s", everything, 1) == [7]  # the one piece held by one peer
    p.peer_bitfield(b, -1)  # b leaves: 0..6 back to one peer each
    assert p.availability[:8] == [1] * 8
    assert set(new_pieces(p, "s", everything, 7)) == set(range(7))
    check(p)


def test_a_seed_becoming_one_leaves_the_counts() -> None:
    p = picker(num_pieces=6)
    has = bits(6, 0, 1)
    p.peer_bitfield(has)
    for i in range(2, 6):
        has[i] = True
        p.peer_have(i)
    p.peer_became_seed(has)
    assert p.seeds == 1 and p.availability == [0] * 6
    check(p)


def test_ties_are_random_but_deterministic() -> None:
    def run(seed: int) -> list[int]:
        p = PiecePicker(64, 4 * BLOCK_SIZE, 64 * 4 * BLOCK_SIZE, rng=random.Random(seed))
        past_random_start(p)
        p.peer_bitfield([False] * 32 + [True] * 32)  # 0..31 tie at no peer, the rest at one
        return new_pieces(p, "s", [True] * 64, 8)

    first = run(3)
    assert first == run(3)
    assert all(i < 32 for i in first)
    assert first != sorted(first) and len({tuple(run(s)) for s in range(5)}) == 5


def test_ties_spread_over_the_whole_bucket() -> None:
    picked: set[int] = set()
    for seed in range(200):
        p = PiecePicker(40, BLOCK_SIZE, 40 * BLOCK_SIZE, rng=random.Random(seed))
        past_random_start(p)
        p.peer_bitfield([False] * 20 + [True] * 20)
        picked.add(p.pick("s", [True] * 40, 1)[0][0])
    assert picked == set(range(20))


def test_sparse_peer_gets_its_rarest_piece() -> None:
    n = 200
    p = picker(num_pieces=n)
    past_random_start(p)
    p.peer_bitfield([True] * n)  # a seed: everything else sits in bucket 0
    others = [i % 2 == 0 for i in range(n)]
    p.peer_bitfield(others)
    p.peer_bitfield(others)
    mine = bits(n, 10, 151, 152)  # 10 is also with the two others; 151 only mine
    p.peer_bitfield(mine)
    assert new_pieces(p, "m", mine, 1) == [151]
    assert new_pieces(p, "m", mine, 2) in ([10, 152], [152, 10])  # three peers each
    check(p)


def test_uncounted_peer_lists_are_still_served_rarest_first() -> None:
    p = picker(num_pieces=10)
    past_random_start(p)
    p.peer_bitfield(bits(10, 0, 1, 2))
    # A list the picker never counted may have pieces no counted peer has (bucket 0).
    assert new_pieces(p, "x", bits(10, 1, 4), 1) == [4]


def test_released_piece_is_free_again_at_its_rank() -> None:
    p = picker(num_pieces=8)
    past_random_start(p)
    p.peer_bitfield(bits(8, 0))
    p.peer_bitfield(bits(8, 1, 2, 3))
    p.peer_bitfield(bits(8, 1, 2, 3))
    blocks = p.pick("a", bits(8, 0), 2)
    assert {i for i, _, _ in blocks} == {0} and 0 in p.partial
    p.release("a", blocks)
    assert 0 not in p.partial
    check(p)
    assert p.pick("b", [True] * 8, 1)[0][0] == 0  # still the rarest


def test_failed_piece_is_picked_again_first() -> None:
    p = picker(num_pieces=8)
    past_random_start(p)
    p.peer_bitfield(bits(8, 2))
    p.peer_bitfield(bits(8, 0, 1, 3))
    p.peer_bitfield(bits(8, 0, 1, 3))
    blocks = p.pick("a", [True] * 8, 4)
    assert {i for i, _, _ in blocks} == {2}
    for i, begin, _ in blocks:
        p.block_received("a", i, begin)
    p.start_verify(2)
    assert p.pick("a", bits(8, 2), 4) == []
    p.piece_failed(2)
    check(p)
    assert {i for i, _, _ in p.pick("b", [True] * 8, 1)} == {2}


def test_set_have_false_puts_the_piece_back() -> None:
    p = picker(num_pieces=6)
    for i in range(6):
        p.set_have(i)
    assert p.complete and not p.interesting([True] * 6)
    p.set_have(3, False)  # repair found it bad
    check(p)
    assert not p.complete and p.interesting(bits(6, 3))
    assert p.pick("a", [True] * 6, 10) == [(3, 0, BLOCK_SIZE), (3, BLOCK_SIZE, BLOCK_SIZE)] + [
        (3, 2 * BLOCK_SIZE, BLOCK_SIZE),
        (3, 3 * BLOCK_SIZE, BLOCK_SIZE),
    ]


def test_interesting_sees_started_and_pending_pieces() -> None:
    p = picker(num_pieces=3)
    p.set_have(0)
    p.pick("a", bits(3, 1), 1)  # 1 is started
    assert p.interesting(bits(3, 1)) and not p.interesting(bits(3, 0))
    for i, begin, _ in p.pick("a", bits(3, 1), 10):
        p.block_received("a", i, begin)
    p.block_received("a", 1, 0)
    p.start_verify(1)
    assert p.interesting(bits(3, 1))  # pending: not ours yet
    p.piece_verified(1)
    assert not p.interesting(bits(3, 0, 1))
    assert not p.interesting([])  # no bitfield yet


def test_counts_below_zero_sort_as_zero() -> None:
    p = picker(num_pieces=6)
    past_random_start(p)
    p.peer_bitfield(bits(6, 0), -1)  # a slip above: uncounting what was never counted
    assert p.availability[0] == -1
    check(p)
    p.peer_bitfield(bits(6, 1))
    assert p.pick("s", [True] * 6, 1)[0][0] == 0


# -- property: every new piece is a rarest eligible one --------------------------------------


class Swarm:
    """Peers as a request policy counts them, driving a picker, with a brute-force check."""

    def __init__(self, p: PiecePicker) -> None:
        self.p = p
        self.counted: dict[str, list[bool]] = {}  # counted piece by piece, same list objects
        self.seeds: set[str] = set()
        self.asked: dict[str, set[Block]] = {}

    def has(self, peer: str) -> list[bool]:
        return [True] * self.p.num_pieces if peer in self.seeds else self.counted[peer]

    def join(self, peer: str, haves: list[bool]) -> None:
        self.p.peer_bitfield(haves)
        if all(haves):
            self.seeds.add(peer)
        else:
            self.counted[peer] = haves
        self.asked[peer] = set()

    def have(self, peer: str, index: int) -> None:
        haves = self.counted[peer]
        if haves[index]:
            return
        haves[index] = True
        self.p.peer_have(index)
        if all(haves):
            self.p.peer_became_seed(haves)
            del self.counted[peer]
            self.seeds.add(peer)

    def leave(self, peer: str) -> None:
        if peer in self.seeds:
            self.seeds.discard(peer)
            self.p.seeds -= 1
        else:
            self.p.peer_bitfield(self.counted.pop(peer), -1)
        self.p.release(peer, self.asked.pop(peer))

    def pick(self, peer: str, has: list[bool], count: int) -> None:
        p = self.p
        avail = [sum(h[i] for h in self.counted.values()) for i in range(p.num_pieces)]
        assert p.availability == avail
        eligible = {
            i
            for i in range(p.num_pieces)
            if has[i] and not p.have[i] and i not in p.partial and i not in p.pending
        }
        before = set(p.partial)
        blocks = p.pick(peer, has, count)
        self.asked.setdefault(peer, set()).update(blocks)
        for index in dict.fromkeys(i for i, _, _ in blocks if i not in before):
            assert index in eligible
            if p.num_have >= RANDOM_FIRST:
                assert avail[index] == min(avail[i] for i in eligible)
            eligible.discard(index)

    def deliver(self, peer: str, block: Block, good: bool) -> None:
        index, begin, _ = block
        for asked in self.asked.values():
            asked.discard(block)
        self.p.block_received(peer, index, begin)
        if self.p.piece_full(index):
            self.p.start_verify(index)
            if good:
                self.p.piece_verified(index)
            else:
                self.p.piece_failed(index)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_new_pieces_are_always_of_the_least_availability(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40), label="pieces")
    blocks_per_piece = data.draw(st.integers(1, 3), label="blocks")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    p = PiecePicker(n, blocks_per_piece * BLOCK_SIZE, n * blocks_per_piece * BLOCK_SIZE - 7)
    p.rng = random.Random(seed)
    for i in data.draw(st.lists(st.integers(0, n - 1), max_size=RANDOM_FIRST + 2), label="ours"):
        p.set_have(i)  # mostly past the random first pieces, so rarest first is checked
    s = Swarm(p)
    bitfield = st.lists(st.booleans(), min_size=n, max_size=n)
    names = [f"p{k}" for k in range(6)]
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        present = sorted([*s.counted, *s.seeds])
        op = data.draw(st.sampled_from(["join", "have", "leave", "pick", "deliver", "repair"]))
        if op == "join":
            absent = [x for x in names if x not in s.asked]
            if absent:
                s.join(absent[0], data.draw(bitfield))
        elif op == "have" and s.counted:
            s.have(data.draw(st.sampled_from(sorted(s.counted))), data.draw(st.integers(0, n - 1)))
        elif op == "leave" and present:
            s.leave(data.draw(st.sampled_from(present)))
        elif op == "pick":
            how = data.draw(st.sampled_from(["counted", "masked", "uncounted"]))
            count = data.draw(st.integers(1, 8))
            if how == "uncounted" or not present:
                s.pick("stranger", data.draw(bitfield), count)
            else:
                peer = data.draw(st.sampled_from(present))
                has = s.has(peer)
                if how == "masked":  # a copy less the pieces it rejected lately
                    has = [h and data.draw(st.booleans()) for h in has]
                s.pick(peer, has, count)
        elif op == "deliver":
            out = sorted((peer, b) for peer, asked in s.asked.items() for b in asked)
            if out:
                peer, block = data.draw(st.sampled_from(out))
                s.deliver(peer, block, data.draw(st.booleans()))
        elif op == "repair":
            ours = [i for i in range(n) if p.have[i]]
            if ours:
                p.set_have(data.draw(st.sampled_from(ours)), False)
        check(p)
