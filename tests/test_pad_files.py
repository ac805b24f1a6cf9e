"""BEP 47 pad files and attributes: parsed from ``attr``, never on disk (read as zeros, writes
dropped, nothing created), made by ``swarm create --align``; a v2-only torrent is named as
such (issue 20)."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm import bencoding, metainfo
from swarm.create import create_torrent
from swarm.errors import MetainfoError
from swarm.info_dict import V2_ONLY
from swarm.storage import Storage

PIECE = 16384


def padded(files: list[tuple[str, bytes | int, str]], piece: int = PIECE) -> tuple[bytes, bytes]:
    """A multi-file torrent named ``set`` of *files* (path, data or pad length, attr) and
    its data stream (pads as zeros)."""
    entries: list[dict[bytes, Any]] = []
    stream = b""
    for path, data, attr in files:
        blob = bytes(data) if isinstance(data, int) else data
        entry: dict[bytes, Any] = {
            b"length": len(blob),
            b"path": [p.encode() for p in path.split("/")],
        }
        if attr:
            entry[b"attr"] = attr.encode()
        entries.append(entry)
        if "l" not in attr:
            stream += blob
    pieces = b"".join(
        hashlib.sha1(stream[i : i + piece]).digest() for i in range(0, len(stream), piece)
    )
    info = {b"name": b"set", b"piece length": piece, b"pieces": pieces, b"files": entries}
    return bencoding.encode({b"info": info}), stream


A = random.Random(1).randbytes(PIECE + 1000)
B = random.Random(2).randbytes(3000)
PAD = PIECE - 1000  # aligns B to the start of piece 2


@pytest.fixture
def pad_torrent() -> tuple[metainfo.Torrent, bytes]:
    data, stream = padded([("a.bin", A, ""), (f".pad/{PAD}", PAD, "p"), ("b.bin", B, "x")])
    return metainfo.parse(data), stream


# -- parsing --------------------------------------------------------------------------------


def test_attr_letters_are_parsed(pad_torrent: tuple[metainfo.Torrent, bytes]) -> None:
    t, _ = pad_torrent
    a, pad, b = t.files
    assert (a.padding, a.executable, a.on_disk) == (False, False, True)
    assert (pad.padding, pad.path, pad.offset, pad.on_disk) == (
        True,
        ("set", ".pad", str(PAD)),
        len(A),
        False,
    )
    assert b.executable and b.offset == 2 * PIECE and b.on_disk
    assert t.num_pieces == 3 and t.length == 2 * PIECE + len(B)
    s = t.summary()
    assert s["pad_files"] == 1
    assert s["files"] == [
        {"path": "set/a.bin", "length": len(A)},
        {"path": "set/b.bin", "length": len(B), "executable": True},
    ]


def test_symlink_takes_no_bytes_and_is_not_on_disk() -> None:
    # libtorrent: a symlink's length is 0 whatever the entry says, so the next file's offset
    # does not move; its target is kept only to be named.
    data, _ = padded([("a.bin", A, ""), ("link", 999, "l"), ("b.bin", B, "h")])
    info = bencoding.decode(data)[b"info"]
    info[b"files"][1][b"symlink path"] = [b"..", b"..", b"etc", b"passwd"]
    t = metainfo.parse(bencoding.encode({b"info": info}))
    a, link, b = t.files
    assert (link.length, link.symlink, link.on_disk) == (0, ("..", "..", "etc", "passwd"), False)
    assert b.offset == len(A) and b.hidden
    assert t.summary()["files"][1] == {
        "path": "set/link",
        "length": 0,
        "symlink": "../../etc/passwd",
    }


def test_symlink_without_a_target_is_an_empty_file() -> None:
    data, _ = padded([("a.bin", A, ""), ("link", 0, "l")])
    link = metainfo.parse(data).files[1]
    assert link.symlink is None and link.on_disk and link.length == 0


def test_pad_files_without_a_path_or_with_bitcomets_name() -> None:
    data, _ = padded([("a.bin", A, ""), ("_____padding_file_0", PAD, ""), ("b.bin", B, "")])
    assert metainfo.parse(data).files[1].padding
    info = bencoding.decode(data)[b"info"]
    info[b"files"][1] = {b"length": PAD, b"attr": b"p"}  # no path: libtorrent names it .pad/N
    assert metainfo.parse(bencoding.encode({b"info": info})).files[1].path == (
        "set",
        ".pad",
        str(PAD),
    )


def test_pad_files_may_share_a_name_but_real_files_may_not() -> None:
    files = [
        ("a.bin", A, ""),
        (".pad/5", 5, "p"),
        ("c", b"x", ""),
        (".pad/5", 5, "p"),
        ("b", B, ""),
    ]
    data, _ = padded(files)
    assert [f.padding for f in metainfo.parse(data).files] == [False, True, False, True, False]
    data, _ = padded([("a.bin", A, ""), ("a.bin", B, "")])
    with pytest.raises(MetainfoError, match="duplicate"):
        metainfo.parse(data)


def test_a_single_file_cannot_be_a_pad_file_but_can_be_executable() -> None:
    info = {b"name": b"f", b"piece length": PIECE, b"length": 5}
    info[b"pieces"] = hashlib.sha1(b"12345").digest()
    assert metainfo.parse(bencoding.encode({b"info": {**info, b"attr": b"x"}})).files[0].executable
    with pytest.raises(MetainfoError, match="pad file"):
        metainfo.parse(bencoding.encode({b"info": {**info, b"attr": b"p"}}))


def test_v2_only_torrent_is_named_as_such() -> None:
    v2 = {b"name": b"x", b"piece length": PIECE, b"meta version": 2, b"file tree": {}}
    with pytest.raises(MetainfoError) as exc:
        metainfo.parse(bencoding.encode({b"info": v2, b"piece layers": {}}))
    assert str(exc.value) == V2_ONLY


def test_v2_only_torrent_is_exit_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "v2.torrent"
    v2 = {b"name": b"x", b"piece length": PIECE, b"meta version": 2, b"file tree": {}}
    path.write_bytes(bencoding.encode({b"info": v2, b"piece layers": {}}))
    for cmd in (["info", path], ["fetch", path, "-o", tmp_path / "out", "--port", "0"]):
        r = subprocess.run(
            [sys.executable, "-m", "swarm", *map(str, cmd)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [f"error: {path}: {V2_ONLY}"]
    assert not (tmp_path / "out").exists()


def test_hybrid_torrent_is_read_through_its_v1_part(
    pad_torrent: tuple[metainfo.Torrent, bytes],
) -> None:
    t, _ = pad_torrent
    info = bencoding.decode(t.raw_info)
    info[b"meta version"] = 2
    info[b"file tree"] = {b"a.bin": {b"": {b"length": len(A), b"pieces root": bytes(32)}}}
    hybrid = metainfo.parse(bencoding.encode({b"info": info}))
    assert [f.path for f in hybrid.files] == [f.path for f in t.files]


# -- storage ---------------------------------------------------------------------------------


def write_source(root: Path, t: metainfo.Torrent, stream: bytes) -> None:
    """The torrent's files under *root* as a user has them: no pad file."""
    for f in t.files:
        if f.on_disk:
            p = root.joinpath(*f.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(stream[f.offset : f.offset + f.length])


def test_pad_bytes_read_as_zeros_from_a_folder_without_pad_files(
    pad_torrent: tuple[metainfo.Torrent, bytes], tmp_path: Path
) -> None:
    t, stream = pad_torrent
    write_source(tmp_path, t, stream)
    st = Storage(t, tmp_path)
    st.open_for_seeding()
    assert all(st.check_all())
    assert st.read(1) == stream[PIECE : 2 * PIECE]
    assert st.read(1, 1000, 100) == bytes(100)  # inside the pad
    st.close()
    assert not (tmp_path / "set" / ".pad").exists()


def test_download_never_creates_pad_files_and_sets_x(
    pad_torrent: tuple[metainfo.Torrent, bytes], tmp_path: Path
) -> None:
    t, stream = pad_torrent
    out = tmp_path / "out"
    st = Storage(t, out)
    st.open_for_download()
    assert sorted(p.name for p in (out / "set").iterdir()) == ["a.bin.part", "b.bin.part"]
    junk = bytearray(stream[PIECE : 2 * PIECE])
    junk[2000:2010] = b"not zeros!"  # a piece's pad bytes are dropped, whatever they hold
    st.write_piece(1, junk)
    for i in (0, 2):
        st.write_piece(i, stream[i * PIECE : (i + 1) * PIECE])
    assert st.read(1) == stream[PIECE : 2 * PIECE]
    assert all(st.check_all())
    st.save_resume([True] * 3)
    assert Storage(t, out).load_resume() == [True] * 3
    st.finalize()
    assert sorted(p.name for p in (out / "set").iterdir()) == ["a.bin", "b.bin"]
    assert (out / "set" / "b.bin").read_bytes() == B
    assert os.access(out / "set" / "b.bin", os.X_OK)
    assert not os.access(out / "set" / "a.bin", os.X_OK)


def test_symlinks_are_never_created(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, stream = padded([("a.bin", A, ""), ("link", 0, "l")])
    info = bencoding.decode(data)[b"info"]
    info[b"files"][1][b"symlink path"] = [b"..", b"outside"]
    t = metainfo.parse(bencoding.encode({b"info": info}))
    st = Storage(t, tmp_path / "out")
    with caplog.at_level(logging.WARNING, "swarm.storage"):
        st.open_for_download()
    assert caplog.messages == ["not creating symlink set/link -> ../outside (BEP 47)"]
    for i in range(t.num_pieces):
        st.write_piece(i, stream[i * PIECE : (i + 1) * PIECE])
    st.finalize()
    assert [p.name for p in (tmp_path / "out" / "set").iterdir()] == ["a.bin"]
    assert not (tmp_path / "outside").exists()


# -- create --align ------------------------------------------------------------------------


def test_create_align_pads_each_file_to_a_piece_boundary(tmp_path: Path) -> None:
    root = tmp_path / "set"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(A)
    (root / "empty").write_bytes(b"")
    (root / "sub" / "b.bin").write_bytes(B)
    (root / "z.bin").write_bytes(b"z" * 10)
    (root / "z.bin").chmod(0o755)
    t = metainfo.parse(create_torrent(root, piece_length=PIECE, align=True))
    layout = [(f.path_str, f.length, f.padding, f.executable) for f in t.files]
    assert layout == [
        ("set/a.bin", len(A), False, False),
        ("set/empty", 0, False, False),  # libtorrent pads before the next non-empty file
        (f"set/.pad/{PAD}", PAD, True, False),
        ("set/sub/b.bin", len(B), False, False),
        (f"set/.pad/{PIECE - len(B)}", PIECE - len(B), True, False),
        ("set/z.bin", 10, False, True),  # and not after the last one
    ]
    st = Storage(t, tmp_path)
    st.open_for_seeding()
    assert all(st.check_all())  # the hashes are of the zeros
    st.close()
    plain = metainfo.parse(create_torrent(root, piece_length=PIECE))
    assert not any(f.padding or f.executable for f in plain.files)
    assert metainfo.parse(create_torrent(root / "a.bin", align=True)).files[0].path == ("a.bin",)


def test_a_finished_padded_download_that_was_damaged_is_complete_sized(tmp_path: Path) -> None:
    """Every real file at its full size is a finished download (one damaged since: repair),
    though its pad files are not there: they never are."""
    import asyncio

    from swarm.piece_io import PieceIO

    root = tmp_path / "set"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(A)
    (root / "sub" / "b.bin").write_bytes(B)
    t = metainfo.parse(create_torrent(root, piece_length=PIECE, align=True))
    assert any(f.padding for f in t.files)
    data = bytearray(A)
    data[5] ^= 0xFF
    (root / "a.bin").write_bytes(bytes(data))  # damaged since it was finished

    async def main() -> None:
        io = PieceIO(t, tmp_path)
        have = await io.open(seed=False, verify=True)
        assert io.existing is not None and io.existing.complete_size
        assert io.existing.differ == 1 and not all(have)
        await io.close(have, False)

    asyncio.run(main())
    assert not (root / ".pad").exists()
