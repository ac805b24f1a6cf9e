"""The central server and the HTTP download client, on real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path

import aiohttp
import pytest
import yarl

from swarm import metainfo
from swarm.central.client import http_download
from swarm.central.server import CentralServer
from swarm.create import create_torrent
from swarm.errors import StorageError

SIZE = 1_000_003


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "pub"
    (root / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(random.Random(1).randbytes(SIZE))
    (root / "sub" / "small.txt").write_bytes(b"hello\n")
    (tmp_path / "secret.txt").write_text("keep out")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    return root


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 120))


async def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, yarl.URL(url, encoded=True), headers=headers or {}) as r:
            return r.status, r.headers.copy(), await r.read()  # type: ignore[return-value]


@pytest.mark.parametrize("rate", [None, 50_000_000])
def test_get_head_and_ranges(served: Path, rate: int | None) -> None:
    data = (served / "data.bin").read_bytes()

    async def main() -> None:
        s = CentralServer(served, port=0, max_upload_rate=rate)
        await s.start()
        try:
            url = s.url + "data.bin"
            status, h, body = await get(url)
            assert status == 200 and body == data and int(h["Content-Length"]) == SIZE
            assert "ETag" in h and "Last-Modified" in h
            status, h, body = await get(url, method="HEAD")
            assert status == 200 and body == b"" and int(h["Content-Length"]) == SIZE
            for rng, want in [
                ("bytes=0-99", data[:100]),
                ("bytes=999990-", data[999990:]),
                ("bytes=-10", data[-10:]),
                ("bytes=500-2000000", data[500:]),
            ]:
                status, h, body = await get(url, {"Range": rng})
                assert status == 206, rng
                assert body == want, rng
                first = (
                    SIZE - len(want) if rng.startswith("bytes=-") else int(rng[6:].split("-")[0])
                )
                assert h["Content-Range"] == f"bytes {first}-{first + len(want) - 1}/{SIZE}"
            status, h, _ = await get(url, {"Range": f"bytes={SIZE}-"})
            assert status == 416 and h["Content-Range"] == f"bytes */{SIZE}"
            status, _, body = await get(url, {"Range": "bytes=abc"})
            assert status in (200, 416)
            status, _, body = await get(s.url)
            assert status == 200 and b"data.bin" in body and b"sub/small.txt" in body
        finally:
            await s.stop()

    run(main())


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "%252e%252e/secret.txt",
        "..%5csecret.txt",
        "sub/..%2f..%2fsecret.txt",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "data.bin%00.txt",
        "link.txt",
        "nothing.bin",
    ],
)
def test_only_served_files_can_be_reached(served: Path, path: str) -> None:
    async def main() -> None:
        s = CentralServer(served, port=0)
        await s.start()
        try:
            # A raw request line, so no client normalises the path away.
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            writer.write(f"GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            head = await reader.read(200)
            writer.close()
            assert head.startswith(b"HTTP/1.1 404") or head.startswith(b"HTTP/1.1 400"), head
        finally:
            await s.stop()

    run(main())


def test_a_single_file_server_serves_only_that_file(served: Path) -> None:
    async def main() -> None:
        s = CentralServer(served / "data.bin", port=0)
        await s.start()
        try:
            assert s.urls == [s.url + "data.bin"]
            assert (await get(s.url + "data.bin"))[0] == 200
            assert (await get(s.url + "sub/small.txt"))[0] == 404
        finally:
            await s.stop()

    run(main())


def test_hundred_concurrent_downloads_are_identical(served: Path) -> None:
    want = hashlib.sha256((served / "data.bin").read_bytes()).hexdigest()

    async def main() -> None:
        s = CentralServer(served, port=0)
        await s.start()
        try:
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as http:

                async def one() -> str:
                    async with http.get(s.url + "data.bin") as r:
                        assert r.status == 200
                        return hashlib.sha256(await r.read()).hexdigest()

                digests = await asyncio.gather(*(one() for _ in range(100)))
            assert set(digests) == {want}
        finally:
            await s.stop()

    run(main())


def test_upload_cap_holds_for_all_clients_together(tmp_path: Path) -> None:
    f = tmp_path / "cap.bin"
    f.write_bytes(os.urandom(1_500_000))
    rate = 2 * 1024 * 1024

    async def main() -> float:
        s = CentralServer(f, port=0, max_upload_rate=rate)
        await s.start()
        try:
            t0 = time.monotonic()
            await asyncio.gather(*(get(s.url + "cap.bin") for _ in range(4)))
            return time.monotonic() - t0
        finally:
            await s.stop()

    elapsed = run(main())
    expected = 4 * 1_500_000 / rate
    assert expected * 0.9 <= elapsed <= expected * 1.1, (elapsed, expected)


def test_download_resume_and_verify(served: Path, tmp_path: Path) -> None:
    src = served / "data.bin"
    torrent = metainfo.parse(create_torrent(src, piece_length=16384))
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(src.read_bytes()[:400_000])

    async def main() -> None:
        s = CentralServer(served, port=0)
        await s.start()
        try:
            r = await http_download(s.url + "data.bin", out, torrent=torrent)
            assert r.resumed_from == 400_000 and r.bytes == SIZE - 400_000
        finally:
            await s.stop()

    run(main())
    assert (out / "data.bin").read_bytes() == src.read_bytes()
    assert not (out / "data.bin.part").exists()


def test_corrupt_server_file_fails_verification(served: Path, tmp_path: Path) -> None:
    src = served / "data.bin"
    torrent = metainfo.parse(create_torrent(src, piece_length=16384))
    data = bytearray(src.read_bytes())
    data[12345] ^= 1
    src.write_bytes(bytes(data))

    async def main() -> None:
        s = CentralServer(served, port=0)
        await s.start()
        try:
            with pytest.raises(StorageError, match="do not match"):
                await http_download(s.url + "data.bin", tmp_path / "out", torrent=torrent)
        finally:
            await s.stop()

    run(main())
    assert not (tmp_path / "out" / "data.bin").exists()
