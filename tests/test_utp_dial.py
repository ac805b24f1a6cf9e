"""Dialling peers over uTP then TCP (swarm.transport_choice, swarm.peer_transports) and the
DHT on the uTP endpoint's port (swarm.dht_shell's shared mode), on 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from swarm.dht_shell import DhtNode
from swarm.peer_transports import PeerTransports
from swarm.transport_choice import TCP, UTP, TransportChoice
from swarm.utp_shell import UtpEndpoint

LOOPBACK = "127.0.0.1"
DEADLINE = 20.0
A, B = ("10.0.0.1", 6881), ("10.0.0.2", 6881)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(test())

    return wrapper


# -- the policy --------------------------------------------------------------------------------


def test_utp_first_then_tcp_and_a_tcp_only_peer_is_not_dialled_over_utp_again() -> None:
    choice = TransportChoice()
    assert choice.order(A) == (UTP, TCP)
    assert choice.failed(A, UTP) is True  # fall back at once
    choice.worked(A, TCP)
    assert choice.order(A) == (TCP,)
    assert choice.known(A) == TCP
    assert choice.order(B) == (UTP, TCP)  # another peer is its own question


def test_a_peer_neither_transport_reached_is_tried_over_utp_again() -> None:
    choice = TransportChoice()
    assert choice.failed(A, UTP) is True
    assert choice.failed(A, TCP) is False  # no third way
    assert choice.known(A) is None
    assert choice.order(A) == (UTP, TCP)


def test_a_peer_that_answered_utp_stays_utp_until_a_utp_dial_fails() -> None:
    choice = TransportChoice()
    choice.worked(A, UTP)
    choice.worked(A, TCP)  # e.g. it dialled us over TCP: still a uTP peer
    assert choice.order(A) == (UTP, TCP)
    choice.failed(A, UTP)
    assert choice.known(A) is None
    choice.worked(A, TCP)
    assert choice.order(A) == (TCP,)


def test_no_utp_dials_tcp_only() -> None:
    choice = TransportChoice(utp=False)
    assert choice.order(A) == (TCP,)
    assert choice.failed(A, TCP) is False


def test_the_memory_is_bounded_and_forgets_the_oldest() -> None:
    choice = TransportChoice(remembered=3)
    peers = [(f"10.0.1.{i}", 6881) for i in range(5)]
    for p in peers:
        choice.failed(p, UTP)
        choice.worked(p, TCP)
    assert len(choice) == 3
    assert choice.order(peers[0]) == (UTP, TCP)  # forgotten
    assert choice.order(peers[-1]) == (TCP,)
    for i in range(10_000):  # failures that never learn anything stay bounded too
        choice.failed((f"10.1.{i // 256}.{i % 256}", 1), UTP)
    assert len(choice._utp_failed) <= 3


# -- the dialer on real sockets ----------------------------------------------------------------


class Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class Keep(asyncio.Protocol):
    def __init__(self) -> None:
        self.got = bytearray()
        self.event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"ping")

    def data_received(self, data: bytes) -> None:
        self.got += data
        self.event.set()


def _free_port_for_both() -> int:
    """A port number free for TCP and for UDP on 127.0.0.1 (the OS picks the TCP one)."""
    for _ in range(50):
        tcp = socket.socket()
        tcp.bind((LOOPBACK, 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise AssertionError("no port free for both TCP and UDP")


@run
async def test_a_dial_goes_over_utp_when_the_peer_has_it() -> None:
    server, client = PeerTransports(), PeerTransports()
    tcp = await asyncio.get_running_loop().create_server(Echo, LOOPBACK, 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        await server.start(LOOPBACK, port, Echo)
        await client.start(LOOPBACK, 0, Echo)
        assert server.endpoint is not None and server.endpoint.address[1] == port
        async with asyncio.timeout(DEADLINE):
            tr, proto = await client.connect(Keep, (LOOPBACK, port))
            assert isinstance(proto, Keep)
            await proto.event.wait()
        assert bytes(proto.got) == b"ping"
        assert client.counts == {"utp out": 1} and server.counts == {"utp in": 1}
        assert client.choice.known((LOOPBACK, port)) == UTP
        tr.close()
    finally:
        await client.close()
        await server.close()
        tcp.close()


@run
async def test_a_tcp_only_peer_is_reached_over_tcp_at_once_and_then_dialled_tcp_only() -> None:
    client = PeerTransports()
    tcp = await asyncio.get_running_loop().create_server(Echo, LOOPBACK, 0)
    addr = (LOOPBACK, tcp.sockets[0].getsockname()[1])
    try:
        await client.start(LOOPBACK, 0, Echo)
        loop = asyncio.get_running_loop()
        for _ in range(2):
            started = loop.time()
            async with asyncio.timeout(DEADLINE):
                tr, proto = await client.connect(Keep, addr)
                assert isinstance(proto, Keep)
                await proto.event.wait()
            # the closed UDP port answers with ICMP: no uTP timeout is waited for
            assert loop.time() - started < 2.0
            tr.close()
        assert client.counts == {"tcp out": 2}
        assert client.choice.order(addr) == (TCP,)
    finally:
        await client.close()
        tcp.close()


@run
async def test_no_utp_opens_no_endpoint_and_dials_tcp() -> None:
    client = PeerTransports(utp=False)
    tcp = await asyncio.get_running_loop().create_server(Echo, LOOPBACK, 0)
    addr = (LOOPBACK, tcp.sockets[0].getsockname()[1])
    try:
        await client.start(LOOPBACK, 0, Echo)
        assert client.endpoint is None
        async with asyncio.timeout(DEADLINE):
            tr, _ = await client.connect(Keep, addr)
        assert isinstance(tr, asyncio.Transport) and client.counts == {"tcp out": 1}
        tr.close()
    finally:
        await client.close()
        tcp.close()


@run
async def test_a_peer_with_neither_fails_with_an_oserror() -> None:
    client = PeerTransports()
    port = _free_port_for_both()
    try:
        await client.start(LOOPBACK, 0, Echo)
        async with asyncio.timeout(DEADLINE):
            try:
                await client.connect(Keep, (LOOPBACK, port))
            except OSError:
                pass
            else:
                raise AssertionError("connected to nothing")
        assert client.choice.known((LOOPBACK, port)) is None
    finally:
        await client.close()


# -- the DHT on the endpoint's port -------------------------------------------------------------


class Sink(asyncio.Protocol):
    def __init__(self, want: int) -> None:
        self.want = want
        self.got = 0
        self.done = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.want:
            self.done.set()


class Source(asyncio.Protocol):
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.payload)


@run
async def test_a_dht_ping_is_answered_on_the_shared_port_while_utp_carries_data() -> None:
    size = 4 << 20
    sinks: list[Sink] = []

    def accept() -> Sink:
        sinks.append(Sink(size))
        return sinks[-1]

    shared = UtpEndpoint(accept=accept, rng=random.Random(1))
    await shared.start(LOOPBACK, 0)
    node = DhtNode(rng=random.Random(2))
    await node.start_on(shared)
    assert node.address == shared.address
    sender = UtpEndpoint(rng=random.Random(3))
    await sender.start(LOOPBACK, 0)
    other = DhtNode(rng=random.Random(4))
    await other.start(LOOPBACK, 0)
    try:
        async with asyncio.timeout(DEADLINE):
            await sender.connect(lambda: Source(random.Random(5).randbytes(size)), shared.address)
            while not sinks:
                await asyncio.sleep(0.01)
            # while the data flows, a DHT on another socket pings the shared port
            other.ping(shared.address)
            while len(other.node.table) == 0:
                await asyncio.sleep(0.01)
            await sinks[0].done.wait()
            # and the shared node's own queries go out from the shared port and are answered
            assert await node.bootstrap([other.address], timeout=5.0) >= 1
            assert [c.addr for c in other.node.table.contacts()] == [shared.address]
        assert sinks[0].got == size
        await node.stop()
        assert shared.other is None  # the endpoint outlives the node, without it
    finally:
        await other.stop()
        await node.stop()
        await sender.stop()
        await shared.stop()


# -- a session ---------------------------------------------------------------------------------


@run
async def test_a_session_runs_utp_and_its_dht_on_the_listen_ports_number() -> None:
    from swarm.session import Session

    other = DhtNode(rng=random.Random(7))
    await other.start(LOOPBACK, 0)
    try:
        async with Session(host=LOOPBACK, port=0, dht=True) as session:
            assert session.net.endpoint is not None
            assert session.net.endpoint.address == (LOOPBACK, session.port)
            assert session.dht_port == session.port
            other.ping((LOOPBACK, session.port))
            async with asyncio.timeout(DEADLINE):
                while len(other.node.table) == 0:
                    await asyncio.sleep(0.01)
        async with Session(host=LOOPBACK, port=0, dht=True, utp=False) as session:
            assert session.net.endpoint is None
            assert session.dht_port is not None  # its own socket
    finally:
        await other.stop()
