"""PieceIO: blocks assembled into pieces, hashed and written; piece buffers reused."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from swarm import metainfo
from swarm.create import create_torrent
from swarm.piece_io import PieceIO

PIECE = 32 * 1024


def test_a_written_piece_buffer_is_reused_and_the_next_piece_still_checks(tmp_path: Path) -> None:
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    data = random.Random(7).randbytes(3 * PIECE + 1000)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=PIECE))
    out = tmp_path / "out"

    async def main() -> list[bool]:
        io = PieceIO(torrent, out)
        await io.open(seed=False, verify=True)
        results = []
        buffers: list[bytearray] = []
        for index in range(torrent.num_pieces):
            size = torrent.piece_size(index)
            start = index * PIECE
            # Blocks in reverse order, so a reused buffer is overwritten back to front.
            for begin in reversed(range(0, size, 16384)):
                end = min(begin + 16384, size)
                io.add_block(index, begin, memoryview(data)[start + begin : start + end], b"p")
            buffers.append(io._buffers[index])  # held: no address reuse
            ok, who = await io.verify_and_write(index)
            results.append(ok and who == {b"p"})
        # Piece 1 took piece 0's buffer once piece 0 was written (the last piece is short and
        # gets its own).
        assert buffers[1] is buffers[0] and buffers[3] is not buffers[0]
        await io.finalize()
        await io.close([True] * torrent.num_pieces, True)
        return results

    assert asyncio.run(main()) == [True] * 4
    assert (out / "data.bin").read_bytes() == data
