"""A raw HTTP server for client tests: on 127.0.0.1 (or ::1), port 0, it reads each request's
head and lets a script answer with whatever bytes it likes, well-formed or not."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]
"""Answers one request: its head (request line and headers) and the connection's writer."""

STEP = 5.0  # seconds any one step may take before a test fails


def answer(data: bytes) -> Script:
    """A script that sends *data* and closes."""

    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return script


def routes(table: dict[str, bytes]) -> Script:
    """A script that answers each request path with its bytes from *table* (else a 404)."""

    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        path = head.split(b" ", 2)[1].decode()
        writer.write(table.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))

    return script


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def redirect(status: int, location: str) -> bytes:
    return b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (
        status,
        location.encode(),
    )


class Server:
    def __init__(self, script: Script, scheme: str) -> None:
        self.script = script
        self.scheme = scheme
        self.heads: list[bytes] = []
        self.authority = ""
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.authority}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(STEP):
                head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            await self.script(head, writer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client went away (as a test may want it to)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def stop(self) -> None:
        """Cancel the scripts still running (one that never answers, say) and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        async with asyncio.timeout(STEP):
            for task in list(self._tasks):
                with suppress(asyncio.CancelledError):
                    await task


@asynccontextmanager
async def serve(
    script: Script, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """A :class:`Server` running *script* for every request until the block ends."""
    server = Server(script, "https" if ssl_context else "http")
    listener = await asyncio.start_server(server.handle, host, 0, ssl=ssl_context)
    port = listener.sockets[0].getsockname()[1]
    server.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        yield server
    finally:
        listener.close()
        await server.stop()
        async with asyncio.timeout(STEP):
            await listener.wait_closed()


def tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1 made by openssl in
    *folder*, and a client context that trusts it (the test is skipped without openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
