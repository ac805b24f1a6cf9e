"""Making torrents: which files, which piece length, and piece hashes equal to hashlib's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import create, metainfo
from swarm.create import auto_piece_length, collect_files, create_torrent, hash_pieces
from swarm.errors import SwarmError, UsageError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def sha1_pieces(data: bytes, piece_length: int) -> list[bytes]:
    return [
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    ]


# -- piece length --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "piece_length"),
    [
        (1, 16 * KiB),
        (1000, 16 * KiB),
        (16 * KiB * 2000, 16 * KiB),  # exactly 2,000 pieces still fits
        (16 * KiB * 2000 + 1, 32 * KiB),
        (4 * MiB, 16 * KiB),
        (100 * MiB, 64 * KiB),
        (GiB, MiB),  # as mktorrent and Transmission choose
        (4 * GiB, 4 * MiB),
        (32 * GiB, 16 * MiB),
        (1 << 45, 16 * MiB),  # capped
    ],
)
def test_auto_piece_length(total: int, piece_length: int) -> None:
    assert auto_piece_length(total) == piece_length


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1 << 44))
def test_auto_piece_length_is_a_power_of_two_giving_1000_to_2000_pieces(total: int) -> None:
    n = auto_piece_length(total)
    assert 16 * KiB <= n <= 16 * MiB and n & (n - 1) == 0
    pieces = -(-total // n)
    if n < 16 * MiB:
        assert pieces <= 2000
    if n > 16 * KiB:
        assert pieces > 1000  # half the length would have given more than 2,000


@pytest.mark.parametrize("piece_length", [0, -16384, 1000, 16383, 3 * 16384, 16384 + 1])
def test_bad_piece_length_is_a_usage_error(
    make_file: Callable[..., Path], piece_length: int
) -> None:
    src = make_file("f.bin", 100)
    with pytest.raises(UsageError, match="power of two of at least 16 KiB"):
        create_torrent(src, piece_length=piece_length)


def test_explicit_piece_length_is_used(make_file: Callable[..., Path]) -> None:
    src = make_file("f.bin", 100_000)
    t = metainfo.parse(create_torrent(src, piece_length=32 * KiB))
    assert t.piece_length == 32 * KiB and t.num_pieces == 4
    assert list(t.piece_hashes) == sha1_pieces(src.read_bytes(), 32 * KiB)


# -- hashing -------------------------------------------------------------------------------


@pytest.fixture
def tree(make_file: Callable[..., Path], tmp_path: Path) -> tuple[Path, bytes]:
    """A folder whose files cross piece boundaries every which way; and their concatenation."""
    sizes = {"a.bin": 10_000, "b/c.bin": 70_000, "b/d/e.bin": 5, "f.bin": 0, "g.bin": 16 * KiB}
    blob = b"".join(make_file(f"tree/{rel}", n).read_bytes() for rel, n in sizes.items())
    return tmp_path / "tree", blob


def test_hash_pieces_across_file_boundaries_equals_hashlib(tree: tuple[Path, bytes]) -> None:
    root, blob = tree
    files = collect_files(root)
    assert sum(f.length for f in files) == len(blob) == 10_000 + 70_000 + 5 + 16 * KiB
    for piece_length in (16 * KiB, 32 * KiB, 128 * KiB):
        assert hash_pieces(files, piece_length, threads=1) == sha1_pieces(blob, piece_length)


@pytest.mark.parametrize("span", [16 * KiB, 3 * 16 * KiB + 5, 1 << 20])
def test_threads_and_span_sizes_give_the_same_hashes(
    tree: tuple[Path, bytes], span: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small spans make many tasks, each starting mid-file, so the threads really interleave.
    monkeypatch.setattr(create, "SPAN", span)
    root, blob = tree
    files = collect_files(root)
    want = sha1_pieces(blob, 16 * KiB)
    assert hash_pieces(files, 16 * KiB, threads=1) == want
    assert hash_pieces(files, 16 * KiB, threads=2) == want
    assert hash_pieces(files, 16 * KiB, threads=4) == want


def test_progress_is_reported_up_to_the_total(tree: tuple[Path, bytes]) -> None:
    root, blob = tree
    seen: list[tuple[int, int]] = []
    create_torrent(root, piece_length=16 * KiB, on_progress=lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == len(blob)
    assert {t for _, t in seen} == {len(blob)}


def test_folder_torrent_round_trip(tree: tuple[Path, bytes]) -> None:
    root, blob = tree
    t = metainfo.parse(create_torrent(root, threads=2))
    assert t.multi_file and t.name == "tree" and t.length == len(blob)
    assert [f.path_str for f in t.files] == [
        "tree/a.bin",
        "tree/b/c.bin",
        "tree/b/d/e.bin",
        "tree/f.bin",
        "tree/g.bin",
    ]
    assert list(t.piece_hashes) == sha1_pieces(blob, t.piece_length)


def test_single_file_torrent(make_file: Callable[..., Path]) -> None:
    src = make_file("one.bin", 50_000)
    raw = create_torrent(
        src,
        trackers=[["http://a/"], ["udp://b:1", "udp://c:1"]],
        webseeds=["http://w/one.bin"],
        private=True,
        comment="note",
    )
    t = metainfo.parse(raw)
    assert not t.multi_file and t.name == "one.bin" and t.length == 50_000
    assert [f.path for f in t.files] == [("one.bin",)]
    assert t.trackers == ["http://a/", "udp://b:1", "udp://c:1"]
    assert t.url_list == ("http://w/one.bin",) and t.private and t.comment == "note"


def test_folder_given_as_dot(
    make_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_file("named/x.bin", 10)
    monkeypatch.chdir(src.parent)
    assert metainfo.parse(create_torrent(".")).name == "named"


# -- which files ---------------------------------------------------------------------------


def test_hidden_files_folders_and_symlinks_are_left_out(make_file: Callable[..., Path]) -> None:
    keep = make_file("d/keep.bin", 5)
    make_file("d/.hidden", b"secret")
    make_file("d/.git/config", b"secret")
    make_file("d/sub/.DS_Store", b"secret")
    make_file("d/sub/seen.txt", b"1")
    os.symlink(keep, keep.parent / "link.bin")
    files = collect_files(keep.parent)
    assert [f.path for f in files] == [("keep.bin",), ("sub", "seen.txt")]
    t = metainfo.parse(create_torrent(keep.parent))
    assert b"secret" not in t.raw_info and b".git" not in t.raw_info


def test_files_are_ordered_by_path_components(make_file: Callable[..., Path]) -> None:
    # Plain string order would put "a-b" before "a/x" ('-' < '/'); component order does not.
    for rel in ("r/a-b", "r/a/x", "r/B", "r/a.txt"):
        make_file(rel, 1)
    files = collect_files(make_file("r/a-b", 1).parent)
    assert [f.path for f in files] == sorted([("a-b",), ("a", "x"), ("B",), ("a.txt",)])


def test_an_explicit_hidden_file_is_shared(make_file: Callable[..., Path]) -> None:
    src = make_file(".dotfile", 10)
    assert metainfo.parse(create_torrent(src)).name == ".dotfile"


def _nothing_to_share(tmp: Path, case: str) -> Path:
    """Make the path for one of the cases below."""
    if case == "missing":
        return tmp / "missing"
    if case == "device":
        return Path("/dev/null")
    if case == "empty file":
        (tmp / "zero.bin").write_bytes(b"")
        return tmp / "zero.bin"
    root = tmp / "d"
    root.mkdir()
    if case == "only hidden files":
        (root / ".only").write_bytes(b"x")
    elif case == "only empty files":
        (root / "e1").write_bytes(b"")
        (root / "sub").mkdir()
        (root / "sub" / "e2").write_bytes(b"")
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file or folder"),
        ("empty folder", "no files to share"),
        ("only hidden files", "no files to share"),
        ("only empty files", "every file is empty"),
        ("empty file", "every file is empty"),
        ("device", "not a regular file or folder"),
    ],
)
def test_nothing_to_share_is_a_usage_error(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create_torrent(_nothing_to_share(tmp_path, case))


def test_a_file_name_that_is_not_utf8_is_handled(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "ok.bin").write_bytes(b"x" * 10)
    with open(os.path.join(os.fsencode(root), b"bad\xff.bin"), "wb") as f:
        f.write(b"y" * 10)
    try:
        t = metainfo.parse(create_torrent(root))
    except SwarmError as exc:  # refusing, with a message for the user, is fine too
        assert "bad" in str(exc)
    else:
        assert len(t.files) == 2


def test_a_file_name_with_a_backslash_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    # Legal on Linux, but a torrent holding it would be unsafe on Windows: refuse at creation.
    root = tmp_path / "d"
    root.mkdir()
    (root / "a\\b.txt").write_bytes(b"x")
    with pytest.raises(SwarmError, match="path separator"):
        create_torrent(root)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.sampled_from([0, 1, 100, 16 * 1024 - 1, 16 * 1024, 40_000]), max_size=6),
    threads=st.integers(1, 3),
)
def test_any_file_layout_hashes_like_the_concatenation(
    tmp_path_factory: pytest.TempPathFactory, lengths: list[int], threads: int
) -> None:
    folder = tmp_path_factory.mktemp("layout")
    files = []
    for i, n in enumerate(lengths + [7]):
        path = folder / f"f{i}"
        path.write_bytes(os.urandom(n))
        files.append(create.SourceFile(path, (path.name,), n))
    data = b"".join(f.disk_path.read_bytes() for f in files)
    got = hash_pieces(files, 16 * 1024, threads=threads)
    assert got == sha1_pieces(data, 16 * 1024)


def test_an_error_in_a_hashing_thread_is_raised_not_left_as_a_blank_hash(
    tree: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    files = collect_files(root)
    calls = 0
    real_sha1 = hashlib.sha1

    def failing_sha1(data: bytes) -> hashlib._Hash:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(5, "Input/output error")
        return real_sha1(data)

    monkeypatch.setattr(create.hashlib, "sha1", failing_sha1)
    with pytest.raises(OSError, match="Input/output error"):
        hash_pieces(files, 16 * KiB, threads=2)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_the_files_are_unmapped_after_hashing(make_file: Callable[..., Path]) -> None:
    src = make_file("mapped-then-not.bin", 3 * MiB + 5)
    want = sha1_pieces(src.read_bytes(), 256 * KiB)
    with create.Hashing(collect_files(src), 256 * KiB, threads=2) as job:
        assert src.name in Path("/proc/self/maps").read_text()
        assert job.wait() == want
    assert src.name not in Path("/proc/self/maps").read_text()


def test_create_loads_the_metainfo_code_only_once_hashing_runs(
    make_file: Callable[..., Path], tmp_path: Path
) -> None:
    # bench/create: swarm create imports bencoding and metainfo while the pieces hash, and
    # its --help needs neither (nor json, nor concurrent.futures).
    src = make_file("a.bin", 100_000)
    code = (
        "import sys, contextlib, io\n"
        "from swarm import create\n"
        "from swarm.cli import main\n"
        "start = create.Hashing.__init__\n"
        "seen = []\n"
        "def spy(self, *a, **k):\n"
        "    seen.append('swarm.metainfo' in sys.modules)\n"
        "    start(self, *a, **k)\n"
        "create.Hashing.__init__ = spy\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['create', '--help'])\n"
        "light = ['swarm.metainfo', 'swarm.bencoding', 'json', 'concurrent.futures']\n"
        "print(' '.join(m for m in light if m in sys.modules))\n"
        f"code = main(['-q', 'create', {str(src)!r}, '-o', {str(tmp_path / 'a.torrent')!r}])\n"
        "print(code, seen, 'swarm.metainfo' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["", "0 [False] True"], r.stdout
    assert metainfo.load(tmp_path / "a.torrent").name == "a.bin"


# -- tracker and web seed URLs (issue 13, item 5) -----------------------------------------


def test_bad_urls_are_refused_before_any_hashing(
    make_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_file("a.bin", 1000)

    def no_hashing(*args: object, **kwargs: object) -> None:
        raise AssertionError("hashed before the URLs were checked")

    monkeypatch.setattr(create, "Hashing", no_hashing)
    with pytest.raises(UsageError, match="ftp:// is not supported"):
        create_torrent(src, trackers=[["http://ok/announce"], ["ftp://x/announce"]])
    with pytest.raises(UsageError, match="bad web seed URL 'notaurl'"):
        create_torrent(src, trackers=[["http://ok/announce"]], webseeds=["notaurl"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-t", "notaurl"], ["'notaurl'", "http://, https:// or udp://"]),
        (["-t", "ftp://x/announce"], ["ftp:// is not supported"]),
        (["-t", "http://ok/announce,udp://no-port"], ["'udp://no-port'", "needs a port"]),
        (["--webseed", "ftp://x/file"], ["bad web seed URL"]),
        (["--webseed", "http:///file"], ["bad web seed URL", "no host"]),
        (["--webseed", "http://x/files/#top"], ["bad web seed URL", "#fragment"]),
        (["--webseed", "x.example/files/"], ["bad web seed URL", "not a URL"]),
        (["--webseed", "http://x:0/"], ["bad web seed URL", "port"]),
    ],
)
def test_create_refuses_a_bad_url_as_a_process(
    make_file: Callable[..., Path], tmp_path: Path, args: list[str], words: list[str]
) -> None:
    src = make_file("a.bin", 1000)
    out = tmp_path / "a.torrent"
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "create", str(src), "-o", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: bad ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and all(w in r.stderr for w in words), r.stderr
    assert r.stdout == "" and not out.exists()
