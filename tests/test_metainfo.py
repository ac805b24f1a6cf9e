"""Metainfo (BEP 3, 12, 19, 27): parse, build, validate; and the size and rate units."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding, metainfo
from swarm.create import create_torrent
from swarm.errors import MetainfoError, SwarmError, UsageError
from swarm.units import counted, parse_rate, parse_size

PL = 16384  # the piece length of hand-built torrents


def info(**over: Any) -> dict[bytes, Any]:
    """A valid single-file info dict (100 bytes, one piece); keyword overrides use str keys,
    and None removes a key."""
    d: dict[bytes, Any] = {
        b"name": b"a.bin",
        b"piece length": PL,
        b"pieces": b"\x11" * 20,
        b"length": 100,
    }
    for k, v in over.items():
        key = k.replace("_", " ").encode()
        if v is None:
            d.pop(key, None)
        else:
            d[key] = v
    return d


def multi_info(files: list[tuple[list[bytes], int]], **over: Any) -> dict[bytes, Any]:
    total = sum(n for _, n in files)
    # Absurd totals are refused before the piece count is checked: one hash will do.
    count = -(-total // PL) if 0 < total < 1 << 32 else 1
    d = info(length=None, name=b"set", pieces=b"\x22" * 20 * count)
    d[b"files"] = [{b"length": n, b"path": p} for p, n in files]
    d.update({k.replace("_", " ").encode(): v for k, v in over.items()})
    return d


def files_info(files: Any) -> dict[bytes, Any]:
    """A multi-file info dict whose 'files' value is *files*, as given."""
    d = multi_info([([b"a"], 1)])
    d[b"files"] = files
    return d


def torrent(i: dict[bytes, Any] | None = None, **top: Any) -> bytes:
    meta: dict[bytes, Any] = {b"info": info() if i is None else i}
    names = {"announce_list": b"announce-list", "url_list": b"url-list"}
    meta.update({names.get(k, k.replace("_", " ").encode()): v for k, v in top.items()})
    return bencoding.encode(meta)


def raw_dict(items: list[tuple[bytes, bytes]]) -> bytes:
    """A bencoded dictionary with keys in the given order (values already bencoded)."""
    return b"d" + b"".join(b"%d:%s%s" % (len(k), k, v) for k, v in items) + b"e"


def sha1_pieces(data: bytes, piece_length: int) -> tuple[bytes, ...]:
    return tuple(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )


# -- round trips ---------------------------------------------------------------------------


def test_single_file_sample_round_trip_and_piece_hashes(sample_dir: Path) -> None:
    wav = sample_dir / "ocean-waves.wav"
    t = metainfo.parse(create_torrent(wav, trackers=[["http://127.0.0.1:1/announce"]]))
    data = wav.read_bytes()
    assert t.name == "ocean-waves.wav" and not t.multi_file
    assert t.length == len(data) == t.files[0].length
    assert [f.path_str for f in t.files] == ["ocean-waves.wav"]
    assert t.piece_hashes == sha1_pieces(data, t.piece_length)
    assert t.num_pieces == -(-len(data) // t.piece_length) > 1
    assert t.piece_size(t.num_pieces - 1) == len(data) - (t.num_pieces - 1) * t.piece_length
    assert t.trackers == ["http://127.0.0.1:1/announce"]
    assert t.info_hash == hashlib.sha1(t.raw_info).digest()


def test_folder_sample_hashes_the_concatenation_in_path_order(sample_dir: Path) -> None:
    photos = sample_dir / "photos"
    t = metainfo.parse(create_torrent(photos, piece_length=PL))
    assert t.multi_file and t.name == "photos"
    names = ["gradient.png", "noise.png"]
    assert [f.path_str for f in t.files] == [f"photos/{n}" for n in names]
    blob = b"".join((photos / n).read_bytes() for n in names)
    assert [f.length for f in t.files] == [(photos / n).stat().st_size for n in names]
    assert [f.offset for f in t.files] == [0, t.files[0].length]
    # 16 KiB pieces: several pieces straddle the boundary between the two files.
    assert t.piece_hashes == sha1_pieces(blob, PL)


def test_folder_with_nested_dirs_zero_length_file_and_non_ascii_names(
    make_file: Callable[..., Path],
) -> None:
    deep = make_file("Sammlung ü/a/b/deep.bin", 40_000)
    make_file("Sammlung ü/empty.txt", b"")
    make_file("Sammlung ü/日本.txt", b"y" * 10)
    root = deep.parents[2]
    raw = create_torrent(
        root,
        trackers=[["http://t1/a", "http://t2/a"], ["udp://t3:1"]],
        webseeds=["http://w/"],
        private=True,
        comment="c ✓",
    )
    t = metainfo.parse(raw)
    assert t.name == "Sammlung ü"
    assert [(f.path_str, f.length) for f in t.files] == [
        ("Sammlung ü/a/b/deep.bin", 40_000),
        ("Sammlung ü/empty.txt", 0),
        ("Sammlung ü/日本.txt", 10),
    ]
    assert t.files[1].path == ("Sammlung ü", "empty.txt")
    assert t.length == 40_010
    blob = deep.read_bytes() + b"y" * 10
    assert t.piece_hashes == sha1_pieces(blob, t.piece_length)
    assert t.announce_tiers == (("http://t1/a", "http://t2/a"), ("udp://t3:1",))
    assert t.trackers == ["http://t1/a", "http://t2/a", "udp://t3:1"]
    assert t.private and t.url_list == ("http://w/",) and t.comment == "c ✓"
    assert t.created_by == "swarm" and isinstance(t.creation_date, int)
    # The path components are stored as UTF-8 byte strings.
    assert "日本.txt".encode() in t.raw_info


def test_build_metainfo_round_trip() -> None:
    hashes = [bytes([i]) * 20 for i in range(3)]
    raw = metainfo.build_metainfo(
        name="x",
        piece_length=PL,
        piece_hashes=hashes,
        files=[(("d", "a"), PL), (("e",), 0), (("f",), PL + 1)],
        trackers=[["http://a/"], [], ["http://b/", "http://c/"]],
        url_list=["http://w/"],
        comment="hi",
        creation_date=1_700_000_000,
    )
    t = metainfo.parse(raw)
    assert t.piece_hashes == tuple(hashes)
    assert [(f.path, f.length, f.offset) for f in t.files] == [
        (("x", "d", "a"), PL, 0),
        (("x", "e"), 0, PL),
        (("x", "f"), PL + 1, PL),
    ]
    assert t.announce_tiers == (("http://a/",), ("http://b/", "http://c/"))
    assert (t.comment, t.creation_date, t.private) == ("hi", 1_700_000_000, False)
    assert bencoding.decode(raw)[b"announce"] == b"http://a/"


def test_build_metainfo_refuses_what_it_could_not_read_back() -> None:
    with pytest.raises(MetainfoError, match="leave the output folder"):
        metainfo.build_metainfo(
            name="x", piece_length=PL, piece_hashes=[b"\x00" * 20], files=[(("..",), 5)]
        )


# -- the info-hash -------------------------------------------------------------------------


def test_unsorted_info_keys_hash_the_raw_span() -> None:
    raw_info = raw_dict(
        [
            (b"pieces", b"20:" + b"\x01" * 20),
            (b"name", b"5:a.bin"),
            (b"piece length", b"i16384e"),
            (b"length", b"i100e"),
            (b"x-extra", b"l1:ze"),
        ]
    )
    data = raw_dict([(b"info", raw_info), (b"announce", b"9:http://x/")])  # top unsorted too
    t = metainfo.parse(data)
    assert t.raw_info == raw_info
    assert t.info_hash == hashlib.sha1(raw_info).digest()
    sorted_info = bencoding.encode(bencoding.decode(raw_info))
    assert sorted_info != raw_info
    assert t.info_hash != hashlib.sha1(sorted_info).digest()
    assert t.info_hash_hex == t.info_hash.hex() and len(t.info_hash_hex) == 40
    # Writing the torrent out again keeps the info bytes, so the info-hash survives.
    again = metainfo.parse(t.to_bytes())
    assert again.raw_info == raw_info and again.info_hash == t.info_hash


def test_info_hash_of_a_known_torrent() -> None:
    # A fixed, hand-checked vector: SHA-1 of the exact info bytes below.
    raw_info = b"d6:lengthi100e4:name5:a.bin12:piece lengthi16384e6:pieces20:" + b"\x11" * 20 + b"e"
    t = metainfo.parse(b"d4:info" + raw_info + b"e")
    assert t.info_hash_hex == hashlib.sha1(raw_info).hexdigest()


# -- trackers, web seeds, private ----------------------------------------------------------


def test_announce_alone() -> None:
    t = metainfo.parse(torrent(announce=b"http://a/"))
    assert t.announce_tiers == (("http://a/",),) and t.trackers == ["http://a/"]


def test_no_trackers() -> None:
    t = metainfo.parse(torrent())
    assert t.announce_tiers == () and t.trackers == [] and t.url_list == ()
    assert "tr=" not in t.magnet()


def test_announce_list_tiers_in_order_and_it_wins_over_announce() -> None:
    # BEP 12: when announce-list is present, announce is ignored.
    tiers = [[b"http://b1/", b"http://b2/"], [b"udp://c:1"], [b"http://d/"]]
    t = metainfo.parse(torrent(announce=b"http://a/", announce_list=tiers))
    assert t.announce_tiers == (("http://b1/", "http://b2/"), ("udp://c:1",), ("http://d/",))
    assert t.trackers == ["http://b1/", "http://b2/", "udp://c:1", "http://d/"]
    assert "http://a/" not in t.trackers


def test_empty_announce_list_falls_back_to_announce() -> None:
    t = metainfo.parse(torrent(announce=b"http://a/", announce_list=[]))
    assert t.trackers == ["http://a/"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"http://w/file", ("http://w/file",)),
        ([b"http://w1/", b"http://w2/"], ("http://w1/", "http://w2/")),
        ([], ()),
        (b"", ()),
    ],
)
def test_url_list_as_a_string_or_a_list(value: Any, expected: tuple[str, ...]) -> None:
    t = metainfo.parse(torrent(url_list=value))
    assert t.url_list == expected
    assert metainfo.parse(t.to_bytes()).url_list == expected


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, False), (None, False)])
def test_private_flag(value: int | None, expected: bool) -> None:
    t = metainfo.parse(torrent(info(private=value)))
    assert t.private is expected
    assert t.summary()["private"] is expected


def test_private_lives_inside_info_so_it_changes_the_info_hash() -> None:
    kw: dict[str, Any] = dict(name="a", piece_length=PL, piece_hashes=[b"\x00" * 20], length=9)
    public = metainfo.parse(metainfo.build_metainfo(**kw))
    private = metainfo.parse(metainfo.build_metainfo(**kw, private=True))
    assert b"7:privatei1e" in private.raw_info and b"private" not in public.raw_info
    assert private.info_hash != public.info_hash


# -- unknown keys and to_bytes -------------------------------------------------------------


def test_to_bytes_keeps_unknown_keys_and_the_info_bytes() -> None:
    i = info(**{"x-custom": b"v", "source": b"SRC"})
    data = torrent(
        i,
        announce=b"http://a/",
        announce_list=[[b"http://a/"], [b"http://b/"]],
        url_list=[b"http://w/"],
        comment=b"hello",
        created_by=b"someone",
        creation_date=1234,
        zzz={b"nested": [1, b"two"]},
        encoding=b"UTF-8",
    )
    t = metainfo.parse(data)
    assert t.extra == {b"zzz": {b"nested": [1, b"two"]}, b"encoding": b"UTF-8"}
    assert b"x-custom" in t.raw_info and b"SRC" in t.raw_info
    out = t.to_bytes()
    assert out == data  # everything here is canonical, so nothing moves
    again = metainfo.parse(out)
    assert again.raw_info == t.raw_info and again.info_hash == t.info_hash
    assert again.extra == t.extra
    assert (again.comment, again.created_by, again.creation_date) == ("hello", "someone", 1234)
    assert again.announce_tiers == t.announce_tiers and again.url_list == t.url_list


def test_optional_descriptive_keys_of_the_wrong_type_are_ignored() -> None:
    t = metainfo.parse(torrent(comment=5, created_by=[b"x"], creation_date=b"yesterday"))
    assert (t.comment, t.created_by, t.creation_date) == (None, None, None)


# -- magnet and summary --------------------------------------------------------------------


def test_magnet_uri() -> None:
    t = metainfo.parse(
        torrent(
            info(name="Ünï code & more.bin".encode()),
            announce_list=[[b"http://a/ann?x=1&y=2"], [b"udp://b:80"]],
        )
    )
    uri = t.magnet()
    assert uri.startswith(f"magnet:?xt=urn:btih:{t.info_hash_hex}&")
    query = urllib.parse.parse_qs(uri.removeprefix("magnet:?"))
    assert query["xt"] == [f"urn:btih:{t.info_hash_hex}"]
    assert query["dn"] == ["Ünï code & more.bin"]
    assert query["tr"] == ["http://a/ann?x=1&y=2", "udp://b:80"]  # order kept


def test_summary_is_what_info_json_prints() -> None:
    i = multi_info([([b"d", b"a.bin"], 20_000), ([b"z"], 0)], private=1)
    t = metainfo.parse(torrent(i, announce_list=[[b"http://a/"], [b"http://b/"]]))
    s = t.summary()
    assert s["info_hash"] == t.info_hash_hex and s["name"] == "set"
    assert (s["length"], s["piece_length"], s["pieces"]) == (20_000, PL, 2)
    assert s["files"] == [{"path": "set/d/a.bin", "length": 20_000}, {"path": "set/z", "length": 0}]
    assert s["announce"] == ["http://a/", "http://b/"] and s["private"] is True
    assert s["url_list"] == [] and s["magnet"] == t.magnet()


# -- valid but unusual ---------------------------------------------------------------------


def test_a_single_short_piece() -> None:
    t = metainfo.parse(torrent(info(length=1, piece_length=1 << 20)))
    assert t.num_pieces == 1 and t.piece_size(0) == 1 and t.length == 1
    with pytest.raises(IndexError):
        t.piece_size(1)


def test_zero_length_files_among_others() -> None:
    i = multi_info([([b"empty1"], 0), ([b"data"], PL + 1), ([b"sub", b"empty2"], 0)])
    t = metainfo.parse(torrent(i))
    assert [(f.length, f.offset) for f in t.files] == [(0, 0), (PL + 1, 0), (0, PL + 1)]
    assert t.num_pieces == 2 and t.piece_size(1) == 1


def test_non_ascii_and_odd_but_safe_names() -> None:
    paths = [["ß.txt"], ["日本", "語.txt"], ["...", "a b"], ["-x"], ["name."]]
    i = multi_info([([p.encode() for p in path], 1) for path in paths], name="Ω".encode())
    t = metainfo.parse(torrent(i))
    assert [f.path for f in t.files] == [("Ω", *p) for p in paths]


def test_piece_length_need_not_be_a_power_of_two() -> None:
    t = metainfo.parse(torrent(info(length=30, piece_length=7, pieces=b"\x00" * 100)))
    assert t.num_pieces == 5 and t.piece_size(4) == 2


def test_name_utf8_is_preferred() -> None:
    t = metainfo.parse(torrent(info(name=b"plain", **{"name.utf-8": "ü".encode()})))
    assert t.name == "ü"


# -- every validation error ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"d4:infod", "not valid bencoding", id="truncated"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(torrent() + b"xx", "2 bytes of trailing data", id="trailing"),
        pytest.param(b"d4:infoi03ee", "not valid bencoding", id="non-canonical"),
        pytest.param(b"le", "^not a torrent: the top level is not a dictionary$", id="list"),
        pytest.param(bencoding.encode({b"announce": b"x"}), "'info' dictionary is missing"),
        pytest.param(torrent(b"x"), "'info' is not a dictionary", id="info-str"),  # type: ignore[arg-type]
        pytest.param(torrent(info(name=None)), "'info.name' is missing"),
        pytest.param(torrent(info(name=5)), "'info.name' must be a string"),
        pytest.param(torrent(info(piece_length=None)), "'info.piece length' is missing"),
        pytest.param(torrent(info(piece_length=b"16")), "'info.piece length' must be an integer"),
        pytest.param(torrent(info(piece_length=0)), "must be positive, not 0"),
        pytest.param(torrent(info(piece_length=-5)), "must be positive, not -5"),
        pytest.param(torrent(info(piece_length=1 << 40)), "absurdly large", id="huge-piece"),
        pytest.param(torrent(info(pieces=None)), "'info.pieces' is missing"),
        pytest.param(torrent(info(pieces=[b"x"])), "'info.pieces' must be a byte string"),
        pytest.param(torrent(info(pieces=b"\x00" * 19)), "19 bytes long, not a multiple of 20"),
        pytest.param(torrent(info(pieces=b"\x00" * 41)), "not a multiple of 20", id="41"),
        pytest.param(torrent(info(pieces=b"\x00" * 40)), "holds 2 hashes", id="too-many"),
        pytest.param(torrent(info(pieces=b"")), "holds 0 hashes", id="too-few"),
        pytest.param(torrent(info(length=PL + 1)), "holds 1 hashes .* need 2", id="short"),
        pytest.param(torrent(info(length=None)), "neither 'length' nor 'files'"),
        pytest.param(torrent(info(files=[])), "both 'length' and 'files'"),
        pytest.param(torrent(info(length=b"100")), "'info.length' must be an integer"),
        pytest.param(torrent(info(length=-1)), r"'info.length' is negative \(-1\)"),
        pytest.param(torrent(info(length=1 << 60)), "absurdly large", id="huge-length"),
        pytest.param(torrent(info(length=0, pieces=b"")), "no data", id="zero-total"),
        pytest.param(torrent(files_info([])), "non-empty list"),
        pytest.param(torrent(files_info(b"a")), "non-empty list"),
        pytest.param(torrent(files_info([5])), "must be a dictionary"),
        pytest.param(
            torrent(files_info([{b"path": [b"a"]}])),
            r"'info.files\[0\].length' is missing",
        ),
        pytest.param(
            torrent(files_info([{b"length": 1}])),
            r"'info.files\[0\].path' is missing",
        ),
        pytest.param(
            torrent(files_info([{b"length": 1, b"path": b"a"}])),
            "non-empty list of names",
        ),
        pytest.param(
            torrent(files_info([{b"length": 1, b"path": [1]}])),
            "must be a string",
        ),
        pytest.param(torrent(multi_info([([b"a"], 1), ([b"b"], -1)])), r"files\[1\].*negative"),
        pytest.param(
            torrent(multi_info([([b"a"], 1), ([b"b"], 1 << 51)])),
            "absurdly large",
            id="huge-file",
        ),
        pytest.param(
            torrent(multi_info([([b"a"], 1 << 49), ([b"b"], 1 << 49), ([b"c"], 1 << 49)])),
            "total length is absurdly large",
        ),
        pytest.param(torrent(multi_info([([b"a"], 1), ([b"a"], 1)])), "duplicate file path"),
    ],
)
def test_every_malformed_input_has_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(MetainfoError, match=message):
        metainfo.parse(data)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (b"..", "would leave the output folder"),
        (b".", "would leave the output folder"),
        (b"", "empty path component"),
        (b"a/b", "path separator"),
        (b"/etc", "path separator"),
        (b"a\\b", "path separator"),
        (b"a\x00b", "NUL byte"),
        (b"C:evil", "drive letter"),
        (b"c:", "drive letter"),
    ],
)
def test_unsafe_names_are_refused(name: bytes, message: str) -> None:
    with pytest.raises(MetainfoError, match=f"info.name: .*{message}"):
        metainfo.parse(torrent(info(name=name)))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ([b"..", b"etc", b"passwd"], "would leave the output folder"),
        ([b"a", b"..", b"..", b"b"], "would leave the output folder"),
        ([b"a", b"."], "would leave the output folder"),
        ([b"/etc/passwd"], "path separator"),
        ([b"", b"etc", b"passwd"], "empty path component"),  # a leading '/' once split
        ([b"a", b""], "empty path component"),
        ([b"a\x00.txt"], "NUL byte"),
        ([b"..\\..\\windows"], "path separator"),
        ([b"a\\b"], "path separator"),
        ([b"C:", b"Windows"], "drive letter"),
        ([b"D:\\x"], "drive letter|path separator"),
        ([b"a/../../b"], "path separator"),
        ([], "non-empty list"),
    ],
)
def test_file_paths_cannot_leave_the_output_folder(path: list[bytes], message: str) -> None:
    i = multi_info([([b"ok"], 5)])
    i[b"files"].append({b"length": 5, b"path": path})
    with pytest.raises(MetainfoError, match=rf"info.files\[1\].*({message})"):
        metainfo.parse(torrent(i))


def test_path_utf8_is_checked_too() -> None:
    i = multi_info([([b"ok"], 5)])
    i[b"files"][0][b"path.utf-8"] = [b".."]
    with pytest.raises(MetainfoError, match="leave the output folder"):
        metainfo.parse(torrent(i))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="a.:/\\\x00 C", max_size=4).map(str.encode), min_size=1, max_size=4)
)
def test_any_accepted_path_stays_inside_the_output_folder(path: list[bytes]) -> None:
    i = multi_info([(path, 3)])
    try:
        t = metainfo.parse(torrent(i))
    except MetainfoError:
        return
    out = "/srv/out"
    full = os.path.normpath(os.path.join(out, *t.files[0].path))
    assert full.startswith(out + "/")
    assert all(part not in ("", ".", "..") and "/" not in part for part in t.files[0].path)


# -- the size limit ------------------------------------------------------------------------


def test_load_refuses_a_file_over_10_mib(tmp_path: Path) -> None:
    big = tmp_path / "big.torrent"
    big.write_bytes(torrent(info(x_padding=b"\x00" * (11 * 1024 * 1024))))
    assert metainfo.MAX_TORRENT_SIZE == 10 * 1024 * 1024
    with pytest.raises(MetainfoError, match=r"big.torrent: \d+ bytes is larger than the 10485760"):
        metainfo.load(big)
    # A caller may raise the limit for a file it trusts.
    assert metainfo.load(big, max_size=12 * 1024 * 1024).name == "a.bin"


def test_a_big_valid_torrent_under_the_limit_is_read(tmp_path: Path) -> None:
    n = 500_000  # 10 MB of piece hashes, just under 10 MiB in all
    data = torrent(info(length=n * PL, pieces=b"\x07" * 20 * n))
    assert 10_000_000 < len(data) < metainfo.MAX_TORRENT_SIZE
    path = tmp_path / "big.torrent"
    path.write_bytes(data)
    assert metainfo.load(path).num_pieces == n


def test_parse_max_size_boundary() -> None:
    data = torrent()
    assert metainfo.parse(data, max_size=len(data)).name == "a.bin"
    with pytest.raises(MetainfoError, match=f"{len(data)} bytes is larger than the 10-byte"):
        metainfo.parse(data, max_size=10)


def test_load_bounds_its_read_on_a_file_with_no_size() -> None:
    # In a child with 2 GiB of address space, so the bug ends in MemoryError, not the OOM killer.
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({2 << 30}, {2 << 30}))\n"
        "from swarm import metainfo\n"
        "from swarm.errors import MetainfoError\n"
        "try:\n"
        "    metainfo.load('/dev/zero')\n"
        "except MetainfoError as exc:\n"
        "    print(exc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-500:]
    assert "limit" in r.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.torrent", "missing.torrent: no such file"),
        (lambda p: p, "is a folder, not a .torrent file"),
    ],
)
def test_load_errors_name_the_file(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(MetainfoError, match=message):
        metainfo.load(make(tmp_path))


def test_load_prefixes_parse_errors_with_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infod")
    with pytest.raises(MetainfoError, match=r"bad.torrent: not valid bencoding"):
        metainfo.load(bad)


# -- fuzzing -------------------------------------------------------------------------------

VALID = torrent(
    multi_info([([b"d", b"a.bin"], 20_000), ([b"z"], 0), ([b"b"], 5)], private=1),
    announce=b"http://a/",
    announce_list=[[b"http://a/"], [b"udp://b:1"]],
    url_list=b"http://w/",
    comment=b"c",
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_a_torrent_or_a_metainfo_error(data: bytes) -> None:
    try:
        metainfo.parse(data)
    except MetainfoError:
        pass


@settings(max_examples=300, deadline=None)
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
def test_mutated_torrents_give_a_torrent_or_a_metainfo_error(
    edits: list[tuple[int, int, str]],
) -> None:
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
        t = metainfo.parse(bytes(data))
    except MetainfoError:
        return
    # Whatever is accepted is consistent and can be shown and written out again.
    assert t.raw_info in data and t.info_hash == hashlib.sha1(t.raw_info).digest()
    assert t.num_pieces == -(-t.length // t.piece_length)
    t.summary()
    assert metainfo.parse(t.to_bytes()).info_hash == t.info_hash


# -- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16K", 16384),
        ("16k", 16384),
        ("16KiB", 16384),
        ("16KB", 16384),
        ("16 K", 16384),
        ("4M", 4 << 20),
        ("4MiB", 4 << 20),
        ("1G", 1 << 30),
        ("1T", 1 << 40),
        ("1.5M", 1572864),
        ("1048576", 1 << 20),
        ("0", 0),
        (65536, 65536),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["3X", "", "-1", "1.2.3", "K", "1 KK", "ten", "1e6", "1M/s", -5])
def test_parse_size_refuses_garbage(text: str | int) -> None:
    with pytest.raises(UsageError) as exc:
        parse_size(text)
    assert isinstance(exc.value, SwarmError) and exc.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10MiB/s", 10 << 20),
        ("10M/s", 10 << 20),
        ("500K", 500 << 10),
        ("1.5M", 1572864),
        (4096, 4096),
        ("unlimited", None),
        ("none", None),
        ("0", None),
        (0, None),
        (None, None),
        ("", None),
    ],
)
def test_parse_rate(text: str | int | None, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "10X/s", "-1", "/s"])
def test_parse_rate_refuses_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


# -- tracker and web seed URLs a user gives (issue 13, item 5) -----------------------------

GOOD_TRACKERS = [
    "http://127.0.0.1:6969/announce",
    "HTTP://tracker.example/announce",
    "https://tracker.example/announce?passkey=abc",
    "udp://tracker.example:6969",
    "udp://[::1]:6969/announce",
    "http://[::1]:6969/announce",
]
BAD_TRACKERS = [
    ("notaurl", "not a URL"),
    ("ftp://x/announce", "ftp:// is not supported"),
    ("magnet:?xt=urn:btih:00", "not a URL"),
    ("ws://tracker.example/announce", "ws:// is not supported"),
    ("://tracker.example/announce", "not a URL"),
    ("http://", "no host"),
    ("http://:6969/announce", "no host"),
    ("udp://tracker.example", "needs a port"),
    ("udp://tracker.example/announce", "needs a port"),
    ("udp://tracker.example:0", "the port"),
    ("http://tracker.example:99999/announce", "the port"),
    ("udp://tracker.example:x", "the port"),
    ("http://[::1/announce", "bad host"),
    ("http://tracker example/announce", "space"),
    ("http://tracker.example/a\nnnounce", "control character"),
    ("", "empty"),
]


@pytest.mark.parametrize("url", GOOD_TRACKERS)
def test_a_usable_tracker_url_passes(url: str) -> None:
    assert metainfo.tracker_url_problem(url) is None
    assert metainfo.check_tracker_url(url) == url


@pytest.mark.parametrize(("url", "problem"), BAD_TRACKERS)
def test_an_unusable_tracker_url_is_a_one_line_usage_error(url: str, problem: str) -> None:
    assert problem in (metainfo.tracker_url_problem(url) or "")
    with pytest.raises(UsageError) as err:
        metainfo.check_tracker_url(url)
    message = str(err.value)
    assert problem in message and repr(url) in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [("http://seed.example/files/", None), ("udp://seed.example:1/", "udp:// is not supported")],
)
def test_web_seed_urls_are_http_or_https(url: str, problem: str | None) -> None:
    if problem is None:
        assert metainfo.check_web_seed_url(url) == url
    else:
        with pytest.raises(UsageError, match=problem):
            metainfo.check_web_seed_url(url)


def test_a_torrent_that_already_carries_a_bad_tracker_url_still_loads() -> None:
    # Only what a user gives now is checked; a .torrent from elsewhere loads as it is
    # (the engine skips the URLs it cannot use).
    raw = metainfo.build_metainfo(
        name="a.bin",
        piece_length=PL,
        piece_hashes=[b"\x11" * 20],
        length=100,
        trackers=[["notaurl"], ["ftp://x/announce", "http://t/announce"]],
    )
    t = metainfo.parse(raw)
    assert t.trackers == ["notaurl", "ftp://x/announce", "http://t/announce"]


@pytest.mark.parametrize(
    ("n", "words", "text"),
    [
        (1, ("downloader",), "1 downloader"),
        (2, ("downloader",), "2 downloaders"),
        (0, ("byte",), "0 bytes"),
        (1, ("copy", "copies"), "1 copy"),
        (8, ("copy", "copies"), "8 copies"),
    ],
)
def test_counted_uses_the_singular_for_one(n: int, words: tuple[str, ...], text: str) -> None:
    assert counted(n, *words) == text


def test_info_names_a_tracker_url_no_client_can_use(tmp_path: Path) -> None:
    raw = metainfo.build_metainfo(
        name="a.bin",
        piece_length=PL,
        piece_hashes=[b"\x11" * 20],
        length=100,
        trackers=[["ftp://x/announce", "http://t/announce"]],
    )
    path = tmp_path / "a.torrent"
    path.write_bytes(raw)
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "tracker 0     ftp://x/announce http://t/announce" in r.stdout
    unusable = [line for line in r.stdout.splitlines() if line.startswith("unusable:")]
    assert unusable == [
        "unusable:     ftp://x/announce: ftp:// is not supported (only http://, https:// or udp://)"
    ]
