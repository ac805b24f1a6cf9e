"""Metainfo: parse, build, validate (BEP 3, 12, 19, 27); strict bencoding."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding, metainfo
from swarm.create import auto_piece_length, collect_files, create_torrent, hash_pieces
from swarm.errors import MetainfoError, UsageError
from swarm.units import parse_rate, parse_size

SAMPLES = Path(__file__).resolve().parent.parent / "sample_files"


def info(**over: object) -> dict[bytes, object]:
    d: dict[bytes, object] = {
        b"name": b"a.bin",
        b"piece length": 16384,
        b"pieces": b"\x00" * 20,
        b"length": 100,
    }
    d.update({k.encode() if isinstance(k, str) else k: v for k, v in over.items()})
    return d


def torrent_bytes(i: dict[bytes, object] | None = None, **top: object) -> bytes:
    meta: dict[bytes, object] = {b"info": i if i is not None else info()}
    meta.update({k.encode(): v for k, v in top.items()})
    return bencodepy.encode(meta)


def test_sample_files_round_trip_and_hash_like_hashlib() -> None:
    wav = SAMPLES / "ocean-waves.wav"
    t = metainfo.parse(create_torrent(wav, trackers=[["http://127.0.0.1:1/announce"]]))
    data = wav.read_bytes()
    assert t.length == len(data) and t.name == "ocean-waves.wav" and not t.multi_file
    for i, h in enumerate(t.piece_hashes):
        assert h == hashlib.sha1(data[i * t.piece_length : (i + 1) * t.piece_length]).digest()
    folder = metainfo.parse(create_torrent(SAMPLES / "photos"))
    assert folder.multi_file and [f.path_str for f in folder.files] == [
        "photos/gradient.png",
        "photos/noise.png",
    ]
    blob = b"".join((SAMPLES / "photos" / n).read_bytes() for n in ("gradient.png", "noise.png"))
    assert folder.piece_hashes[0] == hashlib.sha1(blob[: folder.piece_length]).digest()


def test_multi_file_nested_zero_length_and_non_ascii(tmp_path: Path) -> None:
    root = tmp_path / "Sammlung ü"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.bin").write_bytes(b"x" * 40_000)
    (root / "empty.txt").write_bytes(b"")
    (root / "日本.txt").write_bytes(b"y" * 10)
    raw = create_torrent(
        root,
        trackers=[["http://t1/a", "http://t2/a"], ["udp://t3:1"]],
        webseeds=["http://w/"],
        private=True,
        comment="c",
    )
    t = metainfo.parse(raw)
    assert [f.path_str for f in t.files] == [
        "Sammlung ü/a/b/deep.bin",
        "Sammlung ü/empty.txt",
        "Sammlung ü/日本.txt",
    ]
    assert [f.length for f in t.files] == [40_000, 0, 10]
    assert t.announce_tiers == (("http://t1/a", "http://t2/a"), ("udp://t3:1",))
    assert t.trackers == ["http://t1/a", "http://t2/a", "udp://t3:1"]
    assert t.private and t.url_list == ("http://w/",) and t.comment == "c"
    again = metainfo.parse(t.to_bytes())
    assert again.info_hash == t.info_hash and again.raw_info == t.raw_info
    s = t.summary()
    assert s["info_hash"] == t.info_hash.hex() and len(s["info_hash"]) == 40
    assert s["pieces"] == t.num_pieces and s["announce"] == t.trackers


def test_unsorted_keys_hash_the_raw_span() -> None:
    raw_info = b"d6:lengthi100e4:name5:a.bin6:pieces20:" + b"\x01" * 20 + b"12:piece lengthi16384ee"
    data = b"d8:announce9:http://x/4:info" + raw_info + b"e"
    t = metainfo.parse(data)
    assert t.info_hash == hashlib.sha1(raw_info).digest()
    assert t.info_hash != hashlib.sha1(bencodepy.encode(bencodepy.decode(raw_info))).digest()
    assert metainfo.parse(t.to_bytes()).info_hash == t.info_hash


def test_unknown_keys_are_kept() -> None:
    data = torrent_bytes(info(**{"x-custom": b"v"}), **{"zzz": 5, "announce": b"http://a/"})
    t = metainfo.parse(data)
    assert t.extra == {b"zzz": 5}
    assert b"x-custom" in t.raw_info
    assert bencodepy.decode(t.to_bytes())[b"zzz"] == 5


def test_announce_list_wins_and_url_list_may_be_a_string() -> None:
    t = metainfo.parse(
        torrent_bytes(
            announce=b"http://a/", **{"announce-list": [[b"http://b/"]], "url-list": b"http://w/"}
        )
    )
    assert t.trackers == ["http://b/"] and t.url_list == ("http://w/",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"d4:infod", "not valid bencoding"),
        (torrent_bytes() + b"xx", "trailing data"),
        (b"le", "not a dictionary"),
        (bencodepy.encode({b"announce": b"x"}), "'info' dictionary is missing"),
        (torrent_bytes(info(pieces=b"\x00" * 19)), "not a multiple of 20"),
        (torrent_bytes(info(pieces=b"\x00" * 40)), "holds 2 hashes"),
        (torrent_bytes(info(**{"piece length": 0})), "must be positive"),
        (torrent_bytes(info(**{"piece length": -5})), "must be positive"),
        (torrent_bytes(info(**{"piece length": b"x"})), "must be an integer"),
        (torrent_bytes(info(length=-1)), "negative"),
        (torrent_bytes(info(length=1 << 60)), "absurdly large"),
        (torrent_bytes(info(name=b"..")), "leave the output folder"),
        (torrent_bytes(info(name=b"a/b")), "path separator"),
        (torrent_bytes(info(name=b"a\\b")), "path separator"),
        (torrent_bytes(info(name=b"a\x00b")), "NUL"),
        (torrent_bytes(info(name=b"C:evil")), "drive letter"),
        (torrent_bytes(info(name=b"")), "empty path component"),
        (
            torrent_bytes({b"name": b"x", b"piece length": 16384, b"pieces": b""}),
            "neither 'length' nor 'files'",
        ),
    ],
)
def test_every_malformed_input_has_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(MetainfoError, match=message):
        metainfo.parse(data)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ([b"..", b"etc"], "leave the output folder"),
        ([b"/etc/passwd"], "path separator"),
        ([b"a", b""], "empty path component"),
        ([b"a\x00"], "NUL"),
        ([b"a\\..\\b"], "path separator"),
        ([b"D:", b"x"], "drive letter"),
        ([], "non-empty list"),
    ],
)
def test_file_paths_cannot_leave_the_output_folder(path: list[bytes], message: str) -> None:
    i = {
        b"name": b"set",
        b"piece length": 16384,
        b"pieces": b"\x00" * 20,
        b"files": [{b"length": 5, b"path": path}],
    }
    with pytest.raises(MetainfoError, match=message):
        metainfo.parse(torrent_bytes(i))


def test_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.torrent"
    big.write_bytes(b"d" + b"0:" * (5 * 1024 * 1024 + 10) + b"e")
    with pytest.raises(MetainfoError, match="limit"):
        metainfo.load(big)
    with pytest.raises(MetainfoError, match="limit"):
        metainfo.parse(torrent_bytes(), max_size=10)


def test_valid_but_unusual_is_accepted() -> None:
    t = metainfo.parse(torrent_bytes(info(length=1, **{"piece length": 1 << 20})))
    assert t.num_pieces == 1 and t.piece_size(0) == 1


def test_strict_bencoding() -> None:
    for bad in [
        b"i03e",
        b"i-0e",
        b"i 1e",
        b"i1_0e",
        b"l-3:e",
        b"4:ab",
        b"d1:a-10:xxxxxxxxxxxe",
        b"l" * 200 + b"e" * 200,
    ]:
        with pytest.raises(MetainfoError):
            bencoding.decode(bad)
    value, spans = bencoding.decode_with_spans(b"d1:bi1e1:al1:xee")
    assert spans == {b"b": (4, 7), b"a": (10, 15)} and value[b"a"] == [b"x"]


def test_create_piece_length_and_threads(tmp_path: Path) -> None:
    assert auto_piece_length(1 << 30) == 1 << 20
    assert auto_piece_length(1000) == 16 * 1024
    assert auto_piece_length(1 << 45) == 16 << 20
    root = tmp_path / "d"
    root.mkdir()
    blob = b""
    for i, n in enumerate([10_000, 70_000, 5]):
        data = random.Random(i).randbytes(n)
        (root / f"{i}.bin").write_bytes(data)
        blob += data
    (root / ".hidden").write_bytes(b"secret")
    files = collect_files(root)
    assert [f.path for f in files] == [("0.bin",), ("1.bin",), ("2.bin",)]
    want = [hashlib.sha1(blob[i : i + 16384]).digest() for i in range(0, len(blob), 16384)]
    assert hash_pieces(files, 16384, threads=1) == want == hash_pieces(files, 16384, threads=2)
    with pytest.raises(UsageError):
        create_torrent(root, piece_length=1000)
    with pytest.raises(UsageError):
        create_torrent(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        create_torrent(tmp_path / "empty")


def test_units() -> None:
    assert (
        parse_size("16K") == 16384 and parse_size("4M") == 4 << 20 and parse_size("1G") == 1 << 30
    )
    assert parse_size("1.5M") == 1572864 and parse_size("2KiB") == 2048 and parse_size("100") == 100
    assert (
        parse_rate("10MiB/s") == 10 << 20
        and parse_rate("unlimited") is None
        and parse_rate("0") is None
    )
    for bad in ("3X", "", "-1", "1.2.3"):
        with pytest.raises(UsageError):
            parse_size(bad)


VALID = torrent_bytes(info(), announce=b"http://a/")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_metainfo_errors(data: bytes) -> None:
    try:
        metainfo.parse(data)
    except MetainfoError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(VALID) - 1),
            st.integers(0, 255),
            st.sampled_from(["flip", "insert", "delete"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_torrents_raise_only_metainfo_errors(edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(VALID)
    for pos, byte, kind in edits:
        pos = min(pos, len(data) - 1)
        if kind == "flip":
            data[pos] = byte
        elif kind == "insert":
            data.insert(pos, byte)
        elif len(data) > 1:
            del data[pos]
    try:
        metainfo.parse(bytes(data))
    except MetainfoError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.integers() | st.binary(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.binary(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_bencoding_round_trip(value: object) -> None:
    assert bencoding.decode(bencoding.encode(value)) == value
