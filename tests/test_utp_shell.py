"""The asyncio uTP shell on real UDP sockets on 127.0.0.1: transfers both ways, refused and
unanswered dials, flow control both ways, and a DHT sharing the port."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from swarm.utp.events import State
from swarm.utp_shell import UtpEndpoint

DEADLINE = 30.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A plain test that runs the coroutine *test* in a fresh event loop."""

    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(test())

    return wrapper


class Peer(asyncio.Protocol):
    """Writes *payload* when connected, keeps what arrives, closes after the peer's EOF."""

    def __init__(self, payload: bytes = b"", want: int = 0) -> None:
        self.payload = payload
        self.want = want
        self.got = bytearray()
        self.transport: asyncio.Transport | None = None
        self.complete = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.paused = 0
        self.resumed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.payload:
            transport.write(self.payload[:1000])  # several writes, joined by the shell
            transport.writelines([self.payload[1000:5000], self.payload[5000:]])
        if self.want == 0:
            self.complete.set()

    def data_received(self, data: bytes) -> None:
        self.got += data
        if len(self.got) >= self.want:
            self.complete.set()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def closed_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on (it was bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def endpoints(accept=None) -> tuple[UtpEndpoint, UtpEndpoint]:
    server = UtpEndpoint(accept=accept, rng=random.Random(1))
    client = UtpEndpoint(rng=random.Random(2))
    await server.start("127.0.0.1", 0)
    await client.start("127.0.0.1", 0)
    return server, client


@run
async def test_four_mib_both_ways_at_once() -> None:
    rng = random.Random(3)
    up, down = rng.randbytes(4 << 20), rng.randbytes(4 << 20)
    accepted: list[Peer] = []

    def make() -> Peer:
        accepted.append(Peer(down, len(up)))
        return accepted[-1]

    server, client = await endpoints(make)
    try:
        async with asyncio.timeout(DEADLINE):
            tr, proto = await client.connect(lambda: Peer(up, len(down)), server.address)
            assert isinstance(proto, Peer)
            assert tr.get_extra_info("peername") == server.address
            assert tr.get_extra_info("sockname") == client.address
            await proto.complete.wait()
            await accepted[0].complete.wait()
            assert bytes(proto.got) == down
            assert bytes(accepted[0].got) == up
            assert accepted[0].transport is not None
            assert accepted[0].transport.get_extra_info("peername") == client.address
            tr.close()
            assert await proto.lost is None
            assert await accepted[0].lost is None
    finally:
        await client.stop()
        await server.stop()


@run
async def test_dial_to_a_port_with_nothing_listening_fails_in_bounded_time() -> None:
    # Linux: the ICMP "port unreachable" refuses the dial at once; elsewhere, the timeout
    port = closed_port()
    client = UtpEndpoint(rng=random.Random(2))
    await client.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        expected = ConnectionRefusedError if sys.platform == "linux" else TimeoutError
        with pytest.raises(expected):
            await client.connect(Peer, ("127.0.0.1", port), timeout=1.0)
        assert loop.time() - start < (0.5 if sys.platform == "linux" else 2.0)
        assert all(c.state is not State.SYN_SENT for c in client.mux.connections)
        # a dial that nothing answers at all (a port that drops datagrams) times out
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            with pytest.raises(TimeoutError):
                await client.connect(Peer, silent.getsockname(), timeout=0.3)
        finally:
            silent.close()
        assert len(client.mux) <= 1  # the refused one, until the next tick
    finally:
        await client.stop()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_after_a_dial_to_a_closed_port_the_endpoint_still_hears_its_peers(loop: str) -> None:
    """On uvloop the ICMP error of such a dial once made libuv stop watching the socket for
    good: every uTP connection on it went deaf (a fetch that dialled a killed peer first never
    got its seed's handshake). Refused at once on asyncio's loop, by time-out on uvloop."""
    factory = pytest.importorskip("uvloop").new_event_loop if loop == "uvloop" else None
    payload = random.Random(5).randbytes(200_000)

    async def main() -> None:
        server, client = await endpoints(accept=lambda: Peer(payload))
        try:
            for _ in range(2):
                with pytest.raises((ConnectionRefusedError, TimeoutError)):
                    await client.connect(Peer, ("127.0.0.1", closed_port()), timeout=0.5)
            _, peer = await client.connect(lambda: Peer(want=len(payload)), server.address)
            assert isinstance(peer, Peer)
            async with asyncio.timeout(DEADLINE):
                await peer.complete.wait()
            assert bytes(peer.got) == payload
        finally:
            await client.stop()
            await server.stop()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


@run
async def test_an_endpoint_that_does_not_accept_refuses_at_once() -> None:
    server, client = await endpoints(accept=None)
    try:
        async with asyncio.timeout(2.0):
            with pytest.raises(ConnectionRefusedError):
                await client.connect(Peer, server.address)
    finally:
        await client.stop()
        await server.stop()


@run
async def test_flow_control_pauses_the_writer_while_the_reader_is_paused() -> None:
    accepted: list[Peer] = []
    payload = random.Random(4).randbytes(3 << 20)

    def make() -> Peer:
        accepted.append(Peer(b"", len(payload)))
        return accepted[-1]

    server, client = await endpoints(make)
    try:
        async with asyncio.timeout(DEADLINE):
            tr, proto = await client.connect(Peer, server.address)
            assert isinstance(proto, Peer)
            while not accepted or accepted[0].transport is None:
                await asyncio.sleep(0.01)
            reader = accepted[0]
            assert reader.transport is not None
            reader.transport.pause_reading()
            tr.set_write_buffer_limits(high=256 * 1024)
            tr.write(payload)
            assert proto.paused == 1
            await asyncio.sleep(0.5)  # the reader stays paused: only its window may arrive
            assert len(reader.got) == 0
            assert tr.get_write_buffer_size() > 1 << 20
            reader.transport.resume_reading()
            await reader.complete.wait()
            assert bytes(reader.got) == payload
            while proto.resumed == 0:
                await asyncio.sleep(0.01)
    finally:
        await client.stop()
        await server.stop()


@run
async def test_other_datagrams_go_to_the_other_handler() -> None:
    got: list[tuple[bytes, tuple[str, int]]] = []
    server = UtpEndpoint(other=lambda data, addr: got.append((data, addr)))
    await server.start("127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe", server.address)
        sock.sendto(b"\x41" + bytes(5), server.address)  # too short for uTP: not uTP
        async with asyncio.timeout(2.0):
            while len(got) < 2:
                await asyncio.sleep(0.01)
        assert got[0][0].startswith(b"d1:a") and got[0][1] == sock.getsockname()
    finally:
        sock.close()
        await server.stop()


@run
async def test_abort_resets_the_peer_and_a_failing_protocol_loses_only_its_connection() -> None:
    accepted: list[Peer] = []

    class Failing(Peer):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("a bug in the protocol")

    def make() -> Peer:
        accepted.append(Failing() if len(accepted) == 1 else Peer())
        return accepted[-1]

    server, client = await endpoints(make)
    try:
        async with asyncio.timeout(DEADLINE):
            tr, proto = await client.connect(Peer, server.address)
            assert isinstance(proto, Peer)
            while not accepted:
                await asyncio.sleep(0.01)
            tr.abort()
            assert tr.is_closing()
            assert await proto.lost is None
            assert isinstance(await accepted[0].lost, ConnectionResetError)
            # the second connection's protocol raises: it is reset, the endpoint goes on
            tr2, proto2 = await client.connect(lambda: Peer(b"x" * 100), server.address)
            assert isinstance(proto2, Peer)
            assert isinstance(await proto2.lost, ConnectionResetError)
            tr3, proto3 = await client.connect(lambda: Peer(b"y" * 100), server.address)
            while len(accepted[2].got) < 100:
                await asyncio.sleep(0.01)
            assert not tr3.is_closing() and bytes(accepted[2].got) == b"y" * 100
    finally:
        await client.stop()
        await server.stop()


@run
async def test_a_peer_that_closed_and_forgot_the_connection_is_lost_at_once() -> None:
    """The peer sends its FIN and drops the connection without acking ours (libtorrent and
    qBittorrent do): our side's connection_lost comes as our FIN goes, not after the FIN's
    retries run out (about 30 s), so a peer that left no longer counts as connected."""
    accepted: list[Peer] = []

    def make() -> Peer:
        accepted.append(Peer())
        return accepted[-1]

    server, client = await endpoints(make)
    try:
        async with asyncio.timeout(DEADLINE):
            tr, proto = await client.connect(Peer, server.address)
            assert isinstance(proto, Peer)
            while not accepted or accepted[0].transport is None:
                await asyncio.sleep(0.01)
            assert server._sock is not None and server._loop is not None
            accepted[0].transport.close()  # its FIN goes out at the next flush ...
            server._loop.remove_reader(server._sock.fileno())  # ... and it hears no more
        async with asyncio.timeout(3.0):
            assert await proto.lost is None
        assert tr.is_closing()
    finally:
        await client.stop()
        await server.stop()


@run
async def test_asyncio_streams_run_over_a_utp_transport() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(100_000)
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def serve() -> asyncio.Protocol:
        reader = asyncio.StreamReader()

        def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            tasks.append(loop.create_task(echo(r, w)))

        return asyncio.StreamReaderProtocol(reader, connected)

    server, client = await endpoints(serve)
    try:
        async with asyncio.timeout(DEADLINE):
            reader = asyncio.StreamReader()
            tr, proto = await client.connect(
                lambda: asyncio.StreamReaderProtocol(reader), server.address
            )
            writer = asyncio.StreamWriter(tr, proto, reader, loop)
            payload = random.Random(6).randbytes(100_000)
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(100_000) == payload[::-1]
            assert await reader.read() == b""  # the server's FIN
            writer.close()
            await asyncio.gather(*tasks)
    finally:
        await client.stop()
        await server.stop()
