"""``swarm tracker --allow DIR``: its page names the torrents of DIR (issue 13, item 9)."""

from __future__ import annotations

import html
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc

from swarm import metainfo

pytestmark = pytest.mark.e2e


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_the_tracker_page_shows_the_names_of_allowed_torrents(
    procs: Callable[..., Proc], make_file: Callable[..., Path], tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    name = "<i>waves & more.wav"  # a name is any text: the page must escape it
    src = make_file(name, 40_000)
    torrent = allowed / "waves.torrent"
    subprocess.run(
        [sys.executable, "-m", "swarm", "-q", "create", str(src), "-o", str(torrent)],
        check=True,
        timeout=60,
    )
    info_hash = metainfo.load(torrent).info_hash
    p = procs("tracker", "--host", "127.0.0.1", "--port", "0", "--no-udp", "--allow", allowed)
    announce_url = p.wait_line(lambda s: s.startswith("http://")).split()[0]
    query = urllib.parse.urlencode(
        {"info_hash": info_hash, "peer_id": b"-SW0001-" + b"x" * 12, "port": 6881, "left": 0}
    )
    assert "failure" not in get(f"{announce_url}?{query}")
    page = get(announce_url.rsplit("/", 1)[0] + "/")
    assert f'<td class="name">{html.escape(name)}</td>' in page
    assert info_hash.hex() in page and "<i>" not in page
    assert "1 torrent, 1 seeder" in page
