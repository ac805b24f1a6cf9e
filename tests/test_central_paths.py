"""The central server as a web seed (BEP 19): a multi-file torrent's files at base + the
torrent's name + each file's path, nested paths inside the served folder, and every way out of
it refused (``..``, encoded ``%2e%2e``, a symlink out, an absolute path); the URL that
``swarm serve-central`` prints and puts in its status line. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
import yarl

from swarm.central.protocol import quote_path
from swarm.central.server import CentralServer
from swarm.status import Event, Status, decode, encode
from swarm.webseed_plan import file_url

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")

FILES = {
    ("cd 1", "01 intro.flac"): b"intro" * 1000,
    ("cd 1", "deep", "caf\u00e9 #2?.txt"): b"odd name\n",
    ("notes.txt",): b"top level\n",
}


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """A torrent's folder 'album' with nested files of odd names, a secret beside it and
    symlinks that lead out of it."""
    root = tmp_path / "album"
    for parts, data in FILES.items():
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "secret.txt").write_text("keep out")
    os.symlink(tmp_path / "secret.txt", root / "cd 1" / "link.txt")
    os.symlink(tmp_path, root / "up")  # a folder link out of the root
    return root


def run(make: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await make()

    return asyncio.run(bounded())


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(yarl.URL(url, encoded=True), headers=headers or {}) as r:
            return r.status, await r.read()


async def raw_status(port: int, target: str) -> bytes:
    """The status line for a request target sent byte for byte (no client normalises it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        return (await reader.readline()).strip()
    finally:
        writer.close()


def test_bep19_urls_of_a_multi_file_torrent_resolve(album: Path) -> None:
    async def main() -> None:
        async with CentralServer(album, port=0) as s:
            assert s.webseed_url == s.url
            for parts, data in FILES.items():
                url = file_url(s.webseed_url, "album", parts, multi_file=True)
                assert url.startswith(s.url + "album/")
                assert await fetch(url) == (200, data), url
                # The same file at its path inside the folder, as before.
                assert await fetch(s.url + quote_path(parts)) == (200, data)
                status, body = await fetch(url, {"Range": "bytes=1-3"})
                assert (status, body) == (206, data[1:4])

    run(main)


def test_a_single_file_is_at_the_base_plus_its_name(album: Path) -> None:
    async def main() -> None:
        async with CentralServer(album / "notes.txt", port=0) as s:
            url = file_url(s.webseed_url, "notes.txt", (), multi_file=False)
            assert url == s.url + "notes.txt"
            assert await fetch(url) == (200, b"top level\n")

    run(main)


def test_a_real_folder_of_the_torrents_name_is_served_first(album: Path) -> None:
    (album / "album").mkdir()
    (album / "album" / "notes.txt").write_bytes(b"the inner one\n")

    async def main() -> None:
        async with CentralServer(album, port=0) as s:
            assert await fetch(s.url + "album/notes.txt") == (200, b"the inner one\n")
            assert await fetch(s.url + "notes.txt") == (200, b"top level\n")

    run(main)


@pytest.mark.parametrize(
    "target",
    [
        "/album/../secret.txt",
        "/album/cd%201/../../secret.txt",
        "/album/%2e%2e/secret.txt",
        "/album/%2E%2E/%2e%2e/secret.txt",
        "/album/cd%201/..%2f..%2f..%2fsecret.txt",
        "/album/%252e%252e/secret.txt",
        "/album/cd%201/link.txt",
        "/cd%201/link.txt",
        "/album/up/secret.txt",
        "/up/secret.txt",
        "//album/notes.txt",
        "/album//notes.txt",
        "/%2falbum%2fnotes.txt",
        "/album/%2fetc%2fpasswd",
        "/album/%ff.txt",
        "/album/notes.txt%00",
        "/album/./notes.txt",
        "/album",
        "/album/cd%201",
        "/album/nothing.bin",
        "/other/notes.txt",
        "http://x/album/notes.txt",
    ],
)
def test_nothing_outside_the_folder_can_be_reached(album: Path, target: str) -> None:
    async def main() -> bytes:
        async with CentralServer(album, port=0) as s:
            return await raw_status(s.port, target)

    assert run(main) == b"HTTP/1.1 404 Not Found", target


def test_the_index_page_lists_nested_files(album: Path) -> None:
    async def main() -> None:
        async with CentralServer(album, port=0) as s:
            status, body = await fetch(s.url)
            page = body.decode()
            assert status == 200 and 'href="/cd%201/deep/caf%C3%A9%20%232%3F.txt"' in page
            assert "link.txt" not in page and "secret" not in page
            assert len(s.urls) == len(FILES)

    run(main)


def test_status_line_carries_the_web_seed_url_and_old_lines_still_read() -> None:
    line = encode(Status(Event.LISTENING, port=5, urls=("http://a/x",), webseed="http://a/"))
    assert b'"webseed":"http://a/"' in line
    assert decode(line).webseed == "http://a/"
    old = decode(b'{"event":"listening","port":5,"urls":["http://a/x"]}\n')
    assert old.webseed is None and old.urls == ("http://a/x",)
    done = encode(Status(Event.DONE, name="x", downloaded=10, web_seed_downloaded=4))
    assert decode(done).web_seed_downloaded == 4 and b'"web_seed_downloaded":4' in done


def test_serve_central_prints_the_web_seed_url(album: Path) -> None:
    r_fd, w_fd = os.pipe()
    cmd = [sys.executable, "-m", "swarm", "serve-central", str(album), "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--status-fd", str(w_fd)],
        pass_fds=(w_fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(w_fd)
    try:
        with os.fdopen(r_fd, "rb") as status_pipe:
            status = decode(status_pipe.readline())  # bounded by the test's timeout
        assert status.event is Event.LISTENING and status.port
        want = f"http://127.0.0.1:{status.port}/"
        assert status.webseed == want
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        lines: list[str] = []
        while time.monotonic() < deadline and f"web seed URL: {want}" not in lines:
            lines.append(proc.stdout.readline().rstrip("\n"))
        assert f"web seed URL: {want}" in lines
    finally:
        proc.terminate()
        proc.wait(timeout=20)
