"""The piece picker as pure logic, with fake peers."""

from __future__ import annotations

import random

from swarm.picker import BLOCK_SIZE, RANDOM_FIRST, PiecePicker


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
