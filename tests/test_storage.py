"""Storage: pieces across file boundaries, verified writes, .part names, resume."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from swarm import metainfo
from swarm.create import create_torrent
from swarm.errors import StorageError
from swarm.storage import Storage


def make_tree(root: Path, sizes: list[int]) -> bytes:
    blob = b""
    for i, size in enumerate(sizes):
        data = random.Random(i).randbytes(size)
        path = root / f"d{i % 2}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # create_torrent orders files by sorted path; rebuild the stream in that order
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob += path.read_bytes()
    return blob


@pytest.fixture
def multi(tmp_path: Path) -> tuple[metainfo.Torrent, Path, bytes]:
    root = tmp_path / "src" / "set"
    blob = make_tree(root, [40_000, 0, 70_001, 5, 30_000])
    t = metainfo.parse(create_torrent(root, piece_length=16384))
    return t, root.parent, blob


def test_spans_cross_file_boundaries(multi: tuple[metainfo.Torrent, Path, bytes]) -> None:
    t, src, blob = multi
    st = Storage(t, src)
    st.open_for_seeding()
    for i in range(t.num_pieces):
        data = st.read(i)
        assert data == blob[i * t.piece_length : i * t.piece_length + t.piece_size(i)]
        assert hashlib.sha1(data).digest() == t.piece_hashes[i]
    assert st.read(2, 100, 50) == blob[2 * 16384 + 100 : 2 * 16384 + 150]
    assert all(st.check_all())
    st.close()


def test_download_writes_part_files_and_renames_when_complete(
    multi: tuple[metainfo.Torrent, Path, bytes], tmp_path: Path
) -> None:
    t, src, blob = multi
    out = tmp_path / "out"
    st = Storage(t, out)
    st.open_for_download()
    finals = [out.joinpath(*f.path) for f in t.files]
    assert all(p.with_name(p.name + ".part").exists() for p in finals)
    assert not any(p.exists() for p in finals)
    for i in range(t.num_pieces):
        st.write_piece(i, blob[i * t.piece_length : i * t.piece_length + t.piece_size(i)])
    st.finalize()
    for f, p in zip(t.files, finals, strict=True):
        assert p.exists() and p.stat().st_size == f.length
        assert not p.with_name(p.name + ".part").exists()
    assert b"".join(p.read_bytes() for p in finals) == blob


def test_resume_file_is_trusted_only_when_files_are_unchanged(
    multi: tuple[metainfo.Torrent, Path, bytes], tmp_path: Path
) -> None:
    t, _src, blob = multi
    st = Storage(t, tmp_path / "out")
    st.open_for_download()
    st.write_piece(0, blob[: t.piece_length])
    have = [True] + [False] * (t.num_pieces - 1)
    st.save_resume(have)
    st.close()
    st2 = Storage(t, tmp_path / "out")
    st2.open_for_download()
    assert st2.load_resume() == have
    # Touch a file: the resume data no longer matches and is ignored.
    part = st2.path_for(0)
    part.write_bytes(part.read_bytes())
    import os

    os.utime(part, ns=(1, 1))
    assert st2.load_resume() is None
    assert st2.check_all()[0] is True


def test_seeding_refuses_missing_or_wrong_sized_data(
    multi: tuple[metainfo.Torrent, Path, bytes], tmp_path: Path
) -> None:
    t, _src, _blob = multi
    with pytest.raises(StorageError, match="missing"):
        Storage(t, tmp_path / "nothing").open_for_seeding()
    (tmp_path / "short" / "set" / "d0").mkdir(parents=True)
    for f in t.files:
        p = tmp_path / "short" / Path(*f.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    with pytest.raises(StorageError, match="bytes but the torrent says"):
        Storage(t, tmp_path / "short").open_for_seeding()


def test_a_folder_where_a_file_belongs_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"a" * 1000)
    t = metainfo.parse(create_torrent(src))
    (tmp_path / "out" / "f.bin.part").mkdir(parents=True)
    with pytest.raises(StorageError):
        Storage(t, tmp_path / "out").open_for_download()
