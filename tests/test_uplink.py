"""The uplink gate (swarm/uplink.py): rarest-first order on a slow uplink with no upload limit.

The decision is pure (GateCore, from_tcp_info); the gate runs on a real event loop with fake
transports whose TCP_INFO the test writes; one test reads a real loopback socket's TCP_INFO so
that the struct's offsets are checked against the running kernel."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from swarm.uplink import LOW, GateCore, Queued, UplinkGate, from_tcp_info, queued

SLOW = 1_000_000  # bytes/s: a home uplink (LOW lasts 16 ms, many polls)
FAST = 500_000_000  # loopback


def tcp_info(
    *,
    notsent: int = 0,
    unacked: int = 0,
    mss: int = 1448,
    rate: int = SLOW,
    min_rtt_us: int = 100,
    snd_wnd: int = 1 << 20,
    size: int = 232,
) -> bytes:
    """A struct tcp_info with the fields the gate reads at their offsets (Linux uapi)."""
    buf = bytearray(size)
    struct.pack_into("=I", buf, 16, mss)  # tcpi_snd_mss
    struct.pack_into("=I", buf, 24, unacked)  # tcpi_unacked
    if size >= 148:
        struct.pack_into("=I", buf, 144, notsent)  # tcpi_notsent_bytes
    if size >= 152:
        struct.pack_into("=I", buf, 148, min_rtt_us)  # tcpi_min_rtt
    if size >= 168:
        struct.pack_into("=Q", buf, 160, rate)  # tcpi_delivery_rate
    if size >= 232:
        struct.pack_into("=I", buf, 228, snd_wnd)  # tcpi_snd_wnd
    return bytes(buf)


class FakeSocket:
    type = socket.SOCK_STREAM

    def __init__(self) -> None:
        self.info = tcp_info()

    def getsockopt(self, level: int, name: int, size: int) -> bytes:
        return self.info[:size]


class FakeTransport:
    def __init__(self, sock: object | None = None, buffered: int = 0) -> None:
        self.sock = FakeSocket() if sock is None else sock
        self.buffered = buffered
        self.closing = False

    def set(self, **fields: int) -> None:
        self.sock.info = tcp_info(**fields)  # type: ignore[union-attr]

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> object | None:
        return self.sock if name == "socket" else None

    def get_write_buffer_size(self) -> int:
        return self.buffered


# -- the struct --------------------------------------------------------------------------


def test_unsent_is_the_transports_the_kernels_and_what_waits_beyond_the_path() -> None:
    # 10 segments in flight (10 000 bytes), the path holding 1 MB/s x 2 ms = 2 000 of them
    info = tcp_info(notsent=5000, unacked=10, mss=1000, rate=1_000_000, min_rtt_us=2000)
    assert from_tcp_info(info, 100) == Queued(100 + 5000 + 8000, False, 1_000_000)


def test_a_full_receive_window_is_the_peers_side_not_our_uplink() -> None:
    info = tcp_info(unacked=10, mss=1000, snd_wnd=11_000)  # room for one segment: < 2 mss
    q = from_tcp_info(info, 0)
    assert q is not None and q.peer_limited
    roomy = from_tcp_info(tcp_info(unacked=10, mss=1000, snd_wnd=50_000), 0)
    assert roomy is not None and not roomy.peer_limited


def test_an_older_kernels_struct_says_what_it_can_or_nothing() -> None:
    assert from_tcp_info(tcp_info(size=104), 0) is None  # no notsent, no delivery rate
    q = from_tcp_info(tcp_info(notsent=9, size=200), 0)  # no tcpi_snd_wnd: never peer-limited
    assert q == Queued(9, False, SLOW)


def test_a_real_socket_whose_peer_does_not_read_shows_its_queue_and_a_full_window() -> None:
    """The offsets against this kernel: nothing queued at first; then, with the reader idle,
    bytes unsent and the peer's window closed."""
    server = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(server.getsockname(), timeout=5)
    receiver, _ = server.accept()
    try:
        transport = FakeTransport(sender)
        q = queued(transport)
        assert q is not None and q.unsent == 0 and not q.peer_limited
        sender.setblocking(False)
        chunk = bytes(1 << 16)
        for _ in range(2048):  # at most 128 MiB; the buffers fill long before
            try:
                sender.send(chunk)
            except BlockingIOError:
                break
        deadline = time.monotonic() + 5
        while True:  # the last segments' acks may still be on their way
            q = queued(transport)
            assert q is not None
            if q.peer_limited or time.monotonic() > deadline:
                break
        assert q.peer_limited and q.unsent > 0
    finally:
        for s in (sender, receiver, server):
            s.close()


def test_no_tcp_socket_no_queue() -> None:
    t = FakeTransport()
    t.sock = None  # type: ignore[assignment]
    assert queued(t) is None
    t = FakeTransport()
    t.closing = True
    assert queued(t) is None


# -- the decision ------------------------------------------------------------------------


def test_a_batch_holds_the_uplink_until_it_has_nearly_left() -> None:
    core = GateCore()
    core.admitted("a", 0.0, 65536)
    assert core.holding(0.01, Queued(40000, False, SLOW))
    assert not core.holding(0.05, Queued(LOW - 1, False, SLOW))
    assert core.current is None
    assert core.pace == pytest.approx(0.05 / (65536 - LOW + 1))  # learnt from what left


def test_a_full_window_or_a_closed_socket_hold_nothing() -> None:
    for q in (Queued(65536, True, SLOW), None):
        core = GateCore()
        core.admitted("a", 0.0, 65536)
        assert not core.holding(0.001, q)


def test_the_pace_is_learnt_only_from_a_batch_seen_still_there_and_then_gone() -> None:
    """A batch gone at the first look may have left long before (nobody asked meanwhile):
    its time says nothing of the uplink. The kernel's delivery rate is not used at all."""
    core = GateCore()
    core.admitted("a", 0.0, 65536)
    assert not core.holding(0.5, Queued(0, False, FAST))
    assert core.pace is None
    core.admitted("a", 1.0, 65536)
    assert core.holding(1.01, Queued(50000, False, FAST))
    assert not core.holding(1.06, Queued(0, False, FAST))
    assert core.pace == pytest.approx(0.06 / 65536)


def test_on_an_uplink_that_empties_faster_than_a_poll_nothing_waits() -> None:
    core = GateCore(poll=0.002)
    core.pace = 1e-9  # 1 GB/s: LOW bytes in 16 us, far less than a poll
    core.admitted("a", 0.0, 262144)
    assert not core.holding(0.0001, Queued(200_000, False, SLOW))
    core.pace = 1e-6  # 1 MB/s: LOW bytes in 16 ms, eight polls
    core.admitted("a", 0.0, 262144)
    assert core.holding(0.0001, Queued(200_000, False, SLOW))


def test_a_batch_far_slower_than_the_uplinks_pace_is_its_peers_side() -> None:
    core = GateCore(slack=3.0)
    core.pace = 1e-6  # 1 MB/s: 64 KiB in 65 ms
    core.admitted("slow", 0.0, 65536)
    assert core.holding(0.15, Queued(60000, False, SLOW))  # within 3 x 65 ms
    assert not core.holding(0.25, Queued(60000, False, SLOW))  # past it: the others go


def test_released_only_by_whoever_holds_it() -> None:
    core = GateCore()
    core.admitted("a", 0.0, 1)
    core.release("b")
    assert core.current is not None
    core.release("a")
    assert core.current is None


# -- the gate on a loop ------------------------------------------------------------------


async def until(cond: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_waiting_batches_go_rarest_first_once_the_one_in_the_uplink_has_left() -> None:
    async def main() -> None:
        gate = UplinkGate(poll=0.001)
        a, b, c = FakeTransport(), FakeTransport(), FakeTransport()
        await gate.admit("a", a, 65536, rank=3)  # the uplink is free: at once
        a.set(notsent=65536)  # ... and written
        order: list[str] = []

        async def send(key: str, t: FakeTransport, rank: int) -> None:
            await gate.admit(key, t, 65536, rank)
            order.append(key)
            t.set(notsent=65536)  # written at once after

        common = asyncio.create_task(send("b", b, 5))
        rare = asyncio.create_task(send("c", c, 1))
        await asyncio.sleep(0.02)  # twenty polls: neither may pass while a's batch is there
        assert order == []
        a.set(notsent=1000)
        await until(lambda: order, "the first waiting batch")
        assert order == ["c"]  # the rarer piece first
        c.set(notsent=0)
        await asyncio.wait_for(asyncio.gather(common, rare), 5)
        assert order == ["c", "b"]
        assert gate.waited

    asyncio.run(main())


def test_nothing_waits_on_a_fast_uplink_nor_behind_a_peer_that_holds_its_own() -> None:
    async def main() -> None:
        gate = UplinkGate(poll=0.001)
        a, b, c = FakeTransport(), FakeTransport(), FakeTransport()
        gate.core.pace = 2e-9  # loopback, learnt: 16 KiB leave in 33 us
        await gate.admit("a", a, 262144, rank=0)
        a.set(notsent=200_000)
        await asyncio.wait_for(gate.admit("b", b, 262144, rank=9), 0.5)
        assert not gate.waited
        gate.core.pace = 1e-6  # a slow uplink after all
        await asyncio.wait_for(gate.admit("b", b, 65536, rank=9), 0.5)  # b is current
        b.set(notsent=60_000)
        c.set(notsent=100_000, snd_wnd=0)  # c's peer reads nothing: c's own earlier batch
        await asyncio.wait_for(gate.admit("c", c, 65536, rank=0), 0.5)
        untcp = FakeTransport()
        untcp.sock = None  # type: ignore[assignment]
        await asyncio.wait_for(gate.admit("utp", untcp, 65536, rank=0), 0.5)

    asyncio.run(main())


def test_a_waiter_cancelled_takes_nothing_and_the_next_goes() -> None:
    async def main() -> None:
        gate = UplinkGate(poll=0.001)
        a, b, c = FakeTransport(), FakeTransport(), FakeTransport()
        await gate.admit("a", a, 65536, rank=0)
        a.set(notsent=65536)
        gone = asyncio.create_task(gate.admit("b", b, 65536, rank=0))
        later = asyncio.create_task(gate.admit("c", c, 65536, rank=5))
        await asyncio.sleep(0.005)
        gone.cancel()
        a.set(notsent=0)
        await asyncio.wait_for(later, 5)
        assert gone.cancelled()
        assert gate.core.current is not None and gate.core.current.key == "c"

    asyncio.run(main())
