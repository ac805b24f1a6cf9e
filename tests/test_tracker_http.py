"""The tracker's HTTP handler without sockets: its HTML page (names, escaping, counts)."""

from __future__ import annotations

import random

from tracker.http import HTTPTracker
from tracker.state import Announce, TrackerState

H1, H2 = b"\x01" * 20, b"\x02" * 20


def handler(names: dict[bytes, str] | None = None) -> HTTPTracker:
    return HTTPTracker(TrackerState(interval=60, rng=random.Random(1)), 60, 5, names=names)


def announce(h: HTTPTracker, info_hash: bytes, peer: int, left: int) -> None:
    h.state.announce(Announce(info_hash, bytes([peer]) * 20, "127.0.0.1", 6000 + peer, left=left))


def test_the_page_names_the_torrents_it_knows_html_escaped() -> None:
    h = handler({H1: '<script>alert("x")</script> & song.wav'})
    announce(h, H1, 1, left=0)
    announce(h, H2, 2, left=10)
    status, ctype, body = h.respond(b"/", "127.0.0.1")
    page = body.decode()
    assert status == 200 and ctype.startswith(b"text/html")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; song.wav" in page
    assert "<script>" not in page
    # a torrent the tracker has no name for still has its row, with an empty name
    assert f'<td class="name"></td><td><code>{H2.hex()}</code>' in page
    assert H1.hex() in page and "<th>name</th>" in page


def test_the_page_counts_in_the_singular_for_one() -> None:
    h = handler()
    announce(h, H1, 1, left=0)
    page = h.page()
    assert "1 torrent, 1 seeder, 0 leechers, 0 completed downloads" in page
    announce(h, H2, 2, left=5)
    announce(h, H2, 3, left=5)
    assert "2 torrents, 1 seeder, 2 leechers" in h.page()


def test_the_page_without_torrents() -> None:
    page = handler().page()
    assert "0 torrents" in page and "no torrents yet" in page
