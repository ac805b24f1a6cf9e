"""The tracker's live page without sockets (:mod:`tracker.page`): /stats' per-torrent data,
peer_id as text, the bounds on what is listed, the HTML's escaping, and the tracker's own
.torrent reader (:mod:`tracker.torrent_file`) that names torrents for it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm import metainfo
from tracker import page, torrent_file
from tracker.errors import TorrentFileError
from tracker.http import HTTPTracker
from tracker.state import Announce, TrackerState

H1, H2 = b"\x01" * 20, b"\x02" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(clock: Clock | None = None) -> TrackerState:
    return TrackerState(interval=60, rng=random.Random(1), clock=clock or Clock())


def announce(state: TrackerState, info_hash: bytes, peer_id: bytes, left: int, port: int = 6881):
    state.announce(Announce(info_hash, peer_id, "127.0.0.1", port, left=left))


def test_peer_id_text_keeps_printable_ascii_and_escapes_the_rest() -> None:
    assert page.peer_id_text(b"-TR3000-\x00\xff<b>%&z ") == "-TR3000-%00%ff<b>%25&z "


@given(st.binary(max_size=40))
def test_peer_id_text_is_printable_and_reversible(peer_id: bytes) -> None:
    text = page.peer_id_text(peer_id)
    assert text.isascii() and text.isprintable()
    assert _unquote(text) == peer_id


def _unquote(text: str) -> bytes:
    import urllib.parse

    return urllib.parse.unquote_to_bytes(text)


def test_snapshot_lists_each_swarm_with_its_peers() -> None:
    clock = Clock()
    state = tracker(clock)
    announce(state, H1, b"-SW0001-aaaaaaaaaaaa", left=0, port=7001)
    clock.now += 2.5
    announce(state, H1, b"-SW0001-bbbbbbbbbbbb", left=500, port=7002)
    clock.now += 1
    snap = page.snapshot(state, {H1: "song.wav"})
    # the keys /stats always had are still there
    assert {"torrents", "seeders", "leechers", "completed", "announces"} <= set(snap)
    assert snap["announces_per_second"] == 0.2  # 2 in the last 10 whole seconds
    (s,) = snap["swarms"]
    assert s["info_hash"] == H1.hex() and s["name"] == "song.wav"
    assert (s["seeders"], s["leechers"], s["completed"]) == (1, 1, 0)
    assert s["announces"] == 2 and s["announces_per_second"] == 0.2 and s["more_peers"] == 0
    assert s["peers"] == [
        {
            "peer_id": "-SW0001-aaaaaaaaaaaa",
            "address": "127.0.0.1:7001",
            "left": 0,
            "seconds_since_announce": 3.5,
        },
        {
            "peer_id": "-SW0001-bbbbbbbbbbbb",
            "address": "127.0.0.1:7002",
            "left": 500,
            "seconds_since_announce": 1.0,
        },
    ]
    assert snap["more_torrents"] == 0
    json.dumps(snap)  # JSON as it stands


def test_an_ipv6_peer_is_shown_in_brackets() -> None:
    state = tracker()
    state.announce(Announce(H1, b"p" * 20, "::1", 6881, left=1))
    assert page.snapshot(state, {})["swarms"][0]["peers"][0]["address"] == "[::1]:6881"


def test_a_torrents_rate_counts_its_own_announces_only() -> None:
    clock = Clock()
    state = tracker(clock)
    for i in range(30):
        announce(state, H1, b"%020d" % i, left=1)
    announce(state, H2, b"x" * 20, left=1)
    clock.now += 1
    rates = {s["info_hash"]: s["announces_per_second"] for s in page.snapshot(state, {})["swarms"]}
    assert rates == {H1.hex(): 3.0, H2.hex(): 0.1}
    clock.now += 11  # out of the window
    assert [s["announces_per_second"] for s in page.snapshot(state, {})["swarms"]] == [0, 0]


def test_what_is_listed_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "MAX_PEERS", 3)
    monkeypatch.setattr(page, "MAX_TORRENTS", 2)
    state = tracker()
    for i in range(10):
        announce(state, H1, b"%020d" % i, left=1)
    announce(state, H2, b"y" * 20, left=1)
    announce(state, b"\x03" * 20, b"y" * 20, left=1)
    snap = page.snapshot(state, {})
    assert len(snap["swarms"]) == 2 and snap["more_torrents"] == 1
    assert len(snap["swarms"][0]["peers"]) == 3 and snap["swarms"][0]["more_peers"] == 7
    html = page.render(snap)
    assert "and 7 more" in html and "and 1 more torrents" in html
    assert html.count('<tr class="torrent"') == 2


def test_the_html_escapes_names_and_peer_ids() -> None:
    state = tracker()
    announce(state, H1, b"<img src=x onerror=1", left=1)
    html = page.render(page.snapshot(state, {H1: "<script>x()</script>&"}))
    assert "&lt;script&gt;x()&lt;/script&gt;&amp;" in html
    assert "&lt;img src=x onerror=1" in html
    assert "<img" not in html and html.count("<script") == 1  # the page's own script tag
    assert '<script src="/page.js"></script>' in html


def test_the_script_writes_text_only() -> None:
    assert "innerHTML" not in page.SCRIPT and "outerHTML" not in page.SCRIPT
    assert "insertAdjacentHTML" not in page.SCRIPT and "document.write" not in page.SCRIPT
    assert 'fetch("/stats"' in page.SCRIPT


def test_http_serves_stats_page_and_script_with_a_content_security_policy() -> None:
    from tracker.http import answer_bytes

    h = HTTPTracker(tracker(), 60, 5, names={H1: "n"})
    announce(h.state, H1, b"z" * 20, left=0)
    status, ctype, body = h.respond(b"/stats", "127.0.0.1")
    assert ctype == b"application/json" and json.loads(body)["swarms"][0]["name"] == "n"
    status, ctype, body = h.respond(b"/page.js", "127.0.0.1")
    assert status == 200 and ctype.startswith(b"text/javascript")
    assert body == page.SCRIPT.encode()
    status, ctype, body = h.respond(b"/", "127.0.0.1")
    head = answer_bytes(status, ctype, body, True).split(b"\r\n\r\n")[0]
    assert b"Content-Security-Policy: default-src 'none'; script-src 'self';" in head
    # an announce's answer carries no such header
    _, ctype, body = h.respond(b"/stats", "127.0.0.1")
    assert b"Content-Security-Policy" not in answer_bytes(200, ctype, body, True)


# -- the tracker's .torrent reader ---------------------------------------------------------


def test_the_reader_agrees_with_swarms_metainfo(tmp_path: Path) -> None:
    data = metainfo.build_metainfo(
        name="song.wav",
        piece_length=16384,
        piece_hashes=[b"\x01" * 20],
        length=100,
        trackers=[["http://127.0.0.1:1/announce"]],
    )
    (tmp_path / "a.torrent").write_bytes(data)
    t = metainfo.parse(data)
    assert torrent_file.load(tmp_path / "a.torrent") == (t.info_hash, "song.wav")


def test_the_reader_takes_any_name_and_prefers_name_utf8() -> None:
    data = b"d4:infod6:lengthi1e4:name8:<a/b>\xff\xfe\xfd12:piece lengthi16384eee"
    info_hash, name = torrent_file.info_hash_and_name(data)
    assert name == "<a/b>\ufffd\ufffd\ufffd" and len(info_hash) == 20
    data = b"d4:infod4:name1:x10:name.utf-83:\xc3\xa9zee"
    assert torrent_file.info_hash_and_name(data)[1] == "\xe9z"


@pytest.mark.parametrize(
    "data",
    [b"", b"junk", b"le", b"d4:infoi1ee", b"d3:foo3:bare", b"d4:infod4:name", b"di1ei2ee"],
)
def test_the_reader_refuses_what_is_not_a_torrent(data: bytes) -> None:
    with pytest.raises(TorrentFileError, match="not a .torrent file"):
        torrent_file.info_hash_and_name(data)


@given(st.binary(max_size=200))
def test_the_reader_never_fails_otherwise(data: bytes) -> None:
    try:
        torrent_file.info_hash_and_name(b"d4:info" + data)
    except TorrentFileError:
        pass


def test_the_reader_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(TorrentFileError, match="missing.torrent: cannot read"):
        torrent_file.load(tmp_path / "missing.torrent")


def test_swarm_tracker_refuses_a_bad_torrent_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infoi1ee")
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "tracker", "--port", "0", "--torrent", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}: not a .torrent file: 'info' is not a dictionary"


def test_a_stats_body_is_reused_only_for_a_multiple_of_its_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tracker.http as http

    ticks = iter([10.0, 10.5, 10.6, 20.0, 20.1, 20.2])  # made in 0.5 s: reused for 1 s
    monkeypatch.setattr(http.time, "monotonic", lambda: next(ticks))
    h = HTTPTracker(tracker(), 60, 5)
    first = h.stats_body()
    announce(h.state, H1, b"z" * 20, left=0)
    assert h.stats_body() == first  # at 10.6, before 10.5 + 1
    assert json.loads(h.stats_body())["seeders"] == 1  # at 20.0: made again


def test_a_cheap_stats_body_is_fresh() -> None:
    h = HTTPTracker(tracker(), 60, 5)
    assert json.loads(h.stats_body())["seeders"] == 0
    announce(h.state, H1, b"z" * 20, left=0)
    # a tiny tracker's body takes microseconds: reused for at most 20 times that
    import time

    deadline = time.monotonic() + 1
    while json.loads(h.stats_body())["seeders"] != 1:
        assert time.monotonic() < deadline
