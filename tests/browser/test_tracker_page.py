"""The tracker's live page in headless chromium: a real ``swarm tracker`` on 127.0.0.1, real
HTTP announces, the page's counts changing without a reload, and hostile names and peer_ids
shown as text (issue 19, item 2)."""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procutil import Proc

from swarm import metainfo
from tracker.torrent_file import info_hash_and_name

from .conftest import screenshot

pytestmark = pytest.mark.e2e

NAME_ATTACK = "<script>window.__pwned=1</script>"
PEER_ATTACK = b"<img src=x onerror=window.__pwned=2>"


def start_tracker(procs: Callable[..., Proc], *torrents: Path) -> tuple[Proc, str]:
    """A ``swarm tracker`` (HTTP only, port 0) told *torrents*' names; it and its base URL."""
    names = [a for t in torrents for a in ("--torrent", str(t))]
    p = procs("tracker", "--host", "127.0.0.1", "--port", "0", "--no-udp", *names)
    return p, p.wait_line(lambda s: s.startswith("page: ")).split()[1].rstrip("/")


def announce(base: str, info_hash: bytes, peer_id: bytes, port: int, left: int) -> None:
    query = urllib.parse.urlencode(
        {"info_hash": info_hash, "peer_id": peer_id, "port": port, "left": left, "compact": 1}
    )
    with urllib.request.urlopen(f"{base}/announce?{query}", timeout=10) as r:
        body = r.read()
    assert b"failure" not in body, body


def make_torrent(path: Path, name: str) -> bytes:
    """A .torrent named *name* at *path* (built as bytes: a name with '/' is no file name);
    its info-hash."""
    data = metainfo.build_metainfo(
        name="placeholder", piece_length=16384, piece_hashes=[b"\x01" * 20], length=100
    )
    data = data.replace(b"4:name11:placeholder", b"4:name%d:%s" % (len(name), name.encode()))
    path.write_bytes(data)
    return info_hash_and_name(data)[0]


def counts(page: Any, info_hash: bytes) -> tuple[str, str]:
    row = f'tr.torrent[data-info-hash="{info_hash.hex()}"]'
    return page.text_content(f"{row} td.seeders"), page.text_content(f"{row} td.leechers")


def test_the_page_follows_the_swarm_without_a_reload(
    procs: Callable[..., Proc], page: Any, tmp_path: Path
) -> None:
    info_hash = make_torrent(tmp_path / "song.torrent", "song.wav")
    tracker, base = start_tracker(procs, tmp_path / "song.torrent")
    announce(base, info_hash, b"-SW0001-seed00000000", 7001, left=0)
    announce(base, info_hash, b"-TR3000-\x00\xffleech00000", 7002, left=5000)
    page.goto(base + "/")
    assert page.text_content("td.name") == "song.wav"
    assert counts(page, info_hash) == ("1", "1")
    assert "-TR3000-%00%ffleech00000" in page.inner_text("table.peers")
    # the script is running: it says so
    page.wait_for_function("document.getElementById('status').textContent.startsWith('live')")
    page.evaluate("window.__marker = 1")  # gone if the page reloads
    announce(base, info_hash, b"-SW0001-leech1111111", 7003, left=100)
    announce(base, info_hash, b"-SW0001-seed11111111", 7004, left=0)
    row = f'tr.torrent[data-info-hash="{info_hash.hex()}"]'
    page.wait_for_function(
        f"""() => {{
            const r = document.querySelector('{row}');
            return r && r.querySelector('td.seeders').textContent === '2'
                && r.querySelector('td.leechers').textContent === '2';
        }}""",
        timeout=10_000,
    )
    assert page.evaluate("window.__marker") == 1
    assert "1 torrent, 2 seeders, 2 leechers" in page.inner_text("#totals")
    peers = page.inner_text(f"{row} + tr.peers")
    assert "127.0.0.1:7004" in peers and "s ago" in peers
    shot = screenshot(page, tmp_path / "tracker-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the tracker goes away: the page says so, keeps the last figures, and raises nothing
    assert tracker.stop() == 0
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('tracker unreachable')"
    )
    assert page.text_content(f"{row} td.seeders") == "2"
    assert page.errors == []


def test_a_hostile_name_and_peer_id_are_shown_as_text(
    procs: Callable[..., Proc], page: Any, tmp_path: Path
) -> None:
    info_hash = make_torrent(tmp_path / "evil.torrent", NAME_ATTACK)
    _, base = start_tracker(procs, tmp_path / "evil.torrent")
    peer_id = PEER_ATTACK[:20]  # a peer_id is 20 bytes
    announce(base, info_hash, peer_id, 7001, left=10)
    page.goto(base + "/")

    def check() -> None:
        assert page.evaluate("typeof window.__pwned") == "undefined"
        # only the page's own script and no image: nothing injected became an element
        assert page.evaluate("document.querySelectorAll('script').length") == 1
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.text_content("td.name") == NAME_ATTACK
        assert peer_id.decode() in page.inner_text("table.peers")

    check()  # as the server rendered it
    # and as the script redraws it from /stats (after the next announce's counts show)
    announce(base, info_hash, PEER_ATTACK[-20:], 7002, left=0)
    page.wait_for_function(
        "document.querySelector('td.seeders') && "
        "document.querySelector('td.seeders').textContent === '1'"
    )
    check()
    assert PEER_ATTACK[-20:].decode() in page.inner_text("table.peers")
    screenshot(page, tmp_path / "tracker-page-hostile.png")
    assert page.errors == []
