"""The HTTP download client (``swarm fetch http://...``, :mod:`swarm.central.client`): how it
reads a server's answer (pure, :func:`~swarm.central.protocol.read_answer`), then downloads from
a real :class:`~swarm.central.server.CentralServer` on 127.0.0.1 (OS-chosen ports); every wait
is bounded. The command's behaviour as a process is in ``tests/e2e/test_http_fetch.py``."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm import metainfo
from swarm.central.client import http_download, name_from_url
from swarm.central.protocol import Answer, content_range, read_answer
from swarm.central.server import CentralServer
from swarm.errors import (
    CentralError,
    ExistingDataError,
    NotFoundError,
    StorageError,
    SwarmError,
    UsageError,
)

pytestmark = pytest.mark.timeout(120)

SIZE = 1_000_003
T = TypeVar("T")


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A served folder holding data.bin (SIZE pseudo-random bytes)."""
    root = tmp_path / "pub"
    root.mkdir()
    (root / "data.bin").write_bytes(random.Random(1).randbytes(SIZE))
    return root


def run(make: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await make()

    return asyncio.run(bounded())


# -- pure: the names a URL gives -------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://h/", "http://h/..", "http://h/a%2fb", "http://h/a%5cb", "http://h/%00", "x"]
)
def test_client_refuses_names_that_are_not_plain(url: str) -> None:
    with pytest.raises(UsageError):
        name_from_url(url)
    assert name_from_url("http://h/dir/my%20file.bin?q=1") == "my file.bin"


# -- pure: how the download client reads an answer --------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "have", "want"),
    [
        (200, {"Content-Length": "1000"}, 0, Answer("write", 0, 1000, 1000)),
        (200, {}, 0, Answer("write", 0, None, None)),  # the body ends with the connection
        (200, {"Content-Length": "1000"}, 400, Answer("write", 0, 1000, 1000)),  # file changed
        (206, {"Content-Range": "bytes 400-999/1000"}, 400, Answer("write", 400, 1000, 600)),
        (206, {"Content-Range": "bytes 400-499/1000"}, 400, Answer("write", 400, 1000, 100)),
        (206, {"Content-Range": "bytes 0-999/1000"}, 400, Answer("write", 0, 1000, 1000)),
        (416, {"Content-Range": "bytes */1000"}, 1000, Answer("whole", 1000, 1000)),
    ],
)
def test_read_answer_usable(status: int, headers: dict[str, str], have: int, want: Answer) -> None:
    assert read_answer("u", status, "", headers, have) == want


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (206, {}),
        (206, {"Content-Range": "bytes 500-999/1000"}),  # a gap after the .part
        (206, {"Content-Range": "bytes 0-99/1000"}),  # ends before the bytes asked for
        (206, {"Content-Range": "bytes 400-5000/1000"}),  # past the file's end
        (206, {"Content-Range": "bytes 400-999/*"}),  # no length to resume against
        (206, {"Content-Range": "bytes 400-999/1000", "Content-Length": "10"}),
        (206, {"Content-Range": "bytes 999-400/1000"}),
        (416, {"Content-Range": "bytes */5000"}),  # longer than the .part: it changed
        (416, {}),
    ],
)
def test_read_answer_restarts_on_a_range_it_cannot_splice_in(
    status: int, headers: dict[str, str]
) -> None:
    answer = read_answer("u", status, "", headers, 400)
    assert answer.action == "restart" and answer.why


@pytest.mark.parametrize(
    ("status", "headers", "have", "error", "words"),
    [
        (404, {}, 0, NotFoundError, "u: not found on the server (HTTP 404)"),
        (410, {}, 400, NotFoundError, "(HTTP 410)"),
        (500, {}, 0, CentralError, "u: the server answered HTTP 500 Oops"),
        (206, {"Content-Range": "bytes 0-9/10"}, 0, CentralError, "206 Oops to a request for"),
        (416, {"Content-Range": "bytes */10"}, 0, CentralError, "HTTP 416"),
        (302, {}, 0, CentralError, "HTTP 302"),  # a redirect with no Location
        (200, {"Content-Encoding": "gzip"}, 0, CentralError, "(Content-Encoding: gzip)"),
    ],
)
def test_read_answer_errors(
    status: int, headers: dict[str, str], have: int, error: type[SwarmError], words: str
) -> None:
    with pytest.raises(error) as info:
        read_answer("u", status, "Oops", headers, have)
    assert words in str(info.value) and type(info.value) is error


@given(st.text(max_size=40))
def test_content_range_is_ordered_or_none(header: str) -> None:
    span = content_range(header)
    if span is not None and span[0] is not None and span[1] is not None:
        assert span[0] <= span[1]


# -- the download client --------------------------------------------------------------------


def single_file_torrent(path: Path, piece_length: int = 16384) -> metainfo.Torrent:
    data = path.read_bytes()
    hashes = [
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    ]
    raw = metainfo.build_metainfo(
        name=path.name, piece_length=piece_length, piece_hashes=hashes, length=len(data)
    )
    return metainfo.parse(raw)


def test_download_is_byte_identical_with_progress(served: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[tuple[int, int]] = []

    async def main() -> Any:
        async with CentralServer(served, port=0) as s:
            return await http_download(
                s.url + "data.bin", out, on_progress=lambda d, t: seen.append((d, t))
            )

    r = run(main)
    assert r.path == out / "data.bin" and r.resumed_from == 0 and r.bytes == SIZE
    assert r.path.read_bytes() == (served / "data.bin").read_bytes()
    assert seen[-1] == (SIZE, SIZE) and sorted(seen) == seen
    assert sorted(p.name for p in out.iterdir()) == ["data.bin"]


@pytest.mark.parametrize("rate", [None, 50_000_000], ids=["sendfile", "capped"])
def test_resume_asks_only_for_the_missing_bytes(served: Path, tmp_path: Path, rate: int) -> None:
    src = served / "data.bin"
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(src.read_bytes()[:400_000])

    async def main() -> Any:
        async with CentralServer(served, port=0, max_upload_rate=rate) as s:
            return await http_download(s.url + "data.bin", out, torrent=single_file_torrent(src))

    r = run(main)
    # Only the missing bytes crossed the wire: the server honoured "Range: bytes=400000-".
    assert (r.resumed_from, r.bytes) == (400_000, SIZE - 400_000)
    assert (out / "data.bin").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["data.bin"]


def test_resume_of_a_changed_file_starts_over(served: Path, tmp_path: Path) -> None:
    """The ETag kept beside the .part goes out as If-Range; the server's 200 restarts it."""
    src = served / "data.bin"
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(b"\xff" * 400_000)  # bytes of an older version
    (out / "data.bin.part.etag").write_text('"an-older-version"\n')

    async def main() -> Any:
        async with CentralServer(served, port=0) as s:
            return await http_download(s.url + "data.bin", out)

    r = run(main)
    assert (r.resumed_from, r.bytes) == (0, SIZE)
    assert (out / "data.bin").read_bytes() == src.read_bytes()


def test_a_whole_part_file_is_finished_without_a_body(served: Path, tmp_path: Path) -> None:
    src = served / "data.bin"
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(src.read_bytes())

    async def main() -> Any:
        async with CentralServer(served, port=0) as s:
            return await http_download(s.url + "data.bin", out)

    r = run(main)
    assert (r.resumed_from, r.bytes) == (SIZE, 0)
    assert (out / "data.bin").read_bytes() == src.read_bytes()


def test_corrupt_server_file_fails_verification(served: Path, tmp_path: Path) -> None:
    src = served / "data.bin"
    torrent = single_file_torrent(src)
    data = bytearray(src.read_bytes())
    data[12345] ^= 1
    src.write_bytes(bytes(data))
    out = tmp_path / "out"

    async def main() -> None:
        async with CentralServer(served, port=0) as s:
            with pytest.raises(StorageError, match="1 of 62 pieces do not match"):
                await http_download(s.url + "data.bin", out, torrent=torrent)

    run(main)
    assert not out.exists()  # neither a complete-looking file nor one to resume (nor a folder)


def test_download_errors_are_one_line_swarm_errors(served: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async def main() -> None:
        async with CentralServer(served, port=0) as s:
            with pytest.raises(NotFoundError, match="HTTP 404") as info:
                await http_download(s.url + "nothing.bin", tmp_path / "a")
            assert info.value.exit_code == 2
        with pytest.raises(CentralError, match="cannot connect") as refused:
            await http_download(f"http://127.0.0.1:{closed_port}/x.bin", tmp_path / "b")
        assert refused.value.exit_code == 1
        for err in (info.value, refused.value):
            assert isinstance(err, SwarmError) and "\n" not in str(err)

    run(main)
    # A refused or missing download leaves nothing that looks like a file.
    assert not (tmp_path / "a" / "nothing.bin").exists()
    assert not (tmp_path / "b" / "x.bin").exists()


def test_a_file_already_at_the_name_is_checked_before_it_is_overwritten(
    served: Path, tmp_path: Path
) -> None:
    src = served / "data.bin"
    torrent = single_file_torrent(src)
    out = tmp_path / "out"
    out.mkdir()
    there = out / "data.bin"
    there.write_bytes(src.read_bytes())
    damaged = bytearray(src.read_bytes())
    damaged[5] ^= 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}/data.bin"
    notices: list[str] = []

    async def main() -> None:
        # The torrent's file, whole: nothing to fetch, no server asked.
        r = await http_download(nowhere, out, torrent=torrent)
        assert (r.already_complete, r.bytes, r.resumed_from) == (True, 0, SIZE)
        there.write_bytes(damaged)
        with pytest.raises(ExistingDataError) as kept:
            await http_download(nowhere, out, torrent=torrent, overwrite=False)
        assert str(kept.value) == (
            f"{there} exists and 1 of 62 pieces differ: not overwriting it (--no-overwrite)"
        )
        assert kept.value.exit_code == 2 and there.read_bytes() == damaged
        async with CentralServer(served, port=0) as s:
            r = await http_download(
                s.url + "data.bin", out, torrent=torrent, on_existing=notices.append
            )
            assert r.bytes == SIZE and not r.already_complete
            # Without a torrent there is nothing to check it against: said, and fetched.
            r = await http_download(s.url + "data.bin", out, on_existing=notices.append)
            assert r.bytes == SIZE

    run(main)
    assert there.read_bytes() == src.read_bytes()
    assert notices == [
        f"{there} exists and 1 of 62 pieces differ: it will be overwritten; --no-overwrite to stop",
        f"{there} exists: it will be overwritten; --no-overwrite to stop",
    ]
