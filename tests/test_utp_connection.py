"""The uTP state machine (BEP 29) on a simulated link with a fake clock: transfers under loss
and reordering, the handshake, FIN and RESET, sequence numbers wrapping, hostile input."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from swarm.utp.connection import PAYLOAD_SIZE, UtpConnection
from swarm.utp.events import Closed, Connected, Data, Eof, Output, State
from swarm.utp.mux import UtpMux
from swarm.utp.packet import Packet, PacketType, decode, encode, header

A = ("10.0.0.1", 6881)
B = ("10.0.0.2", 6882)
TICK = 0.01


class Link:
    """Two muxes joined by a link with a one-way *delay*, *loss*, *jitter* (reordering) and,
    when *rate* is set, a bottleneck queue from A to B (bytes a second)."""

    def __init__(
        self,
        seed: int = 1,
        *,
        loss: float = 0.0,
        delay: float = 0.02,
        jitter: float = 0.0,
        rate: float | None = None,
        rng_a: random.Random | None = None,
        rng_b: random.Random | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss, self.delay, self.jitter, self.rate = loss, delay, jitter, rate
        self.extra_delay = 0.0  # added to A -> B, as a queue of cross traffic would
        self.now = 1000.0
        self.muxes = {
            A: UtpMux(rng_a or random.Random(seed + 1)),
            B: UtpMux(rng_b or random.Random(seed + 2)),
        }
        self.queue: list[tuple[float, int, tuple[str, int], tuple[str, int], bytes]] = []
        self.events: dict[tuple[tuple[str, int], int], list[object]] = {}
        self.conns: dict[tuple[str, int], list[UtpConnection]] = {A: [], B: []}
        self.on_event: Callable[[tuple[str, int], UtpConnection, object], None] | None = None
        self._n = 0
        self._free_at = self.now
        self.sent = 0
        self.queue_delays: list[float] = []

    def emit(self, src: tuple[str, int], conn: UtpConnection | None, out: Output, to=None) -> None:
        dst = to if conn is None else conn.addr
        for d in out.datagrams:
            self.sent += 1
            if self.rng.random() < self.loss:
                continue
            at = self.now + self.delay + self.rng.random() * self.jitter
            if src == A:
                at += self.extra_delay
                if self.rate:
                    start = max(self._free_at, self.now)
                    self.queue_delays.append(start - self.now)
                    self._free_at = start + len(d) / self.rate
                    at += self._free_at - self.now
            self._n += 1
            heapq.heappush(self.queue, (at, self._n, dst, src, d))
        if conn is not None:
            for ev in out.events:
                self.events.setdefault((src, id(conn)), []).append(ev)
                if self.on_event:
                    self.on_event(src, conn, ev)

    def connect(self) -> UtpConnection:
        conn, out = self.muxes[A].connect(B, self.now)
        self.conns[A].append(conn)
        self.emit(A, conn, out)
        return conn

    def run(self, until: Callable[[], bool], limit: float = 120.0) -> None:
        end = self.now + limit
        next_tick = self.now + TICK
        while not until():
            assert self.now < end, "the simulation ran out of time"
            if self.queue and self.queue[0][0] <= next_tick:
                at, _, dst, src, data = heapq.heappop(self.queue)
                self.now = max(self.now, at)
                routed = self.muxes[dst].receive(data, src, self.now)
                if routed.accepted and routed.connection is not None:
                    self.conns[dst].append(routed.connection)
                self.emit(dst, routed.connection, routed.output, to=src)
            else:
                self.now = next_tick
                next_tick += TICK
                for addr, mux in self.muxes.items():
                    for conn, out in mux.tick(self.now):
                        self.emit(addr, conn, out)

    def evs(self, side: tuple[str, int], conn: UtpConnection) -> list[object]:
        return self.events.get((side, id(conn)), [])


def received(link: Link, side: tuple[str, int], conn: UtpConnection) -> bytes:
    return b"".join(e.data for e in link.evs(side, conn) if isinstance(e, Data))


def transfer(
    link: Link, payload: bytes, limit: float = 120.0
) -> tuple[UtpConnection, UtpConnection]:
    client = link.connect()
    link.run(lambda: any(isinstance(e, Connected) for e in link.evs(A, client)), limit)
    server = link.conns[B][0]
    link.emit(A, client, client.send(payload, link.now))

    def server_done() -> bool:
        return any(isinstance(e, Eof) for e in link.evs(B, server))

    link.emit(A, client, client.close(link.now))
    link.run(server_done, limit)
    link.emit(B, server, server.close(link.now))
    link.run(lambda: client.state is State.CLOSED and server.state is State.CLOSED, limit)
    return client, server


def test_handshake_ids_follow_bep29() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: bool(link.conns[B]) and client.state is State.CONNECTED)
    server = link.conns[B][0]
    assert client.send_id == (client.recv_id + 1) & 0xFFFF
    assert server.recv_id == client.send_id and server.send_id == client.recv_id
    assert link.evs(A, client) == [Connected()] and link.evs(B, server) == [Connected()]


def test_one_mib_under_loss_and_reordering_arrives_byte_identical() -> None:
    payload = random.Random(3).randbytes(1 << 20)
    link = Link(seed=5, loss=0.05, delay=0.02, jitter=0.015)
    client, server = transfer(link, payload)
    assert received(link, B, server) == payload
    assert link.evs(A, client)[-1] == Closed(None)
    assert link.evs(B, server)[-1] == Closed(None)


def test_both_ways_at_once() -> None:
    rng = random.Random(4)
    up, down = rng.randbytes(300_000), rng.randbytes(200_000)
    link = Link(seed=9, loss=0.02, jitter=0.01)
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    link.emit(A, client, client.send(up, link.now))
    link.emit(B, server, server.send(down, link.now))
    link.run(
        lambda: (
            len(received(link, B, server)) == len(up)
            and len(received(link, A, client)) == len(down)
        )
    )
    assert received(link, B, server) == up and received(link, A, client) == down


def test_sequence_numbers_wrap_past_65535() -> None:
    class Near(random.Random):
        def getrandbits(self, k: int) -> int:
            return 65500 if k == 16 else super().getrandbits(k)

    payload = random.Random(5).randbytes(200 * PAYLOAD_SIZE)  # 200 packets cross 65535
    link = Link(seed=2, loss=0.03, jitter=0.01, rng_a=Near(1), rng_b=Near(2))
    client, server = transfer(link, payload)
    assert received(link, B, server) == payload
    assert client.sender.snd_nxt > 65536 and server.receiver.ack_nr > 65536


def test_reset_by_peer_and_refused() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    link.emit(B, server, server.abort(link.now))
    link.run(lambda: client.state is State.RESET)
    assert link.evs(A, client)[-1] == Closed("connection reset by peer")

    link.muxes[B].accept = False
    refused = link.connect()
    link.run(lambda: refused.state is State.RESET)
    assert link.evs(A, refused)[-1] == Closed("connection refused")


def test_syn_to_nobody_times_out_in_bounded_time() -> None:
    link = Link(loss=1.0)
    client = link.connect()
    start = link.now
    link.run(lambda: client.state is State.RESET, limit=30)
    assert link.evs(A, client)[-1] == Closed("timed out")
    assert link.now - start < 8.0


def test_a_dead_peer_times_out() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.loss = 1.0
    start = link.now
    link.emit(A, client, client.send(b"x" * 5000, link.now))
    link.run(lambda: client.state is State.RESET, limit=200)
    assert link.evs(A, client)[-1] == Closed("timed out")
    # four timeouts from the least one, 0.5 + 1 + 2 + 4 s (libtorrent's 3 resends), not 31.5
    assert link.now - start < 10.0


def test_fin_waits_for_missing_packets() -> None:
    # the FIN overtakes the data before it: EOF only once everything up to eof_pkt arrived
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    out = client.send(b"a" * 2000, link.now)
    out.datagrams.extend(client.close(link.now).datagrams)
    data1, data2, fin = out.datagrams
    for d in (fin, data2):
        link.emit(B, None, link.muxes[B].receive(d, A, link.now).output, to=A)
    assert not any(isinstance(e, Eof) for e in link.evs(B, server))
    routed = link.muxes[B].receive(data1, A, link.now)
    assert [type(e) for e in routed.output.events] == [Data, Data, Eof]
    assert b"".join(e.data for e in routed.output.events if isinstance(e, Data)) == b"a" * 2000


def test_hostile_input_never_crashes_nor_grows_memory() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    rng = random.Random(11)
    mux = link.muxes[B]
    cid = client.send_id
    for i in range(20000):
        kind = i % 4
        if kind == 0:  # random bytes
            data = rng.randbytes(rng.randrange(0, 100))
        elif kind == 1:  # acks far out of the window, huge selective acks
            data = encode(
                Packet(
                    PacketType.STATE,
                    cid,
                    rng.getrandbits(16),
                    rng.getrandbits(16),
                    sack=rng.randbytes(252),
                )
            )
        elif kind == 2:  # data far ahead of what the server expects, at random seq numbers
            data = encode(
                Packet(
                    PacketType.DATA,
                    cid,
                    rng.getrandbits(16),
                    server.sender.snd_nxt - 1,
                    payload=rng.randbytes(1000),
                )
            )
        else:  # FINs and SYNs at random
            ptype = rng.choice([PacketType.FIN, PacketType.SYN, PacketType.DATA])
            data = header(
                ptype, rng.getrandbits(16), 0, 0, 0, rng.getrandbits(16), rng.getrandbits(16)
            )
        mux.receive(data, A, link.now)
    # the reorder buffer is bounded (1024 packets); random SYNs from one address made
    # connections, but only up to the mux's cap
    assert server.receiver.buffered_bytes <= 1024 * 1000
    assert len(mux) <= mux.max_connections
    assert server.state in (State.CONNECTED, State.CLOSED, State.RESET)


def test_the_window_grows_on_a_quiet_link_and_shrinks_when_delay_rises() -> None:
    link = Link(seed=3, delay=0.02, rate=500_000)  # a 500 kB/s bottleneck queue from A to B
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    link.emit(A, client, client.send(bytes(8 << 20), link.now))
    start = link.now
    link.run(lambda: link.now > start + 0.1)
    early = client.ledbat.cwnd
    link.run(lambda: link.now > start + 0.3)
    assert client.ledbat.cwnd > 4 * early  # nothing queued yet: it grows (slow start)
    link.run(lambda: link.now > start + 1.5)
    before = client.ledbat.cwnd
    link.extra_delay = 0.3  # 300 ms more one-way delay, as a queue of cross traffic makes
    link.run(lambda: link.now > start + 3.5)
    assert client.ledbat.history.queuing_delay > 100_000
    assert client.ledbat.cwnd < before * 0.85


def test_a_deferred_ack_covers_a_batch_and_reordering_acks_at_once() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    client.ledbat.cwnd = 100_000.0
    datagrams = client.send(bytes(10 * PAYLOAD_SIZE), link.now).datagrams
    assert len(datagrams) == 10
    mux = link.muxes[B]
    for d in datagrams[:5]:
        assert mux.receive(d, A, link.now, defer_ack=True).output.datagrams == []
    (ack,) = server.flush(link.now).datagrams
    assert decode(ack).type is PacketType.STATE
    assert decode(ack).ack_nr == decode(datagrams[4]).seq_nr
    # a gap: the selective ack goes at once
    (sack,) = mux.receive(datagrams[6], A, link.now, defer_ack=True).output.datagrams
    assert decode(sack).sack == b"\x01\x00\x00\x00"
    assert server.flush(link.now).datagrams == []


def test_an_icmp_error_refuses_a_dial_but_not_a_connection() -> None:
    link = Link(loss=1.0)
    client = link.connect()
    syn = client.sender.packets[client.sender.snd_una]
    datagram = header(PacketType.SYN, client.recv_id, 0, 0, 0, syn.seq, 0)
    mux = link.muxes[A]
    assert mux.unreachable(("10.9.9.9", 1), datagram, link.now) is None  # not where it went
    hit = mux.unreachable(B, datagram, link.now)
    assert hit is not None and hit[0] is client
    assert hit[1].events == [Closed("connection refused")]
    link.loss = 0.0
    other = link.connect()
    link.run(lambda: other.state is State.CONNECTED)
    syn2 = header(PacketType.SYN, other.recv_id, 0, 0, 0, 0, 0)
    hit = mux.unreachable(B, syn2, link.now)
    assert hit is not None and hit[1].events == [] and other.state is State.CONNECTED


def test_a_zero_window_holds_data_back_until_the_probe_and_idle_links_get_keepalives() -> None:
    link = Link()
    client = link.connect()
    link.run(lambda: client.state is State.CONNECTED)
    link.run(lambda: bool(link.conns[B]))
    server = link.conns[B][0]
    link.emit(B, server, server.set_read_backlog(1 << 20, link.now))  # the app reads nothing
    link.emit(A, client, client.send(b"z" * 3000, link.now))
    link.run(lambda: client.peer_window == 0 and not client.sender.packets)
    # a full window: nothing more goes until the probe, a second later, and then one packet
    got = len(received(link, B, server))
    assert 0 < got < 3000
    start = link.now
    link.run(lambda: link.now > start + 0.9)
    assert len(received(link, B, server)) == got and client.peer_window == 0
    link.run(lambda: len(received(link, B, server)) > got, limit=2.0)
    link.emit(B, server, server.set_read_backlog(0, link.now))  # it reads again: an ack says so
    link.run(lambda: len(received(link, B, server)) == 3000, limit=2.0)
    sent = link.sent
    link.run(lambda: link.now > start + 40)  # idle: one keep-alive each way in 29 s or so
    assert 2 <= link.sent - sent <= 4
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
