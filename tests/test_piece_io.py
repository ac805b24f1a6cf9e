"""PieceIO: blocks assembled into pieces, hashed and written; piece buffers reused."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from swarm import metainfo, piece_io
from swarm.create import create_torrent
from swarm.errors import StorageError
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


def test_a_just_verified_piece_is_uploaded_from_memory_and_a_bad_one_is_not(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    data = random.Random(8).randbytes(2 * PIECE)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=PIECE))

    async def main() -> None:
        io = PieceIO(torrent, tmp_path / "out")
        await io.open(seed=False, verify=True)
        for begin in range(0, PIECE, 16384):
            io.add_block(0, begin, data[begin : begin + 16384], b"p")
            io.add_block(1, begin, bytes(16384), b"q")  # not piece 1's data
        assert await io.verify_and_write(1) == (False, {b"q"})
        assert await io.verify_and_write(0) == (True, {b"p"})
        # Piece 1 again takes piece 0's written buffer and overwrites it; the copy of piece 0
        # kept for uploading is served without a read and still holds piece 0.
        io.add_block(1, 16384, bytes(16384), b"q")
        assert io._buffers[1] is not None and len(io._spare) == 1
        block = io.cached_block(0, 16384, 16384)
        assert block is not None and bytes(block) == data[16384:32768]
        assert io.cached_block(1, 0, 16384) is None
        await io.close([True, False], False)

    asyncio.run(main())


def test_no_upload_copy_while_nobody_can_ask_and_written_data_is_flushed_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    data = random.Random(9).randbytes(3 * PIECE)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=PIECE))
    flushed: list[list[Path]] = []
    monkeypatch.setattr(piece_io, "FLUSH_BYTES", 2 * PIECE)
    monkeypatch.setattr(piece_io, "_flush", lambda paths: flushed.append(paths))

    async def main() -> None:
        io = PieceIO(torrent, tmp_path / "out")
        io.keep_for_upload = lambda: False  # no peer connected
        await io.open(seed=False, verify=True)
        for index in range(3):
            io.add_block(index, 0, data[index * PIECE : (index + 1) * PIECE], b"w")
            assert await io.verify_and_write(index) == (True, {b"w"})
            assert io.cached_block(index, 0, 16) is None  # not copied for uploading
        assert bytes(await io.read_block(1, 0, 16)) == data[PIECE : PIECE + 16]  # from disk
        await io.finalize()
        await io.close([True] * 3, True)

    asyncio.run(main())
    assert len(flushed) == 1 and len(flushed[0]) == 1  # after 2 of the 3 pieces, one file
    assert (tmp_path / "out" / "data.bin").read_bytes() == data


@pytest.mark.parametrize("inline", [True, False])
def test_a_piece_read_for_upload_is_cached_and_a_failed_read_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    # Small pieces are read on the loop, larger ones in the pool; both are kept after a read
    # that worked, neither after one that failed.
    monkeypatch.setattr(piece_io, "INLINE_BYTES", PIECE if inline else PIECE - 1)
    src = tmp_path / "data.bin"
    data = random.Random(10).randbytes(3 * PIECE)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=PIECE))

    async def main() -> None:
        io = PieceIO(torrent, tmp_path)
        assert await io.open(seed=True, verify=False) == [True] * 3
        assert io.cached_block(1, 0, 16) is None
        assert bytes(await io.read_block(1, 16, 16)) == data[PIECE + 16 : PIECE + 32]
        block = io.cached_block(1, 100, 16)  # kept: no second read
        assert block is not None and bytes(block) == data[PIECE + 100 : PIECE + 116]
        with open(src, "r+b") as f:
            f.truncate(2 * PIECE + 10)  # piece 2 is now short on disk
        with pytest.raises(StorageError, match="shorter"):
            await io.read_block(2, 0, 16)
        assert io.cached_block(2, 0, 16) is None
        with open(src, "r+b") as f:
            f.seek(2 * PIECE)
            f.write(data[2 * PIECE :])  # mended: read again, not a remembered failure
        assert bytes(await io.read_block(2, 0, 16)) == data[2 * PIECE : 2 * PIECE + 16]
        await io.close([True] * 3, True)

    asyncio.run(main())


def test_a_flush_of_files_gone_is_not_an_error(tmp_path: Path) -> None:
    there = tmp_path / "a"
    there.write_bytes(b"x")
    piece_io._flush([there, tmp_path / "gone"])


def test_the_first_resume_save_comes_ten_seconds_after_the_first_call(tmp_path: Path) -> None:
    """Not at the first call: every downloader of a swarm started together saved at once."""
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    data = random.Random(9).randbytes(2 * PIECE)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=PIECE))
    out = tmp_path / "out"
    every = piece_io.RESUME_SAVE_SECONDS

    async def main() -> list[bool]:
        io = PieceIO(torrent, out)
        await io.open(seed=False, verify=True)
        io.add_block(0, 0, memoryview(data)[:16384], b"p")
        io.add_block(0, 16384, memoryview(data)[16384:PIECE], b"p")
        assert (await io.verify_and_write(0))[0]
        saved = []
        for now in (100.0, 100.0 + every - 0.5, 100.0 + every):
            await io.save_resume([True, False], now)
            saved.append(io.storage.resume_path.exists())
        await io.close([True, False], False)
        return saved

    assert asyncio.run(main()) == [False, False, True]
