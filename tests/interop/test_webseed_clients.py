"""Other clients use swarm's central server as a web seed (BEP 19, issue 18 item 5).

- A torrent whose only source is `swarm serve-central` (a real process) in its url-list:
  libtorrent and aria2c each download it, a single file and a folder (multi-file: BEP 19's
  base + torrent name + path, which serve-central maps into the folder it serves).
- The same web seed with a `swarm seed` and a `swarm tracker`, each source capped so that
  neither can do it all quickly: libtorrent finishes, and both sources served bytes (libtorrent's
  own per-connection figures, the seed's "seeded N to peers" line and the bytes serve-central
  wrote, from the kernel's count in /proc/PID/io).

libtorrent runs bench/webseed/lt_webseed.py (its defaults, plus what a headless client on
loopback needs: see that file); aria2c runs as the other interop tests run it (exit when
complete: --seed-time=0), which uses a torrent's url-list by default. Every wait is bounded;
every process is stopped by its PID (the ``procs`` fixture).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, aria2_argv, digest, seed_port, start_seed, swarm_run

pytestmark = pytest.mark.interop

LT_WEBSEED = Path(__file__).resolve().parents[2] / "bench" / "webseed" / "lt_webseed.py"
SIZE = 4 * 1024 * 1024
FILES = {  # a multi-file torrent with a nested folder and a name that needs percent-encoding
    "a.bin": 1_500_000,
    "sub/b c.bin": 700_001,
    "sub/deeper/ü+%.bin": 900_000,
}


def serve_central(procs: Callable[..., Proc], path: Path, rate: str | None = None) -> Proc:
    args = ["serve-central", path, "--host", "127.0.0.1", "--port", "0"]
    if rate:
        args += ["--max-upload-rate", rate]
    return procs(*args)


def webseed_url(server: Proc) -> str:
    """The URL serve-central says to use as a web seed (its 'web seed URL: ...' line)."""
    return server.wait_line(lambda s: s.startswith("web seed URL:")).split()[-1]


def create(src: Path, out: Path, *args: str) -> Path:
    r = swarm_run("-q", "create", src, "-o", out, *args)
    assert r.returncode == 0, r.stderr
    return out


def lt_download(
    procs: Callable[..., Proc], libtorrent: list[str], torrent: Path, out: Path, *extra: str
) -> dict:
    """libtorrent downloads *torrent* into *out*; its JSON line (seconds, bytes per source).
    *libtorrent* is the fixture's command prefix, of which only the interpreter is wanted."""
    out.mkdir(exist_ok=True)
    args = [libtorrent[0], LT_WEBSEED, torrent, out, "--timeout", "30", *extra]
    lt = procs(*args, raw=True)
    line = lt.wait_line(lambda s: s.startswith("{"), timeout=40)
    result = json.loads(line)
    assert result["event"] == "done", result
    return result


def aria2_download(procs: Callable[..., Proc], aria2c: str, torrent: Path, out: Path) -> None:
    ar = procs(*aria2_argv(aria2c, torrent, out), raw=True)
    assert ar.wait_exit(timeout=30) == 0, "\n".join(ar.out[-10:] + ar.err[-10:])


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(18).randbytes(SIZE))
    return src


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "src" / "album"
    for rel, size in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(rel).randbytes(size))
    return root


def written_bytes(proc: Proc) -> int:
    """Bytes a process has written so far, by the kernel's count (sendfile included)."""
    text = Path(f"/proc/{proc.pid}/io").read_text()
    match = re.search(r"^wchar: (\d+)$", text, re.M)
    assert match, text
    return int(match.group(1))


def same_tree(copy: Path, original: Path) -> None:
    for rel in FILES:
        assert digest(copy / rel) == digest(original / rel), rel


def test_libtorrent_from_central_web_seed_only(
    tmp_path: Path, payload: Path, procs, libtorrent: list[str]
) -> None:
    server = serve_central(procs, payload)
    url = webseed_url(server)
    torrent = create(payload, tmp_path / "t.torrent", "--webseed", url)
    before = written_bytes(server)
    result = lt_download(procs, libtorrent, torrent, tmp_path / "lt", "--sources")
    assert digest(tmp_path / "lt" / payload.name) == digest(payload)
    assert result["peer_bytes"] == 0
    # The kernel's count, not libtorrent's: 4 MiB can come between two of its 20 ms samples.
    assert written_bytes(server) - before >= SIZE


def test_aria2_from_central_web_seed_only(
    tmp_path: Path, payload: Path, procs, aria2c: str
) -> None:
    url = webseed_url(serve_central(procs, payload))
    torrent = create(payload, tmp_path / "t.torrent", "--webseed", url)
    aria2_download(procs, aria2c, torrent, tmp_path / "aria")
    assert digest(tmp_path / "aria" / payload.name) == digest(payload)


def test_libtorrent_multi_file_from_central_web_seed_only(
    tmp_path: Path, album: Path, procs, libtorrent: list[str]
) -> None:
    url = webseed_url(serve_central(procs, album))
    torrent = create(album, tmp_path / "t.torrent", "--webseed", url, "--piece-length", "64K")
    lt_download(procs, libtorrent, torrent, tmp_path / "lt")
    same_tree(tmp_path / "lt" / album.name, album)


def test_aria2_multi_file_from_central_web_seed_only(
    tmp_path: Path, album: Path, procs, aria2c: str
) -> None:
    url = webseed_url(serve_central(procs, album))
    torrent = create(album, tmp_path / "t.torrent", "--webseed", url, "--piece-length", "64K")
    aria2_download(procs, aria2c, torrent, tmp_path / "aria")
    same_tree(tmp_path / "aria" / album.name, album)


def test_libtorrent_from_swarm_seed_and_central_web_seed(
    tmp_path: Path, payload: Path, procs, tracker: str, libtorrent: list[str]
) -> None:
    # Each source alone would take 4 s for the 4 MiB: together about 2 s, if both serve.
    server = serve_central(procs, payload, rate="1M")
    url = webseed_url(server)
    torrent = create(payload, tmp_path / "t.torrent", "-t", tracker, "--webseed", url)
    seed = start_seed(procs, payload, torrent, rate="1M")
    peer = f"127.0.0.1:{seed_port(seed)}"
    before = written_bytes(server)
    result = lt_download(procs, libtorrent, torrent, tmp_path / "lt", "--sources", "--peer", peer)
    server_sent = written_bytes(server) - before
    assert digest(tmp_path / "lt" / payload.name) == digest(payload)
    seed.stop()
    seeded = seed.wait_line(lambda s: s.startswith("seeded "))
    # libtorrent's figures are sampled (lower bounds); each source must have served a share.
    # (They add up to more than the file: libtorrent asks a web seed for runs of up to
    # urlseed_max_request_bytes, 16 MiB, so the whole file is requested from it at once and the
    # peer's blocks are end-game duplicates: 1.3x the file in all, seen at 6 MiB.)
    assert result["web_seed_bytes"] > 0, result
    assert result["peer_bytes"] > 0, result
    assert server_sent >= max(result["web_seed_bytes"], 64 * 1024), (server_sent, result)
    match = re.fullmatch(r"seeded ([0-9.]+) (\w+) to peers", seeded)
    assert match and float(match.group(1)) > 0, seeded
