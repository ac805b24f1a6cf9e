"""Tests for swarm.webseed_plan: BEP 19 URLs, range plans, web seed lists and back-off."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.info_dict import FileEntry
from swarm.metainfo import build_metainfo, parse
from swarm.webseed_plan import (
    FileRange,
    Problem,
    WebSeedHealth,
    file_url,
    parse_web_seeds,
    plan_ranges,
    range_url,
)

# -- URLs ------------------------------------------------------------------------------------


def test_single_file_base_folder_gets_the_name() -> None:
    assert file_url("http://h/files/", "a.iso", (), False) == "http://h/files/a.iso"


def test_single_file_base_is_the_file() -> None:
    assert file_url("http://h/x/b.iso", "a.iso", (), False) == "http://h/x/b.iso"


def test_single_file_name_is_encoded() -> None:
    assert file_url("http://h/", "a b%.iso", (), False) == "http://h/a%20b%25.iso"


def test_multi_file_adds_missing_slash() -> None:
    assert file_url("http://h/d", "T", ("f",), True) == "http://h/d/T/f"
    assert file_url("http://h/d/", "T", ("f",), True) == "http://h/d/T/f"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("a b",), "a%20b"),
        (("100%",), "100%25"),
        (("ü",), "%C3%BC"),
        (("#?",), "%23%3F"),
        (("dir", "sub", "f.txt"), "dir/sub/f.txt"),
        (("a/b",), "a%2Fb"),
        (("x-y_z.~",), "x-y_z.~"),
        (("&=+;",), "%26%3D%2B%3B"),
    ],
)
def test_multi_file_path_elements_encoded(parts: tuple[str, ...], expected: str) -> None:
    assert file_url("https://h:8080/seed", "My Film", parts, True) == (
        "https://h:8080/seed/My%20Film/" + expected
    )


def test_range_url_from_a_parsed_torrent() -> None:
    data = build_metainfo(
        name="T ü",
        piece_length=16384,
        piece_hashes=[b"\0" * 20],
        files=[(("d", "a b"), 10), (("c#",), 5)],
    )
    t = parse(data)
    assert range_url("http://h/", t.name, t, t.multi_file, 0) == "http://h/T%20%C3%BC/d/a%20b"
    assert range_url("http://h", t.name, t, t.multi_file, 1) == "http://h/T%20%C3%BC/c%23"
    single = parse(
        build_metainfo(name="s.bin", piece_length=16384, piece_hashes=[b"\0" * 20], length=3)
    )
    assert range_url("http://h/", single.name, single, False, 0) == "http://h/s.bin"


# -- ranges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    files: tuple[FileEntry, ...]
    piece_length: int

    @property
    def length(self) -> int:
        return self.files[-1].offset + self.files[-1].length

    @property
    def num_pieces(self) -> int:
        return -(-self.length // self.piece_length)


def layout(lengths: list[int], piece_length: int, pads: frozenset[int] = frozenset()) -> Layout:
    files, offset = [], 0
    for i, n in enumerate(lengths):
        files.append(FileEntry((f"f{i}",), n, offset, i in pads))
        offset += n
    return Layout(tuple(files), piece_length)


def test_piece_spanning_three_files() -> None:
    lay = layout([10, 3, 10], 16)  # piece 0 = 10 + 3 + 3 bytes
    assert plan_ranges(lay, 0, 0) == [FileRange(0, 0, 9), FileRange(1, 0, 2), FileRange(2, 0, 2)]


def test_piece_ending_at_a_file_end() -> None:
    lay = layout([16, 16], 16)
    assert plan_ranges(lay, 0, 0) == [FileRange(0, 0, 15)]
    assert plan_ranges(lay, 1, 1) == [FileRange(1, 0, 15)]


def test_last_short_piece() -> None:
    lay = layout([20, 5], 16)  # pieces: 16, 9
    assert plan_ranges(lay, 1, 1) == [FileRange(0, 16, 19), FileRange(1, 0, 4)]
    assert plan_ranges(lay, 0, 1) == [FileRange(0, 0, 19), FileRange(1, 0, 4)]


def test_zero_length_files_skipped() -> None:
    lay = layout([0, 8, 0, 0, 8, 0], 4)
    assert plan_ranges(lay, 1, 2) == [FileRange(1, 4, 7), FileRange(4, 0, 3)]
    assert plan_ranges(lay, 0, 3) == [FileRange(1, 0, 7), FileRange(4, 0, 7)]


def test_single_file_torrent() -> None:
    lay = layout([100], 32)
    assert plan_ranges(lay, 1, 3) == [FileRange(0, 32, 99)]
    assert plan_ranges(lay, 1, 3)[0].header == "bytes=32-99"


def test_padding_files_are_marked() -> None:
    lay = layout([5, 11, 16], 16, pads=frozenset({1}))
    assert plan_ranges(lay, 0, 1) == [
        FileRange(0, 0, 4),
        FileRange(1, 0, 10, padding=True),
        FileRange(2, 0, 15),
    ]


def test_pieces_out_of_range() -> None:
    lay = layout([10], 4)
    for first, last in [(-1, 0), (2, 1), (0, 3)]:
        with pytest.raises(ValueError):
            plan_ranges(lay, first, last)


@given(
    lengths=st.lists(st.integers(0, 50), min_size=1, max_size=12).filter(lambda x: sum(x) > 0),
    piece_length=st.integers(1, 40),
    data=st.data(),
)
def test_ranges_cover_exactly_the_run(
    lengths: list[int], piece_length: int, data: st.DataObject
) -> None:
    lay = layout(lengths, piece_length)
    first = data.draw(st.integers(0, lay.num_pieces - 1))
    last = data.draw(st.integers(first, lay.num_pieces - 1))
    content = hashlib.sha256(repr(lengths).encode()).digest() * (sum(lengths) // 32 + 1)
    file_bytes = []
    for f in lay.files:
        file_bytes.append(content[f.offset : f.offset + f.length])
    ranges = plan_ranges(lay, first, last)
    got = b"".join(file_bytes[r.file_index][r.start : r.end + 1] for r in ranges)
    run_end = min((last + 1) * piece_length, lay.length)
    assert got == content[first * piece_length : run_end]
    assert all(r.length > 0 and lay.files[r.file_index].length > 0 for r in ranges)
    assert [r.file_index for r in ranges] == sorted({r.file_index for r in ranges})


# -- which URLs ----------------------------------------------------------------------------


def test_parse_web_seeds_keeps_order_drops_duplicates() -> None:
    seeds = parse_web_seeds(["http://a/", "https://b/x", "http://a/", "HTTP://c/"])
    assert seeds.urls == ("http://a/", "https://b/x", "HTTP://c/")
    assert seeds.skipped == ()


def test_parse_web_seeds_skips_bad_ones_with_reasons() -> None:
    seeds = parse_web_seeds(["ftp://a/f", "http://", "not a url", "", "http://ok/", "udp://t:1"])
    assert seeds.urls == ("http://ok/",)
    assert len(seeds.skipped) == 5
    assert "ftp:// is not supported" in seeds.skipped[0]
    assert "no host" in seeds.skipped[1]
    assert "space" in seeds.skipped[2]
    assert "empty" in seeds.skipped[3]
    assert all(line.startswith("skipping web seed: bad web seed URL") for line in seeds.skipped)


def test_parse_web_seeds_empty() -> None:
    assert parse_web_seeds([]).urls == ()
    assert parse_web_seeds([]).skipped == ()


def test_url_list_and_magnet_together() -> None:
    t = parse(
        build_metainfo(
            name="s",
            piece_length=16384,
            piece_hashes=[b"\0" * 20],
            length=1,
            url_list=["http://a/", "gopher://x/"],
        )
    )
    seeds = parse_web_seeds([*t.url_list, "http://a/", "http://b/"])
    assert seeds.urls == ("http://a/", "http://b/")
    assert len(seeds.skipped) == 1


# -- health ----------------------------------------------------------------------------------


def test_backoff_doubles_and_success_resets() -> None:
    h = WebSeedHealth("http://a/")
    assert h.ready(0.0)
    assert h.failed(10.0, Problem.TIMEOUT) == 2.0
    assert not h.ready(11.9) and h.ready(12.0)
    assert h.failed(12.0, Problem.HTTP_ERROR, "500 Internal Server Error") == 4.0
    assert h.failed(16.0, Problem.HTTP_ERROR, "404") == 8.0
    assert h.last_problem == "HTTP error: 404"
    h.succeeded()
    assert h.ready(16.0)
    assert h.failed(20.0, Problem.TIMEOUT) == 2.0


def test_backoff_capped() -> None:
    h = WebSeedHealth("http://a/", max_failures=100, max_delay=30.0)
    delays = [h.failed(0.0, Problem.TIMEOUT) for _ in range(8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_retry_after_honoured_when_longer() -> None:
    h = WebSeedHealth("http://a/")
    assert h.failed(0.0, Problem.HTTP_ERROR, "503", retry_after=120.0) == 120.0
    assert h.failed(200.0, Problem.HTTP_ERROR, "503", retry_after=1.0) == 4.0
    assert h.failed(300.0, Problem.HTTP_ERROR, "503", retry_after=1e9) == 3600.0


def test_dropped_after_failures_in_a_row() -> None:
    h = WebSeedHealth("http://a/", max_failures=3)
    assert h.failed(0.0, Problem.TIMEOUT) is not None
    assert h.failed(0.0, Problem.TIMEOUT) is not None
    assert h.failed(0.0, Problem.HTTP_ERROR, "500") is None
    assert h.dropped == "3 failures in a row (last: HTTP error: 500)"
    assert not h.ready(1e9)
    h.succeeded()
    assert not h.ready(1e9)  # dropped is for good
    assert h.failed(0.0, Problem.TIMEOUT) is None


def test_dropped_after_corrupt_pieces_despite_successes() -> None:
    h = WebSeedHealth("http://a/", max_corrupt=2)
    assert h.failed(0.0, Problem.CORRUPT, "piece 7") == 2.0
    h.succeeded()
    assert h.ready(5.0)
    assert h.failed(5.0, Problem.CORRUPT, "piece 9") is None
    assert h.dropped == "2 corrupt pieces (last: corrupt data: piece 9)"
