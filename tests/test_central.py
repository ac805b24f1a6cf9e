"""The central server (``swarm serve-central``): the pure HTTP decisions first, then real
sockets on 127.0.0.1 (OS-chosen ports); every wait is bounded. The download client is tested
in ``tests/test_central_client.py``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from swarm.central.protocol import make_etag, parse_range, plan_response, split_request_path
from swarm.central.server import CentralServer
from swarm.errors import CentralError, UsageError

pytestmark = pytest.mark.timeout(120)

SIZE = 1_000_003
T = TypeVar("T")


# -- pure: ranges, conditional requests, request paths --------------------------------------


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=10-", (10, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=500-5000", (500, 999)),
        ("BYTES = 1 - 2", (1, 2)),
        ("bytes=999-999", (999, 999)),
        ("bytes=1000-", False),
        ("bytes=1000-2000", False),
        ("bytes=-0", False),
        ("bytes=abc", None),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("", None),
    ],
)
def test_parse_range(header: str | None, want: object) -> None:
    assert parse_range(header, 1000) == want


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**6))
def test_parse_range_never_leaves_the_file(header: str, size: int) -> None:
    span = parse_range(header, size)
    if isinstance(span, tuple):
        assert 0 <= span[0] <= span[1] < size


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_parse_range_spans_are_what_was_asked(first: int, last: int, size: int) -> None:
    span = parse_range(f"bytes={first}-{last}", size)
    if last < first:
        assert span is None
    elif first >= size:
        assert span is False
    else:
        assert span == (first, min(last, size - 1))


def test_plan_conditional_requests() -> None:
    etag = make_etag(1000, 5_000_000_000)

    def plan(**headers: str) -> Any:
        return plan_response("GET", headers, 1000, 5_000_000_000, "application/octet-stream")

    assert plan(**{"If-None-Match": etag}).status == 304
    assert plan(**{"If-None-Match": f'"x", W/{etag}'}).status == 304
    assert plan(**{"If-None-Match": '"other"'}).status == 200
    assert plan(Range="bytes=0-9", **{"If-Range": etag}).status == 206
    assert plan(Range="bytes=0-9", **{"If-Range": '"stale"'}).status == 200
    assert plan(Range="bytes=0-9", **{"If-Range": f"W/{etag}"}).status == 200
    date = plan().headers["Last-Modified"]
    assert plan(Range="bytes=0-9", **{"If-Range": date}).status == 206
    assert plan(Range="bytes=0-9", **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}).status == 200
    head = plan_response("HEAD", {}, 1000, 0, "text/plain")
    assert head.length == 0 and head.headers["Content-Length"] == "1000"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("/", ()),
        ("/a/b%20c.bin?x=1", ("a", "b c.bin")),
        ("/caf%C3%A9", ("café",)),
        ("/../etc/passwd", None),
        ("/a/./b", None),
        ("/%2e%2e/x", None),
        ("/..%2f..%2fx", None),
        ("/a%5c..%5cx", None),
        ("/a\\..\\x", None),
        ("//etc/passwd", None),
        ("/x%00.txt", None),
        ("/.hidden", None),
        ("/%ff", None),
        ("http://host/x", None),
        ("/%252e%252e/x", ("%2e%2e", "x")),  # decoded once only: a literal name, not ".."
    ],
)
def test_split_request_path(raw: str, want: tuple[str, ...] | None) -> None:
    assert split_request_path(raw) == want


# -- the server on a socket -----------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "pub"
    (root / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(random.Random(1).randbytes(SIZE))
    (root / "sub" / "small file.txt").write_bytes(b"hello\n")
    (root / ".hidden").write_bytes(b"not listed")
    (tmp_path / "secret.txt").write_text("keep out")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    return root


def run(make: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await make()

    return asyncio.run(bounded())


async def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, Mapping[str, str], bytes]:
    """Status, headers (case-insensitive) and body of one request."""
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.request(method, yarl.URL(url, encoded=True), headers=headers or {}) as r:
            return r.status, r.headers.copy(), await r.read()  # type: ignore[return-value]


async def raw_status(port: int, target: str) -> bytes:
    """The status line for a request target sent byte for byte (no client normalises it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        return (await reader.readline()).strip()
    finally:
        writer.close()


@pytest.mark.parametrize("rate", [None, 200_000_000], ids=["sendfile", "capped"])
def test_get_head_ranges_and_validators(served: Path, rate: int | None) -> None:
    data = (served / "data.bin").read_bytes()

    async def main() -> None:
        async with CentralServer(served, port=0, max_upload_rate=rate) as s:
            url = s.url + "data.bin"
            status, h, body = await get(url)
            assert status == 200 and body == data and int(h["Content-Length"]) == SIZE
            assert h["Accept-Ranges"] == "bytes" and h["ETag"].startswith('"')
            assert h["Last-Modified"].endswith("GMT")
            etag = h["ETag"]

            status, h, body = await get(url, method="HEAD")
            assert (status, body, int(h["Content-Length"]), h["ETag"]) == (200, b"", SIZE, etag)

            for rng, first, want in [
                ("bytes=0-99", 0, data[:100]),
                ("bytes=999990-", 999990, data[999990:]),
                ("bytes=-10", SIZE - 10, data[-10:]),
                ("bytes=500-2000000", 500, data[500:]),
            ]:
                status, h, body = await get(url, {"Range": rng})
                assert (status, body) == (206, want), rng
                assert h["Content-Range"] == f"bytes {first}-{first + len(want) - 1}/{SIZE}"
                assert int(h["Content-Length"]) == len(want)

            for rng in (f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"):
                status, h, _ = await get(url, {"Range": rng})
                assert (status, h["Content-Range"]) == (416, f"bytes */{SIZE}"), rng
            for rng in ("bytes=abc", "bytes=9-3", "lines=1-2", "bytes=0-1,5-9"):
                status, _, body = await get(url, {"Range": rng})
                assert (status, len(body)) == (200, SIZE), rng

            status, _, body = await get(url, {"If-None-Match": etag})
            assert (status, body) == (304, b"")
            status, _, body = await get(url, {"Range": "bytes=0-9", "If-Range": etag})
            assert (status, body) == (206, data[:10])
            status, _, body = await get(url, {"Range": "bytes=0-9", "If-Range": '"old"'})
            assert (status, len(body)) == (200, SIZE)

    run(main)


def test_keep_alive_connection_carries_many_responses(served: Path) -> None:
    """Bodies sent on the socket directly never overtake the next response's headers."""
    data = (served / "data.bin").read_bytes()

    async def main() -> None:
        async with CentralServer(served, port=0) as s:
            conn = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=conn) as http:
                for i in range(20):
                    rng = {"Range": f"bytes={i * 1000}-"} if i % 2 else {}
                    async with http.get(s.url + "data.bin", headers=rng) as r:
                        assert await r.read() == data[i * 1000 if i % 2 else 0 :]
                    async with http.head(s.url + "sub/small%20file.txt") as r:
                        assert r.status == 200 and r.content_length == 6

    run(main)


def test_index_lists_served_files_with_sizes_and_links(served: Path) -> None:
    async def main() -> None:
        async with CentralServer(served, port=0) as s:
            status, h, body = await get(s.url)
            assert status == 200 and h["Content-Type"].startswith("text/html")
            page = body.decode()
            assert 'href="/data.bin"' in page and "976.6 KiB" in page
            assert 'href="/sub/small%20file.txt"' in page and "sub/small file.txt" in page
            assert "link.txt" not in page and ".hidden" not in page
            assert s.urls == [s.url + "data.bin", s.url + "sub/small%20file.txt"]
            for u in s.urls:
                assert (await get(u))[0] == 200

    run(main)


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/..%2fsecret.txt",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/sub/..%2f..%2fsecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..%5csecret.txt",
        "/sub%5c..%5c..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/data.bin%00",
        "/data.bin%00.txt",
        "/link.txt",
        "/.hidden",
        "/sub/./small%20file.txt",
        "/nothing.bin",
        "/sub",
    ],
)
def test_only_served_files_can_be_reached(served: Path, target: str) -> None:
    async def main() -> bytes:
        async with CentralServer(served, port=0) as s:
            return await raw_status(s.port, target)

    assert run(main) == b"HTTP/1.1 404 Not Found"


def test_raw_backslash_path_is_refused(served: Path) -> None:
    async def main() -> bytes:
        async with CentralServer(served, port=0) as s:
            return await raw_status(s.port, "/sub\\..\\..\\secret.txt")

    # The HTTP parser may refuse the raw byte itself (400); it is never served.
    assert run(main) in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request")


def test_a_single_file_server_serves_only_that_file(served: Path) -> None:
    async def main() -> None:
        async with CentralServer(served / "data.bin", port=0) as s:
            assert s.urls == [s.url + "data.bin"]
            assert (await get(s.url + "data.bin"))[0] == 200
            assert (await get(s.url + "sub/small%20file.txt"))[0] == 404
            assert b"data.bin" in (await get(s.url))[2]

    run(main)


def test_hundred_concurrent_downloads_are_identical(served: Path) -> None:
    want = hashlib.sha256((served / "data.bin").read_bytes()).hexdigest()

    async def main() -> list[str]:
        async with CentralServer(served, port=0) as s:
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as http:

                async def one() -> str:
                    async with http.get(s.url + "data.bin") as r:
                        assert r.status == 200
                        return hashlib.sha256(await r.read()).hexdigest()

                return await asyncio.gather(*(one() for _ in range(100)))

    digests = run(main)
    assert len(digests) == 100 and set(digests) == {want}


@pytest.mark.timing
def test_upload_cap_holds_for_all_clients_together(tmp_path: Path) -> None:
    f = tmp_path / "cap.bin"
    f.write_bytes(os.urandom(1_500_000))
    rate = 2 * 1024 * 1024

    async def main() -> float:
        async with CentralServer(f, port=0, max_upload_rate=rate) as s:
            t0 = time.monotonic()
            results = await asyncio.gather(*(get(s.url + "cap.bin") for _ in range(4)))
            elapsed = time.monotonic() - t0
            assert all(len(body) == 1_500_000 for _, _, body in results)
            return elapsed

    elapsed = run(main)
    expected = 4 * 1_500_000 / rate  # 2.86 s
    assert expected * 0.9 <= elapsed <= expected * 1.1, (elapsed, expected)


def test_client_hanging_up_mid_file_is_quiet_and_harmless(
    served: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = served / "big.bin"
    big.write_bytes(os.urandom(64 << 20))

    async def main() -> int:
        async with CentralServer(served, port=0) as s:
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_recv(sock, 100)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # a reset, mid-body
            return len((await get(s.url + "data.bin"))[2])

    with caplog.at_level(logging.WARNING):
        assert run(main) == SIZE
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


def test_server_errors_are_one_line_swarm_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        CentralServer(tmp_path / "missing")
    (tmp_path / "f").write_bytes(b"x")

    async def main() -> None:
        async with CentralServer(tmp_path / "f", port=0) as first:
            with pytest.raises(CentralError, match="already in use") as info:
                await CentralServer(tmp_path / "f", port=first.port).start()
            assert info.value.exit_code == 1 and "\n" not in str(info.value)

    run(main)
